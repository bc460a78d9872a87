//! The orchestration functions against the local cloud: ingest (store + triage start), the
//! recorder, the approval gate and the authenticated decision path, and the notifier — the
//! `ir-aws` code each function runs, called with real clients over HTTP to moto. A module per
//! function ([`ingest`], [`record`], [`approval`], [`notify`]); what they share is here.
//!
//! One private emulator serves the module: its Step Functions engine sends Lambda invocations to
//! a small HTTP endpoint ([`ir_tests::FakeLambda`]), which records them (the approval gate's
//! `.waitForTaskToken` task hands its token there, as Lambda would hand it to
//! `ir-request-approval`) and also receives the SNS topic's HTTP deliveries (what a subscriber
//! really gets). Every test makes its own tables, bucket, topic and state machines under a
//! `unique_name`. Every log line of this test binary (DEBUG and above, every crate) is captured
//! and checked for task tokens.
//!
//! Nothing sleeps for a fixed time: waits poll an execution or the endpoint, with a deadline.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod announce;
mod approval;
mod ingest;
mod notify;
mod record;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::types::ExecutionStatus;
use ir_aws::Clients;
use ir_aws::store::{ApprovalStore, AuditLog, IncidentStore, TableNames, create_tables};
use ir_core::action::{
    ActionReport, Change, ChangeStatus, ContainmentRecord, EniGroups, InstanceAttributes,
    IsolationRecord, Outcome,
};
use ir_core::audit::AuditRecord;
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::orchestration::RecordRequest;
use ir_core::{Decision, Engine, IngestOutput, TriageInput};
use ir_incident::intake::Intake;
use ir_incident::recorder::{RecordOutput, Recorded, Recorder, RecorderSettings};
use ir_tests::{Fallback, LambdaCloud, clients, fixtures, unique_name};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::captured_log::capture;

const DEADLINE: Duration = Duration::from_secs(30);
const STATES_ROLE: &str = "arn:aws:iam::123456789012:role/ir-test-states";
const SAMPLE: &str = "events/guardduty-cryptocurrency-bitcointool-dns.json";

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

pub(crate) fn evidence() -> EvidenceConfig {
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
                slots: ir_incident::recorder::SlotSettings::default(),
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
pub(crate) fn triaged(mode: Mode) -> (TriageInput, Decision) {
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
            revision: 0,
        })
        .await
        .unwrap();
    assert!(matches!(out, RecordOutput::Playbook(_)));
    (input, decision)
}

/// A report of isolate-instance, as the action returns it.
pub(crate) fn isolation_report(id: &str, mode: Mode) -> ActionReport {
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
                hold_key: None,
            })
        }),
        artifacts: None,
        notes: vec![],
        aws_calls: 17,
    }
}

pub(crate) fn recorded(out: RecordOutput) -> Recorded {
    match out {
        RecordOutput::Recorded(r) => r,
        RecordOutput::Playbook(p) => panic!(
            "expected a record, got a playbook input for {}",
            p.incident_id
        ),
        RecordOutput::Slot(c) => panic!("expected a record, got a slot claim {c:?}"),
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
