//! The incident as an operator reads it (`ir report INCIDENT`): the incident record, its
//! timeline and response metrics, the triage decision, every step as the audit chain recorded
//! it (results with their changes before → after, failures, approval requests and decisions),
//! the evidence manifests read back from the bucket, the audit chain verified against its
//! anchors, the incident update (the seed's template, as notifications build it) and the
//! post-incident review once one is held.
//!
//! [`build`] only reads: `GetItem` on the incidents table, the incident's audit chain (`Query`,
//! twice: once to read the steps, once inside [`AuditLog::verify`] with the anchors'
//! `ListObjectVersions` and `GetObject`s), and one `GetObject` per evidence manifest version the
//! chain names. The approvals table is never read (the audit chain holds every request and
//! decision, with who decided, and never a task token).
//!
//! A chain that does not verify, a record that cannot be read and a manifest that cannot be read
//! are part of the report, stated plainly ([`IncidentReport::problems`]); only an incident that
//! cannot be read at all is an error.
//!
//! The renderings are pure functions of the report (and of a given `now` where time matters):
//! [`markdown`], [`html`] (one self-contained page) with its SVG [`timeline`]; the JSON is the
//! report serialized. [`store`] writes the HTML and JSON, locked, to the evidence bucket when an
//! incident is resolved. Every text that came from a finding, a tag or a person is escaped by
//! the renderer that prints it.

pub mod format;
pub mod html;
pub mod markdown;
pub mod store;
pub mod timeline;

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use ir_core::action::{Change, EvidenceObject, Outcome};
use ir_core::audit::event::{self, AuditEvent, PlaybookFinished, StepAudit, StepFailure, actions};
pub use ir_core::audit::event::{EvidenceArtifacts, SnapshotArtifacts, StepArtifacts};
use ir_core::audit::{AuditRecord, Verified};
use ir_core::config::Mode;
use ir_core::evidence::ObjectLockSummary;
use ir_core::incident::{Status, Timeline};
use ir_core::playbook::NotApplicable;
use ir_core::review::Review;
use ir_core::{Decision, ErrorName, Named, Severity};
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

use ir_actions::evidence::MANIFEST_SCHEMA;
use ir_aws::Clients;
use ir_aws::sdk::SdkFailure;
use ir_aws::store::{AuditLog, IncidentStore, LastError, StoreError, TableNames};

const GET_OBJECT: &str = "s3:GetObject";

/// Why no report could be built.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The argument is not an incident id.
    #[error("`{0}` is not an incident id (inc- followed by 20 hex digits)")]
    InvalidInput(String),
    /// The incidents table has no such incident.
    #[error("no incident {incident_id} in table {table}")]
    NotFound { incident_id: String, table: String },
    /// The incident or its audit chain could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Named for ReportError {
    fn error_name(&self) -> ErrorName {
        match self {
            ReportError::InvalidInput(_) => ErrorName::InvalidInput,
            ReportError::NotFound { .. } => ErrorName::NotFound,
            ReportError::Store(e) => e.error_name(),
        }
    }
}

/// The incident, its steps, its evidence and its audit chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentReport {
    pub incident_id: String,
    pub status: Status,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    pub resource: ResourceRef,
    /// Distinct findings correlated to the incident.
    pub finding_count: u64,
    /// Deliveries ingested (the opening one, every attach and every repeat).
    pub occurrences: u64,
    pub finding_ids: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    pub timeline: TimelineReport,
    /// The triage decision, once triaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionSummary>,
    /// Every step the audit chain mentions, in the order it first appears there, then the
    /// planned steps it does not mention yet ([`StepState::NotRun`]).
    pub steps: Vec<StepReport>,
    /// The latest end of the playbook the chain records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<PlaybookEnd>,
    /// Every evidence manifest a step result names, read back from its bucket.
    pub evidence: Vec<ManifestReport>,
    pub audit: AuditReport,
    /// Audit records that could not be read as what their action says they are.
    pub notes: Vec<String>,
    /// The incident update as notifications send it (seed 000's template: status, severity,
    /// times, summary, scope, actions taken, next steps), built by [`crate::notify::chat_update`].
    pub update: UpdateSections,
    /// The post-incident review, once opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
}

/// The incident update's sections ([`ir_chat::IncidentUpdate`], as data the report serializes).
/// Every text is plain, as recorded (finding titles included): renderers escape it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSections {
    /// As shown: `Contained`, `Resolved`, …
    pub status: String,
    /// As shown: `Critical`, `High`, …
    pub severity: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time_detected: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_contained: Option<OffsetDateTime>,
    /// The regulatory deadlines with the time left when the report was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<String>,
    pub summary: String,
    pub scope: Vec<String>,
    pub actions_taken: Vec<String>,
    pub next_steps: Vec<String>,
    /// The playbook ran in dry-run: nothing was changed.
    pub dry_run: bool,
}

impl From<ir_chat::IncidentUpdate> for UpdateSections {
    fn from(u: ir_chat::IncidentUpdate) -> UpdateSections {
        UpdateSections {
            status: u.status,
            severity: u.severity,
            time_detected: u.time_detected,
            time_contained: u.time_contained,
            deadlines: u.deadlines,
            summary: u.summary,
            scope: u.scope,
            actions_taken: u.actions_taken,
            next_steps: u.next_steps,
            dry_run: u.dry_run,
        }
    }
}

/// The incident's resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// `ec2-instance`, `iam-role`, …
    pub kind: String,
    pub id: String,
    pub account: String,
    /// `account/kind/id`.
    pub key: String,
}

/// The timeline as stored, with the metrics derived from it (`ir_core::incident::Timeline`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineReport {
    #[serde(flatten)]
    pub stamps: Timeline,
    /// Time to detect: first activity → received ([`Timeline::mttd`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mttd_seconds: Option<f64>,
    /// Time to contain: received → contained ([`Timeline::mttc`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mttc_seconds: Option<f64>,
    /// Received → triaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triage_seconds: Option<f64>,
    /// Received → resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_seconds: Option<f64>,
}

impl TimelineReport {
    /// The report of a stored timeline.
    pub fn new(stamps: Timeline) -> TimelineReport {
        let since_detected =
            |t: Option<OffsetDateTime>| t.map(|t| (t - stamps.detected_at).as_seconds_f64());
        TimelineReport {
            mttd_seconds: stamps.mttd().map(|d| d.as_seconds_f64()),
            mttc_seconds: stamps.mttc().map(|d| d.as_seconds_f64()),
            triage_seconds: since_detected(stamps.triaged_at),
            resolve_seconds: since_detected(stamps.resolved_at),
            stamps,
        }
    }
}

/// The triage decision, as an operator reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionSummary {
    pub score: f64,
    /// The severity the score alone maps to.
    pub score_severity: Severity,
    /// The highest severity among the findings.
    pub finding_severity: Severity,
    /// The incident severity decided (the higher of the two).
    pub severity: Severity,
    pub playbook: String,
    pub trigger: String,
    pub mode: Mode,
    /// Every finding is a generated sample: the plan was forced to dry-run.
    pub samples_only: bool,
    pub sla: String,
    #[serde(with = "time::serde::rfc3339")]
    pub respond_by: OffsetDateTime,
    pub steps: Vec<PlanStep>,
    pub not_applicable: Vec<NotApplicable>,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    pub id: String,
    pub action: String,
    pub function: String,
    pub mode: Mode,
    pub requires_approval: bool,
    pub destructive: bool,
    pub target: String,
}

impl DecisionSummary {
    fn of(d: &Decision) -> DecisionSummary {
        DecisionSummary {
            score: d.score.score,
            score_severity: d.score.score_severity,
            finding_severity: d.finding_severity,
            severity: d.severity,
            playbook: d.playbook.id.clone(),
            trigger: d.playbook.trigger.clone(),
            mode: d.playbook.mode,
            samples_only: d.samples_only,
            sla: d.sla.description.clone(),
            respond_by: d.sla.respond_by,
            steps: d
                .playbook
                .steps
                .iter()
                .map(|s| PlanStep {
                    id: s.id.clone(),
                    action: s.action.clone(),
                    function: s.function.clone(),
                    mode: s.mode,
                    requires_approval: s.requires_approval,
                    destructive: s.destructive,
                    target: s.target.clone(),
                })
                .collect(),
            not_applicable: d.playbook.not_applicable.clone(),
        }
    }
}

/// Where a step stands, from its latest audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Enforce: the changes were made and verified.
    Applied,
    /// Dry-run: the changes are the plan; nothing was changed.
    Planned,
    /// Everything was already in place.
    AlreadyInPlace,
    /// The step failed after its retries.
    Failed,
    /// The approval gate ended without approval (rejected, or every level timed out).
    NotApproved,
    /// Approved; the action has not reported yet.
    Approved,
    /// Rejected; the gate has not recorded its end yet.
    Rejected,
    /// An approval was requested and is not decided.
    AwaitingApproval,
    /// Planned, and nothing about it is in the audit chain yet.
    NotRun,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Applied => "applied",
            StepState::Planned => "planned",
            StepState::AlreadyInPlace => "already-in-place",
            StepState::Failed => "failed",
            StepState::NotApproved => "not-approved",
            StepState::Approved => "approved",
            StepState::Rejected => "rejected",
            StepState::AwaitingApproval => "awaiting-approval",
            StepState::NotRun => "not-run",
        }
    }
}

/// One step: its latest result, its latest failure, its approvals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub step: String,
    pub state: StepState,
    /// The latest action report the recorder audited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<StepResult>,
    /// The latest failure or refusal (shown as the state when it is the latest record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// Approval requests and decisions, in audit order.
    pub approvals: Vec<ApprovalEvent>,
}

impl StepReport {
    /// The latest approval decision (approved or rejected), if any.
    pub fn decision(&self) -> Option<&ApprovalEvent> {
        self.approvals
            .iter()
            .rev()
            .find(|a| matches!(a.kind, ApprovalKind::Approved | ApprovalKind::Rejected))
    }
}

/// An action report as audited (`action:<function>` records).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub function: String,
    pub outcome: Outcome,
    pub mode: Mode,
    pub changes: Vec<Change>,
    /// Whether the step left a record release restores from.
    pub record: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<StepArtifacts>,
    pub notes: Vec<String>,
    pub aws_calls: u32,
}

/// A failure or refusal of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepError {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: FailureKind,
    /// The Step Functions error name (`Rejected`, `States.Timeout`, a stable error name).
    pub error: String,
    pub cause: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// `step-failed`.
    Failed,
    /// `step-not-approved`.
    NotApproved,
    /// `triage-failed` (the step `triage`).
    TriageFailed,
}

/// An approval request or decision, from the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalEvent {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: ApprovalKind,
    /// Who: the requesting gate's identity, or the ARN of the human who decided.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u64>,
    /// Who was asked (the escalation matrix's role), for a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The reason given with a decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why a decision was refused or not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalKind {
    /// `approval-requested`.
    Requested,
    /// `approval-counted`: one person's approval, more needed.
    Counted,
    /// `approved`.
    Approved,
    /// `rejected`.
    Rejected,
    /// `approval-refused` (the two-person rule).
    Refused,
    /// `approval-not-delivered`: decided, but the waiting execution did not get it.
    NotDelivered,
}

/// The end of the playbook (`playbook-finished`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookEnd {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub playbook: String,
    pub contained: bool,
    /// Why nothing was contained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    pub destructive_applied: Vec<String>,
    pub not_applied: Vec<String>,
}

/// One evidence manifest, read back by version id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReport {
    /// The step whose result names it.
    pub step: String,
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// The lock the manifest says its objects were written under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockSummary>,
    /// The objects the manifest lists (empty when it could not be read).
    pub objects: Vec<EvidenceItem>,
    /// Why the manifest could not be read, or does not say what the audit chain says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One evidence object, as its manifest lists it, with the date its lock ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceItem {
    #[serde(flatten)]
    pub object: EvidenceObject,
    /// The retain-until date the object was written with: `collected_at` (the write) plus the
    /// manifest's retention days, in whole seconds, as the one locked writer computes it.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retain_until: Option<OffsetDateTime>,
}

impl EvidenceItem {
    /// `object` with the retain-until date `lock` gives it.
    pub fn new(object: EvidenceObject, lock: Option<&ObjectLockSummary>) -> EvidenceItem {
        let retain_until = lock.filter(|l| l.retention_days > 0).and_then(|l| {
            let until = object.collected_at + time::Duration::days(i64::from(l.retention_days));
            until.replace_nanosecond(0).ok()
        });
        EvidenceItem {
            object,
            retain_until,
        }
    }
}

impl ManifestReport {
    /// `s3://bucket/key`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// The audit chain: what was read, and whether it verifies against its anchors.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Records read to build the steps.
    pub records_read: usize,
    /// Why the chain could not be read to build the steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
    pub verification: Verification,
}

/// [`AuditLog::verify`]'s answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    Verified(Verified),
    /// The chain does not verify (or could not be read to verify): its stable error name and
    /// the message naming where it breaks.
    Failed {
        name: ErrorName,
        message: String,
    },
}

impl Verification {
    pub fn verified(&self) -> Option<&Verified> {
        match self {
            Verification::Verified(v) => Some(v),
            Verification::Failed { .. } => None,
        }
    }
}

impl Serialize for Verification {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            verified: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            records: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            head: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            anchors_verified: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<ErrorName>,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
        }
        let wire = match self {
            Verification::Verified(v) => Wire {
                verified: true,
                records: Some(v.records),
                head: Some(&v.head),
                anchors_verified: Some(v.anchors_checked),
                error: None,
                message: None,
            },
            Verification::Failed { name, message } => Wire {
                verified: false,
                records: None,
                head: None,
                anchors_verified: None,
                error: Some(*name),
                message: Some(message),
            },
        };
        wire.serialize(s)
    }
}

impl IncidentReport {
    /// What makes the report incomplete or the incident's record untrustworthy: the audit chain
    /// not verifying, the chain or a manifest unreadable. Empty when everything holds.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Verification::Failed { message, .. } = &self.audit.verification {
            out.push(message.clone());
        }
        if let Some(e) = &self.audit.read_error {
            out.push(format!("the audit chain could not be read: {e}"));
        }
        for m in &self.evidence {
            if let Some(e) = &m.error {
                out.push(format!("evidence manifest {}: {e}", m.uri()));
            }
        }
        out
    }
}

/// Builds the report of `incident_id`: the incident from the incidents table, its audit chain
/// from the audit table, its evidence manifests from the buckets their steps name, and the
/// chain verified against the anchors in `bucket` (the evidence bucket).
pub async fn build(
    clients: &Clients,
    names: &TableNames,
    bucket: &str,
    incident_id: &str,
) -> Result<IncidentReport, ReportError> {
    if !ir_core::correlate::is_incident_id(incident_id) {
        return Err(ReportError::InvalidInput(incident_id.to_owned()));
    }
    let incident = IncidentStore::new(clients.clone(), names.clone())
        .get(incident_id)
        .await?
        .ok_or_else(|| ReportError::NotFound {
            incident_id: incident_id.to_owned(),
            table: names.incidents.clone(),
        })?;
    let log = AuditLog::new(clients.clone(), names.clone());
    let (chain, read_error) = match log.chain(incident_id).await {
        Ok(chain) => (chain, None),
        // A record edited into something that is not a record: the rest is still reported, and
        // verification names the record.
        Err(e @ StoreError::Corrupt { .. }) => (Vec::new(), Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let digest = digest(&chain, incident.decision.as_ref());
    // The update as notifications build it; the mode only marks a dry-run playbook.
    let update = crate::notify::chat_update(&incident, &chain, Mode::Enforce).into();
    let verification = match log.verify(incident_id, bucket).await {
        Ok(v) => Verification::Verified(v),
        Err(e) => Verification::Failed {
            name: e.error_name(),
            message: e.to_string(),
        },
    };
    let mut evidence = Vec::new();
    for (step, a) in &digest.manifests {
        evidence.push(manifest(clients, incident_id, step, a).await);
    }
    let s = &incident.summary;
    let account = s
        .resource_key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(IncidentReport {
        incident_id: s.incident_id.clone(),
        status: s.status,
        severity: s.severity,
        playbook: s.playbook.clone(),
        resource: ResourceRef {
            kind: incident.resource.kind().as_str().to_owned(),
            id: incident.resource.id().to_owned(),
            account,
            key: s.resource_key.clone(),
        },
        finding_count: incident.finding_count,
        occurrences: incident.occurrences,
        finding_ids: s.finding_ids.clone(),
        last_seen: incident.last_seen,
        last_error: incident.last_error.clone(),
        timeline: TimelineReport::new(s.timeline),
        decision: incident.decision.as_ref().map(DecisionSummary::of),
        steps: digest.steps,
        finished: digest.finished,
        evidence,
        audit: AuditReport {
            records_read: chain.len(),
            read_error,
            verification,
        },
        notes: digest.notes,
        update,
        review: incident.review.clone(),
    })
}

// ------------------------------------------------------------------------------ the chain

/// What the audit chain says about the steps.
#[derive(Debug, Default)]
struct Digest {
    steps: Vec<StepReport>,
    finished: Option<PlaybookEnd>,
    /// The manifests step results name, once each, in audit order.
    manifests: Vec<(String, EvidenceArtifacts)>,
    notes: Vec<String>,
}

/// Steps, the playbook's end and the manifests, from the chain (in `seq` order) and the plan.
fn digest(chain: &[AuditRecord], decision: Option<&Decision>) -> Digest {
    let mut d = Digest::default();
    // Index into `d.steps` by step id.
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    // The seq of each step's latest result and failure, to tell which came last.
    let mut latest: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
    for r in chain {
        let (event, step) = match r.event() {
            Ok(e) => {
                let step = step_of(&e).map(str::to_owned);
                (Some(e), step)
            }
            Err(e) => {
                let is_result = r.action.starts_with(actions::STEP_PREFIX);
                let what = if is_result {
                    "a step result"
                } else {
                    "readable"
                };
                d.notes.push(format!(
                    "audit record {} ({}) is not {what}: {e}",
                    r.seq, r.action
                ));
                // An unreadable result still says its step ran into something: listed, not run.
                (None, r.step().filter(|_| is_result).map(str::to_owned))
            }
        };
        if let Some(AuditEvent::PlaybookFinished(p)) = &event {
            d.finished = Some(PlaybookEnd::of(r, p));
            continue;
        }
        let Some(step) = step else {
            continue;
        };
        let i = *index.entry(step.clone()).or_insert_with(|| {
            d.steps.push(StepReport {
                step: step.clone(),
                state: StepState::NotRun,
                result: None,
                error: None,
                approvals: Vec::new(),
            });
            d.steps.len() - 1
        });
        let (Some(s), Some(event)) = (d.steps.get_mut(i), event) else {
            continue;
        };
        let seqs = latest.entry(step).or_default();
        match event {
            AuditEvent::Step(a) => {
                if let Some(StepArtifacts::Evidence(e)) = &a.artifacts
                    && !d.manifests.iter().any(|(_, m)| {
                        m.bucket == e.bucket
                            && m.manifest_key == e.manifest_key
                            && m.manifest_version_id == e.manifest_version_id
                    })
                {
                    d.manifests.push((a.step.clone(), e.clone()));
                }
                s.result = Some(StepResult::of(r, a));
                seqs.0 = Some(r.seq);
            }
            AuditEvent::StepFailed(f) => {
                s.error = Some(StepError::of(r, FailureKind::Failed, f));
                seqs.1 = Some(r.seq);
            }
            AuditEvent::StepNotApproved(f) => {
                s.error = Some(StepError::of(r, FailureKind::NotApproved, f));
                seqs.1 = Some(r.seq);
            }
            AuditEvent::TriageFailed(f) => {
                s.error = Some(StepError::of(r, FailureKind::TriageFailed, f));
                seqs.1 = Some(r.seq);
            }
            other => {
                if let Some(a) = ApprovalEvent::of(r, other) {
                    s.approvals.push(a);
                }
            }
        }
    }
    for s in &mut d.steps {
        let (result, failure) = latest.get(&s.step).copied().unwrap_or_default();
        s.state = state(s, result, failure);
    }
    if let Some(decision) = decision {
        for p in &decision.playbook.steps {
            if !index.contains_key(&p.id) {
                d.steps.push(StepReport {
                    step: p.id.clone(),
                    state: StepState::NotRun,
                    result: None,
                    error: None,
                    approvals: Vec::new(),
                });
            }
        }
    }
    d
}

/// The step a record belongs to in the report: results, failures and the approval records.
fn step_of(event: &AuditEvent) -> Option<&str> {
    match event {
        AuditEvent::Step(_)
        | AuditEvent::StepFailed(_)
        | AuditEvent::StepNotApproved(_)
        | AuditEvent::TriageFailed(_)
        | AuditEvent::ApprovalRequested(_)
        | AuditEvent::Approved(_)
        | AuditEvent::Rejected(_)
        | AuditEvent::ApprovalCounted(_)
        | AuditEvent::ApprovalRefused(_)
        | AuditEvent::ApprovalNotDelivered(_) => event.step(),
        _ => None,
    }
}

impl PlaybookEnd {
    fn of(r: &AuditRecord, p: &PlaybookFinished) -> PlaybookEnd {
        let (why, destructive_applied) = match &p.end {
            event::PlaybookEnd::Contained {
                destructive_applied,
                ..
            } => (None, destructive_applied.clone()),
            event::PlaybookEnd::NotContained { why, .. } => (Some(why.clone()), Vec::new()),
        };
        PlaybookEnd {
            seq: r.seq,
            at: r.at,
            playbook: p.playbook.clone(),
            contained: p.contained(),
            why,
            destructive_applied,
            not_applied: p.not_applied.clone(),
        }
    }
}

impl StepResult {
    fn of(r: &AuditRecord, a: StepAudit) -> StepResult {
        StepResult {
            seq: r.seq,
            at: r.at,
            function: a.function,
            outcome: a.outcome,
            mode: a.mode,
            changes: a.changes,
            record: a.record,
            artifacts: a.artifacts,
            notes: a.notes,
            aws_calls: a.aws_calls,
        }
    }
}

impl StepError {
    fn of(r: &AuditRecord, kind: FailureKind, f: StepFailure) -> StepError {
        StepError {
            seq: r.seq,
            at: r.at,
            kind,
            error: f.error,
            cause: f.cause,
        }
    }
}

impl ApprovalEvent {
    /// The approval records; `None` for any other event.
    fn of(r: &AuditRecord, event: AuditEvent) -> Option<ApprovalEvent> {
        let empty = ApprovalEvent {
            seq: r.seq,
            at: r.at,
            kind: ApprovalKind::Requested,
            actor: r.actor.clone(),
            level: None,
            role: None,
            timeout_seconds: None,
            reason: None,
            why: None,
        };
        let given = |reason: String| Some(reason).filter(|x| !x.is_empty());
        Some(match event {
            AuditEvent::ApprovalRequested(q) => ApprovalEvent {
                level: Some(u64::from(q.level)),
                role: Some(q.role),
                timeout_seconds: Some(q.timeout_seconds),
                ..empty
            },
            AuditEvent::Approved(d) => ApprovalEvent {
                kind: ApprovalKind::Approved,
                level: Some(u64::from(d.level)),
                reason: given(d.reason),
                ..empty
            },
            AuditEvent::ApprovalCounted(d) => ApprovalEvent {
                kind: ApprovalKind::Counted,
                level: Some(u64::from(d.level)),
                reason: given(d.reason),
                why: Some(format!(
                    "{} of {} approvals",
                    d.approvals.len(),
                    d.approvals_required.max(1)
                )),
                ..empty
            },
            AuditEvent::Rejected(d) => ApprovalEvent {
                kind: ApprovalKind::Rejected,
                level: Some(u64::from(d.level)),
                reason: given(d.reason),
                ..empty
            },
            AuditEvent::ApprovalRefused(x) => ApprovalEvent {
                kind: ApprovalKind::Refused,
                why: Some(x.why),
                ..empty
            },
            AuditEvent::ApprovalNotDelivered(n) => ApprovalEvent {
                kind: ApprovalKind::NotDelivered,
                level: Some(u64::from(n.level)),
                reason: given(n.reason),
                why: Some(n.error),
                ..empty
            },
            _ => return None,
        })
    }
}

/// A step's state: its latest result or failure, whichever came last; else its approvals.
fn state(s: &StepReport, result: Option<u64>, failure: Option<u64>) -> StepState {
    let from_result = |r: &StepResult| match r.outcome {
        Outcome::Applied => StepState::Applied,
        Outcome::Planned => StepState::Planned,
        Outcome::AlreadyInPlace => StepState::AlreadyInPlace,
    };
    let from_error = |e: &StepError| match e.kind {
        FailureKind::NotApproved => StepState::NotApproved,
        FailureKind::Failed | FailureKind::TriageFailed => StepState::Failed,
    };
    let ended = match (result, failure) {
        (Some(r), Some(f)) if f > r => s.error.as_ref().map(from_error),
        (Some(_), _) => s.result.as_ref().map(from_result),
        (None, Some(_)) => s.error.as_ref().map(from_error),
        (None, None) => None,
    };
    if let Some(state) = ended {
        return state;
    }
    match s.approvals.iter().rev().find(|a| {
        matches!(
            a.kind,
            ApprovalKind::Requested | ApprovalKind::Approved | ApprovalKind::Rejected
        )
    }) {
        Some(a) if a.kind == ApprovalKind::Approved => StepState::Approved,
        Some(a) if a.kind == ApprovalKind::Rejected => StepState::Rejected,
        Some(_) => StepState::AwaitingApproval,
        None => StepState::NotRun,
    }
}

// ---------------------------------------------------------------------------- manifests

/// The manifest version a step result names, read back; what is wrong with it said in `error`.
async fn manifest(
    clients: &Clients,
    incident_id: &str,
    step: &str,
    a: &EvidenceArtifacts,
) -> ManifestReport {
    let mut report = ManifestReport {
        step: step.to_owned(),
        bucket: a.bucket.clone(),
        key: a.manifest_key.clone(),
        version_id: a.manifest_version_id.clone(),
        object_lock: None,
        objects: Vec::new(),
        error: None,
    };
    match read_manifest(clients, a).await {
        Ok(stored) => {
            let mut wrong = Vec::new();
            if stored.schema != MANIFEST_SCHEMA {
                wrong.push(format!("schema `{}`, not {MANIFEST_SCHEMA}", stored.schema));
            }
            if stored.incident_id != incident_id {
                wrong.push(format!("it is the manifest of {}", stored.incident_id));
            }
            if stored.objects.len() != a.objects {
                wrong.push(format!(
                    "it lists {} objects, the step reported {}",
                    stored.objects.len(),
                    a.objects
                ));
            }
            if !wrong.is_empty() {
                report.error = Some(wrong.join("; "));
            }
            let lock = Some(stored.object_lock).filter(|l| !l.mode.is_empty());
            report.objects = stored
                .objects
                .into_iter()
                .map(|o| EvidenceItem::new(o, lock.as_ref()))
                .collect();
            report.object_lock = lock;
        }
        Err(e) => report.error = Some(e),
    }
    report
}

async fn read_manifest(
    clients: &Clients,
    a: &EvidenceArtifacts,
) -> Result<ir_core::evidence::ManifestDocument, String> {
    let out = clients
        .s3()
        .get_object()
        .bucket(&a.bucket)
        .key(&a.manifest_key)
        .version_id(&a.manifest_version_id)
        .send()
        .await
        .map_err(|e| match e.code() {
            Some(code @ ("NoSuchVersion" | "NoSuchKey")) => {
                format!("version {} does not exist ({code})", a.manifest_version_id)
            }
            _ => SdkFailure::new(GET_OBJECT, &e).to_string(),
        })?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| format!("{GET_OBJECT}: reading the body failed: {e}"))?
        .into_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("not a readable manifest: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::action::ChangeStatus;
    use serde_json::{Value, json};
    use time::macros::datetime;

    const ID: &str = "inc-0123456789abcdef0123";

    fn chain(records: &[(&str, &str, Value)]) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for (actor, action, detail) in records {
            let r = AuditRecord::next(
                out.last(),
                ID,
                datetime!(2026-11-20 10:05 UTC),
                actor,
                action,
                detail.clone(),
            );
            out.push(r);
        }
        out
    }

    fn result(step: &str, outcome: &str, artifacts: Value) -> Value {
        json!({
            "step": step,
            "function": format!("ir-{step}"),
            "outcome": outcome,
            "mode": "enforce",
            "changes": [{
                "target": "eni-0abc",
                "attribute": "security-groups",
                "before": ["sg-a", "sg-b"],
                "after": ["sg-iso"],
                "status": "applied",
            }],
            "record": true,
            "artifacts": artifacts,
            "notes": ["a note"],
            "awsCalls": 17,
        })
    }

    #[test]
    fn steps_come_in_audit_order_with_their_latest_state() {
        let evidence = json!({
            "kind": "evidence",
            "bucket": "ev",
            "manifestKey": format!("incidents/{ID}/manifests/collect-evidence.json"),
            "manifestVersionId": "v1",
            "objects": 2,
        });
        let c = chain(&[
            (
                "ir-ingest",
                "opened",
                json!({"findingId": "f", "findingKey": "guardduty:1:r:f", "source": "guardduty", "product": "GuardDuty", "type": "T", "title": "t", "severity": "critical", "account": "1", "region": "r", "resource": {"kind": "ec2-instance", "id": "i-1"}, "firstSeen": null, "lastSeen": null, "count": 1, "sample": false}),
            ),
            (
                "ir-record",
                "action:ir-collect-evidence",
                result("collect-evidence", "applied", evidence),
            ),
            (
                "gate",
                "approval-requested",
                json!({"step": "isolate-instance", "level": 0, "role": "security_engineer", "timeoutSeconds": 300, "requester": "gate", "plan": {"id": "isolate-instance", "action": "cloud:security_group_deny_all", "function": "ir-isolate-instance", "requiresApproval": true, "destructive": true, "mode": "enforce", "target": "i-1", "summary": "isolate"}}),
            ),
            (
                "arn:aws:iam::111122223333:user/alice",
                "approved",
                json!({"step": "isolate-instance", "level": 0, "approver": "arn:aws:iam::111122223333:user/alice", "principal": "user/alice", "reason": "miner", "requester": "gate"}),
            ),
            (
                "ir-record",
                "step-failed",
                json!({"step": "isolate-instance", "error": "Retryable", "cause": "throttled"}),
            ),
            (
                "ir-record",
                "action:ir-isolate-instance",
                result("isolate-instance", "applied", Value::Null),
            ),
            (
                "ir-record",
                "step-not-approved",
                json!({"step": "revoke-credentials", "error": "Rejected", "cause": "not this one"}),
            ),
            (
                "gate",
                "approval-requested",
                json!({"step": "deny", "level": 1, "role": "security_lead", "timeoutSeconds": 900, "requester": "gate", "plan": {"id": "deny", "action": "cloud:security_group_deny_all", "function": "ir-isolate-instance", "requiresApproval": true, "destructive": true, "mode": "enforce", "target": "i-1", "summary": "isolate"}}),
            ),
            (
                "ir-record",
                "action:ir-broken",
                json!({"step": "broken", "outcome": "exploded"}),
            ),
            (
                "ir-record",
                "playbook-finished",
                json!({"playbook": "p", "mode": "enforce", "contained": true, "destructiveApplied": ["isolate-instance"], "notApplied": ["revoke-credentials"], "status": "contained", "containedAt": null, "mttcSeconds": null}),
            ),
        ]);
        let d = digest(&c, None);
        let steps: Vec<(&str, StepState)> =
            d.steps.iter().map(|s| (s.step.as_str(), s.state)).collect();
        assert_eq!(
            steps,
            [
                ("collect-evidence", StepState::Applied),
                ("isolate-instance", StepState::Applied),
                ("revoke-credentials", StepState::NotApproved),
                ("deny", StepState::AwaitingApproval),
                ("broken", StepState::NotRun),
            ]
        );
        let isolate = &d.steps[1];
        let result = isolate.result.as_ref().unwrap();
        assert_eq!(result.changes[0].before, json!(["sg-a", "sg-b"]));
        assert_eq!(result.changes[0].status, ChangeStatus::Applied);
        assert_eq!(result.aws_calls, 17);
        // The failure before the successful retry is kept, but the state is the result's.
        assert_eq!(isolate.error.as_ref().unwrap().error, "Retryable");
        let decided = isolate.decision().unwrap();
        assert_eq!(decided.actor, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(decided.reason.as_deref(), Some("miner"));
        assert_eq!(
            isolate.approvals[0].role.as_deref(),
            Some("security_engineer")
        );
        assert_eq!(isolate.approvals[0].timeout_seconds, Some(300));
        assert_eq!(d.manifests.len(), 1);
        assert_eq!(d.manifests[0].0, "collect-evidence");
        assert_eq!(d.manifests[0].1.objects, 2);
        let end = d.finished.unwrap();
        assert!(end.contained);
        assert_eq!(end.destructive_applied, ["isolate-instance"]);
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert!(d.notes[0].contains("is not a step result"), "{:?}", d.notes);
    }

    #[test]
    fn a_failure_after_the_result_is_the_state() {
        let c = chain(&[
            (
                "ir-record",
                "action:ir-snapshot-volumes",
                result("snapshot", "planned", Value::Null),
            ),
            (
                "ir-record",
                "step-failed",
                json!({"step": "snapshot", "error": "AccessDenied", "cause": "no"}),
            ),
            (
                "arn:x",
                "rejected",
                json!({"step": "gated", "level": 0, "approver": "arn:x", "principal": "user/x", "reason": "", "requester": "gate"}),
            ),
        ]);
        let d = digest(&c, None);
        assert_eq!(d.steps[0].state, StepState::Failed);
        assert_eq!(d.steps[1].state, StepState::Rejected);
        assert_eq!(d.steps[1].approvals[0].reason, None);
    }

    #[test]
    fn verification_serializes_as_one_object() {
        let ok = Verification::Verified(Verified {
            records: 3,
            head: "ab".into(),
            anchors_checked: 1,
            unanchored: 0,
            unanchored_from: None,
        });
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"verified": true, "records": 3, "head": "ab", "anchorsVerified": 1})
        );
        let failed = Verification::Failed {
            name: ErrorName::VerificationFailed,
            message: "record 1 does not match its hash (edited)".into(),
        };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"verified": false, "error": "VerificationFailed", "message": "record 1 does not match its hash (edited)"})
        );
    }

    #[test]
    fn the_timeline_derives_the_metrics() {
        let t = TimelineReport::new(Timeline {
            first_seen: Some(datetime!(2026-11-20 10:00 UTC)),
            detected_at: datetime!(2026-11-20 10:01:02 UTC),
            triaged_at: Some(datetime!(2026-11-20 10:01:02.4 UTC)),
            contained_at: Some(datetime!(2026-11-20 10:01:05.1 UTC)),
            resolved_at: None,
        });
        assert_eq!(t.mttd_seconds, Some(62.0));
        assert_eq!(t.mttc_seconds, Some(3.1));
        assert_eq!(t.triage_seconds, Some(0.4));
        assert_eq!(t.resolve_seconds, None);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["detectedAt"], "2026-11-20T10:01:02Z");
        assert_eq!(v["mttcSeconds"], 3.1);
    }
}
