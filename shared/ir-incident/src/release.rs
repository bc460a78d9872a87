//! Two ways an approver ends an incident. [`release_incident`] is `ir release`: containment
//! undone. Dry-run (the default) plans the restoration from reads and writes nothing; enforce
//! restores, then resolves the incident and anchors its audit chain ([`Recorder::released`]).
//! [`resolve_incident`] is `ir resolve`: nothing undone (the resource was rebuilt, terminated, or
//! the risk accepted), the incident resolved with the reason and its chain anchored
//! ([`Recorder::resolved_as_is`]).

use ir_core::action::{ActionReport, ContainmentRecord, ReleaseRequest};
use ir_core::config::Mode;
use ir_core::correlate::is_incident_id;
use ir_core::incident::Status;
use ir_core::{ErrorName, Named};
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

use crate::approval::ApproverPolicy;
use crate::recorder::{RecordError, Recorded, Recorder, RecorderSettings};
use ir_actions::ActionError;
use ir_aws::Clients;
use ir_aws::store::{AuditLog, IncidentStore, IsolationHolds, StoreError, TableNames};

pub use ir_actions::release::ACTION;
/// The step id of an operator's release in reports and the audit chain.
pub const RELEASE_STEP: &str = "release";

/// An operator's request to end an incident's containment.
#[derive(Debug, Clone)]
pub struct IncidentRelease {
    pub incident_id: String,
    /// Dry-run plans; enforce restores and resolves.
    pub mode: Mode,
    /// Why (audited with the resolution).
    pub reason: Option<String>,
}

/// What a release did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    pub incident_id: String,
    pub mode: Mode,
    /// The caller's ARN as AWS authenticated it.
    pub by: String,
    /// The incident's status before.
    pub from: Status,
    /// The incident's status after (unchanged in dry-run).
    pub status: Status,
    /// The restoration: planned (dry-run) or applied, change by change.
    pub report: ActionReport,
    /// Enforce: the `resolved` record and the anchor written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
}

/// Why a release was refused or failed.
#[derive(Debug, Error)]
pub enum ReleaseError {
    /// Not an incident id, or a reason too long.
    #[error("invalid release: {0}")]
    InvalidInput(String),
    /// The caller holds no role of `notifications.approver_roles`.
    #[error("{caller} may not release incidents: {why}")]
    NotAnApprover { caller: String, why: String },
    /// No such incident.
    #[error("not found: {0}")]
    NotFound(String),
    /// The incident is not in a state that can be released (in triage, its playbook still
    /// running, already resolved).
    #[error("nothing done: {0}")]
    Conflict(String),
    /// The restoration failed (what it restored first is in the error and the audit chain); the
    /// incident keeps its status and shows the error. Running the release again is safe.
    #[error("release failed: {0}")]
    Action(ActionError),
    /// The incident store, the audit log or the anchor failed.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl From<StoreError> for ReleaseError {
    fn from(e: StoreError) -> ReleaseError {
        ReleaseError::Record(RecordError::Store(e))
    }
}

impl Named for ReleaseError {
    fn error_name(&self) -> ErrorName {
        match self {
            ReleaseError::InvalidInput(_) => ErrorName::InvalidInput,
            ReleaseError::NotAnApprover { .. } => ErrorName::AccessDenied,
            ReleaseError::NotFound(_) => ErrorName::NotFound,
            ReleaseError::Conflict(_) => ErrorName::Conflict,
            ReleaseError::Action(e) => e.error_name(),
            ReleaseError::Record(e) => e.error_name(),
        }
    }
}

/// Ends `req.incident_id`'s containment as `caller_arn` (the identity STS returned for the
/// caller's credentials), who must be an approver.
///
/// The incident must be `contained`, or in `containment` with its playbook finished (a
/// playbook that contained part of it, or failed): releasing under a running playbook would race
/// it. Its containment records say what to restore, last change first. Dry-run plans it and
/// writes nothing. Enforce restores, and on success resolves the incident, audits the
/// changes and `resolved` under the caller, and anchors the chain head in the evidence bucket;
/// on failure the incident shows the error and the chain says what was restored before it.
///
/// An isolated instance is restored only while the incident's hold on it (the keys-table item
/// its record names) is still this incident's: another incident's hold is `Conflict` and nothing
/// is restored. After an enforced restore, the incident's holds are deleted, so the instance can
/// be isolated again. An instance the suite terminated (a termination record) is not restored at
/// all: the report's notes say the suite terminated it.
///
/// Calls before any change: `GetItem` (the incident), `Query` (its audit chain), `GetItem` per
/// isolation hold, then the reads of the restoration itself.
pub async fn release_incident(
    clients: &Clients,
    names: &TableNames,
    settings: RecorderSettings,
    policy: &ApproverPolicy,
    req: &IncidentRelease,
    caller_arn: &str,
    now: OffsetDateTime,
) -> Result<Released, ReleaseError> {
    let reason = req.reason.clone().unwrap_or_default();
    authorize(policy, &req.incident_id, &reason, caller_arn)?;
    let id = req.incident_id.as_str();
    let incidents = IncidentStore::new(clients.clone(), names.clone());
    let Some(incident) = incidents.get(id).await? else {
        return Err(ReleaseError::NotFound(format!("incident {id}")));
    };
    let from = incident.summary.status;
    ended(clients, names, &incident, Ending::Release).await?;
    let request = ReleaseRequest {
        incident_id: id.to_owned(),
        step_id: RELEASE_STEP.to_owned(),
        mode: req.mode,
        records: incident.records.clone(),
    };
    let holds = IsolationHolds::new(clients.clone(), names);
    let recorder = Recorder::new(clients.clone(), names.clone(), settings);
    let restored = match held_by(&holds, id, &request.records).await {
        Ok(keys) => ir_actions::release::release_containment(clients, &request)
            .await
            .map(|report| (report, keys)),
        Err(e) => Err(e),
    };
    let (report, hold_keys) = match restored {
        Ok(r) => r,
        Err(e) => {
            if req.mode == Mode::Enforce
                && let Err(record) = recorder
                    .release_failed(id, caller_arn, RELEASE_STEP, &e, now)
                    .await
            {
                // The release's own error is what the caller must see; this one is logged.
                tracing::error!(incident_id = id, error = %record, release_error = %e, "the failed release could not be recorded");
            }
            return Err(ReleaseError::Action(e));
        }
    };
    if req.mode == Mode::DryRun {
        tracing::info!(
            incident_id = id,
            by = caller_arn,
            changes = report.changes.len(),
            "release planned (dry-run): nothing changed"
        );
        return Ok(Released {
            incident_id: id.to_owned(),
            mode: req.mode,
            by: caller_arn.to_owned(),
            from,
            status: from,
            report,
            recorded: None,
        });
    }
    for key in &hold_keys {
        holds.release(key, id).await?;
    }
    let recorded = recorder
        .released(id, caller_arn, &report, &reason, now)
        .await?;
    Ok(Released {
        incident_id: id.to_owned(),
        mode: req.mode,
        by: caller_arn.to_owned(),
        from,
        status: recorded.status,
        report,
        recorded: Some(recorded),
    })
}

/// The hold keys of the incident's isolation records, each checked to be held by the incident
/// (or by none: released already, or never written); another incident's hold is `Conflict`.
async fn held_by(
    holds: &IsolationHolds,
    incident_id: &str,
    records: &[ContainmentRecord],
) -> Result<Vec<String>, ActionError> {
    let mut keys = Vec::new();
    for record in records {
        let ContainmentRecord::Isolation(r) = record else {
            continue;
        };
        let Some(key) = &r.hold_key else {
            continue;
        };
        if let Some(other) = holds
            .get(key)
            .await?
            .filter(|h| h.incident_id != incident_id)
        {
            return Err(ActionError::Conflict(format!(
                "instance {} is held by another incident, {} ({key}), not by {incident_id}: nothing restored",
                r.instance_id, other.incident_id
            )));
        }
        keys.push(key.clone());
    }
    Ok(keys)
}

/// How an incident is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `ir release`: containment undone.
    Release,
    /// `ir resolve`: everything kept as it is.
    Resolve,
}

/// The caller may end incidents (holds an escalation role), with a reason of a sane length.
fn authorize(
    policy: &ApproverPolicy,
    incident_id: &str,
    reason: &str,
    caller_arn: &str,
) -> Result<(), ReleaseError> {
    if !is_incident_id(incident_id) {
        return Err(ReleaseError::InvalidInput(format!(
            "`{incident_id}` is not an incident id (inc- followed by 20 hex digits)"
        )));
    }
    if reason.chars().count() > crate::approval::MAX_REASON_CHARS {
        return Err(ReleaseError::InvalidInput(format!(
            "reason: at most {} characters",
            crate::approval::MAX_REASON_CHARS
        )));
    }
    if let Err(e) = policy.approver(caller_arn) {
        let why = e.why;
        tracing::warn!(incident_id, caller = caller_arn, %why, "refused: not an approver");
        return Err(ReleaseError::NotAnApprover {
            caller: caller_arn.to_owned(),
            why,
        });
    }
    Ok(())
}

/// Whether the incident can be ended now: `contained`, or in `containment` with its playbook
/// finished (ending it under a running playbook would race it); for `ir resolve` also an
/// incident whose triage failed. Resolved ones are `Conflict`.
async fn ended(
    clients: &Clients,
    names: &TableNames,
    incident: &ir_aws::store::Incident,
    ending: Ending,
) -> Result<(), ReleaseError> {
    use ir_core::audit::event::actions::{PLAYBOOK_FINISHED, TRIAGE_FAILED};
    let id = incident.summary.incident_id.as_str();
    let from = incident.summary.status;
    let recorded = |action: &'static str| async move {
        let chain = AuditLog::new(clients.clone(), names.clone())
            .chain(id)
            .await?;
        Ok::<bool, ReleaseError>(chain.iter().any(|r| r.action == action))
    };
    match from {
        Status::Contained => Ok(()),
        Status::Containment if recorded(PLAYBOOK_FINISHED).await? => Ok(()),
        Status::Containment => Err(ReleaseError::Conflict(format!(
            "incident {id} is in containment and its playbook has not finished: ending it now \
             would race it (wait for it, or stop its execution first)"
        ))),
        Status::Triage if ending == Ending::Resolve && recorded(TRIAGE_FAILED).await? => Ok(()),
        Status::Triage => Err(ReleaseError::Conflict(format!(
            "incident {id} is still in triage: nothing was contained"
        ))),
        Status::Resolved | Status::Postmortem => {
            let at = incident
                .summary
                .timeline
                .resolved_at
                .map(|t| format!(" at {}", crate::notify::human_time(t)))
                .unwrap_or_default();
            Err(ReleaseError::Conflict(format!(
                "incident {id} is already {from}{at}"
            )))
        }
    }
}

/// An operator's request to end an incident without undoing anything.
#[derive(Debug, Clone)]
pub struct IncidentResolution {
    pub incident_id: String,
    /// Why (required: the resource was rebuilt, terminated, the risk accepted…).
    pub reason: String,
}

/// What `ir resolve` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub incident_id: String,
    /// The caller's ARN as AWS authenticated it.
    pub by: String,
    pub from: Status,
    pub status: Status,
    /// The containment changes left in place (the incident's records, for whoever rebuilds).
    pub kept: usize,
    pub recorded: Recorded,
}

/// The step id of an operator's resolution in reports and the audit chain.
pub const RESOLVE_STEP: &str = "resolve";

/// `ir resolve`: ends `req.incident_id` as `caller_arn` (an approver) without restoring
/// anything: containment and evidence stay as they are, the incident is resolved, `resolved`
/// is audited with the reason (`released: 0`) and the chain head anchored. Works when the
/// resource is gone. Same eligibility as a release, plus an incident whose triage failed.
pub async fn resolve_incident(
    clients: &Clients,
    names: &TableNames,
    settings: RecorderSettings,
    policy: &ApproverPolicy,
    req: &IncidentResolution,
    caller_arn: &str,
    now: OffsetDateTime,
) -> Result<Resolution, ReleaseError> {
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(ReleaseError::InvalidInput(
            "a resolution needs a reason (--reason): why the incident ends as it is".to_owned(),
        ));
    }
    authorize(policy, &req.incident_id, reason, caller_arn)?;
    let id = req.incident_id.as_str();
    let incidents = IncidentStore::new(clients.clone(), names.clone());
    let Some(incident) = incidents.get(id).await? else {
        return Err(ReleaseError::NotFound(format!("incident {id}")));
    };
    let from = incident.summary.status;
    ended(clients, names, &incident, Ending::Resolve).await?;
    let recorded = Recorder::new(clients.clone(), names.clone(), settings)
        .resolved_as_is(id, caller_arn, RESOLVE_STEP, reason, now)
        .await?;
    tracing::info!(
        incident_id = id,
        by = caller_arn,
        kept = incident.records.len(),
        "resolved as it is"
    );
    Ok(Resolution {
        incident_id: id.to_owned(),
        by: caller_arn.to_owned(),
        from,
        status: recorded.status,
        kept: incident.records.len(),
        recorded,
    })
}
