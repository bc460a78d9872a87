//! Cells of the fault matrix (`ir-offline faults` runs all of them): a fault injected between
//! the containment actions and the emulator, and the incident held against the victim.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use ir_tests::TestResult;
use ir_tests::fault::{Fault, FaultRule};
use ir_tests::matrix::cell;

fn rule(operation: &str, fault: Fault, times: Option<u32>) -> Option<FaultRule> {
    Some(FaultRule {
        operation: operation.to_owned(),
        fault,
        times,
    })
}

#[tokio::test]
async fn a_connection_that_always_resets_stops_the_playbook_with_nothing_applied() -> TestResult {
    let c = cell(rule("GetRole", Fault::Reset, None)).await?;
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
        "ModifyNetworkInterfaceAttribute",
        Fault::LostAfterApply,
        Some(1),
    ))
    .await?;
    assert_eq!(c.injected, 1, "{c:?}");
    assert_eq!(c.outcome, "contained", "{c:?}");
    Ok(())
}
