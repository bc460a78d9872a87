//! The recorder: the incident record and its audit chain, kept as findings arrive, as triage
//! decides, as playbook steps run and as playbooks finish.
//!
//! - [`Intake`](crate::intake::Intake) (`ir-ingest`, in `intake.rs`): every normalized finding
//!   stored, audited and sent to triage.
//! - [`Recorder`] (`ir-record`): the [`RecordRequest`]s the state machines send: the triage
//!   decision (which moves the incident to containment and returns the [`PlaybookInput`]), step
//!   results (the containment record release needs, every change before → after), failures and
//!   refusals, and the end of a playbook (containment → contained, and the audit head anchored in
//!   the Object Lock evidence bucket); and, for `ir release`, the release that resolves the
//!   incident (its changes, `resolved`, the head anchored again) or the release that failed.
//!
//! ## Idempotency under Step Functions retries
//!
//! A `lambda:invoke` task is retried when the function fails, and a failure can come after some
//! of its writes landed. The incident's writes are idempotent by themselves (a decision recorded
//! again, a containment record already present, a transition already made change nothing). The
//! audit chain is append-only, so every recorder call is keyed by (incident, action, step,
//! detail): before appending, the chain is read (strongly consistent) and the record is skipped
//! when the chain's latest record with the same action for the same step has the same detail
//! (canonical JSON). Details never carry the call's own time or attempt, only what the request
//! says and what the incident holds, so a retry produces the same detail and appends nothing,
//! while a different outcome for the same step (a new report, an escalation to another level)
//! is appended. The latest record rather than any earlier one is compared, so that a repeated
//! event that really happened again after something else (an approval requested again at the
//! same level after a decision) is still recorded. Ingest records (`opened`, `repeated`,
//! `attached`) are never skipped: every delivery is one.
//!
//! The task token of an approval never reaches this module.

use std::collections::{BTreeMap, BTreeSet};

use ir_core::action::{ActionReport, Artifacts, ChangeStatus, Outcome};
use ir_core::audit::Anchor;
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::correlate::is_incident_id;
use ir_core::incident::Status;
use ir_core::orchestration::{PlaybookInput, RecordRequest, StateError};
use ir_core::{Decision, ErrorName, Named, SecurityEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;
use time::OffsetDateTime;

use ir_actions::ActionError;
use ir_aws::Clients;
use ir_aws::sdk::SdkFailure;
use ir_aws::store::{Incident, IncidentPatch, IncidentStore, StoreError, TableNames};

use crate::audit_writer::AuditWriter;

/// The actor of the records [`Intake`] appends.
pub const INGEST_ACTOR: &str = "ir-ingest";
/// The actor of the records [`Recorder`] appends.
pub const RECORD_ACTOR: &str = "ir-record";
/// Why the audit head is anchored when an incident leaves containment.
pub const LEFT_CONTAINMENT: &str = "left-containment";
/// The audit action, and the anchor's reason, when an incident is resolved.
pub const RESOLVED: &str = "resolved";
/// The audit action recording the triage execution of an incident.
pub const TRIAGE_STARTED: &str = "triage-started";
/// Longest error cause kept in an incident or an audit record (a Lambda error's cause can be a
/// whole stack); longer causes are cut and say so.
pub const MAX_CAUSE_CHARS: usize = 4096;

pub(crate) const START_EXECUTION: &str = "states:StartExecution";

/// The error of the recorder and of ingest.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The request cannot be recorded as it is (an id that is not an incident id, a report for
    /// another step, a triage with no events).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The incident is not in a state the request can apply to (resolved while it was triaged).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The function is configured wrong (a triage state machine that does not exist).
    #[error("configuration: {0}")]
    Configuration(String),
    /// The incident store or the audit log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A Step Functions call failed; classified by its error code.
    #[error(transparent)]
    Aws(SdkFailure),
}

impl Named for RecordError {
    fn error_name(&self) -> ErrorName {
        match self {
            RecordError::InvalidInput(_) => ErrorName::InvalidInput,
            RecordError::Conflict(_) => ErrorName::Conflict,
            RecordError::Configuration(_) => ErrorName::Configuration,
            RecordError::Store(e) => e.error_name(),
            RecordError::Aws(f) => f.name,
        }
    }
}

fn check_id(incident_id: &str) -> Result<(), RecordError> {
    if is_incident_id(incident_id) {
        Ok(())
    } else {
        Err(RecordError::InvalidInput(format!(
            "`{incident_id}` is not an incident id"
        )))
    }
}

/// `text` cut to at most `max` characters, saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!(
            "{}… ({} more bytes cut)",
            &text[..at],
            text.len().saturating_sub(at)
        ),
    }
}

/// An RFC 3339 UTC time as an audit detail value (`null` when unknown).
pub(crate) fn stamp(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

/// What the recorder answers: the playbook input for `triaged`, an acknowledgement otherwise.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RecordOutput {
    /// `triaged`: the input of the playbook state machine.
    Playbook(Box<PlaybookInput>),
    /// Every other kind.
    Recorded(Recorded),
}

/// What a recorder call wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub incident_id: String,
    /// The audit action (`action:ir-isolate-instance`, `step-failed`, `playbook-finished`, …).
    pub action: String,
    /// The audit record's sequence number and hash.
    pub seq: u64,
    pub hash: String,
    /// `false`: a retried call; the record was already in the chain.
    pub appended: bool,
    /// The incident's status after the call.
    pub status: Status,
    /// `playbook-finished` after containment: the anchor written to the evidence bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

/// Where the recorder anchors the audit chain.
#[derive(Debug, Clone)]
pub struct RecorderSettings {
    /// The Object Lock evidence bucket (`IR_EVIDENCE_BUCKET`).
    pub evidence_bucket: String,
    /// Its lock mode and retention.
    pub evidence: EvidenceConfig,
}

/// The recorder of `ir-record`.
#[derive(Debug, Clone)]
pub struct Recorder {
    incidents: IncidentStore,
    audit: AuditWriter,
    settings: RecorderSettings,
}

/// The audit detail of a step that ran, as written and read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepAudit {
    step: String,
    function: String,
    outcome: Outcome,
    mode: Mode,
    changes: Vec<ChangeAudit>,
    #[serde(default)]
    record: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifacts: Option<Value>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    aws_calls: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeAudit {
    target: String,
    attribute: String,
    before: Value,
    after: Value,
    status: ChangeStatus,
}

/// The artifacts of a step, small enough for an audit record: snapshots in full, evidence by its
/// manifest (which lists every object with its SHA-256 in the locked bucket).
fn artifacts_audit(a: &Artifacts) -> Value {
    match a {
        Artifacts::Snapshots {
            instance_id,
            snapshots,
        } => json!({"kind": "snapshots", "instanceId": instance_id, "snapshots": snapshots}),
        Artifacts::Evidence(m) => json!({
            "kind": "evidence",
            "bucket": m.bucket,
            "manifestKey": m.manifest_key,
            "manifestVersionId": m.manifest_version_id,
            "objects": m.objects.len(),
        }),
    }
}

fn step_audit(report: &ActionReport) -> StepAudit {
    StepAudit {
        step: report.step_id.clone(),
        function: report.action.clone(),
        outcome: report.outcome,
        mode: report.mode,
        changes: report
            .changes
            .iter()
            .map(|c| ChangeAudit {
                target: c.target.clone(),
                attribute: c.attribute.clone(),
                before: c.before.clone(),
                after: c.after.clone(),
                status: c.status,
            })
            .collect(),
        record: report.record.is_some(),
        artifacts: report.artifacts.as_ref().map(artifacts_audit),
        notes: report.notes.clone(),
        aws_calls: report.aws_calls,
    }
}

fn error_detail(step: &str, error: &StateError) -> Value {
    json!({
        "step": step,
        "error": truncate(&error.error, 256),
        "cause": truncate(&error.cause, MAX_CAUSE_CHARS),
    })
}

fn error_message(error: &StateError) -> String {
    let cause = truncate(&error.cause, MAX_CAUSE_CHARS);
    if cause.is_empty() {
        error.error.clone()
    } else {
        format!("{}: {cause}", error.error)
    }
}

/// The triage decision as audited: severity, score breakdown, playbook, steps and gates, SLA.
fn triage_detail(d: &Decision) -> Value {
    let steps: Vec<Value> = d
        .playbook
        .steps
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "action": s.action,
                "function": s.function,
                "mode": s.mode.as_str(),
                "requiresApproval": s.requires_approval,
                "destructive": s.destructive,
                "target": s.target,
            })
        })
        .collect();
    let gates: Vec<&str> = d.approval_gates().map(|s| s.id.as_str()).collect();
    json!({
        "severity": d.severity.as_str(),
        "findingSeverity": d.finding_severity.as_str(),
        "score": d.score,
        "playbook": d.playbook.id,
        "trigger": d.playbook.trigger,
        "mode": d.playbook.mode.as_str(),
        "samplesOnly": d.samples_only,
        "steps": steps,
        "gates": gates,
        "notApplicable": d.playbook.not_applicable,
        "sla": d.sla,
        "escalation": d.escalation,
        "onExhausted": d.on_exhausted,
        "status": Status::Containment.as_str(),
    })
}

impl Recorder {
    /// The recorder on these clients and tables.
    pub fn new(clients: Clients, names: TableNames, settings: RecorderSettings) -> Recorder {
        Recorder {
            incidents: IncidentStore::new(clients.clone(), names.clone()),
            audit: AuditWriter::new(&clients, &names),
            settings,
        }
    }

    /// Records one request at the current time.
    pub async fn record(&self, request: RecordRequest) -> Result<RecordOutput, RecordError> {
        self.record_at(request, OffsetDateTime::now_utc()).await
    }

    /// Records one request at `now` (see the module docs for what each kind writes).
    pub async fn record_at(
        &self,
        request: RecordRequest,
        now: OffsetDateTime,
    ) -> Result<RecordOutput, RecordError> {
        match request {
            RecordRequest::Triaged {
                incident_id,
                events,
                decision,
                detected_at,
            } => {
                check_id(&incident_id)?;
                self.triaged(&incident_id, &events, decision, detected_at, now)
                    .await
                    .map(|p| RecordOutput::Playbook(Box::new(p)))
            }
            RecordRequest::TriageFailed { incident_id, error } => {
                check_id(&incident_id)?;
                self.failed(&incident_id, "triage", "triage-failed", &error, now)
                    .await
                    .map(RecordOutput::Recorded)
            }
            RecordRequest::StepResult {
                incident_id,
                step_id,
                report,
            } => {
                check_id(&incident_id)?;
                self.step_result(&incident_id, &step_id, &report, now)
                    .await
                    .map(RecordOutput::Recorded)
            }
            RecordRequest::StepFailed {
                incident_id,
                step_id,
                error,
            } => {
                check_id(&incident_id)?;
                self.failed(&incident_id, &step_id, "step-failed", &error, now)
                    .await
                    .map(RecordOutput::Recorded)
            }
            RecordRequest::StepNotApproved {
                incident_id,
                step_id,
                error,
            } => {
                check_id(&incident_id)?;
                self.failed(&incident_id, &step_id, "step-not-approved", &error, now)
                    .await
                    .map(RecordOutput::Recorded)
            }
            RecordRequest::PlaybookFinished {
                incident_id,
                playbook_id,
            } => {
                check_id(&incident_id)?;
                self.playbook_finished(&incident_id, &playbook_id, now)
                    .await
                    .map(RecordOutput::Recorded)
            }
        }
    }

    /// A release that ran in enforce mode (`ir release --enforce`): its report audited under the
    /// operator who asked for it, the incident resolved (`resolvedAt`; its last error cleared),
    /// `resolved` audited, and the chain head anchored in the evidence bucket. A retried call
    /// appends nothing twice and anchors the same head again.
    pub async fn released(
        &self,
        incident_id: &str,
        actor: &str,
        report: &ActionReport,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        check_id(incident_id)?;
        if report.incident_id != incident_id || report.mode != Mode::Enforce {
            return Err(RecordError::InvalidInput(format!(
                "a release of {incident_id} is recorded from its enforce-mode report (got {} {})",
                report.incident_id,
                report.mode.as_str()
            )));
        }
        let detail = serde_json::to_value(step_audit(report)).map_err(|e| {
            RecordError::InvalidInput(format!("the release report cannot be audited: {e}"))
        })?;
        let action = format!("action:{}", report.action);
        self.audit
            .append_once(incident_id, None, actor, &action, detail, now)
            .await?;
        let current = self.get(incident_id).await?;
        let from = current.summary.status;
        let resolved = match from {
            Status::Resolved | Status::Postmortem => current,
            Status::Triage | Status::Containment | Status::Contained => {
                let patch = IncidentPatch {
                    clear_error: true,
                    ..IncidentPatch::default()
                };
                match self
                    .incidents
                    .transition(incident_id, from, Status::Resolved, now, patch)
                    .await
                {
                    Ok(i) => i,
                    // Moved meanwhile (a concurrent retry of this call): fine once resolved.
                    Err(StoreError::Conflict(why)) => {
                        let again = self.get(incident_id).await?;
                        if again.summary.status != Status::Resolved {
                            return Err(RecordError::Conflict(why));
                        }
                        again
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let t = &resolved.summary.timeline;
        let detail = json!({
            "step": report.step_id,
            "by": actor,
            "reason": reason,
            "from": from.as_str(),
            "released": report.changes.len(),
            "resolvedAt": stamp(t.resolved_at),
            "openSeconds": t.resolved_at.map(|r| (r - t.detected_at).whole_seconds()),
        });
        let appended = self
            .audit
            .append_once(incident_id, None, actor, RESOLVED, detail, now)
            .await?;
        let anchor = self
            .audit
            .log()
            .anchor(
                incident_id,
                RESOLVED,
                &self.settings.evidence_bucket,
                &self.settings.evidence,
                now,
            )
            .await?;
        tracing::info!(incident_id, seq = anchor.seq, hash = %anchor.hash, by = actor, "released and resolved; audit head anchored");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: RESOLVED.to_owned(),
            seq: appended.record.seq,
            hash: appended.record.hash,
            appended: appended.appended,
            status: resolved.summary.status,
            anchor: Some(anchor),
        })
    }

    /// A release that failed: the incident shows the error (it stays as it was), the audit
    /// chain records who asked, the error, and what was restored before it.
    pub async fn release_failed(
        &self,
        incident_id: &str,
        actor: &str,
        step_id: &str,
        error: &ActionError,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        check_id(incident_id)?;
        let message = truncate(&error.to_string(), MAX_CAUSE_CHARS);
        let incident = self
            .incidents
            .record_error(incident_id, step_id, &message)
            .await?;
        let done = match error {
            ActionError::Incomplete { done, .. } => serde_json::to_value(step_audit(done)).ok(),
            _ => None,
        };
        let detail = json!({
            "step": step_id,
            "by": actor,
            "error": error.error_name().as_str(),
            "cause": message,
            "restoredBeforeTheFailure": done,
        });
        let appended = self
            .audit
            .append_patiently(incident_id, actor, "release-failed", detail, now)
            .await?;
        tracing::warn!(incident_id, step_id, error = %error.error_name(), "release failed; recorded");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: "release-failed".to_owned(),
            seq: appended.seq,
            hash: appended.hash,
            appended: true,
            status: incident.summary.status,
            anchor: None,
        })
    }

    async fn get(&self, incident_id: &str) -> Result<Incident, RecordError> {
        self.incidents.get(incident_id).await?.ok_or_else(|| {
            RecordError::Store(StoreError::NotFound(format!("incident {incident_id}")))
        })
    }

    /// Stores the decision, moves the incident triage → containment, audits `triaged`.
    async fn triaged(
        &self,
        incident_id: &str,
        events: &[SecurityEvent],
        decision: Decision,
        detected_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<PlaybookInput, RecordError> {
        if decision.incident_id != incident_id {
            return Err(RecordError::InvalidInput(format!(
                "the decision is for incident {}, not {incident_id}",
                decision.incident_id
            )));
        }
        let detail = triage_detail(&decision);
        let input = PlaybookInput::new(events, decision, detected_at).ok_or_else(|| {
            RecordError::InvalidInput(format!("incident {incident_id}: a triage with no events"))
        })?;
        let incident = self
            .incidents
            .record_decision(incident_id, &input.decision, now)
            .await?;
        match incident.summary.status {
            Status::Triage => {
                match self
                    .incidents
                    .transition(
                        incident_id,
                        Status::Triage,
                        Status::Containment,
                        now,
                        IncidentPatch::default(),
                    )
                    .await
                {
                    Ok(_) => {}
                    // Moved meanwhile by a concurrent attempt of this same call: fine if it is in
                    // containment now.
                    Err(StoreError::Conflict(why)) => {
                        let now_status = self.get(incident_id).await?.summary.status;
                        if !matches!(now_status, Status::Containment | Status::Contained) {
                            return Err(RecordError::Conflict(why));
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // A retried call: the transition was made.
            Status::Containment | Status::Contained => {}
            status @ (Status::Resolved | Status::Postmortem) => {
                return Err(RecordError::Conflict(format!(
                    "incident {incident_id} is {status}: it was closed while it was triaged; no playbook runs"
                )));
            }
        }
        self.audit
            .append_once(incident_id, None, RECORD_ACTOR, "triaged", detail, now)
            .await?;
        tracing::info!(
            incident_id,
            severity = %input.decision.severity,
            playbook = %input.decision.playbook.id,
            mode = input.mode.as_str(),
            "triage recorded; incident in containment"
        );
        Ok(input)
    }

    /// A step's report: its containment record kept for release, every change audited.
    async fn step_result(
        &self,
        incident_id: &str,
        step_id: &str,
        report: &ActionReport,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        if report.incident_id != incident_id || report.step_id != step_id {
            return Err(RecordError::InvalidInput(format!(
                "the report is for {} step {}, not {incident_id} step {step_id}",
                report.incident_id, report.step_id
            )));
        }
        let incident = match &report.record {
            Some(r) => {
                self.incidents
                    .add_records(incident_id, std::slice::from_ref(r))
                    .await?
            }
            None => self.get(incident_id).await?,
        };
        let detail = serde_json::to_value(step_audit(report)).map_err(|e| {
            RecordError::InvalidInput(format!("report of {step_id} cannot be audited: {e}"))
        })?;
        let action = format!("action:{}", report.action);
        let appended = self
            .audit
            .append_once(incident_id, None, RECORD_ACTOR, &action, detail, now)
            .await?;
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action,
            seq: appended.record.seq,
            hash: appended.record.hash,
            appended: appended.appended,
            status: incident.summary.status,
            anchor: None,
        })
    }

    /// A failure or a refusal: shown on the incident, audited.
    async fn failed(
        &self,
        incident_id: &str,
        step_id: &str,
        action: &str,
        error: &StateError,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        let message = error_message(error);
        let incident = self
            .incidents
            .record_error(incident_id, step_id, &message)
            .await?;
        let appended = self
            .audit
            .append_once(
                incident_id,
                None,
                RECORD_ACTOR,
                action,
                error_detail(step_id, error),
                now,
            )
            .await?;
        tracing::warn!(incident_id, step_id, action, error = %error.error, "failure recorded");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: action.to_owned(),
            seq: appended.record.seq,
            hash: appended.record.hash,
            appended: appended.appended,
            status: incident.summary.status,
            anchor: None,
        })
    }

    /// The end of a playbook: contained when a destructive step was applied in enforce mode.
    async fn playbook_finished(
        &self,
        incident_id: &str,
        playbook_id: &str,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        let incident = self.get(incident_id).await?;
        let decision = incident.decision.as_ref().ok_or_else(|| {
            RecordError::Conflict(format!(
                "incident {incident_id} has no triage decision: playbook {playbook_id} cannot have run"
            ))
        })?;
        if decision.playbook.id != playbook_id {
            return Err(RecordError::InvalidInput(format!(
                "incident {incident_id} was routed to playbook {}, not {playbook_id}",
                decision.playbook.id
            )));
        }
        let chain = self.audit.log().chain(incident_id).await?;
        let destructive: BTreeSet<&str> = decision
            .playbook
            .steps
            .iter()
            .filter(|s| s.destructive)
            .map(|s| s.id.as_str())
            .collect();
        // The latest result of every step that ran.
        let mut ran: BTreeMap<String, StepAudit> = BTreeMap::new();
        for r in chain.iter().filter(|r| r.action.starts_with("action:")) {
            if let Ok(step) = serde_json::from_value::<StepAudit>(r.detail.clone()) {
                ran.insert(step.step.clone(), step);
            }
        }
        // Applied, or already in place, in enforce mode: the containment holds.
        let applied: Vec<String> = ran
            .values()
            .filter(|s| {
                destructive.contains(s.step.as_str())
                    && s.mode == Mode::Enforce
                    && matches!(s.outcome, Outcome::Applied | Outcome::AlreadyInPlace)
            })
            .map(|s| s.step.clone())
            .collect();
        let dry_run: Vec<String> = ran
            .values()
            .filter(|s| destructive.contains(s.step.as_str()) && s.mode == Mode::DryRun)
            .map(|s| s.step.clone())
            .collect();
        let unfinished: Vec<String> = chain
            .iter()
            .filter(|r| matches!(r.action.as_str(), "step-failed" | "step-not-approved"))
            .filter_map(|r| r.detail.get("step").and_then(Value::as_str))
            .filter(|s| destructive.contains(s) && !ran.contains_key(*s))
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();

        let contained = !applied.is_empty();
        let mut status = incident.summary.status;
        let mut contained_at = incident.summary.timeline.contained_at;
        if contained && status == Status::Containment {
            let moved = match self
                .incidents
                .transition(
                    incident_id,
                    Status::Containment,
                    Status::Contained,
                    now,
                    IncidentPatch::default(),
                )
                .await
            {
                Ok(i) => i,
                Err(StoreError::Conflict(_)) => self.get(incident_id).await?,
                Err(e) => return Err(e.into()),
            };
            status = moved.summary.status;
            contained_at = moved.summary.timeline.contained_at;
        }
        let detail = if contained {
            let mttc =
                contained_at.map(|c| (c - incident.summary.timeline.detected_at).whole_seconds());
            json!({
                "playbook": playbook_id,
                "mode": decision.playbook.mode.as_str(),
                "contained": true,
                "destructiveApplied": applied,
                "notApplied": unfinished,
                "status": status.as_str(),
                "containedAt": stamp(contained_at),
                "mttcSeconds": mttc,
            })
        } else {
            let why = if decision.playbook.mode == Mode::DryRun || !dry_run.is_empty() {
                "dry-run: the plan was computed and nothing was changed, so nothing was contained"
            } else if destructive.is_empty() {
                "the playbook has no containment step: nothing was contained"
            } else {
                "no containment step was applied in enforce mode (not approved, failed or not applicable): nothing was contained"
            };
            json!({
                "playbook": playbook_id,
                "mode": decision.playbook.mode.as_str(),
                "contained": false,
                "why": why,
                "plannedOnly": dry_run,
                "notApplied": unfinished,
                "status": status.as_str(),
            })
        };
        let appended = self
            .audit
            .append_once(
                incident_id,
                Some(&chain),
                RECORD_ACTOR,
                "playbook-finished",
                detail,
                now,
            )
            .await?;
        let anchor = if contained {
            let a = self
                .audit
                .log()
                .anchor(
                    incident_id,
                    LEFT_CONTAINMENT,
                    &self.settings.evidence_bucket,
                    &self.settings.evidence,
                    now,
                )
                .await?;
            tracing::info!(incident_id, seq = a.seq, hash = %a.hash, "audit head anchored");
            Some(a)
        } else {
            None
        };
        tracing::info!(incident_id, playbook_id, contained, status = %status, "playbook finished");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: "playbook-finished".to_owned(),
            seq: appended.record.seq,
            hash: appended.record.hash,
            appended: appended.appended,
            status,
            anchor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_causes_are_cut_and_say_so() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(20), 5);
        assert!(cut.starts_with("ééééé… ("), "{cut}");
        assert!(cut.contains("30 more bytes cut"), "{cut}");
    }
}
