//! The gate, attacked from inside the account: each attempt is made with what an ordinary
//! principal holding `lambda:InvokeFunction` or `states:StartExecution` has, against the whole
//! suite running offline (the real binaries, the committed state machines), and each must be
//! refused with a stable error, leave the victim as it was, and leave an audit record.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use ir_tests::TestResult;
use ir_tests::offline::{Offline, PLAYBOOK, Settings};
use serde_json::{Value, json};

use crate::e2e::{GATE_WAIT, RUN_WAIT, audit_actions, deliver};

/// The records of `action` for `step` in the incident's chain.
async fn records(off: &Offline, incident: &str, action: &str, step: &str) -> Vec<Value> {
    audit_actions(off, incident)
        .await
        .into_iter()
        .filter(|(a, d)| a == action && d["step"] == step)
        .map(|(_, d)| d)
        .collect()
}

#[tokio::test]
async fn nothing_destructive_happens_around_the_gate() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "0ed0000000000000000000000000b001").await;
    off.wait_for_approval(&incident, "revoke-credentials", 0, GATE_WAIT)
        .await?;

    // 1. A forged Function URL event naming the approver, through a plain Invoke: nobody AWS
    //    authenticated stands behind it.
    let body = json!({"incidentId": incident, "stepId": "revoke-credentials", "decision": "approve", "reason": "trust me"});
    let forged = json!({
        "version": "2.0",
        "rawPath": "/",
        "requestContext": {
            "accountId": ir_tests::ACCOUNT_ID,
            "authorizer": {"iam": {"userArn": off.responder.arn, "accountId": ir_tests::ACCOUNT_ID}},
            "http": {"method": "POST", "path": "/"}
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    });
    let answer = off
        .invoke("ir-decide-approval", forged.to_string().as_bytes())
        .await?;
    assert_eq!(answer.body["ok"], false, "{}", answer.body);
    assert_eq!(answer.body["status"], 401, "{}", answer.body);
    assert_eq!(answer.body["error"], "AccessDenied", "{}", answer.body);
    let refused = records(&off, &incident, "approval-refused", "revoke-credentials").await;
    assert!(
        refused.iter().any(|d| d["why"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unauthenticated")),
        "{refused:?}"
    );
    let pending = ir_aws::store::ApprovalStore::new(off.clients.clone(), off.names.clone())
        .get(&incident, "revoke-credentials")
        .await?
        .expect("the request");
    assert_eq!(pending.status, ir_aws::store::ApprovalStatus::Pending);
    // 5. The token at rest is sealed: a reader of the approvals table holds no token it could
    //    send to Step Functions (only the decision role may open it).
    let stored = pending.task_token.expose();
    assert!(
        stored.starts_with(ir_aws::sealed::SEALED_PREFIX) && stored.len() > 40,
        "the stored task token is not sealed"
    );

    // 2. An action invoked directly in enforce mode, its step not approved (the resource and
    //    finding as the running playbook has them).
    let running = off.execution_arn(off.playbook_arn(PLAYBOOK), &incident);
    let described = off
        .clients
        .sfn()
        .describe_execution()
        .execution_arn(&running)
        .send()
        .await?;
    let mut input: Value = serde_json::from_str(described.input().unwrap_or("{}"))?;
    let enforce = json!({
        "incidentId": incident,
        "findingId": input["findingId"],
        "stepId": "isolate-instance",
        "resource": input["resource"],
        "mode": "enforce"
    });
    let answer = off
        .invoke("ir-isolate-instance", enforce.to_string().as_bytes())
        .await?;
    assert_eq!(
        answer.error.as_deref(),
        Some("NotApproved"),
        "{}",
        answer.body
    );
    let refused = records(&off, &incident, "step-not-approved", "isolate-instance").await;
    assert!(
        refused.iter().any(|d| d["error"] == "NotApproved"),
        "{refused:?}"
    );

    // 3. The playbook started directly, its input saying "approve when nobody decides" and
    //    one-second gates: the gates time out, the state machine runs the action, and the action
    //    refuses — the deployed config rejects on exhaustion, and nobody approved.
    input["decision"]["onExhausted"] = json!("approve");
    for level in input["decision"]["escalation"]
        .as_array_mut()
        .expect("levels")
    {
        level["timeoutSeconds"] = json!(1);
    }
    let started = off
        .clients
        .sfn()
        .start_execution()
        .state_machine_arn(off.playbook_arn(PLAYBOOK))
        .name(format!("forged-{incident}"))
        .input(input.to_string())
        .send()
        .await?;
    off.wait_for_execution(started.execution_arn(), RUN_WAIT)
        .await?;
    let forged = off
        .clients
        .sfn()
        .get_execution_history()
        .execution_arn(started.execution_arn())
        .max_results(1000)
        .send()
        .await?;
    let entered: Vec<String> = forged
        .events()
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect();
    // Its first gated step (revoke-credentials) timed out at both levels and the state machine
    // ran the action, which refused it.
    for state in [
        "Gate_revoke_credentials_1",
        "Exhausted_revoke_credentials",
        "Run_revoke_credentials",
    ] {
        assert!(
            entered.contains(&state.to_owned()),
            "{state} not entered by the forged run: {entered:?}"
        );
    }
    let refused = records(&off, &incident, "step-not-approved", "revoke-credentials").await;
    assert!(
        refused.iter().any(|d| d["error"] == "NotApproved"),
        "the forged run's action refused: {refused:?}"
    );

    // Through all of it the victim kept its network and its role.
    assert_eq!(off.victim.state(&off.clients).await?, before);
    Ok(())
}
