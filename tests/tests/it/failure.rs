//! Failure semantics chosen per step, end to end on the offline suite. The victim's instance
//! profile loses its role before the finding arrives, so revoke-credentials (destructive,
//! `on_failure: stop` by default) fails when it plans: the playbook stops, the incident shows
//! `needs-attention` with what was and was not done, and nothing after the step ran. Once the
//! role is back, `ir retry` runs the step through a new approval (which the responder who
//! retried may not give) and the steps the stop left, to containment. With the step set to
//! `continue`, the same failure is recorded and isolation goes on.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::incident::Status;
use ir_tests::TestResult;
use ir_tests::offline::{Offline, PLAYBOOK, Settings};
use serde_json::Value;

use crate::e2e::{GATE_WAIT, RUN_WAIT, approve_by_two, audit_actions, deliver};

const STEP: &str = "revoke-credentials";

/// Takes the victim's role out of its instance profile: revoking the instance's role sessions
/// cannot be planned.
async fn break_the_profile(off: &Offline) {
    off.clients
        .iam()
        .remove_role_from_instance_profile()
        .instance_profile_name(&off.victim.profile)
        .role_name(&off.victim.role)
        .send()
        .await
        .unwrap();
}

async fn mend_the_profile(off: &Offline) {
    off.clients
        .iam()
        .add_role_to_instance_profile()
        .instance_profile_name(&off.victim.profile)
        .role_name(&off.victim.role)
        .send()
        .await
        .unwrap();
}

async fn run_status(off: &Offline, name: &str) -> ExecutionStatus {
    let arn = off.execution_arn(off.playbook_arn(PLAYBOOK), name);
    off.wait_for_execution(&arn, RUN_WAIT).await.unwrap()
}

fn details<'a>(actions: &'a [(String, Value)], action: &str) -> Vec<&'a Value> {
    actions
        .iter()
        .filter(|(a, _)| a == action)
        .map(|(_, d)| d)
        .collect()
}

#[tokio::test]
async fn a_failed_destructive_step_stops_the_playbook_and_a_retry_contains() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    break_the_profile(&off).await;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "fail000000000000000000000000d001").await;

    // Stopped: the execution fails at its `Stopped` state; the incident needs attention.
    assert_eq!(run_status(&off, &incident).await, ExecutionStatus::Failed);
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::NeedsAttention);
    let error = stored.last_error.expect("the failure is on the incident");
    assert_eq!(error.step, STEP);
    assert!(error.message.contains("has no role"), "{}", error.message);
    assert_eq!(
        off.victim.state(&off.clients).await?,
        before,
        "nothing isolated"
    );
    let actions = audit_actions(&off, &incident).await;
    let stopped = details(&actions, "playbook-stopped");
    assert_eq!(stopped.len(), 1, "{actions:?}");
    assert_eq!(stopped[0]["step"], STEP);
    assert_eq!(stopped[0]["status"], "needs-attention");
    assert_eq!(stopped[0]["applied"], serde_json::json!([]));
    assert_eq!(
        stopped[0]["notRun"],
        serde_json::json!(["isolate-instance", "notify-channel"])
    );
    assert!(
        !actions
            .iter()
            .any(|(a, d)| a == "approval-requested" && d["step"] == "isolate-instance"),
        "nothing after the stop asked for approval: {actions:?}"
    );

    // Retrying another step than the one that stopped is refused (exit 4).
    let carol = &off.people.carol;
    let wrong = off
        .ir_as(
            carol,
            &[
                "retry",
                &incident,
                "--step",
                "isolate-instance",
                "--reason",
                "x",
            ],
        )
        .await?;
    assert_eq!(
        wrong.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    // Fixed and retried by carol: a new run, a new approval round she may not decide.
    mend_the_profile(&off).await;
    let retried = off
        .ir_as(
            carol,
            &[
                "retry",
                &incident,
                "--step",
                STEP,
                "--reason",
                "role restored to the instance profile",
                "--json",
            ],
        )
        .await?;
    assert!(
        retried.status.success(),
        "{}{}",
        String::from_utf8_lossy(&retried.stdout),
        String::from_utf8_lossy(&retried.stderr)
    );
    let retried: Value = serde_json::from_slice(&retried.stdout)?;
    assert_eq!(retried["retried"]["status"], "containment", "{retried}");
    assert_eq!(
        retried["retried"]["steps"],
        serde_json::json!([STEP, "isolate-instance", "notify-channel"])
    );
    let run = format!("{incident}-retry1");
    let asked = off.wait_for_approval(&incident, STEP, 0, GATE_WAIT).await?;
    assert_eq!(asked.requester, carol.arn, "the responder who retried asks");
    let own = off
        .ir_as(
            carol,
            &[
                "approve", &incident, "--step", STEP, "--reason", "mine", "--json",
            ],
        )
        .await?;
    assert_eq!(
        own.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&own.stdout)
    );
    approve_by_two(&off, &incident, STEP).await;
    off.wait_for_approval(&incident, "isolate-instance", 0, GATE_WAIT)
        .await?;
    approve_by_two(&off, &incident, "isolate-instance").await;
    assert_eq!(run_status(&off, &run).await, ExecutionStatus::Succeeded);

    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::Contained);
    assert!(stored.last_error.is_none());
    let after = off.victim.state(&off.clients).await?;
    assert_ne!(after.interface_groups, before.interface_groups);
    assert_eq!(after.role_policies.len(), before.role_policies.len() + 1);
    let actions = audit_actions(&off, &incident).await;
    let retry = details(&actions, "retry-started");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0]["by"], carol.arn.as_str());
    assert_eq!(retry[0]["step"], STEP);
    // The steps before the stop ran once; the retried step failed once and applied once.
    let runs = |step: &str| {
        actions
            .iter()
            .filter(|(a, d)| a.starts_with("action:") && d["step"] == step)
            .count()
    };
    assert_eq!((runs("collect-evidence"), runs("snapshot-volumes")), (1, 1));
    assert_eq!(runs(STEP), 1);
    assert_eq!(details(&actions, "step-failed").len(), 1);
    let refused = details(&actions, "approval-refused");
    assert!(
        refused.iter().any(|d| d["step"] == STEP
            && d["requester"] == carol.arn.as_str()
            && d["why"].as_str().is_some_and(|w| w.contains("two-person"))),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_step_set_to_continue_is_recorded_and_the_playbook_goes_on() -> TestResult {
    let off = Offline::start(Settings {
        on_failure: vec![(PLAYBOOK.into(), STEP.into(), "continue".into())],
        ..Settings::default()
    })
    .await?;
    break_the_profile(&off).await;
    let incident = deliver(&off, "fail000000000000000000000000d002").await;
    off.wait_for_approval(&incident, "isolate-instance", 0, GATE_WAIT)
        .await?;
    approve_by_two(&off, &incident, "isolate-instance").await;
    assert_eq!(
        run_status(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::Contained);
    let actions = audit_actions(&off, &incident).await;
    assert!(details(&actions, "playbook-stopped").is_empty());
    let failed = details(&actions, "step-failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["step"], STEP);
    let finished = details(&actions, "playbook-finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["contained"], true);
    assert_eq!(finished[0]["notApplied"], serde_json::json!([STEP]));
    Ok(())
}

#[tokio::test]
async fn only_the_incidents_own_run_can_stop_it() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let incident = deliver(&off, "fail000000000000000000000000e003").await;
    off.wait_for_approval(&incident, STEP, 0, GATE_WAIT).await?;
    let stop = |execution: &str| {
        serde_json::json!({
            "kind": "playbook-stopped",
            "incidentId": incident,
            "playbookId": PLAYBOOK,
            "stepId": STEP,
            "executionName": execution,
        })
        .to_string()
    };
    // A run someone started by hand (its name is not the incident's): refused.
    let forged = off
        .invoke("ir-record", stop(&format!("forged-{incident}")).as_bytes())
        .await?;
    assert_eq!(
        forged.error.as_deref(),
        Some("InvalidInput"),
        "{}",
        forged.body
    );
    // The incident's own run, but its step did not fail: refused as well.
    let early = off.invoke("ir-record", stop(&incident).as_bytes()).await?;
    assert!(early.error.is_some(), "{}", early.body);
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::Containment);
    let actions = audit_actions(&off, &incident).await;
    assert!(details(&actions, "playbook-stopped").is_empty());
    Ok(())
}
