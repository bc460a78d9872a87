//! snapshot-volumes against the local cloud: real aws-sdk-rust calls to the moto server the
//! harness starts. Every test launches its own instance and looks only at its snapshots.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, Filter, ResourceType};
use ir_actions::ec2::{TAG_FINDING, TAG_INCIDENT, TAG_INSTANCE, snapshot_volumes};
use ir_core::ErrorName;
use ir_core::action::{
    ActionReport, Artifacts, ChangeStatus, ContainmentRequest, Outcome, SnapshotRef,
};
use ir_core::config::Mode;
use ir_core::event::{Resource, S3Bucket};
use ir_tests::fixtures::{create_subnet, create_vpc, filter, launch, name_tag, run_instance};
use ir_tests::{
    FINDING_ID, change, cloud, containment_request, expect_err, incident_id, instance_resource,
    recorded_clients, unique_name,
};

fn request(incident: &str, instance_id: &str, mode: Mode) -> ContainmentRequest {
    containment_request(incident, "snapshot", instance_resource(instance_id), mode)
}

/// An instance with a boot volume and an encrypted data volume; returns the instance id and
/// the volume ids in mapping order.
async fn instance(ec2: &aws_sdk_ec2::Client) -> (String, Vec<String>) {
    let vpc_id = create_vpc(ec2, "10.61.0.0/16").await;
    let subnet_id = create_subnet(ec2, &vpc_id, "10.61.1.0/24").await;
    let inst = launch(
        run_instance(ec2)
            .subnet_id(&subnet_id)
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(EbsBlockDevice::builder().volume_size(8).build())
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvdb")
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(4)
                            .encrypted(true)
                            .build(),
                    )
                    .build(),
            )
            .tag_specifications(name_tag(ResourceType::Instance, &unique_name("ir-test-db"))),
    )
    .await;
    let volumes = inst
        .block_device_mappings()
        .iter()
        .map(|m| m.ebs().unwrap().volume_id().unwrap().to_owned())
        .collect();
    (inst.instance_id().unwrap().to_owned(), volumes)
}

/// The snapshots tagged with this instance, as (snapshot id, volume id, tags).
async fn snapshots_of(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Vec<(String, String, BTreeMap<String, String>)> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter(&format!("tag:{TAG_INSTANCE}"), instance_id))
        .send()
        .await
        .unwrap();
    let mut found: Vec<_> = out
        .snapshots()
        .iter()
        .map(|s| {
            let tags = s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
                .collect();
            (
                s.snapshot_id().unwrap().to_owned(),
                s.volume_id().unwrap().to_owned(),
                tags,
            )
        })
        .collect();
    found.sort();
    found
}

fn snapshot_refs(report: &ActionReport, instance_id: &str) -> Vec<SnapshotRef> {
    match &report.artifacts {
        Some(Artifacts::Snapshots {
            instance_id: id,
            snapshots,
        }) => {
            assert_eq!(id, instance_id);
            snapshots.clone()
        }
        other => panic!("expected snapshot artifacts, got {other:?}"),
    }
}

#[tokio::test]
async fn one_multi_volume_snapshot_set_is_taken_once_and_found_again() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let (instance_id, volumes) = instance(ec2).await;
    let inc = incident_id();

    let mark = sent.mark();
    let report = snapshot_volumes(&clients, &request(&inc, &instance_id, Mode::Enforce))
        .await
        .unwrap();
    assert_eq!(
        sent.ops_since(mark),
        [
            "DescribeInstances",
            "DescribeSnapshots",
            "DescribeVolumes",
            "CreateSnapshots"
        ]
    );
    assert_eq!(report.aws_calls, 4);
    assert_eq!(report.outcome, Outcome::Applied);

    // One snapshot per volume, boot volume included, each tagged for the incident.
    let refs = snapshot_refs(&report, &instance_id);
    assert_eq!(
        refs.iter().map(|r| r.volume_id.clone()).collect::<Vec<_>>(),
        volumes
    );
    let stored = snapshots_of(ec2, &instance_id).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (snapshot_id, volume_id, tags) in &stored {
        assert!(refs.contains(&SnapshotRef {
            snapshot_id: snapshot_id.clone(),
            volume_id: volume_id.clone()
        }));
        assert_eq!(tags.get(TAG_INCIDENT), Some(&inc));
        assert_eq!(tags.get(TAG_FINDING).map(String::as_str), Some(FINDING_ID));
        assert_eq!(tags.get(TAG_INSTANCE), Some(&instance_id));
        assert_eq!(tags.get("Name"), Some(&format!("ir-{inc}-{instance_id}")));
    }
    for r in &refs {
        let c = change(&report, &r.volume_id, "snapshot");
        assert_eq!(
            (c.status, &c.before, &c.after),
            (
                ChangeStatus::Applied,
                &serde_json::Value::Null,
                &serde_json::json!(r.snapshot_id)
            )
        );
    }
    // The encrypted data volume gets the note about sharing aws/ebs-encrypted snapshots.
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains(&volumes[1]) && n.contains("aws/ebs")),
        "{:#?}",
        report.notes
    );
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.contains(&volumes[0]) && n.contains("aws/ebs"))
    );

    // Second run: the same set, nothing new.
    let mark = sent.mark();
    let again = snapshot_volumes(&clients, &request(&inc, &instance_id, Mode::Enforce))
        .await
        .unwrap();
    assert_eq!(
        sent.ops_since(mark),
        ["DescribeInstances", "DescribeSnapshots"]
    );
    assert_eq!(again.aws_calls, 2);
    assert_eq!(again.outcome, Outcome::AlreadyInPlace);
    assert_eq!(snapshot_refs(&again, &instance_id), refs);
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.status == ChangeStatus::Unchanged)
    );
    assert_eq!(snapshots_of(ec2, &instance_id).await, stored);

    // Another incident on the same instance takes its own set.
    let other = incident_id();
    let third = snapshot_volumes(&clients, &request(&other, &instance_id, Mode::Enforce))
        .await
        .unwrap();
    assert_eq!(third.outcome, Outcome::Applied);
    assert_eq!(snapshots_of(ec2, &instance_id).await.len(), 4);
}

#[tokio::test]
async fn dry_run_proves_the_permission_and_creates_nothing() {
    let cloud = cloud().await;
    let (clients, sent) = recorded_clients(cloud);
    let ec2 = &clients.ec2();
    let (instance_id, volumes) = instance(ec2).await;

    let mark = sent.mark();
    let report = snapshot_volumes(
        &clients,
        &request(&incident_id(), &instance_id, Mode::DryRun),
    )
    .await
    .unwrap();
    assert_eq!(
        sent.ops_since(mark),
        [
            "DescribeInstances",
            "DescribeSnapshots",
            "DescribeVolumes",
            "CreateSnapshots (DryRun)"
        ]
    );
    assert_eq!(report.aws_calls, 4);
    assert_eq!(
        (report.outcome, report.mode),
        (Outcome::Planned, Mode::DryRun)
    );
    assert_eq!(report.artifacts, None);
    let planned: Vec<&str> = report
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Planned)
        .map(|c| c.target.as_str())
        .collect();
    assert_eq!(planned, volumes);
    assert_eq!(snapshots_of(ec2, &instance_id).await, []);
    let by_volume = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name("volume-id")
                .set_values(Some(volumes.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_volume.snapshots().len(), 0);
}

#[tokio::test]
async fn bad_requests_are_typed_errors() {
    let cloud = cloud().await;
    let (clients, _) = recorded_clients(cloud);
    let err = expect_err(
        snapshot_volumes(
            &clients,
            &request(&incident_id(), "i-0123456789abcdef0", Mode::Enforce),
        )
        .await,
        ErrorName::NotFound,
    );
    assert!(err.to_string().contains("i-0123456789abcdef0"), "{err}");

    let mut req = request(&incident_id(), "i-0123456789abcdef0", Mode::Enforce);
    req.resource = Resource::S3Bucket(S3Bucket {
        bucket_name: "evidence".into(),
        arn: None,
    });
    let mark = clients.calls().count();
    expect_err(
        snapshot_volumes(&clients, &req).await,
        ErrorName::InvalidInput,
    );
    assert_eq!(clients.calls().count_since(mark), 0);
}
