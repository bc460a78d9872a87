//! collect-evidence against the local cloud: real aws-sdk-rust calls over HTTP to moto.
//!
//! Every test creates its own evidence bucket (Object Lock, versioned, default retention
//! COMPLIANCE 1 day), its own trail bucket with CloudTrail-shaped objects, and its own
//! resources, all named with `unique_name`; incident ids are derived from those names.
//!
//! The emulator does not verify `x-amz-checksum-sha256` (it echoes the value sent), so every
//! digest in a manifest is recomputed here with an independent SHA-256 over the bytes read
//! back by version id.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};
use ir_actions::evidence::{EvidenceSettings, collect_evidence};
use ir_aws::Clients;
use ir_core::action::{
    ActionReport, Artifacts, ChangeStatus, EvidenceManifest, EvidenceRequest, Outcome,
};
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::duration::ConfigDuration;
use ir_core::event::{EksCluster, IamRole, IamUser, S3Bucket};
use ir_core::{ErrorName, Resource};
use ir_tests::fixtures::{
    create_access_key, create_role, create_security_group, create_subnet, create_user, create_vpc,
    launch, locked_bucket, name_tag, put_role_policy, run_instance,
};
use ir_tests::{
    ACCOUNT_ID, REGION, TestResult, clients, cloud, expect_err, incident_id_from,
    instance_resource, sha256_hex, unique_name,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

/// moto's identity for the static test credentials.
const CALLER_ARN: &str = "arn:aws:sts::123456789012:user/moto";
const FIRST_SEEN: OffsetDateTime = datetime!(2026-11-20 23:30:00 UTC);
const LAST_SEEN: OffsetDateTime = datetime!(2026-11-21 00:10:00 UTC);

/// The finding exactly as delivered: its spacing and key order must survive byte for byte.
const FINDING: &str = "{\"schemaVersion\": \"2.0\",\n  \"id\": \"7ab0c1d2e3f4a5b6c7d8e9f0a1b2c3d4\",\n  \"type\":\"UnauthorizedAccess:EC2/SSHBruteForce\", \"severity\": 8,\n  \"service\": {\"count\": 3}}";

/// The operations `clients` started since `mark` (a call-log count), as `SERVICE:Operation`,
/// sorted (concurrent calls complete in any order).
fn calls_since(clients: &Clients, mark: usize) -> Vec<String> {
    let mut ops = clients.calls().since(mark);
    ops.sort();
    ops
}

fn config(max_log_objects: u32) -> EvidenceConfig {
    EvidenceConfig {
        object_lock_mode: "COMPLIANCE".into(),
        retention_days: 1,
        cloudtrail_window_before: ConfigDuration::from_secs(3600),
        cloudtrail_window_after: ConfigDuration::from_secs(900),
        max_log_objects,
    }
}

fn request(incident: &str, resource: Resource, mode: Mode, region: &str) -> EvidenceRequest {
    EvidenceRequest {
        incident_id: incident.to_owned(),
        finding_id: "7ab0c1d2e3f4a5b6c7d8e9f0a1b2c3d4".into(),
        step_id: "collect-evidence".into(),
        resource,
        mode,
        account: ACCOUNT_ID.into(),
        region: region.into(),
        finding: serde_json::value::RawValue::from_string(FINDING.to_owned()).unwrap(),
        first_seen: FIRST_SEEN,
        last_seen: LAST_SEEN,
    }
}

fn ct_key(region: &str, day: &str, stamp: &str, unique: &str) -> String {
    format!(
        "AWSLogs/{ACCOUNT_ID}/CloudTrail/{region}/{day}/{ACCOUNT_ID}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
    )
}

/// A trail bucket holding CloudTrail-shaped files across three days, in and out of the window
/// [22:30, 00:25] (files stamped 22:30 to 00:40 belong to it), plus `fillers` early files of
/// 2026-11-20 that push the window's files of that day past the first listing page.
struct Trail {
    bucket: String,
    /// The keys that belong to the window, oldest first.
    in_window: Vec<String>,
    bodies: BTreeMap<String, Vec<u8>>,
}

async fn trail_bucket(s3: &aws_sdk_s3::Client, fillers: usize) -> Trail {
    let bucket = unique_name("trail");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let in_window = vec![
        ct_key(REGION, "2026/11/20", "20261120T2230Z", "start"),
        ct_key(REGION, "2026/11/20", "20261120T2355Z", "b"),
        ct_key(REGION, "2026/11/21", "20261121T0005Z", "c"),
        ct_key(REGION, "2026/11/21", "20261121T0040Z", "lag"),
    ];
    let mut keys = in_window.clone();
    keys.extend([
        ct_key(REGION, "2026/11/20", "20261120T2225Z", "before"),
        ct_key(REGION, "2026/11/21", "20261121T0045Z", "after"),
        ct_key(REGION, "2026/11/19", "20261119T2355Z", "day-before"),
        ct_key(REGION, "2026/11/22", "20261122T0000Z", "day-after"),
        ct_key("us-west-2", "2026/11/20", "20261120T2300Z", "other-region"),
        format!("AWSLogs/{ACCOUNT_ID}/CloudTrail-Digest/{REGION}/2026/11/20/{ACCOUNT_ID}_CloudTrail-Digest_{REGION}_t_{REGION}_20261120T233000Z.json.gz"),
        format!("AWSLogs/{ACCOUNT_ID}/CloudTrail/{REGION}/2026/11/20/notes.txt"),
    ]);
    for n in 0..fillers {
        let stamp = format!("20261120T{:02}{:02}Z", n / 60 % 22, n % 60);
        keys.push(ct_key(REGION, "2026/11/20", &stamp, &format!("fill{n:04}")));
    }
    let mut bodies = BTreeMap::new();
    for key in &keys {
        bodies.insert(
            key.clone(),
            format!(
                "{{\"Records\":[{{\"eventSource\":\"ec2.amazonaws.com\",\"file\":\"{key}\"}}]}}\n"
            )
            .into_bytes(),
        );
    }
    let mut set = tokio::task::JoinSet::new();
    for (key, body) in bodies.clone() {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        set.spawn(async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body))
                .content_type("application/x-gzip")
                .send()
                .await
                .map(|_| ())
        });
        if set.len() >= 32 {
            set.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    Trail {
        bucket,
        in_window,
        bodies,
    }
}

/// An instance with one ENI, one security group (SSH from a documentation CIDR) and its root
/// volume.
struct Instance {
    id: String,
    eni: String,
    group: String,
    volumes: Vec<String>,
}

async fn instance(ec2: &aws_sdk_ec2::Client) -> Instance {
    let vpc = create_vpc(ec2, "10.20.0.0/16").await;
    let subnet = create_subnet(ec2, &vpc, "10.20.1.0/24").await;
    let group = create_security_group(ec2, &vpc, &unique_name("ir-ev-web"), "web").await;
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("203.0.113.0/24")
                        .description("bastion")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let i = launch(
        run_instance(ec2)
            .image_id("ami-1e749f67")
            .subnet_id(&subnet)
            .security_group_ids(&group)
            .tag_specifications(name_tag(
                aws_sdk_ec2::types::ResourceType::Instance,
                "web-prod",
            )),
    )
    .await;
    let eni = i.network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_owned();
    let volumes = i
        .block_device_mappings()
        .iter()
        .filter_map(|b| b.ebs().and_then(|e| e.volume_id()).map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(volumes.len(), 1, "the emulator attaches a root volume");
    Instance {
        id: i.instance_id().unwrap().to_owned(),
        eni,
        group,
        volumes,
    }
}

/// Every version and delete marker under `incidents/` in the bucket.
async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> (Vec<(String, String)>, usize) {
    let (mut versions, mut markers) = (Vec::new(), 0);
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix("incidents/")
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap();
        versions.extend(page.versions().iter().map(|v| {
            (
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
            )
        }));
        markers += page.delete_markers().len();
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    versions.sort();
    (versions, markers)
}

async fn get_version(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(version));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn expect_ops(counts: &[(&str, usize)]) -> Vec<String> {
    let mut v: Vec<String> = counts
        .iter()
        .flat_map(|(op, n)| std::iter::repeat_n((*op).to_owned(), *n))
        .collect();
    v.sort();
    v
}

fn manifest(report: &ActionReport) -> &EvidenceManifest {
    match &report.artifacts {
        Some(Artifacts::Evidence(m)) => m,
        other => panic!("no evidence manifest in the report: {other:?}"),
    }
}

fn keys_of(incident: &str, logs: &[String]) -> Vec<String> {
    let mut keys = vec![format!(
        "incidents/{incident}/finding/7ab0c1d2e3f4a5b6c7d8e9f0a1b2c3d4.json"
    )];
    keys.extend(
        logs.iter()
            .map(|k| format!("incidents/{incident}/cloudtrail/{k}")),
    );
    keys
}

/// Every manifest entry reads back, by version id, with the recorded digest and size; the
/// manifest itself is a locked version listing the same entries.
async fn assert_manifest_holds(
    s3: &aws_sdk_s3::Client,
    report: &ActionReport,
    trail: Option<&Trail>,
) {
    let m = manifest(report);
    for o in &m.objects {
        let bytes = get_version(s3, &m.bucket, &o.key, &o.version_id).await;
        assert_eq!(sha256_hex(&bytes), o.sha256, "{}", o.key);
        assert_eq!(bytes.len() as u64, o.size, "{}", o.key);
        assert_eq!(o.collected_by, CALLER_ARN);
        if let (Some(trail), Some(source)) = (trail, &o.source) {
            let original = source
                .strip_prefix(&format!("s3://{}/", trail.bucket))
                .expect("source names the trail bucket");
            assert_eq!(
                Some(&bytes),
                trail.bodies.get(original),
                "{} is a byte copy of its source",
                o.key
            );
        }
    }
    let stored: Value = serde_json::from_slice(
        &get_version(s3, &m.bucket, &m.manifest_key, &m.manifest_version_id).await,
    )
    .unwrap();
    assert_eq!(stored["schema"], "ir-evidence-manifest/1");
    assert_eq!(stored["collectedBy"], CALLER_ARN);
    assert_eq!(stored["objects"], serde_json::to_value(&m.objects).unwrap());
    // Locked, explicitly per version, until about a day from now.
    let head = s3
        .head_object()
        .bucket(&m.bucket)
        .key(&m.manifest_key)
        .version_id(&m.manifest_version_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        until > now + 23 * 3600 && until <= now + 25 * 3600,
        "retain until {until}, now {now}"
    );
    // One applied change per object written, manifest included: before null, after names the version.
    assert_eq!(report.changes.len(), m.objects.len() + 1);
    for (change, o) in report.changes.iter().zip(&m.objects) {
        assert_eq!(change.status, ChangeStatus::Applied);
        assert_eq!(change.attribute, "evidence-object");
        assert_eq!(change.before, Value::Null);
        assert_eq!(
            change.after,
            json!({"key": o.key, "versionId": o.version_id, "sha256": o.sha256})
        );
        assert_eq!(change.target, format!("s3://{}/{}", m.bucket, o.key));
    }
    let last = report.changes.last().unwrap();
    assert_eq!(last.after["key"], m.manifest_key);
    assert_eq!(last.after["versionId"], m.manifest_version_id);
}

#[tokio::test]
async fn enforce_collects_finding_description_and_window_logs_into_locked_versions() -> TestResult {
    let cloud = cloud().await;
    let (s3, ec2) = (
        cloud.s3_client(),
        aws_sdk_ec2::Client::new(&cloud.sdk_config()),
    );
    let bucket = locked_bucket(&s3, "ev").await;
    // 1000 early files make the 2026-11-20 folder span two listing pages.
    let trail = trail_bucket(&s3, 1000).await;
    let vm = instance(&ec2).await;
    let incident = incident_id_from(&bucket);
    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, Some(trail.bucket.clone()), config(2000));
    let req = request(&incident, instance_resource(&vm.id), Mode::Enforce, REGION);

    let mark = clients.calls().count();
    let report = collect_evidence(&clients, &settings, &req).await?;
    assert_eq!(report.outcome, Outcome::Applied, "{report:#?}");
    assert_eq!(report.mode, Mode::Enforce);
    assert_eq!(report.action, "ir-collect-evidence");
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("EC2:DescribeInstances", 1),
            ("EC2:DescribeNetworkInterfaces", 1),
            ("EC2:DescribeSecurityGroups", 1),
            ("EC2:DescribeSecurityGroupRules", 1),
            ("EC2:DescribeVolumes", 1),
            ("S3:ListObjectsV2", 3),
            ("S3:GetObject", 4),
            ("S3:PutObject", 7),
            ("S3:HeadObject", 1),
        ])
    );
    assert_eq!(report.aws_calls, 22);

    // The manifest: the finding, the description, exactly the window's log files, in order.
    let m = manifest(&report);
    assert_eq!(m.bucket, bucket);
    assert_eq!(m.incident_id, incident);
    assert_eq!(
        m.manifest_key,
        format!("incidents/{incident}/manifests/collect-evidence.json")
    );
    let description_key = format!("incidents/{incident}/resource/ec2-instance/{}.json", vm.id);
    let mut want = keys_of(&incident, &trail.in_window);
    want.insert(1, description_key.clone());
    assert_eq!(
        m.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        want
    );
    for (o, original) in m.objects[2..].iter().zip(&trail.in_window) {
        assert_eq!(
            o.source.as_deref(),
            Some(format!("s3://{}/{original}", trail.bucket).as_str())
        );
    }
    assert!(m.objects[..2].iter().all(|o| o.source.is_none()));
    assert_manifest_holds(&s3, &report, Some(&trail)).await;

    // The raw finding, byte for byte.
    let finding = &m.objects[0];
    assert_eq!(
        get_version(&s3, &bucket, &finding.key, &finding.version_id).await,
        FINDING.as_bytes()
    );

    // The description: instance, ENI, the group's rules with ports and CIDRs, the volume.
    let description: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &description_key, &m.objects[1].version_id).await,
    )?;
    assert_eq!(description["found"], true);
    assert_eq!(
        description["resource"],
        json!({"kind": "ec2-instance", "id": vm.id})
    );
    assert_eq!(description["instance"]["instanceId"], vm.id.as_str());
    assert_eq!(description["instance"]["tags"], json!({"Name": "web-prod"}));
    assert_eq!(
        description["networkInterfaces"][0]["networkInterfaceId"],
        vm.eni.as_str()
    );
    assert_eq!(
        description["networkInterfaces"][0]["groups"][0]["groupId"],
        vm.group.as_str()
    );
    let group = &description["securityGroups"][0];
    assert_eq!(group["groupId"], vm.group.as_str());
    let ssh = group["ingressRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["fromPort"] == 22)
        .expect("the SSH rule");
    assert_eq!(
        (
            ssh["ipProtocol"].as_str(),
            ssh["toPort"].as_i64(),
            ssh["cidrIpv4"].as_str()
        ),
        (Some("tcp"), Some(22), Some("203.0.113.0/24"))
    );
    assert!(
        ssh["securityGroupRuleId"]
            .as_str()
            .unwrap()
            .starts_with("sgr-")
    );
    assert_eq!(
        group["ipPermissions"][0]["ipv4Ranges"],
        json!([{"cidr": "203.0.113.0/24", "description": "bastion"}])
    );
    assert!(
        group["egressRules"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "the default egress rule"
    );
    assert_eq!(
        description["volumes"][0]["volumeId"],
        vm.volumes[0].as_str()
    );
    assert_eq!(
        description["volumes"][0]["attachments"][0]["instanceId"],
        vm.id.as_str()
    );

    // A locked version cannot be deleted, not even by naming it...
    let denied = s3
        .delete_object()
        .bucket(&bucket)
        .key(&finding.key)
        .version_id(&finding.version_id)
        .send()
        .await
        .expect_err("COMPLIANCE refuses the delete");
    assert_eq!(denied.code(), Some("AccessDenied"));
    assert_eq!(
        get_version(&s3, &bucket, &finding.key, &finding.version_id).await,
        FINDING.as_bytes()
    );
    // ...and a delete without a version id only adds a delete marker: the key looks gone, the
    // version is intact. Integrity checks must name the version.
    let marker = s3
        .delete_object()
        .bucket(&bucket)
        .key(&finding.key)
        .send()
        .await?;
    assert_eq!(marker.delete_marker(), Some(true));
    let hidden = s3
        .get_object()
        .bucket(&bucket)
        .key(&finding.key)
        .send()
        .await
        .expect_err("latest is a delete marker");
    assert_eq!(hidden.code(), Some("NoSuchKey"));
    assert_eq!(
        sha256_hex(&get_version(&s3, &bucket, &finding.key, &finding.version_id).await),
        finding.sha256
    );
    Ok(())
}

#[tokio::test]
async fn second_run_is_already_in_place_and_writes_nothing() -> TestResult {
    let cloud = cloud().await;
    let (s3, ec2) = (
        cloud.s3_client(),
        aws_sdk_ec2::Client::new(&cloud.sdk_config()),
    );
    let bucket = locked_bucket(&s3, "ev").await;
    let trail = trail_bucket(&s3, 0).await;
    let vm = instance(&ec2).await;
    let incident = incident_id_from(&bucket);
    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, Some(trail.bucket.clone()), config(2000));
    let req = request(&incident, instance_resource(&vm.id), Mode::Enforce, REGION);

    let first = collect_evidence(&clients, &settings, &req).await?;
    assert_eq!(first.outcome, Outcome::Applied);
    assert_eq!(first.aws_calls, 21, "one listing page per day");
    let (written, markers) = versions(&s3, &bucket).await;
    assert_eq!(
        written.len(),
        7,
        "finding, description, 4 log files, manifest"
    );
    assert_eq!(markers, 0);

    let mark = clients.calls().count();
    let second = collect_evidence(&clients, &settings, &req).await?;
    assert_eq!(second.outcome, Outcome::AlreadyInPlace, "{second:#?}");
    assert!(second.changes.is_empty());
    assert_eq!(
        second.artifacts, first.artifacts,
        "the existing manifest, read back"
    );
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[("S3:ListObjectVersions", 1), ("S3:GetObject", 1)])
    );
    assert_eq!(second.aws_calls, 2);
    assert_eq!(
        versions(&s3, &bucket).await,
        (written.clone(), 0),
        "no new version"
    );

    // A dry-run of the same step also sees it done.
    let dry = collect_evidence(
        &clients,
        &settings,
        &EvidenceRequest {
            mode: Mode::DryRun,
            ..req.clone()
        },
    )
    .await?;
    assert_eq!(dry.outcome, Outcome::AlreadyInPlace);
    assert_eq!(dry.aws_calls, 2);

    // Hiding the manifest behind a delete marker does not make the suite collect again: it
    // finds the locked version and says what happened.
    let m = manifest(&first);
    s3.delete_object()
        .bucket(&bucket)
        .key(&m.manifest_key)
        .send()
        .await?;
    let third = collect_evidence(&clients, &settings, &req).await?;
    assert_eq!(third.outcome, Outcome::AlreadyInPlace);
    assert_eq!(third.artifacts, first.artifacts);
    assert!(
        third
            .notes
            .iter()
            .any(|n| n.contains("delete marker") && n.contains(&m.manifest_version_id)),
        "{:?}",
        third.notes
    );
    assert_eq!(
        versions(&s3, &bucket).await,
        (written, 1),
        "only the marker we added"
    );
    Ok(())
}

#[tokio::test]
async fn dry_run_writes_nothing_and_plans_the_keys() -> TestResult {
    let cloud = cloud().await;
    let (s3, ec2) = (
        cloud.s3_client(),
        aws_sdk_ec2::Client::new(&cloud.sdk_config()),
    );
    let bucket = locked_bucket(&s3, "ev").await;
    let trail = trail_bucket(&s3, 0).await;
    let vm = instance(&ec2).await;
    let incident = incident_id_from(&bucket);
    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, Some(trail.bucket.clone()), config(2000));
    let mut req = request(&incident, instance_resource(&vm.id), Mode::DryRun, REGION);
    // Absent mode in the payload means dry-run.
    assert_eq!(serde_json::from_value::<EvidenceRequest>(json!({
        "incidentId": incident, "findingId": "f", "stepId": "s", "resource": {"type": "s3-bucket", "bucketName": "b"},
        "account": ACCOUNT_ID, "region": REGION, "finding": {}, "firstSeen": "2026-11-20T23:30:00Z", "lastSeen": "2026-11-21T00:10:00Z"
    }))?.mode, Mode::DryRun);

    let mark = clients.calls().count();
    let report = collect_evidence(&clients, &settings, &req).await?;
    assert_eq!(report.outcome, Outcome::Planned, "{report:#?}");
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("S3:GetObjectLockConfiguration", 1),
            ("EC2:DescribeInstances", 1),
            ("EC2:DescribeNetworkInterfaces", 1),
            ("EC2:DescribeSecurityGroups", 1),
            ("EC2:DescribeSecurityGroupRules", 1),
            ("EC2:DescribeVolumes", 1),
            ("S3:ListObjectsV2", 2),
        ])
    );
    assert_eq!(report.aws_calls, 9);
    assert_eq!(versions(&s3, &bucket).await, (vec![], 0), "nothing written");
    assert!(report.artifacts.is_none());

    let mut want = keys_of(&incident, &trail.in_window);
    want.insert(
        1,
        format!("incidents/{incident}/resource/ec2-instance/{}.json", vm.id),
    );
    want.push(format!(
        "incidents/{incident}/manifests/collect-evidence.json"
    ));
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.after["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        want
    );
    assert!(
        report
            .changes
            .iter()
            .all(|c| c.status == ChangeStatus::Planned && c.before.is_null())
    );
    assert_eq!(report.changes[0].after["size"], FINDING.len());
    assert_eq!(
        report.changes[0].after["sha256"],
        sha256_hex(FINDING.as_bytes())
    );
    for (change, original) in report.changes[2..6].iter().zip(&trail.in_window) {
        assert_eq!(change.after["size"], trail.bodies[original].len());
        assert_eq!(
            change.after["source"],
            format!("s3://{}/{original}", trail.bucket)
        );
    }

    // The plan is what enforce then writes.
    req.mode = Mode::Enforce;
    let applied = collect_evidence(&clients, &settings, &req).await?;
    let written: Vec<&str> = applied
        .changes
        .iter()
        .map(|c| c.after["key"].as_str().unwrap())
        .collect();
    assert_eq!(written, want);
    Ok(())
}

#[tokio::test]
async fn without_a_trail_bucket_only_the_finding_and_description_are_collected() -> TestResult {
    let cloud = cloud().await;
    let (s3, ec2) = (
        cloud.s3_client(),
        aws_sdk_ec2::Client::new(&cloud.sdk_config()),
    );
    let bucket = locked_bucket(&s3, "ev").await;
    let vm = instance(&ec2).await;
    let incident = incident_id_from(&bucket);
    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, None, config(2000));
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &request(&incident, instance_resource(&vm.id), Mode::Enforce, REGION),
    )
    .await?;
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("EC2:DescribeInstances", 1),
            ("EC2:DescribeNetworkInterfaces", 1),
            ("EC2:DescribeSecurityGroups", 1),
            ("EC2:DescribeSecurityGroupRules", 1),
            ("EC2:DescribeVolumes", 1),
            ("S3:PutObject", 3),
            ("S3:HeadObject", 1),
        ])
    );
    let m = manifest(&report);
    assert_eq!(
        m.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        vec![
            format!("incidents/{incident}/finding/7ab0c1d2e3f4a5b6c7d8e9f0a1b2c3d4.json"),
            format!("incidents/{incident}/resource/ec2-instance/{}.json", vm.id)
        ]
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("IR_TRAIL_BUCKET is not set")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        report.aws_calls, 11,
        "ListObjectVersions, GetCallerIdentity, 5 EC2 describes, 3 PutObject, HeadObject"
    );
    assert_manifest_holds(&s3, &report, None).await;
    let stored: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &m.manifest_key, &m.manifest_version_id).await,
    )?;
    assert_eq!(stored["cloudtrail"]["collected"], false);
    assert!(
        stored["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("IR_TRAIL_BUCKET is not set"))
    );
    Ok(())
}

#[tokio::test]
async fn log_files_beyond_the_limit_are_reported_not_copied() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let bucket = locked_bucket(&s3, "ev").await;
    let trail = trail_bucket(&s3, 0).await;
    let incident = incident_id_from(&bucket);
    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, Some(trail.bucket.clone()), config(2));
    let resource = Resource::EksCluster(EksCluster {
        cluster_name: "prod".into(),
        arn: None,
        vpc_id: None,
    });
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &request(&incident, resource, Mode::Enforce, REGION),
    )
    .await?;
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("S3:ListObjectsV2", 2),
            ("S3:GetObject", 2),
            ("S3:PutObject", 4),
            ("S3:HeadObject", 1),
        ])
    );
    let m = manifest(&report);
    // No description for an EKS cluster: the finding and the two oldest log files.
    assert_eq!(
        m.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        keys_of(&incident, &trail.in_window[..2])
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("no description is collected for eks-cluster")),
        "{:?}",
        report.notes
    );
    let limit = report
        .notes
        .iter()
        .find(|n| n.contains("NOT copied"))
        .expect("the limit is reported");
    assert!(limit.starts_with("2 of the 4 log files"), "{limit}");
    assert!(limit.contains(&trail.in_window[2]), "{limit}");
    assert_eq!(
        report.aws_calls,
        1 + 1 + 2 + 1 + 2 * 2 + 2,
        "ListObjectVersions, STS, 2 listings, finding, 2 copies, manifest + HeadObject"
    );
    assert_manifest_holds(&s3, &report, Some(&trail)).await;
    let stored: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &m.manifest_key, &m.manifest_version_id).await,
    )?;
    assert_eq!(
        (
            stored["cloudtrail"]["filesInWindow"].as_u64(),
            stored["cloudtrail"]["filesLeftOut"].as_u64()
        ),
        (Some(4), Some(2))
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_instance_is_recorded_as_absent_and_the_rest_is_collected() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let bucket = locked_bucket(&s3, "ev").await;
    let trail = trail_bucket(&s3, 0).await;
    let incident = incident_id_from(&bucket);
    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, Some(trail.bucket.clone()), config(2000));
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &request(
            &incident,
            instance_resource("i-0123456789abcdef0"),
            Mode::Enforce,
            REGION,
        ),
    )
    .await?;
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("EC2:DescribeInstances", 1),
            ("S3:ListObjectsV2", 2),
            ("S3:GetObject", 4),
            ("S3:PutObject", 7),
            ("S3:HeadObject", 1),
        ])
    );
    assert_eq!(report.outcome, Outcome::Applied);
    let m = manifest(&report);
    assert_eq!(m.objects.len(), 2 + 4);
    let description: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &m.objects[1].key, &m.objects[1].version_id).await,
    )?;
    assert_eq!(description["found"], false);
    assert_eq!(
        description["notFound"]["code"],
        "InvalidInstanceID.NotFound"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("i-0123456789abcdef0 was not found")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        report.aws_calls,
        1 + 1 + 1 + 2 + 2 + 4 * 2 + 2,
        "no follow-up describes for an absent instance"
    );
    assert_manifest_holds(&s3, &report, Some(&trail)).await;
    Ok(())
}

#[tokio::test]
async fn a_missing_or_unlockable_evidence_bucket_is_a_configuration_error() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let clients = clients(cloud);
    let missing = unique_name("ev-missing");
    let incident = incident_id_from(&missing);
    let resource = Resource::Other(ir_core::event::OtherResource {
        resource_type: "AwsRdsDbInstance".into(),
        id: "db-1".into(),
    });
    for mode in [Mode::DryRun, Mode::Enforce] {
        let mark = clients.calls().count();
        let err = expect_err(
            collect_evidence(
                &clients,
                &EvidenceSettings::new(&missing, None, config(2000)),
                &request(&incident, resource.clone(), mode, REGION),
            )
            .await,
            ErrorName::Configuration,
        );
        assert!(
            err.to_string().contains(&missing) && err.to_string().contains("does not exist"),
            "{err}"
        );
        assert_eq!(
            calls_since(&clients, mark),
            expect_ops(&[("S3:ListObjectVersions", 1)]),
            "stops at the first call"
        );
    }

    // Versioned but without Object Lock: nothing can be locked there, nothing is written.
    let plain = unique_name("ev-nolock");
    s3.create_bucket().bucket(&plain).send().await?;
    s3.put_bucket_versioning()
        .bucket(&plain)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await?;
    let settings = EvidenceSettings::new(&plain, None, config(2000));
    let expected = [
        // Dry-run proves enforce would fail.
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("S3:GetObjectLockConfiguration", 1),
        ]),
        // Enforce: S3 refuses the first locked PutObject (InvalidRequest) and nothing is written.
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("S3:PutObject", 1),
        ]),
    ];
    for (mode, ops) in [Mode::DryRun, Mode::Enforce].into_iter().zip(expected) {
        let mark = clients.calls().count();
        let err = expect_err(
            collect_evidence(
                &clients,
                &settings,
                &request(&incident, resource.clone(), mode, REGION),
            )
            .await,
            ErrorName::Configuration,
        );
        assert!(err.to_string().contains("Object Lock"), "{err}");
        assert_eq!(calls_since(&clients, mark), ops);
    }
    assert_eq!(versions(&s3, &plain).await, (vec![], 0));

    // A request that is not one: refused before any call.
    let mark = clients.calls().count();
    let mut bad = request(&incident, resource, Mode::Enforce, REGION);
    bad.first_seen = LAST_SEEN + time::Duration::minutes(1);
    expect_err(
        collect_evidence(&clients, &settings, &bad).await,
        ErrorName::InvalidInput,
    );
    bad.first_seen = FIRST_SEEN;
    bad.incident_id = "inc-../../etc".into();
    expect_err(
        collect_evidence(&clients, &settings, &bad).await,
        ErrorName::InvalidInput,
    );
    assert_eq!(clients.calls().count(), mark);
    Ok(())
}

#[tokio::test]
async fn an_iam_user_is_described_with_policies_and_key_metadata_never_secrets() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let iam = aws_sdk_iam::Client::new(&cloud.sdk_config());
    let bucket = locked_bucket(&s3, "ev").await;
    let incident = incident_id_from(&bucket);
    let user = unique_name("ir-ev-user");
    create_user(&iam, &user, &[("owner", "team-a")]).await;
    iam.put_user_policy()
        .user_name(&user)
        .policy_name("read-logs")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::logs bucket/*"}]}"#)
        .send()
        .await?;
    let managed = iam
        .create_policy()
        .policy_name(unique_name("ir-ev-managed"))
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#)
        .send()
        .await?;
    let managed_arn = managed.policy().unwrap().arn().unwrap().to_owned();
    iam.attach_user_policy()
        .user_name(&user)
        .policy_arn(&managed_arn)
        .send()
        .await?;
    let group = unique_name("ir-ev-group");
    iam.create_group().group_name(&group).send().await?;
    iam.add_user_to_group()
        .group_name(&group)
        .user_name(&user)
        .send()
        .await?;
    let mut secrets = Vec::new();
    let mut key_ids = Vec::new();
    for _ in 0..2 {
        let key = create_access_key(&iam, &user).await;
        secrets.push(key.secret_access_key().to_owned());
        key_ids.push(key.access_key_id().to_owned());
    }
    iam.update_access_key()
        .user_name(&user)
        .access_key_id(&key_ids[1])
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await?;

    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, None, config(2000));
    let resource = Resource::IamUser(IamUser {
        user_name: user.clone(),
        access_key_id: Some(key_ids[0].clone()),
        principal_id: None,
    });
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &request(&incident, resource, Mode::Enforce, REGION),
    )
    .await?;
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("IAM:GetUser", 1),
            ("IAM:ListUserPolicies", 1),
            ("IAM:GetUserPolicy", 1),
            ("IAM:ListAttachedUserPolicies", 1),
            ("IAM:ListGroupsForUser", 1),
            ("IAM:ListAccessKeys", 1),
            ("IAM:GetAccessKeyLastUsed", 2),
            ("S3:PutObject", 3),
            ("S3:HeadObject", 1),
        ])
    );
    assert_eq!(report.aws_calls, 14);
    assert_manifest_holds(&s3, &report, None).await;
    let m = manifest(&report);
    let raw = get_version(&s3, &bucket, &m.objects[1].key, &m.objects[1].version_id).await;
    let text = String::from_utf8(raw.clone())?;
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret access key leaked into the evidence"
        );
    }
    let d: Value = serde_json::from_slice(&raw)?;
    assert_eq!(d["user"]["userName"], user.as_str());
    assert_eq!(d["user"]["tags"], json!({"owner": "team-a"}));
    assert_eq!(d["inlinePolicies"][0]["policyName"], "read-logs");
    assert_eq!(
        d["inlinePolicies"][0]["document"]["Statement"][0]["Resource"],
        "arn:aws:s3:::logs bucket/*",
        "URL-decoded"
    );
    assert_eq!(d["attachedPolicies"][0]["policyArn"], managed_arn.as_str());
    assert_eq!(d["groups"][0]["groupName"], group.as_str());
    let mut keys: Vec<(String, String)> = d["accessKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["accessKeyId"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    let mut want = vec![
        (key_ids[0].clone(), "Active".to_owned()),
        (key_ids[1].clone(), "Inactive".to_owned()),
    ];
    want.sort();
    assert_eq!(keys, want);
    Ok(())
}

#[tokio::test]
async fn an_iam_role_in_another_region_also_gets_the_global_event_logs() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let iam = aws_sdk_iam::Client::new(&cloud.sdk_config());
    let bucket = locked_bucket(&s3, "ev").await;
    let incident = incident_id_from(&bucket);
    let trail = unique_name("trail");
    s3.create_bucket().bucket(&trail).send().await?;
    // IAM calls are logged in us-east-1; the role's use in eu-west-1.
    let global = ct_key("us-east-1", "2026/11/20", "20261120T2340Z", "iam");
    let regional = ct_key("eu-west-1", "2026/11/21", "20261121T0000Z", "use");
    for key in [&global, &regional] {
        s3.put_object()
            .bucket(&trail)
            .key(key.as_str())
            .body(ByteStream::from(key.clone().into_bytes()))
            .send()
            .await?;
    }
    let role = unique_name("ir-ev-role");
    create_role(&iam, &role, "/", &[("env", "prod")]).await;
    put_role_policy(
        &iam,
        &role,
        "inline",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}"#,
    )
    .await;

    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, Some(trail.clone()), config(2000));
    let resource = Resource::IamRole(IamRole {
        role_name: role.clone(),
        access_key_id: None,
        principal_id: None,
    });
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &request(&incident, resource, Mode::Enforce, "eu-west-1"),
    )
    .await?;
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("IAM:GetRole", 1),
            ("IAM:ListRolePolicies", 1),
            ("IAM:GetRolePolicy", 1),
            ("IAM:ListAttachedRolePolicies", 1),
            ("S3:ListObjectsV2", 4),
            ("S3:GetObject", 2),
            ("S3:PutObject", 5),
            ("S3:HeadObject", 1),
        ])
    );
    let m = manifest(&report);
    let logs: Vec<String> = m.objects.iter().filter_map(|o| o.source.clone()).collect();
    assert_eq!(
        logs,
        vec![
            format!("s3://{trail}/{global}"),
            format!("s3://{trail}/{regional}")
        ],
        "oldest first, both regions"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("IAM is a global service")),
        "{:?}",
        report.notes
    );
    // ListObjectVersions, STS, GetRole, ListRolePolicies, GetRolePolicy, ListAttachedRolePolicies,
    // 2 regions x 2 days of listings, 2 copies, finding, description, manifest, HeadObject.
    assert_eq!(report.aws_calls, 1 + 1 + 4 + 4 + 2 * 2 + 2 + 2);
    let d: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &m.objects[1].key, &m.objects[1].version_id).await,
    )?;
    assert_eq!(d["role"]["roleName"], role.as_str());
    assert_eq!(d["role"]["tags"], json!({"env": "prod"}));
    assert_eq!(
        d["role"]["assumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );
    assert_eq!(
        d["inlinePolicies"][0]["document"]["Statement"][0]["Action"],
        "sqs:*"
    );
    assert_eq!(d["attachedPolicies"], json!([]));
    assert_manifest_holds(&s3, &report, None).await;
    Ok(())
}

#[tokio::test]
async fn an_s3_bucket_is_described_with_absent_settings_recorded() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let bucket = locked_bucket(&s3, "ev").await;
    let incident = incident_id_from(&bucket);
    let target = unique_name("ir-ev-target");
    s3.create_bucket().bucket(&target).send().await?;
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{target}/*")}]});
    s3.put_bucket_policy()
        .bucket(&target)
        .policy(policy.to_string())
        .send()
        .await?;
    s3.put_bucket_tagging()
        .bucket(&target)
        .tagging(
            Tagging::builder()
                .tag_set(Tag::builder().key("data").value("public").build()?)
                .build()?,
        )
        .send()
        .await?;

    let clients = clients(cloud);
    let settings = EvidenceSettings::new(&bucket, None, config(2000));
    let resource = Resource::S3Bucket(S3Bucket {
        bucket_name: target.clone(),
        arn: None,
    });
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &request(&incident, resource, Mode::Enforce, REGION),
    )
    .await?;
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("STS:GetCallerIdentity", 1),
            ("S3:GetBucketPolicy", 1),
            ("S3:GetPublicAccessBlock", 1),
            ("S3:GetBucketVersioning", 1),
            ("S3:GetBucketEncryption", 1),
            ("S3:GetBucketTagging", 1),
            ("S3:PutObject", 3),
            ("S3:HeadObject", 1),
        ])
    );
    let m = manifest(&report);
    let d: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &m.objects[1].key, &m.objects[1].version_id).await,
    )?;
    assert_eq!(d["bucket"]["policy"], policy);
    assert_eq!(d["bucket"]["tagging"], json!({"data": "public"}));
    assert_eq!(
        d["bucket"]["publicAccessBlock"],
        json!({"present": false, "code": "NoSuchPublicAccessBlockConfiguration"})
    );
    // moto answers GetBucketVersioning with a `GetBucketVersioningResponse` root element where
    // S3 sends `VersioningConfiguration`, which the SDK refuses to parse: the description keeps
    // the read error instead of failing the collection (on AWS: `{"status": null}`, never enabled).
    let versioning = &d["bucket"]["versioning"];
    assert!(
        versioning["status"].is_null()
            && (versioning.get("readError").is_none()
                || versioning["readError"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("VersioningConfiguration")),
        "{versioning}"
    );
    assert_manifest_holds(&s3, &report, None).await;

    // A bucket that does not exist is recorded as absent.
    // The collecting identity is fetched once per settings: no STS call the second time.
    let gone = Resource::S3Bucket(S3Bucket {
        bucket_name: unique_name("ir-ev-gone"),
        arn: None,
    });
    let mark = clients.calls().count();
    let report = collect_evidence(
        &clients,
        &settings,
        &EvidenceRequest {
            step_id: "collect-again".into(),
            ..request(&incident, gone, Mode::Enforce, REGION)
        },
    )
    .await?;
    assert_eq!(
        calls_since(&clients, mark),
        expect_ops(&[
            ("S3:ListObjectVersions", 1),
            ("S3:GetBucketPolicy", 1),
            ("S3:GetPublicAccessBlock", 1),
            ("S3:GetBucketVersioning", 1),
            ("S3:GetBucketEncryption", 1),
            ("S3:GetBucketTagging", 1),
            ("S3:PutObject", 3),
            ("S3:HeadObject", 1),
        ])
    );
    assert_eq!(report.aws_calls, 10);
    let m = manifest(&report);
    let d: Value = serde_json::from_slice(
        &get_version(&s3, &bucket, &m.objects[1].key, &m.objects[1].version_id).await,
    )?;
    assert_eq!(
        (d["found"].as_bool(), d["notFound"]["code"].as_str()),
        (Some(false), Some("NoSuchBucket"))
    );
    Ok(())
}

#[tokio::test]
async fn a_steps_recorded_retention_is_its_log_window_and_the_request_cannot_set_it() -> TestResult
{
    let st = ir_tests::stores("evwin").await;
    let text = std::fs::read_to_string(
        ir_tests::repo_root().join("events/guardduty-cryptocurrency-bitcointool-dns.json"),
    )?;
    let normalized = ir_core::normalize(text.as_bytes())?;
    let event = normalized.events.first().expect("an event");
    let incidents = ir_aws::store::IncidentStore::new(st.clients.clone(), st.names.clone());
    let ingested = incidents.ingest(event, FIRST_SEEN).await?;
    let id = ingested.incident.incident_id.clone();
    let engine = ir_core::Engine::embedded()?;
    let events = vec![event.clone()];
    let enrichment = engine.enrich(&events, 0);
    let mut decision = engine.decide(&id, &events, &enrichment, FIRST_SEEN)?;
    // A fetch-the-logs step recorded with `retention: 7d`, as investigate-and-notify plans it.
    decision.playbook.steps[0].retention = Some("7d".into());
    let with_retention = decision.playbook.steps[0].id.clone();
    let without = decision.playbook.steps[1].id.clone();
    assert_eq!(decision.playbook.steps[1].retention, None);
    incidents
        .record_decision(&id, &decision, FIRST_SEEN)
        .await?;

    let settings = EvidenceSettings::new(&st.bucket, None, config(10));
    let window = |step: &str, incident: &str| {
        let mut req = request(incident, instance_resource("i-0abc"), Mode::DryRun, REGION);
        req.step_id = step.to_owned();
        let (clients, names, settings) = (&st.clients, &st.names, &settings);
        async move {
            settings
                .for_step(clients, names, &req)
                .await
                .map(|s| s.config.cloudtrail_window_before.as_secs())
        }
    };
    assert_eq!(window(&with_retention, &id).await?, 7 * 86_400);
    assert_eq!(
        window(&without, &id).await?,
        3_600,
        "the configured default"
    );
    // An incident the suite has no record of keeps the default.
    assert_eq!(
        window(&with_retention, &ir_tests::incident_id()).await?,
        3_600
    );
    Ok(())
}
