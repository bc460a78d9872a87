//! isolate-instance and restore_isolation against the local cloud: real aws-sdk-rust calls to
//! the moto server the harness starts. Every test builds its own VPC, subnets, groups and
//! instance, and only looks at what it created.
//!
//! moto quirks these tests work around (the product code does what AWS requires regardless):
//! * moto reports an attached interface's groups as the union of its own groups and the
//!   instance-level `SecurityGroups` of `RunInstances` (a set: unordered). Instances here are
//!   launched with a `NetworkInterfaces` specification carrying the groups instead, as
//!   infrastructure-as-code usually does, so what moto reports is exactly the interface's groups.
//! * moto accepts `ModifyInstanceAttribute --groups` on a two-interface instance, which AWS
//!   refuses; the action never sends it, and the request log proves which calls it sends.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, BlockDeviceMapping, EbsBlockDevice, IpPermission, IpRange, ResourceType,
    ShutdownBehavior,
};
use ir_actions::ActionError;
use ir_actions::ec2::{
    TAG_INCIDENT, TAG_ORIGINAL_ATTRIBUTES, TAG_ORIGINAL_GROUPS, TAG_QUARANTINED_AT,
    conversion_group_name, isolation_group_name, restore_isolation,
};
use ir_aws::Clients;
use ir_core::action::{
    ActionReport, ChangeStatus, ContainmentRecord, ContainmentRequest, EniGroups,
    InstanceAttributes, IsolationRecord, Outcome, VolumeAttachment,
};
use ir_core::config::Mode;
use ir_core::{ErrorName, Named};
use ir_tests::fixtures::{
    attach_interface, create_security_group, describe_instance, eni_state, filter,
    instance_protection, instance_tags, launch, name_tag, primary_interface, run_instance,
};
use ir_tests::{
    ACCOUNT_ID, REGION, RequestLog, SentRequest, change, cloud, containment_request, expect_err,
    holds, incident_id, instance_resource, isolate, recorded_clients, release_report, unique_name,
    user_resource,
};

const AZ: &str = "us-east-1a";

/// A resource and the security groups it was set to.
type GroupChange = (String, Vec<String>);

/// Every security-group change really sent since the previous call: interface and groups of
/// each ModifyNetworkInterfaceAttribute (not dry-run), and any ModifyInstanceAttribute
/// `--groups`.
fn take_group_changes(sent: &RequestLog) -> Vec<GroupChange> {
    sent.take().iter().filter_map(group_change).collect()
}

fn group_change(request: &SentRequest) -> Option<GroupChange> {
    match request.operation.as_str() {
        "ModifyNetworkInterfaceAttribute" if !request.dry_run() => Some((
            request
                .param("NetworkInterfaceId")
                .unwrap_or_default()
                .to_owned(),
            request.list("SecurityGroupId"),
        )),
        "ModifyInstanceAttribute" if !request.list("GroupId").is_empty() => Some((
            format!(
                "{} (ModifyInstanceAttribute --groups)",
                request.param("InstanceId").unwrap_or_default()
            ),
            request.list("GroupId"),
        )),
        _ => None,
    }
}

fn request(incident: &str, instance_id: &str, mode: Mode) -> ContainmentRequest {
    containment_request(incident, "isolate", instance_resource(instance_id), mode)
}

/// What each test isolates: an instance in an IPv6 VPC with two interfaces in two subnets,
/// each with its own groups and an IPv6 address, and two EBS volumes deleted on termination.
#[derive(Debug)]
struct Fixture {
    vpc_id: String,
    subnets: [String; 2],
    /// Groups of the primary interface, in their (deliberately not sorted) order.
    primary_groups: Vec<String>,
    secondary_groups: Vec<String>,
    instance_id: String,
    enis: [String; 2],
    volumes: [(String, String); 2],
}

async fn group(ec2: &aws_sdk_ec2::Client, vpc_id: &str, prefix: &str) -> String {
    create_security_group(ec2, vpc_id, &unique_name(prefix), "application group").await
}

async fn fixture(ec2: &aws_sdk_ec2::Client) -> Fixture {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.60.0.0/16")
        .amazon_provided_ipv6_cidr_block(true)
        .tag_specifications(name_tag(ResourceType::Vpc, &unique_name("ir-test-vpc")))
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap();
    let vpc_id = vpc.vpc_id().unwrap().to_owned();
    let v6 = vpc
        .ipv6_cidr_block_association_set()
        .first()
        .and_then(|a| a.ipv6_cidr_block())
        .expect("an Amazon-provided IPv6 /56");
    let base: Ipv6Addr = v6.split('/').next().unwrap().parse().unwrap();
    let mut subnets = Vec::new();
    for n in 1..=2u16 {
        let mut seg = base.segments();
        seg[3] |= n;
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .availability_zone(AZ)
            .cidr_block(format!("10.60.{n}.0/24"))
            .ipv6_cidr_block(format!("{}/64", Ipv6Addr::from(seg)))
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_owned());
    }
    let subnets: [String; 2] = subnets.try_into().unwrap();

    let (a, b) = (
        group(ec2, &vpc_id, "ir-test-web").await,
        group(ec2, &vpc_id, "ir-test-ssh").await,
    );
    // Descending: an implementation that sorted the groups would not restore this order.
    let primary_groups = if a > b { vec![a, b] } else { vec![b, a] };
    let secondary_groups = vec![group(ec2, &vpc_id, "ir-test-db").await];

    let (instance_id, enis, volumes) =
        instance(ec2, &subnets, &primary_groups, &secondary_groups).await;
    Fixture {
        vpc_id,
        subnets,
        primary_groups,
        secondary_groups,
        instance_id,
        enis,
        volumes,
    }
}

/// Launches an instance with two interfaces (the second created and attached separately), each
/// with an IPv6 address, and two EBS volumes.
async fn instance(
    ec2: &aws_sdk_ec2::Client,
    subnets: &[String; 2],
    primary_groups: &[String],
    secondary_groups: &[String],
) -> (String, [String; 2], [(String, String); 2]) {
    let ebs = |size| {
        EbsBlockDevice::builder()
            .volume_size(size)
            .delete_on_termination(true)
            .build()
    };
    let inst = launch(
        run_instance(ec2)
            .network_interfaces(primary_interface(&subnets[0], primary_groups))
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(ebs(8))
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvdb")
                    .ebs(ebs(4))
                    .build(),
            )
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .tag_specifications(name_tag(
                ResourceType::Instance,
                &unique_name("ir-test-web"),
            )),
    )
    .await;
    let instance_id = inst.instance_id().unwrap().to_owned();
    let primary = inst
        .network_interfaces()
        .first()
        .and_then(|n| n.network_interface_id())
        .unwrap()
        .to_owned();
    ec2.assign_ipv6_addresses()
        .network_interface_id(&primary)
        .ipv6_address_count(1)
        .send()
        .await
        .unwrap();
    let secondary = attach_interface(ec2, &instance_id, &subnets[1], secondary_groups, true).await;

    let volumes: Vec<(String, String)> = describe_instance(ec2, &instance_id)
        .await
        .block_device_mappings()
        .iter()
        .map(|m| {
            (
                m.device_name().unwrap().to_owned(),
                m.ebs().unwrap().volume_id().unwrap().to_owned(),
            )
        })
        .collect();
    (
        instance_id,
        [primary, secondary],
        volumes.try_into().unwrap(),
    )
}

/// The suite's groups in the VPC (found by name, whatever their tags).
async fn suite_groups(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
) -> Vec<aws_sdk_ec2::types::SecurityGroup> {
    let out = ec2
        .describe_security_groups()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
        .unwrap();
    let ours = [conversion_group_name(vpc_id), isolation_group_name(vpc_id)];
    out.security_groups()
        .iter()
        .filter(|g| ours.iter().any(|n| g.group_name() == Some(n.as_str())))
        .cloned()
        .collect()
}

/// (is egress, protocol, cidr) of every rule of a group, from DescribeSecurityGroupRules.
async fn rules(ec2: &aws_sdk_ec2::Client, group_id: &str) -> Vec<(bool, String, String)> {
    let out = ec2
        .describe_security_group_rules()
        .filters(filter("group-id", group_id))
        .send()
        .await
        .unwrap();
    let mut rules: Vec<(bool, String, String)> = out
        .security_group_rules()
        .iter()
        .map(|r| {
            let cidr = r
                .cidr_ipv4()
                .or(r.cidr_ipv6())
                .or(r.prefix_list_id())
                .unwrap_or("group-reference")
                .to_owned();
            (
                r.is_egress().unwrap(),
                r.ip_protocol().unwrap().to_owned(),
                cidr,
            )
        })
        .collect();
    rules.sort();
    rules
}

fn isolation(report: &ActionReport) -> &IsolationRecord {
    match &report.record {
        Some(ContainmentRecord::Isolation(r)) => r,
        other => panic!("expected an isolation record, got {other:?}"),
    }
}

async fn restore(
    clients: &Clients,
    incident: &str,
    record: &IsolationRecord,
    mode: Mode,
) -> Result<ActionReport, ActionError> {
    let mut report = release_report(clients, incident, mode);
    restore_isolation(clients, record, &mut report).await?;
    Ok(report.finish(clients.calls()))
}

#[tokio::test]
async fn isolates_both_interfaces_through_the_conversion_group_and_restores_them_exactly() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let fx = fixture(ec2).await;
    let inc = incident_id();
    let [eni1, eni2] = &fx.enis;

    // First enforce run.
    let mark = sent.mark();
    let report = isolate(&clients, &request(&inc, &fx.instance_id, Mode::Enforce))
        .await
        .unwrap();
    let calls = sent.ops_since(mark);
    assert_eq!(
        calls,
        [
            "DescribeInstances",
            "DescribeNetworkInterfaces",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeSecurityGroups",
            "CreateSecurityGroup",
            "CreateSecurityGroup",
            "DescribeSecurityGroups",
            "AuthorizeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateTags",
            "CreateTags",
            "CreateTags",
            "ModifyInstanceAttribute",
            "ModifyInstanceAttribute",
            "ModifyInstanceAttribute",
            "ModifyInstanceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "DescribeNetworkInterfaces",
            "DescribeSecurityGroups",
        ],
        "{calls:?}"
    );
    assert_eq!(report.aws_calls, 24);
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.mode, Mode::Enforce);

    // The suite's two groups, and nothing else named ir-*, exist in the VPC.
    let groups = suite_groups(ec2, &fx.vpc_id).await;
    let id_of = |name: String| {
        groups
            .iter()
            .find(|g| g.group_name() == Some(name.as_str()))
            .and_then(|g| g.group_id())
            .unwrap()
            .to_owned()
    };
    let conversion = id_of(conversion_group_name(&fx.vpc_id));
    let isolation_id = id_of(isolation_group_name(&fx.vpc_id));
    assert_eq!(groups.len(), 2, "{groups:?}");

    // Isolation group: no rule at all, seen both ways.
    let iso = groups
        .iter()
        .find(|g| g.group_id() == Some(isolation_id.as_str()))
        .unwrap();
    assert!(
        iso.ip_permissions().is_empty() && iso.ip_permissions_egress().is_empty(),
        "{iso:?}"
    );
    assert_eq!(rules(ec2, &isolation_id).await, []);
    // Conversion group: all traffic, IPv4 and IPv6, in and out.
    let all = |egress: bool| {
        [
            (egress, "-1".to_owned(), "0.0.0.0/0".to_owned()),
            (egress, "-1".to_owned(), "::/0".to_owned()),
        ]
    };
    let mut want = all(false).to_vec();
    want.extend(all(true));
    want.sort();
    assert_eq!(rules(ec2, &conversion).await, want);

    // Each interface went to the conversion group alone, then to the isolation group alone;
    // ModifyInstanceAttribute --groups was never used.
    assert_eq!(
        take_group_changes(&sent),
        [
            (eni1.clone(), vec![conversion.clone()]),
            (eni1.clone(), vec![isolation_id.clone()]),
            (eni2.clone(), vec![conversion.clone()]),
            (eni2.clone(), vec![isolation_id.clone()]),
        ]
    );
    assert_eq!(eni_state(ec2, eni1).await.0, vec![isolation_id.clone()]);
    assert_eq!(eni_state(ec2, eni2).await.0, vec![isolation_id.clone()]);

    // Preserved.
    let (term, stop, shutdown, dot) = instance_protection(ec2, &fx.instance_id).await;
    assert!(term && stop);
    assert_eq!(shutdown, "stop");
    assert_eq!(
        dot,
        [
            (fx.volumes[0].1.clone(), false),
            (fx.volumes[1].1.clone(), false)
        ]
    );

    // The record holds the originals, and so do the tags.
    let record = isolation(&report).clone();
    let original_attributes = InstanceAttributes {
        disable_api_termination: false,
        disable_api_stop: false,
        shutdown_behavior: "terminate".into(),
        volumes: fx
            .volumes
            .iter()
            .map(|(device, volume)| VolumeAttachment {
                device_name: device.clone(),
                volume_id: volume.clone(),
                delete_on_termination: true,
            })
            .collect(),
    };
    assert_eq!(
        record,
        IsolationRecord {
            instance_id: fx.instance_id.clone(),
            vpc_id: fx.vpc_id.clone(),
            conversion_group_id: conversion.clone(),
            isolation_group_id: isolation_id.clone(),
            interfaces: vec![
                EniGroups {
                    network_interface_id: eni1.clone(),
                    original_group_ids: fx.primary_groups.clone()
                },
                EniGroups {
                    network_interface_id: eni2.clone(),
                    original_group_ids: fx.secondary_groups.clone()
                },
            ],
            original_attributes: original_attributes.clone(),
            tags_added: vec![
                TAG_INCIDENT.into(),
                TAG_ORIGINAL_ATTRIBUTES.into(),
                TAG_QUARANTINED_AT.into()
            ],
            hold_key: Some(format!(
                "isolation#{ACCOUNT_ID}:{REGION}:{}",
                fx.instance_id
            )),
        }
    );
    let tags = instance_tags(ec2, &fx.instance_id).await;
    assert_eq!(tags.get(TAG_INCIDENT), Some(&inc));
    assert_eq!(
        ir_actions::ec2::decode_attributes(&tags[TAG_ORIGINAL_ATTRIBUTES]).unwrap(),
        original_attributes
    );
    let at = &tags[TAG_QUARANTINED_AT];
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert_eq!(
        eni_state(ec2, eni1).await.1.get(TAG_ORIGINAL_GROUPS),
        Some(&fx.primary_groups.join(" "))
    );
    assert_eq!(
        eni_state(ec2, eni2).await.1.get(TAG_ORIGINAL_GROUPS),
        Some(&fx.secondary_groups.join(" "))
    );

    // The report: one change per interface, attribute and volume, before -> after.
    let c = change(&report, eni1, "security-groups");
    assert_eq!(
        (c.status, &c.before, &c.after),
        (
            ChangeStatus::Applied,
            &serde_json::json!(fx.primary_groups),
            &serde_json::json!([isolation_id])
        )
    );
    assert_eq!(
        change(&report, &fx.instance_id, "disable-api-termination").status,
        ChangeStatus::Applied
    );
    assert_eq!(
        change(
            &report,
            &fx.instance_id,
            "instance-initiated-shutdown-behavior"
        )
        .before,
        "terminate"
    );
    assert_eq!(
        change(&report, &fx.volumes[1].1, "delete-on-termination").status,
        ChangeStatus::Applied
    );
    assert_eq!(
        change(&report, &fx.instance_id, "tag:ir:incident").after,
        serde_json::json!(inc)
    );
    for needle in ["network ACL", "metadata", "conversion group"] {
        assert!(
            report.notes.iter().any(|n| n.contains(needle)),
            "no note on {needle}: {:#?}",
            report.notes
        );
    }

    // Second enforce run: nothing to do, the same record (from the tags), no new group.
    let mark = sent.mark();
    let again = isolate(&clients, &request(&inc, &fx.instance_id, Mode::Enforce))
        .await
        .unwrap();
    assert_eq!(
        again.outcome,
        Outcome::AlreadyInPlace,
        "{:#?}",
        again.changes
    );
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.status == ChangeStatus::Unchanged)
    );
    assert_eq!(isolation(&again), &record);
    assert_eq!(
        sent.ops_since(mark),
        [
            "DescribeInstances",
            "DescribeNetworkInterfaces",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeSecurityGroups"
        ]
    );
    assert_eq!(again.aws_calls, 6);
    assert_eq!(suite_groups(ec2, &fx.vpc_id).await.len(), 2);
    assert_eq!(take_group_changes(&sent), []);

    // A dry-run now plans nothing either.
    let planned = isolate(&clients, &request(&inc, &fx.instance_id, Mode::DryRun))
        .await
        .unwrap();
    assert_eq!(planned.outcome, Outcome::AlreadyInPlace);
    assert_eq!(planned.record, None);

    // Release: exactly the originals back, the suite's tags gone, the groups left in place.
    let mark = sent.mark();
    let restored = restore(&clients, &inc, &record, Mode::Enforce)
        .await
        .unwrap();
    assert_eq!(
        sent.ops_since(mark),
        [
            "DescribeInstances",
            "DescribeNetworkInterfaces",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyInstanceAttribute",
            "ModifyInstanceAttribute",
            "ModifyInstanceAttribute",
            "ModifyInstanceAttribute",
            "DeleteTags",
            "DeleteTags",
            "DescribeNetworkInterfaces",
        ]
    );
    assert_eq!(restored.aws_calls, 14);
    assert_eq!(restored.outcome, Outcome::Applied);
    assert_eq!(
        take_group_changes(&sent),
        [
            (eni1.clone(), fx.primary_groups.clone()),
            (eni2.clone(), fx.secondary_groups.clone())
        ]
    );
    assert_eq!(
        eni_state(ec2, eni1).await.0,
        fx.primary_groups,
        "order kept"
    );
    assert_eq!(eni_state(ec2, eni2).await.0, fx.secondary_groups);
    assert_eq!(
        instance_protection(ec2, &fx.instance_id).await,
        (
            false,
            false,
            "terminate".to_owned(),
            vec![
                (fx.volumes[0].1.clone(), true),
                (fx.volumes[1].1.clone(), true)
            ]
        )
    );
    let leftover = |tags: BTreeMap<String, String>| {
        tags.into_keys()
            .filter(|k| k.starts_with("ir:"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        leftover(instance_tags(ec2, &fx.instance_id).await),
        Vec::<String>::new()
    );
    assert_eq!(leftover(eni_state(ec2, eni1).await.1), Vec::<String>::new());
    assert_eq!(leftover(eni_state(ec2, eni2).await.1), Vec::<String>::new());
    assert!(
        instance_tags(ec2, &fx.instance_id)
            .await
            .contains_key("Name"),
        "tags isolation did not add are kept"
    );
    assert_eq!(
        suite_groups(ec2, &fx.vpc_id).await.len(),
        2,
        "the per-VPC groups stay for other instances"
    );

    // Restoring again changes nothing.
    let mark = sent.mark();
    let twice = restore(&clients, &inc, &record, Mode::Enforce)
        .await
        .unwrap();
    assert_eq!(
        twice.outcome,
        Outcome::AlreadyInPlace,
        "{:#?}",
        twice.changes
    );
    assert_eq!(twice.aws_calls, 5, "{:?}", sent.ops_since(mark));
    assert_eq!(take_group_changes(&sent), []);
}

/// Everything a dry-run could possibly touch, rendered strictly (request ids excluded).
async fn state(ec2: &aws_sdk_ec2::Client, fx: &Fixture) -> String {
    let instances = ec2
        .describe_instances()
        .instance_ids(&fx.instance_id)
        .send()
        .await
        .unwrap();
    let enis = ec2
        .describe_network_interfaces()
        .filters(filter("vpc-id", &fx.vpc_id))
        .send()
        .await
        .unwrap();
    let groups = ec2
        .describe_security_groups()
        .filters(filter("vpc-id", &fx.vpc_id))
        .send()
        .await
        .unwrap();
    let mut rules = Vec::new();
    for g in groups.security_groups() {
        rules.push(self::rules(ec2, g.group_id().unwrap()).await);
    }
    let volumes = ec2
        .describe_volumes()
        .set_volume_ids(Some(fx.volumes.iter().map(|v| v.1.clone()).collect()))
        .send()
        .await
        .unwrap();
    let snapshots = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter("volume-id", &fx.volumes[0].1))
        .send()
        .await
        .unwrap();
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}",
        instances.reservations(),
        enis.network_interfaces(),
        groups.security_groups(),
        rules,
        volumes.volumes(),
        snapshots.snapshots(),
        instance_protection(ec2, &fx.instance_id).await,
    )
}

#[tokio::test]
async fn dry_run_changes_nothing_and_lists_the_plan() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let fx = fixture(ec2).await;
    let inc = incident_id();

    let before = state(ec2, &fx).await;
    let mark = sent.mark();
    let report = isolate(&clients, &request(&inc, &fx.instance_id, Mode::DryRun))
        .await
        .unwrap();
    let calls = sent.ops_since(mark);
    let after = state(ec2, &fx).await;
    assert!(
        before == after,
        "the dry-run changed something:\n--- before\n{before}\n--- after\n{after}"
    );
    assert_eq!(suite_groups(ec2, &fx.vpc_id).await.len(), 0);
    assert_eq!(
        take_group_changes(&sent),
        [],
        "no group change was sent for real"
    );

    // Reads, then every mutating call of the plan once with DryRun=true.
    assert_eq!(
        calls,
        [
            "DescribeInstances",
            "DescribeNetworkInterfaces",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeSecurityGroups",
            "CreateSecurityGroup (DryRun)",
            "CreateTags (DryRun)",
            "ModifyInstanceAttribute (DryRun)",
            "ModifyNetworkInterfaceAttribute (DryRun)",
            "ModifyNetworkInterfaceAttribute (DryRun)",
        ]
    );
    assert_eq!(report.aws_calls, 11);
    assert_eq!(
        (report.outcome, report.mode, &report.record),
        (Outcome::Planned, Mode::DryRun, &None)
    );
    assert!(
        report
            .changes
            .iter()
            .all(|c| matches!(c.status, ChangeStatus::Planned | ChangeStatus::Unchanged))
    );

    // The plan: both groups to create, each interface to the (new) isolation group, the
    // protection, the volumes and the tags.
    let new_iso = format!("(new) {}", isolation_group_name(&fx.vpc_id));
    let conv = change(
        &report,
        &fx.vpc_id,
        &format!("security-group:{}", conversion_group_name(&fx.vpc_id)),
    );
    assert_eq!(
        (conv.status, &conv.after),
        (
            ChangeStatus::Planned,
            &serde_json::json!(format!("(new) {}", conversion_group_name(&fx.vpc_id)))
        )
    );
    assert_eq!(
        change(&report, &new_iso, "egress-rules").after,
        serde_json::json!([])
    );
    for (eni_id, groups) in [
        (&fx.enis[0], &fx.primary_groups),
        (&fx.enis[1], &fx.secondary_groups),
    ] {
        let c = change(&report, eni_id, "security-groups");
        assert_eq!(
            (c.status, &c.before, &c.after),
            (
                ChangeStatus::Planned,
                &serde_json::json!(groups),
                &serde_json::json!([new_iso])
            )
        );
        assert_eq!(
            change(&report, eni_id, &format!("tag:{TAG_ORIGINAL_GROUPS}")).after,
            serde_json::json!(groups.join(" "))
        );
    }
    assert_eq!(
        change(&report, &fx.instance_id, "disable-api-stop").status,
        ChangeStatus::Planned
    );
    assert_eq!(
        change(&report, &fx.volumes[0].1, "delete-on-termination").status,
        ChangeStatus::Planned
    );
    assert_eq!(
        change(&report, &fx.instance_id, &format!("tag:{TAG_INCIDENT}")).after,
        serde_json::json!(inc)
    );
}

#[tokio::test]
async fn a_retry_after_a_partial_isolation_returns_the_record_from_the_hold() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let fx = fixture(ec2).await;
    let inc = incident_id();
    let [eni1, eni2] = &fx.enis;

    let first = isolate(&clients, &request(&inc, &fx.instance_id, Mode::Enforce))
        .await
        .unwrap();
    let record = isolation(&first).clone();
    take_group_changes(&sent);

    // As if a run had died between the two steps on the first interface and before reaching
    // the second, which meanwhile carries some other group: the live state no longer shows
    // either interface's originals; only the hold does.
    ec2.modify_network_interface_attribute()
        .network_interface_id(eni1)
        .groups(&record.conversion_group_id)
        .send()
        .await
        .unwrap();
    let stray = group(ec2, &fx.vpc_id, "ir-test-stray").await;
    ec2.modify_network_interface_attribute()
        .network_interface_id(eni2)
        .groups(&stray)
        .send()
        .await
        .unwrap();
    ec2.modify_instance_attribute()
        .instance_id(&fx.instance_id)
        .disable_api_termination(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();

    // A new invocation (fresh clients: nothing carried over in memory).
    let (retry_clients, retry_sent) = recorded_clients(cloud);
    let mark = retry_sent.mark();
    let retry = isolate(
        &retry_clients,
        &request(&inc, &fx.instance_id, Mode::Enforce),
    )
    .await
    .unwrap();
    assert_eq!(retry.outcome, Outcome::Applied);
    assert_eq!(
        isolation(&retry),
        &record,
        "the same record, rebuilt from the hold"
    );
    // The first interface is already on the conversion group: straight to isolation. The
    // second goes through the conversion group.
    assert_eq!(
        take_group_changes(&retry_sent),
        [
            (eni1.clone(), vec![record.isolation_group_id.clone()]),
            (eni2.clone(), vec![record.conversion_group_id.clone()]),
            (eni2.clone(), vec![record.isolation_group_id.clone()]),
        ]
    );
    assert_eq!(
        retry_sent.ops_since(mark),
        [
            "DescribeInstances",
            "DescribeNetworkInterfaces",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeInstanceAttribute",
            "DescribeSecurityGroups",
            "ModifyInstanceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "ModifyNetworkInterfaceAttribute",
            "DescribeNetworkInterfaces",
            "DescribeSecurityGroups",
        ]
    );
    assert_eq!(retry.aws_calls, 12);
    let c = change(&retry, eni2, "security-groups");
    assert_eq!(
        (c.status, &c.before),
        (ChangeStatus::Applied, &serde_json::json!([stray]))
    );
    assert_eq!(
        change(&retry, &fx.instance_id, "disable-api-termination").status,
        ChangeStatus::Applied
    );
    assert_eq!(
        change(&retry, &fx.instance_id, "disable-api-stop").status,
        ChangeStatus::Unchanged
    );
    assert_eq!(
        eni_state(ec2, eni1).await.0,
        vec![record.isolation_group_id.clone()]
    );
    assert_eq!(
        eni_state(ec2, eni2).await.0,
        vec![record.isolation_group_id.clone()]
    );
    assert!(instance_protection(ec2, &fx.instance_id).await.0);

    // Release still restores the true originals.
    restore(&retry_clients, &inc, &record, Mode::Enforce)
        .await
        .unwrap();
    assert_eq!(eni_state(ec2, eni1).await.0, fx.primary_groups);
    assert_eq!(eni_state(ec2, eni2).await.0, fx.secondary_groups);
}

#[tokio::test]
async fn an_instance_contained_by_another_incident_is_refused() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let fx = fixture(ec2).await;
    let (first, second) = (incident_id(), incident_id());
    let record = isolation(
        &isolate(&clients, &request(&first, &fx.instance_id, Mode::Enforce))
            .await
            .unwrap(),
    )
    .clone();
    take_group_changes(&sent);

    for mode in [Mode::DryRun, Mode::Enforce] {
        let err = expect_err(
            isolate(&clients, &request(&second, &fx.instance_id, mode)).await,
            ErrorName::Conflict,
        );
        assert!(err.to_string().contains(&first), "{err}");
    }
    // The hold still names the first incident (`ir release` of the second is refused on it).
    let hold = holds()
        .await
        .get(record.hold_key.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hold.incident_id, first);
    assert_eq!(hold.interfaces, record.interfaces);

    assert_eq!(take_group_changes(&sent), []);
    assert_eq!(
        instance_tags(ec2, &fx.instance_id).await.get(TAG_INCIDENT),
        Some(&first)
    );
    assert_eq!(
        eni_state(ec2, &fx.enis[0]).await.0,
        vec![record.isolation_group_id.clone()]
    );
}

#[tokio::test]
async fn the_groups_are_reused_across_instances_and_a_preexisting_one_is_emptied() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let fx = fixture(ec2).await;

    // Someone created a group with the isolation group's name, untagged, with rules.
    let squatter = ec2
        .create_security_group()
        .group_name(isolation_group_name(&fx.vpc_id))
        .description("hand made")
        .vpc_id(&fx.vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    ec2.authorize_security_group_ingress()
        .group_id(&squatter)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();

    let inc = incident_id();
    let mark = sent.mark();
    let first = isolate(&clients, &request(&inc, &fx.instance_id, Mode::Enforce))
        .await
        .unwrap();
    let calls = sent.ops_since(mark);
    assert_eq!(
        calls.iter().filter(|c| *c == "CreateSecurityGroup").count(),
        1,
        "only the conversion group is created: {calls:?}"
    );
    let record = isolation(&first).clone();
    assert_eq!(record.isolation_group_id, squatter);
    assert_eq!(rules(ec2, &squatter).await, []);
    assert_eq!(
        change(&first, &squatter, "ingress-rules").before,
        serde_json::json!(["tcp 22-22 0.0.0.0/0"])
    );
    assert_eq!(
        change(&first, &squatter, "tag:ir:group").after,
        serde_json::json!("isolation")
    );
    take_group_changes(&sent);

    // A second instance in the same VPC, another incident: the same groups, none created.
    let (other, enis, _) =
        instance(ec2, &fx.subnets, &fx.secondary_groups, &fx.primary_groups).await;
    let inc2 = incident_id();
    let mark = sent.mark();
    let second = isolate(&clients, &request(&inc2, &other, Mode::Enforce))
        .await
        .unwrap();
    let calls = sent.ops_since(mark);
    assert!(
        !calls.iter().any(|c| c == "CreateSecurityGroup"),
        "{calls:?}"
    );
    let record2 = isolation(&second);
    assert_eq!(
        (&record2.conversion_group_id, &record2.isolation_group_id),
        (&record.conversion_group_id, &record.isolation_group_id)
    );
    assert_eq!(suite_groups(ec2, &fx.vpc_id).await.len(), 2);
    assert_eq!(eni_state(ec2, &enis[1]).await.0, [squatter]);
}

#[tokio::test]
async fn an_unknown_instance_is_not_found() {
    let cloud = cloud().await;
    let (clients, _) = recorded_clients(cloud);
    for mode in [Mode::DryRun, Mode::Enforce] {
        let err = expect_err(
            isolate(
                &clients,
                &request(&incident_id(), "i-0123456789abcdef0", mode),
            )
            .await,
            ErrorName::NotFound,
        );
        assert_eq!(err.error_name().as_str(), "NotFound");
        assert!(err.to_string().contains("i-0123456789abcdef0"), "{err}");
    }
}

#[tokio::test]
async fn a_resource_that_is_not_an_instance_is_invalid_input() {
    let cloud = cloud().await;
    let (clients, _) = recorded_clients(cloud);
    let mut req = request(&incident_id(), "i-0123456789abcdef0", Mode::Enforce);
    req.resource = user_resource("alice", None);
    let mark = clients.calls().count();
    let err = expect_err(isolate(&clients, &req).await, ErrorName::InvalidInput);
    assert!(err.to_string().contains("iam-user"), "{err}");
    assert_eq!(
        clients.calls().count_since(mark),
        0,
        "refused before any AWS call"
    );
}

#[tokio::test]
async fn concurrent_runs_in_one_vpc_end_with_one_pair_of_groups() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let fx = fixture(ec2).await;
    let (other, _, _) = instance(ec2, &fx.subnets, &fx.secondary_groups, &fx.primary_groups).await;
    let (inc1, inc2) = (incident_id(), incident_id());

    // Both runs read the VPC before either creates a group: one of them meets
    // InvalidGroup.Duplicate on its CreateSecurityGroup and must reuse the other's group.
    let (req1, req2) = (
        request(&inc1, &fx.instance_id, Mode::Enforce),
        request(&inc2, &other, Mode::Enforce),
    );
    let mark = sent.mark();
    let (a, b) = tokio::join!(isolate(&clients, &req1), isolate(&clients, &req2));
    let (a, b) = (a.unwrap(), b.unwrap());
    let creates = sent
        .ops_since(mark)
        .iter()
        .filter(|op| *op == "CreateSecurityGroup")
        .count();
    // 2: one run created both groups before the other looked; 3 or 4: the runs raced and at
    // least one CreateSecurityGroup met InvalidGroup.Duplicate (the path under test).
    eprintln!("CreateSecurityGroup calls: {creates}");
    assert!((2..=4).contains(&creates), "{creates}");

    let groups = suite_groups(ec2, &fx.vpc_id).await;
    assert_eq!(groups.len(), 2, "{groups:?}");
    let (ra, rb) = (isolation(&a), isolation(&b));
    assert_eq!(
        (&ra.conversion_group_id, &ra.isolation_group_id),
        (&rb.conversion_group_id, &rb.isolation_group_id)
    );
    assert_eq!(
        eni_state(ec2, &fx.enis[1]).await.0,
        vec![ra.isolation_group_id.clone()]
    );
    assert_eq!(rules(ec2, &ra.isolation_group_id).await, []);
}
