//! The approval store against the local cloud: real aws-sdk-rust calls over HTTP to moto.
//!
//! Every test creates its own tables (`create_tables`, names from `unique_name`); state is
//! read back through the store and with plain SDK calls. Every log line of this test binary, at
//! DEBUG and above and from every crate (the SDK's included), is captured
//! ([`capture`](crate::captured_log::capture)) and checked for the task token.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use ir_aws::store::{
    ApprovalRequest, ApprovalStatus, ApprovalStore, Ballot, Decided, StoreError, TableNames,
    TaskToken, create_tables,
};
use ir_aws::{ClientOptions, Clients};
use ir_core::correlate::incident_id;
use ir_core::{ErrorName, Named};
use ir_tests::{LocalCloud, unique_name};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::captured_log::capture;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const T0: OffsetDateTime = datetime!(2026-11-20 10:06:00 UTC);
/// Shaped like a Step Functions task token; must never show in any text output.
const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAXsecretTaskTokenTextF00dCafe==";

async fn cloud() -> &'static LocalCloud {
    match LocalCloud::shared().await {
        Ok(cloud) => cloud,
        Err(e) => panic!("{e}"),
    }
}

async fn setup() -> (Clients, TableNames, ApprovalStore) {
    capture();
    let cloud = cloud().await;
    let clients = Clients::new(
        &cloud.sdk_config(),
        ClientOptions {
            s3_force_path_style: true,
        },
    );
    let names = TableNames::with_prefix(&unique_name("ir"));
    create_tables(&clients, &names).await.unwrap();
    let store = ApprovalStore::new(clients.clone(), names.clone());
    (clients, names, store)
}

fn request(id: &str, step: &str, token: &str, level: u32) -> ApprovalRequest {
    ApprovalRequest {
        incident_id: id.to_owned(),
        step_id: step.to_owned(),
        task_token: TaskToken::new(token),
        requester: "ir-request-approval".into(),
        plan: json!({"action": "ir-isolate-instance", "target": "i-0abc", "mode": "enforce"}),
        plan_hash: None,
        level,
        role: "security_engineer".into(),
        approvals_required: 1,
        requested_at: T0,
        expires_at: T0 + Duration::hours(1),
        round: 0,
    }
}

/// One person's decision: the person is the last part of the ARN (`…/alice`).
fn ballot<'a>(
    approve: bool,
    by: &'a str,
    reason: &'a str,
    plan_hash: Option<&'a str>,
) -> Ballot<'a> {
    Ballot {
        approve,
        person: by.rsplit('/').next().unwrap_or(by),
        decided_by: by,
        reason,
        plan_hash,
    }
}

fn assert_no_token(text: &str) {
    assert!(!text.contains("secretTaskToken"), "token leaked: {text}");
}

#[tokio::test]
async fn a_request_is_decided_once_and_only_the_first_decision_gets_the_token() -> TestResult {
    let (clients, names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    let req = request(&id, "isolate-instance", TOKEN, 0);
    assert_no_token(&format!("{req:?}"));

    let mark = clients.calls().count();
    let stored = store.request(&req).await?;
    assert_eq!(clients.calls().since(mark), ["DynamoDB:PutItem"]);
    assert_eq!(stored.status, ApprovalStatus::Pending);
    assert_no_token(&format!("{stored:?}"));

    let read = store.get(&id, "isolate-instance").await?.unwrap();
    assert_eq!(read, stored);
    assert_eq!(read.task_token.expose(), TOKEN);
    assert_eq!(read.plan, req.plan);
    assert_eq!(store.pending(&id).await?.len(), 1);
    // The TTL attribute is epoch seconds.
    let raw = clients
        .dynamodb()
        .get_item()
        .table_name(&names.approvals)
        .key("incidentId", AttributeValue::S(id.clone()))
        .key("stepId", AttributeValue::S("isolate-instance".into()))
        .send()
        .await?
        .item
        .unwrap();
    assert_eq!(
        raw.get("expiresAt").unwrap().as_n().unwrap(),
        &(T0 + Duration::hours(1)).unix_timestamp().to_string()
    );

    let decided_at = T0 + Duration::minutes(7);
    let mark = clients.calls().count();
    let first = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(
                true,
                "arn:aws:iam::123456789012:user/alice",
                "confirmed compromise",
                None,
            ),
            decided_at,
        )
        .await?;
    assert_eq!(
        clients.calls().since(mark),
        ["DynamoDB:GetItem", "DynamoDB:UpdateItem"]
    );
    assert_no_token(&format!("{first:?}"));
    match &first {
        Decided::Now {
            task_token,
            approval,
        } => {
            assert_eq!(task_token.expose(), TOKEN);
            assert_eq!(approval.status, ApprovalStatus::Approved);
            assert_eq!(approval.decided_at, Some(decided_at));
        }
        other => panic!("{other:?}"),
    }

    let mark = clients.calls().count();
    let second = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(false, "arn:aws:iam::123456789012:user/bob", "", None),
            decided_at + Duration::minutes(1),
        )
        .await?;
    assert_eq!(
        second,
        Decided::Already {
            status: ApprovalStatus::Approved,
            decided_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            decided_at: Some(decided_at),
        },
        "a clear no-op, no token"
    );
    // Read, found decided: nothing written.
    assert_eq!(clients.calls().since(mark), ["DynamoDB:GetItem"]);
    let after = store.get(&id, "isolate-instance").await?.unwrap();
    assert_eq!(after.status, ApprovalStatus::Approved);
    assert_eq!(after.reason.as_deref(), Some("confirmed compromise"));
    assert!(store.pending(&id).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_step_needing_two_people_is_decided_by_the_second_and_counts_each_person_once()
-> TestResult {
    let (_clients, _names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    let mut req = request(&id, "isolate-instance", TOKEN, 0);
    req.approvals_required = 2;
    store.request(&req).await?;
    let alice = "arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice";
    let first = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, alice, "seen", None),
            T0,
        )
        .await?;
    let Decided::Counted { approval } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(approval.status, ApprovalStatus::Pending);
    assert_eq!(approval.approvals.len(), 1);
    assert_eq!(approval.approvals[0].person, "alice");
    assert_eq!(approval.approvals[0].by, alice);
    assert_no_token(&format!("{first:?}"));

    // Alice again under another session: the same person, nothing written.
    let again = store
        .decide(
            &id,
            "isolate-instance",
            &Ballot {
                person: "alice",
                ..ballot(true, "arn:aws:iam::123456789012:user/alice", "", None)
            },
            T0,
        )
        .await?;
    assert!(
        matches!(&again, Decided::Repeated { vote } if vote.by == alice),
        "{again:?}"
    );
    let read = store.get(&id, "isolate-instance").await?.unwrap();
    assert_eq!(read.approvals.len(), 1);

    // Bob: the second person decides, and gets the token.
    let bob = "arn:aws:sts::123456789012:assumed-role/SecurityEngineer/bob";
    let second = store
        .decide(&id, "isolate-instance", &ballot(true, bob, "", None), T0)
        .await?;
    let Decided::Now {
        task_token,
        approval,
    } = &second
    else {
        panic!("{second:?}")
    };
    assert_eq!(task_token.expose(), TOKEN);
    assert_eq!(approval.status, ApprovalStatus::Approved);
    assert_eq!(approval.decided_by.as_deref(), Some(bob));
    let people: Vec<&str> = approval
        .approvals
        .iter()
        .map(|v| v.person.as_str())
        .collect();
    assert_eq!(people, ["alice", "bob"]);
    Ok(())
}

#[tokio::test]
async fn two_people_approving_at_once_decide_exactly_once() -> TestResult {
    let (_clients, _names, store) = setup().await;
    for round in 0..4 {
        let id = incident_id(&unique_name(&format!("race{round}")));
        let mut req = request(&id, "isolate-instance", TOKEN, 0);
        req.approvals_required = 2;
        store.request(&req).await?;
        let alice = ballot(true, "arn:aws:iam::123456789012:user/alice", "", None);
        let bob = ballot(true, "arn:aws:iam::123456789012:user/bob", "", None);
        let (a, b) = tokio::join!(
            store.decide(&id, "isolate-instance", &alice, T0),
            store.decide(&id, "isolate-instance", &bob, T0),
        );
        let outcomes = [a?, b?];
        let now = outcomes
            .iter()
            .filter(|o| matches!(o, Decided::Now { .. }))
            .count();
        let counted = outcomes
            .iter()
            .filter(|o| matches!(o, Decided::Counted { .. }))
            .count();
        assert_eq!((now, counted), (1, 1), "{outcomes:?}");
        let read = store.get(&id, "isolate-instance").await?.unwrap();
        assert_eq!(read.status, ApprovalStatus::Approved);
        assert_eq!(read.approvals.len(), 2);
    }
    Ok(())
}

#[tokio::test]
async fn one_rejection_rejects_a_step_that_needs_several_approvals() -> TestResult {
    let (_clients, _names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    let mut req = request(&id, "isolate-instance", TOKEN, 0);
    req.approvals_required = 3;
    store.request(&req).await?;
    let counted = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, "x/alice", "", None),
            T0,
        )
        .await?;
    assert!(matches!(counted, Decided::Counted { .. }), "{counted:?}");
    let rejected = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(false, "x/bob", "no", None),
            T0,
        )
        .await?;
    let Decided::Now { approval, .. } = &rejected else {
        panic!("{rejected:?}")
    };
    assert_eq!(approval.status, ApprovalStatus::Rejected);
    let late = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, "x/carol", "", None),
            T0,
        )
        .await?;
    assert!(
        matches!(
            &late,
            Decided::Already {
                status: ApprovalStatus::Rejected,
                ..
            }
        ),
        "{late:?}"
    );
    Ok(())
}

#[tokio::test]
async fn deciding_an_unknown_step_is_not_found() -> TestResult {
    let (_clients, _names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    store
        .request(&request(&id, "isolate-instance", TOKEN, 0))
        .await?;
    let err = store
        .decide(&id, "disable-keys", &ballot(true, "alice", "", None), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(err.error_name(), ErrorName::NotFound);
    assert!(store.get(&id, "disable-keys").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_re_request_replaces_only_a_pending_one_and_never_downgrades() -> TestResult {
    let (_clients, _names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    store
        .request(&request(&id, "revoke", "token-level-0", 0))
        .await?;

    // Escalation: the next level's task has a new token; it replaces the pending request.
    store
        .request(&request(&id, "revoke", "token-level-1", 1))
        .await?;
    let read = store.get(&id, "revoke").await?.unwrap();
    assert_eq!((read.level, read.task_token.expose()), (1, "token-level-1"));

    // A late request from the lower level does not replace it.
    let err = store
        .request(&request(&id, "revoke", "token-level-0-late", 0))
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");
    assert_eq!(
        store.get(&id, "revoke").await?.unwrap().task_token.expose(),
        "token-level-1"
    );

    // Decided: never reopened, not even at a higher level.
    let decided = store
        .decide(
            &id,
            "revoke",
            &ballot(false, "carol", "false positive", None),
            T0,
        )
        .await?;
    assert!(
        matches!(decided, Decided::Now { ref approval, .. } if approval.status == ApprovalStatus::Rejected)
    );
    let err = store
        .request(&request(&id, "revoke", "token-level-2", 2))
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict);
    let read = store.get(&id, "revoke").await?.unwrap();
    assert_eq!(
        (read.status, read.level, read.task_token.expose()),
        (ApprovalStatus::Rejected, 1, "token-level-1")
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_request_cannot_be_approved() -> TestResult {
    let (clients, names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    let req = request(&id, "isolate-instance", TOKEN, 0);
    store.request(&req).await?;

    let late = req.expires_at + Duration::seconds(1);
    let outcome = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, "alice", "", None),
            late,
        )
        .await?;
    assert_eq!(
        outcome,
        Decided::Already {
            status: ApprovalStatus::Expired,
            decided_by: None,
            decided_at: None
        }
    );
    let read = store.get(&id, "isolate-instance").await?.unwrap();
    assert_eq!(read.status, ApprovalStatus::Expired);
    assert!(read.is_expired(late));

    // DynamoDB deletes expired requests by the TTL attribute.
    let ttl = clients
        .dynamodb()
        .describe_time_to_live()
        .table_name(&names.approvals)
        .send()
        .await?;
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expiresAt"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    Ok(())
}

#[tokio::test]
async fn an_escalation_reopens_an_expired_request_and_nothing_else_does() -> TestResult {
    let (_clients, _names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    let level0 = request(&id, "isolate-instance", "token-level-0", 0);
    store.request(&level0).await?;

    // A decision arrives after level 0 expired: it is refused and marks the request expired.
    let late = level0.expires_at + Duration::seconds(1);
    let outcome = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, "alice", "", None),
            late,
        )
        .await?;
    assert!(matches!(
        outcome,
        Decided::Already {
            status: ApprovalStatus::Expired,
            ..
        }
    ));

    // The same level asking again does not reopen it.
    let err = store
        .request(&request(&id, "isolate-instance", "token-level-0-retry", 0))
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");
    let read = store.get(&id, "isolate-instance").await?.unwrap();
    assert_eq!(
        (read.status, read.level, read.task_token.expose()),
        (ApprovalStatus::Expired, 0, "token-level-0")
    );

    // The state machine escalates: level 1 asks again with a fresh token and expiry.
    let level1 = ApprovalRequest {
        requested_at: late,
        expires_at: late + Duration::hours(1),
        ..request(&id, "isolate-instance", "token-level-1", 1)
    };
    store.request(&level1).await?;
    let read = store.get(&id, "isolate-instance").await?.unwrap();
    assert_eq!(
        (read.status, read.level, read.task_token.expose()),
        (ApprovalStatus::Pending, 1, "token-level-1")
    );
    assert_eq!((read.decided_by, read.decided_at), (None, None));

    // And level 1 is decided once, with its own token.
    let decided = store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, "bob", "", None),
            late + Duration::minutes(1),
        )
        .await?;
    match decided {
        Decided::Now {
            task_token,
            approval,
        } => {
            assert_eq!(task_token.expose(), "token-level-1");
            assert_eq!(
                (approval.status, approval.decided_by.as_deref()),
                (ApprovalStatus::Approved, Some("bob"))
            );
        }
        other => panic!("level 1 was not decided: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn errors_never_carry_the_token() -> TestResult {
    let (clients, _names, _store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    // A table that does not exist: the SDK error is logged and returned, without the token.
    let missing = ApprovalStore::new(
        clients.clone(),
        TableNames::with_prefix(&unique_name("none")),
    );
    let err = missing
        .request(&request(&id, "isolate-instance", TOKEN, 0))
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound, "{err}");
    assert_no_token(&format!("{err} {err:?}"));

    let bad = ApprovalRequest {
        expires_at: T0,
        ..request(&id, "isolate-instance", TOKEN, 0)
    };
    let err = missing.request(&bad).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    assert_no_token(&format!("{err} {err:?}"));
    Ok(())
}

#[tokio::test]
async fn no_log_line_carries_the_token() -> TestResult {
    let (clients, _names, store) = setup().await;
    let id = incident_id(&unique_name("approval"));
    store
        .request(&request(&id, "isolate-instance", TOKEN, 0))
        .await?;
    store.get(&id, "isolate-instance").await?;
    store.pending(&id).await?;
    store
        .decide(
            &id,
            "isolate-instance",
            &ballot(true, "alice", "", None),
            T0,
        )
        .await?;
    store
        .decide(&id, "isolate-instance", &ballot(true, "bob", "", None), T0)
        .await?;
    let missing = ApprovalStore::new(clients, TableNames::with_prefix(&unique_name("none")));
    missing
        .request(&request(&id, "isolate-instance", TOKEN, 0))
        .await
        .unwrap_err();

    let logs = String::from_utf8(capture().0.lock().unwrap().clone())?;
    assert!(logs.contains("AWS call failed"), "the capture works");
    assert!(
        logs.contains("DynamoDB.UpdateItem"),
        "the SDK's own lines are in it"
    );
    assert_no_token(&logs);
    Ok(())
}
