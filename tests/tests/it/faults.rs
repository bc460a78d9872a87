//! Cells of the fault matrix (`ir-offline faults` runs all of them): a fault injected between
//! the containment actions and the emulator, and the incident held against the victim.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use ir_tests::TestResult;
use ir_tests::fault::{Fault, FaultRule, Target};
use ir_tests::matrix::cell;

fn rule(
    function: &'static str,
    operation: &str,
    fault: Fault,
    times: Option<u32>,
) -> Option<(&'static str, FaultRule)> {
    Some((function, FaultRule::at(operation, fault, times)))
}

#[tokio::test]
async fn a_connection_that_always_resets_stops_the_playbook_with_nothing_applied() -> TestResult {
    let c = cell(rule("ir-revoke-sessions", "GetRole", Fault::Reset, None)).await?;
    // Every attempt of every retry met the fault: the SDK's, then the state machine's.
    assert!(c.injected > 4, "{c:?}");
    assert_eq!(
        c.outcome, "needs-attention at revoke-credentials (applied: none; interfaces changed: 0)",
        "{c:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_isolation_whose_answer_was_lost_once_is_retried_and_contains() -> TestResult {
    let c = cell(rule(
        "ir-isolate-instance",
        "ModifyNetworkInterfaceAttribute",
        Fault::LostAfterApply,
        Some(1),
    ))
    .await?;
    assert_eq!(c.injected, 1, "{c:?}");
    assert_eq!(c.outcome, "contained", "{c:?}");
    Ok(())
}

#[tokio::test]
async fn a_snapshot_process_killed_after_its_call_landed_is_rerun_and_records_that_set()
-> TestResult {
    // CreateSnapshots applied, then the process dies before it reads the answer: the runtime
    // reports Runtime.ExitError, the state machine runs the step again, and the new process
    // finds the set by its tags instead of taking a second one.
    let c = cell(Some((
        "ir-snapshot-volumes",
        FaultRule {
            target: Target::Mutation(1),
            fault: Fault::KilledAfterApply,
            times: Some(1),
        },
    )))
    .await?;
    assert_eq!(c.kills, 1, "{c:?}");
    assert_eq!(c.outcome, "contained", "{c:?}");
    let creates = c.seen["ir-snapshot-volumes"]
        .iter()
        .filter(|op| *op == "CreateSnapshots")
        .count();
    assert_eq!(creates, 1, "one set taken, found again by the rerun: {c:?}");
    Ok(())
}

#[tokio::test]
async fn an_answer_slower_than_the_sdk_timeout_is_abandoned_and_retried() -> TestResult {
    let c = cell(rule(
        "ir-isolate-instance",
        "ModifyNetworkInterfaceAttribute",
        Fault::Slow,
        Some(1),
    ))
    .await?;
    assert_eq!(c.injected, 1, "{c:?}");
    assert_eq!(c.outcome, "contained", "{c:?}");
    Ok(())
}
