//! release-containment against the local cloud: contain an instance, its role and a user with
//! every containment action in enforce mode, then release from the records they returned and
//! check that exactly the original state is back, that evidence is untouched, and that a second
//! release changes nothing.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, InstanceNetworkInterfaceSpecification, InstanceType,
    ShutdownBehavior,
};
use ir_aws::release::release_containment;
use ir_aws::{ClientOptions, Clients, ec2, iam};
use ir_core::action::{ActionReport, ChangeStatus, ContainmentRequest, Outcome, ReleaseRequest};
use ir_core::config::{Mode, Protection};
use ir_core::event::{Ec2Instance, IamRole, IamUser, Resource};
use ir_tests::{LocalCloud, unique_name};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const APP_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

struct Victim {
    instance_id: String,
    enis: Vec<String>,
    role: String,
    user: String,
    keys: Vec<String>,
}

async fn group(ec2: &aws_sdk_ec2::Client, vpc: &str) -> String {
    let out = ec2
        .create_security_group()
        .group_name(unique_name("app"))
        .description("app")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
    out.group_id().unwrap().to_owned()
}

async fn victim(c: &Clients) -> Victim {
    let vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.70.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let subnet = c
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.70.1.0/24")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_owned();
    let (g1, g2, g3) = (
        group(&c.ec2, &vpc).await,
        group(&c.ec2, &vpc).await,
        group(&c.ec2, &vpc).await,
    );
    let run = c
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(&subnet)
                .groups(&g2)
                .groups(&g1)
                .build(),
        )
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
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
        .send()
        .await
        .unwrap();
    let instance = &run.instances()[0];
    let instance_id = instance.instance_id().unwrap().to_owned();
    let primary = instance.network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_owned();
    let second = c
        .ec2
        .create_network_interface()
        .subnet_id(&subnet)
        .groups(&g3)
        .send()
        .await
        .unwrap();
    let second = second
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_owned();
    c.ec2
        .attach_network_interface()
        .network_interface_id(&second)
        .instance_id(&instance_id)
        .device_index(1)
        .send()
        .await
        .unwrap();

    let role = unique_name("app-role");
    c.iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    c.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("app")
        .policy_document(APP_POLICY)
        .send()
        .await
        .unwrap();
    let user = unique_name("deployer");
    c.iam.create_user().user_name(&user).send().await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let k = c
            .iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap();
        keys.push(k.access_key().unwrap().access_key_id().to_owned());
    }
    Victim {
        instance_id,
        enis: vec![primary, second],
        role,
        user,
        keys,
    }
}

/// Everything release may change, read back from the emulator.
async fn state(c: &Clients, v: &Victim) -> String {
    let mut out = BTreeMap::new();
    for eni in &v.enis {
        let d = c
            .ec2
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
            .await
            .unwrap();
        let groups: Vec<String> = d.network_interfaces()[0]
            .groups()
            .iter()
            .map(|g| g.group_id().unwrap().to_owned())
            .collect();
        out.insert(format!("{eni} groups"), format!("{groups:?}"));
    }
    for attr in [
        aws_sdk_ec2::types::InstanceAttributeName::DisableApiTermination,
        aws_sdk_ec2::types::InstanceAttributeName::DisableApiStop,
        aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior,
        aws_sdk_ec2::types::InstanceAttributeName::BlockDeviceMapping,
    ] {
        let a = c
            .ec2
            .describe_instance_attribute()
            .instance_id(&v.instance_id)
            .attribute(attr.clone())
            .send()
            .await
            .unwrap();
        out.insert(
            format!("{attr:?}"),
            format!(
                "{:?} {:?} {:?} {:?}",
                a.disable_api_termination(),
                a.disable_api_stop(),
                a.instance_initiated_shutdown_behavior(),
                a.block_device_mappings()
                    .iter()
                    .map(|m| m.ebs().and_then(|e| e.delete_on_termination()))
                    .collect::<Vec<_>>()
            ),
        );
    }
    let d = c
        .ec2
        .describe_instances()
        .instance_ids(&v.instance_id)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<String> = d.reservations()[0].instances()[0]
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key().unwrap(), t.value().unwrap()))
        .collect();
    tags.sort();
    out.insert("instance tags".into(), format!("{tags:?}"));
    let policies = c
        .iam
        .list_role_policies()
        .role_name(&v.role)
        .send()
        .await
        .unwrap();
    out.insert(
        "role policies".into(),
        format!("{:?}", policies.policy_names()),
    );
    let user_policies = c
        .iam
        .list_user_policies()
        .user_name(&v.user)
        .send()
        .await
        .unwrap();
    out.insert(
        "user policies".into(),
        format!("{:?}", user_policies.policy_names()),
    );
    let keys = c
        .iam
        .list_access_keys()
        .user_name(&v.user)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = keys
        .access_key_metadata()
        .iter()
        .map(|k| format!("{} {:?}", k.access_key_id().unwrap(), k.status()))
        .collect();
    keys.sort();
    out.insert("keys".into(), format!("{keys:?}"));
    let tags = c
        .iam
        .list_user_tags()
        .user_name(&v.user)
        .send()
        .await
        .unwrap();
    out.insert(
        "user tags".into(),
        format!(
            "{:?}",
            tags.tags().iter().map(|t| t.key()).collect::<Vec<_>>()
        ),
    );
    format!("{out:#?}")
}

fn request(incident: &str, step: &str, resource: Resource) -> ContainmentRequest {
    ContainmentRequest {
        incident_id: incident.into(),
        finding_id: "f-1".into(),
        step_id: step.into(),
        resource,
        mode: Mode::Enforce,
    }
}

fn applied(r: &ActionReport) -> usize {
    r.changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .count()
}

#[tokio::test]
async fn release_restores_exactly_what_containment_changed_and_keeps_evidence() {
    let cloud = LocalCloud::shared().await.unwrap_or_else(|e| panic!("{e}"));
    let c = Clients::new(
        &cloud.sdk_config(),
        ClientOptions {
            s3_force_path_style: true,
        },
    );
    let v = victim(&c).await;
    let incident = format!("inc-{:020x}", u128::from(std::process::id()) << 32 | 0xfeed);
    let protection = Protection::default();
    let before = state(&c, &v).await;

    let instance = Resource::Ec2Instance(Ec2Instance {
        instance_id: v.instance_id.clone(),
        vpc_id: None,
        subnet_id: None,
        network_interfaces: Vec::new(),
        instance_profile_arn: None,
        image_id: None,
        launch_time: None,
    });
    let role = Resource::IamRole(IamRole {
        role_name: v.role.clone(),
        access_key_id: None,
        principal_id: None,
    });
    let user = Resource::IamUser(IamUser {
        user_name: v.user.clone(),
        access_key_id: Some(v.keys[0].clone()),
        principal_id: None,
    });

    let snap = ec2::snapshot_volumes(
        &c,
        &request(&incident, "snapshot-volumes", instance.clone()),
    )
    .await
    .unwrap();
    let reports = vec![
        ec2::isolate_instance(&c, &request(&incident, "isolate-instance", instance))
            .await
            .unwrap(),
        iam::revoke_sessions(
            &c,
            &protection,
            &request(&incident, "revoke-credentials", role.clone()),
        )
        .await
        .unwrap(),
        iam::deny_principal(&c, &protection, &request(&incident, "deny-principal", role))
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
    };
    let plan = release_containment(&c, &dry).await.unwrap();
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
    let mark = c.calls.count();
    let done = release_containment(&c, &release).await.unwrap();
    assert_eq!(done.outcome, Outcome::Applied);
    assert!(applied(&done) > 0);
    assert_eq!(
        state(&c, &v).await,
        before,
        "release did not restore the original state"
    );
    let calls = c.calls.since(mark);
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
        .ec2
        .describe_snapshots()
        .set_snapshot_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(found.snapshots().len(), ids.len());

    // A second release changes nothing.
    let again = release_containment(&c, &release).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyInPlace);
    assert_eq!(applied(&again), 0);
    assert_eq!(state(&c, &v).await, before);
}

#[tokio::test]
async fn an_empty_release_is_a_no_op_and_bad_payloads_are_invalid_input() {
    let cloud = LocalCloud::shared().await.unwrap_or_else(|e| panic!("{e}"));
    let c = Clients::new(
        &cloud.sdk_config(),
        ClientOptions {
            s3_force_path_style: true,
        },
    );
    let req = ReleaseRequest {
        incident_id: "inc-00000000000000000001".into(),
        step_id: "release".into(),
        mode: Mode::Enforce,
        records: Vec::new(),
    };
    let r = release_containment(&c, &req).await.unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyInPlace);
    assert_eq!(r.aws_calls, 0);
    let bad = ir_aws::payload::Checked::<ReleaseRequest>::parse(
        r#"{"incidentId":"inc-00000000000000000001","records":[{"kind":"nope"}]}"#,
    )
    .unwrap();
    let e = ir_aws::action::perform(ir_aws::release::ACTION, bad, |req| async move {
        release_containment(&c, &req).await
    })
    .await
    .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&e),
        ir_core::ErrorName::InvalidInput
    );
}
