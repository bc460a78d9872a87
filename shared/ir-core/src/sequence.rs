//! GuardDuty attack sequences (Extended Threat Detection): the `AttackSequence:*` findings
//! (`AttackSequence:IAM/CompromisedCredentials`, `…:S3/CompromisedData`,
//! `…:EC2/CompromisedInstanceGroup`, `…:EKS/CompromisedCluster`, `…:ECS/CompromisedCluster`).
//!
//! Such a finding's `resource` is only `{"resourceType": "AttackSequence"}`; what it is about is
//! under `service.detection.sequence` (GuardDuty API reference: `Sequence`, `ResourceV2`,
//! `Signal`, `Indicator`, `NetworkEndpoint`): `resources[]` (`uid`, `name`, `accountId`,
//! `resourceType`, `region`, `tags`, `data`), `signals[]` (`uid`, `type`: `FINDING`,
//! `CLOUD_TRAIL`, `S3_DATA_EVENTS`, …; a `FINDING` signal's `uid` is the GuardDuty finding's
//! ARN), `sequenceIndicators[]` (`key`, `values`) and `endpoints[]` (`ip`, `domain`).
//!
//! The event made of it:
//! - its resource (the **primary**, on which the playbook runs) is the most containable of the
//!   resources in the finding's own account: an instance (in the finding's region), then an
//!   access key's user or role (or an IAM user or role), then a bucket, then a cluster, then
//!   anything else; the first of the best kind in the finding's order. None: the sequence is
//!   kept under its own id (`finding/<id>`), as any finding without an identified resource;
//! - every other resource is a related resource (at most [`MAX_RESOURCES`] in all, primary
//!   included: one DynamoDB transaction maps them all with the signals);
//! - the `FINDING` signals become the keys of those findings ([`crate::guardduty::finding_key`]
//!   in the sequence's account), at most [`MAX_SIGNAL_KEYS`];
//! - IP addresses and domains of the indicators and endpoints feed threat intelligence.
//!
//! Every part is outside input and optional: a part that cannot be read (a resource with no
//! identifier, a type the suite does not know, a field of the wrong type, an identifier too long
//! or malformed to act on) is left out or kept as `other`, and said in the event's notes. The
//! finding is never refused for its sequence.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::arn::Arn;
use crate::event::{
    Ec2Instance, EksCluster, IamRole, IamUser, Indicator, IndicatorKind, OtherResource,
    RelatedResource, Resource, ResourceKind, S3Bucket,
};
use crate::guardduty::{FindingArn, finding_key};

/// Resources kept of one sequence, the primary included. One ingest maps each of them
/// (`open#`) and each signal finding (`finding#`) in a single DynamoDB transaction, which holds
/// at most 100 items: 32 + 64 + the finding's own key and the incident fit.
pub const MAX_RESOURCES: usize = 32;
/// Signal findings kept of one sequence (GuardDuty sends at most 100 signals).
pub const MAX_SIGNAL_KEYS: usize = 64;
/// Threat-intel indicators kept of one sequence.
pub const MAX_INDICATORS: usize = 64;
/// Resources, signals, indicators and endpoints read of one sequence (GuardDuty's own maxima
/// are 400, 100, 400 and 400); the rest is noted and not read.
const MAX_READ: usize = 400;
/// The longest identifier kept (instance ids are 19 characters, bucket names 63, IAM names 64,
/// EKS cluster names 100, ARNs of those about 200): a longer one is not a resource to act on.
const MAX_ID_LEN: usize = 256;
/// Tags kept per resource (AWS allows 50), and their key and value lengths.
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

type Str<'a> = Option<Cow<'a, str>>;

/// What a sequence contributes to its event.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    pub resource: Resource,
    pub tags: BTreeMap<String, String>,
    pub related: Vec<RelatedResource>,
    pub signal_keys: Vec<String>,
    pub indicators: Vec<Indicator>,
}

/// The finding the sequence belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub finding_id: &'a str,
    pub account: &'a str,
    pub region: &'a str,
}

#[derive(Deserialize)]
struct Detection<'a> {
    #[serde(borrow, default)]
    sequence: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sequence<'a> {
    #[serde(borrow, default)]
    uid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resources: Option<&'a RawValue>,
    #[serde(borrow, default)]
    signals: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sequence_indicators: Option<&'a RawValue>,
    #[serde(borrow, default)]
    endpoints: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceV2<'a> {
    #[serde(borrow, default)]
    uid: Str<'a>,
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default)]
    resource_type: Str<'a>,
    #[serde(borrow, default)]
    region: Str<'a>,
    #[serde(borrow, default)]
    tags: Option<Vec<Tag<'a>>>,
    #[serde(borrow, default)]
    data: Option<ResourceData<'a>>,
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
struct ResourceData<'a> {
    #[serde(borrow, default)]
    ec2_instance: Option<Ec2InstanceData<'a>>,
    #[serde(borrow, default)]
    access_key: Option<AccessKeyData<'a>>,
}

#[derive(Deserialize)]
struct Ec2InstanceData<'a> {
    /// The API reference spells it with a capital `I`, unlike its siblings.
    #[serde(
        rename = "IamInstanceProfile",
        alias = "iamInstanceProfile",
        borrow,
        default
    )]
    iam_instance_profile: Option<InstanceProfile<'a>>,
}

#[derive(Deserialize)]
struct InstanceProfile<'a> {
    #[serde(borrow, default)]
    arn: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessKeyData<'a> {
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    user_name: Str<'a>,
    #[serde(borrow, default)]
    user_type: Str<'a>,
}

#[derive(Deserialize)]
struct Signal<'a> {
    #[serde(borrow, default)]
    uid: Str<'a>,
    #[serde(rename = "type", borrow, default)]
    kind: Str<'a>,
}

#[derive(Deserialize)]
struct SequenceIndicator<'a> {
    #[serde(borrow, default)]
    key: Str<'a>,
    #[serde(borrow, default)]
    values: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow, default)]
    ip: Str<'a>,
    #[serde(borrow, default)]
    domain: Str<'a>,
}

/// `text` with control characters shown escaped and cut to `max` characters, for a note.
fn shown(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Reads one part of the sequence as a JSON array; anything else is noted and read as empty.
fn list<'a>(raw: Option<&'a RawValue>, at: &str, notes: &mut Vec<String>) -> Vec<&'a RawValue> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.get() == "null" {
        return Vec::new();
    }
    match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
        Ok(mut v) => {
            if v.len() > MAX_READ {
                notes.push(format!(
                    "{at} has {} entries: the first {MAX_READ} are read",
                    v.len()
                ));
                v.truncate(MAX_READ);
            }
            v
        }
        Err(e) => {
            notes.push(format!("{at} is not a list ({e}): left out"));
            Vec::new()
        }
    }
}

fn owned(s: Str<'_>) -> Option<String> {
    s.map(|c| c.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A 12-digit account id.
fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-")
        .is_some_and(|h| (8..=17).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// An IAM user or role name: 1 to 64 of `[A-Za-z0-9+=,.@_-]`.
fn is_iam_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A bucket name: 3 to 63 of `[a-z0-9.-]`.
fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// An EKS cluster name: 1 to 100 of `[A-Za-z0-9_-]`.
fn is_cluster_name(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A bare GuardDuty finding id: letters and digits, at most 64.
fn is_finding_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An identifier usable in a key and in the notes: no control character, at most
/// [`MAX_ID_LEN`].
fn is_plain_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

/// The kinds a `resourceType` names: the API's enum (`EC2_INSTANCE`), CloudFormation's
/// (`AWS::EC2::Instance`) and GuardDuty's older names (`Instance`), in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instance,
    AccessKey,
    User,
    Role,
    Bucket,
    Cluster,
    Other,
}

fn kind_of(resource_type: &str) -> Kind {
    match resource_type.to_ascii_uppercase().as_str() {
        "EC2_INSTANCE" | "AWS::EC2::INSTANCE" | "INSTANCE" => Kind::Instance,
        "ACCESS_KEY" | "AWS::IAM::ACCESSKEY" | "ACCESSKEY" => Kind::AccessKey,
        "IAM_USER" | "AWS::IAM::USER" | "IAMUSER" => Kind::User,
        "IAM_ROLE" | "AWS::IAM::ROLE" | "IAMROLE" => Kind::Role,
        "S3_BUCKET" | "AWS::S3::BUCKET" | "S3BUCKET" => Kind::Bucket,
        "EKS_CLUSTER" | "AWS::EKS::CLUSTER" | "EKSCLUSTER" => Kind::Cluster,
        _ => Kind::Other,
    }
}

/// The identifier an ARN names for a kind (`arn:…:instance/i-…` → `i-…`), or the text itself
/// when it is not an ARN.
fn id_from(text: &str, kind: Kind) -> Option<String> {
    let Some(arn) = Arn::parse(text) else {
        return Some(text.to_owned());
    };
    let id = match kind {
        Kind::Instance => arn.resource.strip_prefix("instance/"),
        Kind::Bucket if arn.service == "s3" && !arn.resource.contains('/') => Some(arn.resource),
        Kind::Cluster => arn.resource.strip_prefix("cluster/"),
        Kind::User => arn.user().map(|p| p.name),
        Kind::Role => arn.role().map(|p| p.name),
        Kind::AccessKey | Kind::Bucket | Kind::Other => None,
    };
    id.map(str::to_owned)
}

/// One resource of the sequence, mapped to the suite's kinds. `None`: left out (noted).
fn resource_of(
    r: ResourceV2<'_>,
    at: &str,
    ctx: Context<'_>,
    notes: &mut Vec<String>,
) -> Option<RelatedResource> {
    let resource_type = owned(r.resource_type).unwrap_or_else(|| "unknown".to_owned());
    let resource_type = if resource_type.len() <= 64 && is_plain_id(&resource_type) {
        resource_type
    } else {
        notes.push(format!(
            "{at}.resourceType `{}` is not a resource type: read as unknown",
            shown(&resource_type, 64)
        ));
        "unknown".to_owned()
    };
    let kind = kind_of(&resource_type);
    let uid = owned(r.uid);
    let name = owned(r.name);
    let account = match owned(r.account_id) {
        Some(a) if is_account(&a) => a,
        Some(a) => {
            notes.push(format!(
                "{at}.accountId `{}` is not an account id: the finding's account {} is assumed",
                shown(&a, 32),
                ctx.account
            ));
            ctx.account.to_owned()
        }
        None => ctx.account.to_owned(),
    };
    let region = owned(r.region).filter(|g| is_region(g));
    let mut tags = BTreeMap::new();
    let given = r.tags.unwrap_or_default();
    if given.len() > MAX_TAGS {
        notes.push(format!(
            "{at}.tags has {} tags: the first {MAX_TAGS} are kept",
            given.len()
        ));
    }
    for t in given.into_iter().take(MAX_TAGS) {
        let (Some(k), v) = (
            owned(t.key),
            t.value.map(Cow::into_owned).unwrap_or_default(),
        ) else {
            continue;
        };
        if k.len() <= MAX_TAG_KEY && v.len() <= MAX_TAG_VALUE {
            tags.insert(k, v);
        }
    }
    let data = r.data;
    // The identifier: `uid` (an id or an ARN), else `name`.
    let Some(ident) = uid.clone().or_else(|| name.clone()) else {
        notes.push(format!(
            "{at} ({resource_type}) carries no uid or name: left out"
        ));
        return None;
    };
    if !is_plain_id(&ident) {
        notes.push(format!(
            "{at} ({resource_type}) identifier `{}` is not one the suite can act on: left out",
            shown(&ident, 64)
        ));
        return None;
    }
    let other = |id: String| {
        Resource::Other(OtherResource {
            resource_type: resource_type.clone(),
            id,
        })
    };
    let malformed = |notes: &mut Vec<String>, what: &str, id: &str| {
        notes.push(format!(
            "{at} ({resource_type}): `{}` is not {what}: kept as other",
            shown(id, 64)
        ));
    };
    let resource = match kind {
        Kind::Instance => match id_from(&ident, kind).filter(|id| is_instance_id(id)) {
            Some(instance_id) => Resource::Ec2Instance(Ec2Instance {
                instance_id,
                vpc_id: None,
                subnet_id: None,
                network_interfaces: Vec::new(),
                instance_profile_arn: data
                    .and_then(|d| d.ec2_instance)
                    .and_then(|e| e.iam_instance_profile)
                    .and_then(|p| owned(p.arn))
                    .filter(|a| {
                        a.len() <= MAX_ID_LEN
                            && Arn::parse(a).is_some_and(|a| a.instance_profile().is_some())
                    }),
                image_id: None,
                launch_time: None,
            }),
            None => {
                malformed(notes, "an instance id", &ident);
                other(ident)
            }
        },
        Kind::AccessKey => {
            let key = data.and_then(|d| d.access_key);
            let access_key_id = uid
                .as_deref()
                .and_then(|u| id_from(u, kind))
                .or_else(|| name.clone())
                .filter(|k| is_access_key_id(k));
            let (user_name, user_type, principal_id) = match key {
                Some(k) => (
                    owned(k.user_name),
                    owned(k.user_type),
                    owned(k.principal_id),
                ),
                None => (None, None, None),
            };
            let principal_id = principal_id.filter(|p| is_plain_id(p));
            match (user_name.filter(|n| is_iam_name(n)), user_type.as_deref()) {
                (Some(user_name), Some("IAMUser")) => Resource::IamUser(IamUser {
                    user_name,
                    access_key_id,
                    principal_id,
                }),
                (Some(role_name), Some("AssumedRole")) => Resource::IamRole(IamRole {
                    role_name,
                    access_key_id,
                    principal_id,
                }),
                _ => {
                    notes.push(format!(
                        "{at} ({resource_type}) names no IAM user or assumed role (data.accessKey): kept as other"
                    ));
                    Resource::Other(OtherResource {
                        resource_type: format!(
                            "AccessKey/{}",
                            user_type
                                .filter(|t| t.len() <= 32 && is_plain_id(t))
                                .unwrap_or_else(|| "unknown".to_owned())
                        ),
                        id: ident,
                    })
                }
            }
        }
        Kind::User => match id_from(&ident, kind).filter(|n| is_iam_name(n)) {
            Some(user_name) => Resource::IamUser(IamUser {
                user_name,
                access_key_id: None,
                principal_id: None,
            }),
            None => {
                malformed(notes, "an IAM user name", &ident);
                other(ident)
            }
        },
        Kind::Role => match id_from(&ident, kind).filter(|n| is_iam_name(n)) {
            Some(role_name) => Resource::IamRole(IamRole {
                role_name,
                access_key_id: None,
                principal_id: None,
            }),
            None => {
                malformed(notes, "an IAM role name", &ident);
                other(ident)
            }
        },
        Kind::Bucket => {
            let from_name = name.clone().filter(|n| is_bucket_name(n));
            match from_name.or_else(|| id_from(&ident, kind).filter(|n| is_bucket_name(n))) {
                Some(bucket_name) => Resource::S3Bucket(S3Bucket {
                    arn: uid.filter(|u| Arn::parse(u).is_some()),
                    bucket_name,
                }),
                None => {
                    malformed(notes, "a bucket name", &ident);
                    other(ident)
                }
            }
        }
        Kind::Cluster => {
            let from_name = name.clone().filter(|n| is_cluster_name(n));
            match from_name.or_else(|| id_from(&ident, kind).filter(|n| is_cluster_name(n))) {
                Some(cluster_name) => Resource::EksCluster(EksCluster {
                    arn: uid.filter(|u| Arn::parse(u).is_some()),
                    cluster_name,
                    vpc_id: None,
                }),
                None => {
                    malformed(notes, "an EKS cluster name", &ident);
                    other(ident)
                }
            }
        }
        Kind::Other => other(ident),
    };
    Some(RelatedResource {
        account,
        region,
        resource,
        tags,
    })
}

/// How containable a resource is, lower first; `None`: it cannot be the primary (another
/// account's, or an instance in another region than the finding's: the playbook acts in the
/// finding's account and region).
fn rank(r: &RelatedResource, ctx: Context<'_>) -> Option<u8> {
    if r.account != ctx.account {
        return None;
    }
    Some(match r.resource.kind() {
        ResourceKind::Ec2Instance => {
            if r.region.as_deref().is_some_and(|g| g != ctx.region) {
                return None;
            }
            0
        }
        ResourceKind::IamUser | ResourceKind::IamRole => 1,
        ResourceKind::S3Bucket => 2,
        ResourceKind::EksCluster => 3,
        ResourceKind::Other => 4,
    })
}

/// The GuardDuty finding key a `FINDING` signal's `uid` names: the finding ARN's region and id
/// (or a bare id, in the sequence's region), in the sequence's account as every GuardDuty
/// finding is keyed on the resource's account.
fn signal_key(uid: &str, ctx: Context<'_>) -> Option<String> {
    match FindingArn::parse(uid) {
        Some(arn) if is_finding_id(arn.finding_id) && is_region(arn.region) => {
            Some(finding_key(ctx.account, arn.region, arn.finding_id))
        }
        Some(_) => None,
        None => is_finding_id(uid).then(|| finding_key(ctx.account, ctx.region, uid)),
    }
}

fn push_indicator(out: &mut Vec<Indicator>, kind: IndicatorKind, value: &str) -> bool {
    let value = value.trim();
    let value = match kind {
        IndicatorKind::Ip => match value.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => return false,
        },
        IndicatorKind::Domain => {
            let d = value.trim_end_matches('.').to_ascii_lowercase();
            let ok = (1..=253).contains(&d.len())
                && d.contains('.')
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
            if !ok {
                return false;
            }
            d
        }
    };
    if out.len() < MAX_INDICATORS {
        out.push(Indicator {
            kind,
            value,
            asn: None,
        });
    }
    true
}

/// Reads the sequence of an attack-sequence finding (`detection`: its `service.detection`).
pub(crate) fn read(
    detection: Option<&RawValue>,
    ctx: Context<'_>,
    notes: &mut Vec<String>,
) -> Read {
    let sequence = match detection.map(|d| serde_json::from_str::<Detection<'_>>(d.get())) {
        Some(Ok(Detection { sequence: Some(s) })) if s.get() != "null" => {
            match serde_json::from_str::<Sequence<'_>>(s.get()) {
                Ok(s) => Some(s),
                Err(e) => {
                    notes.push(format!(
                        "detail.service.detection.sequence is not readable ({e}): no resource or signal read"
                    ));
                    None
                }
            }
        }
        Some(Err(e)) => {
            notes.push(format!(
                "detail.service.detection is not readable ({e}): no resource or signal read"
            ));
            None
        }
        _ => {
            notes.push(
                "attack sequence without detail.service.detection.sequence: no resource or signal read"
                    .to_owned(),
            );
            None
        }
    };
    let Some(sequence) = sequence else {
        return placeholder(ctx, notes, Vec::new(), Vec::new(), Vec::new());
    };
    const AT: &str = "detail.service.detection.sequence";
    let uid = sequence
        .uid
        .and_then(|u| serde_json::from_str::<String>(u.get()).ok())
        .filter(|u| is_plain_id(u));

    // Resources, in the finding's order, without repeats.
    let mut resources: Vec<RelatedResource> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in list(sequence.resources, &format!("{AT}.resources"), notes)
        .into_iter()
        .enumerate()
    {
        let at = format!("{AT}.resources[{i}]");
        match serde_json::from_str::<ResourceV2<'_>>(raw.get()) {
            Ok(r) => {
                if let Some(r) = resource_of(r, &at, ctx, notes)
                    && seen.insert(r.key())
                {
                    resources.push(r);
                }
            }
            Err(e) => notes.push(format!("{at} is not readable ({e}): left out")),
        }
    }

    // Signals: the GuardDuty findings' keys; the other kinds counted.
    let own = finding_key(ctx.account, ctx.region, ctx.finding_id);
    let mut signal_keys: Vec<String> = Vec::new();
    let mut other_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreadable = 0usize;
    let mut dropped = 0usize;
    let signals = list(sequence.signals, &format!("{AT}.signals"), notes);
    let total_signals = signals.len();
    for (i, raw) in signals.into_iter().enumerate() {
        let Ok(s) = serde_json::from_str::<Signal<'_>>(raw.get()) else {
            unreadable += 1;
            continue;
        };
        let uid = owned(s.uid);
        let kind = owned(s.kind);
        let is_finding = match kind.as_deref() {
            Some(k) => k.eq_ignore_ascii_case("FINDING"),
            None => uid
                .as_deref()
                .is_some_and(|u| FindingArn::parse(u).is_some()),
        };
        if !is_finding {
            let k = kind
                .filter(|k| k.len() <= 32 && is_plain_id(k))
                .unwrap_or_else(|| "unknown".to_owned());
            *other_kinds.entry(k).or_default() += 1;
            continue;
        }
        match uid.as_deref().and_then(|u| signal_key(u, ctx)) {
            Some(key) if key == own || signal_keys.contains(&key) => {}
            Some(key) if signal_keys.len() < MAX_SIGNAL_KEYS => signal_keys.push(key),
            Some(_) => dropped += 1,
            None => notes.push(format!(
                "{AT}.signals[{i}] (FINDING) uid `{}` is not a GuardDuty finding ARN or id: not correlated",
                shown(uid.as_deref().unwrap_or(""), 64)
            )),
        }
    }
    if unreadable > 0 {
        notes.push(format!(
            "{AT}.signals: {unreadable} signal(s) not readable: left out"
        ));
    }
    if dropped > 0 {
        notes.push(format!(
            "{AT}.signals: {} GuardDuty findings, the first {MAX_SIGNAL_KEYS} are correlated ({dropped} left out)",
            signal_keys.len() + dropped
        ));
    }

    // Indicators: remote IPs and domains, for threat intelligence.
    let mut indicators = Vec::new();
    for raw in list(
        sequence.sequence_indicators,
        &format!("{AT}.sequenceIndicators"),
        notes,
    ) {
        let Ok(ind) = serde_json::from_str::<SequenceIndicator<'_>>(raw.get()) else {
            continue;
        };
        let kind = match ind.key.as_deref() {
            Some("MALICIOUS_IP" | "TOR_IP" | "CRYPTOMINING_IP") => IndicatorKind::Ip,
            Some("MALICIOUS_DOMAIN" | "CRYPTOMINING_DOMAIN") => IndicatorKind::Domain,
            _ => continue,
        };
        // Values are strings; some keys carry structures, which are not indicators.
        for v in ind.values.unwrap_or_default() {
            if let Ok(text) = serde_json::from_str::<Cow<'_, str>>(v.get()) {
                push_indicator(&mut indicators, kind, &text);
            }
        }
    }
    for raw in list(sequence.endpoints, &format!("{AT}.endpoints"), notes) {
        let Ok(e) = serde_json::from_str::<Endpoint<'_>>(raw.get()) else {
            continue;
        };
        if let Some(ip) = e.ip.as_deref() {
            push_indicator(&mut indicators, IndicatorKind::Ip, ip);
        }
        if let Some(d) = e.domain.as_deref() {
            push_indicator(&mut indicators, IndicatorKind::Domain, d);
        }
    }
    indicators.sort();
    indicators.dedup();

    let others: Vec<String> = other_kinds
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    notes.push(format!(
        "attack sequence {}: {} resource(s), {total_signals} signal(s): {} GuardDuty finding(s) correlated{}",
        shown(uid.as_deref().unwrap_or("(no uid)"), 64),
        resources.len(),
        signal_keys.len(),
        if others.is_empty() {
            String::new()
        } else {
            format!(", other activity: {}", others.join(", "))
        }
    ));

    // The primary: the most containable resource of the finding's account.
    let primary = resources
        .iter()
        .enumerate()
        .filter_map(|(i, r)| rank(r, ctx).map(|k| (k, i)))
        .min()
        .map(|(_, i)| i);
    let Some(p) = primary else {
        return placeholder(ctx, notes, resources, signal_keys, indicators);
    };
    let chosen = resources.remove(p);
    let related = cap(resources, MAX_RESOURCES - 1, notes);
    Read {
        resource: chosen.resource,
        tags: chosen.tags,
        related,
        signal_keys,
        indicators,
    }
}

/// Keeps the first `max` related resources, noting the rest.
fn cap(
    mut related: Vec<RelatedResource>,
    max: usize,
    notes: &mut Vec<String>,
) -> Vec<RelatedResource> {
    if related.len() > max {
        notes.push(format!(
            "the sequence names {} more resources: the first {max} are kept ({} left out)",
            related.len(),
            related.len() - max
        ));
        related.truncate(max);
    }
    related
}

/// No resource of the finding's account to act on: the sequence is kept under its own id, its
/// resources (other accounts', instances of other regions) related.
fn placeholder(
    ctx: Context<'_>,
    notes: &mut Vec<String>,
    resources: Vec<RelatedResource>,
    signal_keys: Vec<String>,
    indicators: Vec<Indicator>,
) -> Read {
    notes.push(format!(
        "no resource of the attack sequence can be acted on in account {} and {}: kept as `finding/{}`",
        ctx.account, ctx.region, ctx.finding_id
    ));
    Read {
        resource: Resource::Other(OtherResource {
            resource_type: "AttackSequence".to_owned(),
            id: format!("finding/{}", ctx.finding_id),
        }),
        tags: BTreeMap::new(),
        related: cap(resources, MAX_RESOURCES - 1, notes),
        signal_keys,
        indicators,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SecurityEvent;
    use serde_json::{Value, json};

    const ACCOUNT: &str = "111122223333";
    const SAMPLE: &str =
        include_str!("../../../events/guardduty-attack-sequence-iam-compromised-credentials.json");

    /// An attack-sequence finding whose `service.detection` is `detection`.
    fn with_detection(detection: Value) -> SecurityEvent {
        let envelope = json!({
            "source": "aws.guardduty",
            "detail-type": "GuardDuty Finding",
            "account": ACCOUNT,
            "region": "us-east-1",
            "time": "2026-11-20T08:05:16Z",
            "detail": {
                "id": "a7d4c1e8b2f94e6a8c3d5b0f1e2a4c69",
                "type": "AttackSequence:IAM/CompromisedCredentials",
                "severity": 9,
                "accountId": ACCOUNT,
                "region": "us-east-1",
                "resource": {"resourceType": "AttackSequence"},
                "service": {"detection": detection, "count": 1}
            }
        });
        let mut n = crate::normalize(envelope.to_string().as_bytes()).unwrap();
        assert_eq!(n.events.len(), 1);
        n.events.remove(0)
    }

    fn with_resources(resources: Value) -> SecurityEvent {
        with_detection(json!({"sequence": {"uid": "s-1", "resources": resources, "signals": []}}))
    }

    fn instance(id: &str) -> Value {
        json!({"uid": id, "resourceType": "EC2_INSTANCE", "accountId": ACCOUNT, "region": "us-east-1"})
    }

    fn access_key(user: &str, user_type: &str) -> Value {
        json!({"uid": "AKIAEXAMPLEKEY000009", "resourceType": "ACCESS_KEY", "accountId": ACCOUNT,
               "data": {"accessKey": {"userName": user, "userType": user_type, "principalId": "AIDAX"}}})
    }

    fn bucket(name: &str) -> Value {
        json!({"uid": format!("arn:aws:s3:::{name}"), "name": name, "resourceType": "S3_BUCKET", "accountId": ACCOUNT})
    }

    fn cluster(name: &str) -> Value {
        json!({"uid": format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/{name}"), "resourceType": "EKS_CLUSTER"})
    }

    fn ids(e: &SecurityEvent) -> (String, Vec<String>) {
        (
            format!("{} {}", e.resource.kind(), e.resource.id()),
            e.related_resources
                .iter()
                .map(|r| format!("{} {}", r.resource.kind(), r.resource.id()))
                .collect(),
        )
    }

    #[test]
    fn the_sample_is_one_event_on_its_instance_naming_the_key_and_the_bucket() {
        let mut n = crate::normalize(SAMPLE.as_bytes()).unwrap();
        let e = n.events.remove(0);
        assert_eq!(e.finding_type, "AttackSequence:IAM/CompromisedCredentials");
        assert_eq!(e.severity.label, crate::Severity::Critical);
        let Resource::Ec2Instance(i) = &e.resource else {
            panic!("{:?}", e.resource)
        };
        assert_eq!(i.instance_id, "i-0a1b2c3d4e5f60001");
        assert_eq!(
            i.instance_profile_arn.as_deref(),
            Some("arn:aws:iam::111122223333:instance-profile/web-prod-instance-profile")
        );
        assert_eq!(
            e.resource_tags.get("owner").map(String::as_str),
            Some("team-web")
        );
        assert_eq!(
            e.related_resources
                .iter()
                .map(RelatedResource::key)
                .collect::<Vec<_>>(),
            [
                "111122223333/iam-user/ci-deployer",
                "111122223333/s3-bucket/acme-customer-exports"
            ]
        );
        let Resource::IamUser(u) = &e.related_resources[0].resource else {
            panic!()
        };
        assert_eq!(u.access_key_id.as_deref(), Some("AKIAEXAMPLEKEY000001"));
        assert_eq!(
            e.related_resources[1]
                .tags
                .get("data-classification")
                .map(String::as_str),
            Some("restricted")
        );
        // The two FINDING signals, keyed as their own deliveries are; CloudTrail and S3 data
        // event signals are activity, not findings.
        assert_eq!(
            e.signal_keys,
            [
                "guardduty:111122223333:us-east-1:e2c4a6f8b0d14357a9c2e4f6b8d0a1c3",
                "guardduty:111122223333:us-east-1:5c7e0a3b9d2f41e8a6b4c1d7e9f02a83"
            ]
        );
        for file in [
            "guardduty-tor-ip-caller-sequence-signal.json",
            "guardduty-recon-malicious-ip-caller.json",
        ] {
            let text = std::fs::read(format!(
                "{}/../../events/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let signal = crate::normalize(&text).unwrap().events.remove(0);
            assert!(e.signal_keys.contains(&signal.finding_key), "{file}");
        }
        assert!(
            e.notes
                .iter()
                .any(|n| n.contains("CLOUD_TRAIL x2") && n.contains("S3_DATA_EVENTS x1")),
            "{:?}",
            e.notes
        );
        let values: Vec<&str> = e.indicators.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(values, ["192.0.2.45", "198.51.100.201"]);
        assert_eq!(e.count, 1);
        assert!(e.first_seen.is_some() && e.last_seen.is_some());
    }

    #[test]
    fn the_primary_is_the_most_containable_resource_of_the_findings_account() {
        let all = [
            bucket("b-one"),
            access_key("web", "AssumedRole"),
            cluster("c1"),
            instance("i-0123456789abcdef0"),
        ];
        let e = with_resources(json!(all));
        assert_eq!(ids(&e).0, "ec2-instance i-0123456789abcdef0");
        assert_eq!(
            ids(&e).1,
            ["s3-bucket b-one", "iam-role web", "eks-cluster c1"]
        );
        let e = with_resources(json!([
            bucket("b-one"),
            cluster("c1"),
            access_key("ci", "IAMUser")
        ]));
        assert_eq!(ids(&e).0, "iam-user ci");
        let e = with_resources(json!([cluster("c1"), bucket("b-one")]));
        assert_eq!(ids(&e).0, "s3-bucket b-one");
        let e = with_resources(json!([
            json!({"uid": "ecs-1", "resourceType": "ECS_CLUSTER"}),
            cluster("c1")
        ]));
        assert_eq!(ids(&e).0, "eks-cluster c1");
        // An instance of another region, another account's: never the primary (the playbook
        // acts in the finding's account and region); still related.
        let mut far = instance("i-0123456789abcdef0");
        far["region"] = json!("eu-west-1");
        let mut foreign = instance("i-0fedcba9876543210");
        foreign["accountId"] = json!("444455556666");
        let e = with_resources(json!([far, foreign, bucket("b-one")]));
        assert_eq!(ids(&e).0, "s3-bucket b-one");
        assert_eq!(
            ids(&e).1,
            [
                "ec2-instance i-0123456789abcdef0",
                "ec2-instance i-0fedcba9876543210"
            ]
        );
        assert_eq!(e.related_resources[1].account, "444455556666");
        // CloudFormation-style types, and ARNs as uid, read the same.
        let e = with_resources(
            json!([{"uid": format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0a1b2c3d"), "resourceType": "AWS::EC2::Instance"}]),
        );
        assert_eq!(ids(&e).0, "ec2-instance i-0a1b2c3d");
        let e = with_resources(
            json!([{"uid": format!("arn:aws:iam::{ACCOUNT}:role/ops/deployer"), "resourceType": "AWS::IAM::Role"}]),
        );
        assert_eq!(ids(&e).0, "iam-role deployer");
    }

    #[test]
    fn an_incomplete_sequence_is_triaged_with_what_is_there() {
        // No detection at all, or a sequence of the wrong type: kept under the finding's id.
        for detection in [
            Value::Null,
            json!("nope"),
            json!({"sequence": 7}),
            json!({"sequence": {"resources": {}}}),
        ] {
            let e = with_detection(detection.clone());
            assert_eq!(e.resource.kind(), ResourceKind::Other, "{detection}");
            assert_eq!(e.resource.id(), "finding/a7d4c1e8b2f94e6a8c3d5b0f1e2a4c69");
            assert!(e.related_resources.is_empty() && e.signal_keys.is_empty());
            assert!(!e.notes.is_empty(), "{detection}");
        }
        // A resource with no identifier, one unreadable, one of an unknown type, an instance
        // id that is no instance id, an access key that names no user: the rest is read.
        let e = with_resources(json!([
            {"resourceType": "EC2_INSTANCE"},
            {"uid": 12, "resourceType": "S3_BUCKET"},
            {"uid": "arn:aws:ecs:us-east-1:111122223333:cluster/prod", "resourceType": "ECS_CLUSTER"},
            {"uid": "i-not-hex!", "resourceType": "EC2_INSTANCE"},
            {"uid": "AKIAEXAMPLEKEY000009", "resourceType": "ACCESS_KEY"},
            bucket("kept-bucket"),
        ]));
        assert_eq!(ids(&e).0, "s3-bucket kept-bucket");
        assert_eq!(
            ids(&e).1,
            [
                "other arn:aws:ecs:us-east-1:111122223333:cluster/prod",
                "other i-not-hex!",
                "other AKIAEXAMPLEKEY000009"
            ]
        );
        let notes = e.notes.join("\n");
        for said in [
            "resources[0] (EC2_INSTANCE) carries no uid or name",
            "resources[1] is not readable",
            "`i-not-hex!` is not an instance id",
            "names no IAM user",
        ] {
            assert!(notes.contains(said), "{said}: {notes}");
        }
    }

    #[test]
    fn resources_and_signals_are_capped_and_the_rest_noted() {
        let many: Vec<Value> = (0..100).map(|i| instance(&format!("i-{i:017x}"))).collect();
        let e = with_resources(json!(many));
        assert_eq!(e.related_resources.len(), MAX_RESOURCES - 1);
        assert_eq!(ids(&e).0, "ec2-instance i-00000000000000000");
        assert!(
            e.notes.iter().any(|n| n.contains("68 left out")),
            "{:?}",
            e.notes
        );
        let too_many: Vec<Value> = (0..(MAX_READ + 5))
            .map(|i| bucket(&format!("b-{i}")))
            .collect();
        let e = with_resources(json!(too_many));
        assert!(
            e.notes
                .iter()
                .any(|n| n.contains(&format!("{} entries", MAX_READ + 5)))
        );

        let signals: Vec<Value> = (0..100)
            .map(|i| json!({"uid": format!("arn:aws:guardduty:us-east-1:{ACCOUNT}:detector/d1/finding/f{i:031x}"), "type": "FINDING"}))
            .collect();
        let e = with_detection(json!({"sequence": {"signals": signals}}));
        assert_eq!(e.signal_keys.len(), MAX_SIGNAL_KEYS);
        assert!(
            e.notes.iter().any(|n| n.contains("(36 left out)")),
            "{:?}",
            e.notes
        );
    }

    #[test]
    fn signal_findings_are_keyed_as_their_own_deliveries_are() {
        let own = "arn:aws:guardduty:us-east-1:111122223333:detector/d1/finding/a7d4c1e8b2f94e6a8c3d5b0f1e2a4c69";
        let e = with_detection(json!({"sequence": {"signals": [
            // A delegated administrator's ARN: keyed in the sequence's (the resource's) account.
            {"uid": "arn:aws:guardduty:us-east-1:999988887777:detector/d9/finding/abc123", "type": "FINDING"},
            // A bare finding id, in the sequence's region; the type in another case.
            {"uid": "def456", "type": "finding"},
            // No type, but a finding ARN.
            {"uid": "arn:aws:guardduty:us-west-2:111122223333:detector/d1/finding/0aa1"},
            // The sequence itself, a repeat, activity, garbage.
            {"uid": own, "type": "FINDING"},
            {"uid": "def456", "type": "FINDING"},
            {"uid": "e1", "type": "CLOUD_TRAIL", "name": "iam:CreateUser"},
            {"uid": "not a finding!", "type": "FINDING"},
            {"uid": 5, "type": "FINDING"},
        ]}}));
        assert_eq!(
            e.signal_keys,
            [
                "guardduty:111122223333:us-east-1:abc123",
                "guardduty:111122223333:us-east-1:def456",
                "guardduty:111122223333:us-west-2:0aa1",
            ]
        );
        let notes = e.notes.join("\n");
        assert!(
            notes.contains("`not a finding!` is not a GuardDuty finding ARN"),
            "{notes}"
        );
        assert!(notes.contains("1 signal(s) not readable"), "{notes}");
        assert!(notes.contains("CLOUD_TRAIL x1"), "{notes}");
    }

    #[test]
    fn hostile_identifiers_are_left_out_never_acted_on() {
        let long = "i-".to_owned() + &"a".repeat(MAX_ID_LEN);
        let e = with_resources(json!([
            {"uid": long, "resourceType": "EC2_INSTANCE"},
            {"uid": "bad\u{7}id", "resourceType": "S3_BUCKET"},
            {"uid": "UPPER_CASE_BUCKET", "resourceType": "S3_BUCKET"},
            {"uid": "i-0123456789abcdef0", "resourceType": "EC2_INSTANCE", "accountId": "12; drop", "region": "US EAST"},
            {"uid": "x", "resourceType": "T".repeat(200)},
        ]));
        assert_eq!(ids(&e).0, "ec2-instance i-0123456789abcdef0");
        assert_eq!(ids(&e).1, ["other UPPER_CASE_BUCKET", "other x"]);
        assert_eq!(
            e.related_resources[1].resource,
            Resource::Other(OtherResource {
                resource_type: "unknown".into(),
                id: "x".into()
            })
        );
        let notes = e.notes.join("\n");
        assert!(
            notes.contains("is not an account id: the finding's account 111122223333 is assumed"),
            "{notes}"
        );
        assert!(notes.contains("not one the suite can act on"), "{notes}");
        assert!(notes.contains("bad\\u{7}id"), "{notes}");
    }

    #[test]
    fn the_plan_covers_each_resource_by_its_kind() {
        let n = crate::normalize(SAMPLE.as_bytes()).unwrap();
        let engine = crate::Engine::embedded().unwrap();
        let en = engine.enrich(&n.events, 0);
        let d = engine
            .decide(
                "inc-0123456789abcdef0123",
                &n.events,
                &en,
                time::OffsetDateTime::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(d.playbook.id, "immediate-isolation");
        fn steps(p: &crate::playbook::ResourcePlan) -> Vec<&str> {
            p.steps.iter().map(|s| s.id.as_str()).collect()
        }
        let primary: Vec<&str> = d.playbook.steps.iter().map(|s| s.id.as_str()).collect();
        assert!(
            primary.contains(&"isolate-instance") && !primary.contains(&"deny-principal"),
            "{primary:?}"
        );
        assert_eq!(d.resource_plans.len(), 2);
        assert_eq!(
            d.resource_plans[0].resource_key,
            "111122223333/iam-user/ci-deployer"
        );
        assert_eq!(
            steps(&d.resource_plans[0]),
            [
                "collect-evidence",
                "revoke-credentials",
                "disable-access-keys",
                "deny-principal",
                "notify-channel"
            ]
        );
        assert_eq!(
            d.resource_plans[0].steps[2].target,
            "access key AKIAEXAMPLEKEY000001 of user ci-deployer"
        );
        assert_eq!(d.resource_plans[1].kind, ResourceKind::S3Bucket);
        assert_eq!(
            steps(&d.resource_plans[1]),
            ["collect-evidence", "notify-channel"]
        );
        // The plan the state machines run is the primary's only.
        assert!(d.plan().values().all(|s| !s.target.contains("ci-deployer")));
        // Stored and read back; a decision recorded before resource plans reads as none.
        let wire = serde_json::to_value(&d).unwrap();
        let read: crate::Decision = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(read.resource_plans, d.resource_plans);
        let mut old = wire;
        old.as_object_mut().unwrap().remove("resourcePlans");
        let read: crate::Decision = serde_json::from_value(old.clone()).unwrap();
        assert!(read.resource_plans.is_empty());
        assert!(
            serde_json::to_value(&read)
                .unwrap()
                .get("resourcePlans")
                .is_none()
        );
    }
}
