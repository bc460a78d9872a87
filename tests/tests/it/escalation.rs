//! Escalation by later findings, end to end on the offline suite: a high finding on the victim
//! starts investigate-and-notify; a critical finding on the same instance re-triages the
//! incident (a new revision) and isolation runs through its gates, once, whatever the order and
//! concurrency of the deliveries; a step the earlier revision applied is recorded as done.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::Severity;
use ir_core::correlate::execution_name;
use ir_core::incident::Status;
use ir_tests::TestResult;
use ir_tests::offline::{Offline, PLAYBOOK, Settings};
use serde_json::Value;
use time::OffsetDateTime;

use crate::e2e::{
    GATE_WAIT, GATES, RUN_WAIT, approve_by_two, audit_actions, executions, incident_for,
};

const INVESTIGATE: &str = "investigate-and-notify";

/// Both playbooks in enforce mode, so that the first revision really applies its snapshot.
fn settings() -> Settings {
    Settings {
        enforce: vec![PLAYBOOK.to_owned(), INVESTIGATE.to_owned()],
        ..Settings::default()
    }
}

/// The bundled finding about the victim (high: with no earlier incidents it scores high and
/// routes to investigate-and-notify).
fn high(off: &Offline, finding_id: &str) -> Vec<u8> {
    off.victim
        .finding(
            finding_id,
            OffsetDateTime::now_utc(),
            time::Duration::minutes(5),
        )
        .unwrap()
}

/// A command-and-control finding on the same instance, GuardDuty severity 9.0: critical.
fn critical(off: &Offline, finding_id: &str) -> Vec<u8> {
    let mut envelope: Value = serde_json::from_slice(&high(off, finding_id)).unwrap();
    let detail = &mut envelope["detail"];
    detail["type"] = Value::from("Backdoor:EC2/C&CActivity.B");
    detail["severity"] = Value::from(9.0);
    detail["title"] =
        Value::from("EC2 instance is communicating with a command and control server.");
    serde_json::to_vec(&envelope).unwrap()
}

/// Every envelope delivered to `ir-ingest` at once, each on its own connection; every delivery
/// must succeed.
async fn deliver_at_once(off: &Offline, envelopes: &[&[u8]]) {
    let mut set = tokio::task::JoinSet::new();
    for envelope in envelopes {
        let endpoint = off.lambda_endpoint();
        let body = envelope.to_vec();
        set.spawn(async move { ir_tests::offline::invoke_at(&endpoint, "ir-ingest", &body).await });
    }
    while let Some(joined) = set.join_next().await {
        let answer = joined.unwrap().unwrap();
        assert_eq!(answer.error, None, "{:?}", answer.body);
    }
}

/// Approves every gate of the isolation run by two people and waits for the run to end.
async fn isolate_through_the_gates(off: &Offline, incident: &str, execution: &str) {
    for step in GATES {
        off.wait_for_approval(incident, step, 0, GATE_WAIT)
            .await
            .unwrap();
        approve_by_two(off, incident, step).await;
    }
    let arn = off.execution_arn(off.playbook_arn(PLAYBOOK), execution);
    assert_eq!(
        off.wait_for_execution(&arn, RUN_WAIT).await.unwrap(),
        ExecutionStatus::Succeeded
    );
}

/// The victim's interfaces all in one group, none of which it had before.
async fn assert_isolated(off: &Offline, before: &ir_tests::offline::VictimState) {
    let after = off.victim.state(&off.clients).await.unwrap();
    let groups: BTreeSet<&Vec<String>> = after.interface_groups.values().collect();
    assert_eq!(groups.len(), 1, "{after:?}");
    let group = groups.into_iter().next().unwrap();
    assert_eq!(group.len(), 1, "{after:?}");
    assert!(
        before
            .interface_groups
            .values()
            .all(|g| !g.contains(&group[0])),
        "{before:?} → {after:?}"
    );
}

#[tokio::test]
async fn a_later_critical_finding_re_triages_and_isolation_runs_once() -> TestResult {
    let off = Offline::start(settings()).await?;
    let before = off.victim.state(&off.clients).await?;
    let first = "esc0000000000000000000000000b001";
    let incident = incident_for(first);

    // High: investigate-and-notify runs to its end, its snapshot applied.
    deliver_at_once(&off, &[&high(&off, first)]).await;
    let investigate = off.execution_arn(off.playbook_arn(INVESTIGATE), &incident);
    assert_eq!(
        off.wait_for_execution(&investigate, RUN_WAIT).await?,
        ExecutionStatus::Succeeded
    );
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.severity, Severity::High);
    assert_eq!(stored.summary.playbook.as_deref(), Some(INVESTIGATE));
    assert_eq!(stored.revision, 0);

    // Critical, on the same instance, delivered twice at once: one new revision, one re-triage.
    let worse = critical(&off, "esc0000000000000000000000000b002");
    deliver_at_once(&off, &[&worse, &worse]).await;
    let revised = off.incident(&incident).await?.expect("the incident");
    assert_eq!(revised.revision, 1);
    assert_eq!(revised.summary.severity, Severity::Critical);
    assert_eq!(revised.finding_count, 2);

    let second_run = execution_name(&incident, 1);
    isolate_through_the_gates(&off, &incident, &second_run).await;
    assert_isolated(&off, &before).await;

    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::Contained);
    assert_eq!(stored.summary.playbook.as_deref(), Some(PLAYBOOK));
    let decision = stored.decision.expect("the decision");
    assert_eq!(decision.revision, 1);

    // One triage per revision, one run of each playbook, each named after its revision.
    let mut triage = executions(&off, off.triage_arn()).await;
    triage.sort();
    assert_eq!(triage, [incident.clone(), second_run.clone()]);
    assert_eq!(
        executions(&off, off.playbook_arn(INVESTIGATE)).await,
        std::slice::from_ref(&incident)
    );
    assert_eq!(
        executions(&off, off.playbook_arn(PLAYBOOK)).await,
        [second_run]
    );

    // The audit chain: both revisions' triage started and recorded; the snapshot the first
    // revision applied is done in the second, not taken again.
    let actions = audit_actions(&off, &incident).await;
    let started: Vec<u64> = actions
        .iter()
        .filter(|(a, _)| a == "triage-started")
        .map(|(_, d)| d["revision"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(started, [0, 1], "{actions:?}");
    let triaged: Vec<&Value> = actions
        .iter()
        .filter(|(a, _)| a == "triaged")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(triaged.len(), 2, "{actions:?}");
    assert_eq!(triaged[0]["playbook"], INVESTIGATE);
    assert_eq!(triaged[1]["playbook"], PLAYBOOK);
    assert_eq!(triaged[1]["revision"], 1);
    assert_eq!(triaged[1]["done"], serde_json::json!(["snapshot-volumes"]));
    assert!(
        triaged.iter().all(|d| d.get("notStarted").is_none()),
        "{triaged:?}"
    );
    let snapshots = actions
        .iter()
        .filter(|(a, d)| a.starts_with("action:") && d["step"] == "snapshot-volumes")
        .count();
    assert_eq!(snapshots, 1, "{actions:?}");
    for step in GATES {
        assert_eq!(
            actions
                .iter()
                .filter(|(a, d)| a.starts_with("action:") && d["step"] == step)
                .count(),
            1,
            "{step}: {actions:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_high_and_a_critical_finding_at_once_isolate_once() -> TestResult {
    let off = Offline::start(settings()).await?;
    let before = off.victim.state(&off.clients).await?;
    let (a, b) = (
        "esc0000000000000000000000000c001",
        "esc0000000000000000000000000c002",
    );
    let worse = critical(&off, b);
    deliver_at_once(&off, &[&high(&off, a), &worse, &worse]).await;

    // Whichever opened the incident, the other attached to it.
    let (ia, ib) = (incident_for(a), incident_for(b));
    let (sa, sb) = (off.incident(&ia).await?, off.incident(&ib).await?);
    let (incident, stored) = match (sa, sb) {
        (Some(s), None) => (ia, s),
        (None, Some(s)) => (ib, s),
        other => panic!("one incident expected: {other:?}"),
    };
    assert_eq!(stored.finding_count, 2);
    assert_eq!(stored.summary.severity, Severity::Critical);
    // The critical finding opened it (revision 0), or escalated the high one's (revision 1).
    let run = execution_name(&incident, stored.revision);
    isolate_through_the_gates(&off, &incident, &run).await;
    assert_isolated(&off, &before).await;
    assert_eq!(executions(&off, off.playbook_arn(PLAYBOOK)).await, [run]);
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::Contained);
    Ok(())
}
