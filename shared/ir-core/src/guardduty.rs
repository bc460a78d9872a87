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

/// The canonical key from a GuardDuty finding ARN
/// (`arn:aws:guardduty:<region>:<account>:detector/<detector>/finding/<id>`), if it is one.
pub fn key_from_arn(arn: &str) -> Option<String> {
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
    let (Some("detector"), Some(_detector), Some("finding"), Some(id), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return None;
    };
    if region.is_empty() || account.is_empty() || id.is_empty() {
        return None;
    }
    Some(finding_key(account, region, id))
}

const LOC: &str = "detail";

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
    if let Some(arn) = f.arn.as_deref()
        && let Some(key) = key_from_arn(arn)
        && key != finding_key(account, region, finding_id)
    {
        return Err(InputError::finding(
            "detail.arn",
            format!("`{arn}` does not name finding `{finding_id}`"),
        ));
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
    let (resource, tags) = resource(res)?;
    let service = f.service;
    let (count, first_seen, last_seen, sample, indicators) = match &service {
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
        raw: detail.to_owned(),
    }))
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

fn resource(r: GdResource<'_>) -> Result<(Resource, BTreeMap<String, String>), InputError> {
    let resource_type = required(
        r.resource_type.as_deref(),
        "detail.resource",
        "resourceType",
    )?
    .to_owned();
    match resource_type.as_str() {
        "Instance" => {
            let d = r.instance_details.ok_or_else(|| {
                InputError::finding(
                    "detail.resource.instanceDetails",
                    "missing for resourceType Instance",
                )
            })?;
            Ok((
                Resource::Ec2Instance(instance(
                    d.instance_id,
                    d.image_id,
                    d.launch_time,
                    d.iam_instance_profile,
                    d.network_interfaces,
                )?),
                tags(d.tags),
            ))
        }
        "AccessKey" => {
            let d = r.access_key_details.ok_or_else(|| {
                InputError::finding(
                    "detail.resource.accessKeyDetails",
                    "missing for resourceType AccessKey",
                )
            })?;
            let loc = "detail.resource.accessKeyDetails";
            let user_name = required(d.user_name.as_deref(), loc, "userName")?.to_owned();
            let access_key_id = owned(d.access_key_id);
            let principal_id = owned(d.principal_id);
            let tags = r.instance_details.map(|i| tags(i.tags)).unwrap_or_default();
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
            let first = r
                .s3_bucket_details
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| {
                    InputError::finding(
                        "detail.resource.s3BucketDetails",
                        "missing for resourceType S3Bucket",
                    )
                })?;
            let bucket_name = required(
                first.name.as_deref(),
                "detail.resource.s3BucketDetails[0]",
                "name",
            )?
            .to_owned();
            Ok((
                Resource::S3Bucket(S3Bucket {
                    bucket_name,
                    arn: owned(first.arn),
                }),
                tags(first.tags),
            ))
        }
        "EKSCluster" => {
            let d = r.eks_cluster_details.ok_or_else(|| {
                InputError::finding(
                    "detail.resource.eksClusterDetails",
                    "missing for resourceType EKSCluster",
                )
            })?;
            let cluster_name = required(
                d.name.as_deref(),
                "detail.resource.eksClusterDetails",
                "name",
            )?
            .to_owned();
            Ok((
                Resource::EksCluster(EksCluster {
                    cluster_name,
                    arn: owned(d.arn),
                    vpc_id: owned(d.vpc_id),
                }),
                tags(d.tags),
            ))
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
                .unwrap_or("unknown")
                .to_owned();
            Ok((
                Resource::Other(OtherResource { resource_type, id }),
                BTreeMap::new(),
            ))
        }
    }
}

fn instance(
    instance_id: Str<'_>,
    image_id: Str<'_>,
    launch_time: Option<LenientTime>,
    profile: Option<InstanceProfile<'_>>,
    enis: Option<Vec<Eni<'_>>>,
) -> Result<Ec2Instance, InputError> {
    let loc = "detail.resource.instanceDetails";
    let instance_id = required(instance_id.as_deref(), loc, "instanceId")?.to_owned();
    let mut network_interfaces = Vec::new();
    for (i, e) in enis.unwrap_or_default().into_iter().enumerate() {
        let eni_loc = format!("{loc}.networkInterfaces[{i}]");
        let network_interface_id = required(
            e.network_interface_id.as_deref(),
            &eni_loc,
            "networkInterfaceId",
        )?
        .to_owned();
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
                .collect(),
        });
    }
    Ok(Ec2Instance {
        instance_id,
        vpc_id: network_interfaces.first().and_then(|n| n.vpc_id.clone()),
        subnet_id: network_interfaces.first().and_then(|n| n.subnet_id.clone()),
        network_interfaces,
        instance_profile_arn: profile.and_then(|p| owned(p.arn)),
        image_id: owned(image_id),
        launch_time: launch_time.map(|t| t.0),
    })
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
            key_from_arn(arn).unwrap(),
            finding_key("111122223333", "us-east-1", "d4b6")
        );
        for not in [
            "arn:aws:inspector2:us-east-1:111122223333:finding/abc",
            "arn:aws:guardduty:us-east-1:111122223333:detector/12abc",
            "d4b6",
            "arn:aws:guardduty:us-east-1:111122223333:detector/12abc/finding/d4b6/extra",
        ] {
            assert!(key_from_arn(not).is_none(), "{not}");
        }
    }
}
