//! ir-request-approval's and ir-decide-approval's code ([`ir_incident::approval`]): the gate
//! that waits on a task token until an approver decides, and the one decision path (who may
//! decide, once, within the window), whose errors never show the token.

use std::sync::{Arc, Mutex};

use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::types::ExecutionStatus;
use ir_aws::store::{ApprovalRequest as StoredRequest, ApprovalStatus, ApprovalStore, TaskToken};
use ir_chat::fake::{block_actions_payload, signed_interaction};
use ir_chat::slack::blocks::APPROVE_ACTION_ID;
use ir_core::Decision;
use ir_core::config::Mode;
use ir_core::orchestration::ApprovalRequest;
use ir_incident::approval::{
    ApproverPolicy, DecideError, DecisionRequest, GateSettings, Verdict, decide, request,
};
use ir_incident::slack_decision::{SlackApprovals, SlackRequest, decide_from_slack};
use ir_tests::{TestResult, clients, unique_name};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::captured_log::capture;

use super::{
    Fixture, attribute, create_machine, env, finished, fixture, sent, status, stored_and_triaged,
    written,
};

/// The identity the gate runs as (its role's Lambda session).
const GATE: &str = "arn:aws:sts::123456789012:assumed-role/ir-request-approval/ir-request-approval";
pub(super) const ALICE: &str =
    "arn:aws:sts::123456789012:assumed-role/SecurityLead/alice@example.com";
pub(super) const BOB: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/bob@example.com";
const CAROL: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/carol@example.com";
const EVE: &str = "arn:aws:sts::123456789012:assumed-role/Developer/eve@example.com";

/// The log of this test binary, captured (task tokens must never be in it).
fn logs() -> String {
    String::from_utf8_lossy(&capture().0.lock().unwrap()).into_owned()
}

impl Fixture {
    pub(super) fn gate(&self) -> GateSettings {
        GateSettings {
            requester: GATE.to_owned(),
            topic_arn: self.topic.clone(),
            two_person_rule: true,
            token_key: None,
        }
    }
}

pub(super) fn policy() -> ApproverPolicy {
    ir_tests::fixtures::lead_policy(&[
        "arn:aws:iam::123456789012:role/responders/SecurityLead",
        // Listed by mistake: the gate's own role (a deployment names it a suite role).
        "arn:aws:iam::123456789012:role/ir-request-approval",
    ])
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
                        "incidentId.$": "$.incidentId",
                        "level": 0,
                        "plan.$": "$.plan",
                        "stepId.$": "$.stepId",
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
pub(super) async fn start_gate(
    sfn: &Sfn,
    decision: &Decision,
    step_key: &str,
) -> (String, ApprovalRequest, String) {
    let function = unique_name("ir-request-approval");
    let machine = create_machine(sfn, &gate_machine(&function)).await;
    let step_id = decision.plan()[step_key].id.clone();
    let plan = ir_tests::planned_report(&decision.incident_id, &step_id, "ir-isolate-instance");
    let input = json!({
        "incidentId": decision.incident_id,
        "stepId": step_id,
        "plan": plan,
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
        plan_hash: None,
    }
}

fn assert_no_token(token: &str, what: &str, text: &str) {
    assert!(!text.contains(token), "the task token leaked into {what}");
}

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
            "DynamoDB:GetItem", // the incident: its recorded plan and escalation
            "DynamoDB:Query",   // its chain: retries of the step (round, requester)
            "DynamoDB:PutItem", // the request, with the token
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
            "DynamoDB:GetItem",
            "DynamoDB:Query",
            "DynamoDB:PutItem",
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
        // The plan approved is the one shown, by its hash (an empty plan here: the gate was
        // handed a dry-run that changes nothing).
        format!("### The Plan (sha256 {})\n", ir_core::action::plan_hash(&[])),
        "- nothing to change: everything is already in place\n".to_owned(),
        format!(
            "`ir approve {id} --step isolate-instance --plan-hash {} [--reason \"...\"]`",
            ir_core::action::plan_hash(&[])
        ),
        format!("`ir reject {id} --step isolate-instance --reason \"...\"`"),
        "The approval holds for this plan only".to_owned(),
        "This step needs 2 approvals from different people (security_engineer or a higher role); one rejection rejects it.".to_owned(),
        "the person who asked for the approval cannot approve it".to_owned(),
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

    // The gate's own role, listed as an approver by mistake, in another session: one of the
    // suite's roles, which never decide; refused before any call.
    let me_too = "arn:aws:sts::123456789012:assumed-role/ir-request-approval/someone-else";
    let mut deployed = policy.clone();
    deployed.suite = vec!["arn:aws:iam::123456789012:role/ir-request-approval".to_owned()];
    let mark = f.mark();
    let e = decide(&f.clients, &f.names, &deployed, &approve(None), me_too, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DecideError::NotAnApprover(n) if n.why.contains("suite's own roles")),
        "{e}"
    );
    assert!(f.calls(mark).is_empty());

    // The person who asked (the gate's session name), deciding in a listed role: the
    // two-person rule compares people, whatever the role.
    let asker = "arn:aws:sts::123456789012:assumed-role/SecurityLead/ir-request-approval";
    let e = decide(&f.clients, &f.names, &policy, &approve(None), asker, now)
        .await
        .unwrap_err();
    assert!(matches!(e, DecideError::SelfApproval { .. }), "{e}");
    assert_eq!(e.http_status(), 403);
    assert_eq!(f.chain(&id).await.pop().unwrap().action, "approval-refused");
    assert_eq!(status(sfn, &execution).await.0, ExecutionStatus::Running);

    // A critical step needs two people. Alice's approval is counted; nothing resumes yet.
    let mark = f.mark();
    let counted = decide(
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
            "DynamoDB:GetItem",    // the request (level, requester, plan)
            "DynamoDB:UpdateItem", // the vote, conditional on the request as read
            "DynamoDB:Query",      // audit head
            "DynamoDB:PutItem",    // audit `approval-counted`
        ]
    );
    assert!(!counted.resumed);
    assert_eq!(counted.approvals, ["alice@example.com"]);
    assert_eq!(counted.approvals_required, 2);
    assert_eq!(status(sfn, &execution).await.0, ExecutionStatus::Running);
    let vote = f.chain(&id).await.pop().unwrap();
    assert_eq!(
        (vote.action.as_str(), vote.actor.as_str()),
        ("approval-counted", ALICE)
    );
    assert_eq!(vote.detail["person"], "alice@example.com");

    // Alice again, in another session of another listed role: the same person, refused.
    let alice_again = "arn:aws:iam::123456789012:user/Alice@Example.com";
    let mut both = policy.clone();
    both.roles[1].identities.push(alice_again.to_owned());
    let e = decide(
        &f.clients,
        &f.names,
        &both,
        &approve(None),
        alice_again,
        now,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DecideError::SamePerson { .. }), "{e}");
    assert_eq!(e.http_status(), 403);
    let refused = f.chain(&id).await.pop().unwrap();
    assert_eq!(refused.action, "approval-refused");
    assert!(
        refused.detail["why"]
            .as_str()
            .unwrap()
            .contains("alice@example.com approved already"),
        "{}",
        refused.detail
    );
    assert_eq!(status(sfn, &execution).await.0, ExecutionStatus::Running);

    // Bob, a second person: decided once, the execution resumes with who approved.
    let mark = f.mark();
    let resumed = decide(
        &f.clients,
        &f.names,
        &policy,
        &approve(Some("agreed")),
        BOB,
        now,
    )
    .await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",    // the request
            "DynamoDB:UpdateItem", // the deciding vote, once
            "SFN:SendTaskSuccess",
            "DynamoDB:Query",   // audit head
            "DynamoDB:PutItem", // audit `approved`
        ]
    );
    assert!(resumed.resumed);
    assert_eq!(resumed.decided_by, BOB);
    assert_eq!(resumed.level, 0);
    assert_eq!(resumed.approvals, ["alice@example.com", "bob@example.com"]);
    let (s, out) = finished(sfn, &execution).await;
    assert_eq!(s, ExecutionStatus::Succeeded);
    assert_eq!(out["gate"]["approvedBy"], BOB);
    assert_eq!(out["gate"]["reason"], "agreed");
    let approved = f.chain(&id).await.pop().unwrap();
    assert_eq!(
        (approved.action.as_str(), approved.actor.as_str()),
        ("approved", BOB)
    );
    assert_eq!(approved.detail["reason"], "agreed");
    assert_eq!(
        approved.detail["approvals"],
        json!(["alice@example.com", "bob@example.com"])
    );
    assert_eq!(
        approved.detail["principal"],
        "arn:aws:iam::123456789012:role/SecurityLead"
    );

    // A later decision (another approver, the other way): a no-op saying who decided.
    let mark = f.mark();
    let e = decide(
        &f.clients,
        &f.names,
        &policy,
        &decision_of(&id, "isolate-instance", Verdict::Reject, Some("too late")),
        CAROL,
        now,
    )
    .await
    .unwrap_err();
    assert_eq!(f.calls(mark), ["DynamoDB:GetItem"]);
    match &e {
        DecideError::AlreadyDecided {
            status, decided_by, ..
        } => {
            assert_eq!(*status, ApprovalStatus::Approved);
            assert_eq!(decided_by.as_deref(), Some(BOB));
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.http_status(), 409);
    assert!(
        e.to_string()
            .contains(&format!("already approved by {BOB}")),
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
            plan_hash: None,
            level: 0,
            role: "security_lead".into(),
            approvals_required: 1,
            requested_at,
            expires_at,
            round: 0,
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
                plan_hash: None,
                level: 1,
                role: "security_lead".into(),
                approvals_required: 1,
                requested_at: now,
                expires_at: now + time::Duration::hours(1),
                round: 0,
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
                    plan_hash: None,
                    level: 2,
                    role: "security_lead".into(),
                    approvals_required: 1,
                    requested_at: now,
                    expires_at: now + time::Duration::hours(1),
                    round: 0,
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

/// A Slack interaction request as the decision function receives it.
pub(super) fn slack_request(s: &ir_chat::fake::SignedRequest) -> SlackRequest {
    SlackRequest {
        headers: s
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        body: String::from_utf8(s.body.clone()).unwrap(),
        is_base64_encoded: false,
    }
}

#[tokio::test]
async fn slack_buttons_decide_through_the_one_path_and_forged_stale_or_replayed_clicks_do_not()
-> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let sfn = &f.clients.sfn();
    let (execution, req, _) = start_gate(sfn, &decision, "isolate_instance").await;
    let now = OffsetDateTime::now_utc();
    request(&f.clients, &f.names, &f.gate(), &req, now).await?;
    let stored = ApprovalStore::new(f.clients.clone(), f.names.clone())
        .get(&id, "isolate-instance")
        .await?
        .unwrap();
    let plan = stored.plan_hash.clone().unwrap();

    let secret = ir_chat::Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
    let slack = SlackApprovals::new(
        secret.clone(),
        [("U0ALICE", ALICE), ("U0BOB", BOB), ("U0EVE", EVE)]
            .into_iter()
            .map(|(u, a)| (u.to_owned(), a.to_owned()))
            .collect(),
    );
    let policy = policy();
    let button = |plan: &str| {
        ir_chat::slack::blocks::ApprovalRef::new(&id, "isolate-instance", plan, 0)
            .unwrap()
            .encode()
    };
    let click = |user: &str, plan: &str| {
        block_actions_payload(
            user,
            APPROVE_ACTION_ID,
            &button(plan),
            "C0IR",
            "1733000000.000100",
        )
    };
    let decide_slack = |r: SlackRequest| {
        let (clients, names, policy, slack) = (
            f.clients.clone(),
            f.names.clone(),
            policy.clone(),
            slack.clone(),
        );
        async move {
            decide_from_slack(
                &clients,
                &names,
                &policy,
                Some(&slack),
                &r,
                OffsetDateTime::now_utc(),
            )
            .await
        }
    };
    let unauthenticated = |e: &DecideError, why: &str| {
        assert!(
            matches!(e, DecideError::Unauthenticated(m) if m.contains(why)),
            "{e}"
        );
        assert_eq!(e.http_status(), 401);
    };
    let t = now.unix_timestamp();

    // Signed with another secret: nothing is read from it.
    let forged = signed_interaction(
        &ir_chat::Secret::new("not-the-apps-secret"),
        t,
        &click("U0ALICE", &plan),
    );
    unauthenticated(
        &decide_slack(slack_request(&forged)).await.unwrap_err(),
        "signature",
    );
    // Signed, then the body changed (another user).
    let mut tampered = signed_interaction(&secret, t, &click("U0EVE", &plan));
    tampered.body = signed_interaction(&secret, t, &click("U0ALICE", &plan)).body;
    unauthenticated(
        &decide_slack(slack_request(&tampered)).await.unwrap_err(),
        "signature",
    );
    // Signed ten minutes ago, or ten minutes ahead.
    for skew in [-600, 600] {
        let stale = signed_interaction(&secret, t + skew, &click("U0ALICE", &plan));
        unauthenticated(&decide_slack(slack_request(&stale)).await.unwrap_err(), "");
    }
    // Decisions from Slack not configured: refused.
    let r = slack_request(&signed_interaction(&secret, t, &click("U0ALICE", &plan)));
    let e = decide_from_slack(&f.clients, &f.names, &policy, None, &r, now)
        .await
        .unwrap_err();
    unauthenticated(&e, "not configured");
    // A Slack user nobody mapped to an identity: refused and audited on the incident.
    let stranger = signed_interaction(&secret, t, &click("U0NOBODY", &plan));
    unauthenticated(
        &decide_slack(slack_request(&stranger)).await.unwrap_err(),
        "not in notifications.slack_approvers",
    );
    let refused = f.chain(&id).await.pop().unwrap();
    assert_eq!(refused.action, "approval-refused");
    assert!(
        refused.detail["why"].as_str().unwrap().contains("U0NOBODY"),
        "{}",
        refused.detail
    );
    // A mapped user who holds no approver role.
    let eve = signed_interaction(&secret, t + 1, &click("U0EVE", &plan));
    let e = decide_slack(slack_request(&eve)).await.unwrap_err();
    assert!(matches!(e, DecideError::NotAnApprover { .. }), "{e}");
    // A button naming another plan than the one waiting: the decision holds for that plan only.
    let other = signed_interaction(&secret, t + 2, &click("U0ALICE", &"0".repeat(64)));
    let e = decide_slack(slack_request(&other)).await.unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert_eq!(status(sfn, &execution).await.0, ExecutionStatus::Running);

    // Alice approves in Slack: counted as her, through the same checks.
    let alice = slack_request(&signed_interaction(
        &secret,
        t + 3,
        &click("U0ALICE", &plan),
    ));
    let counted = decide_slack(alice.clone()).await?;
    assert!(!counted.resumed.resumed);
    assert_eq!(counted.resumed.approvals, ["alice@example.com"]);
    assert_eq!(counted.resumed.decided_by, ALICE);
    assert_eq!(counted.click.user_id, "U0ALICE");
    // The same request again (a replay within the five minutes): refused.
    unauthenticated(&decide_slack(alice).await.unwrap_err(), "already used");
    // Bob approves in Slack: two people, the gate resumes.
    let bob = slack_request(&signed_interaction(&secret, t + 4, &click("U0BOB", &plan)));
    let done = decide_slack(bob).await?;
    assert!(done.resumed.resumed);
    assert_eq!(
        done.resumed.approvals,
        ["alice@example.com", "bob@example.com"]
    );
    let audited = f.chain(&id).await;
    assert!(
        audited.iter().any(|r| r.action == "approved"
            && r.detail["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("decided in Slack by")),
        "{audited:?}"
    );
    assert_eq!(
        finished(sfn, &execution).await.0,
        ExecutionStatus::Succeeded
    );
    Ok(())
}
