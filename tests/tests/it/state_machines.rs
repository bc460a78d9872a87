//! The committed state machines (`statemachines/*.asl.json`) run on the emulator's Step
//! Functions engine: the same files the template deploys, with their `${…}` substitutions
//! filled with the names of fake functions served by a small Lambda Invoke API
//! ([`ir_tests::FakeLambda`]: canned answers per function, every request recorded) and the ARNs
//! of the playbook state machines created here.
//!
//! One emulator serves every test of this file (it needs the launcher's Lambda routing, so it is
//! a private one, started once); each test creates its own state machines and functions under a
//! `unique_name` prefix. Nothing sleeps for a fixed time: tests wait for an execution's status
//! or for a recorded invocation, with a deadline.

// Test helpers fail loudly by panicking.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::action::{ActionReport, ContainmentRequest, Outcome};
use ir_core::asl;
use ir_core::config::{Mode, OnExhausted};
use ir_core::contracts::IngestOutput;
use ir_core::enrich::Enrichment;
use ir_core::orchestration::{ApprovalRequest, NotifyRequest, PlaybookInput, RecordRequest};
use ir_core::triage::EscalationLevel;
use ir_core::{Decision, Engine, TriageInput};
use ir_tests::{Fallback, LambdaCloud, Reply, TestResult, unique_name};
use serde_json::{Value, json};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ir-test-states";
const DEADLINE: Duration = Duration::from_secs(30);
const SAMPLE: &str = "events/guardduty-cryptocurrency-bitcointool-dns.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------------------------
// The emulator with Lambda routed to a fake (canned replies per function, every invocation
// recorded), once for the whole file.

fn env() -> &'static LambdaCloud {
    static ENV: OnceLock<LambdaCloud> = OnceLock::new();
    ENV.get_or_init(|| LambdaCloud::start(Fallback::Unconfigured))
}

// ---------------------------------------------------------------------------------------------
// Deploying the committed files.

fn committed(file: &str) -> Value {
    let path = repo().join("statemachines").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `ir playbooks render`)", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// State machines created from the committed files, their functions named `<prefix>-<Name>`.
struct Deployed {
    prefix: String,
    machines: BTreeMap<String, String>,
}

impl Deployed {
    /// The fake function behind a substitution (`RecordFunction`).
    fn function(&self, substitution: &str) -> String {
        format!("{}-{substitution}", self.prefix)
    }

    fn machine(&self, file: &str) -> &str {
        &self.machines[file]
    }
}

/// Creates the files' state machines in order (playbooks before the triage that starts them).
async fn deploy(sfn: &Sfn, tag: &str, files: &[&str]) -> Deployed {
    let prefix = unique_name(tag);
    let mut values = BTreeMap::new();
    let mut machines = BTreeMap::new();
    for file in files {
        let doc = committed(file);
        for name in asl::placeholders(&doc) {
            if name.ends_with("Function") {
                values.insert(name.clone(), format!("{prefix}-{name}"));
            }
        }
        let definition = asl::substitute(&doc, &values).unwrap_or_else(|e| panic!("{file}: {e}"));
        let machine_name = format!("{prefix}-{}", file.trim_end_matches(asl::FILE_SUFFIX));
        let created = sfn
            .create_state_machine()
            .name(&machine_name)
            .definition(definition.to_string())
            .role_arn(ROLE_ARN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{file}: CreateStateMachine: {e:?}"));
        let arn = created.state_machine_arn().to_owned();
        if let Some(id) = file
            .strip_prefix(asl::PLAYBOOK_FILE_PREFIX)
            .and_then(|f| f.strip_suffix(asl::FILE_SUFFIX))
        {
            values.insert(asl::state_machine_substitution(id), arn.clone());
        }
        machines.insert((*file).to_owned(), arn);
    }
    Deployed { prefix, machines }
}

async fn start(sfn: &Sfn, machine: &str, name: &str, input: &Value) -> String {
    sfn.start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_owned()
}

async fn describe(sfn: &Sfn, execution: &str) -> DescribeExecutionOutput {
    sfn.describe_execution()
        .execution_arn(execution)
        .send()
        .await
        .unwrap()
}

/// Waits for the execution to end (poll DescribeExecution, deadline [`DEADLINE`]).
async fn finished(sfn: &Sfn, execution: &str) -> DescribeExecutionOutput {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = describe(sfn, execution).await;
        if d.status() != &ExecutionStatus::Running {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{execution} still RUNNING after {DEADLINE:?}; states: {:?}",
            entered(sfn, execution).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn output(d: &DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().unwrap_or("null")).unwrap()
}

/// The states the execution entered, in order.
async fn entered(sfn: &Sfn, execution: &str) -> Vec<String> {
    let history = sfn
        .get_execution_history()
        .execution_arn(execution)
        .max_results(1000)
        .send()
        .await
        .unwrap();
    history
        .events()
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect()
}

fn assert_succeeded(d: &DescribeExecutionOutput) {
    assert_eq!(
        d.status(),
        &ExecutionStatus::Succeeded,
        "error={:?} cause={:?}",
        d.error(),
        d.cause()
    );
}

// ---------------------------------------------------------------------------------------------
// Real contracts: one incident of a bundled finding, triaged by ir-core.

struct Incident {
    input: TriageInput,
    enrichment: Enrichment,
    decision: Decision,
    playbook_input: PlaybookInput,
}

/// The cryptocurrency finding on the production instance with five earlier incidents: critical,
/// immediate-isolation, with approval gates on revoking the instance role's sessions and on
/// isolating the instance.
fn incident() -> Incident {
    let bytes = std::fs::read(repo().join(SAMPLE)).unwrap();
    let normalized = ir_core::normalize(&bytes).unwrap();
    let ingest = IngestOutput::from_normalized(normalized, time::OffsetDateTime::now_utc());
    let mut input = ingest.incidents.into_iter().next().unwrap();
    input.history_count = 5;
    let engine = Engine::embedded().unwrap();
    let enrichment = engine.enrich(&input.events, input.history_count);
    let decision = engine
        .decide(
            &input.incident_id,
            &input.events,
            &enrichment,
            input.detected_at,
        )
        .unwrap();
    assert_eq!(decision.playbook.id, "immediate-isolation");
    assert!(decision.plan()["isolate_instance"].requires_approval);
    let playbook_input =
        PlaybookInput::new(&input.events, decision.clone(), input.detected_at).unwrap();
    Incident {
        input,
        enrichment,
        decision,
        playbook_input,
    }
}

/// Any contract value as JSON. (Parsing goes through text: the contracts keep raw findings
/// as `RawValue`, which only deserializes from text.)
macro_rules! to_json {
    ($v:expr) => {
        serde_json::to_value($v).unwrap()
    };
}

fn report(incident_id: &str, step_id: &str, action: &str) -> Value {
    to_json!(&ActionReport {
        incident_id: incident_id.to_owned(),
        step_id: step_id.to_owned(),
        action: action.to_owned(),
        mode: Mode::DryRun,
        outcome: Outcome::Planned,
        changes: Vec::new(),
        record: None,
        artifacts: None,
        notes: vec![format!("{step_id} planned")],
        aws_calls: 1,
    })
}

fn record_requests(calls: &[Value]) -> Vec<RecordRequest> {
    calls
        .iter()
        .map(|c| {
            serde_json::from_str(&c.to_string())
                .unwrap_or_else(|e| panic!("not a RecordRequest ({e}): {c}"))
        })
        .collect()
}

fn kinds(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            let step = c.get("stepId").and_then(Value::as_str).unwrap_or_default();
            format!("{} {step}", c["kind"].as_str().unwrap_or_default())
                .trim()
                .to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Triage.

const PLAYBOOK_FILES: [&str; 3] = [
    "playbook-immediate-isolation.asl.json",
    "playbook-investigate-and-notify.asl.json",
    "playbook-queue-for-review.asl.json",
];

async fn deploy_triage(sfn: &Sfn, tag: &str) -> Deployed {
    let mut files = PLAYBOOK_FILES.to_vec();
    files.push(asl::TRIAGE_FILE);
    deploy(sfn, tag, &files).await
}

#[tokio::test]
async fn triage_starts_the_chosen_playbook_once_per_incident() -> TestResult {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let d = deploy_triage(&sfn, "triage-ok").await;
    let inc = incident();
    let id = inc.input.incident_id.clone();
    let fake = &env.lambda;
    fake.reply(
        &d.function("EnrichFunction"),
        vec![Reply::Ok(to_json!(&inc.enrichment))],
    );
    fake.reply(
        &d.function("ScoreFunction"),
        vec![Reply::Ok(to_json!(&inc.decision))],
    );
    // The recorder answers `triaged` with the playbook input (and the started playbook's
    // records with the same: the state machine keeps the answer at its own result path).
    fake.reply(
        &d.function("RecordFunction"),
        vec![Reply::Ok(to_json!(&inc.playbook_input))],
    );
    // The started playbook runs against fakes too, and waits at its first approval gate.
    // The gated steps plan (dry-run) before their gates ask.
    for (f, step) in [
        ("CollectEvidenceFunction", "collect-evidence"),
        ("SnapshotVolumesFunction", "snapshot-volumes"),
        ("RevokeSessionsFunction", "revoke-credentials"),
        ("DisableAccessKeysFunction", "disable-access-keys"),
        ("IsolateInstanceFunction", "isolate-instance"),
    ] {
        fake.reply(&d.function(f), vec![Reply::Ok(report(&id, step, f))]);
    }
    fake.reply(
        &d.function("RequestApprovalFunction"),
        vec![Reply::Ok(json!({}))],
    );

    let input = to_json!(&inc.input);
    let first = start(&sfn, d.machine(asl::TRIAGE_FILE), "first", &input).await;
    let done = finished(&sfn, &first).await;
    let states = entered(&sfn, &first).await;
    assert_eq!(
        states[..6],
        [
            "Enrich",
            "Score",
            "RecordTriage",
            "StartOrNot",
            "ChoosePlaybook",
            "StartImmediateIsolation"
        ],
        "{states:?}"
    );

    // Each function got exactly the fields of its contract.
    let enrich = fake.calls(&d.function("EnrichFunction"));
    assert_eq!(
        enrich,
        [json!({ "incidentId": id, "events": input["events"], "historyCount": 5 })]
    );
    let score = fake.calls(&d.function("ScoreFunction"));
    assert_eq!(
        score,
        [json!({
            "incidentId": id,
            "events": input["events"],
            "enrichment": to_json!(&inc.enrichment),
            "detectedAt": input["detectedAt"]
        })]
    );
    let triaged: Vec<Value> = fake
        .calls(&d.function("RecordFunction"))
        .into_iter()
        .filter(|c| c["kind"] == "triaged")
        .collect();
    assert_eq!(triaged.len(), 1);
    // Compared as JSON: `RecordRequest` is an internally tagged enum and the events keep the
    // raw finding as `RawValue`, which serde cannot deserialize through a tagged enum.
    assert_eq!(
        triaged[0],
        json!({
            "kind": "triaged",
            "incidentId": id,
            "events": input["events"],
            "decision": to_json!(&inc.decision),
            "detectedAt": input["detectedAt"],
            "revision": input["revision"]
        })
    );
    let decision: Decision = serde_json::from_value(triaged[0]["decision"].clone())?;
    assert_eq!(decision, inc.decision);

    // The start request the state machine made: the chosen playbook's state machine, the
    // execution named after the incident, the recorder's playbook input.
    let playbook = d.machine(PLAYBOOK_FILES[0]).to_owned();
    let request = start_request(&sfn, &first).await;
    assert_eq!(
        request,
        json!({
            "StateMachineArn": playbook,
            "Name": id,
            "Input": to_json!(&inc.playbook_input)
        })
    );
    for other in PLAYBOOK_FILES[1..].iter() {
        let none = sfn
            .list_executions()
            .state_machine_arn(d.machine(other))
            .send()
            .await?;
        assert!(none.executions().is_empty(), "{other}");
    }

    starts_through_the_state_machine(&sfn, &d, &inc, &done).await
}

/// The `states:startExecution` task as scheduled: its resolved `Parameters`.
async fn start_request(sfn: &Sfn, execution: &str) -> Value {
    let history = sfn
        .get_execution_history()
        .execution_arn(execution)
        .max_results(1000)
        .send()
        .await
        .unwrap();
    let scheduled: Vec<Value> = history
        .events()
        .iter()
        .filter_map(|e| e.task_scheduled_event_details())
        .filter(|t| t.resource_type() == "states")
        .map(|t| serde_json::from_str(t.parameters()).unwrap())
        .collect();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    scheduled[0].clone()
}

/// Rejects every approval the playbook execution asks for until it ends. (moto's
/// StopExecution does not end an execution that waits for a task token: it stays RUNNING
/// until the wait is over.)
async fn reject_every_gate(sfn: &Sfn, d: &Deployed, execution: &str) -> DescribeExecutionOutput {
    let fake = &env().lambda;
    let deadline = Instant::now() + DEADLINE;
    let mut answered = 0;
    loop {
        let described = describe(sfn, execution).await;
        if described.status() != &ExecutionStatus::Running {
            return described;
        }
        for call in &fake.calls(&d.function("RequestApprovalFunction"))[answered..] {
            sfn.send_task_failure()
                .task_token(approval(call).task_token)
                .error("Rejected")
                .send()
                .await
                .unwrap();
            answered += 1;
        }
        assert!(Instant::now() < deadline, "{execution} still RUNNING");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An engine that runs `states:startExecution` (AWS): the playbook execution is started by
/// the triage, and later triages of the incident cannot start another.
async fn starts_through_the_state_machine(
    sfn: &Sfn,
    d: &Deployed,
    inc: &Incident,
    done: &DescribeExecutionOutput,
) -> TestResult {
    let fake = &env().lambda;
    let id = &inc.input.incident_id;
    let input = to_json!(&inc.input);
    let playbook = d.machine(PLAYBOOK_FILES[0]);
    assert_succeeded(done);
    let started = output(done)["playbookExecution"]["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(started.ends_with(&format!(":{id}")), "{started}");
    let running = describe(sfn, &started).await;
    assert_eq!(running.status(), &ExecutionStatus::Running);
    assert_eq!(
        serde_json::from_str::<Value>(running.input().unwrap())?,
        to_json!(&inc.playbook_input)
    );
    // It waits at the first gate of the plan (revoke-credentials).
    let asked = fake
        .wait_calls(&d.function("RequestApprovalFunction"), 1)
        .await;
    assert_eq!(asked[0]["stepId"], "revoke-credentials");

    // A second triage while the playbook runs: StartExecution with the same name and the same
    // input returns the running execution (the idempotent start), no second one.
    let second = start(sfn, d.machine(asl::TRIAGE_FILE), "second", &input).await;
    let done = finished(sfn, &second).await;
    assert_succeeded(&done);
    assert_eq!(output(&done)["playbookExecution"]["executionArn"], started);

    // A third whose recorded playbook input differs (the incident grew meanwhile): the name
    // is taken, StartExecution fails with ExecutionAlreadyExists, and the triage ends as a
    // duplicate, not as a failure.
    let mut changed = inc.playbook_input.clone();
    changed.last_seen += time::Duration::minutes(5);
    fake.reply(
        &d.function("RecordFunction"),
        vec![Reply::Ok(to_json!(&changed))],
    );
    let third = start(sfn, d.machine(asl::TRIAGE_FILE), "third", &input).await;
    let done = finished(sfn, &third).await;
    assert_succeeded(&done);
    assert_eq!(
        output(&done)["error"]["Error"],
        asl::EXECUTION_ALREADY_EXISTS
    );
    assert_eq!(
        entered(sfn, &third).await.last().map(String::as_str),
        Some("PlaybookAlreadyStarted")
    );

    // After the playbook execution closed (every gate rejected), the same input is refused as
    // well.
    assert_succeeded(&reject_every_gate(sfn, d, &started).await);
    fake.reply(
        &d.function("RecordFunction"),
        vec![Reply::Ok(to_json!(&inc.playbook_input))],
    );
    let fourth = start(sfn, d.machine(asl::TRIAGE_FILE), "fourth", &input).await;
    let done = finished(sfn, &fourth).await;
    assert_succeeded(&done);
    assert_eq!(
        output(&done)["error"]["Error"],
        asl::EXECUTION_ALREADY_EXISTS
    );
    let executions = sfn
        .list_executions()
        .state_machine_arn(playbook)
        .send()
        .await?;
    assert_eq!(
        executions.executions().len(),
        1,
        "one playbook execution per incident"
    );
    assert!(
        fake.calls(&d.function("RecordFunction"))
            .iter()
            .all(|c| c["kind"] != "triage-failed")
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_triage_step_is_recorded_and_fails_the_execution() -> TestResult {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let d = deploy_triage(&sfn, "triage-fail").await;
    let inc = incident();
    let id = inc.input.incident_id.clone();
    let fake = &env.lambda;
    // Enrich is throttled once (Retryable: retried), Score refuses its input (not retried).
    fake.reply(
        &d.function("EnrichFunction"),
        vec![
            Reply::Err("Retryable", "throttled".into()),
            Reply::Ok(to_json!(&inc.enrichment)),
        ],
    );
    fake.reply(
        &d.function("ScoreFunction"),
        vec![Reply::Err(
            "InvalidInput",
            "events[0].severity: missing".into(),
        )],
    );
    fake.reply(&d.function("RecordFunction"), vec![Reply::Ok(json!({}))]);

    let execution = start(
        &sfn,
        d.machine(asl::TRIAGE_FILE),
        "failing",
        &to_json!(&inc.input),
    )
    .await;
    let done = finished(&sfn, &execution).await;
    assert_eq!(done.status(), &ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("TriageFailed"));
    let cause: Value = serde_json::from_str(done.cause().unwrap_or("null"))?;
    assert_eq!(cause["Error"], "InvalidInput", "{cause}");

    assert_eq!(fake.calls(&d.function("EnrichFunction")).len(), 2);
    assert_eq!(fake.calls(&d.function("ScoreFunction")).len(), 1);
    let recorded = fake.calls(&d.function("RecordFunction"));
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    match &record_requests(&recorded)[0] {
        RecordRequest::TriageFailed {
            incident_id,
            error,
            revision,
        } => {
            assert_eq!(incident_id, &id);
            assert_eq!(
                *revision,
                Some(0),
                "the failed revision, whose slot is freed"
            );
            assert_eq!(error.error, "InvalidInput");
            assert!(
                error.cause.contains("events[0].severity: missing"),
                "{}",
                error.cause
            );
        }
        other => panic!("expected triage-failed, got {other:?}"),
    }
    assert_eq!(
        entered(&sfn, &execution).await,
        ["Enrich", "Score", "RecordTriageFailure", "TriageFailed"]
    );
    for file in PLAYBOOK_FILES {
        let none = sfn
            .list_executions()
            .state_machine_arn(d.machine(file))
            .send()
            .await?;
        assert!(none.executions().is_empty(), "{file}");
    }
    Ok(())
}

#[tokio::test]
async fn a_decision_naming_an_unknown_playbook_is_recorded_as_a_triage_failure() -> TestResult {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let d = deploy_triage(&sfn, "triage-unknown").await;
    let inc = incident();
    let fake = &env.lambda;
    // The functions run a config with a playbook the state machines were not rendered with.
    let mut ghost = inc.playbook_input.clone();
    ghost.decision.playbook.id = "contain-and-pray".into();
    fake.reply(
        &d.function("EnrichFunction"),
        vec![Reply::Ok(to_json!(&inc.enrichment))],
    );
    fake.reply(
        &d.function("ScoreFunction"),
        vec![Reply::Ok(to_json!(&ghost.decision))],
    );
    fake.reply(
        &d.function("RecordFunction"),
        vec![Reply::Ok(to_json!(&ghost)), Reply::Ok(json!({}))],
    );
    let execution = start(
        &sfn,
        d.machine(asl::TRIAGE_FILE),
        "unknown",
        &to_json!(&inc.input),
    )
    .await;
    let done = finished(&sfn, &execution).await;
    assert_eq!(done.status(), &ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("TriageFailed"));
    assert_eq!(
        entered(&sfn, &execution).await,
        [
            "Enrich",
            "Score",
            "RecordTriage",
            "StartOrNot",
            "ChoosePlaybook",
            "UnknownPlaybook",
            "RecordTriageFailure",
            "TriageFailed"
        ]
    );
    let failed: Vec<Value> = fake
        .calls(&d.function("RecordFunction"))
        .into_iter()
        .filter(|c| c["kind"] == "triage-failed")
        .collect();
    assert_eq!(
        failed,
        [json!({
            "kind": "triage-failed",
            "incidentId": inc.input.incident_id,
            "error": {
                "Error": "UnknownPlaybook",
                "Cause": "no state machine for playbook contain-and-pray"
            },
            "revision": 0
        })]
    );
    let cause: Value = serde_json::from_str(done.cause().unwrap_or("null"))?;
    assert_eq!(cause["Error"], "UnknownPlaybook");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (b) The immediate-isolation playbook and its approval gates.

const IMMEDIATE: &str = "playbook-immediate-isolation.asl.json";

/// The playbook input with only `keep` in the plan (the other steps are skipped by their
/// checks), every escalation level given `timeout_seconds`, and `on_exhausted`.
fn playbook_input(keep: &[&str], timeout_seconds: u64, on_exhausted: OnExhausted) -> Value {
    let mut input = incident().playbook_input;
    input
        .decision
        .playbook
        .steps
        .retain(|s| keep.contains(&ir_core::playbook::step_key(&s.id).as_str()));
    assert_eq!(input.decision.plan().len(), keep.len());
    assert_eq!(
        input.decision.escalation.len(),
        2,
        "critical has two levels"
    );
    input.decision.escalation = input
        .decision
        .escalation
        .iter()
        .map(|l| EscalationLevel {
            role: l.role.clone(),
            timeout_seconds,
        })
        .collect();
    input.decision.on_exhausted = on_exhausted;
    to_json!(&input)
}

/// Deploys the playbook with its functions answering like the real ones.
async fn deploy_playbook(sfn: &Sfn, tag: &str, incident_id: &str) -> Deployed {
    let d = deploy(sfn, tag, &[IMMEDIATE]).await;
    let fake = &env().lambda;
    fake.reply(
        &d.function("RecordFunction"),
        vec![Reply::Ok(json!({ "recorded": true }))],
    );
    fake.reply(
        &d.function("RequestApprovalFunction"),
        vec![Reply::Ok(json!({}))],
    );
    for (f, step, function) in [
        (
            "IsolateInstanceFunction",
            "isolate-instance",
            "ir-isolate-instance",
        ),
        (
            "SnapshotVolumesFunction",
            "snapshot-volumes",
            "ir-snapshot-volumes",
        ),
        ("NotifyFunction", "notify-channel", "ir-notify"),
    ] {
        fake.reply(
            &d.function(f),
            vec![Reply::Ok(report(incident_id, step, function))],
        );
    }
    d
}

/// What the approval gate was asked, checked against the contract.
fn approval(call: &Value) -> ApprovalRequest {
    serde_json::from_str(&call.to_string())
        .unwrap_or_else(|e| panic!("not an ApprovalRequest ({e}): {call}"))
}

#[tokio::test]
async fn an_approved_gate_runs_the_action_then_records_it() -> TestResult {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let id = incident().input.incident_id;
    let d = deploy_playbook(&sfn, "pb-approve", &id).await;
    let fake = &env.lambda;
    let input = playbook_input(
        &["isolate_instance", "notify_channel"],
        600,
        OnExhausted::Reject,
    );
    let execution = start(&sfn, d.machine(IMMEDIATE), &id, &input).await;

    let asked = fake
        .wait_calls(&d.function("RequestApprovalFunction"), 1)
        .await;
    let request = approval(&asked[0]);
    assert_eq!(request.incident_id, id);
    assert_eq!(request.step_id, "isolate-instance");
    assert_eq!(request.level, 0);
    // The gate shows the action's own dry-run plan (Plan_isolate_instance); the step and the
    // escalation are the incident's recorded decision, not the execution input.
    assert_eq!(request.plan.step_id, "isolate-instance");
    let planned = fake.calls(&d.function("IsolateInstanceFunction"));
    assert_eq!(
        planned.len(),
        1,
        "only the plan runs before approval: {planned:?}"
    );
    assert_eq!(
        planned[0]["mode"], "dry-run",
        "the plan is a dry-run whatever the step's mode"
    );

    let granted =
        json!({ "approvedBy": "alice@example.com", "approvedAt": "2026-11-20T10:05:00Z" });
    sfn.send_task_success()
        .task_token(&request.task_token)
        .output(granted.to_string())
        .send()
        .await?;
    let done = finished(&sfn, &execution).await;
    assert_succeeded(&done);
    assert_eq!(output(&done)["gate_isolate_instance"], granted);

    let ran = fake.calls(&d.function("IsolateInstanceFunction"));
    assert_eq!(
        ran[1..],
        [json!({
            "incidentId": id,
            "findingId": input["findingId"],
            "stepId": "isolate-instance",
            "resource": input["resource"],
            "mode": "dry-run"
        })]
    );
    let containment: ContainmentRequest = serde_json::from_str(&ran[1].to_string())?;
    assert_eq!(containment.mode, Mode::DryRun);
    let notified = fake.calls(&d.function("NotifyFunction"));
    assert_eq!(notified.len(), 1);
    let notify: NotifyRequest = serde_json::from_str(&notified[0].to_string())?;
    assert_eq!(notify.step_id, "notify-channel");
    assert_eq!(notify.step.channel.as_deref(), Some("#ir-critical"));

    let recorded = fake.calls(&d.function("RecordFunction"));
    assert_eq!(
        kinds(&recorded),
        [
            "step-result isolate-instance",
            "step-result notify-channel",
            "playbook-finished"
        ]
    );
    match &record_requests(&recorded)[0] {
        RecordRequest::StepResult { report: r, .. } => {
            assert_eq!(
                to_json!(r),
                report(&id, "isolate-instance", "ir-isolate-instance")
            );
        }
        other => panic!("expected step-result, got {other:?}"),
    }
    // Steps the plan leaves out are skipped by their checks; nothing else ran.
    for f in [
        "CollectEvidenceFunction",
        "SnapshotVolumesFunction",
        "RevokeSessionsFunction",
        "DisableAccessKeysFunction",
        "DenyPrincipalFunction",
    ] {
        assert!(fake.calls(&d.function(f)).is_empty(), "{f}");
    }
    assert_eq!(
        entered(&sfn, &execution).await,
        [
            "Check_collect_evidence",
            "Check_snapshot_volumes",
            "Check_revoke_credentials",
            "Check_disable_access_keys",
            "Check_deny_principal",
            "Check_isolate_instance",
            "Plan_isolate_instance",
            "Level_isolate_instance_0",
            "Gate_isolate_instance_0",
            "Run_isolate_instance",
            "Recorded_isolate_instance",
            "Check_notify_channel",
            "Run_notify_channel",
            "Recorded_notify_channel",
            "Finish",
            "Done"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_rejected_gate_records_not_approved_and_never_runs_the_action() -> TestResult {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let id = incident().input.incident_id;
    let d = deploy_playbook(&sfn, "pb-reject", &id).await;
    let fake = &env.lambda;
    let input = playbook_input(
        &["isolate_instance", "notify_channel"],
        600,
        OnExhausted::Approve,
    );
    let execution = start(&sfn, d.machine(IMMEDIATE), &id, &input).await;

    let asked = fake
        .wait_calls(&d.function("RequestApprovalFunction"), 1)
        .await;
    let request = approval(&asked[0]);
    sfn.send_task_failure()
        .task_token(&request.task_token)
        .error("Rejected")
        .cause("bob@example.com: the instance serves the checkout; isolate after the sale")
        .send()
        .await?;
    let done = finished(&sfn, &execution).await;
    assert_succeeded(&done);

    // The plan ran (dry-run); the action never did.
    let ran = fake.calls(&d.function("IsolateInstanceFunction"));
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["mode"], "dry-run");
    let recorded = fake.calls(&d.function("RecordFunction"));
    assert_eq!(
        kinds(&recorded),
        [
            "step-not-approved isolate-instance",
            "step-result notify-channel",
            "playbook-finished"
        ]
    );
    let not_approved = &recorded[0];
    assert_eq!(not_approved["incidentId"], id);
    assert_eq!(not_approved["stepId"], "isolate-instance");
    assert_eq!(not_approved["error"]["Error"], "Rejected");
    // moto 5.2.5 drops SendTaskFailure's `cause` (its handler passes only `error` on), so the
    // Catch delivers `"Cause": null`; AWS delivers the cause.
    let cause = &not_approved["error"]["Cause"];
    assert!(
        cause.is_null()
            || cause
                .as_str()
                .is_some_and(|c| c.contains("bob@example.com")),
        "{cause}"
    );
    let states = entered(&sfn, &execution).await;
    assert!(
        states.contains(&"NotApproved_isolate_instance".to_owned()),
        "{states:?}"
    );
    assert!(
        !states.contains(&"Run_isolate_instance".to_owned()),
        "{states:?}"
    );
    Ok(())
}

/// No decision at any level: level 0 times out, level 1 is asked, then the escalation matrix
/// is exhausted and `onExhausted` decides.
async fn exhaust(on_exhausted: OnExhausted) -> (Deployed, String, Vec<String>) {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let id = incident().input.incident_id;
    let tag = match on_exhausted {
        OnExhausted::Reject => "pb-exhaust-reject",
        OnExhausted::Approve => "pb-exhaust-approve",
    };
    let d = deploy_playbook(&sfn, tag, &id).await;
    let input = playbook_input(&["isolate_instance"], 1, on_exhausted);
    let execution = start(&sfn, d.machine(IMMEDIATE), &id, &input).await;
    let done = finished(&sfn, &execution).await;
    assert_succeeded(&done);

    let fake = &env.lambda;
    let asked: Vec<ApprovalRequest> = fake
        .calls(&d.function("RequestApprovalFunction"))
        .iter()
        .map(approval)
        .collect();
    assert_eq!(asked.iter().map(|a| a.level).collect::<Vec<_>>(), [0, 1]);
    assert!(asked.iter().all(|a| a.step_id == "isolate-instance"));
    assert_ne!(asked[0].task_token, asked[1].task_token);
    let states = entered(&sfn, &execution).await;
    for s in [
        "Gate_isolate_instance_0",
        "Escalate_isolate_instance_1",
        "Level_isolate_instance_1",
        "Gate_isolate_instance_1",
        "Exhausted_isolate_instance",
    ] {
        assert!(states.contains(&s.to_owned()), "{s} not in {states:?}");
    }
    let recorded = kinds(&fake.calls(&d.function("RecordFunction")));
    (d, id, recorded)
}

#[tokio::test]
async fn an_unanswered_gate_escalates_then_is_not_approved() {
    let (d, _, recorded) = exhaust(OnExhausted::Reject).await;
    let fake = &env().lambda;
    // Only the plan (dry-run) ran.
    let ran = fake.calls(&d.function("IsolateInstanceFunction"));
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["mode"], "dry-run");
    assert_eq!(
        recorded,
        ["step-not-approved isolate-instance", "playbook-finished"]
    );
    let calls = fake.calls(&d.function("RecordFunction"));
    match &record_requests(&calls)[0] {
        RecordRequest::StepNotApproved { error, .. } => assert_eq!(error.error, "States.Timeout"),
        other => panic!("expected step-not-approved, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unanswered_gate_runs_the_action_when_the_config_approves_on_exhaustion() {
    let (d, id, recorded) = exhaust(OnExhausted::Approve).await;
    let fake = &env().lambda;
    // The plan, then the action (which checks the deployed config itself before enforcing).
    let ran = fake.calls(&d.function("IsolateInstanceFunction"));
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert_eq!(ran[1]["incidentId"], id);
    assert_eq!(
        recorded,
        ["step-result isolate-instance", "playbook-finished"]
    );
}

#[tokio::test]
async fn a_failing_action_is_recorded_and_the_playbook_goes_on() -> TestResult {
    let env = env();
    let sfn = Sfn::new(&env.cloud.sdk_config());
    let id = incident().input.incident_id;
    let d = deploy_playbook(&sfn, "pb-fail", &id).await;
    let fake = &env.lambda;
    fake.reply(
        &d.function("SnapshotVolumesFunction"),
        vec![Reply::Err(
            "NotFound",
            "instance i-0a1b2c3d4e5f60001 not found".into(),
        )],
    );
    let input = playbook_input(
        &["snapshot_volumes", "notify_channel"],
        600,
        OnExhausted::Reject,
    );
    let execution = start(&sfn, d.machine(IMMEDIATE), &id, &input).await;
    let done = finished(&sfn, &execution).await;
    assert_succeeded(&done);

    // NotFound is the function's own error: not retried.
    assert_eq!(fake.calls(&d.function("SnapshotVolumesFunction")).len(), 1);
    let recorded = fake.calls(&d.function("RecordFunction"));
    assert_eq!(
        kinds(&recorded),
        [
            "step-failed snapshot-volumes",
            "step-result notify-channel",
            "playbook-finished"
        ]
    );
    match &record_requests(&recorded)[0] {
        RecordRequest::StepFailed { error, .. } => {
            assert_eq!(error.error, "NotFound");
            assert!(error.cause.contains("not found"), "{}", error.cause);
        }
        other => panic!("expected step-failed, got {other:?}"),
    }
    Ok(())
}
