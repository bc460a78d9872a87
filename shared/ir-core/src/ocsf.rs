//! Security Hub findings in OCSF (`Findings Imported V2`, `detail.findings[]`, snake_case): the
//! Detection Finding class (2004) as Security Hub emits it.
//!
//! Read: `finding_info` (`uid`, `title`, `types`, first/last seen and modified times, epoch
//! milliseconds or `_dt` text), `metadata.product` (`name`, `uid`), `cloud.account.uid`,
//! `cloud.region`, `resources[]` (`type`, `uid`, `owner.account.uid`, `data`, `tags`),
//! `severity_id` / `severity`, `status_id`, `activity_id`, `count`, `evidences[]` endpoints.
//! A GuardDuty finding imported into Security Hub is skipped like its ASFF copy: it is ingested
//! from the GuardDuty event, and the reason names its incident (keyed on `cloud.account.uid`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{
    Ec2Instance, EksCluster, IamRole, IamUser, Indicator, IndicatorKind, OtherResource, Resource,
    S3Bucket, SecurityEvent, SkipCode, Skipped, Source,
};
use crate::guardduty;
use crate::lenient::{LenientTime, LenientU64};
use crate::normalize::{EnvelopeMeta, InputError, hub_findings, parse_at, required};
use crate::severity::{FindingSeverity, Severity, SeverityScale};

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
struct Finding<'a> {
    #[serde(borrow, default)]
    finding_info: Option<FindingInfo<'a>>,
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow, default)]
    cloud: Option<Cloud<'a>>,
    #[serde(borrow, default)]
    resources: Option<Vec<OcsfResource<'a>>>,
    #[serde(default)]
    severity_id: Option<LenientU64>,
    #[serde(borrow, default)]
    severity: Str<'a>,
    #[serde(default)]
    status_id: Option<LenientU64>,
    #[serde(borrow, default)]
    status: Str<'a>,
    #[serde(default)]
    activity_id: Option<LenientU64>,
    #[serde(default)]
    count: Option<LenientU64>,
    #[serde(default)]
    time: Option<LenientTime>,
    #[serde(borrow, default)]
    evidences: Option<Vec<Evidence<'a>>>,
}

#[derive(Deserialize)]
struct FindingInfo<'a> {
    #[serde(borrow, default)]
    uid: Str<'a>,
    #[serde(borrow, default)]
    title: Str<'a>,
    #[serde(borrow, default)]
    types: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    first_seen_time: Option<LenientTime>,
    #[serde(default)]
    first_seen_time_dt: Option<LenientTime>,
    #[serde(default)]
    last_seen_time: Option<LenientTime>,
    #[serde(default)]
    last_seen_time_dt: Option<LenientTime>,
    #[serde(default)]
    created_time: Option<LenientTime>,
    #[serde(default)]
    modified_time: Option<LenientTime>,
    #[serde(default)]
    modified_time_dt: Option<LenientTime>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    product: Option<Product<'a>>,
}

#[derive(Deserialize)]
struct Product<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    uid: Str<'a>,
}

#[derive(Deserialize)]
struct Cloud<'a> {
    #[serde(borrow, default)]
    account: Option<Account<'a>>,
    #[serde(borrow, default)]
    region: Str<'a>,
}

#[derive(Deserialize)]
struct Account<'a> {
    #[serde(borrow, default)]
    uid: Str<'a>,
}

#[derive(Deserialize)]
struct Owner<'a> {
    #[serde(borrow, default)]
    account: Option<Account<'a>>,
}

#[derive(Deserialize)]
struct OcsfResource<'a> {
    #[serde(rename = "type", borrow, default)]
    resource_type: Str<'a>,
    #[serde(borrow, default)]
    uid: Str<'a>,
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    owner: Option<Owner<'a>>,
    #[serde(borrow, default)]
    data: Option<ResourceData<'a>>,
    #[serde(borrow, default)]
    tags: Option<Vec<KeyValue<'a>>>,
}

/// The fields of `resources[].data` the suite reads (GuardDuty's access key details).
#[derive(Deserialize)]
struct ResourceData<'a> {
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
struct KeyValue<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    value: Str<'a>,
}

#[derive(Deserialize)]
struct Evidence<'a> {
    #[serde(borrow, default)]
    src_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    dst_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    query: Option<Query<'a>>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow, default)]
    ip: Str<'a>,
    #[serde(borrow, default)]
    domain: Str<'a>,
}

#[derive(Deserialize)]
struct Query<'a> {
    #[serde(borrow, default)]
    hostname: Str<'a>,
}

/// OCSF `status_id`: 0 Unknown, 1 New; 2 In Progress, 3 Suppressed, 4 Resolved, 5 Archived,
/// 6 Deleted and 99 Other are already handled or closed.
const STATUS_NEW: u64 = 1;
const STATUS_UNKNOWN: u64 = 0;
/// OCSF `activity_id` 3: Close.
const ACTIVITY_CLOSE: u64 = 3;

/// The canonical key of an OCSF finding that is not GuardDuty's: unique per (product, uid).
fn finding_key(product_uid: &str, uid: &str) -> String {
    format!("securityhub-ocsf:{product_uid}|{uid}")
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
        let info = f.finding_info.as_ref();
        let id = required(
            info.and_then(|i| i.uid.as_deref()),
            &loc,
            "finding_info.uid",
        )?
        .to_owned();
        let status = f.status_id.map_or(STATUS_UNKNOWN, |s| s.0);
        if status != STATUS_NEW && status != STATUS_UNKNOWN {
            skipped.push(Skipped {
                reason: format!(
                    "status_id is {status} ({}), not New: already handled",
                    f.status.as_deref().unwrap_or("unnamed")
                ),
                finding_id: id,
                code: SkipCode::WorkflowNotNew,
                incident_id: None,
            });
            continue;
        }
        if f.activity_id.is_some_and(|a| a.0 == ACTIVITY_CLOSE) {
            skipped.push(Skipped {
                finding_id: id,
                code: SkipCode::RecordNotActive,
                reason: "activity_id is 3 (Close): the finding is closed".to_owned(),
                incident_id: None,
            });
            continue;
        }
        let account = account(&f);
        let product = f.metadata.as_ref().and_then(|m| m.product.as_ref());
        if guardduty::is_product(
            product.and_then(|p| p.name.as_deref()),
            product.and_then(|p| p.uid.as_deref()),
        ) && let Some(copy) = guardduty::imported_copy(&id, account, "Security Hub (OCSF)")
        {
            skipped.push(copy);
            continue;
        }
        events.push(event(meta, f, id, raw, &loc)?);
    }
    Ok((events, skipped))
}

/// The account the finding is about: `cloud.account.uid`, else the first resource's owner.
fn account<'f>(f: &'f Finding<'_>) -> Option<&'f str> {
    f.cloud
        .as_ref()
        .and_then(|c| c.account.as_ref())
        .and_then(|a| a.uid.as_deref())
        .or_else(|| {
            f.resources
                .as_ref()
                .and_then(|r| r.first())
                .and_then(|r| r.owner.as_ref())
                .and_then(|o| o.account.as_ref())
                .and_then(|a| a.uid.as_deref())
        })
        .filter(|a| !a.trim().is_empty())
}

fn event(
    meta: &EnvelopeMeta<'_>,
    f: Finding<'_>,
    id: String,
    raw: &RawValue,
    loc: &str,
) -> Result<SecurityEvent, InputError> {
    let account = required(account(&f).or(meta.account), loc, "cloud.account.uid")?.to_owned();
    let region = required(
        f.cloud
            .as_ref()
            .and_then(|c| c.region.as_deref())
            .or(meta.region),
        loc,
        "cloud.region",
    )?
    .to_owned();
    let product = f.metadata.as_ref().and_then(|m| m.product.as_ref());
    let product_uid = required(
        product.and_then(|p| p.uid.as_deref()),
        loc,
        "metadata.product.uid",
    )?;
    let product_name = product
        .and_then(|p| p.name.as_deref())
        .unwrap_or("unknown")
        .to_owned();
    let severity = severity(
        f.severity_id.map(|s| s.0),
        f.severity.as_deref(),
        &format!("{loc}.severity_id"),
    )?;
    let info = f.finding_info.as_ref();
    let finding_type = info
        .and_then(|i| i.types.as_ref())
        .and_then(|t| t.first())
        .map(|t| t.as_ref())
        .or(info.and_then(|i| i.title.as_deref()))
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            InputError::finding(
                format!("{loc}.finding_info.types"),
                "missing: neither types nor title",
            )
        })?
        .to_owned();
    let title = info
        .and_then(|i| i.title.as_deref())
        .unwrap_or(&finding_type)
        .to_owned();
    let first_seen = info
        .and_then(|i| {
            i.first_seen_time_dt
                .or(i.first_seen_time)
                .or(i.created_time)
        })
        .map(|t| t.0);
    let updated_at = info
        .and_then(|i| i.modified_time_dt.or(i.modified_time))
        .or(f.time)
        .map(|t| t.0);
    let last_seen = info
        .and_then(|i| i.last_seen_time_dt.or(i.last_seen_time))
        .map(|t| t.0)
        .or(updated_at);
    let product_key = finding_key(product_uid, &id);
    let mut notes = Vec::new();
    let mut resources = f.resources.unwrap_or_default().into_iter();
    let (resource, tags) = match resources.next() {
        Some(r) => resource(r, &id, &mut notes),
        None => {
            notes.push("the finding names no resource: kept under its own id".to_owned());
            (
                Resource::Other(OtherResource {
                    resource_type: "unknown".to_owned(),
                    id: format!("finding/{id}"),
                }),
                BTreeMap::new(),
            )
        }
    };
    Ok(SecurityEvent {
        finding_key: product_key,
        finding_id: id,
        source: Source::Securityhub,
        product: product_name,
        finding_type,
        severity,
        title,
        account,
        region,
        resource,
        resource_tags: tags,
        first_seen: first_seen.or(last_seen),
        last_seen,
        updated_at,
        count: f.count.map_or(1, |c| c.0.max(1)),
        indicators: indicators(f.evidences.as_deref().unwrap_or_default()),
        sample: false,
        related_resources: Vec::new(),
        signal_keys: Vec::new(),
        notes,
        raw: raw.to_owned(),
    })
}

/// OCSF `severity_id`: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical, 6 Fatal; 0 Unknown
/// and 99 Other fall back to the `severity` caption.
fn severity(
    id: Option<u64>,
    caption: Option<&str>,
    loc: &str,
) -> Result<FindingSeverity, InputError> {
    let from_id = match id {
        Some(1 | 2) => Some(Severity::Low),
        Some(3) => Some(Severity::Medium),
        Some(4) => Some(Severity::High),
        Some(5 | 6) => Some(Severity::Critical),
        _ => None,
    };
    let label = match (from_id, caption) {
        (Some(l), _) => l,
        (None, Some(c)) => Severity::from_asff_label(&c.trim().to_ascii_uppercase())
            .or_else(|e| {
                if c.trim().eq_ignore_ascii_case("fatal") {
                    Ok(Severity::Critical)
                } else {
                    Err(e)
                }
            })
            .map_err(|m| InputError::finding(loc, m))?,
        (None, None) => {
            return Err(InputError::finding(
                loc,
                format!(
                    "severity_id {} is not 1-6 and no severity caption is given",
                    id.map_or_else(|| "missing".to_owned(), |i| i.to_string())
                ),
            ));
        }
    };
    #[allow(clippy::cast_precision_loss)]
    Ok(FindingSeverity {
        label,
        value: id.map(|i| i as f64),
        scale: SeverityScale::AsffLabel,
    })
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The last `/`- or `:`-separated segment (`arn:…:instance/i-1` → `i-1`).
fn tail(id: &str) -> &str {
    id.rsplit(['/', ':']).next().unwrap_or(id)
}

fn resource(
    r: OcsfResource<'_>,
    finding_id: &str,
    notes: &mut Vec<String>,
) -> (Resource, BTreeMap<String, String>) {
    let tags = r
        .tags
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| {
            Some((
                t.name?.into_owned(),
                t.value.map(Cow::into_owned).unwrap_or_default(),
            ))
        })
        .collect();
    let rtype = owned(r.resource_type.as_deref()).unwrap_or_else(|| "unknown".to_owned());
    let Some(uid) = owned(r.uid.as_deref()).or_else(|| owned(r.name.as_deref())) else {
        notes.push(format!(
            "resource of type {rtype} carries no uid or name: kept as `finding/{finding_id}`"
        ));
        return (
            Resource::Other(OtherResource {
                resource_type: rtype,
                id: format!("finding/{finding_id}"),
            }),
            tags,
        );
    };
    let arn = uid.starts_with("arn:").then(|| uid.clone());
    let resource = match rtype.as_str() {
        "AWS::EC2::Instance" | "AwsEc2Instance" if tail(&uid).starts_with("i-") => {
            Resource::Ec2Instance(Ec2Instance {
                instance_id: tail(&uid).to_owned(),
                vpc_id: None,
                subnet_id: None,
                network_interfaces: Vec::new(),
                instance_profile_arn: None,
                image_id: None,
                launch_time: None,
            })
        }
        "AWS::IAM::AccessKey" | "AwsIamAccessKey" => {
            let d = r.data.as_ref();
            let user = d.and_then(|d| owned(d.user_name.as_deref()));
            let access_key_id = d.and_then(|d| owned(d.access_key_id.as_deref()));
            let principal_id = d.and_then(|d| owned(d.principal_id.as_deref()));
            match (d.and_then(|d| d.user_type.as_deref()), user) {
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
                    id: uid.clone(),
                }),
            }
        }
        "AWS::IAM::User" | "AwsIamUser" => Resource::IamUser(IamUser {
            user_name: tail(&uid).to_owned(),
            access_key_id: None,
            principal_id: None,
        }),
        "AWS::IAM::Role" | "AwsIamRole" => Resource::IamRole(IamRole {
            role_name: tail(&uid).to_owned(),
            access_key_id: None,
            principal_id: None,
        }),
        "AWS::S3::Bucket" | "AwsS3Bucket" => Resource::S3Bucket(S3Bucket {
            bucket_name: uid.strip_prefix("arn:aws:s3:::").unwrap_or(&uid).to_owned(),
            arn,
        }),
        "AWS::EKS::Cluster" | "AwsEksCluster" => Resource::EksCluster(EksCluster {
            cluster_name: tail(&uid).to_owned(),
            arn,
            vpc_id: None,
        }),
        _ => Resource::Other(OtherResource {
            resource_type: rtype.clone(),
            id: uid.clone(),
        }),
    };
    (resource, tags)
}

fn indicators(evidences: &[Evidence<'_>]) -> Vec<Indicator> {
    let mut out = Vec::new();
    let mut push = |kind: IndicatorKind, v: Option<&str>| {
        if let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) {
            out.push(Indicator {
                kind,
                value: if kind == IndicatorKind::Domain {
                    v.to_ascii_lowercase()
                } else {
                    v.to_owned()
                },
                asn: None,
            });
        }
    };
    for e in evidences {
        for ep in [e.src_endpoint.as_ref(), e.dst_endpoint.as_ref()]
            .into_iter()
            .flatten()
        {
            push(IndicatorKind::Ip, ep.ip.as_deref());
            push(IndicatorKind::Domain, ep.domain.as_deref());
        }
        push(
            IndicatorKind::Domain,
            e.query.as_ref().and_then(|q| q.hostname.as_deref()),
        );
    }
    out.sort();
    out.dedup();
    out
}
