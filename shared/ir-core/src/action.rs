//! Contracts of the containment and evidence actions, and the rules they share.
//!
//! Every action takes a request naming the incident, the finding, the playbook step, the
//! resource and the mode (dry-run unless the request says enforce), and returns an
//! [`ActionReport`]: what it changed (or would change), before → after, and the record release
//! needs to restore exactly what was changed.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::config::{Mode, Protection};
use crate::event::Resource;

impl Default for Mode {
    /// Dry-run: an action that is not told to enforce only plans.
    fn default() -> Self {
        Mode::DryRun
    }
}

/// The input of isolate-instance, snapshot-volumes, terminate-instance, revoke-sessions,
/// deny-principal and disable-access-keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainmentRequest {
    pub incident_id: String,
    pub finding_id: String,
    /// The playbook step this action runs for.
    pub step_id: String,
    /// The resource as the finding described it.
    pub resource: Resource,
    /// Absent means dry-run.
    #[serde(default)]
    pub mode: Mode,
}

/// The input of collect-evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceRequest {
    pub incident_id: String,
    pub finding_id: String,
    pub step_id: String,
    pub resource: Resource,
    #[serde(default)]
    pub mode: Mode,
    pub account: String,
    pub region: String,
    /// The finding exactly as delivered.
    pub finding: Box<RawValue>,
    /// The activity window the finding reports; the CloudTrail window extends it by the
    /// configured margins.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// The input of release-containment: the records the containment actions returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRequest {
    pub incident_id: String,
    pub step_id: String,
    #[serde(default)]
    pub mode: Mode,
    pub records: Vec<ContainmentRecord>,
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Dry-run: the changes are the plan; nothing was changed.
    Planned,
    /// Enforce: the changes were made and verified.
    Applied,
    /// Enforce or dry-run: everything was already in place; nothing to change.
    AlreadyInPlace,
}

/// The state of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeStatus {
    Planned,
    Applied,
    /// Already as wanted: nothing done.
    Unchanged,
}

/// One attribute of one resource, before → after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The resource changed (`eni-0abc`, `role/web-prod`, `i-0abc`).
    pub target: String,
    /// What about it (`security-groups`, `inline-policy:ir-deny-inc-…`, `disable-api-termination`).
    pub attribute: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub status: ChangeStatus,
}

/// What release needs to restore exactly what a containment action changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ContainmentRecord {
    Isolation(IsolationRecord),
    InlinePolicy(InlinePolicyRecord),
    AccessKeys(AccessKeyRecord),
    /// Not restorable: release restores nothing of a terminated instance and says the suite
    /// terminated it.
    Termination(TerminationRecord),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniGroups {
    pub network_interface_id: String,
    /// The security groups the interface carried before isolation, in order.
    pub original_group_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeAttachment {
    pub device_name: String,
    pub volume_id: String,
    pub delete_on_termination: bool,
}

/// Instance attributes as they were before isolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAttributes {
    pub disable_api_termination: bool,
    pub disable_api_stop: bool,
    /// `stop` or `terminate`.
    pub shutdown_behavior: String,
    pub volumes: Vec<VolumeAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IsolationRecord {
    pub instance_id: String,
    pub vpc_id: String,
    pub conversion_group_id: String,
    pub isolation_group_id: String,
    /// Every interface of the instance with its original groups.
    pub interfaces: Vec<EniGroups>,
    pub original_attributes: InstanceAttributes,
    /// The tag keys isolation added to the instance.
    pub tags_added: Vec<String>,
    /// The keys-table item holding the instance for this incident (`isolation#<account>:
    /// <region>:<instance id>`): release checks it still names the incident, and deletes it.
    /// Absent in records written before isolation kept its originals there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    Role,
    User,
}

/// An IAM principal by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyPurpose {
    /// `Deny *` on `*`.
    DenyAll,
    /// `Deny *` on `*` for sessions issued before a time (`aws:TokenIssueTime`).
    RevokeSessions,
}

/// An inline policy a containment action put on a principal; release deletes exactly it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlinePolicyRecord {
    pub principal: Principal,
    pub policy_name: String,
    pub purpose: PolicyPurpose,
}

/// Access keys a containment action set Inactive; release re-activates exactly these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyRecord {
    pub user_name: String,
    pub deactivated: Vec<String>,
}

/// An instance terminate-instance terminated, and the evidence that backed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminationRecord {
    pub instance_id: String,
    /// A completed snapshot, taken for the incident, of every volume attached when it was
    /// terminated.
    pub snapshots: Vec<SnapshotRef>,
    /// Whether its termination protection (set by isolation) was on and lifted first.
    pub protection_lifted: bool,
}

/// One EBS snapshot taken for the evidence manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    pub snapshot_id: String,
    pub volume_id: String,
}

/// One object written to the evidence bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceObject {
    pub key: String,
    pub version_id: String,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: String,
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// The identity that wrote it (the function's caller ARN).
    pub collected_by: String,
    /// Where it was copied from, for copied objects (`s3://trail-bucket/key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The evidence manifest: every object collected, written last as its own object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceManifest {
    pub bucket: String,
    pub incident_id: String,
    pub objects: Vec<EvidenceObject>,
    pub manifest_key: String,
    pub manifest_version_id: String,
}

/// What an action produced besides changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Artifacts {
    Snapshots {
        instance_id: String,
        snapshots: Vec<SnapshotRef>,
    },
    Evidence(EvidenceManifest),
}

/// The output of every action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionReport {
    pub incident_id: String,
    pub step_id: String,
    /// The function that ran (`ir-isolate-instance`).
    pub action: String,
    pub mode: Mode,
    pub outcome: Outcome,
    pub changes: Vec<Change>,
    /// For release: what to restore. Absent when nothing was changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ContainmentRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Artifacts>,
    /// Things the operator should know (blast radius, what the action cannot do).
    #[serde(default)]
    pub notes: Vec<String>,
    /// AWS API calls the action made.
    pub aws_calls: u32,
}

/// The inline policy name of a containment action for an incident (≤ 128 characters).
pub fn policy_name(purpose: PolicyPurpose, incident_id: &str) -> String {
    match purpose {
        PolicyPurpose::DenyAll => format!("ir-deny-all-{incident_id}"),
        PolicyPurpose::RevokeSessions => format!("ir-revoke-sessions-{incident_id}"),
    }
}

/// The policy document of a containment action. `issued_before` is the revocation instant.
pub fn policy_document(purpose: PolicyPurpose, issued_before: OffsetDateTime) -> serde_json::Value {
    match purpose {
        PolicyPurpose::DenyAll => serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "IncidentResponseDenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"}]
        }),
        PolicyPurpose::RevokeSessions => {
            let t = issued_before
                .to_offset(time::UtcOffset::UTC)
                .replace_nanosecond(0)
                .unwrap_or(issued_before)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "IncidentResponseRevokeOlderSessions",
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": t}}
                }]
            })
        }
    }
}

/// The facts about a principal that decide whether it is protected.
#[derive(Debug, Clone, Default)]
pub struct PrincipalFacts<'a> {
    pub name: &'a str,
    pub arn: &'a str,
    /// IAM path (`/aws-service-role/`).
    pub path: &'a str,
}

/// Why a principal must not be touched, or `None`. Protected: principals listed in the config
/// (by ARN or name), the suite's own roles (exactly the ARNs of
/// [`Protection::suite_principals`]: same partition, account and role, whatever the path or
/// session), and AWS service-linked roles (`/aws-service-role/`), which cannot be changed anyway.
/// A tag or an IAM path protects nothing: anyone who can create or tag a role can give it those.
pub fn protection_reason(p: &PrincipalFacts<'_>, protection: &Protection) -> Option<String> {
    if protection
        .principals
        .iter()
        .any(|x| x == p.arn || x == p.name)
    {
        return Some(format!(
            "{} is a protected principal (config protection.principals)",
            p.arn
        ));
    }
    if let Some(target) = crate::approval::principal(p.arn)
        && protection
            .suite_principals
            .iter()
            .filter_map(|arn| crate::approval::principal(arn))
            .any(|suite| suite == target)
    {
        return Some(format!(
            "{} is one of the suite's own principals (IR_SUITE_PRINCIPALS)",
            p.arn
        ));
    }
    if p.path.starts_with("/aws-service-role/") || p.path.starts_with("/aws-reserved/") {
        return Some(format!(
            "{} is managed by AWS ({}) and cannot be contained here",
            p.arn, p.path
        ));
    }
    None
}

/// The identifying fields every action request carries.
pub trait ActionInput {
    fn incident_id(&self) -> &str;
    fn step_id(&self) -> &str;
    fn finding_id(&self) -> &str;
}

/// `ActionInput` for a request with `incident_id` and `step_id` fields; the finding id is the
/// expression given (a release request carries none: it reads empty).
#[macro_export]
macro_rules! action_input {
    ($request:ty, |$r:ident| $finding:expr) => {
        impl $crate::action::ActionInput for $request {
            fn incident_id(&self) -> &str {
                &self.incident_id
            }
            fn step_id(&self) -> &str {
                &self.step_id
            }
            fn finding_id(&self) -> &str {
                let $r = self;
                $finding
            }
        }
    };
}

/// A request whose enforcement the suite authorizes itself (`ir_actions::guard`): the mode it
/// asks for and the resource it names are the caller's word, checked against the suite's records.
pub trait Guarded: ActionInput + Clone {
    fn mode(&self) -> Mode;
    fn resource(&self) -> &Resource;
    /// The same request in another mode (the guard plans in dry-run before it enforces).
    fn with_mode(&self, mode: Mode) -> Self;
}

macro_rules! guarded {
    ($request:ty) => {
        impl Guarded for $request {
            fn mode(&self) -> Mode {
                self.mode
            }
            fn resource(&self) -> &Resource {
                &self.resource
            }
            fn with_mode(&self, mode: Mode) -> Self {
                Self {
                    mode,
                    ..self.clone()
                }
            }
        }
    };
}

guarded!(ContainmentRequest);
guarded!(EvidenceRequest);

/// The SHA-256 (hex) of a plan: each change's target, attribute, before and after, in order, as
/// canonical JSON. The status is left out (a plan's changes are `planned`, the same changes
/// read back are `unchanged` or `applied`), so the approved plan and the plan recomputed just
/// before enforcing compare equal exactly when they would make the same changes. The instants
/// the suite stamps when it acts — the revocation instant of its session-revoking policy
/// (`aws:TokenIssueTime`) and the isolation's `ir:quarantined-at` tag — are the moment of
/// enforcement by design, not part of what is approved: they are hashed as those words.
pub fn plan_hash(changes: &[Change]) -> String {
    use sha2::{Digest, Sha256};
    let plan: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "target": c.target,
                "attribute": c.attribute,
                "before": c.before,
                "after": if AT_ENFORCEMENT.contains(&c.attribute.as_str()) {
                    serde_json::Value::String(ENFORCEMENT_MOMENT.to_owned())
                } else {
                    at_enforcement(&c.after)
                },
            })
        })
        .collect();
    let text = crate::audit::canonical_json(&serde_json::Value::Array(plan));
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The attributes whose planned value is the moment the action enforces.
const AT_ENFORCEMENT: [&str; 1] = ["tag:ir:quarantined-at"];
const ENFORCEMENT_MOMENT: &str = "the moment of enforcement";

/// `v` with every `aws:TokenIssueTime` value replaced by the words "the moment of enforcement".
fn at_enforcement(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "aws:TokenIssueTime" {
                        Value::String(ENFORCEMENT_MOMENT.to_owned())
                    } else {
                        at_enforcement(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(at_enforcement).collect()),
        other => other.clone(),
    }
}

action_input!(ContainmentRequest, |r| &r.finding_id);
action_input!(EvidenceRequest, |r| &r.finding_id);
action_input!(ReleaseRequest, |_r| "");

#[cfg(test)]
mod tests {

    #[test]
    fn a_plan_hash_is_the_changes_not_their_status_or_the_revocation_instant() {
        let change = |after: serde_json::Value, status| Change {
            target: "role/web".into(),
            attribute: "inline-policy:ir-revoke-sessions-inc-1".into(),
            before: serde_json::Value::Null,
            after,
            status,
        };
        let doc = |t: &str| serde_json::json!({"Statement": [{"Condition": {"DateLessThan": {"aws:TokenIssueTime": t}}}]});
        let planned = plan_hash(&[change(doc("2026-12-04T10:00:00Z"), ChangeStatus::Planned)]);
        assert_eq!(planned.len(), 64);
        assert_eq!(
            planned,
            plan_hash(&[change(doc("2026-12-04T10:05:00Z"), ChangeStatus::Applied)])
        );
        let other = Change {
            target: "role/other".into(),
            ..change(doc("2026-12-04T10:00:00Z"), ChangeStatus::Planned)
        };
        assert_ne!(planned, plan_hash(&[other]));
        assert_ne!(planned, plan_hash(&[]));
        let stamp = |t: &str| Change {
            target: "i-0abc".into(),
            attribute: "tag:ir:quarantined-at".into(),
            before: serde_json::Value::Null,
            after: serde_json::json!(t),
            status: ChangeStatus::Planned,
        };
        assert_eq!(
            plan_hash(&[stamp("2026-12-04T10:00:00Z")]),
            plan_hash(&[stamp("2026-12-04T10:09:00Z")])
        );
    }

    use super::*;
    use time::macros::datetime;

    fn protection() -> Protection {
        Protection {
            principals: vec![
                "BreakGlassAdmin".into(),
                "arn:aws:iam::1:user/root-ops".into(),
            ],
            suite_principals: vec!["arn:aws:iam::111122223333:role/ir-suite/ir-isolate".into()],
        }
    }

    #[test]
    fn protected_principals_are_recognized() {
        let p = |name, arn, path| PrincipalFacts { name, arn, path };
        let cfg = protection();
        let protected = |f: PrincipalFacts<'_>| protection_reason(&f, &cfg).is_some();
        assert!(protected(p(
            "BreakGlassAdmin",
            "arn:aws:iam::1:role/BreakGlassAdmin",
            "/"
        )));
        assert!(protected(p(
            "root-ops",
            "arn:aws:iam::1:user/root-ops",
            "/"
        )));
        // The suite's role, by its ARN; a session of it is that role.
        assert!(protected(p(
            "ir-isolate",
            "arn:aws:iam::111122223333:role/ir-suite/ir-isolate",
            "/ir-suite/"
        )));
        assert!(protected(p(
            "ir-isolate",
            "arn:aws:sts::111122223333:assumed-role/ir-isolate/s",
            "/"
        )));
        assert!(protected(p(
            "AWSServiceRoleForX",
            "arn",
            "/aws-service-role/x/"
        )));
        // Not the suite's: another account's role of the same name, another role under the
        // suite's path, a user of the same name.
        for (name, arn, path) in [
            (
                "ir-isolate",
                "arn:aws:iam::444455556666:role/ir-suite/ir-isolate",
                "/ir-suite/",
            ),
            (
                "intruder",
                "arn:aws:iam::111122223333:role/ir-suite/intruder",
                "/ir-suite/",
            ),
            (
                "ir-isolate",
                "arn:aws:iam::111122223333:user/ir-isolate",
                "/",
            ),
            ("web-prod", "arn:aws:iam::1:role/web-prod", "/"),
        ] {
            assert!(!protected(p(name, arn, path)), "{arn}");
        }
    }

    #[test]
    fn revoke_policy_denies_sessions_issued_before_the_instant() {
        let doc = policy_document(
            PolicyPurpose::RevokeSessions,
            datetime!(2026-11-20 10:00:00.123 UTC),
        );
        assert_eq!(
            doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            "2026-11-20T10:00:00Z"
        );
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        assert!(policy_name(PolicyPurpose::DenyAll, "inc-0123456789abcdef0123").len() <= 128);
    }

    #[test]
    fn absent_mode_is_dry_run() {
        let r: ContainmentRequest = serde_json::from_value(serde_json::json!({
            "incidentId": "inc-0123456789abcdef0123", "findingId": "f", "stepId": "s",
            "resource": {"type": "iam-user", "userName": "u"}
        }))
        .unwrap();
        assert_eq!(r.mode, Mode::DryRun);
    }
}
