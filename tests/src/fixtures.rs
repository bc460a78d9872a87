//! Resources for tests to act on, made and read back with plain SDK clients: EC2 networks,
//! groups, instances and interfaces; IAM roles, users and keys; Object Lock buckets.
//!
//! Name everything with [`unique_name`] (the emulator is shared by the tests of a binary) and
//! look only at what the test made.

// Test fixtures: a setup or read-back call that fails must stop the test loudly, at once, with
// the SDK's error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceAttributeName, InstanceNetworkInterfaceSpecification, InstanceType,
    ResourceType, TagSpecification,
};
use aws_sdk_iam::types::AccessKey;
use serde_json::Value;

use crate::localcloud::unique_name;
use crate::support::percent_decode;

// ----------------------------------------------------------------------------------------- EC2

/// The image instances are launched from (one of moto's default AMIs).
pub const IMAGE: &str = "ami-12c6146b";

/// Creates a VPC with the IPv4 `cidr`; returns its id.
pub async fn create_vpc(ec2: &aws_sdk_ec2::Client, cidr: &str) -> String {
    let out = ec2.create_vpc().cidr_block(cidr).send().await.unwrap();
    out.vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_owned()
}

/// Creates a subnet of `vpc_id` with the IPv4 `cidr`, checking that it is in that VPC; returns
/// its id.
pub async fn create_subnet(ec2: &aws_sdk_ec2::Client, vpc_id: &str, cidr: &str) -> String {
    let out = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block(cidr)
        .send()
        .await
        .unwrap();
    assert_eq!(out.subnet().and_then(|s| s.vpc_id()), Some(vpc_id));
    out.subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned()
}

/// Creates a security group named `name` (exactly: pass a [`unique_name`] unless the name is
/// under test) in `vpc_id`; returns its id.
pub async fn create_security_group(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    name: &str,
    description: &str,
) -> String {
    ec2.create_security_group()
        .group_name(name)
        .description(description)
        .vpc_id(vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .expect("group id")
        .to_owned()
}

/// A `Name` tag for a resource being created.
#[must_use]
pub fn name_tag(resource: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value(name)
                .build(),
        )
        .build()
}

/// A describe filter with one value.
#[must_use]
pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// `RunInstances` for one t3.micro from [`IMAGE`]; add placement, interfaces, volumes and tags,
/// then [`launch`] it.
#[must_use]
pub fn run_instance(ec2: &aws_sdk_ec2::Client) -> RunInstancesFluentBuilder {
    ec2.run_instances()
        .image_id(IMAGE)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
}

/// Sends a [`run_instance`] request; returns the instance launched.
pub async fn launch(run: RunInstancesFluentBuilder) -> Instance {
    let out = run.send().await.unwrap();
    out.instances().first().expect("an instance").clone()
}

/// The primary interface (device 0) to launch an instance with, in `subnet_id` with `groups`
/// in this order.
///
/// moto reports an attached interface's groups as the union (a set: unordered) of its own and
/// the instance-level `SecurityGroups` of `RunInstances`; launching with the groups on the
/// interface instead, as infrastructure-as-code usually does, makes moto report exactly them.
#[must_use]
pub fn primary_interface(
    subnet_id: &str,
    groups: &[String],
) -> InstanceNetworkInterfaceSpecification {
    InstanceNetworkInterfaceSpecification::builder()
        .device_index(0)
        .subnet_id(subnet_id)
        .set_groups(Some(groups.to_vec()))
        .build()
}

/// Creates an interface in `subnet_id` with `groups` (and one IPv6 address if `ipv6`) and
/// attaches it to the instance as device 1; returns its id.
pub async fn attach_interface(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    subnet_id: &str,
    groups: &[String],
    ipv6: bool,
) -> String {
    let eni = ec2
        .create_network_interface()
        .subnet_id(subnet_id)
        .set_groups(Some(groups.to_vec()))
        .set_ipv6_address_count(ipv6.then_some(1))
        .send()
        .await
        .unwrap()
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .expect("interface id")
        .to_owned();
    ec2.attach_network_interface()
        .network_interface_id(&eni)
        .instance_id(instance_id)
        .device_index(1)
        .send()
        .await
        .unwrap();
    eni
}

/// The instance as described now.
pub async fn describe_instance(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Instance {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    out.reservations()
        .first()
        .and_then(|r| r.instances().first())
        .expect("the instance")
        .clone()
}

/// An instance's tags.
pub async fn instance_tags(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> BTreeMap<String, String> {
    describe_instance(ec2, instance_id)
        .await
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect()
}

/// An interface's groups (in the order reported) and tags.
pub async fn eni_state(
    ec2: &aws_sdk_ec2::Client,
    eni_id: &str,
) -> (Vec<String>, BTreeMap<String, String>) {
    let out = ec2
        .describe_network_interfaces()
        .network_interface_ids(eni_id)
        .send()
        .await
        .unwrap();
    let ni = out.network_interfaces().first().expect("the interface");
    let groups = ni
        .groups()
        .iter()
        .map(|g| g.group_id().unwrap().to_owned())
        .collect();
    let tags = ni
        .tag_set()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    (groups, tags)
}

/// What isolation protects on an instance: (DisableApiTermination, DisableApiStop, shutdown
/// behaviour, [(volume, DeleteOnTermination)]).
pub async fn instance_protection(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> (bool, bool, String, Vec<(String, bool)>) {
    let attr = |name: InstanceAttributeName| {
        ec2.describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(name)
            .send()
    };
    let term = attr(InstanceAttributeName::DisableApiTermination)
        .await
        .unwrap();
    let stop = attr(InstanceAttributeName::DisableApiStop).await.unwrap();
    let shutdown = attr(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .await
        .unwrap();
    let volumes = describe_instance(ec2, instance_id)
        .await
        .block_device_mappings()
        .iter()
        .map(|m| {
            let ebs = m.ebs().unwrap();
            (
                ebs.volume_id().unwrap().to_owned(),
                ebs.delete_on_termination().unwrap(),
            )
        })
        .collect();
    (
        term.disable_api_termination().unwrap().value().unwrap(),
        stop.disable_api_stop().unwrap().value().unwrap(),
        shutdown
            .instance_initiated_shutdown_behavior()
            .unwrap()
            .value()
            .unwrap()
            .to_owned(),
        volumes,
    )
}

// ----------------------------------------------------------------------------------------- IAM

/// A trust policy letting EC2 assume a role.
pub const TRUST_EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
/// An application's permissions, for a principal's own inline or managed policy.
pub const APP_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"App reads","Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::app-bucket/*"}]}"#;

/// An IAM tag.
#[must_use]
pub fn iam_tag(key: &str, value: &str) -> aws_sdk_iam::types::Tag {
    aws_sdk_iam::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap()
}

/// Creates a role EC2 may assume ([`TRUST_EC2`]) at `path` with `tags`; returns its ARN.
pub async fn create_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    path: &str,
    tags: &[(&str, &str)],
) -> String {
    let mut req = iam
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(TRUST_EC2);
    for (k, v) in tags {
        req = req.tags(iam_tag(k, v));
    }
    req.send().await.unwrap().role().unwrap().arn().to_owned()
}

/// Puts the inline policy `policy_name` on a role.
pub async fn put_role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    policy_name: &str,
    document: &str,
) {
    iam.put_role_policy()
        .role_name(role)
        .policy_name(policy_name)
        .policy_document(document)
        .send()
        .await
        .unwrap();
}

/// Creates the deployment's managed deny-all policy as the template does
/// (`ContainmentDenyAllPolicy`: path `/ir-suite/`, name `<prefix>-containment-deny-all`,
/// `Deny *` on `*`); returns its ARN.
pub async fn create_deny_policy(iam: &aws_sdk_iam::Client) -> String {
    let document = ir_core::action::policy_document(
        ir_core::action::PolicyPurpose::DenyAll,
        time::OffsetDateTime::now_utc(),
    );
    iam.create_policy()
        .path("/ir-suite/")
        .policy_name(format!(
            "{}-{}",
            unique_name("ir"),
            ir_actions::iam::DENY_POLICY_NAME_SUFFIX
        ))
        .policy_document(document.to_string())
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

/// Creates a user with `tags`.
pub async fn create_user(iam: &aws_sdk_iam::Client, name: &str, tags: &[(&str, &str)]) {
    let mut req = iam.create_user().user_name(name);
    for (k, v) in tags {
        req = req.tags(iam_tag(k, v));
    }
    req.send().await.unwrap();
}

/// Creates an access key for a user; returns it, secret included.
pub async fn create_access_key(iam: &aws_sdk_iam::Client, user: &str) -> AccessKey {
    let out = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    out.access_key().expect("the new key").clone()
}

/// Creates an access key for a user; returns its id.
pub async fn create_key(iam: &aws_sdk_iam::Client, user: &str) -> String {
    create_access_key(iam, user)
        .await
        .access_key_id()
        .to_owned()
}

/// A policy document as `GetRolePolicy` / `GetUserPolicy` return it (URL-encoded, as on AWS).
///
/// # Panics
/// If it is not JSON once decoded.
#[must_use]
pub fn decode_policy(raw: &str) -> Value {
    if let Ok(v) = serde_json::from_str(raw) {
        return v;
    }
    serde_json::from_str(&percent_decode(raw))
        .unwrap_or_else(|e| panic!("policy document {raw}: {e}"))
}

/// Everything about a role the containment actions could touch.
#[derive(Debug, PartialEq)]
pub struct RoleState {
    /// Inline policies: name -> document.
    pub inline: BTreeMap<String, Value>,
    /// Attached managed policies' ARNs, sorted.
    pub attached: Vec<String>,
    /// Tags, sorted.
    pub tags: Vec<(String, String)>,
}

/// Reads a role's [`RoleState`].
pub async fn role_state(iam: &aws_sdk_iam::Client, name: &str) -> RoleState {
    let names = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    let mut inline = BTreeMap::new();
    for p in names.policy_names() {
        let doc = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .unwrap();
        inline.insert(p.clone(), decode_policy(doc.policy_document()));
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    let mut attached: Vec<String> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect();
    attached.sort();
    let tags = iam.list_role_tags().role_name(name).send().await.unwrap();
    RoleState {
        inline,
        attached,
        tags: sorted_tags(tags.tags()),
    }
}

/// Everything about a user the containment actions could touch.
#[derive(Debug, PartialEq)]
pub struct UserState {
    /// Inline policies: name -> document.
    pub inline: BTreeMap<String, Value>,
    /// Access keys: id -> status (`Active`, `Inactive`).
    pub keys: BTreeMap<String, String>,
    /// Tags, sorted.
    pub tags: Vec<(String, String)>,
}

/// Reads a user's [`UserState`].
pub async fn user_state(iam: &aws_sdk_iam::Client, name: &str) -> UserState {
    let names = iam
        .list_user_policies()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let mut inline = BTreeMap::new();
    for p in names.policy_names() {
        let doc = iam
            .get_user_policy()
            .user_name(name)
            .policy_name(p)
            .send()
            .await
            .unwrap();
        inline.insert(p.clone(), decode_policy(doc.policy_document()));
    }
    let keys = iam.list_access_keys().user_name(name).send().await.unwrap();
    let keys = keys
        .access_key_metadata()
        .iter()
        .map(|k| {
            (
                k.access_key_id().unwrap().to_owned(),
                k.status().unwrap().as_str().to_owned(),
            )
        })
        .collect();
    let tags = iam.list_user_tags().user_name(name).send().await.unwrap();
    UserState {
        inline,
        keys,
        tags: sorted_tags(tags.tags()),
    }
}

fn sorted_tags(tags: &[aws_sdk_iam::types::Tag]) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = tags
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

// ------------------------------------------------------------------------------------------ S3

/// Creates a bucket as the deployment creates the evidence bucket: Object Lock (hence
/// versioning) with default retention COMPLIANCE 1 day; returns its name
/// ([`unique_name`]`(prefix)`). Use a path-style client ([`crate::LocalCloud::s3_client`]).
pub async fn locked_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique_name(prefix);
    crate::offline::evidence_bucket(s3, &bucket).await.unwrap();
    bucket
}

/// The default config's escalation roles (`security_engineer`, then `security_lead`), with
/// `leads` holding the lead's role: they may decide at every level of the default matrix.
pub fn lead_policy(leads: &[&str]) -> ir_incident::approval::ApproverPolicy {
    use ir_core::config::ApproverRole;
    ir_incident::approval::ApproverPolicy {
        roles: vec![
            ApproverRole {
                role: "security_engineer".to_owned(),
                identities: Vec::new(),
            },
            ApproverRole {
                role: "security_lead".to_owned(),
                identities: leads.iter().map(|l| (*l).to_owned()).collect(),
            },
        ],
        two_person_rule: true,
        suite: Vec::new(),
    }
}
