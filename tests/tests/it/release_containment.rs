//! The restores `ir release` runs (`ir_actions::release`, in the operator's own process: no
//! function deploys them) against the local cloud: contain an instance, its role and a user with
//! every containment action in enforce mode, then release from the records they returned and
//! check that exactly the original state is back, that evidence is untouched, and that a second
//! release changes nothing.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, ShutdownBehavior};
use ir_actions::release::release_containment;
use ir_actions::{ec2, iam};
use ir_aws::Clients;
use ir_core::action::{ActionReport, ChangeStatus, ContainmentRequest, Outcome, ReleaseRequest};
use ir_core::config::{Mode, Protection};
use ir_core::event::Resource;
use ir_tests::fixtures::{
    APP_POLICY, attach_interface, create_deny_policy, create_key, create_role,
    create_security_group, create_subnet, create_user, create_vpc, eni_state, instance_protection,
    instance_tags, launch, primary_interface, put_role_policy, role_state, run_instance,
    user_state,
};
use ir_tests::{
    clients, cloud, containment_request, expect_err, incident_id, instance_resource, role_resource,
    unique_name, user_resource,
};

struct Victim {
    instance_id: String,
    enis: Vec<String>,
    role: String,
    user: String,
    keys: Vec<String>,
}

async fn group(ec2: &aws_sdk_ec2::Client, vpc: &str) -> String {
    create_security_group(ec2, vpc, &unique_name("app"), "app").await
}

async fn victim(c: &Clients) -> Victim {
    let vpc = create_vpc(c.ec2(), "10.70.0.0/16").await;
    let subnet = create_subnet(c.ec2(), &vpc, "10.70.1.0/24").await;
    let (g1, g2, g3) = (
        group(c.ec2(), &vpc).await,
        group(c.ec2(), &vpc).await,
        group(c.ec2(), &vpc).await,
    );
    let instance = launch(
        run_instance(c.ec2())
            .network_interfaces(primary_interface(&subnet, &[g2, g1]))
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(8)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate),
    )
    .await;
    let instance_id = instance.instance_id().unwrap().to_owned();
    let primary = instance.network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_owned();
    let second = attach_interface(c.ec2(), &instance_id, &subnet, &[g3], false).await;

    let role = unique_name("app-role");
    create_role(c.iam(), &role, "/", &[]).await;
    put_role_policy(c.iam(), &role, "app", APP_POLICY).await;
    let user = unique_name("deployer");
    create_user(c.iam(), &user, &[]).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        keys.push(create_key(c.iam(), &user).await);
    }
    Victim {
        instance_id,
        enis: vec![primary, second],
        role,
        user,
        keys,
    }
}

/// Everything release may change, read back from the emulator: each interface's groups and
/// tags, the instance's protection and tags, the role's and the user's policies, keys and tags.
async fn state(c: &Clients, v: &Victim) -> String {
    let mut enis = Vec::new();
    for eni in &v.enis {
        enis.push((eni, eni_state(c.ec2(), eni).await));
    }
    format!(
        "{:#?}",
        (
            enis,
            instance_protection(c.ec2(), &v.instance_id).await,
            instance_tags(c.ec2(), &v.instance_id).await,
            role_state(c.iam(), &v.role).await,
            user_state(c.iam(), &v.user).await,
        )
    )
}

fn request(incident: &str, step: &str, resource: Resource) -> ContainmentRequest {
    containment_request(incident, step, resource, Mode::Enforce)
}

fn applied(r: &ActionReport) -> usize {
    r.changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .count()
}

#[tokio::test]
async fn release_restores_exactly_what_containment_changed_and_keeps_evidence() {
    let c = clients(cloud().await);
    let v = victim(&c).await;
    let incident = incident_id();
    let protection = Protection::default();
    let before = state(&c, &v).await;

    let instance = instance_resource(&v.instance_id);
    let role = role_resource(&v.role);
    let user = user_resource(&v.user, Some(&v.keys[0]));

    let snap = ec2::snapshot_volumes(
        &c,
        &request(&incident, "snapshot-volumes", instance.clone()),
    )
    .await
    .unwrap();
    let reports = vec![
        ir_tests::isolate(&c, &request(&incident, "isolate-instance", instance))
            .await
            .unwrap(),
        iam::revoke_sessions(
            &c,
            &protection,
            &request(&incident, "revoke-credentials", role.clone()),
        )
        .await
        .unwrap(),
        iam::deny_principal(
            &c,
            &protection,
            &create_deny_policy(c.iam()).await,
            &request(&incident, "deny-principal", role),
        )
        .await
        .unwrap(),
        iam::disable_access_keys(
            &c,
            &protection,
            &request(&incident, "disable-access-keys", user),
        )
        .await
        .unwrap(),
    ];
    for r in &reports {
        assert_eq!(r.outcome, Outcome::Applied, "{}", r.action);
        assert!(r.record.is_some(), "{} returned no record", r.action);
    }
    let contained = state(&c, &v).await;
    assert_ne!(contained, before);
    let records: Vec<_> = reports.iter().filter_map(|r| r.record.clone()).collect();

    // Dry-run release: the plan, and nothing changes.
    let dry = ReleaseRequest {
        incident_id: incident.clone(),
        step_id: "release".into(),
        mode: Mode::DryRun,
        records: records.clone(),
        force: false,
    };
    let plan = release_containment(&c, &dry).await.unwrap().report;
    assert_eq!(plan.outcome, Outcome::Planned);
    assert!(
        plan.changes
            .iter()
            .any(|ch| ch.status == ChangeStatus::Planned)
    );
    assert_eq!(
        state(&c, &v).await,
        contained,
        "dry-run release changed something"
    );

    // Enforce: exactly the original state is back.
    let release = ReleaseRequest {
        mode: Mode::Enforce,
        ..dry
    };
    let mark = c.calls().count();
    let done = release_containment(&c, &release).await.unwrap().report;
    assert_eq!(done.outcome, Outcome::Applied);
    assert!(applied(&done) > 0);
    assert_eq!(
        state(&c, &v).await,
        before,
        "release did not restore the original state"
    );
    let calls = c.calls().since(mark);
    assert!(
        calls
            .iter()
            .all(|op| !op.contains("DeleteSnapshot") && !op.contains("DeleteObject")),
        "release touched evidence: {calls:?}"
    );
    eprintln!(
        "release (enforce, 4 records): {} AWS calls: {calls:?}",
        done.aws_calls
    );

    // Evidence is untouched: the snapshots still exist.
    let Some(ir_core::action::Artifacts::Snapshots { snapshots, .. }) = snap.artifacts else {
        panic!("no snapshots")
    };
    let ids: Vec<String> = snapshots.iter().map(|s| s.snapshot_id.clone()).collect();
    let found = c
        .ec2()
        .describe_snapshots()
        .set_snapshot_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(found.snapshots().len(), ids.len());

    // A second release changes nothing.
    let again = release_containment(&c, &release).await.unwrap().report;
    assert_eq!(again.outcome, Outcome::AlreadyInPlace);
    assert_eq!(applied(&again), 0);
    assert_eq!(state(&c, &v).await, before);
}

#[tokio::test]
async fn an_empty_release_is_a_no_op_and_bad_payloads_are_invalid_input() {
    let c = clients(cloud().await);
    let req = ReleaseRequest {
        incident_id: "inc-00000000000000000001".into(),
        step_id: "release".into(),
        mode: Mode::Enforce,
        records: Vec::new(),
        force: false,
    };
    let r = release_containment(&c, &req).await.unwrap().report;
    assert_eq!(r.outcome, Outcome::AlreadyInPlace);
    assert_eq!(r.aws_calls, 0);
    let bad = ir_lambda::payload::Checked::<ReleaseRequest>::parse(
        r#"{"incidentId":"inc-00000000000000000001","records":[{"kind":"nope"}]}"#,
    )
    .unwrap();
    expect_err(
        ir_lambda::perform(ir_actions::release::ACTION, bad, |req| async move {
            release_containment(&c, &req).await.map(|r| r.report)
        })
        .await,
        ir_core::ErrorName::InvalidInput,
    );
}
