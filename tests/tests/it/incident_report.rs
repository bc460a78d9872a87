//! `ir_incident::report::build` against the local cloud: an incident built through the suite's own
//! code (ingest, the recorder, a real collect-evidence run and a real isolation of a moto
//! instance, a real approval gate whose task token comes from a waiting Step Functions
//! execution), then reported, then its audit chain edited the way an attacker with table access
//! would (a plain `UpdateItem` beside the store). The same incident is what
//! `ir_incident::release::release_incident` releases: a failure recorded, then the release that
//! resolves it.
//!
//! At resolution (`ir resolve`, an enforced `ir release`) the report is written, locked, to the
//! evidence bucket: read back, its versions are locked and their content is the report; a key
//! already holding a report leaves the incident resolved and says so.
//!
//! Every test makes its own tables, evidence bucket, topic, state machines and instance under a
//! `unique_name`, and its own finding id (so its own incident id).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration as StdDuration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use ir_actions::ec2::isolate_instance;
use ir_actions::evidence::{EvidenceSettings, collect_evidence};
use ir_aws::Clients;
use ir_aws::store::{AuditLog, IncidentStore, IsolationHolds, TableNames, create_tables};
use ir_core::action::{
    ActionReport, Artifacts, ChangeStatus, ContainmentRecord, ContainmentRequest, EvidenceManifest,
    EvidenceRequest, Outcome,
};
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::incident::Status;
use ir_core::orchestration::{ApprovalRequest, PlaybookInput, RecordRequest, StateError};
use ir_core::{Engine, ErrorName, IngestOutput, Named, Severity};
use ir_incident::approval::{DecisionRequest, GateSettings, Verdict, decide, request};
use ir_incident::intake::Intake;
use ir_incident::recorder::{RecordOutput, Recorder, RecorderSettings};
use ir_incident::report::{
    self, ApprovalKind, FailureKind, ReportError, StepArtifacts, StepState, Verification,
};
use ir_tests::fixtures::{
    create_security_group, create_subnet, create_vpc, launch, locked_bucket, primary_interface,
    run_instance,
};
use ir_tests::{TestResult, clients, cloud, sha256_hex, unique_name};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const SAMPLE: &str = "events/guardduty-cryptocurrency-bitcointool-dns.json";
const SAMPLE_FINDING: &str = "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1";
const SAMPLE_INSTANCE: &str = "i-0a1b2c3d4e5f60001";
const SAMPLE_TIME: &str = "\"time\": \"2026-11-20T03:18:05Z\"";
const STATES_ROLE: &str = "arn:aws:iam::123456789012:role/ir-test-states";
/// The identity the approval gate runs as.
const GATE: &str = "arn:aws:sts::123456789012:assumed-role/ir-request-approval/ir-request-approval";
const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/alice@example.com";
const BOB: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/bob@example.com";
const DEADLINE: StdDuration = StdDuration::from_secs(30);

/// Tables, evidence bucket and topic of one test.
struct Fixture {
    clients: Clients,
    names: TableNames,
    bucket: String,
    topic: String,
}

async fn fixture() -> Fixture {
    let cloud = cloud().await;
    let clients = clients(cloud);
    let names = TableNames::with_prefix(&unique_name("ir-report"));
    create_tables(&clients, &names).await.unwrap();
    let bucket = locked_bucket(&cloud.s3_client(), "ir-report-ev").await;
    let topic = clients
        .sns()
        .create_topic()
        .name(unique_name("ir-report-notify"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    Fixture {
        clients,
        names,
        bucket,
        topic,
    }
}

fn evidence_config() -> EvidenceConfig {
    EvidenceConfig {
        object_lock_mode: "COMPLIANCE".into(),
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
                evidence: evidence_config(),
                slots: ir_incident::recorder::SlotSettings::default(),
            },
        )
    }

    async fn record(&self, request: RecordRequest, at: OffsetDateTime) -> RecordOutput {
        self.recorder().record_at(request, at).await.unwrap()
    }

    async fn create_machine(&self, definition: &serde_json::Value) -> String {
        self.clients
            .sfn()
            .create_state_machine()
            .name(unique_name("ir-report-sm"))
            .definition(definition.to_string())
            .role_arn(STATES_ROLE)
            .send()
            .await
            .unwrap()
            .state_machine_arn()
            .to_owned()
    }
}

/// An instance with one interface carrying one application group, launched as
/// infrastructure-as-code launches it (groups on the interface); returns (instance, group).
async fn instance(ec2: &aws_sdk_ec2::Client) -> (String, String) {
    let vpc = create_vpc(ec2, "10.70.0.0/16").await;
    let subnet = create_subnet(ec2, &vpc, "10.70.1.0/24").await;
    let group = create_security_group(ec2, &vpc, &unique_name("ir-report-web"), "web").await;
    let i = launch(
        run_instance(ec2)
            .network_interfaces(primary_interface(&subnet, std::slice::from_ref(&group))),
    )
    .await;
    (i.instance_id().unwrap().to_owned(), group)
}

/// The sample GuardDuty envelope, about `instance`, with a finding id of its own, received at
/// `received`.
fn envelope(instance: &str, received: OffsetDateTime) -> String {
    let text = std::fs::read_to_string(ir_tests::repo_root().join(SAMPLE)).unwrap();
    let finding = &sha256_hex(unique_name("finding").as_bytes())[..32];
    let stamp = received
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let changed = text
        .replace(SAMPLE_FINDING, finding)
        .replace(SAMPLE_INSTANCE, instance)
        // The emulator's account: where the instance is, and where `ir release` acts.
        .replace("111122223333", ir_tests::ACCOUNT_ID)
        .replacen(SAMPLE_TIME, &format!("\"time\": \"{stamp}\""), 1);
    assert!(!changed.contains(SAMPLE_INSTANCE) && changed.contains(&stamp));
    changed
}

/// The approval gate of the playbooks, with a task whose token the test can read: the waiting
/// task puts its token into the keys table (`aws-sdk:dynamodb:putItem.waitForTaskToken`), as
/// `lambda:invoke.waitForTaskToken` hands it to ir-request-approval. Returns (execution, token).
async fn waiting_gate(f: &Fixture) -> (String, String) {
    let slot = unique_name("gate");
    let machine = f
        .create_machine(&json!({
            "StartAt": "Gate",
            "States": {"Gate": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:dynamodb:putItem.waitForTaskToken",
                "Parameters": {
                    "TableName": f.names.keys,
                    "Item": {"key": {"S": slot}, "token": {"S.$": "$$.Task.Token"}}
                },
                "TimeoutSeconds": 300,
                "End": true
            }}
        }))
        .await;
    let execution = f
        .clients
        .sfn()
        .start_execution()
        .state_machine_arn(&machine)
        .name(unique_name("gate-run"))
        .input("{}")
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_owned();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let item = f
            .clients
            .dynamodb()
            .get_item()
            .table_name(&f.names.keys)
            .key("key", AttributeValue::S(slot.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if let Some(AttributeValue::S(token)) = item.item().and_then(|i| i.get("token")) {
            return (execution, token.clone());
        }
        assert!(
            Instant::now() < deadline,
            "the gate's task token did not arrive within {DEADLINE:?}"
        );
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
}

async fn finished(f: &Fixture, execution: &str) -> ExecutionStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = f
            .clients
            .sfn()
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .unwrap();
        if d.status() != &ExecutionStatus::Running {
            return d.status().clone();
        }
        assert!(Instant::now() < deadline, "{execution} still running");
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
}

/// Every object version under the incident's evidence prefixes (finding, resource,
/// cloudtrail), read from the bucket: (key, version id, sha256 of the bytes, size).
async fn stored_evidence(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    incident: &str,
) -> BTreeSet<(String, String, String, u64)> {
    let listed = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(format!("incidents/{incident}/"))
        .send()
        .await
        .unwrap();
    assert_ne!(listed.is_truncated(), Some(true));
    let mut out = BTreeSet::new();
    for v in listed.versions() {
        let (key, version) = (v.key().unwrap(), v.version_id().unwrap());
        if key.contains("/manifests/") || key.contains("/audit/") {
            continue;
        }
        let bytes = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        out.insert((
            key.to_owned(),
            version.to_owned(),
            sha256_hex(&bytes),
            bytes.len() as u64,
        ));
    }
    out
}

/// What the incident was built from.
struct Built {
    incident_id: String,
    detected_at: OffsetDateTime,
    group: String,
    evidence: ActionReport,
    isolation: ActionReport,
    token: String,
}

/// One critical incident on a real instance, from ingest to contained, through the suite's code:
/// ingest (a `Pass` triage machine), triage recorded at +0.4 s, collect-evidence (enforce) at
/// +1 s, snapshot-volumes failed at +1.5 s, the isolation gate requested at +2 s and approved by
/// Alice at +2.5 s, isolate-instance (enforce) at +3 s, the playbook finished at +3.1 s.
async fn contained_incident(f: &Fixture) -> Built {
    let (instance_id, group) = instance(f.clients.ec2()).await;
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::minutes(10);
    let at = |ms: i64| t0 + Duration::milliseconds(ms);

    // Ingest: the incident opened, its triage started.
    let triage = f
        .create_machine(
            &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
        )
        .await;
    let normalized = ir_core::normalize(envelope(&instance_id, t0).as_bytes()).unwrap();
    let batch = IngestOutput::from_normalized(normalized, OffsetDateTime::now_utc());
    let input = batch.incidents[0].clone();
    assert_eq!(input.detected_at, t0);
    let id = input.incident_id.clone();
    Intake::new(f.clients.clone(), f.names.clone(), &triage)
        .ingest(batch)
        .await
        .unwrap();

    // Triage, every step in enforce mode.
    let engine = Engine::embedded().unwrap();
    let enrichment = engine.enrich(&input.events, 5);
    let mut decision = engine
        .decide(&id, &input.events, &enrichment, input.detected_at)
        .unwrap();
    assert_eq!(decision.playbook.id, "immediate-isolation");
    decision.playbook.mode = Mode::Enforce;
    for s in &mut decision.playbook.steps {
        s.mode = Mode::Enforce;
    }
    let plan: Vec<&str> = decision
        .playbook
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    for step in ["collect-evidence", "snapshot-volumes", "isolate-instance"] {
        assert!(plan.contains(&step), "{step} not in {plan:?}");
    }
    let RecordOutput::Playbook(playbook) = f
        .record(
            RecordRequest::Triaged {
                incident_id: id.clone(),
                events: input.events.clone(),
                decision,
                detected_at: input.detected_at,
                revision: 0,
            },
            at(400),
        )
        .await
    else {
        panic!("triage recorded without a playbook input");
    };
    let p: PlaybookInput = *playbook;

    // collect-evidence, for real.
    let settings = EvidenceSettings::new(&f.bucket, None, evidence_config());
    let evidence = collect_evidence(
        &f.clients,
        &settings,
        &EvidenceRequest {
            incident_id: id.clone(),
            finding_id: p.finding_id.clone(),
            step_id: "collect-evidence".into(),
            resource: p.resource.clone(),
            mode: Mode::Enforce,
            account: p.account.clone(),
            region: p.region.clone(),
            finding: p.finding.clone(),
            first_seen: p.first_seen,
            last_seen: p.last_seen,
        },
    )
    .await
    .unwrap();
    assert_eq!(evidence.outcome, Outcome::Applied);
    f.record(
        RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "collect-evidence".into(),
            report: evidence.clone(),
        },
        at(1000),
    )
    .await;

    // snapshot-volumes fails after its retries.
    f.record(
        RecordRequest::StepFailed {
            incident_id: id.clone(),
            step_id: "snapshot-volumes".into(),
            error: StateError {
                error: "Retryable".into(),
                cause: "ec2:CreateSnapshots failed with RequestLimitExceeded".into(),
            },
        },
        at(1500),
    )
    .await;

    // The isolation gate: requested, approved by Alice; the waiting execution resumes.
    let (execution, token) = waiting_gate(f).await;
    request(
        &f.clients,
        &f.names,
        &GateSettings {
            requester: GATE.into(),
            topic_arn: f.topic.clone(),
            two_person_rule: true,
            token_key: None,
        },
        &ApprovalRequest {
            task_token: token.clone(),
            incident_id: id.clone(),
            step_id: "isolate-instance".into(),
            level: 0,
            plan: ir_tests::planned_report(&id, "isolate-instance", "ir-isolate-instance"),
        },
        at(2000),
    )
    .await
    .unwrap();
    // A critical step: two different people approve (the default config's rule).
    for (who, at_ms) in [(ALICE, 2500), (BOB, 2600)] {
        decide(
            &f.clients,
            &f.names,
            &ir_tests::fixtures::lead_policy(&[
                "arn:aws:iam::123456789012:role/responders/SecurityLead",
            ]),
            &DecisionRequest {
                incident_id: id.clone(),
                step_id: "isolate-instance".into(),
                decision: Verdict::Approve,
                reason: Some("miner confirmed on the host".into()),
                plan_hash: None,
            },
            who,
            at(at_ms),
        )
        .await
        .unwrap();
    }
    assert_eq!(finished(f, &execution).await, ExecutionStatus::Succeeded);

    // isolate-instance, for real.
    let isolation = isolate_instance(
        &f.clients,
        &IsolationHolds::new(f.clients.clone(), &f.names),
        &ContainmentRequest {
            incident_id: id.clone(),
            finding_id: p.finding_id.clone(),
            step_id: "isolate-instance".into(),
            resource: p.resource.clone(),
            mode: Mode::Enforce,
        },
    )
    .await
    .unwrap();
    assert_eq!(isolation.outcome, Outcome::Applied);
    f.record(
        RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "isolate-instance".into(),
            report: isolation.clone(),
        },
        at(3000),
    )
    .await;

    // The end: contained, the audit head anchored.
    f.record(
        RecordRequest::PlaybookFinished {
            incident_id: id.clone(),
            playbook_id: "immediate-isolation".into(),
            execution_name: None,
        },
        at(3100),
    )
    .await;
    Built {
        incident_id: id,
        detected_at: t0,
        group,
        evidence,
        isolation,
        token,
    }
}

fn manifest_of(report: &ActionReport) -> &EvidenceManifest {
    match &report.artifacts {
        Some(Artifacts::Evidence(m)) => m,
        other => panic!("no evidence manifest: {other:?}"),
    }
}

#[tokio::test]
async fn the_report_tells_the_incident_and_survives_a_tampered_chain() -> TestResult {
    let f = fixture().await;
    let b = contained_incident(&f).await;
    let id = &b.incident_id;
    let stored = IncidentStore::new(f.clients.clone(), f.names.clone())
        .get(id)
        .await?
        .unwrap();
    let chain = AuditLog::new(f.clients.clone(), f.names.clone())
        .chain(id)
        .await?;

    let r = report::build(&f.clients, &f.names, &f.bucket, id).await?;

    // The incident.
    assert_eq!(r.incident_id, *id);
    assert_eq!(r.status, Status::Contained);
    assert_eq!(r.severity, Severity::Critical);
    assert_eq!(r.playbook.as_deref(), Some("immediate-isolation"));
    assert_eq!(r.resource.kind, "ec2-instance");
    assert_eq!(r.resource.id, stored.resource.id());
    assert_eq!((r.finding_count, r.occurrences), (1, 1));
    let last = r.last_error.as_ref().unwrap();
    assert_eq!(last.step, "snapshot-volumes");
    assert!(last.message.starts_with("Retryable: "), "{}", last.message);

    // The timeline as stored, and the metrics derived from it.
    assert_eq!(r.timeline.stamps, stored.summary.timeline);
    assert_eq!(r.timeline.stamps.detected_at, b.detected_at);
    assert_eq!(
        r.timeline.stamps.contained_at,
        Some(b.detected_at + Duration::milliseconds(3100))
    );
    assert_eq!(r.timeline.stamps.mttc(), Some(Duration::milliseconds(3100)));
    assert_eq!(r.timeline.mttc_seconds, Some(3.1));
    assert_eq!(r.timeline.triage_seconds, Some(0.4));
    assert_eq!(
        r.timeline.mttd_seconds,
        stored.summary.timeline.mttd().map(|d| d.as_seconds_f64())
    );
    assert!(r.timeline.mttd_seconds.is_some());

    // The decision.
    let d = r.decision.as_ref().unwrap();
    assert_eq!(d.playbook, "immediate-isolation");
    assert_eq!(d.mode, Mode::Enforce);
    assert!(d.steps.iter().all(|s| s.mode == Mode::Enforce));
    let gated: Vec<&str> = d
        .steps
        .iter()
        .filter(|s| s.requires_approval)
        .map(|s| s.id.as_str())
        .collect();
    assert!(gated.contains(&"isolate-instance"), "{gated:?}");

    // The steps, in audit order, then the planned ones that never ran.
    let order: Vec<(&str, StepState)> =
        r.steps.iter().map(|s| (s.step.as_str(), s.state)).collect();
    assert_eq!(
        &order[..3],
        [
            ("collect-evidence", StepState::Applied),
            ("snapshot-volumes", StepState::Failed),
            ("isolate-instance", StepState::Applied),
        ]
    );
    assert_eq!(order.len(), d.steps.len());
    assert!(
        order[3..].iter().all(|(_, s)| *s == StepState::NotRun),
        "{order:?}"
    );

    let collect = &r.steps[0];
    let collected = collect.result.as_ref().unwrap();
    assert_eq!(collected.function, "ir-collect-evidence");
    let m = manifest_of(&b.evidence);
    match &collected.artifacts {
        Some(StepArtifacts::Evidence(e)) => {
            assert_eq!(
                (
                    &e.bucket,
                    &e.manifest_key,
                    &e.manifest_version_id,
                    e.objects
                ),
                (
                    &m.bucket,
                    &m.manifest_key,
                    &m.manifest_version_id,
                    m.objects.len()
                )
            );
        }
        other => panic!("{other:?}"),
    }

    let snapshot = &r.steps[1];
    let failure = snapshot.error.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::Failed);
    assert_eq!(failure.error, "Retryable");
    assert!(failure.cause.contains("RequestLimitExceeded"));

    // The isolation: every change before → after, exactly as the action reported it.
    let isolate = &r.steps[2];
    let isolated = isolate.result.as_ref().unwrap();
    assert_eq!(isolated.outcome, Outcome::Applied);
    assert_eq!(isolated.mode, Mode::Enforce);
    assert_eq!(isolated.changes, b.isolation.changes);
    assert!(isolated.record);
    let Some(ContainmentRecord::Isolation(record)) = &b.isolation.record else {
        panic!("no isolation record: {:?}", b.isolation.record);
    };
    let eni = &record.interfaces[0].network_interface_id;
    let groups = isolated
        .changes
        .iter()
        .find(|c| {
            &c.target == eni
                && c.attribute == "security-groups"
                && c.after == json!([record.isolation_group_id])
        })
        .unwrap_or_else(|| panic!("no isolation of {eni} in {:#?}", isolated.changes));
    assert_eq!(groups.status, ChangeStatus::Applied);
    assert_eq!(groups.before, json!([b.group]));
    // Requested by the gate, approved by Alice (counted) and Bob (deciding), with the reason.
    let approvals: Vec<(ApprovalKind, &str)> = isolate
        .approvals
        .iter()
        .map(|a| (a.kind, a.actor.as_str()))
        .collect();
    assert_eq!(
        approvals,
        [
            (ApprovalKind::Requested, GATE),
            (ApprovalKind::Counted, ALICE),
            (ApprovalKind::Approved, BOB)
        ]
    );
    assert_eq!(
        isolate.approvals[1].why.as_deref(),
        Some("1 of 2 approvals")
    );
    assert_eq!(isolate.approvals[0].level, Some(0));
    assert_eq!(
        isolate.approvals[0].role.as_deref(),
        Some("security_engineer")
    );
    let approved = isolate.decision().unwrap();
    assert_eq!(
        approved.reason.as_deref(),
        Some("miner confirmed on the host")
    );

    let end = r.finished.as_ref().unwrap();
    assert!(end.contained);
    assert_eq!(end.destructive_applied, ["isolate-instance"]);

    // The manifest: what it lists is exactly what is in the bucket.
    assert_eq!(r.evidence.len(), 1);
    let listed = &r.evidence[0];
    assert_eq!(listed.error, None);
    assert_eq!(listed.step, "collect-evidence");
    assert_eq!(
        (&listed.bucket, &listed.key, &listed.version_id),
        (&m.bucket, &m.manifest_key, &m.manifest_version_id)
    );
    let objects: Vec<_> = listed.objects.iter().map(|o| o.object.clone()).collect();
    assert_eq!(objects, m.objects);
    // Each object's retain-until date, as the report computes it, is the one S3 holds.
    for o in &listed.objects {
        let head = f
            .clients
            .s3()
            .head_object()
            .bucket(&f.bucket)
            .key(&o.object.key)
            .version_id(&o.object.version_id)
            .send()
            .await?;
        assert_eq!(
            head.object_lock_retain_until_date().map(|d| d.secs()),
            o.retain_until.map(OffsetDateTime::unix_timestamp),
            "{}",
            o.object.key
        );
    }
    let in_manifest: BTreeSet<(String, String, String, u64)> = listed
        .objects
        .iter()
        .map(|o| &o.object)
        .map(|o| {
            (
                o.key.clone(),
                o.version_id.clone(),
                o.sha256.clone(),
                o.size,
            )
        })
        .collect();
    let s3 = cloud().await.s3_client();
    assert_eq!(in_manifest, stored_evidence(&s3, &f.bucket, id).await);
    assert!(!in_manifest.is_empty());

    // The audit chain: every record, verified against the anchor written at containment.
    let actions: Vec<&str> = chain.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "opened",
            "triage-started",
            "triaged",
            "action:ir-collect-evidence",
            "step-failed",
            "approval-requested",
            "approval-counted",
            "approved",
            "action:ir-isolate-instance",
            "playbook-finished",
        ]
    );
    let v = r.audit.verification.verified().unwrap();
    assert_eq!(v.records, 10);
    assert_eq!(v.head, chain.last().unwrap().hash);
    // Entered containment, left it.
    assert_eq!(v.anchors_checked, 2);
    assert_eq!(r.audit.records_read, 10);
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    assert!(r.notes.is_empty(), "{:?}", r.notes);

    // The JSON: camelCase, and no task token anywhere.
    let text = serde_json::to_string(&r)?;
    assert!(
        !text.contains(&b.token),
        "the task token leaked into the report"
    );
    let value: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(value["incidentId"], json!(id));
    assert_eq!(value["timeline"]["mttcSeconds"], json!(3.1));
    assert_eq!(value["audit"]["verification"]["verified"], json!(true));
    assert_eq!(
        value["evidence"][0]["objects"][0]["versionId"],
        json!(m.objects[0].version_id)
    );

    // Record 4 (the snapshot failure) edited in place: the chain no longer verifies, and the
    // rest of the report is still there.
    f.clients
        .dynamodb()
        .update_item()
        .table_name(&f.names.audit)
        .key("incidentId", AttributeValue::S(id.clone()))
        .key("seq", AttributeValue::N("4".into()))
        .update_expression("SET #d = :d")
        .expression_attribute_names("#d", "detail")
        .expression_attribute_values(
            ":d",
            AttributeValue::S(
                json!({"step": "snapshot-volumes", "error": "Retryable", "cause": "nothing happened"})
                    .to_string(),
            ),
        )
        .send()
        .await?;
    let t = report::build(&f.clients, &f.names, &f.bucket, id).await?;
    match &t.audit.verification {
        Verification::Failed { name, message } => {
            assert_eq!(*name, ErrorName::VerificationFailed);
            assert!(
                message.contains("record 4 does not match its hash (edited)"),
                "{message}"
            );
        }
        Verification::Verified(v) => panic!("an edited chain verified: {v:?}"),
    }
    assert_eq!(t.problems().len(), 1, "{:?}", t.problems());
    assert_eq!(t.status, Status::Contained);
    assert_eq!(t.timeline, r.timeline);
    assert_eq!(t.steps.len(), r.steps.len());
    assert_eq!(t.steps[2], r.steps[2]);
    assert_eq!(t.steps[1].error.as_ref().unwrap().cause, "nothing happened");
    assert_eq!(t.evidence, r.evidence);
    assert_eq!(t.audit.records_read, 10);
    Ok(())
}

#[tokio::test]
async fn an_unknown_incident_is_not_found_and_a_malformed_id_is_refused() -> TestResult {
    let f = fixture().await;
    let id = ir_tests::incident_id();
    let e = report::build(&f.clients, &f.names, &f.bucket, &id)
        .await
        .unwrap_err();
    assert!(matches!(e, ReportError::NotFound { .. }), "{e:?}");
    assert_eq!(e.error_name(), ErrorName::NotFound);
    assert_eq!(
        e.to_string(),
        format!("no incident {id} in table {}", f.names.incidents)
    );
    let e = report::build(&f.clients, &f.names, &f.bucket, "inc-nope")
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::InvalidInput);
    Ok(())
}

#[tokio::test]
async fn a_failed_release_is_recorded_and_the_next_one_resolves_the_incident() -> TestResult {
    use ir_incident::release::{IncidentRelease, ReleaseError, release_incident};

    let f = fixture().await;
    let b = contained_incident(&f).await;
    let id = &b.incident_id;
    let incidents = IncidentStore::new(f.clients.clone(), f.names.clone());
    let log = AuditLog::new(f.clients.clone(), f.names.clone());
    let instance_id = incidents.get(id).await?.unwrap().resource.id().to_owned();
    let settings = RecorderSettings {
        evidence_bucket: f.bucket.clone(),
        evidence: evidence_config(),
        slots: ir_incident::recorder::SlotSettings::default(),
    };
    let policy = ir_tests::fixtures::lead_policy(&[
        "arn:aws:iam::123456789012:role/responders/SecurityLead",
    ]);
    let enforce = IncidentRelease {
        incident_id: id.clone(),
        mode: Mode::Enforce,
        reason: Some("rebuilt".into()),
        force: false,
    };
    let now = OffsetDateTime::now_utc();
    let release = |caller: &'static str| {
        let (clients, names, settings, policy, req) = (
            f.clients.clone(),
            f.names.clone(),
            settings.clone(),
            policy.clone(),
            enforce.clone(),
        );
        async move { release_incident(&clients, &names, settings, &policy, &req, caller, now).await }
    };

    // Not an approver: refused before anything is read.
    let e = release("arn:aws:sts::123456789012:assumed-role/Developer/mallory")
        .await
        .unwrap_err();
    assert!(matches!(e, ReleaseError::NotAnApprover { .. }), "{e}");
    assert_eq!(e.error_name(), ErrorName::AccessDenied);

    // The instance is now held by another incident (its hold in the keys table says so):
    // release refuses to touch it, and the failure is on the incident and in the chain, under
    // the approver who asked.
    let other = ir_tests::incident_id();
    let hold_key = format!(
        "isolation#{}:{}:{instance_id}",
        ir_tests::ACCOUNT_ID,
        ir_tests::REGION
    );
    let set_holder = |holder: String| {
        f.clients
            .dynamodb()
            .update_item()
            .table_name(&f.names.keys)
            .key(
                "key",
                aws_sdk_dynamodb::types::AttributeValue::S(hold_key.clone()),
            )
            .update_expression("SET incidentId = :i")
            .expression_attribute_values(":i", aws_sdk_dynamodb::types::AttributeValue::S(holder))
            .send()
    };
    set_holder(other.clone()).await?;
    // A forged tag naming yet another incident plays no part.
    f.clients
        .ec2()
        .create_tags()
        .resources(&instance_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("ir:incident")
                .value(ir_tests::incident_id())
                .build(),
        )
        .send()
        .await?;
    let chain_before = log.chain(id).await?.len();
    let e = release(ALICE).await.unwrap_err();
    assert!(matches!(e, ReleaseError::Action(_)), "{e}");
    assert_eq!(e.error_name(), ErrorName::Conflict, "{e}");
    assert!(e.to_string().contains(&other), "{e}");
    let stored = incidents.get(id).await?.unwrap();
    assert_eq!(stored.summary.status, Status::Contained);
    let last_error = stored.last_error.unwrap();
    assert_eq!(last_error.step, "release");
    assert!(
        last_error.message.contains(&other),
        "{}",
        last_error.message
    );
    let chain = log.chain(id).await?;
    assert_eq!(chain.len(), chain_before + 1);
    let failed = chain.last().unwrap();
    assert_eq!(
        (failed.action.as_str(), failed.actor.as_str()),
        ("release-failed", ALICE)
    );
    assert_eq!(failed.detail["error"], "Conflict");

    // The hold back with this incident, the release runs (the forged tag still there): resolved,
    // the error cleared, the head anchored again, the hold gone.
    set_holder(id.to_string()).await?;
    let done = release(ALICE).await?;
    assert_eq!(
        (done.from, done.status),
        (Status::Contained, Status::Resolved)
    );
    assert!(
        done.report
            .changes
            .iter()
            .any(|c| c.attribute == "security-groups")
    );
    let recorded = done.recorded.unwrap();
    let anchor = recorded.anchor.unwrap();
    assert_eq!(anchor.reason, "resolved");
    let hold = f
        .clients
        .dynamodb()
        .get_item()
        .table_name(&f.names.keys)
        .key(
            "key",
            aws_sdk_dynamodb::types::AttributeValue::S(hold_key.clone()),
        )
        .consistent_read(true)
        .send()
        .await?;
    assert!(hold.item.is_none(), "the hold is released: {hold:?}");
    let stored = incidents.get(id).await?.unwrap();
    assert_eq!(stored.summary.status, Status::Resolved);
    assert_eq!(stored.last_error, None);
    assert_eq!(stored.summary.timeline.resolved_at, Some(now));
    let chain = log.chain(id).await?;
    let tail: Vec<(&str, &str)> = chain[chain.len() - 2..]
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("action:ir-release-containment", ALICE),
            ("resolved", ALICE)
        ]
    );
    assert_eq!(anchor.seq, chain.last().unwrap().seq);

    // The report tells it: resolved, the three anchors verified (entered containment, left it,
    // resolved).
    let r = report::build(&f.clients, &f.names, &f.bucket, id).await?;
    assert_eq!(r.status, Status::Resolved);
    let v = r.audit.verification.verified().unwrap();
    assert_eq!((v.records, v.anchors_checked), (chain.len(), 3));

    // And it was stored with the resolution, locked: the same report.
    let filed = done.incident_report.unwrap();
    assert!(filed.is_complete(), "{filed:?}");
    let (page, json) = stored_report(&f, &filed).await;
    assert_eq!(json, serde_json::to_value(&r)?);
    assert_eq!(page, report::html::render(&r, now));
    Ok(())
}

/// The two copies `filed` names, each read back by version: locked (COMPLIANCE, until the
/// retention after the write), the bytes their SHA-256 says; returns (HTML, JSON).
async fn stored_report(f: &Fixture, filed: &report::store::Filed) -> (String, serde_json::Value) {
    let formats: Vec<&str> = filed.copies.iter().map(|c| c.format.as_str()).collect();
    assert_eq!(formats, ["html", "json"]);
    let mut bodies = Vec::new();
    for c in &filed.copies {
        assert_eq!(c.bucket, f.bucket);
        let got = f
            .clients
            .s3()
            .get_object()
            .bucket(&c.bucket)
            .key(&c.key)
            .version_id(&c.version_id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.object_lock_mode(),
            Some(&aws_sdk_s3::types::ObjectLockMode::Compliance),
            "{}",
            c.key
        );
        let until = got.object_lock_retain_until_date().unwrap().secs();
        assert_eq!(until, c.retain_until.unix_timestamp(), "{}", c.key);
        let in_a_day = (OffsetDateTime::now_utc() + Duration::days(1)).unix_timestamp();
        assert!(
            (in_a_day - until).abs() < 300,
            "retention of one day: {until}"
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(sha256_hex(&bytes), c.sha256, "{}", c.key);
        assert_eq!(bytes.len() as u64, c.size);
        bodies.push(String::from_utf8(bytes.to_vec()).unwrap());
    }
    let json = serde_json::from_str(&bodies[1]).unwrap();
    (bodies.swap_remove(0), json)
}

#[tokio::test]
async fn a_resolution_stores_the_report_locked_and_a_failure_to_store_it_undoes_nothing()
-> TestResult {
    use ir_incident::release::{IncidentResolution, resolve_incident};

    let f = fixture().await;
    let settings = RecorderSettings {
        evidence_bucket: f.bucket.clone(),
        evidence: evidence_config(),
        slots: ir_incident::recorder::SlotSettings::default(),
    };
    let policy = ir_tests::fixtures::lead_policy(&[
        "arn:aws:iam::123456789012:role/responders/SecurityLead",
    ]);
    let incidents = IncidentStore::new(f.clients.clone(), f.names.clone());
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let resolve = |id: String| {
        let (clients, names, settings, policy) = (
            f.clients.clone(),
            f.names.clone(),
            settings.clone(),
            policy.clone(),
        );
        async move {
            let req = IncidentResolution {
                incident_id: id,
                reason: "rebuilt from infrastructure code".into(),
            };
            resolve_incident(&clients, &names, settings, &policy, &req, ALICE, now).await
        }
    };

    // Resolved: both copies stored, locked, and they are the report of the resolved incident.
    let b = contained_incident(&f).await;
    let done = resolve(b.incident_id.clone()).await?;
    assert_eq!(done.status, Status::Resolved);
    let filed = &done.incident_report;
    assert!(filed.is_complete(), "{filed:?}");
    assert_eq!(
        filed.copies[0].key,
        format!("incidents/{}/report/report.html", b.incident_id)
    );
    let (page, json) = stored_report(&f, filed).await;
    let r = report::build(&f.clients, &f.names, &f.bucket, &b.incident_id).await?;
    assert_eq!(r.status, Status::Resolved);
    assert_eq!(json, serde_json::to_value(&r)?);
    assert_eq!(json["update"]["status"], "Resolved");
    assert_eq!(page, report::html::render(&r, now));
    assert!(page.contains("<svg") && page.contains("id=\"timeline\""));
    assert!(page.contains("class=\"mark mark-resolved\""), "{page}");

    // A key already holding a report: the incident is resolved all the same, the outcome says
    // the report was not stored and why, and nothing else was written.
    let c = contained_incident(&f).await;
    let taken = report::store::key(&c.incident_id, "html");
    f.clients
        .s3()
        .put_object()
        .bucket(&f.bucket)
        .key(&taken)
        .body(b"someone else's page".to_vec().into())
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .send()
        .await?;
    let done = resolve(c.incident_id.clone()).await?;
    assert_eq!(done.status, Status::Resolved);
    let stored = incidents.get(&c.incident_id).await?.unwrap();
    assert_eq!(stored.summary.status, Status::Resolved);
    let filed = &done.incident_report;
    assert!(filed.copies.is_empty(), "{filed:?}");
    let failure = filed.failure.as_ref().unwrap();
    assert_eq!(failure.error, ErrorName::Conflict);
    assert!(failure.message.contains(&taken), "{}", failure.message);
    let json_key = report::store::key(&c.incident_id, "json");
    let absent = f
        .clients
        .s3()
        .head_object()
        .bucket(&f.bucket)
        .key(&json_key)
        .send()
        .await;
    assert!(absent.is_err(), "{json_key} was written: {absent:?}");
    Ok(())
}
