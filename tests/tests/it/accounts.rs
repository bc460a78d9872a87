//! Acting across an organization's accounts and regions, offline: the suite in the security
//! account ([`ACCOUNT_ID`], [`REGION`]) contains a victim in a member account and another region
//! through the member role `member-account.yaml` creates there; a finding from an account the
//! config does not allow, or from an allowed account where the member role is missing, is
//! triaged and recorded, and its containment refused with a typed error; the same instance id
//! in two accounts is two incidents.

// A test stops loudly on anything unexpected, helpers included.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use ir_core::Named;
use ir_core::accounts::Accounts;
use ir_core::correlate;
use ir_core::incident::Status;
use ir_tests::member::{
    EXTERNAL_ID, MEMBER_ACCOUNT, MEMBER_REGION, OUTSIDE_ACCOUNT, UNPREPARED_ACCOUNT,
};
use ir_tests::offline::{Offline, Settings, Victim};
use ir_tests::{ACCOUNT_ID, REGION, TestResult};
use serde_json::Value;
use time::OffsetDateTime;

use crate::e2e::{GATE_WAIT, GATES, RUN_WAIT, approve_by_two, audit_actions};

fn incident_of(account: &str, region: &str, finding_id: &str) -> String {
    correlate::incident_id(&format!("guardduty:{account}:{region}:{finding_id}"))
}

/// The config's accounts: the member account by id, with the member trust's external id (the
/// security account included, as by default).
fn allowing(ids: &[&str]) -> Accounts {
    Accounts {
        allowed_account_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        external_id: Some(EXTERNAL_ID.to_owned()),
        ..Accounts::default()
    }
}

/// Delivers the bundled finding about `victim` to the real ir-ingest (after three resolved
/// incidents on it, which routes it to immediate-isolation as in the e2e tests).
async fn deliver_about(off: &Offline, victim: &Victim, finding_id: &str, history: bool) -> String {
    let now = OffsetDateTime::now_utc();
    if history {
        off.seed_history_for(victim, 3, now).await.unwrap();
    }
    let envelope = victim
        .finding(finding_id, now, time::Duration::minutes(5))
        .unwrap();
    let answer = off.invoke("ir-ingest", &envelope).await.unwrap();
    assert_eq!(answer.error, None, "{:?}", answer.body);
    let id = incident_of(&victim.account, &victim.region, finding_id);
    assert!(answer.body.to_string().contains(&id), "{}", answer.body);
    id
}

/// Security group ids tagged `ir:group` (the suite's conversion and isolation groups) that
/// `clients` see in their account and region.
async fn suite_groups(clients: &ir_aws::Clients) -> BTreeSet<String> {
    clients
        .ec2()
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
        .iter()
        .filter(|g| g.tags().iter().any(|t| t.key() == Some("ir:group")))
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_victim_in_another_account_and_region_is_contained_through_its_member_role() -> TestResult
{
    let off = Offline::start(Settings {
        accounts: Some(allowing(&[MEMBER_ACCOUNT])),
        victim_in: Some((MEMBER_ACCOUNT.to_owned(), MEMBER_REGION.to_owned())),
        ..Settings::default()
    })
    .await?;
    assert_eq!(
        (off.victim.account.as_str(), off.victim.region.as_str()),
        (MEMBER_ACCOUNT, MEMBER_REGION)
    );
    let before = off.victim.state(&off.victim_clients).await?;
    let incident = deliver_about(&off, &off.victim, "ac0000000000000000000000000000b1", true).await;

    // The incident records where the resource is.
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.account, MEMBER_ACCOUNT);
    assert_eq!(stored.region.as_deref(), Some(MEMBER_REGION));
    assert!(stored.summary.resource_key.starts_with(MEMBER_ACCOUNT));

    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        approve_by_two(&off, &incident, step).await;
    }
    off.wait_for_status(&incident, &[Status::Contained], RUN_WAIT)
        .await?;

    // Contained in the member account and region: one isolation group on every interface, the
    // instance role's sessions revoked there.
    let after = off.victim.state(&off.victim_clients).await?;
    let isolation: BTreeSet<&Vec<String>> = after.interface_groups.values().collect();
    assert_eq!(isolation.len(), 1, "{after:?}");
    assert_ne!(after.interface_groups, before.interface_groups);
    assert_eq!(
        after.role_policies.len(),
        before.role_policies.len() + 1,
        "{after:?}"
    );
    // The suite's groups exist there, and none in the security account's own region.
    assert!(!suite_groups(&off.victim_clients).await.is_empty());
    assert!(suite_groups(&off.clients).await.is_empty());

    // The evidence stays in the security account and says where it came from.
    let listed = off
        .clients
        .s3()
        .list_objects_v2()
        .bucket(&off.bucket)
        .prefix(format!("incidents/{incident}/"))
        .send()
        .await?;
    let manifest_key = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.contains("/manifests/"))
        .expect("a manifest")
        .to_owned();
    let manifest = off
        .clients
        .s3()
        .get_object()
        .bucket(&off.bucket)
        .key(&manifest_key)
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    let manifest: Value = serde_json::from_slice(&manifest)?;
    assert_eq!(manifest["account"], MEMBER_ACCOUNT, "{manifest}");
    assert_eq!(manifest["region"], MEMBER_REGION, "{manifest}");

    // Every action ran: none was refused for its account.
    let actions = audit_actions(&off, &incident).await;
    for step in ["collect-evidence", "snapshot-volumes"] {
        assert!(
            actions
                .iter()
                .any(|(a, d)| a.starts_with("action:") && d["step"] == step),
            "{step}: {actions:?}"
        );
    }

    // `ir release` restores with the operator's own credentials, in the security account: it
    // refuses a member account's incident (exit 4) and changes nothing.
    let out = off
        .ir_as(
            &off.people.carol,
            &["release", &incident, "--reason", "done"],
        )
        .await?;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(MEMBER_ACCOUNT),
        "{out:?}"
    );
    assert_eq!(off.victim.state(&off.victim_clients).await?, after);
    Ok(())
}

#[tokio::test]
async fn findings_from_an_account_not_allowed_or_without_its_member_role_are_recorded_and_refused()
-> TestResult {
    // The unprepared account is allowed, but member-account.yaml was never deployed there.
    let off = Offline::start(Settings {
        accounts: Some(allowing(&[UNPREPARED_ACCOUNT])),
        ..Settings::default()
    })
    .await?;
    for (account, error) in [
        (OUTSIDE_ACCOUNT, "AccountNotAllowed"),
        (UNPREPARED_ACCOUNT, "MemberAccessDenied"),
    ] {
        // The same instance as the victim in the suite's account, in another account.
        let mut elsewhere = off.victim.clone();
        elsewhere.account = account.to_owned();
        let finding_id = format!("ac{:030x}", account.parse::<u64>().unwrap());
        let incident = deliver_about(&off, &elsewhere, &finding_id, true).await;
        // Triaged and recorded; its playbook stops at the first step that must act there.
        let stopped = off
            .wait_for_status(&incident, &[Status::NeedsAttention], RUN_WAIT)
            .await?;
        assert_eq!(stopped.account, account);
        let last = stopped.last_error.expect("the stop's error");
        assert!(last.message.contains(error), "{account}: {last:?}");
        let actions = audit_actions(&off, &incident).await;
        assert!(
            actions.iter().any(|(a, _)| a == "triaged"),
            "{account}: {actions:?}"
        );
        let failures: Vec<&Value> = actions
            .iter()
            .filter(|(a, _)| a == "step-failed")
            .map(|(_, d)| d)
            .collect();
        assert!(!failures.is_empty(), "{account}: {actions:?}");
        for f in &failures {
            assert_eq!(f["error"], error, "{account}: {f}");
        }
        // No approval was ever asked for a step that cannot act there, and nothing acted.
        assert!(
            !actions
                .iter()
                .any(|(a, _)| a == "approval-requested" || a.starts_with("action:")),
            "{account}: {actions:?}"
        );
    }
    // The victim in the suite's own account was never touched, and the same instance id in the
    // two other accounts made two more incidents, not attachments to one.
    assert!(suite_groups(&off.clients).await.is_empty());
    let theirs = incident_of(
        OUTSIDE_ACCOUNT,
        REGION,
        &format!("ac{:030x}", 333_344_445_555_u64),
    );
    let ours_id = "ac0000000000000000000000000000a1";
    let ours = deliver_about(&off, &off.victim, ours_id, false).await;
    assert_ne!(ours, theirs);
    let (a, b) = (
        off.incident(&ours).await?.unwrap(),
        off.incident(&theirs).await?.unwrap(),
    );
    assert_eq!(a.resource.id(), b.resource.id());
    assert_ne!(a.summary.resource_key, b.summary.resource_key);
    assert_eq!(a.account, ACCOUNT_ID);
    assert_eq!(b.account, OUTSIDE_ACCOUNT);
    assert_eq!((a.finding_count, b.finding_count), (1, 1));
    Ok(())
}

/// The allow-list by organizational unit reads the account's parents from AWS Organizations
/// (the emulator's): an account two OUs below an allowed one is allowed, one elsewhere in the
/// organization is not, and one the organization does not know is refused.
#[tokio::test]
async fn an_account_under_an_allowed_ou_is_allowed_at_any_depth_and_no_other() -> TestResult {
    use ir_aws::member::MemberAccess;
    use ir_core::accounts::Allowance;

    let cloud = ir_tests::LocalCloud::shared().await?;
    let clients = ir_aws::Clients::new(
        &cloud.sdk_config(),
        ir_aws::ClientOptions {
            s3_force_path_style: true,
        },
    );
    let org = clients.organizations();
    // One organization per emulator, shared by every test: made once, then found.
    if org.describe_organization().send().await.is_err() {
        org.create_organization().send().await?;
    }
    let root = org.list_roots().send().await?.roots()[0]
        .id()
        .unwrap()
        .to_owned();
    let ou = |parent: String, name: String| {
        let org = org.clone();
        async move {
            org.create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send()
                .await
                .unwrap()
                .organizational_unit()
                .unwrap()
                .id()
                .unwrap()
                .to_owned()
        }
    };
    let workloads = ou(root.clone(), ir_tests::unique_name("workloads")).await;
    let team = ou(workloads.clone(), ir_tests::unique_name("team")).await;
    let sandbox = ou(root.clone(), ir_tests::unique_name("sandbox")).await;
    let account_in = |parent: String, name: String| {
        let org = org.clone();
        async move {
            let created = org
                .create_account()
                .account_name(&name)
                .email(format!("{name}@example.com"))
                .send()
                .await
                .unwrap();
            let id = created
                .create_account_status()
                .unwrap()
                .account_id()
                .unwrap()
                .to_owned();
            let from = org
                .list_parents()
                .child_id(&id)
                .send()
                .await
                .unwrap()
                .parents()[0]
                .id()
                .unwrap()
                .to_owned();
            org.move_account()
                .account_id(&id)
                .source_parent_id(from)
                .destination_parent_id(parent)
                .send()
                .await
                .unwrap();
            id
        }
    };
    let deep = account_in(team, ir_tests::unique_name("deep")).await;
    let elsewhere = account_in(sandbox, ir_tests::unique_name("else")).await;

    let member = MemberAccess::new(
        Accounts {
            allowed_organizational_units: vec![workloads.clone()],
            ..Accounts::default()
        },
        ACCOUNT_ID,
        REGION,
    );
    assert_eq!(
        member.allowance(&clients, &deep).await?,
        Allowance::OrganizationalUnit(workloads)
    );
    assert!(matches!(
        member.allowance(&clients, &elsewhere).await?,
        Allowance::Refused(_)
    ));
    // Not in the organization at all: refused as not allowed, not a failure.
    let unknown = member.allowance(&clients, "999988887777").await;
    assert!(
        matches!(&unknown, Err(e) if e.error_name() == ir_core::ErrorName::AccountNotAllowed),
        "{unknown:?}"
    );
    Ok(())
}
