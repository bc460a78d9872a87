//! Releasing containment is not a deployed capability: the restores run only in `ir release`,
//! in an approver's own process with the approver's own credentials, from the incident's stored
//! records. A function that took the records to restore from its payload (and checked no
//! approver) would let anyone with `lambda:InvokeFunction` on it re-activate any access key or
//! remove any deny policy.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ir_tests::TestResult;
use ir_tests::offline::{Offline, Settings, function_binaries};
use serde_json::{Value, json};

use crate::template::{FUNCTION, ROLE, binary_of, items, of_type, role_statements};

const RELEASE_FUNCTION: &str = "ir-release-containment";

/// The IAM and EC2 actions only undoing containment needs: removing a deny policy (inline or
/// attached), removing the bookkeeping tags containment wrote on the resources.
const UNDO_ACTIONS: &[&str] = &[
    "iam:DeleteRolePolicy",
    "iam:DeleteUserPolicy",
    "iam:DetachRolePolicy",
    "iam:DetachUserPolicy",
    "iam:UntagRole",
    "iam:UntagUser",
    "ec2:DeleteTags",
];

/// Whether an `Action` pattern of a policy (`iam:Delete*`, `*`) covers `action`.
fn covers(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == a,
        Some((prefix, _)) => a.starts_with(prefix),
    }
}

#[test]
fn the_template_deploys_no_function_or_role_that_can_restore() {
    for (id, f) in of_type(FUNCTION) {
        assert_ne!(
            binary_of(f),
            Some(RELEASE_FUNCTION),
            "{id} deploys {RELEASE_FUNCTION}"
        );
    }
    for (role, _) in of_type(ROLE) {
        for s in role_statements(role) {
            if s["Effect"] != "Allow" {
                continue;
            }
            for a in items(&s["Action"]) {
                let a = a.as_str().unwrap();
                for undo in UNDO_ACTIONS {
                    assert!(
                        !covers(a, undo),
                        "{role} may {undo} ({a}): a deployed role could undo containment"
                    );
                }
                // Re-activating a key is UpdateAccessKey (IAM cannot condition it on the new
                // status): only the role that deactivates keys may call it.
                if covers(a, "iam:UpdateAccessKey") {
                    assert_eq!(
                        role, "DisableAccessKeysRole",
                        "{role} may iam:UpdateAccessKey"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn invoking_a_release_function_with_made_up_records_is_refused() -> TestResult {
    assert!(
        !function_binaries()?.iter().any(|b| b == RELEASE_FUNCTION),
        "the offline suite serves {RELEASE_FUNCTION}"
    );
    let off = Offline::start(Settings::default()).await?;
    // Records nobody approved: re-activate a key, remove a deny policy.
    let payload = json!({
        "incidentId": "inc-00000000000000000bad",
        "stepId": "release",
        "mode": "enforce",
        "records": [
            {"kind": "access-keys", "userName": "attacker", "deactivated": ["AKIAEXAMPLEEXAMPLE01"]},
            {"kind": "inline-policy", "principal": {"kind": "role", "name": "attacker"},
             "policyName": "ir-deny-all-inc-00000000000000000bad", "purpose": "deny-all"},
        ],
    });
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        off.invoke(RELEASE_FUNCTION, payload.to_string().as_bytes()),
    )
    .await;
    match answer {
        // Nothing serves the function: the Invoke API answers with an error, or never.
        Err(_elapsed) => {}
        Ok(Err(e)) => eprintln!("invoke {RELEASE_FUNCTION}: {e}"),
        Ok(Ok(invocation)) => {
            assert!(
                invocation.status >= 400 || invocation.error.is_some(),
                "{RELEASE_FUNCTION} answered {}: {}",
                invocation.status,
                invocation.body
            );
            assert_ne!(invocation.body["outcome"], Value::from("applied"));
        }
    }
    Ok(())
}
