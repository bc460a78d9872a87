//! Security Hub findings in the AWS Security Finding Format (`detail.findings[]`, PascalCase).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{
    Ec2Instance, EksCluster, IamRole, IamUser, Indicator, IndicatorKind, NetworkInterface,
    OtherResource, Resource, S3Bucket, SecurityEvent, SkipCode, Skipped, Source,
};
use crate::guardduty;
use crate::lenient::{LenientBool, LenientF64};
use crate::normalize::{EnvelopeMeta, InputError, hub_findings, parse_at, parse_time, required};
use crate::severity::{FindingSeverity, Severity, SeverityScale};

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Finding<'a> {
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default)]
    product_arn: Str<'a>,
    #[serde(borrow, default)]
    product_name: Str<'a>,
    #[serde(borrow, default)]
    generator_id: Str<'a>,
    #[serde(borrow, default)]
    aws_account_id: Str<'a>,
    #[serde(borrow, default)]
    region: Str<'a>,
    #[serde(borrow, default)]
    types: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    first_observed_at: Str<'a>,
    #[serde(borrow, default)]
    last_observed_at: Str<'a>,
    #[serde(borrow, default)]
    created_at: Str<'a>,
    #[serde(borrow, default)]
    updated_at: Str<'a>,
    #[serde(borrow, default)]
    severity: Option<AsffSeverity<'a>>,
    #[serde(borrow, default)]
    title: Str<'a>,
    #[serde(borrow, default)]
    resources: Option<Vec<AsffResource<'a>>>,
    #[serde(borrow, default)]
    workflow: Option<Workflow<'a>>,
    #[serde(borrow, default)]
    workflow_state: Str<'a>,
    #[serde(borrow, default)]
    record_state: Str<'a>,
    #[serde(default)]
    sample: Option<LenientBool>,
    #[serde(borrow, default)]
    network: Option<Network<'a>>,
    #[serde(borrow, default)]
    action: Option<Action<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AsffSeverity<'a> {
    #[serde(borrow, default)]
    label: Str<'a>,
    #[serde(default)]
    normalized: Option<LenientF64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Workflow<'a> {
    #[serde(borrow, default)]
    status: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AsffResource<'a> {
    #[serde(rename = "Type", borrow, default)]
    resource_type: Str<'a>,
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default)]
    tags: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(borrow, default)]
    details: Option<Details<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Details<'a> {
    #[serde(borrow, default)]
    aws_ec2_instance: Option<Ec2Details<'a>>,
    #[serde(borrow, default)]
    aws_iam_access_key: Option<AccessKeyDetails<'a>>,
    #[serde(borrow, default)]
    aws_iam_user: Option<UserDetails<'a>>,
    #[serde(borrow, default)]
    aws_iam_role: Option<RoleDetails<'a>>,
    #[serde(borrow, default)]
    aws_eks_cluster: Option<EksDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ec2Details<'a> {
    #[serde(borrow, default)]
    vpc_id: Str<'a>,
    #[serde(borrow, default)]
    subnet_id: Str<'a>,
    #[serde(borrow, default)]
    iam_instance_profile_arn: Str<'a>,
    #[serde(borrow, default)]
    image_id: Str<'a>,
    #[serde(borrow, default)]
    launched_at: Str<'a>,
    #[serde(borrow, default)]
    ip_v6_addresses: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    network_interfaces: Option<Vec<EniRef<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EniRef<'a> {
    #[serde(borrow, default)]
    network_interface_id: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccessKeyDetails<'a> {
    #[serde(borrow, default)]
    user_name: Str<'a>,
    #[serde(borrow, default)]
    principal_name: Str<'a>,
    #[serde(borrow, default)]
    principal_type: Str<'a>,
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    access_key_id: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserDetails<'a> {
    #[serde(borrow, default)]
    user_name: Str<'a>,
    #[serde(borrow, default)]
    user_id: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleDetails<'a> {
    #[serde(borrow, default)]
    role_name: Str<'a>,
    #[serde(borrow, default)]
    role_id: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EksDetails<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Network<'a> {
    #[serde(borrow, default)]
    direction: Str<'a>,
    #[serde(borrow, default)]
    source_ip_v4: Str<'a>,
    #[serde(borrow, default)]
    source_ip_v6: Str<'a>,
    #[serde(borrow, default)]
    source_domain: Str<'a>,
    #[serde(borrow, default)]
    destination_ip_v4: Str<'a>,
    #[serde(borrow, default)]
    destination_ip_v6: Str<'a>,
    #[serde(borrow, default)]
    destination_domain: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Action<'a> {
    #[serde(borrow, default)]
    network_connection_action: Option<WithRemoteIp<'a>>,
    #[serde(borrow, default)]
    aws_api_call_action: Option<ApiCallAction<'a>>,
    #[serde(borrow, default)]
    dns_request_action: Option<DnsRequestAction<'a>>,
    #[serde(borrow, default)]
    port_probe_action: Option<PortProbeAction<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WithRemoteIp<'a> {
    #[serde(borrow, default)]
    remote_ip_details: Option<RemoteIpDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiCallAction<'a> {
    #[serde(borrow, default)]
    remote_ip_details: Option<RemoteIpDetails<'a>>,
    #[serde(borrow, default)]
    domain_details: Option<DomainDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DomainDetails<'a> {
    #[serde(borrow, default)]
    domain: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DnsRequestAction<'a> {
    #[serde(borrow, default)]
    domain: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortProbeAction<'a> {
    #[serde(borrow, default)]
    port_probe_details: Option<Vec<WithRemoteIp<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoteIpDetails<'a> {
    #[serde(borrow, default)]
    ip_address_v4: Str<'a>,
}

/// The canonical correlation key of an ASFF finding: unique per (`ProductArn`, `Id`), except that
/// a GuardDuty finding maps to its GuardDuty key.
fn finding_key(product_arn: &str, id: &str) -> String {
    format!("securityhub:{product_arn}|{id}")
}

pub(crate) fn normalize_batch(
    meta: &EnvelopeMeta<'_>,
    detail: &RawValue,
) -> Result<(Vec<SecurityEvent>, Vec<Skipped>), InputError> {
    let findings = hub_findings(detail)?;
    let mut events = Vec::with_capacity(findings.len());
    let mut skipped = Vec::new();
    for (i, raw) in findings.into_iter().enumerate() {
        let loc = format!("detail.findings[{i}]");
        let f: Finding<'_> = parse_at(raw, &loc)?;
        let id = required(f.id.as_deref(), &loc, "Id")?.to_owned();
        // Loop guard: our own BatchUpdateFindings re-emit Imported events.
        let status = f
            .workflow
            .as_ref()
            .and_then(|w| w.status.as_deref())
            .or(f.workflow_state.as_deref())
            .unwrap_or("NEW");
        if status != "NEW" {
            skipped.push(Skipped {
                finding_id: id,
                code: SkipCode::WorkflowNotNew,
                reason: format!("Workflow.Status is {status}, not NEW: already handled (updates re-emit Imported events)"),
                incident_id: None,
            });
            continue;
        }
        let record_state = f.record_state.as_deref().unwrap_or("ACTIVE");
        if record_state != "ACTIVE" {
            skipped.push(Skipped {
                finding_id: id,
                code: SkipCode::RecordNotActive,
                reason: format!("RecordState is {record_state}, not ACTIVE"),
                incident_id: None,
            });
            continue;
        }
        if guardduty::is_product(f.product_name.as_deref(), f.product_arn.as_deref())
            && let Some(copy) =
                guardduty::imported_copy(&id, f.aws_account_id.as_deref(), "Security Hub")
        {
            skipped.push(copy);
            continue;
        }
        events.push(event(meta, f, id, raw, &loc)?);
    }
    Ok((events, skipped))
}

fn event(
    meta: &EnvelopeMeta<'_>,
    f: Finding<'_>,
    id: String,
    raw: &RawValue,
    loc: &str,
) -> Result<SecurityEvent, InputError> {
    let account = required(
        f.aws_account_id.as_deref().or(meta.account),
        loc,
        "AwsAccountId",
    )?
    .to_owned();
    let region = required(f.region.as_deref().or(meta.region), loc, "Region")?.to_owned();
    let product_arn = required(f.product_arn.as_deref(), loc, "ProductArn")?;
    let severity = severity(f.severity.as_ref(), &format!("{loc}.Severity"))?;
    let finding_type = f
        .types
        .as_ref()
        .and_then(|t| t.first())
        .map(|t| t.as_ref())
        .or(f.generator_id.as_deref())
        .ok_or_else(|| {
            InputError::finding(
                format!("{loc}.Types"),
                "missing: neither Types nor GeneratorId",
            )
        })?
        .to_owned();
    let mut resources = f.resources.unwrap_or_default().into_iter();
    let first = resources
        .next()
        .ok_or_else(|| InputError::finding(format!("{loc}.Resources"), "no resources"))?;
    let (resource, tags) = resource(first, &format!("{loc}.Resources[0]"))?;
    let indicators = indicators(f.network.as_ref(), f.action.as_ref());
    let title = f.title.as_deref().unwrap_or(&finding_type).to_owned();
    Ok(SecurityEvent {
        finding_key: finding_key(product_arn, &id),
        finding_id: id,
        source: Source::Securityhub,
        product: f.product_name.as_deref().unwrap_or("unknown").to_owned(),
        finding_type,
        severity,
        title,
        account,
        region,
        resource,
        resource_tags: tags,
        first_seen: parse_time(
            f.first_observed_at.as_deref().or(f.created_at.as_deref()),
            &format!("{loc}.FirstObservedAt"),
        )?,
        last_seen: parse_time(
            f.last_observed_at.as_deref().or(f.updated_at.as_deref()),
            &format!("{loc}.LastObservedAt"),
        )?,
        updated_at: parse_time(f.updated_at.as_deref(), &format!("{loc}.UpdatedAt"))?,
        count: 1,
        indicators,
        sample: f.sample.is_some_and(|s| s.0),
        related_resources: Vec::new(),
        signal_keys: Vec::new(),
        notes: Vec::new(),
        raw: raw.to_owned(),
    })
}

fn severity(s: Option<&AsffSeverity<'_>>, loc: &str) -> Result<FindingSeverity, InputError> {
    let s = s.ok_or_else(|| InputError::finding(loc, "missing required field"))?;
    let normalized = s.normalized.map(|n| n.0);
    let from_number = normalized
        .map(Severity::from_asff_normalized)
        .transpose()
        .map_err(|m| InputError::finding(format!("{loc}.Normalized"), m))?;
    let label = match s.label.as_deref() {
        Some(l) => Severity::from_asff_label(l)
            .map_err(|m| InputError::finding(format!("{loc}.Label"), m))?,
        None => from_number
            .ok_or_else(|| InputError::finding(loc, "neither Label nor Normalized is given"))?,
    };
    // A label with an inconsistent number: the label is authoritative; the number is not used.
    match normalized {
        Some(v) if from_number == Some(label) => Ok(FindingSeverity {
            label,
            value: Some(v),
            scale: SeverityScale::AsffNormalized,
        }),
        _ => Ok(FindingSeverity {
            label,
            value: normalized,
            scale: SeverityScale::AsffLabel,
        }),
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The last `/`-separated segment of an ARN's resource part (`…:instance/i-1` → `i-1`).
fn arn_tail(id: &str) -> &str {
    id.rsplit(['/', ':']).next().unwrap_or(id)
}

fn resource(
    r: AsffResource<'_>,
    loc: &str,
) -> Result<(Resource, BTreeMap<String, String>), InputError> {
    let rtype = required(r.resource_type.as_deref(), loc, "Type")?.to_owned();
    let id = required(r.id.as_deref(), loc, "Id")?.to_owned();
    let tags = r
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let details = r.details;
    let resource = match rtype.as_str() {
        "AwsEc2Instance" => {
            let d = details.and_then(|d| d.aws_ec2_instance);
            let instance_id = arn_tail(&id).to_owned();
            if !instance_id.starts_with("i-") {
                return Err(InputError::finding(
                    format!("{loc}.Id"),
                    format!("`{id}` does not name an EC2 instance"),
                ));
            }
            let (vpc_id, subnet_id, profile, image_id, launched, ipv6, enis) = match d {
                Some(d) => (
                    owned(d.vpc_id.as_deref()),
                    owned(d.subnet_id.as_deref()),
                    owned(d.iam_instance_profile_arn.as_deref()),
                    owned(d.image_id.as_deref()),
                    parse_time(
                        d.launched_at.as_deref(),
                        &format!("{loc}.Details.AwsEc2Instance.LaunchedAt"),
                    )?,
                    d.ip_v6_addresses
                        .unwrap_or_default()
                        .into_iter()
                        .map(Cow::into_owned)
                        .collect::<Vec<_>>(),
                    d.network_interfaces.unwrap_or_default(),
                ),
                None => (None, None, None, None, None, Vec::new(), Vec::new()),
            };
            // ASFF lists ENI ids only; their groups are read from EC2 when containment plans.
            let single = enis.len() == 1;
            let network_interfaces = enis
                .into_iter()
                .filter_map(|e| owned(e.network_interface_id.as_deref()))
                .map(|network_interface_id| NetworkInterface {
                    network_interface_id,
                    vpc_id: vpc_id.clone(),
                    subnet_id: None,
                    security_groups: Vec::new(),
                    private_ipv4: None,
                    public_ipv4: None,
                    ipv6_addresses: if single { ipv6.clone() } else { Vec::new() },
                })
                .collect();
            Resource::Ec2Instance(Ec2Instance {
                instance_id,
                vpc_id,
                subnet_id,
                network_interfaces,
                instance_profile_arn: profile,
                image_id,
                launch_time: launched,
            })
        }
        "AwsIamAccessKey" => {
            let d = details.and_then(|d| d.aws_iam_access_key);
            let key_from_id = id.strip_prefix("AWS::IAM::AccessKey:").map(str::to_owned);
            let (user, principal_name, principal_type, principal_id, key) = match &d {
                Some(d) => (
                    d.user_name.as_deref(),
                    d.principal_name.as_deref(),
                    d.principal_type.as_deref(),
                    owned(d.principal_id.as_deref()),
                    owned(d.access_key_id.as_deref()),
                ),
                None => (None, None, None, None, None),
            };
            let access_key_id = key.or(key_from_id);
            let name = principal_name.or(user).map(|n| arn_tail(n).to_owned());
            match (principal_type, name) {
                (Some("AssumedRole"), Some(role_name)) => Resource::IamRole(IamRole {
                    role_name,
                    access_key_id,
                    principal_id,
                }),
                (Some("IAMUser") | None, Some(user_name)) => Resource::IamUser(IamUser {
                    user_name,
                    access_key_id,
                    principal_id,
                }),
                _ => Resource::Other(OtherResource {
                    resource_type: rtype.clone(),
                    id: id.clone(),
                }),
            }
        }
        "AwsIamUser" => {
            let d = details.and_then(|d| d.aws_iam_user);
            let user_name = d
                .as_ref()
                .and_then(|d| owned(d.user_name.as_deref()))
                .unwrap_or_else(|| arn_tail(&id).to_owned());
            Resource::IamUser(IamUser {
                user_name,
                access_key_id: None,
                principal_id: d.and_then(|d| owned(d.user_id.as_deref())),
            })
        }
        "AwsIamRole" => {
            let d = details.and_then(|d| d.aws_iam_role);
            let role_name = d
                .as_ref()
                .and_then(|d| owned(d.role_name.as_deref()))
                .unwrap_or_else(|| arn_tail(&id).to_owned());
            Resource::IamRole(IamRole {
                role_name,
                access_key_id: None,
                principal_id: d.and_then(|d| owned(d.role_id.as_deref())),
            })
        }
        "AwsS3Bucket" => {
            let bucket_name = id
                .strip_prefix("arn:aws:s3:::")
                .or_else(|| id.rsplit(":::").next())
                .unwrap_or(&id)
                .to_owned();
            Resource::S3Bucket(S3Bucket {
                bucket_name,
                arn: id.starts_with("arn:").then(|| id.clone()),
            })
        }
        "AwsEksCluster" => {
            let cluster_name = details
                .and_then(|d| d.aws_eks_cluster)
                .and_then(|d| owned(d.name.as_deref()))
                .unwrap_or_else(|| arn_tail(&id).to_owned());
            Resource::EksCluster(EksCluster {
                cluster_name,
                arn: id.starts_with("arn:").then(|| id.clone()),
                vpc_id: None,
            })
        }
        _ => Resource::Other(OtherResource {
            resource_type: rtype,
            id,
        }),
    };
    Ok((resource, tags))
}

fn indicators(network: Option<&Network<'_>>, action: Option<&Action<'_>>) -> Vec<Indicator> {
    let mut out = Vec::new();
    let mut push = |kind: IndicatorKind, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            let value = if kind == IndicatorKind::Domain {
                v.to_ascii_lowercase()
            } else {
                v.to_owned()
            };
            out.push(Indicator {
                kind,
                value,
                asn: None,
            });
        }
    };
    if let Some(n) = network {
        // The remote side is the source of inbound traffic and the destination of outbound.
        if n.direction.as_deref() == Some("IN") {
            push(IndicatorKind::Ip, n.source_ip_v4.as_deref());
            push(IndicatorKind::Ip, n.source_ip_v6.as_deref());
            push(IndicatorKind::Domain, n.source_domain.as_deref());
        } else {
            push(IndicatorKind::Ip, n.destination_ip_v4.as_deref());
            push(IndicatorKind::Ip, n.destination_ip_v6.as_deref());
            push(IndicatorKind::Domain, n.destination_domain.as_deref());
        }
    }
    if let Some(a) = action {
        push(
            IndicatorKind::Ip,
            a.network_connection_action
                .as_ref()
                .and_then(|x| x.remote_ip_details.as_ref())
                .and_then(|r| r.ip_address_v4.as_deref()),
        );
        push(
            IndicatorKind::Ip,
            a.aws_api_call_action
                .as_ref()
                .and_then(|x| x.remote_ip_details.as_ref())
                .and_then(|r| r.ip_address_v4.as_deref()),
        );
        push(
            IndicatorKind::Domain,
            a.aws_api_call_action
                .as_ref()
                .and_then(|x| x.domain_details.as_ref())
                .and_then(|d| d.domain.as_deref()),
        );
        push(
            IndicatorKind::Domain,
            a.dns_request_action
                .as_ref()
                .and_then(|d| d.domain.as_deref()),
        );
        if let Some(p) = &a.port_probe_action {
            for d in p.port_probe_details.iter().flatten() {
                push(
                    IndicatorKind::Ip,
                    d.remote_ip_details
                        .as_ref()
                        .and_then(|r| r.ip_address_v4.as_deref()),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
