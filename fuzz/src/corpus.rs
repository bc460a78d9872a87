//! The seeds: the real samples of the repository (embedded at build time, see `build.rs`) and
//! the function payloads made from them by the suite's own code (normalize → enrich → score →
//! plan), so that every seed is an input the suite really sees.

use ir_core::action::ActionReport;
use ir_core::orchestration::{PlaybookInput, RecordRequest};
use ir_core::{Engine, IngestOutput};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::tree::J;

mod samples {
    include!(concat!(env!("OUT_DIR"), "/samples.rs"));
}

/// One seed input of a target.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Where it comes from (a file, or the sample a payload was made from).
    pub name: String,
    pub bytes: Vec<u8>,
    /// The document as a tree, for JSON seeds (and YAML seeds read as data).
    pub tree: Option<J>,
}

impl Seed {
    pub fn text(name: impl Into<String>, bytes: Vec<u8>) -> Seed {
        Seed {
            name: name.into(),
            bytes,
            tree: None,
        }
    }

    /// A JSON seed: its text and its tree.
    pub fn json(name: impl Into<String>, value: &Value) -> Seed {
        Seed {
            name: name.into(),
            bytes: value.to_string().into_bytes(),
            tree: Some(J::from_value(value)),
        }
    }

    /// A YAML seed: its text, and its tree when it reads as data.
    pub fn yaml(name: impl Into<String>, bytes: &[u8]) -> Seed {
        let tree = std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| serde_yaml_ng::from_str::<Value>(t).ok())
            .map(|v| J::from_value(&v));
        Seed {
            name: name.into(),
            bytes: bytes.to_vec(),
            tree,
        }
    }
}

/// The embedded files whose path starts with `prefix` (`events/guardduty-`).
pub fn files(prefix: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> + '_ {
    samples::FILES
        .iter()
        .copied()
        .filter(move |(path, _)| path.starts_with(prefix))
}

/// JSON seeds from the embedded files under `prefix`.
pub fn json_files(prefix: &str) -> Vec<Seed> {
    files(prefix)
        .filter_map(|(path, bytes)| {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .map(|v| Seed::json(path, &v))
        })
        .collect()
}

/// The moment every payload seed is made at: the samples' day.
fn sample_now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_168_800).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// What the pipeline makes of each event sample: (sample, ingest output, engine), the start of
/// every payload seed.
fn pipeline() -> (Vec<(String, IngestOutput)>, Option<Engine>) {
    let engine = Engine::embedded().ok();
    let outputs = files("events/")
        .filter_map(|(path, bytes)| {
            let normalized = ir_core::normalize(bytes).ok()?;
            Some((
                path.to_owned(),
                IngestOutput::from_normalized(normalized, sample_now()),
            ))
        })
        .collect();
    (outputs, engine)
}

/// The payloads each function takes, made from the event samples by the suite's own code.
#[derive(Debug, Default)]
pub struct Payloads {
    pub enrich: Vec<Seed>,
    pub score: Vec<Seed>,
    pub record: Vec<Seed>,
    pub approval: Vec<Seed>,
    pub containment: Vec<Seed>,
    pub evidence: Vec<Seed>,
    pub notify: Vec<Seed>,
}

/// Every object of `v` (at any depth) that has all of `keys`.
fn objects_with<'a>(v: &'a Value, keys: &[&str], out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            if keys.iter().all(|k| o.contains_key(*k)) {
                out.push(v);
            }
            o.values().for_each(|c| objects_with(c, keys, out));
        }
        Value::Array(a) => a.iter().for_each(|c| objects_with(c, keys, out)),
        _ => {}
    }
}

/// The action reports of the recorded audit chains (`tests/fixtures/audit/`), in the shape an
/// action returns them: the plans of approval requests and the reports of step results.
fn recorded_reports() -> Vec<Value> {
    let mut out = Vec::new();
    for (_, bytes) in files("tests/fixtures/audit/") {
        let Ok(chain) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        let Some(records) = chain.as_array() else {
            continue;
        };
        for r in records {
            let (Some(action), Some(detail)) = (
                r.get("action").and_then(Value::as_str),
                r.get("detail").and_then(Value::as_object),
            ) else {
                continue;
            };
            if !action.starts_with("action:") {
                continue;
            }
            let mut report = json!({
                "incidentId": r.get("incidentId").cloned().unwrap_or(json!("inc-0123456789abcdef0123")),
                "stepId": detail.get("step").cloned().unwrap_or(json!("step")),
                "action": detail.get("function").cloned().unwrap_or(json!(action)),
            });
            for (k, v) in detail {
                if !matches!(k.as_str(), "step" | "function") {
                    report[k] = v.clone();
                }
            }
            // The chain keeps a summary of the artifacts (a count of the evidence objects, not
            // the objects): leave out what does not read as a report's, so the seed is one.
            for summarized in ["artifacts", "record"] {
                if serde_json::from_value::<ActionReport>(report.clone()).is_err()
                    && let Some(o) = report.as_object_mut()
                {
                    o.remove(summarized);
                }
            }
            out.push(report);
        }
    }
    out
}

impl Payloads {
    pub fn build() -> Payloads {
        let (outputs, engine) = pipeline();
        let mut p = Payloads::default();
        let reports = recorded_reports();
        for (name, output) in &outputs {
            for t in &output.incidents {
                let events = serde_json::to_value(&t.events).unwrap_or(Value::Null);
                p.enrich.push(Seed::json(
                    name.as_str(),
                    &json!({"incidentId": t.incident_id, "events": events, "historyCount": t.history_count}),
                ));
                let Some(engine) = &engine else { continue };
                let enrichment = engine.enrich(&t.events, 1);
                let detected = t.detected_at;
                let rfc = detected
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                p.score.push(Seed::json(
                    name.as_str(),
                    &json!({"incidentId": t.incident_id, "events": events,
                            "enrichment": serde_json::to_value(&enrichment).unwrap_or(Value::Null),
                            "detectedAt": rfc}),
                ));
                let Ok(decision) = engine.decide(&t.incident_id, &t.events, &enrichment, detected)
                else {
                    continue;
                };
                let triaged = RecordRequest::Triaged {
                    incident_id: t.incident_id.clone(),
                    events: t.events.clone(),
                    decision: decision.clone(),
                    detected_at: detected,
                    revision: 1,
                };
                if let Ok(v) = serde_json::to_value(&triaged) {
                    p.record.push(Seed::json(name.as_str(), &v));
                }
                let Some(input) = PlaybookInput::new(&t.events, decision, detected) else {
                    continue;
                };
                let Ok(input) = serde_json::to_value(&input) else {
                    continue;
                };
                let mut steps = Vec::new();
                objects_with(
                    &input,
                    &["function", "action", "requiresApproval"],
                    &mut steps,
                );
                for step in steps {
                    let step_id = step.get("id").cloned().unwrap_or(Value::Null);
                    let mode = step.get("mode").cloned().unwrap_or(json!("dry-run"));
                    p.containment.push(Seed::json(
                        name.as_str(),
                        &json!({"incidentId": input["incidentId"], "findingId": input["findingId"],
                                "stepId": step_id, "resource": input["resource"], "mode": mode}),
                    ));
                    p.evidence.push(Seed::json(
                        name.as_str(),
                        &json!({"incidentId": input["incidentId"], "findingId": input["findingId"],
                                "stepId": step_id, "resource": input["resource"], "mode": mode,
                                "account": input["account"], "region": input["region"],
                                "finding": input["finding"], "firstSeen": input["firstSeen"],
                                "lastSeen": input["lastSeen"]}),
                    ));
                    p.notify.push(Seed::json(
                        name.as_str(),
                        &json!({"incidentId": input["incidentId"], "stepId": step_id,
                                "mode": mode, "step": step}),
                    ));
                }
            }
        }
        let error = json!({"Error": "Retryable", "Cause": "{\"errorMessage\":\"throttled\"}"});
        let id = "inc-0123456789abcdef0123";
        for kind in [
            json!({"kind": "triage-failed", "incidentId": id, "error": error, "revision": 2}),
            json!({"kind": "step-failed", "incidentId": id, "stepId": "isolate-instance", "error": error}),
            json!({"kind": "step-not-approved", "incidentId": id, "stepId": "isolate-instance",
                   "error": {"Error": "Rejected", "Cause": null}}),
            json!({"kind": "playbook-finished", "incidentId": id, "playbookId": "immediate-isolation",
                   "executionName": format!("{id}-r1")}),
            json!({"kind": "playbook-stopped", "incidentId": id, "playbookId": "immediate-isolation",
                   "stepId": "isolate-instance", "executionName": id}),
            json!({"kind": "claim-slot", "incidentId": id, "revision": 0}),
        ] {
            p.record.push(Seed::json("record kinds", &kind));
        }
        for (i, report) in reports.iter().enumerate() {
            let step = report.get("stepId").cloned().unwrap_or(Value::Null);
            let incident = report.get("incidentId").cloned().unwrap_or(Value::Null);
            p.record.push(Seed::json(
                "tests/fixtures/audit",
                &json!({"kind": "step-result", "incidentId": incident, "stepId": step, "report": report}),
            ));
            p.approval.push(Seed::json(
                "tests/fixtures/audit",
                &json!({"taskToken": "AQCsecretTOKENvalue==", "incidentId": incident,
                        "stepId": step, "level": i % 3, "plan": report}),
            ));
        }
        p
    }
}

/// A Slack `block_actions` payload as Slack sends it for a click on an approval button.
pub fn slack_payloads() -> Vec<Value> {
    let mut out = Vec::new();
    for (action_id, incident, level) in [
        ("ir_approve", "inc-0123456789abcdef0123", 0),
        ("ir_reject", "inc-4f2a9c0d1e3b5a7c9e01", 2),
    ] {
        let value =
            ir_chat::slack::ApprovalRef::new(incident, "isolate-instance", "a1".repeat(32), level)
                .map(|r| r.encode())
                .unwrap_or_default();
        out.push(json!({
            "type": "block_actions",
            "user": { "id": "U0ANA1234", "username": "ana.responder", "name": "ana.responder", "team_id": "T0FAKE000" },
            "api_app_id": "A0FAKEAPP01",
            "token": "deprecatedVerificationToken",
            "container": { "type": "message", "message_ts": "1733000001.000100", "channel_id": "C0APPROVALS", "is_ephemeral": false },
            "trigger_id": "1733000000.1111111111.abcdef0123456789abcdef0123456789",
            "team": { "id": "T0FAKE000", "domain": "example-sec" },
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": { "id": "C0APPROVALS", "name": "incidents" },
            "message": {
                "type": "message", "subtype": "bot_message", "text": "approval needed",
                "ts": "1733000001.000100", "bot_id": "B0FAKEBOT01", "blocks": [],
            },
            "state": { "values": {} },
            "response_url": "https://hooks.slack.com/actions/T0FAKE000/1733000000000/fAkErEsPoNsEuRl",
            "actions": [{
                "action_id": action_id,
                "block_id": "ir_approval",
                "text": { "type": "plain_text", "text": "Approve", "emoji": true },
                "value": value,
                "style": "primary",
                "type": "button",
                "action_ts": "1733000001.000200",
            }],
        }));
    }
    out
}

/// The dead letters the ingest queue holds: each event sample as an EventBridge rule's dead
/// letter (the event as body, the rule's attributes) and as Lambda's `OnFailure` record.
pub fn dead_letters() -> Vec<(Value, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for (path, bytes) in files("events/") {
        let Ok(event) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        out.push((
            event.clone(),
            vec![
                (
                    "RULE_ARN".into(),
                    "arn:aws:events:us-east-1:111122223333:rule/ir-guardduty-findings".into(),
                ),
                (
                    "TARGET_ARN".into(),
                    "arn:aws:lambda:us-east-1:111122223333:function:ir-ingest".into(),
                ),
                ("ERROR_CODE".into(), "SDK_CLIENT_ERROR".into()),
                (
                    "ERROR_MESSAGE".into(),
                    "Unable to invoke Lambda function".into(),
                ),
                (
                    "EXHAUSTED_RETRY_CONDITION".into(),
                    "MaximumRetryAttempts".into(),
                ),
                ("RETRY_ATTEMPTS".into(), "185".into()),
            ],
        ));
        out.push((
            json!({
                "version": "1.0",
                "timestamp": "2026-11-20T10:07:31.123Z",
                "requestContext": {
                    "requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
                    "functionArn": "arn:aws:lambda:us-east-1:111122223333:function:ir-ingest:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": 3
                },
                "requestPayload": event,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": {"errorType": "InvalidInput", "errorMessage": format!("{path}: refused")}
            }),
            Vec::new(),
        ));
    }
    out
}
