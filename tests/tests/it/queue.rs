//! `orchestrator.max_concurrent_playbooks`, end to end on the offline suite: with one slot, an
//! incident triaged while another's playbook runs is `queued`, and the queued ones start in the
//! order they arrived when the slot frees; an incident resolved while queued never starts.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::incident::Status;
use ir_tests::TestResult;
use ir_tests::offline::{Offline, PLAYBOOK, Settings};
use serde_json::Value;
use time::OffsetDateTime;

use crate::e2e::{
    GATE_WAIT, GATES, RUN_WAIT, approve_by_two, audit_actions, deliver, incident_for,
};

/// One slot, asked for again every second.
fn one_slot() -> Settings {
    Settings {
        slots: Some((1, 1)),
        ..Settings::default()
    }
}

/// The bundled finding, about another instance than the victim (another incident; its
/// dry-run playbook finds nothing to act on, and ends).
async fn deliver_elsewhere(off: &Offline, finding_id: &str, instance_id: &str) -> String {
    let envelope = off
        .victim
        .finding(
            finding_id,
            OffsetDateTime::now_utc(),
            time::Duration::minutes(5),
        )
        .unwrap();
    let mut envelope: Value = serde_json::from_slice(&envelope).unwrap();
    envelope["detail"]["resource"]["instanceDetails"]["instanceId"] = Value::from(instance_id);
    let answer = off
        .invoke("ir-ingest", &serde_json::to_vec(&envelope).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.error, None, "{:?}", answer.body);
    let id = incident_for(finding_id);
    assert!(answer.body.to_string().contains(&id), "{}", answer.body);
    id
}

/// The detail of the incident's one record of `action`, once it is written (the recorder moves
/// the status first, then audits).
async fn only(off: &Offline, incident: &str, action: &str) -> Value {
    let deadline = std::time::Instant::now() + GATE_WAIT;
    loop {
        let found: Vec<Value> = audit_actions(off, incident)
            .await
            .into_iter()
            .filter(|(a, _)| a == action)
            .map(|(_, d)| d)
            .collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            assert_eq!(found.len(), 1, "{incident} {action}: {found:?}");
            return found.into_iter().next().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn beyond_the_limit_incidents_are_queued_and_start_in_order_when_the_slot_frees() -> TestResult
{
    let off = Offline::start(one_slot()).await?;
    // The victim's incident takes the one slot and waits at its first gate.
    let first = deliver(&off, "que0000000000000000000000000c001").await;
    off.wait_for_approval(&first, GATES[0], 0, GATE_WAIT)
        .await?;

    let second = deliver_elsewhere(
        &off,
        "que0000000000000000000000000c002",
        "i-0aaaaaaaaaaaaaaa2",
    )
    .await;
    let queued = off
        .wait_for_status(&second, &[Status::Queued], GATE_WAIT)
        .await?;
    assert!(queued.decision.is_some(), "triaged before it waits");
    let third = deliver_elsewhere(
        &off,
        "que0000000000000000000000000c003",
        "i-0aaaaaaaaaaaaaaa3",
    )
    .await;
    off.wait_for_status(&third, &[Status::Queued], GATE_WAIT)
        .await?;
    let q2 = only(&off, &second, "playbook-queued").await;
    let q3 = only(&off, &third, "playbook-queued").await;
    assert_eq!(
        (q2["position"].as_u64(), q2["max"].as_u64()),
        (Some(1), Some(1)),
        "{q2}"
    );
    assert_eq!(q3["position"], 2, "{q3}");
    assert_eq!(q2["running"], 1);
    // Nothing of theirs started: no playbook execution under their names.
    for id in [&second, &third] {
        let machine = off
            .playbook_arn(q2["playbook"].as_str().unwrap())
            .to_owned();
        let arn = off.execution_arn(&machine, id);
        let described = off
            .clients
            .sfn()
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await;
        assert!(described.is_err(), "{id} started while queued");
    }
    // An incident resolved while queued leaves the queue and never starts.
    let fourth = deliver_elsewhere(
        &off,
        "que0000000000000000000000000c004",
        "i-0aaaaaaaaaaaaaaa4",
    )
    .await;
    off.wait_for_status(&fourth, &[Status::Queued], GATE_WAIT)
        .await?;
    let out = off
        .ir_as_responder(&[
            "resolve",
            &fourth,
            "--reason",
            "duplicate of another incident",
        ])
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The slot frees when the first playbook ends: the second starts, then the third.
    for step in GATES {
        off.wait_for_approval(&first, step, 0, GATE_WAIT).await?;
        approve_by_two(&off, &first, step).await;
    }
    let run = off.execution_arn(off.playbook_arn(PLAYBOOK), &first);
    assert_eq!(
        off.wait_for_execution(&run, RUN_WAIT).await?,
        ExecutionStatus::Succeeded
    );
    let ended = [
        Status::Containment,
        Status::Contained,
        Status::NeedsAttention,
    ];
    let (mut started, mut waited) = (Vec::new(), Vec::new());
    for id in [&second, &third] {
        let moved = off.wait_for_status(id, &ended, RUN_WAIT).await?;
        let playbook = moved.decision.as_ref().unwrap().playbook.id.clone();
        let arn = off.execution_arn(off.playbook_arn(&playbook), id);
        // The execution is named after the incident only once its slot was granted.
        assert!(off.wait_for_execution(&arn, RUN_WAIT).await.is_ok());
        let dequeued = only(&off, id, "playbook-dequeued").await;
        assert_eq!(dequeued["playbook"], playbook.as_str());
        waited.push(dequeued["waitedSeconds"].as_i64().unwrap());
        let d = off
            .clients
            .sfn()
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await?;
        started.push(*d.start_date());
    }
    assert!(started[0] < started[1], "in arrival order: {started:?}");
    assert!(waited.iter().all(|w| *w >= 1), "{waited:?}");
    // The resolved one stopped waiting: its triage ended without starting anything.
    let triage = off.execution_arn(off.triage_arn(), &fourth);
    assert_eq!(
        off.wait_for_execution(&triage, RUN_WAIT).await?,
        ExecutionStatus::Succeeded
    );
    let history = off
        .clients
        .sfn()
        .get_execution_history()
        .execution_arn(&triage)
        .max_results(1000)
        .send()
        .await?;
    let entered: Vec<&str> = history
        .events()
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name())
        .collect();
    assert!(entered.contains(&"ClaimSlot"), "{entered:?}");
    assert_eq!(entered.last(), Some(&"PlaybookNotStarted"), "{entered:?}");
    let resolved = off.incident(&fourth).await?.unwrap();
    assert_eq!(resolved.summary.status, Status::Resolved);
    assert!(
        audit_actions(&off, &fourth)
            .await
            .iter()
            .all(|(a, _)| a != "playbook-dequeued")
    );
    Ok(())
}
