//! GuardDuty findings (`detail` of a `GuardDuty Finding` event, camelCase).
//!
//! The types below borrow from the input and declare only what the suite reads; unknown fields
//! are ignored, so new GuardDuty fields never break ingestion.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::arn::Arn;
use crate::event::{
    Ec2Instance, EksCluster, IamRole, IamUser, Indicator, IndicatorKind, NetworkInterface,
    OtherResource, Resource, S3Bucket, SecurityEvent, SecurityGroupRef, SkipCode, Skipped, Source,
};
use crate::lenient::{LenientBool, LenientF64, LenientTime, LenientU64, NumOrString};
use crate::normalize::{EnvelopeMeta, InputError, One, parse_at, parse_time, required};
use crate::severity::{FindingSeverity, Severity, SeverityScale};

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Finding<'a> {
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(rename = "type", borrow, default)]
    finding_type: Str<'a>,
    #[serde(default)]
    severity: Option<LenientF64>,
    #[serde(borrow, default)]
    title: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default)]
    region: Str<'a>,
    #[serde(borrow, default)]
    updated_at: Str<'a>,
    #[serde(borrow, default)]
    resource: Option<GdResource<'a>>,
    #[serde(borrow, default)]
    service: Option<Service<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GdResource<'a> {
    #[serde(borrow, default)]
    resource_type: Str<'a>,
    #[serde(borrow, default)]
    instance_details: Option<InstanceDetails<'a>>,
    #[serde(borrow, default)]
    access_key_details: Option<AccessKeyDetails<'a>>,
    #[serde(borrow, default)]
    s3_bucket_details: Option<Vec<S3BucketDetails<'a>>>,
    #[serde(borrow, default)]
    eks_cluster_details: Option<EksClusterDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceDetails<'a> {
    #[serde(borrow, default)]
    instance_id: Str<'a>,
    #[serde(borrow, default)]
    image_id: Str<'a>,
    #[serde(default)]
    launch_time: Option<LenientTime>,
    #[serde(borrow, default)]
    iam_instance_profile: Option<InstanceProfile<'a>>,
    #[serde(borrow, default)]
    network_interfaces: Option<Vec<Eni<'a>>>,
    #[serde(borrow, default)]
    tags: Option<Vec<Tag<'a>>>,
}

#[derive(Deserialize)]
struct InstanceProfile<'a> {
    #[serde(borrow, default)]
    arn: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Eni<'a> {
    #[serde(borrow, default)]
    network_interface_id: Str<'a>,
    #[serde(borrow, default)]
    vpc_id: Str<'a>,
    #[serde(borrow, default)]
    subnet_id: Str<'a>,
    #[serde(borrow, default)]
    private_ip_address: Str<'a>,
    #[serde(borrow, default)]
    public_ip: Str<'a>,
    #[serde(borrow, default)]
    ipv6_addresses: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    security_groups: Option<Vec<Sg<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sg<'a> {
    #[serde(borrow, default)]
    group_id: Str<'a>,
    #[serde(borrow, default)]
    group_name: Str<'a>,
}

#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(borrow, default)]
    key: Str<'a>,
    #[serde(borrow, default)]
    value: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessKeyDetails<'a> {
    #[serde(borrow, default)]
    access_key_id: Str<'a>,
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    user_name: Str<'a>,
    #[serde(borrow, default)]
    user_type: Str<'a>,
}

#[derive(Deserialize)]
struct S3BucketDetails<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(borrow, default)]
    tags: Option<Vec<Tag<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EksClusterDetails<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(borrow, default)]
    vpc_id: Str<'a>,
    #[serde(borrow, default)]
    tags: Option<Vec<Tag<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Service<'a> {
    #[serde(default)]
    count: Option<LenientU64>,
    #[serde(borrow, default)]
    event_first_seen: Str<'a>,
    #[serde(borrow, default)]
    event_last_seen: Str<'a>,
    #[serde(default)]
    archived: Option<LenientBool>,
    #[serde(borrow, default)]
    action: Option<Action<'a>>,
    #[serde(default)]
    additional_info: Option<AdditionalInfo>,
    /// `detection.sequence` of an attack sequence, read apart (see [`crate::sequence`]): a part
    /// of it that cannot be read never refuses the finding.
    #[serde(borrow, default)]
    detection: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AdditionalInfo {
    #[serde(default)]
    sample: Option<LenientBool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Action<'a> {
    #[serde(borrow, default)]
    network_connection_action: Option<WithRemoteIp<'a>>,
    #[serde(borrow, default)]
    aws_api_call_action: Option<ApiCallAction<'a>>,
    #[serde(borrow, default)]
    dns_request_action: Option<DnsRequestAction<'a>>,
    #[serde(borrow, default)]
    port_probe_action: Option<PortProbeAction<'a>>,
    #[serde(borrow, default)]
    kubernetes_api_call_action: Option<WithRemoteIp<'a>>,
    #[serde(borrow, default)]
    rds_login_attempt_action: Option<WithRemoteIp<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WithRemoteIp<'a> {
    #[serde(borrow, default)]
    remote_ip_details: Option<RemoteIpDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiCallAction<'a> {
    #[serde(borrow, default)]
    remote_ip_details: Option<RemoteIpDetails<'a>>,
    #[serde(borrow, default)]
    domain_details: Option<DomainDetails<'a>>,
}

#[derive(Deserialize)]
struct DomainDetails<'a> {
    #[serde(borrow, default)]
    domain: Str<'a>,
}

#[derive(Deserialize)]
struct DnsRequestAction<'a> {
    #[serde(borrow, default)]
    domain: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortProbeAction<'a> {
    #[serde(borrow, default)]
    port_probe_details: Option<Vec<WithRemoteIp<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoteIpDetails<'a> {
    #[serde(borrow, default)]
    ip_address_v4: Str<'a>,
    #[serde(borrow, default)]
    ip_address_v6: Str<'a>,
    #[serde(default)]
    organization: Option<Organization>,
}

#[derive(Deserialize)]
struct Organization {
    #[serde(default)]
    asn: Option<NumOrString>,
}

/// The canonical correlation key of a GuardDuty finding. A GuardDuty finding imported into
/// Security Hub maps to the same key (see [`key_from_arn`]).
pub fn finding_key(account: &str, region: &str, finding_id: &str) -> String {
    format!("guardduty:{account}:{region}:{finding_id}")
}

/// The parts of a GuardDuty finding ARN
/// (`arn:aws:guardduty:<region>:<account>:detector/<detector>/finding/<id>`), if it is one.
///
/// In an organization the ARN of a finding delivered to the GuardDuty administrator account may
/// name another account and detector than the resource's (`accountId`); correlation keys are
/// therefore built from the resource's account, region and the finding id (see
/// [`finding_key`]), never from the ARN's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub detector: &'a str,
    pub finding_id: &'a str,
}

impl<'a> FindingArn<'a> {
    pub fn parse(arn: &'a str) -> Option<FindingArn<'a>> {
        let Some(Arn {
            service: "guardduty",
            region,
            account,
            resource,
            ..
        }) = Arn::parse(arn)
        else {
            return None;
        };
        let mut segments = resource.split('/');
        let (Some("detector"), Some(detector), Some("finding"), Some(finding_id), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return None;
        };
        if region.is_empty() || account.is_empty() || detector.is_empty() || finding_id.is_empty() {
            return None;
        }
        Some(FindingArn {
            region,
            account,
            detector,
            finding_id,
        })
    }
}

/// Whether a Security Hub finding's product is GuardDuty: its name, or a product ARN (ASFF
/// `ProductArn`, OCSF `metadata.product.uid`) ending `/aws/guardduty`.
pub(crate) fn is_product(name: Option<&str>, product: Option<&str>) -> bool {
    name == Some("GuardDuty") || product.is_some_and(|p| p.ends_with("/aws/guardduty"))
}

/// A Security Hub copy (`shape`: `Security Hub`, `Security Hub (OCSF)`) of the GuardDuty
/// finding `arn`: skipped, naming the incident of the direct copy, keyed in the resource's
/// account (`resource_account`) as the direct copy is on its `accountId` (the ARN of an
/// organization's finding may name the administrator's). `None` when `arn` is not a GuardDuty
/// finding ARN.
pub(crate) fn imported_copy(
    arn: &str,
    resource_account: Option<&str>,
    shape: &str,
) -> Option<Skipped> {
    let incident = crate::correlate::incident_id(&key_from_arn(arn, resource_account)?);
    Some(Skipped {
        reason: format!(
            "GuardDuty finding imported into {shape}: it is ingested from the GuardDuty event and belongs to incident {incident}"
        ),
        finding_id: arn.to_owned(),
        code: SkipCode::GuarddutyDuplicate,
        incident_id: Some(incident),
    })
}

/// The canonical key of a GuardDuty finding named by its ARN, in the resource's account when
/// the copy says which (`resource_account`: ASFF `AwsAccountId`, OCSF `cloud.account.uid`) and
/// the ARN's account otherwise. `None` when `arn` is not a GuardDuty finding ARN.
pub fn key_from_arn(arn: &str, resource_account: Option<&str>) -> Option<String> {
    let parts = FindingArn::parse(arn)?;
    let account = resource_account
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(parts.account);
    Some(finding_key(account, parts.region, parts.finding_id))
}

const LOC: &str = "detail";

/// `resource.resourceType` of an Extended Threat Detection finding (`AttackSequence:*`).
pub const ATTACK_SEQUENCE: &str = "AttackSequence";

pub(crate) fn normalize(meta: &EnvelopeMeta<'_>, detail: &RawValue) -> Result<One, InputError> {
    let f: Finding<'_> = parse_at(detail, LOC)?;
    let finding_id = required(f.id.as_deref(), LOC, "id")?;
    let finding_type = required(f.finding_type.as_deref(), LOC, "type")?;
    let account = required(f.account_id.as_deref().or(meta.account), LOC, "accountId")?;
    let region = required(f.region.as_deref().or(meta.region), LOC, "region")?;
    let LenientF64(value) = f
        .severity
        .ok_or_else(|| InputError::finding("detail.severity", "missing required field"))?;
    let label =
        Severity::from_guardduty(value).map_err(|m| InputError::finding("detail.severity", m))?;
    // The ARN is not needed: the finding is triaged and keyed on `accountId` (the resource's
    // account). A delegated administrator's copy names its own account and detector; anything
    // else that disagrees is noted, never a reason to drop the finding.
    let mut notes = Vec::new();
    if let Some(arn) = f.arn.as_deref() {
        notes.extend(arn_note(arn, account, region, finding_id));
    }
    if f.service
        .as_ref()
        .and_then(|s| s.archived)
        .is_some_and(|a| a.0)
    {
        return Ok(One::Skip(Skipped {
            finding_id: finding_id.to_owned(),
            code: SkipCode::Archived,
            reason: "finding is archived in GuardDuty (service.archived: true)".to_owned(),
            incident_id: None,
        }));
    }
    let res = f
        .resource
        .ok_or_else(|| InputError::finding("detail.resource", "missing required field"))?;
    let service = f.service;
    let attack_sequence = res.resource_type.as_deref().map(str::trim) == Some(ATTACK_SEQUENCE)
        || finding_type.starts_with("AttackSequence:");
    let (resource, tags, related_resources, signal_keys, sequence_indicators) = if attack_sequence {
        let read = crate::sequence::read(
            service.as_ref().and_then(|s| s.detection),
            crate::sequence::Context {
                finding_id,
                account,
                region,
            },
            &mut notes,
        );
        (
            read.resource,
            read.tags,
            read.related,
            read.signal_keys,
            read.indicators,
        )
    } else {
        let (resource, tags) = resource(res, finding_id, &mut notes)?;
        (resource, tags, Vec::new(), Vec::new(), Vec::new())
    };
    let (count, first_seen, last_seen, sample, mut indicators) = match &service {
        Some(s) => (
            s.count.map_or(1, |c| c.0.max(1)),
            parse_time(
                s.event_first_seen.as_deref(),
                "detail.service.eventFirstSeen",
            )?,
            parse_time(s.event_last_seen.as_deref(), "detail.service.eventLastSeen")?,
            s.additional_info
                .as_ref()
                .and_then(|a| a.sample)
                .is_some_and(|b| b.0),
            s.action.as_ref().map(indicators).unwrap_or_default(),
        ),
        None => (1, None, None, false, Vec::new()),
    };
    if !sequence_indicators.is_empty() {
        indicators.extend(sequence_indicators);
        indicators.sort();
        indicators.dedup();
    }
    Ok(One::Event(SecurityEvent {
        finding_id: finding_id.to_owned(),
        finding_key: finding_key(account, region, finding_id),
        source: Source::Guardduty,
        product: "GuardDuty".to_owned(),
        finding_type: finding_type.to_owned(),
        severity: FindingSeverity {
            label,
            value: Some(value),
            scale: SeverityScale::GuardDuty,
        },
        title: f.title.as_deref().unwrap_or(finding_type).to_owned(),
        account: account.to_owned(),
        region: region.to_owned(),
        resource,
        resource_tags: tags,
        first_seen,
        last_seen,
        updated_at: parse_time(f.updated_at.as_deref(), "detail.updatedAt")?,
        count,
        indicators,
        sample,
        related_resources,
        signal_keys,
        notes,
        raw: detail.to_owned(),
    }))
}

/// What a finding ARN that disagrees with the finding says, if it does.
fn arn_note(arn: &str, account: &str, region: &str, finding_id: &str) -> Option<String> {
    let Some(parts) = FindingArn::parse(arn) else {
        return Some(format!(
            "detail.arn `{arn}` is not a GuardDuty finding ARN: ignored"
        ));
    };
    if parts.finding_id != finding_id || parts.region != region {
        return Some(format!(
            "detail.arn `{arn}` does not name finding `{finding_id}` in {region}: ignored, the finding is keyed on its id, accountId and region"
        ));
    }
    (parts.account != account).then(|| {
        format!(
            "finding ARN names account {} (detector {}), not the resource's account {account}: a copy delivered to a GuardDuty administrator account; triaged in {account}",
            parts.account, parts.detector
        )
    })
}

fn tags(list: Option<Vec<Tag<'_>>>) -> BTreeMap<String, String> {
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|t| {
            Some((
                t.key?.into_owned(),
                t.value.map(Cow::into_owned).unwrap_or_default(),
            ))
        })
        .collect()
}

fn owned(s: Str<'_>) -> Option<String> {
    s.map(Cow::into_owned).filter(|s| !s.is_empty())
}

/// A resource the finding names without saying which: kept under the finding's own id, so that
/// it never correlates with another finding's unidentified resource.
fn unidentified(resource_type: &str, finding_id: &str, notes: &mut Vec<String>) -> Resource {
    notes.push(format!(
        "resource of type {resource_type} carries no identifier: kept as `finding/{finding_id}`"
    ));
    Resource::Other(OtherResource {
        resource_type: resource_type.to_owned(),
        id: format!("finding/{finding_id}"),
    })
}

fn resource(
    r: GdResource<'_>,
    finding_id: &str,
    notes: &mut Vec<String>,
) -> Result<(Resource, BTreeMap<String, String>), InputError> {
    let resource_type = required(
        r.resource_type.as_deref(),
        "detail.resource",
        "resourceType",
    )?
    .to_owned();
    match resource_type.as_str() {
        "Instance" => {
            let Some(d) = r.instance_details else {
                return Ok((
                    unidentified(&resource_type, finding_id, notes),
                    BTreeMap::new(),
                ));
            };
            let tags = tags(d.tags);
            let resource = match owned(d.instance_id) {
                Some(instance_id) => Resource::Ec2Instance(instance(
                    instance_id,
                    d.image_id,
                    d.launch_time,
                    d.iam_instance_profile,
                    d.network_interfaces,
                    notes,
                )),
                None => unidentified(&resource_type, finding_id, notes),
            };
            Ok((resource, tags))
        }
        "AccessKey" => {
            let tags = r.instance_details.map(|i| tags(i.tags)).unwrap_or_default();
            let Some(d) = r.access_key_details else {
                return Ok((unidentified(&resource_type, finding_id, notes), tags));
            };
            let access_key_id = owned(d.access_key_id);
            let principal_id = owned(d.principal_id);
            let Some(user_name) = owned(d.user_name) else {
                // No name to act on: kept under the key or principal the finding gives.
                let resource = match access_key_id.clone().or(principal_id.clone()) {
                    Some(id) => {
                        notes.push(format!(
                            "access key details carry no userName: kept as `{id}`"
                        ));
                        Resource::Other(OtherResource {
                            resource_type: format!(
                                "AccessKey/{}",
                                d.user_type.as_deref().unwrap_or("unknown")
                            ),
                            id,
                        })
                    }
                    None => unidentified(&resource_type, finding_id, notes),
                };
                return Ok((resource, tags));
            };
            let resource = match d.user_type.as_deref() {
                Some("IAMUser") => Resource::IamUser(IamUser {
                    user_name,
                    access_key_id,
                    principal_id,
                }),
                Some("AssumedRole") => Resource::IamRole(IamRole {
                    role_name: user_name,
                    access_key_id,
                    principal_id,
                }),
                other => Resource::Other(OtherResource {
                    resource_type: format!("AccessKey/{}", other.unwrap_or("unknown")),
                    id: user_name,
                }),
            };
            Ok((resource, tags))
        }
        "S3Bucket" => {
            let first = r.s3_bucket_details.and_then(|v| v.into_iter().next());
            match first {
                Some(b) => match owned(b.name) {
                    Some(bucket_name) => Ok((
                        Resource::S3Bucket(S3Bucket {
                            bucket_name,
                            arn: owned(b.arn),
                        }),
                        tags(b.tags),
                    )),
                    None => Ok((
                        unidentified(&resource_type, finding_id, notes),
                        tags(b.tags),
                    )),
                },
                None => Ok((
                    unidentified(&resource_type, finding_id, notes),
                    BTreeMap::new(),
                )),
            }
        }
        "EKSCluster" => {
            let Some(d) = r.eks_cluster_details else {
                return Ok((
                    unidentified(&resource_type, finding_id, notes),
                    BTreeMap::new(),
                ));
            };
            let tags = tags(d.tags);
            let resource = match owned(d.name) {
                Some(cluster_name) => Resource::EksCluster(EksCluster {
                    cluster_name,
                    arn: owned(d.arn),
                    vpc_id: owned(d.vpc_id),
                }),
                None => unidentified(&resource_type, finding_id, notes),
            };
            Ok((resource, tags))
        }
        _ => {
            let id = r
                .instance_details
                .as_ref()
                .and_then(|d| d.instance_id.as_deref())
                .or_else(|| {
                    r.access_key_details
                        .as_ref()
                        .and_then(|d| d.user_name.as_deref())
                })
                .filter(|id| !id.trim().is_empty())
                .map(str::to_owned);
            let resource = match id {
                Some(id) => Resource::Other(OtherResource { resource_type, id }),
                None => unidentified(&resource_type, finding_id, notes),
            };
            Ok((resource, BTreeMap::new()))
        }
    }
}

fn instance(
    instance_id: String,
    image_id: Str<'_>,
    launch_time: Option<LenientTime>,
    profile: Option<InstanceProfile<'_>>,
    enis: Option<Vec<Eni<'_>>>,
    notes: &mut Vec<String>,
) -> Ec2Instance {
    let mut network_interfaces = Vec::new();
    for (i, e) in enis.unwrap_or_default().into_iter().enumerate() {
        // An interface with no id cannot be isolated by id: left out, and said so. Every other
        // field of an interface is optional.
        let Some(network_interface_id) = owned(e.network_interface_id) else {
            notes.push(format!(
                "detail.resource.instanceDetails.networkInterfaces[{i}] has no networkInterfaceId: left out"
            ));
            continue;
        };
        network_interfaces.push(NetworkInterface {
            network_interface_id,
            vpc_id: owned(e.vpc_id),
            subnet_id: owned(e.subnet_id),
            security_groups: e
                .security_groups
                .unwrap_or_default()
                .into_iter()
                .filter_map(|g| {
                    Some(SecurityGroupRef {
                        group_id: owned(g.group_id)?,
                        group_name: owned(g.group_name),
                    })
                })
                .collect(),
            private_ipv4: owned(e.private_ip_address),
            public_ipv4: owned(e.public_ip),
            ipv6_addresses: e
                .ipv6_addresses
                .unwrap_or_default()
                .into_iter()
                .map(Cow::into_owned)
                .filter(|a| !a.is_empty())
                .collect(),
        });
    }
    Ec2Instance {
        instance_id,
        vpc_id: network_interfaces.iter().find_map(|n| n.vpc_id.clone()),
        subnet_id: network_interfaces.iter().find_map(|n| n.subnet_id.clone()),
        network_interfaces,
        instance_profile_arn: profile.and_then(|p| owned(p.arn)),
        image_id: owned(image_id),
        launch_time: launch_time.map(|t| t.0),
    }
}

fn indicators(action: &Action<'_>) -> Vec<Indicator> {
    let mut out = Vec::new();
    let mut ip = |d: Option<&RemoteIpDetails<'_>>| {
        if let Some(d) = d {
            let asn = d
                .organization
                .as_ref()
                .and_then(|o| o.asn.as_ref())
                .map(|a| a.0.clone());
            for v in [d.ip_address_v4.as_deref(), d.ip_address_v6.as_deref()]
                .into_iter()
                .flatten()
            {
                if !v.is_empty() {
                    out.push(Indicator {
                        kind: IndicatorKind::Ip,
                        value: v.to_owned(),
                        asn: asn.clone(),
                    });
                }
            }
        }
    };
    ip(action
        .network_connection_action
        .as_ref()
        .and_then(|a| a.remote_ip_details.as_ref()));
    ip(action
        .aws_api_call_action
        .as_ref()
        .and_then(|a| a.remote_ip_details.as_ref()));
    ip(action
        .kubernetes_api_call_action
        .as_ref()
        .and_then(|a| a.remote_ip_details.as_ref()));
    ip(action
        .rds_login_attempt_action
        .as_ref()
        .and_then(|a| a.remote_ip_details.as_ref()));
    if let Some(p) = &action.port_probe_action {
        for d in p.port_probe_details.iter().flatten() {
            ip(d.remote_ip_details.as_ref());
        }
    }
    let domains = [
        action
            .dns_request_action
            .as_ref()
            .and_then(|d| d.domain.as_deref()),
        action
            .aws_api_call_action
            .as_ref()
            .and_then(|a| a.domain_details.as_ref())
            .and_then(|d| d.domain.as_deref()),
    ];
    for d in domains.into_iter().flatten() {
        if !d.is_empty() {
            out.push(Indicator {
                kind: IndicatorKind::Domain,
                value: d.to_ascii_lowercase(),
                asn: None,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_keys_match_direct_keys() {
        let arn = "arn:aws:guardduty:us-east-1:111122223333:detector/12abc/finding/d4b6";
        assert_eq!(
            key_from_arn(arn, None).unwrap(),
            finding_key("111122223333", "us-east-1", "d4b6")
        );
        // A delegated administrator's copy: keyed in the resource's account.
        let admin = "arn:aws:guardduty:us-east-1:999988887777:detector/99fff/finding/d4b6";
        assert_eq!(
            key_from_arn(admin, Some("111122223333")).unwrap(),
            finding_key("111122223333", "us-east-1", "d4b6")
        );
        for not in [
            "arn:aws:inspector2:us-east-1:111122223333:finding/abc",
            "arn:aws:guardduty:us-east-1:111122223333:detector/12abc",
            "d4b6",
            "arn:aws:guardduty:us-east-1:111122223333:detector/12abc/finding/d4b6/extra",
        ] {
            assert!(key_from_arn(not, None).is_none(), "{not}");
        }
    }
}
