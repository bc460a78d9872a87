//! The recorder: the incident record and its audit chain, kept as findings arrive, as triage
//! decides, as playbook steps run and as playbooks finish.
//!
//! - [`Intake`](crate::intake::Intake) (`ir-ingest`, in `intake.rs`): every normalized finding
//!   stored, audited and sent to triage.
//! - [`Recorder`] (`ir-record`): the [`RecordRequest`]s the state machines send: the triage
//!   decision (which moves the incident to containment and returns the [`PlaybookInput`]), step
//!   results (the containment record release needs, every change before → after), failures and
//!   refusals, and the end of a playbook (containment → contained when something was applied);
//!   and, for `ir release`, the release that resolves the incident (its changes, `resolved`) or
//!   the release that failed. The audit head is anchored in the Object Lock evidence bucket at
//!   every status change (triaged → containment, contained, resolved) and whenever a playbook
//!   finishes, in any mode.
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

use ir_core::action::{ActionReport, Outcome};
use ir_core::audit::event::{
    self, AuditEvent, PlaybookEnd, PlaybookFinished, StepAudit, StepFailure, actions,
};
use ir_core::audit::{Anchor, AuditRecord};
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::correlate::is_incident_id;
use ir_core::incident::Status;
use ir_core::orchestration::{PlaybookInput, QueueWait, RecordRequest, SlotClaim, StateError};
use ir_core::slots::Claim;
use ir_core::{Decision, ErrorName, Named, SecurityEvent};
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

use ir_actions::ActionError;
use ir_aws::Clients;
use ir_aws::sdk::SdkFailure;
use ir_aws::store::{
    Incident, IncidentPatch, IncidentStore, PlaybookSlots, StoreError, TableNames,
};

use crate::audit_writer::AuditWriter;

/// The actor of the records [`Intake`] appends.
pub const INGEST_ACTOR: &str = "ir-ingest";
/// The actor of the records [`Recorder`] appends.
pub const RECORD_ACTOR: &str = "ir-record";
/// Why the audit head is anchored when an incident leaves containment.
pub const LEFT_CONTAINMENT: &str = "left-containment";
/// Why the audit head is anchored when triage moves an incident to containment.
pub const ENTERED_CONTAINMENT: &str = "entered-containment";
/// Why the audit head is anchored when a playbook finishes without containing anything
/// (dry-run, nothing applied): the chain is anchored in every mode.
pub const PLAYBOOK_FINISHED: &str = actions::PLAYBOOK_FINISHED;
/// The audit action, and the anchor's reason, when an incident is resolved.
pub const RESOLVED: &str = actions::RESOLVED;
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

/// What the recorder answers: the playbook input for `triaged`, an acknowledgement otherwise.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RecordOutput {
    /// `triaged`: the input of the playbook state machine.
    Playbook(Box<PlaybookInput>),
    /// `claim-slot`: whether the queued playbook starts now.
    Slot(SlotClaim),
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
    /// `playbook-finished` (any mode) and `resolved`: the anchor written to the evidence bucket.
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
    /// How many playbooks may run at once.
    pub slots: SlotSettings,
}

/// `orchestrator.max_concurrent_playbooks` and `queue_poll_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSettings {
    pub max: u32,
    pub poll_seconds: u32,
}

impl SlotSettings {
    pub fn of(config: &ir_core::config::Config) -> SlotSettings {
        SlotSettings {
            max: config.orchestrator.max_concurrent_playbooks,
            poll_seconds: config.orchestrator.queue_poll_seconds,
        }
    }
}

impl Default for SlotSettings {
    /// The schema's defaults.
    fn default() -> SlotSettings {
        SlotSettings {
            max: 10,
            poll_seconds: 30,
        }
    }
}

/// What [`Recorder::playbook_run`] reads.
struct PlaybookRun {
    incident: Incident,
    decision: Decision,
    chain: Vec<AuditRecord>,
    mode: Mode,
    destructive: BTreeSet<String>,
}

/// The playbook execution `name` of the incident, if it is one of its own: a revision's
/// (`<id>` or `<id>-r<n>`, n at most the incident's revision) or a retry of one
/// (`…-retry<k>`). Its base name (the revision's) then.
fn own_execution(incident_id: &str, revision: u32, name: &str) -> Option<String> {
    let base = match name.rsplit_once("-retry") {
        Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    (0..=revision)
        .map(|r| ir_core::correlate::execution_name(incident_id, r))
        .find(|n| n == base)
}

/// What an ending restored: how many changes, and what it could not (the resource gone).
#[derive(Debug, Clone, Copy)]
struct Restored<'a> {
    released: usize,
    not_restored: &'a [String],
}

/// The recorder of `ir-record`.
#[derive(Debug, Clone)]
pub struct Recorder {
    incidents: IncidentStore,
    audit: AuditWriter,
    slots: PlaybookSlots,
    settings: RecorderSettings,
}

/// A failure as audited (error name and cause, each cut to size).
fn failure(step: &str, error: &StateError) -> StepFailure {
    StepFailure {
        step: step.to_owned(),
        error: truncate(&error.error, 256),
        cause: truncate(&error.cause, MAX_CAUSE_CHARS),
    }
}

fn error_message(error: &StateError) -> String {
    let cause = truncate(&error.cause, MAX_CAUSE_CHARS);
    if cause.is_empty() {
        error.error.clone()
    } else {
        format!("{}: {cause}", error.error)
    }
}

impl Recorder {
    /// The recorder on these clients and tables.
    pub fn new(clients: Clients, names: TableNames, settings: RecorderSettings) -> Recorder {
        Recorder {
            incidents: IncidentStore::new(clients.clone(), names.clone()),
            audit: AuditWriter::new(&clients, &names),
            slots: PlaybookSlots::new(clients.clone(), &names),
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
                revision,
            } => {
                check_id(&incident_id)?;
                self.triaged(&incident_id, &events, decision, detected_at, revision, now)
                    .await
                    .map(|p| RecordOutput::Playbook(Box::new(p)))
            }
            RecordRequest::TriageFailed {
                incident_id,
                error,
                revision,
            } => {
                check_id(&incident_id)?;
                let recorded = self
                    .failed(
                        &incident_id,
                        AuditEvent::TriageFailed,
                        "triage",
                        &error,
                        now,
                    )
                    .await?;
                // A triage that failed after it claimed a slot (its start failed) frees it.
                if let Some(revision) = revision {
                    let name = ir_core::correlate::execution_name(&incident_id, revision);
                    self.slots.update(|s| (s.leave(&name), ())).await?;
                }
                Ok(RecordOutput::Recorded(recorded))
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
                self.failed(&incident_id, AuditEvent::StepFailed, &step_id, &error, now)
                    .await
                    .map(RecordOutput::Recorded)
            }
            RecordRequest::StepNotApproved {
                incident_id,
                step_id,
                error,
            } => {
                check_id(&incident_id)?;
                self.failed(
                    &incident_id,
                    AuditEvent::StepNotApproved,
                    &step_id,
                    &error,
                    now,
                )
                .await
                .map(RecordOutput::Recorded)
            }
            RecordRequest::PlaybookFinished {
                incident_id,
                playbook_id,
                execution_name,
            } => {
                check_id(&incident_id)?;
                let recorded = self
                    .playbook_finished(&incident_id, &playbook_id, now)
                    .await?;
                self.free_slot(&incident_id, execution_name.as_deref())
                    .await?;
                Ok(RecordOutput::Recorded(recorded))
            }
            RecordRequest::PlaybookStopped {
                incident_id,
                playbook_id,
                step_id,
                execution_name,
            } => {
                check_id(&incident_id)?;
                // Only the incident's own playbook executions stop it (the name comes from the
                // execution's context, not its input): a run someone started by hand, whatever
                // its input says, cannot put the incident in needs-attention.
                let incident = self.get(&incident_id).await?;
                let ours = execution_name
                    .as_deref()
                    .and_then(|n| own_execution(&incident_id, incident.revision, n));
                let Some(base) = ours else {
                    return Err(RecordError::InvalidInput(format!(
                        "execution {} is not one of incident {incident_id}'s playbook runs: \
                         it does not stop the incident",
                        execution_name.as_deref().unwrap_or("(unnamed)")
                    )));
                };
                let recorded = self
                    .playbook_stopped(&incident_id, &playbook_id, &step_id, now)
                    .await?;
                // Its slot: the run is known to be the incident's own, no second read.
                self.slots.update(|s| (s.leave(&base), ())).await?;
                Ok(RecordOutput::Recorded(recorded))
            }
            RecordRequest::ClaimSlot {
                incident_id,
                revision,
            } => {
                check_id(&incident_id)?;
                self.claim_slot(&incident_id, revision, now)
                    .await
                    .map(RecordOutput::Slot)
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
        not_restored: &[String],
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
        self.audit
            .append_once(
                incident_id,
                None,
                actor,
                &AuditEvent::Step(StepAudit::of(report)),
                now,
            )
            .await?;
        let restored = Restored {
            released: report.changes.len(),
            not_restored,
        };
        self.resolve(incident_id, actor, &report.step_id, restored, reason, now)
            .await
    }

    /// An incident ended without undoing anything (`ir resolve`): containment and evidence stay
    /// as they are (the resource was rebuilt, terminated or the risk accepted); the incident is
    /// resolved, `resolved` audited under the operator with the reason and `released: 0`, and
    /// the chain head anchored. A retried call appends nothing twice.
    pub async fn resolved_as_is(
        &self,
        incident_id: &str,
        actor: &str,
        step_id: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        check_id(incident_id)?;
        let nothing = Restored {
            released: 0,
            not_restored: &[],
        };
        self.resolve(incident_id, actor, step_id, nothing, reason, now)
            .await
    }

    /// Resolves the incident (from any open status), audits `resolved` and anchors the head.
    async fn resolve(
        &self,
        incident_id: &str,
        actor: &str,
        step_id: &str,
        restored: Restored<'_>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        let Restored {
            released,
            not_restored,
        } = restored;
        let current = self.get(incident_id).await?;
        let from = current.summary.status;
        let resolved = match from {
            Status::Resolved | Status::Postmortem => current,
            Status::Triage
            | Status::Queued
            | Status::Containment
            | Status::Contained
            | Status::NeedsAttention => {
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
        let event = AuditEvent::Resolved(event::Resolved {
            step: step_id.to_owned(),
            by: actor.to_owned(),
            reason: reason.to_owned(),
            from,
            released,
            not_restored: not_restored.to_vec(),
            resolved_at: t.resolved_at,
            open_seconds: t.resolved_at.map(|r| (r - t.detected_at).whole_seconds()),
        });
        let appended = self
            .audit
            .append_once(incident_id, None, actor, &event, now)
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
        tracing::info!(incident_id, seq = anchor.seq, hash = %anchor.hash, by = actor, "resolved; audit head anchored");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: event.action().into_owned(),
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
        let event = AuditEvent::ReleaseFailed(event::ReleaseFailed {
            step: step_id.to_owned(),
            by: actor.to_owned(),
            error: error.error_name().as_str().to_owned(),
            cause: message,
            restored_before_the_failure: match error {
                ActionError::Incomplete { done, .. } => Some(StepAudit::of(done)),
                _ => None,
            },
        });
        let appended = self
            .audit
            .append_patiently(incident_id, actor, &event, now)
            .await?;
        tracing::warn!(incident_id, step_id, error = %error.error_name(), "release failed; recorded");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: event.action().into_owned(),
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

    /// Stores the decision of the incident's revision `revision`, moves the incident triage →
    /// containment, audits `triaged`, and says whether the playbook starts:
    /// - a revision a later finding superseded records nothing on the incident and starts
    ///   nothing (the later revision's triage decides);
    /// - a playbook an earlier revision already started is not started again;
    /// - steps an earlier revision applied (containment, snapshots: `once_per_incident`) are
    ///   marked done and left out of the plan the state machine runs.
    ///
    /// Everything is decided from the incident's own record and audit chain; the revision in
    /// the request must be one the incident has.
    async fn triaged(
        &self,
        incident_id: &str,
        events: &[SecurityEvent],
        mut decision: Decision,
        detected_at: OffsetDateTime,
        revision: u32,
        now: OffsetDateTime,
    ) -> Result<PlaybookInput, RecordError> {
        if decision.incident_id != incident_id {
            return Err(RecordError::InvalidInput(format!(
                "the decision is for incident {}, not {incident_id}",
                decision.incident_id
            )));
        }
        decision.revision = revision;
        let chain = self.audit.log().chain(incident_id).await?;
        let history = Revisions::of(&chain);
        if revision > 0 {
            history.mark_done(&mut decision);
        }
        let already_started = history.started_before(&decision.playbook.id, revision);
        let mut input = PlaybookInput::new(events, decision, detected_at).ok_or_else(|| {
            RecordError::InvalidInput(format!("incident {incident_id}: a triage with no events"))
        })?;
        let incident = match self
            .incidents
            .record_decision(incident_id, &input.decision, now)
            .await
        {
            Ok(i) => i,
            Err(StoreError::Conflict(why)) => return Err(RecordError::Conflict(why)),
            Err(e) => return Err(e.into()),
        };
        if let Some(first) = incident.summary.timeline.first_seen {
            input.first_seen = input.first_seen.min(first);
        }
        let recorded = incident.decision.as_ref().map(|d| d.revision) == Some(revision)
            && incident.revision == revision;
        if !recorded {
            input.start = false;
            input.not_started = Some(format!(
                "superseded: a later finding revised the incident (revision {}), whose triage decides",
                incident.revision
            ));
        } else if let Some(earlier) = already_started {
            input.start = false;
            input.not_started = Some(format!(
                "playbook {} was already started by revision {earlier}",
                input.decision.playbook.id
            ));
        }
        // A playbook that starts takes a slot, or waits for one in the queue.
        if input.start
            && let Claim::Queued { position, running } =
                self.claim(&input.execution_name, now).await?
        {
            input.start = false;
            input.queue = Some(QueueWait {
                position,
                running,
                poll_seconds: self.settings.slots.poll_seconds,
            });
        }
        let mut status = incident.summary.status;
        if recorded && status == Status::Triage {
            let to = if input.queue.is_some() {
                Status::Queued
            } else {
                Status::Containment
            };
            status = self.moved(incident_id, Status::Triage, to, now).await?;
        }
        let mut audited = event::Triaged::of(&input.decision);
        audited.status = status;
        audited.not_started = input.not_started.clone();
        let triaged = AuditEvent::Triaged(Box::new(audited));
        self.audit
            .append_once(incident_id, None, RECORD_ACTOR, &triaged, now)
            .await?;
        if let Some(wait) = &input.queue {
            let queued = AuditEvent::PlaybookQueued(event::PlaybookQueued {
                playbook: input.decision.playbook.id.clone(),
                execution: input.execution_name.clone(),
                position: wait.position,
                running: wait.running,
                max: self.settings.slots.max,
            });
            self.audit
                .append_once(incident_id, None, RECORD_ACTOR, &queued, now)
                .await?;
        }
        // Every status change is anchored: what triage decided cannot be rewritten later.
        self.anchor(incident_id, ENTERED_CONTAINMENT, now).await?;
        tracing::info!(
            incident_id,
            revision,
            severity = %input.decision.severity,
            playbook = %input.decision.playbook.id,
            mode = input.mode.as_str(),
            start = input.start,
            not_started = input.not_started.as_deref().unwrap_or(""),
            "triage recorded"
        );
        Ok(input)
    }

    /// Moves the incident `from → to`, tolerating a concurrent attempt of the same call that
    /// moved it already (to `to`, or beyond it); the status it is in now.
    async fn moved(
        &self,
        incident_id: &str,
        from: Status,
        to: Status,
        now: OffsetDateTime,
    ) -> Result<Status, RecordError> {
        match self
            .incidents
            .transition(incident_id, from, to, now, IncidentPatch::default())
            .await
        {
            Ok(i) => Ok(i.summary.status),
            Err(StoreError::Conflict(why)) => {
                let now_status = self.get(incident_id).await?.summary.status;
                let beyond = match to {
                    Status::Queued => {
                        matches!(
                            now_status,
                            Status::Queued | Status::Containment | Status::Contained
                        )
                    }
                    _ => matches!(now_status, Status::Containment | Status::Contained),
                };
                if beyond || now_status == to {
                    Ok(now_status)
                } else {
                    Err(RecordError::Conflict(why))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A slot for the playbook execution `name`: granted, held already (a retried call), or
    /// where it waits.
    async fn claim(&self, name: &str, now: OffsetDateTime) -> Result<Claim, RecordError> {
        let SlotSettings { max, poll_seconds } = self.settings.slots;
        Ok(self
            .slots
            .update(|s| {
                let before = s.clone();
                let claim = s.claim(name, max, poll_seconds, now);
                (*s != before, claim)
            })
            .await?)
    }

    /// A queued revision asks for its slot again. It stops waiting (and leaves the queue) when
    /// the incident was ended or revised meanwhile; when the slot is granted the incident moves
    /// `queued → containment`, `playbook-dequeued` is audited and the playbook starts.
    async fn claim_slot(
        &self,
        incident_id: &str,
        revision: u32,
        now: OffsetDateTime,
    ) -> Result<SlotClaim, RecordError> {
        let incident = self.get(incident_id).await?;
        let name = ir_core::correlate::execution_name(incident_id, revision);
        let status = incident.summary.status;
        let ended = if !status.is_open() {
            Some(format!("incident {incident_id} is {status}"))
        } else if incident.revision != revision {
            Some(format!(
                "superseded: the incident is at revision {}, whose triage decides",
                incident.revision
            ))
        } else {
            None
        };
        if let Some(why) = ended {
            self.slots.update(|s| (s.leave(&name), ())).await?;
            tracing::info!(incident_id, revision, why = %why, "stopped waiting for a playbook slot");
            return Ok(SlotClaim {
                start: false,
                ended: true,
                position: None,
                why: Some(why),
            });
        }
        let waited = match self.claim(&name, now).await? {
            Claim::Queued { position, .. } => {
                return Ok(SlotClaim {
                    start: false,
                    ended: false,
                    position: Some(position),
                    why: None,
                });
            }
            Claim::Granted { waited_seconds } => Some(waited_seconds),
            Claim::Held => None,
        };
        if status == Status::Queued {
            self.moved(incident_id, Status::Queued, Status::Containment, now)
                .await?;
        }
        if let Some(waited_seconds) = waited {
            let playbook = incident
                .decision
                .as_ref()
                .map(|d| d.playbook.id.clone())
                .unwrap_or_default();
            let event = AuditEvent::PlaybookDequeued(event::PlaybookDequeued {
                playbook,
                execution: name.clone(),
                waited_seconds,
            });
            self.audit
                .append_once(incident_id, None, RECORD_ACTOR, &event, now)
                .await?;
            self.anchor(incident_id, ENTERED_CONTAINMENT, now).await?;
        }
        tracing::info!(incident_id, revision, execution = %name, "playbook slot granted");
        Ok(SlotClaim {
            start: true,
            ended: false,
            position: None,
            why: None,
        })
    }

    /// Frees the slot of a playbook execution that ended (its name from the execution's
    /// context). A run that is not one of the incident's own holds no slot and frees none.
    async fn free_slot(&self, incident_id: &str, name: Option<&str>) -> Result<(), RecordError> {
        let Some(name) = name else {
            return Ok(());
        };
        let revision = self.get(incident_id).await?.revision;
        match own_execution(incident_id, revision, name) {
            // A retry execution (`<name>-retry<n>`) runs outside the slots: it frees its base's,
            // already freed when the playbook stopped, which changes nothing.
            Some(base) => {
                self.slots.update(|s| (s.leave(&base), ())).await?;
            }
            None => {
                tracing::warn!(
                    incident_id,
                    execution = name,
                    "not one of the incident's playbook runs: no slot freed"
                );
            }
        }
        Ok(())
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
        let event = AuditEvent::Step(StepAudit::of(report));
        let appended = self
            .audit
            .append_once(incident_id, None, RECORD_ACTOR, &event, now)
            .await?;
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: event.action().into_owned(),
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
        kind: fn(StepFailure) -> AuditEvent,
        step_id: &str,
        error: &StateError,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        let incident = self
            .incidents
            .record_error(incident_id, step_id, &error_message(error))
            .await?;
        let event = kind(failure(step_id, error));
        let appended = self
            .audit
            .append_once(incident_id, None, RECORD_ACTOR, &event, now)
            .await?;
        let action = event.action().into_owned();
        tracing::warn!(incident_id, step_id, action = %action, error = %error.error, "failure recorded");
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

    /// The incident, its decision and chain, and what the playbook `playbook_id` ran with (its
    /// mode and destructive steps; an earlier revision's playbook included).
    async fn playbook_run(
        &self,
        incident_id: &str,
        playbook_id: &str,
    ) -> Result<PlaybookRun, RecordError> {
        let incident = self.get(incident_id).await?;
        let decision = incident.decision.clone().ok_or_else(|| {
            RecordError::Conflict(format!(
                "incident {incident_id} has no triage decision: playbook {playbook_id} cannot have run"
            ))
        })?;
        let chain = self.audit.log().chain(incident_id).await?;
        let (mode, destructive) = ran_playbook(incident_id, &decision, playbook_id, &chain)?;
        Ok(PlaybookRun {
            incident,
            decision,
            chain,
            mode,
            destructive,
        })
    }

    /// The end of a playbook: contained when a destructive step was applied in enforce mode
    /// (the incident moves to `contained`); audited, and the audit head anchored, either way.
    async fn playbook_finished(
        &self,
        incident_id: &str,
        playbook_id: &str,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        let PlaybookRun {
            incident,
            chain,
            mode,
            destructive,
            ..
        } = self.playbook_run(incident_id, playbook_id).await?;
        let steps = DestructiveSteps::of(&destructive, &chain);
        let (status, contained_at) = if steps.applied.is_empty() {
            (
                incident.summary.status,
                incident.summary.timeline.contained_at,
            )
        } else {
            self.mark_contained(&incident, now).await?
        };
        let finished = steps.finished(playbook_id, mode, status, || {
            contained_at.map(|c| {
                (
                    c,
                    (c - incident.summary.timeline.detected_at).whole_seconds(),
                )
            })
        });
        let contained = finished.contained();
        let event = AuditEvent::PlaybookFinished(finished);
        let appended = self
            .audit
            .append_once(incident_id, Some(&chain), RECORD_ACTOR, &event, now)
            .await?;
        // Anchored in every mode: a dry-run's or an uncontained incident's chain is evidence too.
        let reason = if contained {
            LEFT_CONTAINMENT
        } else {
            PLAYBOOK_FINISHED
        };
        let anchor = Some(self.anchor(incident_id, reason, now).await?);
        tracing::info!(incident_id, playbook_id, contained, status = %status, "playbook finished");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: event.action().into_owned(),
            seq: appended.record.seq,
            hash: appended.record.hash,
            appended: appended.appended,
            status,
            anchor,
        })
    }

    /// A step set to stop on failure failed: the incident moves to `needs-attention` (its last
    /// error is the step's), `playbook-stopped` is audited with what the playbook had changed and
    /// what it never ran, and the head is anchored. Only a step whose latest record in the chain
    /// is its failure can stop a playbook.
    async fn playbook_stopped(
        &self,
        incident_id: &str,
        playbook_id: &str,
        step_id: &str,
        now: OffsetDateTime,
    ) -> Result<Recorded, RecordError> {
        let PlaybookRun {
            incident,
            decision,
            chain,
            destructive,
            ..
        } = self.playbook_run(incident_id, playbook_id).await?;
        let failed = chain
            .iter()
            .rev()
            .filter_map(|r| r.event().ok())
            .find(|e| e.ends_step() && e.step() == Some(step_id));
        if !matches!(failed, Some(AuditEvent::StepFailed(_))) {
            return Err(RecordError::InvalidInput(format!(
                "incident {incident_id}: step {step_id} has no recorded failure to stop on"
            )));
        }
        let steps = DestructiveSteps::of(&destructive, &chain);
        let ran: BTreeSet<String> = chain
            .iter()
            .filter_map(|r| r.event().ok())
            .filter(AuditEvent::ends_step)
            .filter_map(|e| e.step().map(str::to_owned))
            .collect();
        let not_run: Vec<String> = decision
            .playbook
            .steps
            .iter()
            .filter(|s| s.done.is_none() && !ran.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        let from = incident.summary.status;
        let status = match from {
            Status::NeedsAttention => from,
            Status::Containment | Status::Contained => match self
                .incidents
                .transition(
                    incident_id,
                    from,
                    Status::NeedsAttention,
                    now,
                    IncidentPatch::default(),
                )
                .await
            {
                Ok(i) => i.summary.status,
                Err(StoreError::Conflict(why)) => {
                    let again = self.get(incident_id).await?.summary.status;
                    if again != Status::NeedsAttention {
                        return Err(RecordError::Conflict(why));
                    }
                    again
                }
                Err(e) => return Err(e.into()),
            },
            other => {
                return Err(RecordError::Conflict(format!(
                    "incident {incident_id} is {other}: a playbook cannot stop on it"
                )));
            }
        };
        let error = incident
            .last_error
            .as_ref()
            .filter(|e| e.step == step_id)
            .map(|e| e.message.clone())
            .unwrap_or_default();
        let event = AuditEvent::PlaybookStopped(event::PlaybookStopped {
            playbook: playbook_id.to_owned(),
            step: step_id.to_owned(),
            error,
            applied: steps.applied.clone(),
            not_run,
            status,
        });
        let appended = self
            .audit
            .append_once(incident_id, Some(&chain), RECORD_ACTOR, &event, now)
            .await?;
        let anchor = Some(
            self.anchor(incident_id, actions::PLAYBOOK_STOPPED, now)
                .await?,
        );
        tracing::warn!(incident_id, playbook_id, step_id, status = %status, "playbook stopped: the incident needs attention");
        Ok(Recorded {
            incident_id: incident_id.to_owned(),
            action: event.action().into_owned(),
            seq: appended.record.seq,
            hash: appended.record.hash,
            appended: appended.appended,
            status,
            anchor,
        })
    }

    /// Containment → contained (a concurrent retry may have moved it already): the status and
    /// the containment time after.
    async fn mark_contained(
        &self,
        incident: &Incident,
        now: OffsetDateTime,
    ) -> Result<(Status, Option<OffsetDateTime>), RecordError> {
        let id = &incident.summary.incident_id;
        if incident.summary.status != Status::Containment {
            return Ok((
                incident.summary.status,
                incident.summary.timeline.contained_at,
            ));
        }
        let moved = match self
            .incidents
            .transition(
                id,
                Status::Containment,
                Status::Contained,
                now,
                IncidentPatch::default(),
            )
            .await
        {
            Ok(i) => i,
            Err(StoreError::Conflict(_)) => self.get(id).await?,
            Err(e) => return Err(e.into()),
        };
        Ok((moved.summary.status, moved.summary.timeline.contained_at))
    }

    /// The chain head anchored in the evidence bucket.
    async fn anchor(
        &self,
        incident_id: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Anchor, RecordError> {
        let a = self
            .audit
            .log()
            .anchor(
                incident_id,
                reason,
                &self.settings.evidence_bucket,
                &self.settings.evidence,
                now,
            )
            .await?;
        tracing::info!(incident_id, seq = a.seq, hash = %a.hash, reason, "audit head anchored");
        Ok(a)
    }
}

/// The mode and destructive steps of `playbook_id` as this incident ran it: the current
/// revision's playbook, or one an earlier revision started (a later finding re-triaged the
/// incident while it ran), its steps as that revision's `triaged` recorded them.
fn ran_playbook(
    incident_id: &str,
    decision: &Decision,
    playbook_id: &str,
    chain: &[AuditRecord],
) -> Result<(Mode, BTreeSet<String>), RecordError> {
    if decision.playbook.id == playbook_id {
        return Ok((
            decision.playbook.mode,
            decision
                .playbook
                .steps
                .iter()
                .filter(|s| s.destructive)
                .map(|s| s.id.clone())
                .collect(),
        ));
    }
    let earlier = chain.iter().rev().find_map(|r| match r.event() {
        Ok(AuditEvent::Triaged(t)) if t.playbook == playbook_id && t.not_started.is_none() => {
            Some(t)
        }
        _ => None,
    });
    match earlier {
        Some(t) => Ok((
            t.mode,
            t.steps
                .iter()
                .filter(|s| s.destructive)
                .map(|s| s.id.clone())
                .collect(),
        )),
        None => Err(RecordError::InvalidInput(format!(
            "incident {incident_id} was routed to playbook {}, not {playbook_id}",
            decision.playbook.id
        ))),
    }
}

/// What the audit chain says about an incident's earlier revisions: the playbooks their
/// triage started, and the steps applied so far.
#[derive(Debug, Default)]
struct Revisions {
    /// `(revision, playbook)` of every `triaged` record that started its playbook.
    started: Vec<(u32, String)>,
    /// `(step, function)` → the audit record of its latest result applied (or already in
    /// place) in enforce mode.
    applied: BTreeMap<(String, String), u64>,
}

impl Revisions {
    fn of(chain: &[AuditRecord]) -> Revisions {
        let mut out = Revisions::default();
        for record in chain {
            match record.event() {
                Ok(AuditEvent::Triaged(t)) if t.not_started.is_none() => {
                    out.started.push((t.revision, t.playbook));
                }
                Ok(AuditEvent::Step(s)) => {
                    let key = (s.step, s.function);
                    if s.mode == Mode::Enforce
                        && matches!(s.outcome, Outcome::Applied | Outcome::AlreadyInPlace)
                    {
                        out.applied.insert(key, record.seq);
                    } else {
                        out.applied.remove(&key);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The earlier revision that started `playbook`, if one did.
    fn started_before(&self, playbook: &str, revision: u32) -> Option<u32> {
        self.started
            .iter()
            .find(|(r, p)| *r < revision && p == playbook)
            .map(|(r, _)| *r)
    }

    /// Marks the decision's steps an earlier revision applied, when their effect stays in place.
    fn mark_done(&self, decision: &mut Decision) {
        for step in &mut decision.playbook.steps {
            let lasting =
                ir_core::playbook::action(&step.action).is_some_and(|a| a.once_per_incident);
            if !lasting {
                continue;
            }
            if let Some(&seq) = self.applied.get(&(step.id.clone(), step.function.clone())) {
                step.done = Some(ir_core::playbook::DoneBefore { seq });
            }
        }
    }
}

/// What the audit chain says about a playbook's destructive steps.
#[derive(Debug, Default, PartialEq, Eq)]
struct DestructiveSteps {
    /// No destructive step in the plan.
    none_planned: bool,
    /// Applied, or already in place, in enforce mode: the containment holds.
    applied: Vec<String>,
    /// Ran in dry-run.
    dry_run: Vec<String>,
    /// Failed or not approved, and never ran.
    unfinished: Vec<String>,
}

impl DestructiveSteps {
    /// From the latest result of every step that ran, and the failures and refusals.
    fn of(destructive: &BTreeSet<String>, chain: &[AuditRecord]) -> Self {
        let mut ran: BTreeMap<String, StepAudit> = BTreeMap::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for event in chain.iter().filter_map(|r| r.event().ok()) {
            match event {
                AuditEvent::Step(step) => {
                    ran.insert(step.step.clone(), step);
                }
                AuditEvent::StepFailed(f) | AuditEvent::StepNotApproved(f) => {
                    failed.insert(f.step);
                }
                _ => {}
            }
        }
        let mut out = DestructiveSteps {
            none_planned: destructive.is_empty(),
            ..DestructiveSteps::default()
        };
        for s in ran.values().filter(|s| destructive.contains(&s.step)) {
            if s.mode == Mode::Enforce
                && matches!(s.outcome, Outcome::Applied | Outcome::AlreadyInPlace)
            {
                out.applied.push(s.step.clone());
            }
            if s.mode == Mode::DryRun {
                out.dry_run.push(s.step.clone());
            }
        }
        out.unfinished = failed
            .into_iter()
            .filter(|s| destructive.contains(s) && !ran.contains_key(s))
            .collect();
        out
    }

    /// The `playbook-finished` event; `contained` gives the containment time and the time to
    /// contain when something was applied.
    fn finished(
        self,
        playbook: &str,
        mode: Mode,
        status: Status,
        contained: impl FnOnce() -> Option<(OffsetDateTime, i64)>,
    ) -> PlaybookFinished {
        let end = if self.applied.is_empty() {
            let why = if mode == Mode::DryRun || !self.dry_run.is_empty() {
                "dry-run: the plan was computed and nothing was changed, so nothing was contained"
            } else if self.none_planned {
                "the playbook has no containment step: nothing was contained"
            } else {
                "no containment step was applied in enforce mode (not approved, failed or not applicable): nothing was contained"
            };
            PlaybookEnd::NotContained {
                why: why.to_owned(),
                planned_only: self.dry_run,
            }
        } else {
            let at = contained();
            PlaybookEnd::Contained {
                destructive_applied: self.applied,
                contained_at: at.map(|(t, _)| t),
                mttc_seconds: at.map(|(_, s)| s),
            }
        };
        PlaybookFinished {
            playbook: playbook.to_owned(),
            mode,
            status,
            not_applied: self.unfinished,
            end,
        }
    }
}

#[cfg(test)]
mod own_execution_tests {
    use super::own_execution;

    #[test]
    fn only_the_incidents_own_runs_are_its_own() {
        let id = "inc-00000000000000000001";
        assert_eq!(own_execution(id, 0, id).as_deref(), Some(id));
        assert_eq!(
            own_execution(id, 2, &format!("{id}-r2")),
            Some(format!("{id}-r2"))
        );
        assert_eq!(
            own_execution(id, 1, &format!("{id}-retry3")).as_deref(),
            Some(id)
        );
        assert_eq!(
            own_execution(id, 2, &format!("{id}-r1-retry1")),
            Some(format!("{id}-r1"))
        );
        for forged in [
            format!("forged-{id}"),
            format!("{id}-r3"),
            format!("{id}-retry"),
            format!("{id}-retryx"),
            format!("{id}x"),
            "inc-00000000000000000002".to_owned(),
        ] {
            assert_eq!(own_execution(id, 2, &forged), None, "{forged}");
        }
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
