//! The orchestration functions against the local cloud: ingest (store + triage start), the
//! recorder, the approval gate and the authenticated decision path, and the notifier — the
//! `ir-aws` code each function runs, called with real clients over HTTP to moto.
//!
//! One private emulator serves the file: its Step Functions engine sends Lambda invocations to a
//! small HTTP endpoint ([`ir_tests::FakeLambda`]), which records them (the approval gate's
//! `.waitForTaskToken` task hands its token there, as Lambda would hand it to
//! `ir-request-approval`) and also receives the SNS topic's HTTP deliveries (what a subscriber
//! really gets). Every test makes its own tables, bucket, topic and state machines under a
//! `unique_name`. Every log line of this test binary (DEBUG and above, every crate) is captured
//! and checked for task tokens.
//!
//! Nothing sleeps for a fixed time: waits poll an execution or the endpoint, with a deadline.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ObjectLockMode;
use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::types::ExecutionStatus;
use ir_aws::Clients;
use ir_aws::store::{
    ApprovalRequest as StoredRequest, ApprovalStatus, ApprovalStore, AuditLog, IncidentStore,
    TableNames, TaskToken, create_tables,
};
use ir_core::action::{
    ActionReport, Change, ChangeStatus, ContainmentRecord, EniGroups, InstanceAttributes,
    IsolationRecord, Outcome,
};
use ir_core::audit::AuditRecord;
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::correlate::Correlation;
use ir_core::incident::Status;
use ir_core::orchestration::{ApprovalRequest, NotifyRequest, RecordRequest, StateError};
use ir_core::playbook::PlannedStep;
use ir_core::{Decision, Engine, IngestOutput, TriageInput};
use ir_incident::approval::{
    ApproverPolicy, DecideError, DecisionRequest, GateSettings, Verdict, decide, request,
};
use ir_incident::intake::Intake;
use ir_incident::recorder::{RecordOutput, Recorded, Recorder, RecorderSettings, TRIAGE_STARTED};
use ir_tests::{
    Fallback, LambdaCloud, TestResult, clients, fixtures, serialized_clients, unique_name,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::captured_log::capture;

const DEADLINE: Duration = Duration::from_secs(30);
const STATES_ROLE: &str = "arn:aws:iam::123456789012:role/ir-test-states";
const SAMPLE: &str = "events/guardduty-cryptocurrency-bitcointool-dns.json";
/// The identity the gate runs as (its role's Lambda session).
const GATE: &str = "arn:aws:sts::123456789012:assumed-role/ir-request-approval/ir-request-approval";
const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/alice@example.com";
const BOB: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/bob@example.com";
const EVE: &str = "arn:aws:sts::123456789012:assumed-role/Developer/eve@example.com";

// ---------------------------------------------------------------------------------------------
// The log of this test binary, captured (task tokens must never be in it).

fn logs() -> String {
    String::from_utf8_lossy(&capture().0.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// One HTTP endpoint: the Lambda Invoke API for the Step Functions engine, and SNS deliveries
// (answered `{}`, every request recorded).

fn env() -> &'static LambdaCloud {
    static ENV: OnceLock<LambdaCloud> = OnceLock::new();
    ENV.get_or_init(|| LambdaCloud::start(Fallback::Empty))
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

struct Fixture {
    clients: Clients,
    names: TableNames,
    bucket: String,
    topic: String,
    /// Where the topic delivers (a path of the endpoint).
    inbox: String,
}

async fn fixture() -> Fixture {
    capture();
    let env = env();
    let clients = clients(&env.cloud);
    let names = TableNames::with_prefix(&unique_name("ir"));
    create_tables(&clients, &names).await.unwrap();
    let bucket = fixtures::locked_bucket(&env.cloud.s3_client(), "ir-evidence").await;
    let topic = clients
        .sns()
        .create_topic()
        .name(unique_name("ir-notify"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let inbox = format!("/sns/{}", unique_name("inbox"));
    clients
        .sns()
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(format!("{}{inbox}", env.lambda.url()))
        .send()
        .await
        .unwrap();
    Fixture {
        clients,
        names,
        bucket,
        topic,
        inbox,
    }
}

fn evidence() -> EvidenceConfig {
    EvidenceConfig {
        retention_days: 1,
        ..EvidenceConfig::default()
    }
}

impl Fixture {
    fn recorder(&self) -> Recorder {
        Recorder::new(
            self.clients.clone(),
            self.names.clone(),
            RecorderSettings {
                evidence_bucket: self.bucket.clone(),
                evidence: evidence(),
            },
        )
    }

    fn incidents(&self) -> IncidentStore {
        IncidentStore::new(self.clients.clone(), self.names.clone())
    }

    fn audit(&self) -> AuditLog {
        AuditLog::new(self.clients.clone(), self.names.clone())
    }

    async fn chain(&self, id: &str) -> Vec<AuditRecord> {
        self.audit().chain(id).await.unwrap()
    }

    fn mark(&self) -> usize {
        self.clients.calls().count()
    }

    fn calls(&self, mark: usize) -> Vec<String> {
        self.clients.calls().since(mark)
    }

    fn gate(&self) -> GateSettings {
        GateSettings {
            requester: GATE.to_owned(),
            topic_arn: self.topic.clone(),
            decide_url: Some("https://abc123.lambda-url.us-east-1.on.aws/".to_owned()),
            two_person_rule: true,
        }
    }
}

fn policy() -> ApproverPolicy {
    ApproverPolicy {
        approvers: vec![
            "arn:aws:iam::123456789012:role/responders/SecurityLead".to_owned(),
            // Listed, but it is the gate's own role: the two-person rule still refuses it.
            "arn:aws:iam::123456789012:role/ir-request-approval".to_owned(),
        ],
        two_person_rule: true,
    }
}

fn sample_text(severity: Option<&str>) -> String {
    let text = std::fs::read_to_string(ir_tests::repo_root().join(SAMPLE)).unwrap();
    match severity {
        Some(s) => {
            let changed = text.replacen("\"severity\": 8,", &format!("\"severity\": {s},"), 1);
            assert_ne!(changed, text, "fixture text not found");
            changed
        }
        None => text,
    }
}

/// The sample's envelope, normalized and grouped as ir-ingest does.
fn batch(text: &str) -> IngestOutput {
    let normalized = ir_core::normalize(text.as_bytes()).unwrap();
    IngestOutput::from_normalized(normalized, OffsetDateTime::now_utc())
}

/// The sample as one incident, its triage decision (five earlier incidents on the resource:
/// critical, immediate-isolation, with gates), in `mode`.
fn triaged(mode: Mode) -> (TriageInput, Decision) {
    let input = batch(&sample_text(None)).incidents.remove(0);
    let engine = Engine::embedded().unwrap();
    let enrichment = engine.enrich(&input.events, 5);
    let mut decision = engine
        .decide(
            &input.incident_id,
            &input.events,
            &enrichment,
            input.detected_at,
        )
        .unwrap();
    assert_eq!(decision.playbook.id, "immediate-isolation");
    decision.playbook.mode = mode;
    for s in &mut decision.playbook.steps {
        s.mode = mode;
    }
    (input, decision)
}

/// The incident stored by ingest (its triage a `Pass` state machine) and triaged by the recorder.
async fn stored_and_triaged(f: &Fixture, mode: Mode) -> (TriageInput, Decision) {
    let (input, decision) = triaged(mode);
    let machine = create_machine(
        f.clients.sfn(),
        &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let ingested = Intake::new(f.clients.clone(), f.names.clone(), &machine)
        .ingest(batch(&sample_text(None)))
        .await
        .unwrap();
    assert_eq!(ingested.output.incidents[0].incident_id, input.incident_id);
    let out = f
        .recorder()
        .record(RecordRequest::Triaged {
            incident_id: input.incident_id.clone(),
            events: input.events.clone(),
            decision: decision.clone(),
            detected_at: input.detected_at,
        })
        .await
        .unwrap();
    assert!(matches!(out, RecordOutput::Playbook(_)));
    (input, decision)
}

/// A report of isolate-instance, as the action returns it.
fn isolation_report(id: &str, mode: Mode) -> ActionReport {
    let (status, outcome) = match mode {
        Mode::Enforce => (ChangeStatus::Applied, Outcome::Applied),
        Mode::DryRun => (ChangeStatus::Planned, Outcome::Planned),
    };
    ActionReport {
        incident_id: id.to_owned(),
        step_id: "isolate-instance".to_owned(),
        action: "ir-isolate-instance".to_owned(),
        mode,
        outcome,
        changes: vec![
            Change {
                target: "eni-0abc".to_owned(),
                attribute: "security-groups".to_owned(),
                before: json!(["sg-0app"]),
                after: json!(["sg-0isolation"]),
                status,
            },
            Change {
                target: "i-0a1b2c3d4e5f60001".to_owned(),
                attribute: "disable-api-termination".to_owned(),
                before: json!(false),
                after: json!(true),
                status,
            },
        ],
        record: (mode == Mode::Enforce).then(|| {
            ContainmentRecord::Isolation(IsolationRecord {
                instance_id: "i-0a1b2c3d4e5f60001".to_owned(),
                vpc_id: "vpc-0abc".to_owned(),
                conversion_group_id: "sg-0conversion".to_owned(),
                isolation_group_id: "sg-0isolation".to_owned(),
                interfaces: vec![EniGroups {
                    network_interface_id: "eni-0abc".to_owned(),
                    original_group_ids: vec!["sg-0app".to_owned()],
                }],
                original_attributes: InstanceAttributes {
                    disable_api_termination: false,
                    disable_api_stop: false,
                    shutdown_behavior: "stop".to_owned(),
                    volumes: vec![],
                },
                tags_added: vec!["ir:incident".to_owned()],
            })
        }),
        artifacts: None,
        notes: vec![],
        aws_calls: 17,
    }
}

fn recorded(out: RecordOutput) -> Recorded {
    match out {
        RecordOutput::Recorded(r) => r,
        RecordOutput::Playbook(p) => panic!(
            "expected a record, got a playbook input for {}",
            p.incident_id
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Step Functions helpers.

async fn create_machine(sfn: &Sfn, definition: &Value) -> String {
    sfn.create_state_machine()
        .name(unique_name("ir-sm"))
        .definition(definition.to_string())
        .role_arn(STATES_ROLE)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}

async fn status(sfn: &Sfn, execution: &str) -> (ExecutionStatus, Value) {
    let d = sfn
        .describe_execution()
        .execution_arn(execution)
        .send()
        .await
        .unwrap();
    let output = d
        .output()
        .map(|o| serde_json::from_str(o).unwrap())
        .unwrap_or(Value::Null);
    (d.status().clone(), output)
}

async fn finished(sfn: &Sfn, execution: &str) -> (ExecutionStatus, Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (s, out) = status(sfn, execution).await;
        if s != ExecutionStatus::Running {
            return (s, out);
        }
        assert!(
            Instant::now() < deadline,
            "{execution} still RUNNING after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A playbook's approval gate alone: the gate's `.waitForTaskToken` task as the rendered playbooks
/// have it (payload, a timeout, `Rejected` caught), then `Approved` or `NotApproved`.
fn gate_machine(function: &str) -> Value {
    json!({
        "StartAt": "Gate",
        "States": {
            "Gate": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": function,
                    "Payload": {
                        "escalation.$": "$.escalation",
                        "incidentId.$": "$.incidentId",
                        "level": 0,
                        "step.$": "$.step",
                        "stepId.$": "$.step.id",
                        "taskToken.$": "$$.Task.Token"
                    }
                },
                "ResultPath": "$.gate",
                "TimeoutSeconds": 300,
                "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "NotApproved"}],
                "Next": "Approved"
            },
            "Approved": {"Type": "Pass", "End": true},
            "NotApproved": {"Type": "Pass", "End": true}
        }
    })
}

/// Starts a gate for `step` and returns (execution, the request the gate function received).
async fn start_gate(
    sfn: &Sfn,
    decision: &Decision,
    step_key: &str,
) -> (String, ApprovalRequest, String) {
    let function = unique_name("ir-request-approval");
    let machine = create_machine(sfn, &gate_machine(&function)).await;
    let input = json!({
        "incidentId": decision.incident_id,
        "step": decision.plan()[step_key],
        "escalation": decision.escalation,
    });
    let execution = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name(unique_name("run"))
        .input(input.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_owned();
    let calls = env().lambda.wait_calls(&function, 1).await;
    let token = calls[0]["taskToken"].as_str().unwrap().to_owned();
    assert!(token.len() > 10, "{token}");
    let req: ApprovalRequest = serde_json::from_value(calls[0].clone()).unwrap();
    (execution, req, token)
}

fn decision_of(id: &str, step: &str, verdict: Verdict, reason: Option<&str>) -> DecisionRequest {
    DecisionRequest {
        incident_id: id.to_owned(),
        step_id: step.to_owned(),
        decision: verdict,
        reason: reason.map(str::to_owned),
    }
}

fn assert_no_token(token: &str, what: &str, text: &str) {
    assert!(!text.contains(token), "the task token leaked into {what}");
}

/// Everything the suite wrote about an incident, as text: the audit chain and the approvals.
async fn written(f: &Fixture, id: &str) -> String {
    let chain = f.chain(id).await;
    let approvals = ApprovalStore::new(f.clients.clone(), f.names.clone())
        .pending(id)
        .await
        .unwrap();
    let plans: Vec<&Value> = approvals.iter().map(|a| &a.plan).collect();
    format!(
        "{}\n{}",
        serde_json::to_string(&chain).unwrap(),
        json!(plans)
    )
}

/// The notifications moto kept for a topic: (message id, message, subject, attributes).
async fn sent(topic: &str) -> Vec<(String, String, String, Value)> {
    let addr = env()
        .cloud
        .endpoint_url()
        .trim_start_matches("http://")
        .to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request =
        format!("GET /moto-api/data.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let data: Value = serde_json::from_str(body).unwrap();
    let topics = data["sns"]["Topic"].as_array().unwrap();
    let t = topics.iter().find(|t| t["arn"] == topic).unwrap();
    t["sent_notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n[0].as_str().unwrap().to_owned(),
                n[1].as_str().unwrap().to_owned(),
                n[2].as_str().unwrap_or_default().to_owned(),
                n[3].clone(),
            )
        })
        .collect()
}

fn attribute(attrs: &Value, name: &str) -> String {
    attrs[name]["Value"].as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Ingest.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_deliveries_open_one_incident_and_start_one_triage() -> TestResult {
    let mut f = fixture().await;
    // One request at a time (see `ir_tests::relay`: moto's concurrent `TransactWriteItems` and
    // `StartExecution`s are not atomic); concurrent ingests still interleave at every request.
    f.clients = serialized_clients(&env().cloud).await;
    let sfn = &f.clients.sfn();
    let machine = create_machine(
        sfn,
        &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let intake = Intake::new(f.clients.clone(), f.names.clone(), &machine);
    let one = batch(&sample_text(None));
    let id = one.incidents[0].incident_id.clone();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (intake, one) = (intake.clone(), one.clone());
        tasks.spawn(async move { intake.ingest(one).await });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r??);
    }
    let correlations: Vec<&Correlation> = results
        .iter()
        .flat_map(|r| {
            r.output
                .incidents
                .iter()
                .flat_map(|i| i.correlations.iter())
        })
        .collect();
    assert_eq!(correlations.len(), 20);
    assert!(correlations.iter().all(|c| c.incident_id() == id));
    assert_eq!(
        correlations
            .iter()
            .filter(|c| matches!(c, Correlation::New { .. }))
            .count(),
        1
    );
    // Exactly one delivery started the execution; every other one that tried found it.
    let starts: Vec<_> = results.iter().flat_map(|r| r.triage.iter()).collect();
    assert_eq!(starts.iter().filter(|s| s.started).count(), 1, "{starts:?}");
    let arn = &starts.iter().find(|s| s.started).unwrap().execution_arn;
    assert!(starts.iter().all(|s| &s.execution_arn == arn));

    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await?;
    let names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    assert_eq!(names, [id.as_str()]);
    assert_eq!(executions.executions()[0].execution_arn(), arn);
    let (s, _) = finished(sfn, arn).await;
    assert_eq!(s, ExecutionStatus::Succeeded);

    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.occurrences, 20);
    assert_eq!(incident.finding_count, 1);
    assert_eq!(incident.summary.status, Status::Triage);

    let chain = f.chain(&id).await;
    let count = |action: &str| chain.iter().filter(|r| r.action == action).count();
    assert_eq!(count("opened"), 1);
    assert_eq!(count("repeated"), 19);
    // Recorded (racing deliveries may each record it, always the same execution).
    assert!(count(TRIAGE_STARTED) >= 1);
    assert!(
        chain
            .iter()
            .filter(|r| r.action == TRIAGE_STARTED)
            .all(|r| r.detail["executionArn"] == arn.as_str())
    );
    let opened = chain.iter().find(|r| r.action == "opened").unwrap();
    assert_eq!(
        opened.detail["findingId"],
        "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1"
    );
    assert_eq!(opened.detail["severity"], "high");
    assert_eq!(opened.actor, "ir-ingest");
    Ok(())
}

#[tokio::test]
async fn a_repeat_starts_nothing_unless_the_triage_start_was_lost() -> TestResult {
    let f = fixture().await;
    let sfn = &f.clients.sfn();
    let machine = create_machine(
        sfn,
        &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let intake = Intake::new(f.clients.clone(), f.names.clone(), &machine);

    // First delivery: opened, triage started and recorded.
    let mark = f.mark();
    let first = intake.ingest(batch(&sample_text(None))).await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:TransactWriteItems", // open: finding key, open key, incident
            "DynamoDB:Query",              // history count
            "DynamoDB:Query",              // audit head
            "DynamoDB:PutItem",            // audit `opened`
            "DynamoDB:Query",              // the chain: triage recorded?
            "SFN:StartExecution",
            "DynamoDB:Query",   // the chain again, right before recording
            "DynamoDB:Query",   // audit head
            "DynamoDB:PutItem"  // audit `triage-started`
        ]
    );
    let id = first.output.incidents[0].incident_id.clone();
    assert_eq!(first.triage.len(), 1);
    assert!(first.triage[0].started);
    let input = &first.output.incidents[0];
    assert_eq!(input.events.len(), 1);
    assert_eq!(input.history_count, 0);

    // GuardDuty publishes it again: a repeat; triage is recorded, so nothing starts.
    let mark = f.mark();
    let again = intake
        .ingest(batch(&sample_text(None).replacen(
            "\"count\": 1",
            "\"count\": 7",
            1,
        )))
        .await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:TransactWriteItems", // open: refused, the finding is known
            "DynamoDB:TransactWriteItems", // repeat: finding key and incident
            "DynamoDB:Query",              // history count
            "DynamoDB:Query",              // audit head
            "DynamoDB:PutItem",            // audit `repeated`
            "DynamoDB:Query",              // the chain: triage recorded, nothing to start
        ]
    );
    assert!(again.triage.is_empty());
    assert!(matches!(
        again.output.incidents[0].correlations[0],
        Correlation::Repeat { .. }
    ));
    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await?;
    assert_eq!(executions.executions().len(), 1);

    // Another finding (on another instance) whose first delivery crashed between the write and
    // the start: the store has it in triage, nothing started. Its redelivery starts the triage
    // (by name) and records it.
    let lost = sample_text(None)
        .replace(
            "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1",
            "0000f4f0e3c1a2b3c4d5e6f7a8b9ffff",
        )
        .replace("i-0a1b2c3d4e5f60001", "i-0ffffffffffff0002");
    let lost_batch = batch(&lost);
    let lost_event2 = lost_batch.incidents[0].events[0].clone();
    assert_ne!(
        lost_event2.resource_key(),
        first.output.incidents[0].events[0].resource_key()
    );
    let crashed = f
        .incidents()
        .ingest(&lost_event2, lost_batch.incidents[0].detected_at)
        .await?;
    let lost_id = crashed.correlation.incident_id().to_owned();
    assert_eq!(crashed.incident.status, Status::Triage);
    let redelivered = intake.ingest(lost_batch).await?;
    assert_eq!(redelivered.triage.len(), 1, "{:?}", redelivered.triage);
    assert_eq!(redelivered.triage[0].incident_id, lost_id);
    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await?;
    let mut names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    names.sort_unstable();
    let mut want = vec![id.as_str(), lost_id.as_str()];
    want.sort_unstable();
    assert_eq!(names, want);
    let chain = f.chain(&lost_id).await;
    assert_eq!(
        chain.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["repeated", TRIAGE_STARTED]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The recorder.

#[tokio::test]
async fn the_recorder_follows_an_enforced_playbook_to_containment_and_anchors_it() -> TestResult {
    let f = fixture().await;
    let (input, decision) = triaged(Mode::Enforce);
    let id = input.incident_id.clone();
    f.incidents()
        .ingest(&input.events[0], input.detected_at)
        .await?;
    let recorder = f.recorder();
    let triage = RecordRequest::Triaged {
        incident_id: id.clone(),
        events: input.events.clone(),
        decision: decision.clone(),
        detected_at: input.detected_at,
    };

    // triaged → the playbook input; the incident in containment; the decision audited.
    let mark = f.mark();
    let RecordOutput::Playbook(playbook) = recorder.record(triage.clone()).await? else {
        panic!("triaged answers with the playbook input");
    };
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",    // record the decision: read
            "DynamoDB:UpdateItem", // ... write
            "DynamoDB:GetItem",    // triage → containment: read
            "DynamoDB:UpdateItem", // ... write
            "DynamoDB:Query",      // the chain: recorded already?
            "DynamoDB:Query",      // audit head
            "DynamoDB:PutItem",    // audit `triaged`
        ]
    );
    assert_eq!(playbook.incident_id, id);
    assert_eq!(playbook.mode, Mode::Enforce);
    assert_eq!(playbook.decision, decision);
    assert_eq!(playbook.finding_id, input.events[0].finding_id);
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Containment);
    assert!(incident.summary.timeline.triaged_at.is_some());
    assert_eq!(
        incident.summary.playbook.as_deref(),
        Some("immediate-isolation")
    );
    assert_eq!(incident.decision.as_ref(), Some(&decision));
    let chain = f.chain(&id).await;
    let t = chain.last().unwrap();
    assert_eq!(
        (t.action.as_str(), t.actor.as_str()),
        ("triaged", "ir-record")
    );
    assert_eq!(t.detail["severity"], "critical");
    assert_eq!(t.detail["playbook"], "immediate-isolation");
    assert_eq!(t.detail["mode"], "enforce");
    assert_eq!(t.detail["score"]["score"], json!(decision.score.score));
    assert_eq!(
        t.detail["gates"],
        json!(
            decision
                .approval_gates()
                .map(|s| s.id.clone())
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(
        t.detail["steps"].as_array().unwrap().len(),
        decision.playbook.steps.len()
    );
    assert_eq!(t.detail["sla"]["target"], "immediate");

    // A retried triaged: the same answer, nothing written.
    let mark = f.mark();
    let RecordOutput::Playbook(again) = recorder.record(triage).await? else {
        panic!()
    };
    assert_eq!(f.calls(mark), ["DynamoDB:GetItem", "DynamoDB:Query"]);
    assert_eq!(again.decision, decision);
    assert_eq!(f.chain(&id).await.len(), chain.len());

    // The isolation step's result: its record kept for release, every change audited.
    let report = isolation_report(&id, Mode::Enforce);
    let step = RecordRequest::StepResult {
        incident_id: id.clone(),
        step_id: "isolate-instance".into(),
        report: report.clone(),
    };
    let mark = f.mark();
    let r = recorded(recorder.record(step.clone()).await?);
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",
            "DynamoDB:UpdateItem", // the containment record
            "DynamoDB:Query",
            "DynamoDB:Query",
            "DynamoDB:PutItem" // audit `action:ir-isolate-instance`
        ]
    );
    assert!(r.appended);
    assert_eq!(r.action, "action:ir-isolate-instance");
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.records, [report.record.clone().unwrap()]);
    let chain = f.chain(&id).await;
    let a = chain.last().unwrap();
    assert_eq!(a.detail["step"], "isolate-instance");
    assert_eq!(a.detail["outcome"], "applied");
    assert_eq!(a.detail["mode"], "enforce");
    assert_eq!(a.detail["changes"][0]["before"], json!(["sg-0app"]));
    assert_eq!(a.detail["changes"][0]["after"], json!(["sg-0isolation"]));
    assert_eq!(
        a.detail["changes"][1]["attribute"],
        "disable-api-termination"
    );

    // Step Functions retries the recorder (its answer was lost): nothing twice.
    let mark = f.mark();
    let retried = recorded(recorder.record(step).await?);
    assert!(!retried.appended);
    assert_eq!((retried.seq, &retried.hash), (r.seq, &r.hash));
    assert_eq!(
        f.calls(mark),
        ["DynamoDB:GetItem", "DynamoDB:Query"],
        "the record is already there: no write"
    );
    assert_eq!(f.chain(&id).await.len(), chain.len());
    assert_eq!(f.incidents().get(&id).await?.unwrap().records.len(), 1);

    // Another gate was rejected: the incident says so, the chain too.
    let refused = recorded(
        recorder
            .record(RecordRequest::StepNotApproved {
                incident_id: id.clone(),
                step_id: "revoke-credentials".into(),
                error: StateError {
                    error: "Rejected".into(),
                    cause: "the role is shared with the batch fleet".into(),
                },
            })
            .await?,
    );
    assert_eq!(refused.action, "step-not-approved");
    let incident = f.incidents().get(&id).await?.unwrap();
    let last_error = incident.last_error.unwrap();
    assert_eq!(last_error.step, "revoke-credentials");
    assert_eq!(
        last_error.message,
        "Rejected: the role is shared with the batch fleet"
    );

    // The playbook ends: contained (a destructive step applied in enforce), the head anchored.
    let finish = RecordRequest::PlaybookFinished {
        incident_id: id.clone(),
        playbook_id: "immediate-isolation".into(),
    };
    let mark = f.mark();
    let done = recorded(recorder.record(finish.clone()).await?);
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",    // the incident (decision)
            "DynamoDB:Query",      // the chain (steps run)
            "DynamoDB:GetItem",    // containment → contained: read
            "DynamoDB:UpdateItem", // ... write
            "DynamoDB:Query",      // audit head
            "DynamoDB:PutItem",    // audit `playbook-finished`
            "DynamoDB:Query",      // anchor: the head
            "S3:PutObject",        // the locked anchor
            "S3:HeadObject",       // read back: locked
        ]
    );
    assert_eq!(done.status, Status::Contained);
    let anchor = done.anchor.clone().unwrap();
    assert_eq!((anchor.seq, &anchor.hash), (done.seq, &done.hash));
    assert_eq!(anchor.reason, "left-containment");
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Contained);
    let contained_at = incident.summary.timeline.contained_at.unwrap();
    assert!(incident.summary.timeline.mttc().is_some());
    let chain = f.chain(&id).await;
    let p = chain.last().unwrap();
    assert_eq!(p.action, "playbook-finished");
    assert_eq!(p.detail["contained"], true);
    assert_eq!(p.detail["destructiveApplied"], json!(["isolate-instance"]));
    assert_eq!(p.detail["notApplied"], json!(["revoke-credentials"]));
    assert_eq!(
        p.detail["mttcSeconds"],
        json!((contained_at - incident.summary.timeline.detected_at).whole_seconds())
    );
    // The anchor is a locked object version in the evidence bucket.
    let key = format!(
        "incidents/{id}/audit/anchor-{}-left-containment.json",
        anchor.seq
    );
    let head = f
        .clients
        .s3()
        .head_object()
        .bucket(&f.bucket)
        .key(&key)
        .send()
        .await?;
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let verified = f.audit().verify(&id, &f.bucket).await?;
    assert_eq!(verified.records, chain.len());
    assert_eq!(verified.head, done.hash);
    assert_eq!(verified.anchors_checked, 1);

    // Retried: no second record, the same anchor (found, not written again).
    let mark = f.mark();
    let again = recorded(recorder.record(finish).await?);
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",
            "DynamoDB:Query",
            "DynamoDB:Query",
            "S3:PutObject", // If-None-Match: * refuses it
            "S3:GetObject"  // the anchor already there: the same head
        ]
    );
    assert!(!again.appended);
    assert_eq!(again.anchor, Some(anchor));
    assert_eq!(f.chain(&id).await.len(), chain.len());
    assert_eq!(f.audit().verify(&id, &f.bucket).await?.anchors_checked, 1);
    Ok(())
}

#[tokio::test]
async fn a_dry_run_playbook_contains_nothing_and_says_so() -> TestResult {
    let f = fixture().await;
    let (input, _) = stored_and_triaged(&f, Mode::DryRun).await;
    let id = input.incident_id;
    let recorder = f.recorder();
    let planned = recorded(
        recorder
            .record(RecordRequest::StepResult {
                incident_id: id.clone(),
                step_id: "isolate-instance".into(),
                report: isolation_report(&id, Mode::DryRun),
            })
            .await?,
    );
    assert_eq!(planned.status, Status::Containment);
    assert!(f.incidents().get(&id).await?.unwrap().records.is_empty());
    let done = recorded(
        recorder
            .record(RecordRequest::PlaybookFinished {
                incident_id: id.clone(),
                playbook_id: "immediate-isolation".into(),
            })
            .await?,
    );
    assert_eq!(done.status, Status::Containment);
    assert!(done.anchor.is_none());
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Containment);
    assert!(incident.summary.timeline.contained_at.is_none());
    let last = f.chain(&id).await.pop().unwrap();
    assert_eq!(last.detail["contained"], false);
    assert!(
        last.detail["why"].as_str().unwrap().starts_with("dry-run"),
        "{}",
        last.detail
    );
    assert_eq!(last.detail["plannedOnly"], json!(["isolate-instance"]));
    let anchors = f
        .clients
        .s3()
        .list_object_versions()
        .bucket(&f.bucket)
        .prefix(format!("incidents/{id}/"))
        .send()
        .await?;
    assert!(anchors.versions().is_empty(), "nothing anchored in dry-run");
    // A playbook the incident was not routed to is refused.
    let wrong = recorder
        .record(RecordRequest::PlaybookFinished {
            incident_id: id.clone(),
            playbook_id: "queue-for-review".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&wrong),
        ir_core::ErrorName::InvalidInput
    );
    Ok(())
}

#[tokio::test]
async fn failures_are_shown_on_the_incident_and_recorded_once() -> TestResult {
    let f = fixture().await;
    let (input, _) = triaged(Mode::DryRun);
    let id = input.incident_id.clone();
    f.incidents()
        .ingest(&input.events[0], input.detected_at)
        .await?;
    let recorder = f.recorder();
    let failed = RecordRequest::TriageFailed {
        incident_id: id.clone(),
        error: StateError {
            error: "Lambda.Unknown".into(),
            cause: "x".repeat(10_000),
        },
    };
    let first = recorded(recorder.record(failed.clone()).await?);
    assert_eq!(first.action, "triage-failed");
    assert_eq!(first.status, Status::Triage);
    let again = recorded(recorder.record(failed).await?);
    assert!(!again.appended);
    let incident = f.incidents().get(&id).await?.unwrap();
    let e = incident.last_error.unwrap();
    assert_eq!(e.step, "triage");
    assert!(e.message.starts_with("Lambda.Unknown: xxx"));
    assert!(e.message.contains("more bytes cut"), "a 10 kB cause is cut");
    let chain = f.chain(&id).await;
    assert_eq!(
        chain.iter().filter(|r| r.action == "triage-failed").count(),
        1
    );

    // A report for another step, and a request for an incident that does not exist.
    let mismatch = recorder
        .record(RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "snapshot-volumes".into(),
            report: isolation_report(&id, Mode::DryRun),
        })
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&mismatch),
        ir_core::ErrorName::InvalidInput
    );
    let other = ir_tests::incident_id();
    let missing = recorder
        .record(RecordRequest::StepFailed {
            incident_id: other,
            step_id: "isolate-instance".into(),
            error: StateError {
                error: "Retryable".into(),
                cause: String::new(),
            },
        })
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&missing),
        ir_core::ErrorName::NotFound
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The approval gate and the decision path.

#[tokio::test]
async fn a_gate_waits_until_an_approver_decides_and_a_second_decision_does_nothing() -> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let sfn = &f.clients.sfn();
    let (execution, req, token) = start_gate(sfn, &decision, "isolate_instance").await;
    assert_eq!(req.step_id, "isolate-instance");
    assert_eq!(req.incident_id, id);

    // ir-request-approval's work: stored, audited, notified.
    let now = OffsetDateTime::now_utc();
    let mark = f.mark();
    let requested = request(&f.clients, &f.names, &f.gate(), &req, now).await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:PutItem", // the request, with the token
            "DynamoDB:GetItem", // the incident
            "DynamoDB:Query",   // its chain
            "DynamoDB:Query",   // audit head
            "DynamoDB:PutItem", // audit `approval-requested`
            "SNS:Publish",
        ]
    );
    assert_eq!(requested.expires_at, now + time::Duration::seconds(300));
    let stored = ApprovalStore::new(f.clients.clone(), f.names.clone())
        .get(&id, "isolate-instance")
        .await?
        .unwrap();
    assert_eq!(stored.task_token.expose(), token);
    assert_eq!(stored.requester, GATE);
    assert_eq!(stored.status, ApprovalStatus::Pending);
    let asked = f.chain(&id).await.pop().unwrap();
    assert_eq!(asked.action, "approval-requested");
    assert_eq!(asked.detail["step"], "isolate-instance");
    assert_eq!(asked.detail["level"], 0);
    assert_eq!(asked.detail["role"], "security_engineer");
    assert_eq!(asked.detail["timeoutSeconds"], 300);
    assert_eq!(asked.detail["plan"]["function"], "ir-isolate-instance");

    // The gate function retried by Step Functions: the request stored again (still pending),
    // the approvers told again, the audit record not repeated.
    let chain_len = f.chain(&id).await.len();
    let mark = f.mark();
    let again = request(&f.clients, &f.names, &f.gate(), &req, now).await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:PutItem",
            "DynamoDB:GetItem",
            "DynamoDB:Query",
            "SNS:Publish"
        ]
    );
    assert_ne!(again.message_id, requested.message_id);
    assert_eq!(f.chain(&id).await.len(), chain_len);

    // What the approvers receive: the incident update and how to decide, no token.
    let delivered = env().lambda.wait_posted(&f.inbox, 2).await;
    let note = &delivered[0];
    assert_eq!(note["MessageId"], requested.message_id.as_str());
    let subject = note["Subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!(
            "[CRITICAL] {id}: approval needed for isolate-instance"
        )),
        "{subject}"
    );
    let body = note["Message"].as_str().unwrap();
    for line in [
        format!("## Incident Update: {id}\n"),
        "**Status:** Containment\n".to_owned(),
        "**Severity:** Critical\n".to_owned(),
        "**Time detected:** ".to_owned(),
        "**Time contained:** not contained yet\n".to_owned(),
        "### Summary\n".to_owned(),
        "### Actions Planned\n".to_owned(),
        "isolate-instance: cloud:security_group_deny_all on ec2-instance i-0a1b2c3d4e5f60001 (enforce, destructive, needs approval)".to_owned(),
        format!("`ir approve {id} --step isolate-instance [--reason \"...\"]`"),
        format!("`ir reject {id} --step isolate-instance --reason \"...\"`"),
        "https://abc123.lambda-url.us-east-1.on.aws/".to_owned(),
        "the identity that requested the approval cannot approve it".to_owned(),
    ] {
        assert!(body.contains(&line), "missing {line:?} in:\n{body}");
    }
    assert_no_token(&token, "the notification", &note.to_string());
    let kept = sent(&f.topic).await;
    let (_, message, _, attrs) = kept.iter().find(|n| n.0 == requested.message_id).unwrap();
    assert_eq!(message, body);
    assert_eq!(attribute(attrs, "kind"), "approval-request");
    assert_eq!(attribute(attrs, "step"), "isolate-instance");
    assert_eq!(attribute(attrs, "incidentId"), id);
    assert_no_token(&token, "the message attributes", &attrs.to_string());

    let policy = policy();
    let approve =
        |reason: Option<&str>| decision_of(&id, "isolate-instance", Verdict::Approve, reason);

    // Not an approver: refused before any call; the execution still waits.
    let mark = f.mark();
    let e = decide(&f.clients, &f.names, &policy, &approve(None), EVE, now)
        .await
        .unwrap_err();
    assert!(matches!(e, DecideError::NotAnApprover { .. }), "{e}");
    assert_eq!(e.http_status(), 403);
    assert!(f.calls(mark).is_empty());

    // The gate's own role, listed as an approver, in another session: the two-person rule.
    let me_too = "arn:aws:sts::123456789012:assumed-role/ir-request-approval/someone-else";
    let e = decide(&f.clients, &f.names, &policy, &approve(None), me_too, now)
        .await
        .unwrap_err();
    assert!(matches!(e, DecideError::SelfApproval { .. }), "{e}");
    assert_eq!(e.http_status(), 403);
    assert_eq!(f.chain(&id).await.pop().unwrap().action, "approval-refused");
    assert_eq!(status(sfn, &execution).await.0, ExecutionStatus::Running);

    // An approver: decided once, the execution resumes with who approved.
    let mark = f.mark();
    let resumed = decide(
        &f.clients,
        &f.names,
        &policy,
        &approve(Some("confirmed miner")),
        ALICE,
        now,
    )
    .await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",    // the request (requester, for the two-person rule)
            "DynamoDB:UpdateItem", // the decision, once
            "SFN:SendTaskSuccess",
            "DynamoDB:Query",   // audit head
            "DynamoDB:PutItem", // audit `approved`
        ]
    );
    assert_eq!(resumed.decided_by, ALICE);
    assert_eq!(resumed.level, 0);
    let (s, out) = finished(sfn, &execution).await;
    assert_eq!(s, ExecutionStatus::Succeeded);
    assert_eq!(out["gate"]["approvedBy"], ALICE);
    assert_eq!(out["gate"]["reason"], "confirmed miner");
    let approved = f.chain(&id).await.pop().unwrap();
    assert_eq!(
        (approved.action.as_str(), approved.actor.as_str()),
        ("approved", ALICE)
    );
    assert_eq!(approved.detail["reason"], "confirmed miner");
    assert_eq!(
        approved.detail["principal"],
        "arn:aws:iam::123456789012:role/SecurityLead"
    );

    // A second decision (another approver, the other way): a no-op saying who decided.
    let mark = f.mark();
    let e = decide(
        &f.clients,
        &f.names,
        &policy,
        &decision_of(&id, "isolate-instance", Verdict::Reject, Some("too late")),
        BOB,
        now,
    )
    .await
    .unwrap_err();
    assert_eq!(f.calls(mark), ["DynamoDB:GetItem", "DynamoDB:UpdateItem"]);
    match &e {
        DecideError::AlreadyDecided {
            status, decided_by, ..
        } => {
            assert_eq!(*status, ApprovalStatus::Approved);
            assert_eq!(decided_by.as_deref(), Some(ALICE));
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.http_status(), 409);
    assert!(
        e.to_string()
            .contains(&format!("already approved by {ALICE}")),
        "{e}"
    );
    assert_eq!(status(sfn, &execution).await.0, ExecutionStatus::Succeeded);

    assert_no_token(
        &token,
        "the audit chain or the stored plans",
        &written(&f, &id).await,
    );
    assert_no_token(&token, "the logs", &logs());
    Ok(())
}

#[tokio::test]
async fn a_rejection_fails_the_gate_with_the_reason() -> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let sfn = &f.clients.sfn();
    let (execution, req, token) = start_gate(sfn, &decision, "revoke_credentials").await;
    request(
        &f.clients,
        &f.names,
        &f.gate(),
        &req,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let reason = "the role is shared with the batch fleet";
    let mark = f.mark();
    let resumed = decide(
        &f.clients,
        &f.names,
        &policy(),
        &decision_of(&id, "revoke-credentials", Verdict::Reject, Some(reason)),
        BOB,
        OffsetDateTime::now_utc(),
    )
    .await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",
            "DynamoDB:UpdateItem",
            "SFN:SendTaskFailure",
            "DynamoDB:Query",
            "DynamoDB:PutItem"
        ]
    );
    assert_eq!(resumed.decision, Verdict::Reject);
    let (s, out) = finished(sfn, &execution).await;
    assert_eq!(s, ExecutionStatus::Succeeded);
    assert_eq!(out["error"]["Error"], "Rejected");
    // moto's SendTaskFailure drops `cause` (the Catch sees null); the cause sent is asserted on
    // the wire in `step_functions_refusals_are_plain_errors_and_never_show_the_token`.
    assert!(
        out["error"]["Cause"] == reason || out["error"]["Cause"].is_null(),
        "{out}"
    );
    assert!(
        out.get("gate").is_none(),
        "the gated step's path was not taken"
    );
    let rejected = f.chain(&id).await.pop().unwrap();
    assert_eq!(
        (rejected.action.as_str(), rejected.actor.as_str()),
        ("rejected", BOB)
    );
    assert_eq!(rejected.detail["reason"], reason);
    assert_no_token(
        &token,
        "the audit chain or the stored plans",
        &written(&f, &id).await,
    );
    assert_no_token(&token, "the logs", &logs());
    Ok(())
}

#[tokio::test]
async fn closed_windows_and_refused_tokens_are_plain_errors() -> TestResult {
    let f = fixture().await;
    let (input, _) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let store = ApprovalStore::new(f.clients.clone(), f.names.clone());
    let now = OffsetDateTime::now_utc();
    let stored =
        |step: &str, token: &str, requested_at: OffsetDateTime, expires_at| StoredRequest {
            incident_id: id.clone(),
            step_id: step.to_owned(),
            task_token: TaskToken::new(token),
            requester: GATE.to_owned(),
            plan: json!({"step": step}),
            level: 0,
            requested_at,
            expires_at,
        };

    // The request expired before anyone decided.
    store
        .request(&stored(
            "old",
            "AAAA-expired-token",
            now - time::Duration::hours(2),
            now - time::Duration::hours(1),
        ))
        .await?;
    let e = decide(
        &f.clients,
        &f.names,
        &policy(),
        &decision_of(&id, "old", Verdict::Approve, None),
        ALICE,
        now,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DecideError::WindowClosed(_)), "{e}");
    assert!(
        e.to_string()
            .starts_with("the approval window has closed: the request for"),
        "{e}"
    );
    assert_eq!(e.http_status(), 410);
    assert_eq!(
        store.get(&id, "old").await?.unwrap().status,
        ApprovalStatus::Expired
    );

    // A token Step Functions does not know (no such waiting task).
    store
        .request(&stored(
            "bogus",
            "AAAA-not-a-task-token",
            now,
            now + time::Duration::hours(1),
        ))
        .await?;
    let e = decide(
        &f.clients,
        &f.names,
        &policy(),
        &decision_of(&id, "bogus", Verdict::Approve, None),
        ALICE,
        now,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DecideError::TokenRefused(_)), "{e}");
    assert_eq!(e.http_status(), 410);
    assert!(!e.to_string().contains("AAAA-not-a-task-token"), "{e}");
    let undelivered = f.chain(&id).await.pop().unwrap();
    assert_eq!(undelivered.action, "approval-not-delivered");
    assert!(
        !undelivered
            .detail
            .to_string()
            .contains("AAAA-not-a-task-token")
    );

    // Nothing requested for the step.
    let e = decide(
        &f.clients,
        &f.names,
        &policy(),
        &decision_of(&id, "never-asked", Verdict::Approve, None),
        ALICE,
        now,
    )
    .await
    .unwrap_err();
    assert_eq!(e.http_status(), 404, "{e}");

    Ok(())
}

/// A Step Functions endpoint speaking `awsJson1_0`: canned answers in order (then `{}`), every
/// request kept as (X-Amz-Target, body). For the answers the emulator cannot give.
#[derive(Clone)]
struct FakeSfn {
    url: String,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<std::collections::VecDeque<(u16, String)>>>,
}

impl FakeSfn {
    async fn start() -> FakeSfn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeSfn {
            url: format!("http://{}", listener.local_addr().unwrap()),
            requests: Arc::default(),
            answers: Arc::default(),
        };
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fake = serving.clone();
                tokio::spawn(async move {
                    let _ = fake.answer(stream).await;
                });
            }
        });
        fake
    }

    /// Answers the next call with AWS's JSON error `code`, its message quoting `echo`.
    fn fail_next(&self, code: &str, echo: &str) {
        let body = json!({"__type": format!("com.amazonaws.states#{code}"), "message": format!("{code}: '{echo}'")});
        self.answers
            .lock()
            .unwrap()
            .push_back((400, body.to_string()));
    }

    async fn answer(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let (mut length, mut target) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 || header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("x-amz-target") {
                    target = value.trim().to_owned();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        self.requests
            .lock()
            .unwrap()
            .push((target, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        let (status, reply) = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, "{}".to_owned()));
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-requestid: fake-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        );
        let mut stream = reader.into_inner();
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    }
}

/// moto accepts a decision for a gate its own `TimeoutSeconds` already closed (and answers
/// `InvalidToken` for anything it does not know, never `TaskDoesNotExist`), and its
/// SendTaskFailure drops the cause. AWS answers each case with its own error: the decision path
/// maps them from the wire, tested here against canned AWS answers (the store on the emulator).
#[tokio::test]
async fn step_functions_refusals_are_plain_errors_and_never_show_the_token() -> TestResult {
    let mut f = fixture().await;
    let (input, _) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let fake = FakeSfn::start().await;
    let sdk = env()
        .cloud
        .sdk_config()
        .into_builder()
        .endpoint_url(&fake.url)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    // The same tables through clients whose Step Functions calls go to the fake.
    let fresh = clients(&env().cloud);
    let sfn = Sfn::from_conf(
        aws_sdk_sfn::config::Builder::from(&sdk)
            .interceptor(fresh.calls().clone())
            .build(),
    );
    f.clients = fresh.with_sfn(sfn);
    let store = ApprovalStore::new(f.clients.clone(), f.names.clone());
    let now = OffsetDateTime::now_utc();
    let token = |step: &str| format!("AQCEAAAAKgAAAAMAAAAAsecret+Task/Token={step}");
    for step in [
        "timed-out",
        "gone",
        "refused",
        "throttled",
        "rejected",
        "approved",
    ] {
        store
            .request(&StoredRequest {
                incident_id: id.clone(),
                step_id: step.to_owned(),
                task_token: TaskToken::new(token(step)),
                requester: GATE.to_owned(),
                plan: json!({"step": step}),
                level: 1,
                requested_at: now,
                expires_at: now + time::Duration::hours(1),
            })
            .await?;
    }
    let run = |step: &'static str, verdict: Verdict, reason: Option<&'static str>| {
        let (clients, names, id) = (f.clients.clone(), f.names.clone(), id.clone());
        async move {
            decide(
                &clients,
                &names,
                &policy(),
                &decision_of(&id, step, verdict, reason),
                ALICE,
                now,
            )
            .await
        }
    };

    for (step, code) in [
        ("timed-out", "TaskTimedOut"),
        ("gone", "TaskDoesNotExist"),
        ("refused", "InvalidToken"),
        ("throttled", "ThrottlingException"),
    ] {
        fake.fail_next(code, &token(step));
        let e = run(step, Verdict::Approve, None).await.unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("secret+Task"), "{step}: {text}");
        match (step, &e) {
            ("timed-out", DecideError::WindowClosed(_)) => {
                assert!(
                    text.starts_with("the approval window has closed: Step Functions timed out"),
                    "{text}"
                );
                assert_eq!(e.http_status(), 410);
            }
            ("gone", DecideError::TaskGone(_)) | ("refused", DecideError::TokenRefused(_)) => {
                assert_eq!(e.http_status(), 410);
                assert!(text.contains("nothing was resumed"), "{text}");
            }
            ("throttled", DecideError::Aws(failure)) => {
                assert_eq!(failure.name, ir_core::ErrorName::Retryable);
                assert_eq!(e.http_status(), 503);
            }
            _ => panic!("{step}: {e:?}"),
        }
        // Said in the chain: decided, not delivered. When the waiting task is gone for good the
        // decision took no effect and the request reads expired (undecided: an escalation may
        // ask again); when the call itself failed the store keeps the decision.
        let read = store.get(&id, step).await?.unwrap();
        let last = f.chain(&id).await.pop().unwrap();
        assert_eq!(last.action, "approval-not-delivered");
        assert_eq!(last.detail["step"], step);
        assert_eq!(last.detail["approver"], ALICE);
        if step == "throttled" {
            assert_eq!(
                (read.status, read.decided_by.as_deref()),
                (ApprovalStatus::Approved, Some(ALICE))
            );
            assert_eq!(last.detail["decisionVoided"], false);
        } else {
            assert_eq!(
                (read.status, read.decided_by, read.decided_at, read.reason),
                (ApprovalStatus::Expired, None, None, None),
                "{step}"
            );
            assert_eq!(last.detail["decisionVoided"], true, "{step}");
            // A second try finds the window closed, not someone else's decision.
            let again = run(step, Verdict::Approve, None).await.unwrap_err();
            assert!(
                matches!(again, DecideError::WindowClosed(_)),
                "{step}: {again}"
            );
            assert!(
                again
                    .to_string()
                    .contains("the task waiting for it is gone"),
                "{again}"
            );
            // The escalation asks again at the next level.
            store
                .request(&StoredRequest {
                    incident_id: id.clone(),
                    step_id: step.to_owned(),
                    task_token: TaskToken::new(format!("{}-level-2", token(step))),
                    requester: GATE.to_owned(),
                    plan: json!({"step": step}),
                    level: 2,
                    requested_at: now,
                    expires_at: now + time::Duration::hours(1),
                })
                .await?;
            assert_eq!(
                store.get(&id, step).await?.unwrap().status,
                ApprovalStatus::Pending
            );
        }
    }

    // What is sent: the token, the error the state machines catch and the reason as cause.
    let mark = f.mark();
    run(
        "rejected",
        Verdict::Reject,
        Some("false positive: a load test"),
    )
    .await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",
            "DynamoDB:UpdateItem",
            "SFN:SendTaskFailure",
            "DynamoDB:Query",
            "DynamoDB:PutItem"
        ]
    );
    run("approved", Verdict::Approve, Some("confirmed")).await?;
    let requests = fake.requests.lock().unwrap().clone();
    let (target, body) = &requests[requests.len() - 2];
    assert_eq!(target, "AWSStepFunctions.SendTaskFailure");
    assert_eq!(
        body,
        &json!({"taskToken": token("rejected"), "error": "Rejected", "cause": "false positive: a load test"})
    );
    let (target, body) = &requests[requests.len() - 1];
    assert_eq!(target, "AWSStepFunctions.SendTaskSuccess");
    assert_eq!(body["taskToken"], token("approved"));
    let output: Value = serde_json::from_str(body["output"].as_str().unwrap())?;
    assert_eq!(output["approvedBy"], ALICE);
    assert_eq!(output["reason"], "confirmed");
    assert!(output["approvedAt"].is_string());

    let chain = serde_json::to_string(&f.chain(&id).await)?;
    assert!(!chain.contains("secret+Task"), "a token in the audit chain");
    assert!(!logs().contains("secret+Task"), "a token in the logs");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The notifier.

#[tokio::test]
async fn notifications_publish_the_incident_update_with_routing_attributes() -> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::DryRun).await;
    let id = input.incident_id.clone();
    // One step ran (dry-run): it shows under Actions Taken.
    f.recorder()
        .record(RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "isolate-instance".into(),
            report: isolation_report(&id, Mode::DryRun),
        })
        .await?;
    let step = PlannedStep::clone(decision.plan()["notify_channel"]);
    let req = NotifyRequest {
        incident_id: id.clone(),
        step_id: step.id.clone(),
        mode: Mode::DryRun,
        step,
    };
    let mark = f.mark();
    let report = ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &req).await?;
    assert_eq!(
        f.calls(mark),
        ["DynamoDB:GetItem", "DynamoDB:Query", "SNS:Publish"]
    );
    assert_eq!(report.aws_calls, 3);
    assert_eq!(report.action, "ir-notify");
    assert_eq!(report.mode, Mode::DryRun);
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.changes.len(), 1);
    let change = &report.changes[0];
    assert_eq!(change.target, "#ir-critical");
    assert_eq!(change.attribute, "notification");
    assert_eq!(change.before, Value::Null);
    let message_id = change.after["messageId"].as_str().unwrap().to_owned();
    assert_eq!(change.after, json!({ "messageId": message_id }));

    let delivered = env().lambda.wait_posted(&f.inbox, 1).await;
    let note = delivered
        .iter()
        .find(|n| n["MessageId"] == message_id.as_str())
        .unwrap();
    let subject = note["Subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("[DRY RUN] [CRITICAL] {id} containment")),
        "{subject}"
    );
    let body = note["Message"].as_str().unwrap();
    for line in [
        "[DRY RUN] Channel: #ir-critical\n".to_owned(),
        format!("## Incident Update: {id}\n"),
        "**Status:** Containment\n".to_owned(),
        "**Severity:** Critical\n".to_owned(),
        "**Time contained:** not contained yet\n".to_owned(),
        "### Summary\nCritical severity incident on ec2-instance i-0a1b2c3d4e5f60001 (account 111122223333, us-east-1): 1 finding, first: The EC2 instance i-0a1b2c3d4e5f60001 queried a domain name associated with Bitcoin-related activity.".to_owned(),
        "### Actions Taken\n1. isolate-instance: ir-isolate-instance planned only (dry-run), 2 change(s) planned\n".to_owned(),
        "### Next Steps\n- This playbook runs in dry-run".to_owned(),
        format!("`ir audit verify {id}`"),
    ] {
        assert!(body.contains(&line), "missing {line:?} in:\n{body}");
    }
    let kept = sent(&f.topic).await;
    let (_, _, _, attrs) = kept.iter().find(|n| n.0 == message_id).unwrap();
    assert_eq!(attribute(attrs, "kind"), "channel-message");
    assert_eq!(attribute(attrs, "channel"), "#ir-critical");
    assert_eq!(attribute(attrs, "severity"), "critical");

    // A ticket request (investigate-and-notify's create-ticket), in enforce: no dry-run mark.
    let engine = Engine::embedded().unwrap();
    let high = engine.decide(
        &id,
        &input.events,
        &engine.enrich(&input.events, 0),
        input.detected_at,
    )?;
    assert_eq!(high.playbook.id, "investigate-and-notify");
    let mut ticket = PlannedStep::clone(high.plan()["create_ticket"]);
    ticket.mode = Mode::Enforce;
    let report = ir_incident::notify::notify_step(
        &f.clients,
        &f.names,
        &f.topic,
        &NotifyRequest {
            incident_id: id.clone(),
            step_id: ticket.id.clone(),
            mode: Mode::Enforce,
            step: ticket,
        },
    )
    .await?;
    assert_eq!(report.changes[0].target, "jira:SEC");
    let message_id = report.changes[0].after["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = sent(&f.topic).await;
    let (_, message, subject, attrs) = kept.iter().find(|n| n.0 == message_id).unwrap();
    assert!(
        subject.starts_with("[CRITICAL] SEC ticket: Critical severity incident"),
        "{subject}"
    );
    assert!(
        message.starts_with("Ticket request\nProject: SEC\nPriority: High\n"),
        "{message}"
    );
    assert_eq!(attribute(attrs, "kind"), "ticket-request");
    assert_eq!(attribute(attrs, "project"), "SEC");
    assert_eq!(attribute(attrs, "priority"), "High");

    // Not a notification action.
    let wrong = NotifyRequest {
        incident_id: id.clone(),
        step_id: "isolate-instance".into(),
        mode: Mode::DryRun,
        step: PlannedStep::clone(decision.plan()["isolate_instance"]),
    };
    let e = ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &wrong)
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&e),
        ir_core::ErrorName::InvalidInput
    );
    Ok(())
}
