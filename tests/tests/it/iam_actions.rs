//! The IAM containment actions against the local cloud: revoke-sessions, deny-principal,
//! disable-access-keys and their release, with real aws-sdk-rust calls over HTTP to moto.
//!
//! Every test names its principals with `unique_name` and its incident with a fresh id, and
//! asserts only on what it created. State is always read back from the emulator with a client
//! of its own (not the one the action counts calls on).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_iam::types::StatusType;
use ir_actions::ActionError;
use ir_actions::iam::{
    deactivated_keys_tag, deny_hold_tag, deny_principal, disable_access_keys, restore_access_keys,
    restore_inline_policy, revoke_sessions,
};
use ir_aws::Clients;
use ir_core::action::{
    AccessKeyRecord, ActionReport, ChangeStatus, ContainmentRecord, ContainmentRequest,
    InlinePolicyRecord, Outcome, PolicyPurpose, Principal, PrincipalKind, policy_document,
    policy_name,
};
use ir_core::config::{Mode, Protection};
use ir_core::event::{Ec2Instance, OtherResource, Resource, S3Bucket};
use ir_core::{ErrorName, Named};
use ir_tests::fixtures::{
    APP_POLICY, UserState, create_deny_policy, create_key, create_role, create_user, decode_policy,
    put_role_policy, role_state, user_state,
};
use ir_tests::{
    ACCOUNT_ID, RequestLog, TestResult, cloud, containment_request, ec2_instance, expect_err,
    incident_id, recorded_clients, release_report, role_resource, unique_name, user_resource,
};
use serde_json::{Value, json};

/// The clients an action runs with (call log and request log on IAM), the request log, and a separate
/// client for setup and read-back, so that neither pollutes the other's counts.
async fn clients() -> (Clients, RequestLog, aws_sdk_iam::Client) {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    (clients, sent, aws_sdk_iam::Client::new(&cloud.sdk_config()))
}

fn protection(principals: &[&str]) -> Protection {
    Protection {
        principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        suite_principals: Vec::new(),
    }
}

fn request(incident: &str, resource: Resource, mode: Mode) -> ContainmentRequest {
    containment_request(incident, "contain", resource, mode)
}

fn instance(profile_arn: Option<&str>) -> Resource {
    Resource::Ec2Instance(Ec2Instance {
        instance_profile_arn: profile_arn.map(str::to_owned),
        ..ec2_instance("i-0123456789abcdef0")
    })
}

/// A role with a pre-existing inline policy and an attached customer-managed policy.
async fn role_with_policies(iam: &aws_sdk_iam::Client, name: &str) -> String {
    create_role(iam, name, "/", &[("owner", "web-team")]).await;
    put_role_policy(iam, name, "app-inline", APP_POLICY).await;
    let managed = iam
        .create_policy()
        .policy_name(format!("{name}-managed"))
        .policy_document(APP_POLICY)
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    iam.attach_role_policy()
        .role_name(name)
        .policy_arn(&managed)
        .send()
        .await
        .unwrap();
    managed
}

/// The deployment's managed deny-all policy, created once in the shared emulator.
async fn deny_policy(iam: &aws_sdk_iam::Client) -> String {
    static ARN: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    ARN.get_or_init(|| create_deny_policy(iam)).await.clone()
}

/// Creates an instance profile (at `path`, holding `role`); returns its ARN.
async fn instance_profile(
    iam: &aws_sdk_iam::Client,
    name: &str,
    path: Option<&str>,
    role: Option<&str>,
) -> String {
    let arn = iam
        .create_instance_profile()
        .instance_profile_name(name)
        .set_path(path.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .instance_profile()
        .unwrap()
        .arn()
        .to_owned();
    if let Some(role) = role {
        iam.add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
            .unwrap();
    }
    arn
}

fn statuses(report: &ActionReport) -> Vec<ChangeStatus> {
    report.changes.iter().map(|c| c.status).collect()
}

/// The single deny statement's condition time of a revoke-sessions document.
fn issue_time(doc: &Value) -> String {
    doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap_or_else(|| panic!("no aws:TokenIssueTime in {doc}"))
        .to_owned()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn parse_rfc3339(t: &str) -> u64 {
    let parsed = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{t}: {e}"));
    u64::try_from(parsed.unix_timestamp()).unwrap()
}

#[tokio::test]
async fn revoke_and_deny_on_a_role_then_release_leaves_only_what_was_there() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let name = unique_name("ir-web");
    let managed = role_with_policies(&iam, &name).await;
    let before = role_state(&iam, &name).await;
    let inc = incident_id();
    let prot = protection(&["BreakGlassAdmin"]);
    let revoke_name = policy_name(PolicyPurpose::RevokeSessions, &inc);
    let deny_name = policy_name(PolicyPurpose::DenyAll, &inc);

    // revoke-sessions, enforce, first run.
    let started = SystemTime::now();
    let mark = sent.mark();
    let revoked = revoke_sessions(
        &clients,
        &prot,
        &request(&inc, role_resource(&name), Mode::Enforce),
    )
    .await?;
    assert_eq!(
        sent.ops_since(mark),
        ["GetRole", "GetRolePolicy", "PutRolePolicy", "GetRolePolicy"]
    );
    assert_eq!(revoked.aws_calls, 4);
    assert_eq!(revoked.outcome, Outcome::Applied);
    assert_eq!(revoked.action, "ir-revoke-sessions");
    assert_eq!(revoked.changes.len(), 1);
    let change = &revoked.changes[0];
    assert_eq!(change.target, format!("role/{name}"));
    assert_eq!(change.attribute, format!("inline-policy:{revoke_name}"));
    assert_eq!(change.before, Value::Null);
    assert_eq!(change.status, ChangeStatus::Applied);
    let revoke_record = ContainmentRecord::InlinePolicy(InlinePolicyRecord {
        principal: Principal {
            kind: PrincipalKind::Role,
            name: name.clone(),
        },
        policy_name: revoke_name.clone(),
        purpose: PolicyPurpose::RevokeSessions,
    });
    assert_eq!(revoked.record.as_ref(), Some(&revoke_record));
    let notes = revoked.notes.join("\n");
    assert!(notes.contains("EVERY session"), "{notes}");
    assert!(notes.contains("seconds to minutes"), "{notes}");

    // The stored document is exactly the revoke-older-sessions pattern with an instant at now.
    let stored = decode_policy(
        iam.get_role_policy()
            .role_name(&name)
            .policy_name(&revoke_name)
            .send()
            .await?
            .policy_document(),
    );
    assert_eq!(stored, change.after);
    let instant = issue_time(&stored);
    assert!(instant.ends_with('Z'), "{instant}");
    let t = parse_rfc3339(&instant);
    assert!(
        t >= unix_secs(started) && t <= unix_secs(SystemTime::now()) + 2,
        "{instant}"
    );
    let expected = policy_document(
        PolicyPurpose::RevokeSessions,
        (UNIX_EPOCH + Duration::from_secs(t)).into(),
    );
    assert_eq!(stored, expected);
    assert_eq!(stored["Statement"][0]["Effect"], "Deny");
    assert_eq!(stored["Statement"][0]["Action"], "*");
    assert_eq!(stored["Statement"][0]["Resource"], "*");

    // deny-principal, enforce, first run: the incident's tag, then the managed deny-all.
    let deny_arn = deny_policy(&iam).await;
    let hold = deny_hold_tag(&inc);
    let mark = sent.mark();
    let denied = deny_principal(
        &clients,
        &prot,
        &deny_arn,
        &request(&inc, role_resource(&name), Mode::Enforce),
    )
    .await?;
    assert_eq!(
        sent.ops_since(mark),
        [
            "GetRole",
            "ListAttachedRolePolicies",
            "TagRole",
            "AttachRolePolicy",
            "ListAttachedRolePolicies"
        ]
    );
    assert_eq!(denied.aws_calls, 5);
    assert_eq!(denied.outcome, Outcome::Applied);
    assert_eq!(
        statuses(&denied),
        vec![ChangeStatus::Applied, ChangeStatus::Applied]
    );
    assert_eq!(denied.changes[0].attribute, format!("tag:{hold}"));
    assert_eq!(denied.changes[1].before, Value::Null);
    assert_eq!(denied.changes[1].after, json!(deny_arn));
    let deny_record = ContainmentRecord::InlinePolicy(InlinePolicyRecord {
        principal: Principal {
            kind: PrincipalKind::Role,
            name: name.clone(),
        },
        policy_name: deny_name.clone(),
        purpose: PolicyPurpose::DenyAll,
    });
    assert_eq!(denied.record.as_ref(), Some(&deny_record));
    // No inline deny any more: the attached policy is the template's deny-all.
    let stored_deny = decode_policy(
        iam.get_policy_version()
            .policy_arn(&deny_arn)
            .version_id("v1")
            .send()
            .await?
            .policy_version()
            .and_then(|v| v.document())
            .unwrap(),
    );
    assert_eq!(
        stored_deny,
        policy_document(PolicyPurpose::DenyAll, SystemTime::now().into())
    );

    // The revocation inline, the deny attached, the pre-existing policies untouched.
    let contained = role_state(&iam, &name).await;
    assert_eq!(
        contained.inline.keys().cloned().collect::<Vec<_>>(),
        vec!["app-inline".to_owned(), revoke_name.clone()]
    );
    assert_eq!(contained.inline["app-inline"], before.inline["app-inline"]);
    let mut attached = vec![managed.clone(), deny_arn.clone()];
    attached.sort();
    assert_eq!(contained.attached, attached);
    assert!(
        contained.tags.iter().any(|(k, _)| *k == hold),
        "{:?}",
        contained.tags
    );

    // Second runs: nothing rewritten, the revocation instant stays the first run's.
    for (second, record, unchanged) in [
        (
            revoke_sessions(
                &clients,
                &prot,
                &request(&inc, role_resource(&name), Mode::Enforce),
            )
            .await?,
            &revoke_record,
            1,
        ),
        (
            deny_principal(
                &clients,
                &prot,
                &deny_policy(&iam).await,
                &request(&inc, role_resource(&name), Mode::Enforce),
            )
            .await?,
            &deny_record,
            2,
        ),
    ] {
        assert_eq!(second.outcome, Outcome::AlreadyInPlace, "{second:#?}");
        assert_eq!(statuses(&second), vec![ChangeStatus::Unchanged; unchanged]);
        assert_eq!(second.record.as_ref(), Some(record));
        assert_eq!(second.aws_calls, 2);
    }
    assert_eq!(role_state(&iam, &name).await, contained);
    let mark = sent.mark();
    let _ = revoke_sessions(
        &clients,
        &prot,
        &request(&inc, role_resource(&name), Mode::Enforce),
    )
    .await?;
    assert_eq!(sent.ops_since(mark), ["GetRole", "GetRolePolicy"]);

    // Release both: exactly the containment policy, the attachment and the tag go.
    let mut release = release_report(&clients, &inc, Mode::Enforce);
    let mark = sent.mark();
    for record in [&deny_record, &revoke_record] {
        let ContainmentRecord::InlinePolicy(r) = record else {
            unreachable!()
        };
        restore_inline_policy(&clients, r, &mut release).await?;
    }
    assert_eq!(
        sent.ops_since(mark),
        [
            // deny-all: no inline deny of an older containment, then the attachment.
            "GetRolePolicy",
            "GetRole",
            "ListAttachedRolePolicies",
            "DetachRolePolicy",
            "UntagRole",
            "ListAttachedRolePolicies",
            // revoke-sessions.
            "GetRolePolicy",
            "DeleteRolePolicy",
            "GetRolePolicy",
        ]
    );
    let released = release.finish(clients.calls());
    assert_eq!(released.outcome, Outcome::Applied);
    assert_eq!(
        statuses(&released),
        vec![
            ChangeStatus::Applied,
            ChangeStatus::Applied,
            ChangeStatus::Applied
        ]
    );
    assert!(released.changes.iter().all(|c| c.after == Value::Null));
    assert!(
        released.notes.join("\n").contains("valid again"),
        "{:?}",
        released.notes
    );
    assert_eq!(role_state(&iam, &name).await, before);

    // Releasing again finds them gone.
    let mut again = release_report(&clients, &inc, Mode::Enforce);
    for record in [&deny_record, &revoke_record] {
        let ContainmentRecord::InlinePolicy(r) = record else {
            unreachable!()
        };
        restore_inline_policy(&clients, r, &mut again).await?;
    }
    let again = again.finish(clients.calls());
    assert_eq!(again.outcome, Outcome::AlreadyInPlace);
    assert_eq!(again.aws_calls, 4);

    // A record naming any other policy is refused and deletes nothing.
    let forged = InlinePolicyRecord {
        principal: Principal {
            kind: PrincipalKind::Role,
            name: name.clone(),
        },
        policy_name: "app-inline".to_owned(),
        purpose: PolicyPurpose::DenyAll,
    };
    let mut report = release_report(&clients, &inc, Mode::Enforce);
    let err = restore_inline_policy(&clients, &forged, &mut report)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    assert_eq!(role_state(&iam, &name).await, before);
    Ok(())
}

#[tokio::test]
async fn revoke_and_deny_on_a_user_use_user_policies() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let name = unique_name("ir-dev");
    create_user(&iam, &name, &[]).await;
    let key = create_key(&iam, &name).await;
    let inc = incident_id();
    let prot = protection(&[]);

    let mark = sent.mark();
    let revoked = revoke_sessions(
        &clients,
        &prot,
        &request(&inc, user_resource(&name, Some(&key)), Mode::Enforce),
    )
    .await?;
    assert_eq!(
        sent.ops_since(mark),
        ["GetUser", "GetUserPolicy", "PutUserPolicy", "GetUserPolicy"]
    );
    assert_eq!(revoked.outcome, Outcome::Applied);
    assert_eq!(revoked.changes[0].target, format!("user/{name}"));
    assert!(
        revoked.notes.join("\n").contains("GetSessionToken"),
        "{:?}",
        revoked.notes
    );
    let denied = deny_principal(
        &clients,
        &prot,
        &deny_policy(&iam).await,
        &request(&inc, user_resource(&name, None), Mode::Enforce),
    )
    .await?;
    assert_eq!(denied.aws_calls, 5);

    let state = user_state(&iam, &name).await;
    let revoke_doc = &state.inline[&policy_name(PolicyPurpose::RevokeSessions, &inc)];
    assert_eq!(revoke_doc, &revoked.changes[0].after);
    assert_eq!(issue_time(revoke_doc).len(), "2026-01-01T00:00:00Z".len());
    assert!(
        !state
            .inline
            .contains_key(&policy_name(PolicyPurpose::DenyAll, &inc))
    );
    let attached = |iam: aws_sdk_iam::Client, name: String| async move {
        iam.list_attached_user_policies()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        attached(iam.clone(), name.clone()).await,
        vec![deny_policy(&iam).await]
    );
    assert!(state.tags.iter().any(|(k, _)| *k == deny_hold_tag(&inc)));
    // Neither touches the keys.
    assert_eq!(state.keys[&key], "Active");

    let mut release = release_report(&clients, &inc, Mode::Enforce);
    for record in [&denied.record, &revoked.record] {
        let Some(ContainmentRecord::InlinePolicy(r)) = record else {
            panic!("{record:?}")
        };
        restore_inline_policy(&clients, r, &mut release).await?;
    }
    let after = user_state(&iam, &name).await;
    assert!(after.inline.is_empty());
    assert!(after.tags.is_empty(), "{:?}", after.tags);
    assert!(attached(iam.clone(), name.clone()).await.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_edited_containment_policy_is_rewritten() -> TestResult {
    let (clients, _sent, iam) = clients().await;
    let name = unique_name("ir-edit");
    create_role(&iam, &name, "/", &[]).await;
    let inc = incident_id();
    let revoke_name = policy_name(PolicyPurpose::RevokeSessions, &inc);
    let weakened = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}]});
    iam.put_role_policy()
        .role_name(&name)
        .policy_name(&revoke_name)
        .policy_document(weakened.to_string())
        .send()
        .await?;

    let report = revoke_sessions(
        &clients,
        &protection(&[]),
        &request(&inc, role_resource(&name), Mode::Enforce),
    )
    .await?;
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.changes[0].before, weakened);
    assert_eq!(report.changes[0].status, ChangeStatus::Applied);
    let stored = role_state(&iam, &name).await.inline[&revoke_name].clone();
    assert_eq!(stored["Statement"][0]["Action"], "*");
    assert!(!issue_time(&stored).is_empty());
    Ok(())
}

/// One deny-all policy per deployment: two incidents denying one role each hold it by their own
/// tag, and releasing one leaves the role denied until the other is released too. A release also
/// deletes the inline deny an older deny-principal wrote.
#[tokio::test]
async fn a_deny_held_by_two_incidents_stays_until_both_are_released() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let name = unique_name("ir-shared");
    create_role(&iam, &name, "/", &[]).await;
    let before = role_state(&iam, &name).await;
    let deny_arn = deny_policy(&iam).await;
    let prot = protection(&[]);
    let (first, second) = (incident_id(), incident_id());
    for inc in [&first, &second] {
        deny_principal(
            &clients,
            &prot,
            &deny_arn,
            &request(inc, role_resource(&name), Mode::Enforce),
        )
        .await?;
    }
    // The first incident was contained by an older version: an inline deny as well.
    let legacy = policy_name(PolicyPurpose::DenyAll, &first);
    iam.put_role_policy()
        .role_name(&name)
        .policy_name(&legacy)
        .policy_document(
            policy_document(PolicyPurpose::DenyAll, SystemTime::now().into()).to_string(),
        )
        .send()
        .await?;
    let state = role_state(&iam, &name).await;
    assert_eq!(state.attached, vec![deny_arn.clone()]);
    assert_eq!(state.tags.len(), 2, "{:?}", state.tags);

    let record = |inc: &str| InlinePolicyRecord {
        principal: Principal {
            kind: PrincipalKind::Role,
            name: name.clone(),
        },
        policy_name: policy_name(PolicyPurpose::DenyAll, inc),
        purpose: PolicyPurpose::DenyAll,
    };
    let mut release = release_report(&clients, &first, Mode::Enforce);
    let mark = sent.mark();
    restore_inline_policy(&clients, &record(&first), &mut release).await?;
    assert!(
        !sent
            .ops_since(mark)
            .iter()
            .any(|op| op == "DetachRolePolicy"),
        "detached while another incident holds the deny"
    );
    let released = release.finish(clients.calls());
    assert!(
        released.notes.join("\n").contains(&second),
        "{:?}",
        released.notes
    );
    let state = role_state(&iam, &name).await;
    assert!(state.inline.is_empty(), "{:?}", state.inline);
    assert_eq!(state.attached, vec![deny_arn.clone()]);
    assert_eq!(
        state.tags,
        vec![(deny_hold_tag(&second), "deny-all".to_owned())]
    );

    let mut release = release_report(&clients, &second, Mode::Enforce);
    restore_inline_policy(&clients, &record(&second), &mut release).await?;
    assert_eq!(role_state(&iam, &name).await, before);

    // A role the incident never denied keeps a deny-all someone else attached.
    let other = unique_name("ir-manual");
    create_role(&iam, &other, "/", &[]).await;
    iam.attach_role_policy()
        .role_name(&other)
        .policy_arn(&deny_arn)
        .send()
        .await?;
    let manual = role_state(&iam, &other).await;
    let mut release = release_report(&clients, &first, Mode::Enforce);
    let forged = InlinePolicyRecord {
        principal: Principal {
            kind: PrincipalKind::Role,
            name: other.clone(),
        },
        ..record(&first)
    };
    restore_inline_policy(&clients, &forged, &mut release).await?;
    assert_eq!(role_state(&iam, &other).await, manual);
    Ok(())
}

#[tokio::test]
async fn disable_the_named_key_only_and_release_reactivates_only_it() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let name = unique_name("ir-ci");
    create_user(&iam, &name, &[("owner", "ci")]).await;
    let k1 = create_key(&iam, &name).await;
    let k2 = create_key(&iam, &name).await;
    let inc = incident_id();
    let prot = protection(&[]);
    let req = request(&inc, user_resource(&name, Some(&k1)), Mode::Enforce);

    let mark = sent.mark();
    let first = disable_access_keys(&clients, &prot, &req).await?;
    assert_eq!(
        sent.ops_since(mark),
        [
            "GetUser",
            "ListAccessKeys",
            "TagUser",
            "UpdateAccessKey",
            "ListAccessKeys"
        ]
    );
    assert_eq!(first.aws_calls, 5);
    assert_eq!(first.outcome, Outcome::Applied);
    let record = ContainmentRecord::AccessKeys(AccessKeyRecord {
        user_name: name.clone(),
        deactivated: vec![k1.clone()],
    });
    assert_eq!(first.record.as_ref(), Some(&record));
    let key_change = first
        .changes
        .iter()
        .find(|c| c.attribute == format!("access-key:{k1}"))
        .expect("a change for the named key");
    assert_eq!(
        (key_change.before.clone(), key_change.after.clone()),
        (json!("Active"), json!("Inactive"))
    );
    assert_eq!(key_change.status, ChangeStatus::Applied);
    assert_eq!(key_change.target, format!("user/{name}"));
    assert!(
        !first
            .changes
            .iter()
            .any(|c| c.attribute == format!("access-key:{k2}"))
    );
    let notes = first.notes.join("\n");
    assert!(
        notes.contains(&k2) && notes.contains("stay Active"),
        "{notes}"
    );
    assert!(notes.contains("revoke-sessions"), "{notes}");

    let state = user_state(&iam, &name).await;
    assert_eq!(state.keys[&k1], "Inactive");
    assert_eq!(state.keys[&k2], "Active");
    assert!(
        state
            .tags
            .contains(&(deactivated_keys_tag(&inc), k1.clone())),
        "{:?}",
        state.tags
    );
    assert!(state.tags.contains(&("owner".to_owned(), "ci".to_owned())));

    // Second run: everything Inactive, the same record rebuilt from the user's tag.
    let mark = sent.mark();
    let second = disable_access_keys(&clients, &prot, &req).await?;
    assert_eq!(sent.ops_since(mark), ["GetUser", "ListAccessKeys"]);
    assert_eq!(second.aws_calls, 2);
    assert_eq!(second.outcome, Outcome::AlreadyInPlace);
    assert_eq!(statuses(&second), vec![ChangeStatus::Unchanged]);
    assert_eq!(second.record.as_ref(), Some(&record));
    assert_eq!(user_state(&iam, &name).await, state);

    // Release re-activates exactly k1 and removes the bookkeeping tag.
    let ContainmentRecord::AccessKeys(r) = &record else {
        unreachable!()
    };
    let mut release = release_report(&clients, &inc, Mode::Enforce);
    let mark = sent.mark();
    restore_access_keys(&clients, r, &mut release).await?;
    assert_eq!(
        sent.ops_since(mark),
        [
            "GetUser",
            "ListAccessKeys",
            "UpdateAccessKey",
            "UntagUser",
            "ListAccessKeys"
        ]
    );
    let released = release.finish(clients.calls());
    assert_eq!(released.outcome, Outcome::Applied);
    let restored = user_state(&iam, &name).await;
    assert_eq!(restored.keys[&k1], "Active");
    assert_eq!(restored.keys[&k2], "Active");
    assert_eq!(restored.tags, vec![("owner".to_owned(), "ci".to_owned())]);

    // Releasing again changes nothing.
    let mut again = release_report(&clients, &inc, Mode::Enforce);
    restore_access_keys(&clients, r, &mut again).await?;
    let again = again.finish(clients.calls());
    assert_eq!(again.outcome, Outcome::AlreadyInPlace);
    assert_eq!(again.aws_calls, 2);
    Ok(())
}

#[tokio::test]
async fn disable_every_key_when_the_finding_names_none() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let name = unique_name("ir-ops");
    create_user(&iam, &name, &[]).await;
    let k1 = create_key(&iam, &name).await;
    let k2 = create_key(&iam, &name).await;
    let inc = incident_id();

    let mark = sent.mark();
    let report = disable_access_keys(
        &clients,
        &protection(&[]),
        &request(&inc, user_resource(&name, None), Mode::Enforce),
    )
    .await?;
    assert_eq!(
        sent.ops_since(mark),
        [
            "GetUser",
            "ListAccessKeys",
            "TagUser",
            "UpdateAccessKey",
            "UpdateAccessKey",
            "ListAccessKeys"
        ]
    );
    assert_eq!(report.aws_calls, 6);
    assert_eq!(report.outcome, Outcome::Applied);
    let Some(ContainmentRecord::AccessKeys(record)) = &report.record else {
        panic!("{report:#?}")
    };
    let mut recorded = record.deactivated.clone();
    recorded.sort();
    let mut both = vec![k1.clone(), k2.clone()];
    both.sort();
    assert_eq!(recorded, both);
    let state = user_state(&iam, &name).await;
    assert_eq!(state.keys[&k1], "Inactive");
    assert_eq!(state.keys[&k2], "Inactive");
    Ok(())
}

#[tokio::test]
async fn a_key_already_inactive_is_not_recorded_and_stays_inactive_after_release() -> TestResult {
    let (clients, _sent, iam) = clients().await;
    let name = unique_name("ir-old");
    create_user(&iam, &name, &[]).await;
    let active = create_key(&iam, &name).await;
    let disabled = create_key(&iam, &name).await;
    iam.update_access_key()
        .user_name(&name)
        .access_key_id(&disabled)
        .status(StatusType::Inactive)
        .send()
        .await?;
    let inc = incident_id();

    let report = disable_access_keys(
        &clients,
        &protection(&[]),
        &request(&inc, user_resource(&name, None), Mode::Enforce),
    )
    .await?;
    let record = AccessKeyRecord {
        user_name: name.clone(),
        deactivated: vec![active.clone()],
    };
    assert_eq!(
        report.record,
        Some(ContainmentRecord::AccessKeys(record.clone()))
    );
    let unchanged = report
        .changes
        .iter()
        .find(|c| c.attribute == format!("access-key:{disabled}"))
        .unwrap();
    assert_eq!(unchanged.status, ChangeStatus::Unchanged);

    let mut release = release_report(&clients, &inc, Mode::Enforce);
    restore_access_keys(&clients, &record, &mut release).await?;
    let state = user_state(&iam, &name).await;
    assert_eq!(state.keys[&active], "Active");
    assert_eq!(
        state.keys[&disabled], "Inactive",
        "release must not re-enable a key the owner had disabled"
    );
    Ok(())
}

#[tokio::test]
async fn release_of_keys_notes_a_key_deleted_since_and_restores_the_others() -> TestResult {
    let (clients, _sent, iam) = clients().await;
    let name = unique_name("ir-gone");
    create_user(&iam, &name, &[]).await;
    let k1 = create_key(&iam, &name).await;
    let k2 = create_key(&iam, &name).await;
    let inc = incident_id();
    let report = disable_access_keys(
        &clients,
        &protection(&[]),
        &request(&inc, user_resource(&name, None), Mode::Enforce),
    )
    .await?;
    let Some(ContainmentRecord::AccessKeys(record)) = report.record else {
        panic!()
    };
    iam.delete_access_key()
        .user_name(&name)
        .access_key_id(&k1)
        .send()
        .await?;

    let mut release = release_report(&clients, &inc, Mode::Enforce);
    restore_access_keys(&clients, &record, &mut release).await?;
    let released = release.finish(clients.calls());
    assert!(
        released
            .notes
            .iter()
            .any(|n| n.contains(&k1) && n.contains("no longer exists")),
        "{:?}",
        released.notes
    );
    assert_eq!(
        user_state(&iam, &name).await.keys,
        BTreeMap::from([(k2.clone(), "Active".to_owned())])
    );
    Ok(())
}

#[tokio::test]
async fn protected_principals_are_refused_and_left_unchanged() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let suite_role = unique_name("ir-responder");
    let configured = unique_name("BreakGlass");
    let configured_user = unique_name("root-ops");
    role_with_policies(&iam, &suite_role).await;
    role_with_policies(&iam, &configured).await;
    create_user(&iam, &configured_user, &[]).await;
    let key = create_key(&iam, &configured_user).await;
    let prot = Protection {
        // The suite's own role, by its exact ARN (IR_SUITE_PRINCIPALS).
        suite_principals: vec![format!("arn:aws:iam::{ACCOUNT_ID}:role/{suite_role}")],
        ..protection(&[
            &configured,
            &format!("arn:aws:iam::{ACCOUNT_ID}:user/{configured_user}"),
        ])
    };
    let inc = incident_id();

    for name in [&suite_role, &configured] {
        let before = role_state(&iam, name).await;
        for deny in [false, true] {
            let req = request(&inc, role_resource(name), Mode::Enforce);
            let mark = sent.mark();
            let result = if deny {
                deny_principal(&clients, &prot, &deny_policy(&iam).await, &req).await
            } else {
                revoke_sessions(&clients, &prot, &req).await
            };
            let err = expect_err(result, ErrorName::Protected);
            assert!(matches!(err, ActionError::Protected(_)), "{err:?}");
            assert_eq!(err.error_name().as_str(), "Protected");
            // Refused right after reading the principal: nothing else was even read.
            assert_eq!(sent.ops_since(mark), ["GetRole"]);
        }
        assert_eq!(role_state(&iam, name).await, before, "{name}");
    }

    // A configured user (by ARN), for every action.
    let before = user_state(&iam, &configured_user).await;
    let req = request(
        &inc,
        user_resource(&configured_user, Some(&key)),
        Mode::Enforce,
    );
    expect_err(
        disable_access_keys(&clients, &prot, &req).await,
        ErrorName::Protected,
    );
    expect_err(
        revoke_sessions(&clients, &prot, &req).await,
        ErrorName::Protected,
    );
    expect_err(
        deny_principal(&clients, &prot, &deny_policy(&iam).await, &req).await,
        ErrorName::Protected,
    );
    assert_eq!(user_state(&iam, &configured_user).await, before);

    // The suite's role reached through an instance profile is protected too.
    let profile = unique_name("ir-suite-profile");
    let arn = instance_profile(&iam, &profile, None, Some(&suite_role)).await;
    let before = role_state(&iam, &suite_role).await;
    expect_err(
        revoke_sessions(
            &clients,
            &prot,
            &request(&inc, instance(Some(&arn)), Mode::Enforce),
        )
        .await,
        ErrorName::Protected,
    );
    assert_eq!(role_state(&iam, &suite_role).await, before);
    Ok(())
}

#[tokio::test]
async fn dry_run_changes_nothing_and_returns_the_plan() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let role_name = unique_name("ir-plan-role");
    role_with_policies(&iam, &role_name).await;
    let user_name = unique_name("ir-plan-user");
    create_user(&iam, &user_name, &[("team", "data")]).await;
    let k1 = create_key(&iam, &user_name).await;
    let k2 = create_key(&iam, &user_name).await;
    let role_before = role_state(&iam, &role_name).await;
    let user_before = user_state(&iam, &user_name).await;
    let inc = incident_id();
    let prot = protection(&[]);

    // An absent mode is dry-run.
    let parsed: ContainmentRequest = serde_json::from_value(json!({
        "incidentId": inc, "findingId": "f", "stepId": "s",
        "resource": {"type": "iam-role", "roleName": role_name}
    }))?;
    assert_eq!(parsed.mode, Mode::DryRun);

    let mark = sent.mark();
    let revoke = revoke_sessions(&clients, &prot, &parsed).await?;
    assert_eq!(sent.ops_since(mark), ["GetRole", "GetRolePolicy"]);
    let deny_arn = deny_policy(&iam).await;
    let mark = sent.mark();
    let deny = deny_principal(&clients, &prot, &deny_arn, &parsed).await?;
    assert_eq!(
        sent.ops_since(mark),
        ["GetRole", "ListAttachedRolePolicies"]
    );
    assert_eq!(
        deny.changes
            .iter()
            .map(|c| (
                c.attribute.clone(),
                c.before.clone(),
                c.after.clone(),
                c.status
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                format!("tag:{}", deny_hold_tag(&inc)),
                Value::Null,
                json!("deny-all"),
                ChangeStatus::Planned
            ),
            (
                format!("attached-policy:{}", deny_arn.rsplit('/').next().unwrap()),
                Value::Null,
                json!(deny_arn),
                ChangeStatus::Planned
            ),
        ]
    );
    for report in [&revoke, &deny] {
        assert_eq!(report.mode, Mode::DryRun);
        assert_eq!(report.outcome, Outcome::Planned);
        assert_eq!(report.aws_calls, 2);
        assert_eq!(report.record, None);
        assert!(
            report.notes.iter().any(|n| n.starts_with("dry-run")),
            "{:?}",
            report.notes
        );
    }
    assert_eq!(revoke.changes.len(), 1);
    let c = &revoke.changes[0];
    assert_eq!(c.status, ChangeStatus::Planned);
    assert_eq!(c.target, format!("role/{role_name}"));
    assert_eq!(
        c.attribute,
        format!(
            "inline-policy:{}",
            policy_name(PolicyPurpose::RevokeSessions, &inc)
        )
    );
    assert_eq!(c.before, Value::Null);
    assert_eq!(c.after["Statement"][0]["Effect"], "Deny");

    let user_req = request(&inc, user_resource(&user_name, None), Mode::DryRun);
    let mark = sent.mark();
    let keys = disable_access_keys(&clients, &prot, &user_req).await?;
    assert_eq!(sent.ops_since(mark), ["GetUser", "ListAccessKeys"]);
    assert_eq!(keys.aws_calls, 2);
    assert_eq!(keys.outcome, Outcome::Planned);
    assert_eq!(keys.record, None);
    let mut planned: Vec<(String, Value, Value, ChangeStatus)> = keys
        .changes
        .iter()
        .map(|c| {
            (
                c.attribute.clone(),
                c.before.clone(),
                c.after.clone(),
                c.status,
            )
        })
        .collect();
    planned.sort_by(|a, b| a.0.cmp(&b.0));
    let tag = deactivated_keys_tag(&inc);
    let mut expected = vec![
        (
            format!("access-key:{k1}"),
            json!("Active"),
            json!("Inactive"),
            ChangeStatus::Planned,
        ),
        (
            format!("access-key:{k2}"),
            json!("Active"),
            json!("Inactive"),
            ChangeStatus::Planned,
        ),
        (
            format!("tag:{tag}"),
            Value::Null,
            json!(format!("{k1} {k2}")),
            ChangeStatus::Planned,
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(planned, expected);
    let user_revoke = revoke_sessions(&clients, &prot, &user_req).await?;
    let user_deny = deny_principal(&clients, &prot, &deny_policy(&iam).await, &user_req).await?;
    assert_eq!(
        (user_revoke.outcome, user_deny.outcome),
        (Outcome::Planned, Outcome::Planned)
    );

    // Release in dry-run plans, and changes nothing either.
    let mut release = release_report(&clients, &inc, Mode::DryRun);
    let record = AccessKeyRecord {
        user_name: user_name.clone(),
        deactivated: vec![k1.clone()],
    };
    iam.update_access_key()
        .user_name(&user_name)
        .access_key_id(&k1)
        .status(StatusType::Inactive)
        .send()
        .await?;
    let user_before = UserState {
        keys: BTreeMap::from([
            (k1.clone(), "Inactive".to_owned()),
            (k2.clone(), "Active".to_owned()),
        ]),
        ..user_before
    };
    restore_access_keys(&clients, &record, &mut release).await?;
    let planned_release = release.finish(clients.calls());
    assert_eq!(planned_release.outcome, Outcome::Planned);
    assert_eq!(statuses(&planned_release), vec![ChangeStatus::Planned]);

    assert_eq!(role_state(&iam, &role_name).await, role_before);
    assert_eq!(user_state(&iam, &user_name).await, user_before);
    Ok(())
}

#[tokio::test]
async fn revoke_through_an_instance_profile_lands_on_its_role() -> TestResult {
    let (clients, sent, iam) = clients().await;
    let role_name = unique_name("ir-web-instance");
    create_role(&iam, &role_name, "/", &[]).await;
    let profile = unique_name("ir-web-profile");
    let arn = instance_profile(&iam, &profile, Some("/app/"), Some(&role_name)).await;
    let inc = incident_id();
    let prot = protection(&[]);

    let mark = sent.mark();
    let report = revoke_sessions(
        &clients,
        &prot,
        &request(&inc, instance(Some(&arn)), Mode::Enforce),
    )
    .await?;
    assert_eq!(
        sent.ops_since(mark),
        [
            "GetInstanceProfile",
            "GetRole",
            "GetRolePolicy",
            "PutRolePolicy",
            "GetRolePolicy"
        ]
    );
    assert_eq!(report.aws_calls, 5);
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.changes[0].target, format!("role/{role_name}"));
    assert_eq!(
        report.record,
        Some(ContainmentRecord::InlinePolicy(InlinePolicyRecord {
            principal: Principal {
                kind: PrincipalKind::Role,
                name: role_name.clone()
            },
            policy_name: policy_name(PolicyPurpose::RevokeSessions, &inc),
            purpose: PolicyPurpose::RevokeSessions,
        }))
    );
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("IMDS") && notes.contains("instance profile"),
        "{notes}"
    );
    let state = role_state(&iam, &role_name).await;
    assert_eq!(
        state.inline.keys().cloned().collect::<Vec<_>>(),
        vec![policy_name(PolicyPurpose::RevokeSessions, &inc)]
    );

    let second = revoke_sessions(
        &clients,
        &prot,
        &request(&inc, instance(Some(&arn)), Mode::Enforce),
    )
    .await?;
    assert_eq!(second.outcome, Outcome::AlreadyInPlace);
    assert_eq!(second.aws_calls, 3);

    // No profile in the finding, an ARN that is not a profile, a profile without a role.
    expect_err(
        revoke_sessions(
            &clients,
            &prot,
            &request(&inc, instance(None), Mode::Enforce),
        )
        .await,
        ErrorName::InvalidInput,
    );
    expect_err(
        revoke_sessions(
            &clients,
            &prot,
            &request(
                &inc,
                instance(Some(&format!("arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"))),
                Mode::Enforce,
            ),
        )
        .await,
        ErrorName::InvalidInput,
    );
    let empty = unique_name("ir-empty-profile");
    let empty_arn = instance_profile(&iam, &empty, None, None).await;
    expect_err(
        revoke_sessions(
            &clients,
            &prot,
            &request(&inc, instance(Some(&empty_arn)), Mode::Enforce),
        )
        .await,
        ErrorName::InvalidInput,
    );
    let missing = format!(
        "arn:aws:iam::{ACCOUNT_ID}:instance-profile/{}",
        unique_name("ir-no-profile")
    );
    expect_err(
        revoke_sessions(
            &clients,
            &prot,
            &request(&inc, instance(Some(&missing)), Mode::Enforce),
        )
        .await,
        ErrorName::NotFound,
    );
    Ok(())
}

#[tokio::test]
async fn unknown_principals_and_wrong_kinds_are_typed_errors() -> TestResult {
    let (clients, _sent, iam) = clients().await;
    let prot = protection(&[]);
    let inc = incident_id();

    // A deleted user and a role that never existed.
    let deleted = unique_name("ir-deleted");
    create_user(&iam, &deleted, &[]).await;
    iam.delete_user().user_name(&deleted).send().await?;
    let deleted_req = request(&inc, user_resource(&deleted, None), Mode::Enforce);
    expect_err(
        disable_access_keys(&clients, &prot, &deleted_req).await,
        ErrorName::NotFound,
    );
    expect_err(
        revoke_sessions(&clients, &prot, &deleted_req).await,
        ErrorName::NotFound,
    );
    let err = expect_err(
        deny_principal(&clients, &prot, &deny_policy(&iam).await, &deleted_req).await,
        ErrorName::NotFound,
    );
    assert!(matches!(err, ActionError::NotFound(_)), "{err:?}");
    let unknown_role = request(
        &inc,
        role_resource(&unique_name("ir-nobody")),
        Mode::Enforce,
    );
    expect_err(
        revoke_sessions(&clients, &prot, &unknown_role).await,
        ErrorName::NotFound,
    );
    expect_err(
        deny_principal(&clients, &prot, &deny_policy(&iam).await, &unknown_role).await,
        ErrorName::NotFound,
    );

    // A key that is not the user's: NotFound, and the user's own key is left alone.
    let owner = unique_name("ir-owner");
    let other = unique_name("ir-other");
    create_user(&iam, &owner, &[]).await;
    create_user(&iam, &other, &[]).await;
    let own_key = create_key(&iam, &owner).await;
    let foreign_key = create_key(&iam, &other).await;
    let before = user_state(&iam, &owner).await;
    expect_err(
        disable_access_keys(
            &clients,
            &prot,
            &request(
                &inc,
                user_resource(&owner, Some(&foreign_key)),
                Mode::Enforce,
            ),
        )
        .await,
        ErrorName::NotFound,
    );
    assert_eq!(user_state(&iam, &owner).await, before);
    assert_eq!(before.keys[&own_key], "Active");
    assert_eq!(user_state(&iam, &other).await.keys[&foreign_key], "Active");

    // Wrong kinds.
    let bucket = Resource::S3Bucket(S3Bucket {
        bucket_name: "evidence".to_owned(),
        arn: None,
    });
    let other_kind = Resource::Other(OtherResource {
        resource_type: "AwsEc2SecurityGroup".to_owned(),
        id: "sg-1".to_owned(),
    });
    for resource in [bucket, other_kind] {
        let req = request(&inc, resource, Mode::Enforce);
        expect_err(
            revoke_sessions(&clients, &prot, &req).await,
            ErrorName::InvalidInput,
        );
        expect_err(
            deny_principal(&clients, &prot, &deny_policy(&iam).await, &req).await,
            ErrorName::InvalidInput,
        );
        expect_err(
            disable_access_keys(&clients, &prot, &req).await,
            ErrorName::InvalidInput,
        );
    }
    let err = expect_err(
        disable_access_keys(
            &clients,
            &prot,
            &request(&inc, role_resource("web-prod"), Mode::Enforce),
        )
        .await,
        ErrorName::InvalidInput,
    );
    assert!(err.to_string().contains("revoke-sessions"), "{err}");
    expect_err(
        disable_access_keys(
            &clients,
            &prot,
            &request(
                &inc,
                user_resource(&owner, Some("ASIAEXAMPLESESSION01")),
                Mode::Enforce,
            ),
        )
        .await,
        ErrorName::InvalidInput,
    );
    expect_err(
        deny_principal(
            &clients,
            &prot,
            &deny_policy(&iam).await,
            &request(&inc, instance(None), Mode::Enforce),
        )
        .await,
        ErrorName::InvalidInput,
    );
    expect_err(
        revoke_sessions(
            &clients,
            &prot,
            &request("not-an-incident", role_resource("web-prod"), Mode::Enforce),
        )
        .await,
        ErrorName::InvalidInput,
    );
    assert_eq!(user_state(&iam, &owner).await, before);
    Ok(())
}

#[tokio::test]
async fn a_failure_part_way_reports_the_keys_already_deactivated_and_a_rerun_completes()
-> TestResult {
    let (clients, sent, iam) = clients().await;
    let name = unique_name("ir-half");
    create_user(&iam, &name, &[]).await;
    let k1 = create_key(&iam, &name).await;
    let k2 = create_key(&iam, &name).await;
    // The action deactivates in ListAccessKeys order: make the second one fail.
    let listing = iam.list_access_keys().user_name(&name).send().await?;
    let order: Vec<String> = listing
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id().map(str::to_owned))
        .collect();
    let mut both = order.clone();
    both.sort();
    let mut created = vec![k1, k2];
    created.sort();
    assert_eq!(both, created);
    let (done_key, failing_key) = (order[0].clone(), order[1].clone());
    let inc = incident_id();
    let prot = protection(&[]);
    let req = request(&inc, user_resource(&name, None), Mode::Enforce);

    sent.fail_sending("UpdateAccessKey", "AccessKeyId", &failing_key);
    let err = disable_access_keys(&clients, &prot, &req)
        .await
        .unwrap_err();
    sent.stop_failing();
    let ActionError::Incomplete { cause, done } = &err else {
        panic!("expected Incomplete, got {err:?}")
    };
    assert!(matches!(**cause, ActionError::Aws(_)), "{cause:?}");
    let applied: Vec<&str> = done
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .map(|c| c.attribute.as_str())
        .collect();
    assert_eq!(
        applied,
        vec![
            format!("tag:{}", deactivated_keys_tag(&inc)),
            format!("access-key:{done_key}")
        ]
    );
    assert!(
        err.to_string().contains(&format!("access-key:{done_key}")),
        "{err}"
    );
    let state = user_state(&iam, &name).await;
    assert_eq!(state.keys[&done_key], "Inactive");
    assert_eq!(state.keys[&failing_key], "Active");
    // The tag was written first, naming both keys this incident set out to deactivate.
    assert!(
        state.tags.contains(&(
            deactivated_keys_tag(&inc),
            format!("{done_key} {failing_key}")
        )),
        "{:?}",
        state.tags
    );

    // The retry finishes the job without touching the tag again, and reports the full record.
    let mark = sent.mark();
    let rerun = disable_access_keys(&clients, &prot, &req).await?;
    assert_eq!(
        sent.ops_since(mark),
        [
            "GetUser",
            "ListAccessKeys",
            "UpdateAccessKey",
            "ListAccessKeys"
        ]
    );
    assert_eq!(rerun.outcome, Outcome::Applied);
    assert_eq!(
        rerun.record,
        Some(ContainmentRecord::AccessKeys(AccessKeyRecord {
            user_name: name.clone(),
            deactivated: vec![done_key.clone(), failing_key.clone()]
        }))
    );
    let state = user_state(&iam, &name).await;
    assert_eq!(
        (
            state.keys[&done_key].as_str(),
            state.keys[&failing_key].as_str()
        ),
        ("Inactive", "Inactive")
    );
    Ok(())
}
