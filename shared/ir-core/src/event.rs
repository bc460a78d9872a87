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

/// A resource a finding names besides the one it is about: the other resources of a GuardDuty
/// attack sequence (`service.detection.sequence.resources`), each in its own account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedResource {
    pub account: String,
    /// The region the source gave, if any (IAM resources have none that matters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub resource: Resource,
    /// The resource's tags as the finding carried them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl RelatedResource {
    /// The correlation key of the resource (see [`SecurityEvent::resource_key`]).
    pub fn key(&self) -> String {
        resource_key(&self.account, &self.resource)
    }
}

/// The correlation key of a resource of `account`: account, kind and id.
pub fn resource_key(account: &str, resource: &Resource) -> String {
    format!("{account}/{}/{}", resource.kind().as_str(), resource.id())
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
    /// The other resources the finding names (an attack sequence's), in the finding's order,
    /// never `resource` itself; correlated and planned with the incident.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_resources: Vec<RelatedResource>,
    /// The canonical keys ([`crate::guardduty::finding_key`]) of the GuardDuty findings the
    /// finding is made of (an attack sequence's signals of type `FINDING`), never its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signal_keys: Vec<String>,
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
        resource_key(&self.account, &self.resource)
    }

    /// The event as the incident whose resource is `primary` (of `account`, with `tags`) sees
    /// it: that resource is the event's, and the event's own resource joins the related ones.
    /// A finding attached to an incident through another of the incident's resources (an
    /// attack sequence's, or one a sequence named) is triaged on the incident's resource: the
    /// playbook acts on the incident's resource only. Unchanged when it is already the event's.
    #[must_use]
    pub fn centred_on(
        mut self,
        account: &str,
        primary: &Resource,
        tags: BTreeMap<String, String>,
    ) -> SecurityEvent {
        let key = resource_key(account, primary);
        if key == self.resource_key() {
            return self;
        }
        let own = RelatedResource {
            account: self.account.clone(),
            region: Some(self.region.clone()),
            resource: std::mem::replace(&mut self.resource, primary.clone()),
            tags: std::mem::replace(&mut self.resource_tags, tags),
        };
        self.notes.push(format!(
            "triaged on the incident's resource {} {}; the finding's own resource {} {} is planned with the related resources",
            primary.kind(),
            primary.id(),
            own.resource.kind(),
            own.resource.id(),
        ));
        self.related_resources.retain(|r| r.key() != key);
        self.related_resources.insert(0, own);
        self.account = account.to_owned();
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_centred_on_its_incidents_resource_keeps_its_own_as_related() {
        let text = include_str!(
            "../../../events/guardduty-attack-sequence-iam-compromised-credentials.json"
        );
        let e = crate::normalize(text.as_bytes()).unwrap().events.remove(0);
        assert_eq!(
            e.resource_key(),
            "111122223333/ec2-instance/i-0a1b2c3d4e5f60001"
        );
        let user = e.related_resources[0].clone();
        let same = e
            .clone()
            .centred_on("111122223333", &e.resource, BTreeMap::new());
        assert_eq!(same.related_resources, e.related_resources);
        assert_eq!(same.notes, e.notes);

        let c = e
            .clone()
            .centred_on(&user.account, &user.resource, user.tags.clone());
        assert_eq!(c.resource, user.resource);
        assert_eq!(c.resource_key(), "111122223333/iam-user/ci-deployer");
        let keys: Vec<String> = c
            .related_resources
            .iter()
            .map(RelatedResource::key)
            .collect();
        assert_eq!(
            keys,
            [
                "111122223333/ec2-instance/i-0a1b2c3d4e5f60001",
                "111122223333/s3-bucket/acme-customer-exports"
            ]
        );
        assert_eq!(c.related_resources[0].tags, e.resource_tags);
        assert_eq!(c.finding_key, e.finding_key);
        assert!(
            c.notes
                .last()
                .unwrap()
                .contains("triaged on the incident's resource iam-user ci-deployer")
        );
    }
}
