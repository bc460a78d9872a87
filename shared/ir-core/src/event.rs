//! The normalized security event: one shape for every finding the suite understands.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::severity::{FindingSeverity, Severity};

/// Where a finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Guardduty,
    Securityhub,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Guardduty => "guardduty",
            Source::Securityhub => "securityhub",
        }
    }
}

/// The kinds of resource the suite distinguishes. Findings on anything else are kept as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Ec2Instance,
    IamUser,
    IamRole,
    S3Bucket,
    EksCluster,
    Other,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 6] = [
        ResourceKind::Ec2Instance,
        ResourceKind::IamUser,
        ResourceKind::IamRole,
        ResourceKind::S3Bucket,
        ResourceKind::EksCluster,
        ResourceKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Ec2Instance => "ec2-instance",
            ResourceKind::IamUser => "iam-user",
            ResourceKind::IamRole => "iam-role",
            ResourceKind::S3Bucket => "s3-bucket",
            ResourceKind::EksCluster => "eks-cluster",
            ResourceKind::Other => "other",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security group attached to a network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupRef {
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
}

/// A network interface of an instance as the finding described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    pub network_interface_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ipv4: Option<String>,
    #[serde(default)]
    pub ipv6_addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ec2Instance {
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub launch_time: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamUser {
    pub user_name: String,
    /// The access key the finding names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamRole {
    pub role_name: String,
    /// The temporary (session) access key the finding names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// `ROLEID:session-name` for an assumed-role session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Bucket {
    pub bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksCluster {
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
}

/// A resource of a kind the suite does not act on; kept, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherResource {
    /// The type as the source named it (`AwsEc2SecurityGroup`, `RDSDBInstance`, …).
    pub resource_type: String,
    pub id: String,
}

/// The resource a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Resource {
    Ec2Instance(Ec2Instance),
    IamUser(IamUser),
    IamRole(IamRole),
    S3Bucket(S3Bucket),
    EksCluster(EksCluster),
    Other(OtherResource),
}

impl Resource {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Ec2Instance(_) => ResourceKind::Ec2Instance,
            Resource::IamUser(_) => ResourceKind::IamUser,
            Resource::IamRole(_) => ResourceKind::IamRole,
            Resource::S3Bucket(_) => ResourceKind::S3Bucket,
            Resource::EksCluster(_) => ResourceKind::EksCluster,
            Resource::Other(_) => ResourceKind::Other,
        }
    }

    /// The identifier an operator knows the resource by: instance id, user name, role name,
    /// bucket name, cluster name, or the source's id for anything else.
    pub fn id(&self) -> &str {
        match self {
            Resource::Ec2Instance(r) => &r.instance_id,
            Resource::IamUser(r) => &r.user_name,
            Resource::IamRole(r) => &r.role_name,
            Resource::S3Bucket(r) => &r.bucket_name,
            Resource::EksCluster(r) => &r.cluster_name,
            Resource::Other(r) => &r.id,
        }
    }
}

/// What kind of remote indicator a finding named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    Ip,
    Domain,
}

/// A remote IP address or domain seen in a finding, for threat intelligence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub value: String,
    /// Autonomous system number of a remote IP, when the finding gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<String>,
}

/// A finding from any source, normalized.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEvent {
    /// The source's finding id (GuardDuty `id`; ASFF `Id`).
    pub finding_id: String,
    /// The canonical key correlation uses: the same GuardDuty finding delivered directly or through
    /// Security Hub has the same key.
    pub finding_key: String,
    pub source: Source,
    /// The producing product (ASFF `ProductName`; `GuardDuty` for direct findings).
    pub product: String,
    pub finding_type: String,
    pub severity: FindingSeverity,
    pub title: String,
    pub account: String,
    pub region: String,
    pub resource: Resource,
    /// The resource's tags as the finding carried them.
    #[serde(default)]
    pub resource_tags: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub first_seen: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub last_seen: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub updated_at: Option<OffsetDateTime>,
    /// How many times the source has seen the activity (GuardDuty `service.count`; 1 otherwise).
    pub count: u64,
    #[serde(default)]
    pub indicators: Vec<Indicator>,
    /// A generated sample finding (`service.additionalInfo.sample: true`, or ASFF `Sample: true`).
    #[serde(default)]
    pub sample: bool,
    /// What the normalizer noticed and tolerated (a finding ARN naming another account than the
    /// resource's, a network interface with no id left out, …). Carried to triage with the event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The finding exactly as delivered.
    pub raw: Box<RawValue>,
}

impl SecurityEvent {
    pub fn severity_label(&self) -> Severity {
        self.severity.label
    }

    /// The correlation key of the resource: account, kind and id.
    pub fn resource_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.account,
            self.resource.kind().as_str(),
            self.resource.id()
        )
    }
}

/// Why a finding was not turned into an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipCode {
    /// Security Hub `Workflow.Status` is not `NEW` (our own updates re-emit Imported events).
    WorkflowNotNew,
    /// Security Hub `RecordState` is not `ACTIVE`.
    RecordNotActive,
    /// A GuardDuty finding imported into Security Hub: it arrives directly from GuardDuty too.
    GuarddutyDuplicate,
    /// A GuardDuty finding that is archived.
    Archived,
}

/// A finding deliberately not ingested, with the reason stated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub finding_id: String,
    pub code: SkipCode,
    pub reason: String,
    /// The incident the finding belongs to, when it is a duplicate of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}
