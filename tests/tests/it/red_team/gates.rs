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

/// Asserts the chain holds an `approval-refused` record for `step` whose reason says `why`.
async fn assert_refused(off: &Offline, incident: &str, step: &str, why: &str) {
    let refused = records(off, incident, "approval-refused", step).await;
    assert!(
        refused
            .iter()
            .any(|d| d["why"].as_str().unwrap_or_default().contains(why)),
        "no refusal saying {why:?}: {refused:?}"
    );
}

/// The approval request of `step`, as stored.
async fn approval(off: &Offline, incident: &str, step: &str) -> ir_aws::store::Approval {
    ir_aws::store::ApprovalStore::new(off.clients.clone(), off.names.clone())
        .get(incident, step)
        .await
        .expect("the approvals table")
        .expect("the request")
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
    assert_refused(&off, &incident, "revoke-credentials", "unauthenticated").await;
    let pending = approval(&off, &incident, "revoke-credentials").await;
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
    let ended = off
        .wait_for_execution(started.execution_arn(), RUN_WAIT)
        .await?;
    // The refusal is a function error the state machine catches and records, not a crash.
    assert_eq!(ended, aws_sdk_sfn::types::ExecutionStatus::Succeeded);
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

/// The decision function's answer to one `ir approve` as `who`, and its exit status.
async fn approve_as(
    off: &Offline,
    who: &ir_tests::offline::Responder,
    incident: &str,
    step: &str,
) -> (Option<i32>, String) {
    let out = off
        .ir_as(
            who,
            &["approve", incident, "--step", step, "--reason", "looks bad"],
        )
        .await
        .expect("ir approve ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn one_person_is_one_approval_and_a_level_is_decided_by_its_role() -> TestResult {
    // Level 0 (engineers) closes at once; level 1 asks the lead for five minutes.
    let off = Offline::start(Settings {
        escalation: vec![("critical".into(), vec!["1s".into(), "300s".into()])],
        ..Settings::default()
    })
    .await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "0ed0000000000000000000000000b004").await;
    let step = "revoke-credentials";
    off.wait_for_approval(&incident, step, 1, GATE_WAIT).await?;

    // 4a. An engineer deciding at the lead's level: refused, audited, nothing counted.
    let (code, said) = approve_as(&off, &off.people.bob, &incident, step).await;
    assert_eq!(code, Some(4), "refused by policy: {said}");
    assert!(
        said.contains(
            "this level asks security_lead or higher, and bob holds only security_engineer"
        ),
        "{said}"
    );
    assert_refused(&off, &incident, step, "not at this level").await;

    // The lead approves: one of the two approvals a critical step needs.
    let (code, said) = approve_as(&off, &off.people.carol, &incident, step).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("1 of 2 approvals"), "{said}");

    // 4b. The same person again, in a second session of the role: refused, audited, still one.
    let carol_again =
        ir_tests::offline::session(&off.clients, &off.people.lead_role_arn, "carol").await?;
    assert_ne!(carol_again.access_key_id, off.people.carol.access_key_id);
    let (code, said) = approve_as(&off, &carol_again, &incident, step).await;
    assert_eq!(code, Some(4), "refused by policy: {said}");
    assert!(said.contains("carol already approved"), "{said}");
    assert_refused(&off, &incident, step, "carol approved already").await;
    let waiting = approval(&off, &incident, step).await;
    assert_eq!(waiting.status, ir_aws::store::ApprovalStatus::Pending);
    assert_eq!(waiting.level, 1);
    let people: Vec<&str> = waiting
        .approvals
        .iter()
        .map(|v| v.person.as_str())
        .collect();
    assert_eq!(people, ["carol"]);

    // The execution still waits, and the victim kept its network and its role.
    let running = off.execution_arn(off.playbook_arn(PLAYBOOK), &incident);
    let described = off
        .clients
        .sfn()
        .describe_execution()
        .execution_arn(&running)
        .send()
        .await?;
    assert_eq!(
        described.status(),
        &aws_sdk_sfn::types::ExecutionStatus::Running
    );
    assert_eq!(off.victim.state(&off.clients).await?, before);
    Ok(())
}

#[tokio::test]
async fn a_plan_that_changes_after_it_was_approved_changes_nothing_and_is_asked_again() -> TestResult
{
    let off = Offline::start(Settings::default()).await?;
    let incident = deliver(&off, "0ed0000000000000000000000000b005").await;
    // The first gate (the role's sessions) is rejected: only the isolation matters here.
    off.wait_for_approval(&incident, "revoke-credentials", 0, GATE_WAIT)
        .await?;
    let out = off
        .ir_as_responder(&[
            "reject",
            &incident,
            "--step",
            "revoke-credentials",
            "--reason",
            "not this one",
        ])
        .await?;
    assert!(out.status.success(), "{out:?}");

    let step = "isolate-instance";
    let asked = off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
    let approved_hash = asked.plan_hash.clone().expect("the plan's hash");
    let (code, said) = approve_as(&off, &off.people.alice, &incident, step).await;
    assert!(
        code == Some(0) && said.contains("1 of 2 approvals"),
        "{said}"
    );

    // 10. Between the plan the approvers saw and the step's run, a third interface appears on
    //     the victim (one isolation would leave open if the approved plan ran as approved).
    let ec2 = off.clients.ec2();
    let group = off.victim.groups.values().next().expect("a group").clone();
    let third = ec2
        .create_network_interface()
        .subnet_id(&off.victim.subnet_id)
        .groups(&group)
        .send()
        .await?
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .expect("the interface id")
        .to_owned();
    ec2.attach_network_interface()
        .network_interface_id(&third)
        .instance_id(&off.victim.instance_id)
        .device_index(2)
        .send()
        .await?;
    let before = off.victim.state(&off.clients).await?;

    // Bob's approval completes the old plan's approval; the action re-plans, finds another
    // plan, refuses PlanChanged and changes nothing; the gate asks again with the new plan.
    let (code, said) = approve_as(&off, &off.people.bob, &incident, step).await;
    assert_eq!(code, Some(0), "{said}");
    let again = off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
    let new_hash = again.plan_hash.clone().expect("the new plan's hash");
    assert_ne!(new_hash, approved_hash);
    assert!(
        again.plan.to_string().contains(&third),
        "the new plan names the new interface: {}",
        again.plan
    );
    assert!(
        again.approvals.is_empty(),
        "a new plan is asked from scratch"
    );
    let refused = records(&off, &incident, "step-not-approved", step).await;
    assert!(
        refused.iter().any(|d| d["error"] == "PlanChanged"
            && d["cause"]
                .as_str()
                .unwrap_or_default()
                .contains(&approved_hash)),
        "{refused:?}"
    );
    assert_eq!(off.victim.state(&off.clients).await?, before);
    let third_groups = ec2
        .describe_network_interfaces()
        .network_interface_ids(&third)
        .send()
        .await?;
    let groups: Vec<&str> = third_groups
        .network_interfaces()
        .iter()
        .flat_map(|n| n.groups())
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(
        groups,
        [group.as_str()],
        "the new interface was not touched"
    );

    // A decision naming the old plan's hash is refused: it approves a plan nobody runs.
    let out = off
        .ir_as(
            &off.people.alice,
            &[
                "approve",
                &incident,
                "--step",
                step,
                "--plan-hash",
                &approved_hash,
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(4), "refused by policy");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plan changed"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stolen_task_token_resumes_a_run_that_changes_nothing() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "0ed0000000000000000000000000b006").await;
    let step = "revoke-credentials";
    let asked = off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;

    // 5. Someone who got hold of the token in the clear (modelled here by opening the sealed
    //    token with the key, as only the decision role may) resumes the execution straight
    //    through Step Functions, claiming an approver: no decision function, no approval.
    let token = ir_aws::sealed::open(&off.clients, &incident, step, &asked.task_token)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let claim = json!({
        "approvedBy": off.people.carol.arn,
        "approvedAt": "2026-12-04T00:00:00Z",
        "reason": "trust me"
    });
    off.clients
        .sfn()
        .send_task_success()
        .task_token(token.expose())
        .output(claim.to_string())
        .send()
        .await?;

    // The execution goes on to the action, which reads the approvals table itself: pending,
    // nobody approved. Refused, audited, nothing changed.
    let deadline = std::time::Instant::now() + RUN_WAIT;
    let refused = loop {
        let refused = records(&off, &incident, "step-not-approved", step).await;
        if !refused.is_empty() || std::time::Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        refused.iter().any(|d| d["error"] == "NotApproved"
            && d["cause"]
                .as_str()
                .unwrap_or_default()
                .contains("nobody approved")),
        "{refused:?}"
    );
    assert!(
        records(&off, &incident, "approved", step).await.is_empty(),
        "no approval was recorded"
    );
    // The refusal is recorded as not approved, never as a failure that would stop the
    // playbook and leave the incident needs-attention: the playbook goes on, the next gate asks.
    off.wait_for_approval(&incident, "isolate-instance", 0, GATE_WAIT)
        .await?;
    let failed = records(&off, &incident, "step-failed", step).await;
    assert!(failed.is_empty(), "{failed:?}");
    let status = off
        .incident(&incident)
        .await?
        .expect("the incident")
        .summary
        .status;
    assert_eq!(status, ir_core::incident::Status::Containment);
    assert_eq!(off.victim.state(&off.clients).await?, before);
    Ok(())
}
