//! The audit vocabulary: every record the suite writes, as one typed [`AuditEvent`].
//!
//! A record stores its action as text (`opened`, `approved`, `action:ir-isolate-instance`, …)
//! and its detail as a JSON object; the hash is over the canonical JSON of both. Writers build an
//! [`AuditEvent`] and store [`AuditEvent::action`] and [`AuditEvent::detail`]; readers get the
//! event back with [`AuditEvent::read`] (or [`AuditRecord::event`](super::AuditRecord::event)).
//! For every record the suite has written, reading then writing gives the same action and the
//! same canonical detail, byte for byte (`tests/recorded_chains.rs` holds chains recorded before
//! the vocabulary was typed): the shapes here are the stored shapes, and changing one changes
//! what new records hash to.
//!
//! An action this version does not know is read as [`AuditEvent::Other`] with its detail as it
//! is, so that a reader never loses a record; a known action whose detail does not have its
//! shape is an [`EventError`], which readers report rather than skip.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use thiserror::Error;
use time::{Date, OffsetDateTime};

use crate::action::{Change, ChangeStatus, Outcome, SnapshotRef};
use crate::approval::Verdict;
use crate::clocks::RegulatoryDeadline;
use crate::config::{Mode, OnExhausted};
use crate::event::{ResourceKind, Source};
use crate::incident::Status;
use crate::playbook::{NotApplicable, PlannedStep, ResourcePlan};
use crate::review::{ActionItem, ItemStatus, Section};
use crate::score::ScoreBreakdown;
use crate::severity::Severity;
use crate::sla::SlaDecision;
use crate::triage::EscalationLevel;

/// The stored action names.
pub mod actions {
    pub const OPENED: &str = "opened";
    pub const REPEATED: &str = "repeated";
    pub const ATTACHED: &str = "attached";
    pub const TRIAGE_STARTED: &str = "triage-started";
    pub const TRIAGED: &str = "triaged";
    pub const TRIAGE_FAILED: &str = "triage-failed";
    /// The prefix of a step result's action: `action:<function>`.
    pub const STEP_PREFIX: &str = "action:";
    pub const STEP_FAILED: &str = "step-failed";
    pub const STEP_NOT_APPROVED: &str = "step-not-approved";
    pub const PLAYBOOK_FINISHED: &str = "playbook-finished";
    pub const PLAYBOOK_STOPPED: &str = "playbook-stopped";
    pub const RETRY_STARTED: &str = "retry-started";
    pub const PLAYBOOK_QUEUED: &str = "playbook-queued";
    pub const PLAYBOOK_DEQUEUED: &str = "playbook-dequeued";
    pub const APPROVAL_REQUESTED: &str = "approval-requested";
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";
    pub const APPROVAL_REFUSED: &str = "approval-refused";
    pub const APPROVAL_COUNTED: &str = "approval-counted";
    pub const APPROVAL_NOT_DELIVERED: &str = "approval-not-delivered";
    pub const RESOLVED: &str = "resolved";
    pub const RELEASE_FAILED: &str = "release-failed";
    pub const CLOCK_ALERT: &str = "clock-alert";
    pub const REVIEW_OPENED: &str = "review-opened";
    pub const REVIEW_WRITTEN: &str = "review-written";
    pub const REVIEW_ITEM_ADDED: &str = "review-item-added";
    pub const REVIEW_ITEM_CLOSED: &str = "review-item-closed";
    pub const REVIEW_CLOSED: &str = "review-closed";
}

/// One audit event: what happened and its detail.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditEvent {
    /// `opened`: a finding opened an incident (ingest).
    Opened(Opened),
    /// `repeated`: the same finding again (ingest).
    Repeated(Repeated),
    /// `attached`: another finding on the incident's resource (ingest).
    Attached(Attached),
    /// `triage-started`: the incident's triage execution (ingest).
    TriageStarted(TriageStarted),
    /// `triaged`: the triage decision (recorder).
    Triaged(Box<Triaged>),
    /// `triage-failed` (recorder; `step` is `triage`).
    TriageFailed(StepFailure),
    /// `action:<function>`: a step's report (recorder; a release's under the operator).
    Step(StepAudit),
    /// `step-failed` (recorder).
    StepFailed(StepFailure),
    /// `step-not-approved`: the gate was rejected or ran out of levels (recorder).
    StepNotApproved(StepFailure),
    /// `playbook-finished` (recorder).
    PlaybookFinished(PlaybookFinished),
    /// `playbook-stopped`: a step set to stop on failure failed (recorder).
    PlaybookStopped(PlaybookStopped),
    /// `retry-started`: a responder re-ran a failed step (under the operator).
    RetryStarted(RetryStarted),
    /// `playbook-queued`: the playbook waits for a slot (recorder).
    PlaybookQueued(PlaybookQueued),
    /// `playbook-dequeued`: the queued playbook got its slot and starts (recorder).
    PlaybookDequeued(PlaybookDequeued),
    /// `approval-requested` (the gate, under its own identity).
    ApprovalRequested(ApprovalRequested),
    /// `approved` (the decision, under the approver).
    Approved(Decided),
    /// `rejected` (the decision, under the approver).
    Rejected(Decided),
    /// `approval-refused`: a decision refused (not an approver, not at this level, the
    /// two-person rule, no authenticated caller).
    ApprovalRefused(ApprovalRefused),
    /// `approval-counted`: one person's approval of a step that needs more (under the approver).
    ApprovalCounted(Decided),
    /// `approval-not-delivered`: decided, but the waiting execution did not get it.
    ApprovalNotDelivered(ApprovalNotDelivered),
    /// `resolved`: released and resolved (under the operator).
    Resolved(Resolved),
    /// `release-failed` (under the operator).
    ReleaseFailed(ReleaseFailed),
    /// `clock-alert`: a regulatory deadline's reminder or breach, or the response SLA's breach
    /// (the clocks checker; announced to the channels that must know).
    ClockAlert(ClockAlert),
    /// `review-opened`: the post-incident review scheduled, the incident in postmortem (under
    /// the operator).
    ReviewOpened(ReviewOpened),
    /// `review-written`: sections of the review written (under the operator).
    ReviewWritten(ReviewWritten),
    /// `review-item-added`: an action item (under the operator).
    ReviewItemAdded(ReviewItemAdded),
    /// `review-item-closed`: an action item done or dropped (under the operator).
    ReviewItemClosed(ReviewItemClosed),
    /// `review-closed`: every section written, the review final (under the operator).
    ReviewClosed(ReviewClosed),
    /// An action this version does not know, kept as it was stored.
    Other { action: String, detail: Value },
}

/// Why an event cannot be read or written.
#[derive(Debug, Error, PartialEq)]
pub enum EventError {
    /// A known action whose detail does not have that action's shape.
    #[error("audit `{action}` detail is not readable: {why}")]
    Unreadable { action: String, why: String },
    /// The detail could not be turned into JSON.
    #[error("audit `{action}` detail cannot be written: {why}")]
    Unwritable { action: String, why: String },
}

/// A resource as ingest records name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub id: String,
}

/// `opened`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Opened {
    pub finding_id: String,
    pub finding_key: String,
    pub source: Source,
    pub product: String,
    #[serde(rename = "type")]
    pub finding_type: String,
    pub title: String,
    pub severity: Severity,
    pub account: String,
    pub region: String,
    pub resource: ResourceRef,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_seen: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
    pub count: u64,
    pub sample: bool,
    /// What the normalizer noticed about the finding (an ARN naming another account than the
    /// resource's, a part left out): absent on records written before notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The other resources the finding names (an attack sequence's), `account/kind/id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
}

/// `repeated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repeated {
    pub finding_id: String,
    pub count: u64,
    pub severity: Severity,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// `attached`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attached {
    pub finding_id: String,
    pub finding_key: String,
    pub source: Source,
    #[serde(rename = "type")]
    pub finding_type: String,
    pub title: String,
    pub severity: Severity,
    /// The incident's severity after the attach.
    pub incident_severity: Severity,
    pub resource: ResourceRef,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_seen: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
    /// What the normalizer noticed about the finding (see [`Opened::notes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The other resources the finding names (see [`Opened::related`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
}

/// `triage-started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriageStarted {
    pub execution_arn: String,
    pub state_machine_arn: String,
    /// The incident's revision this triage decides (0: the opening finding; each later finding
    /// that raised the severity adds one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A planned step as `triaged` records it (the plan without the summaries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriagedStep {
    pub id: String,
    pub action: String,
    pub function: String,
    pub mode: Mode,
    pub requires_approval: bool,
    pub destructive: bool,
    pub target: String,
}

impl From<&PlannedStep> for TriagedStep {
    fn from(s: &PlannedStep) -> TriagedStep {
        TriagedStep {
            id: s.id.clone(),
            action: s.action.clone(),
            function: s.function.clone(),
            mode: s.mode,
            requires_approval: s.requires_approval,
            destructive: s.destructive,
            target: s.target.clone(),
        }
    }
}

/// `triaged`: severity, score breakdown, playbook, steps and gates, SLA, escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Triaged {
    pub severity: Severity,
    pub finding_severity: Severity,
    pub score: ScoreBreakdown,
    pub playbook: String,
    pub trigger: String,
    pub mode: Mode,
    pub samples_only: bool,
    pub steps: Vec<TriagedStep>,
    /// The ids of the steps behind an approval gate.
    pub gates: Vec<String>,
    pub not_applicable: Vec<NotApplicable>,
    pub sla: SlaDecision,
    pub escalation: Vec<EscalationLevel>,
    pub on_exhausted: OnExhausted,
    /// The status the triage moved the incident to.
    pub status: Status,
    /// The incident's revision this triage decided (see [`TriageStarted::revision`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u32,
    /// Why the playbook was not started (superseded by a later revision, or already started
    /// by an earlier one); absent when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_started: Option<String>,
    /// Steps of the plan an earlier revision already applied: recorded as done, not run again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// The regulatory deadlines the incident carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<RegulatoryDeadline>,
    /// The plan for each other resource of the incident (planned, never run by the playbook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_plans: Vec<ResourcePlan>,
}

impl Triaged {
    /// The decision as audited.
    pub fn of(d: &crate::Decision) -> Triaged {
        Triaged {
            severity: d.severity,
            finding_severity: d.finding_severity,
            score: d.score,
            playbook: d.playbook.id.clone(),
            trigger: d.playbook.trigger.clone(),
            mode: d.playbook.mode,
            samples_only: d.samples_only,
            steps: d.playbook.steps.iter().map(TriagedStep::from).collect(),
            gates: d.approval_gates().map(|s| s.id.clone()).collect(),
            not_applicable: d.playbook.not_applicable.clone(),
            sla: d.sla.clone(),
            escalation: d.escalation.clone(),
            on_exhausted: d.on_exhausted,
            status: Status::Containment,
            revision: d.revision,
            not_started: None,
            done: d
                .playbook
                .steps
                .iter()
                .filter(|s| s.done.is_some())
                .map(|s| s.id.clone())
                .collect(),
            deadlines: d.deadlines.clone(),
            resource_plans: d.resource_plans.clone(),
        }
    }
}

/// A failure or a refusal of a step (`step-failed`, `step-not-approved`, `triage-failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: String,
    /// The Step Functions error name (`Rejected`, `States.Timeout`, a stable error name).
    pub error: String,
    pub cause: String,
}

/// What a step produced besides changes: snapshots in full, evidence by its manifest (which
/// lists every object with its SHA-256 in the locked bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepArtifacts {
    Snapshots(SnapshotArtifacts),
    Evidence(EvidenceArtifacts),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotArtifacts {
    pub instance_id: String,
    pub snapshots: Vec<SnapshotRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceArtifacts {
    pub bucket: String,
    pub manifest_key: String,
    pub manifest_version_id: String,
    /// How many objects the manifest lists, as the step reported it.
    pub objects: usize,
}

impl From<&crate::action::Artifacts> for StepArtifacts {
    fn from(a: &crate::action::Artifacts) -> StepArtifacts {
        match a {
            crate::action::Artifacts::Snapshots {
                instance_id,
                snapshots,
            } => StepArtifacts::Snapshots(SnapshotArtifacts {
                instance_id: instance_id.clone(),
                snapshots: snapshots.clone(),
            }),
            crate::action::Artifacts::Evidence(m) => StepArtifacts::Evidence(EvidenceArtifacts {
                bucket: m.bucket.clone(),
                manifest_key: m.manifest_key.clone(),
                manifest_version_id: m.manifest_version_id.clone(),
                objects: m.objects.len(),
            }),
        }
    }
}

/// `action:<function>`: a step's report, every change before → after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAudit {
    pub step: String,
    /// The function that ran (`ir-isolate-instance`); also the record's action suffix.
    pub function: String,
    pub outcome: Outcome,
    pub mode: Mode,
    pub changes: Vec<Change>,
    /// Whether the step left a record release restores from.
    #[serde(default)]
    pub record: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<StepArtifacts>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub aws_calls: u32,
}

impl StepAudit {
    /// A report as audited.
    pub fn of(report: &crate::action::ActionReport) -> StepAudit {
        StepAudit {
            step: report.step_id.clone(),
            function: report.action.clone(),
            outcome: report.outcome,
            mode: report.mode,
            changes: report.changes.clone(),
            record: report.record.is_some(),
            artifacts: report.artifacts.as_ref().map(StepArtifacts::from),
            notes: report.notes.clone(),
            aws_calls: report.aws_calls,
        }
    }

    /// The changes that changed something (planned or applied).
    pub fn changed(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.status != ChangeStatus::Unchanged)
            .count()
    }
}

/// How a playbook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybookEnd {
    /// A destructive step was applied (or found in place) in enforce mode.
    Contained {
        destructive_applied: Vec<String>,
        contained_at: Option<OffsetDateTime>,
        /// Detection to containment.
        mttc_seconds: Option<i64>,
    },
    /// Nothing was contained, and why.
    NotContained {
        why: String,
        /// Destructive steps that ran in dry-run.
        planned_only: Vec<String>,
    },
}

/// `playbook-finished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookFinished {
    pub playbook: String,
    pub mode: Mode,
    pub status: Status,
    /// Destructive steps that failed or were not approved and never ran.
    pub not_applied: Vec<String>,
    pub end: PlaybookEnd,
}

impl PlaybookFinished {
    pub fn contained(&self) -> bool {
        matches!(self.end, PlaybookEnd::Contained { .. })
    }
}

/// `playbook-stopped`: the step that failed, its error, and what the playbook had changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookStopped {
    pub playbook: String,
    pub step: String,
    /// The failure as the incident shows it (`error: cause`).
    pub error: String,
    /// Destructive steps applied (or already in place) in enforce mode before the stop: what is
    /// changed on the resource now.
    pub applied: Vec<String>,
    /// The steps of the plan that never ran because of the stop.
    pub not_run: Vec<String>,
    pub status: Status,
}

/// `retry-started`: who re-ran which step, in which execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStarted {
    pub step: String,
    /// The responder (the caller identity STS returned).
    pub by: String,
    pub reason: String,
    pub execution_arn: String,
    /// The steps the retry runs (the failed one and those the stop left unrun).
    pub steps: Vec<String>,
}

/// `playbook-queued`: `max` playbooks ran, so this one waits at `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookQueued {
    pub playbook: String,
    pub execution: String,
    pub position: usize,
    pub running: usize,
    pub max: u32,
}

/// `playbook-dequeued`: a slot freed and the queued playbook starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookDequeued {
    pub playbook: String,
    pub execution: String,
    pub waited_seconds: i64,
}

/// A time as the other details write it (RFC 3339, `null` when unknown).
#[derive(Serialize)]
struct Stamp<'a>(#[serde(with = "time::serde::rfc3339::option")] &'a Option<OffsetDateTime>);

impl Serialize for PlaybookFinished {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("playbook", &self.playbook)?;
        m.serialize_entry("mode", &self.mode)?;
        match &self.end {
            PlaybookEnd::Contained {
                destructive_applied,
                contained_at,
                mttc_seconds,
            } => {
                m.serialize_entry("contained", &true)?;
                m.serialize_entry("destructiveApplied", destructive_applied)?;
                m.serialize_entry("notApplied", &self.not_applied)?;
                m.serialize_entry("status", &self.status)?;
                m.serialize_entry("containedAt", &Stamp(contained_at))?;
                m.serialize_entry("mttcSeconds", mttc_seconds)?;
            }
            PlaybookEnd::NotContained { why, planned_only } => {
                m.serialize_entry("contained", &false)?;
                m.serialize_entry("why", why)?;
                m.serialize_entry("plannedOnly", planned_only)?;
                m.serialize_entry("notApplied", &self.not_applied)?;
                m.serialize_entry("status", &self.status)?;
            }
        }
        m.end()
    }
}

/// `playbook-finished` as stored: the fields of both ends.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaybookFinishedWire {
    playbook: String,
    mode: Mode,
    status: Status,
    contained: bool,
    #[serde(default)]
    not_applied: Vec<String>,
    #[serde(default)]
    destructive_applied: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    contained_at: Option<OffsetDateTime>,
    #[serde(default)]
    mttc_seconds: Option<i64>,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    planned_only: Vec<String>,
}

impl<'de> Deserialize<'de> for PlaybookFinished {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = PlaybookFinishedWire::deserialize(d)?;
        let end = if w.contained {
            PlaybookEnd::Contained {
                destructive_applied: w.destructive_applied,
                contained_at: w.contained_at,
                mttc_seconds: w.mttc_seconds,
            }
        } else {
            PlaybookEnd::NotContained {
                why: w
                    .why
                    .ok_or_else(|| serde::de::Error::missing_field("why"))?,
                planned_only: w.planned_only,
            }
        };
        Ok(PlaybookFinished {
            playbook: w.playbook,
            mode: w.mode,
            status: w.status,
            not_applied: w.not_applied,
            end,
        })
    }
}

/// `approval-requested`: the plan to approve, who is asked, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequested {
    pub step: String,
    /// The escalation level, 0 first.
    pub level: u32,
    /// Who is asked at this level (the escalation matrix's role).
    pub role: String,
    pub timeout_seconds: u64,
    pub plan: PlannedStep,
    /// The identity the gate ran as.
    pub requester: String,
    /// The SHA-256 of the action's planned changes the approver is asked to approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
}

/// The verdict as the audit words it (`approved`, `rejected`).
mod verdict_word {
    use super::Verdict;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let word = String::deserialize(d)?;
        [Verdict::Approve, Verdict::Reject]
            .into_iter()
            .find(|v| v.as_str() == word)
            .ok_or_else(|| serde::de::Error::custom(format!("`{word}` is not a verdict")))
    }
}

/// `approved` / `rejected`: a decision delivered to the waiting execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub step: String,
    pub level: u32,
    /// The caller ARN AWS authenticated.
    pub approver: String,
    /// The approver as the policy matched it (`role/…`, `user/…`).
    pub principal: String,
    pub reason: String,
    /// The identity that requested the approval.
    pub requester: String,
    /// The SHA-256 of the plan that was decided.
    #[serde(rename = "planHash", default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// The person who decided (`approval::Person`); absent on records written before people
    /// were counted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub person: String,
    /// The people who have approved so far (this one included), for a step that needs more
    /// than one approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// How many different people the step needs (absent: one).
    #[serde(
        rename = "approvalsRequired",
        default,
        skip_serializing_if = "at_most_one"
    )]
    pub approvals_required: u32,
}

fn at_most_one(n: &u32) -> bool {
    *n <= 1
}

/// `approval-refused`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRefused {
    pub step: String,
    #[serde(with = "verdict_word")]
    pub decision: Verdict,
    pub why: String,
    pub requester: String,
}

/// `approval-not-delivered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalNotDelivered {
    pub step: String,
    pub level: u32,
    #[serde(with = "verdict_word")]
    pub decision: Verdict,
    pub approver: String,
    pub reason: String,
    pub error: String,
    /// The request reads expired again (the waiting task is gone), so escalation may go on.
    pub decision_voided: bool,
}

/// `resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    pub step: String,
    pub by: String,
    pub reason: String,
    /// The status the incident was resolved from.
    pub from: Status,
    /// How many changes the release restored.
    pub released: usize,
    /// What the release could not restore because its resource was gone, resolved anyway with
    /// the operator's explicit consent (`ir release --force`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_restored: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub open_seconds: Option<i64>,
}

/// `release-failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseFailed {
    pub step: String,
    pub by: String,
    /// The stable error name.
    pub error: String,
    pub cause: String,
    /// What the release restored before it failed.
    pub restored_before_the_failure: Option<StepAudit>,
}

/// `clock-alert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockAlert {
    /// `<clock>#<reminder>` (`gdpr#left-50`, `gdpr#breached`, `sla#breached`): one alert of each
    /// per incident.
    pub step: String,
    /// `sla`, or the regulatory regime's id.
    pub clock: String,
    /// What the clock is, in words (the regime's name, `response SLA (within 1 hour)`).
    pub name: String,
    /// `left-50`, `left-10`, `breached`.
    pub reminder: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

/// The response SLA's clock id in a [`ClockAlert`].
pub const SLA_CLOCK: &str = "sla";

/// `review-opened`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewOpened {
    pub by: String,
    /// The day the review is held.
    #[serde(with = "crate::review::iso_date")]
    pub review_date: Date,
    /// The day the incident was resolved.
    #[serde(with = "crate::review::iso_date")]
    pub resolved_on: Date,
    /// The review date was named by the operator (`--date`), not computed from
    /// `post_incident_review.after_days`.
    pub date_given: bool,
    /// The status the incident was moved from (`resolved`) and to (`postmortem`).
    pub from: Status,
    pub status: Status,
}

/// One section as written: its name, the SHA-256 of its text and its length (the text itself
/// is on the incident).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSection {
    pub section: Section,
    pub sha256: String,
    pub chars: usize,
}

impl WrittenSection {
    /// `text` written in `section`.
    pub fn of(section: Section, text: &str) -> WrittenSection {
        use sha2::{Digest, Sha256};
        WrittenSection {
            section,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            chars: text.chars().count(),
        }
    }
}

/// `review-written`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewWritten {
    pub by: String,
    /// The sections whose text changed.
    pub sections: Vec<WrittenSection>,
}

/// `review-item-added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItemAdded {
    pub by: String,
    pub item: ActionItem,
}

/// `review-item-closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItemClosed {
    pub by: String,
    pub id: String,
    /// `done` or `dropped`.
    pub status: ItemStatus,
    /// What closing it says (done how, or why dropped).
    #[serde(default)]
    pub resolution: Option<String>,
}

/// `review-closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewClosed {
    pub by: String,
    /// The items still open, tracked on after the review (their ids).
    pub open_items: Vec<String>,
    /// How many items the review holds.
    pub items: usize,
}

fn read<T: DeserializeOwned>(action: &str, detail: &Value) -> Result<T, EventError> {
    T::deserialize(detail).map_err(|e| EventError::Unreadable {
        action: action.to_owned(),
        why: e.to_string(),
    })
}

impl AuditEvent {
    /// An event outside the vocabulary (tests, and records a later version reads back).
    pub fn other(action: impl Into<String>, detail: Value) -> AuditEvent {
        AuditEvent::Other {
            action: action.into(),
            detail,
        }
    }

    /// `approved` or `rejected`, as the verdict says.
    pub fn decided(verdict: Verdict, decided: Decided) -> AuditEvent {
        match verdict {
            Verdict::Approve => AuditEvent::Approved(decided),
            Verdict::Reject => AuditEvent::Rejected(decided),
        }
    }

    /// The stored action.
    pub fn action(&self) -> Cow<'_, str> {
        use actions::*;
        Cow::Borrowed(match self {
            AuditEvent::Opened(_) => OPENED,
            AuditEvent::Repeated(_) => REPEATED,
            AuditEvent::Attached(_) => ATTACHED,
            AuditEvent::TriageStarted(_) => TRIAGE_STARTED,
            AuditEvent::Triaged(_) => TRIAGED,
            AuditEvent::TriageFailed(_) => TRIAGE_FAILED,
            AuditEvent::Step(s) => return Cow::Owned(format!("{STEP_PREFIX}{}", s.function)),
            AuditEvent::StepFailed(_) => STEP_FAILED,
            AuditEvent::StepNotApproved(_) => STEP_NOT_APPROVED,
            AuditEvent::PlaybookFinished(_) => PLAYBOOK_FINISHED,
            AuditEvent::PlaybookStopped(_) => PLAYBOOK_STOPPED,
            AuditEvent::RetryStarted(_) => RETRY_STARTED,
            AuditEvent::PlaybookQueued(_) => PLAYBOOK_QUEUED,
            AuditEvent::PlaybookDequeued(_) => PLAYBOOK_DEQUEUED,
            AuditEvent::ApprovalRequested(_) => APPROVAL_REQUESTED,
            AuditEvent::Approved(_) => APPROVED,
            AuditEvent::Rejected(_) => REJECTED,
            AuditEvent::ApprovalRefused(_) => APPROVAL_REFUSED,
            AuditEvent::ApprovalCounted(_) => APPROVAL_COUNTED,
            AuditEvent::ApprovalNotDelivered(_) => APPROVAL_NOT_DELIVERED,
            AuditEvent::Resolved(_) => RESOLVED,
            AuditEvent::ReleaseFailed(_) => RELEASE_FAILED,
            AuditEvent::ClockAlert(_) => CLOCK_ALERT,
            AuditEvent::ReviewOpened(_) => REVIEW_OPENED,
            AuditEvent::ReviewWritten(_) => REVIEW_WRITTEN,
            AuditEvent::ReviewItemAdded(_) => REVIEW_ITEM_ADDED,
            AuditEvent::ReviewItemClosed(_) => REVIEW_ITEM_CLOSED,
            AuditEvent::ReviewClosed(_) => REVIEW_CLOSED,
            AuditEvent::Other { action, .. } => return Cow::Borrowed(action.as_str()),
        })
    }

    /// The stored detail (a JSON object; hashed as canonical JSON).
    pub fn detail(&self) -> Result<Value, EventError> {
        let written = match self {
            AuditEvent::Opened(x) => serde_json::to_value(x),
            AuditEvent::Repeated(x) => serde_json::to_value(x),
            AuditEvent::Attached(x) => serde_json::to_value(x),
            AuditEvent::TriageStarted(x) => serde_json::to_value(x),
            AuditEvent::Triaged(x) => serde_json::to_value(x),
            AuditEvent::TriageFailed(x)
            | AuditEvent::StepFailed(x)
            | AuditEvent::StepNotApproved(x) => serde_json::to_value(x),
            AuditEvent::Step(x) => serde_json::to_value(x),
            AuditEvent::PlaybookFinished(x) => serde_json::to_value(x),
            AuditEvent::PlaybookStopped(x) => serde_json::to_value(x),
            AuditEvent::RetryStarted(x) => serde_json::to_value(x),
            AuditEvent::PlaybookQueued(x) => serde_json::to_value(x),
            AuditEvent::PlaybookDequeued(x) => serde_json::to_value(x),
            AuditEvent::ApprovalRequested(x) => serde_json::to_value(x),
            AuditEvent::Approved(x) | AuditEvent::Rejected(x) | AuditEvent::ApprovalCounted(x) => {
                serde_json::to_value(x)
            }
            AuditEvent::ApprovalRefused(x) => serde_json::to_value(x),
            AuditEvent::ApprovalNotDelivered(x) => serde_json::to_value(x),
            AuditEvent::Resolved(x) => serde_json::to_value(x),
            AuditEvent::ReleaseFailed(x) => serde_json::to_value(x),
            AuditEvent::ClockAlert(x) => serde_json::to_value(x),
            AuditEvent::ReviewOpened(x) => serde_json::to_value(x),
            AuditEvent::ReviewWritten(x) => serde_json::to_value(x),
            AuditEvent::ReviewItemAdded(x) => serde_json::to_value(x),
            AuditEvent::ReviewItemClosed(x) => serde_json::to_value(x),
            AuditEvent::ReviewClosed(x) => serde_json::to_value(x),
            AuditEvent::Other { detail, .. } => Ok(detail.clone()),
        };
        written.map_err(|e| EventError::Unwritable {
            action: self.action().into_owned(),
            why: e.to_string(),
        })
    }

    /// The event a stored action and detail say.
    pub fn read(action: &str, detail: &Value) -> Result<AuditEvent, EventError> {
        use actions::*;
        if let Some(function) = action.strip_prefix(STEP_PREFIX) {
            let step: StepAudit = read(action, detail)?;
            if step.function != function {
                return Err(EventError::Unreadable {
                    action: action.to_owned(),
                    why: format!("the detail names function `{}`", step.function),
                });
            }
            return Ok(AuditEvent::Step(step));
        }
        Ok(match action {
            OPENED => AuditEvent::Opened(read(action, detail)?),
            REPEATED => AuditEvent::Repeated(read(action, detail)?),
            ATTACHED => AuditEvent::Attached(read(action, detail)?),
            TRIAGE_STARTED => AuditEvent::TriageStarted(read(action, detail)?),
            TRIAGED => AuditEvent::Triaged(Box::new(read(action, detail)?)),
            TRIAGE_FAILED => AuditEvent::TriageFailed(read(action, detail)?),
            STEP_FAILED => AuditEvent::StepFailed(read(action, detail)?),
            STEP_NOT_APPROVED => AuditEvent::StepNotApproved(read(action, detail)?),
            PLAYBOOK_FINISHED => AuditEvent::PlaybookFinished(read(action, detail)?),
            PLAYBOOK_STOPPED => AuditEvent::PlaybookStopped(read(action, detail)?),
            RETRY_STARTED => AuditEvent::RetryStarted(read(action, detail)?),
            PLAYBOOK_QUEUED => AuditEvent::PlaybookQueued(read(action, detail)?),
            PLAYBOOK_DEQUEUED => AuditEvent::PlaybookDequeued(read(action, detail)?),
            APPROVAL_REQUESTED => AuditEvent::ApprovalRequested(read(action, detail)?),
            APPROVED => AuditEvent::Approved(read(action, detail)?),
            REJECTED => AuditEvent::Rejected(read(action, detail)?),
            APPROVAL_REFUSED => AuditEvent::ApprovalRefused(read(action, detail)?),
            APPROVAL_COUNTED => AuditEvent::ApprovalCounted(read(action, detail)?),
            APPROVAL_NOT_DELIVERED => AuditEvent::ApprovalNotDelivered(read(action, detail)?),
            RESOLVED => AuditEvent::Resolved(read(action, detail)?),
            RELEASE_FAILED => AuditEvent::ReleaseFailed(read(action, detail)?),
            CLOCK_ALERT => AuditEvent::ClockAlert(read(action, detail)?),
            REVIEW_OPENED => AuditEvent::ReviewOpened(read(action, detail)?),
            REVIEW_WRITTEN => AuditEvent::ReviewWritten(read(action, detail)?),
            REVIEW_ITEM_ADDED => AuditEvent::ReviewItemAdded(read(action, detail)?),
            REVIEW_ITEM_CLOSED => AuditEvent::ReviewItemClosed(read(action, detail)?),
            REVIEW_CLOSED => AuditEvent::ReviewClosed(read(action, detail)?),
            other => AuditEvent::Other {
                action: other.to_owned(),
                detail: detail.clone(),
            },
        })
    }

    /// The playbook step (or `triage`, or the release step) the event is about, if any: with the
    /// action, what a retried write is recognized by.
    pub fn step(&self) -> Option<&str> {
        match self {
            AuditEvent::TriageFailed(f)
            | AuditEvent::StepFailed(f)
            | AuditEvent::StepNotApproved(f) => Some(&f.step),
            AuditEvent::Step(s) => Some(&s.step),
            AuditEvent::ApprovalRequested(a) => Some(&a.step),
            AuditEvent::Approved(d) | AuditEvent::Rejected(d) | AuditEvent::ApprovalCounted(d) => {
                Some(&d.step)
            }
            AuditEvent::ApprovalRefused(r) => Some(&r.step),
            AuditEvent::ApprovalNotDelivered(n) => Some(&n.step),
            AuditEvent::Resolved(r) => Some(&r.step),
            AuditEvent::ReleaseFailed(r) => Some(&r.step),
            AuditEvent::ClockAlert(c) => Some(&c.step),
            AuditEvent::PlaybookStopped(s) => Some(&s.step),
            AuditEvent::RetryStarted(r) => Some(&r.step),
            AuditEvent::Other { detail, .. } => detail.get("step").and_then(Value::as_str),
            AuditEvent::Opened(_)
            | AuditEvent::Repeated(_)
            | AuditEvent::Attached(_)
            | AuditEvent::TriageStarted(_)
            | AuditEvent::Triaged(_)
            | AuditEvent::PlaybookFinished(_)
            | AuditEvent::PlaybookQueued(_)
            | AuditEvent::PlaybookDequeued(_)
            | AuditEvent::ReviewOpened(_)
            | AuditEvent::ReviewWritten(_)
            | AuditEvent::ReviewItemAdded(_)
            | AuditEvent::ReviewItemClosed(_)
            | AuditEvent::ReviewClosed(_) => None,
        }
    }

    /// A step's result, failure or refusal (the records that end a step's run).
    pub fn ends_step(&self) -> bool {
        matches!(
            self,
            AuditEvent::Step(_) | AuditEvent::StepFailed(_) | AuditEvent::StepNotApproved(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::canonical_json;
    use serde_json::json;

    fn round_trip(action: &str, detail: Value) -> AuditEvent {
        let event = AuditEvent::read(action, &detail).unwrap();
        assert_eq!(event.action(), action);
        assert_eq!(
            canonical_json(&event.detail().unwrap()),
            canonical_json(&detail)
        );
        event
    }

    #[test]
    fn failures_and_decisions_read_back_as_written() {
        let e = round_trip(
            "step-failed",
            json!({"step": "isolate", "error": "Retryable", "cause": "throttled"}),
        );
        assert_eq!(e.step(), Some("isolate"));
        assert!(e.ends_step());
        let e = round_trip(
            "rejected",
            json!({"step": "isolate", "level": 1, "approver": "arn:aws:iam::1:user/a", "principal": "user/a", "reason": "", "requester": "arn:aws:sts::1:assumed-role/g/s"}),
        );
        assert!(matches!(&e, AuditEvent::Rejected(d) if d.level == 1));
        let e = round_trip(
            "approval-counted",
            json!({"step": "isolate", "level": 0, "approver": "arn:aws:sts::1:assumed-role/E/alice", "principal": "arn:aws:iam::1:role/E", "reason": "seen", "requester": "r", "person": "alice", "approvals": ["alice"], "approvalsRequired": 2}),
        );
        assert!(
            matches!(&e, AuditEvent::ApprovalCounted(d) if d.approvals_required == 2 && d.person == "alice")
        );
        round_trip(
            "approval-refused",
            json!({"step": "s", "decision": "approved", "why": "two-person rule", "requester": "r"}),
        );
    }

    #[test]
    fn the_review_events_read_back_as_written() {
        let e = round_trip(
            "review-opened",
            json!({"by": "arn:aws:sts::1:assumed-role/R/alice", "reviewDate": "2026-04-27", "resolvedOn": "2026-04-24", "dateGiven": false, "from": "resolved", "status": "postmortem"}),
        );
        assert!(
            matches!(&e, AuditEvent::ReviewOpened(o) if o.review_date.day() == 27 && o.status == Status::Postmortem)
        );
        assert_eq!(e.step(), None);
        let written = AuditEvent::ReviewWritten(ReviewWritten {
            by: "b".into(),
            sections: vec![WrittenSection::of(Section::RootCause, "an open port")],
        });
        let detail = written.detail().unwrap();
        assert_eq!(detail["sections"][0]["section"], "root-cause");
        assert_eq!(detail["sections"][0]["chars"], 12);
        assert_eq!(
            detail["sections"][0]["sha256"].as_str().map(str::len),
            Some(64)
        );
        round_trip("review-written", detail);
        let e = round_trip(
            "review-item-added",
            json!({"by": "b", "item": {"id": "A1", "title": "Close port 22", "owner": "team-web", "due": "2026-05-01", "status": "open", "jiraKey": "SEC-42", "addedBy": "b", "addedAt": "2026-04-27T10:00:00Z", "closedAt": null, "closedBy": null, "resolution": null}}),
        );
        assert!(matches!(&e, AuditEvent::ReviewItemAdded(a) if a.item.id == "A1"));
        round_trip(
            "review-item-closed",
            json!({"by": "b", "id": "A1", "status": "dropped", "resolution": "moved to SEC-43"}),
        );
        round_trip(
            "review-closed",
            json!({"by": "b", "openItems": ["A2"], "items": 2}),
        );
        let wrong = AuditEvent::read(
            "review-item-closed",
            &json!({"by": "b", "id": "A1", "status": "finished"}),
        );
        assert!(
            matches!(wrong, Err(EventError::Unreadable { .. })),
            "{wrong:?}"
        );
    }

    #[test]
    fn both_playbook_ends_keep_their_fields() {
        let contained = json!({"playbook": "p", "mode": "enforce", "contained": true, "destructiveApplied": ["isolate"], "notApplied": [], "status": "contained", "containedAt": null, "mttcSeconds": null});
        let e = round_trip("playbook-finished", contained);
        assert!(matches!(&e, AuditEvent::PlaybookFinished(p) if p.contained()));
        round_trip(
            "playbook-finished",
            json!({"playbook": "p", "mode": "dry-run", "contained": false, "why": "dry-run", "plannedOnly": ["isolate"], "notApplied": [], "status": "containment"}),
        );
        let refused = AuditEvent::read(
            "playbook-finished",
            &json!({"playbook": "p", "mode": "dry-run", "contained": false, "plannedOnly": [], "notApplied": [], "status": "containment"}),
        );
        assert!(
            matches!(refused, Err(EventError::Unreadable { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn unknown_actions_are_kept_and_known_ones_must_fit() {
        let detail = json!({"step": "x", "anything": [1, 2.5, null]});
        let e = round_trip("quarantined-by-hand", detail.clone());
        assert_eq!(e.step(), Some("x"));
        assert_eq!(
            e,
            AuditEvent::Other {
                action: "quarantined-by-hand".into(),
                detail
            }
        );
        let wrong = AuditEvent::read("step-failed", &json!({"step": 3}));
        assert!(
            matches!(&wrong, Err(EventError::Unreadable { action, .. }) if action == "step-failed"),
            "{wrong:?}"
        );
        let mismatched = AuditEvent::read(
            "action:ir-notify",
            &json!({"step": "s", "function": "ir-isolate-instance", "outcome": "applied", "mode": "enforce", "changes": []}),
        );
        assert!(mismatched.is_err(), "{mismatched:?}");
    }
}
