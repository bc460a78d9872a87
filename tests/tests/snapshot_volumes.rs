//! snapshot-volumes against the local cloud: real aws-sdk-rust calls to the moto server the
//! harness starts. Every test launches its own instance and looks only at its snapshots.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::BoxError;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceType, ResourceType, Tag, TagSpecification,
};
use ir_aws::ec2::{TAG_FINDING, TAG_INCIDENT, TAG_INSTANCE, snapshot_volumes};
use ir_aws::{ClientOptions, Clients};
use ir_core::action::{
    ActionReport, Artifacts, ChangeStatus, ContainmentRequest, Outcome, SnapshotRef,
};
use ir_core::config::Mode;
use ir_core::event::{Ec2Instance, Resource, S3Bucket};
use ir_core::{ErrorName, Named};
use ir_tests::{LocalCloud, unique_name};
use sha2::{Digest, Sha256};

const FINDING: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

async fn cloud() -> &'static LocalCloud {
    match LocalCloud::shared().await {
        Ok(cloud) => cloud,
        Err(e) => panic!("{e}"),
    }
}

/// Every EC2 operation sent, read from the query body (` (DryRun)` when `DryRun=true`).
#[derive(Debug, Clone, Default)]
struct Sent(Arc<Mutex<Vec<String>>>);

impl Sent {
    fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn since(&self, mark: usize) -> Vec<String> {
        self.0.lock().unwrap()[mark..].to_vec()
    }
}

impl Intercept for Sent {
    fn name(&self) -> &'static str {
        "Sent"
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let field = |name: &str| {
            body.split('&')
                .find_map(|kv| kv.strip_prefix(name).map(str::to_owned))
        };
        let mut op = field("Action=").unwrap_or_else(|| "unknown".to_owned());
        if field("DryRun=").as_deref() == Some("true") {
            op.push_str(" (DryRun)");
        }
        self.0.lock().unwrap().push(op);
        Ok(())
    }
}

fn recorded_clients(cloud: &LocalCloud) -> (Clients, Sent) {
    let sdk = cloud.sdk_config();
    let mut clients = Clients::new(
        &sdk,
        ClientOptions {
            s3_force_path_style: true,
        },
    );
    let sent = Sent::default();
    let conf = aws_sdk_ec2::config::Builder::from(&sdk)
        .interceptor(clients.calls.clone())
        .interceptor(sent.clone())
        .build();
    clients.ec2 = aws_sdk_ec2::Client::from_conf(conf);
    (clients, sent)
}

fn incident() -> String {
    let digest = Sha256::digest(unique_name("incident").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("inc-{}", &hex[..20])
}

fn request(incident: &str, instance_id: &str, mode: Mode) -> ContainmentRequest {
    ContainmentRequest {
        incident_id: incident.to_owned(),
        finding_id: FINDING.to_owned(),
        step_id: "snapshot".to_owned(),
        resource: Resource::Ec2Instance(Ec2Instance {
            instance_id: instance_id.to_owned(),
            vpc_id: None,
            subnet_id: None,
            network_interfaces: Vec::new(),
            instance_profile_arn: None,
            image_id: None,
            launch_time: None,
        }),
        mode,
    }
}

/// An instance with a boot volume and an encrypted data volume; returns the instance id and
/// the volume ids in mapping order.
async fn instance(ec2: &aws_sdk_ec2::Client) -> (String, Vec<String>) {
    let vpc_id = ec2
        .create_vpc()
        .cidr_block("10.61.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let subnet_id = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.61.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_owned();
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
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
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(
                    Tag::builder()
                        .key("Name")
                        .value(unique_name("ir-test-db"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let inst = &run.instances()[0];
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
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_INSTANCE}"))
                .values(instance_id)
                .build(),
        )
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
    let ec2 = &clients.ec2;
    let (instance_id, volumes) = instance(ec2).await;
    let inc = incident();

    let mark = sent.mark();
    let report = snapshot_volumes(&clients, &request(&inc, &instance_id, Mode::Enforce))
        .await
        .unwrap();
    assert_eq!(
        sent.since(mark),
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
        assert_eq!(tags.get(TAG_FINDING).map(String::as_str), Some(FINDING));
        assert_eq!(tags.get(TAG_INSTANCE), Some(&instance_id));
        assert_eq!(tags.get("Name"), Some(&format!("ir-{inc}-{instance_id}")));
    }
    for r in &refs {
        let c = report
            .changes
            .iter()
            .find(|c| c.target == r.volume_id && c.attribute == "snapshot")
            .unwrap();
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
    assert_eq!(sent.since(mark), ["DescribeInstances", "DescribeSnapshots"]);
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
    let other = incident();
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
    let ec2 = &clients.ec2;
    let (instance_id, volumes) = instance(ec2).await;

    let mark = sent.mark();
    let report = snapshot_volumes(&clients, &request(&incident(), &instance_id, Mode::DryRun))
        .await
        .unwrap();
    assert_eq!(
        sent.since(mark),
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
    let err = snapshot_volumes(
        &clients,
        &request(&incident(), "i-0123456789abcdef0", Mode::Enforce),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound, "{err}");
    assert!(err.to_string().contains("i-0123456789abcdef0"), "{err}");

    let mut req = request(&incident(), "i-0123456789abcdef0", Mode::Enforce);
    req.resource = Resource::S3Bucket(S3Bucket {
        bucket_name: "evidence".into(),
        arn: None,
    });
    let mark = clients.calls.count();
    let err = snapshot_volumes(&clients, &req).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    assert_eq!(clients.calls.count_since(mark), 0);
}
