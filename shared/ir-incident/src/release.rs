//! Two ways an approver ends an incident. [`release_incident`] is `ir release`: containment
//! undone. Dry-run (the default) plans the restoration from reads and writes nothing; enforce
//! restores, then resolves the incident and anchors its audit chain ([`Recorder::released`]).
//! [`resolve_incident`] is `ir resolve`: nothing undone (the resource was rebuilt, terminated, or
//! the risk accepted), the incident resolved with the reason and its chain anchored
//! ([`Recorder::resolved_as_is`]).
//!
//! Once an incident is resolved, either way, its report is written as HTML and JSON, locked, to
//! the evidence bucket ([`crate::report::store`]). That write comes after the resolution is
//! recorded and anchored and never undoes it: its outcome, where the copies are or why they are
//! not, is part of what the command returns ([`Filed`]).

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
use crate::report::store::{Filed, store_report};
use ir_actions::ActionError;
use ir_aws::Clients;
use ir_aws::store::{AuditLog, Incident, IncidentStore, IsolationHolds, StoreError, TableNames};

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
    /// Consent to resolve though some resources are gone and cannot be restored (they are
    /// listed, audited with the resolution). Without it an enforced release whose plan finds a
    /// resource gone changes nothing.
    pub force: bool,
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
    /// What cannot be (dry-run) or was not (enforce, `--force`) restored: its resource is gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_restored: Vec<String>,
    /// Enforce: the `resolved` record and the anchor written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
    /// Enforce: the incident's report written, locked, to the evidence bucket (or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_report: Option<Filed>,
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
    /// An enforced release without consent whose plan finds resources gone: nothing changed.
    #[error(
        "nothing restored: {} cannot be restored, the resource is gone ({}); \
         `--force` restores the rest and resolves the incident, saying so in its audit chain",
        if not_restored.len() == 1 { "one change".to_owned() } else { format!("{} changes", not_restored.len()) },
        not_restored.join("; ")
    )]
    Gone { not_restored: Vec<String> },
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
            ReleaseError::NotFound(_) | ReleaseError::Gone { .. } => ErrorName::NotFound,
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
    let incident = authorized_incident(
        clients,
        names,
        policy,
        &req.incident_id,
        &reason,
        caller_arn,
    )
    .await?;
    let id = req.incident_id.as_str();
    let from = incident.summary.status;
    ended(clients, names, &incident, Ending::Release).await?;
    here(clients, &incident, caller_arn)?;
    let request = ReleaseRequest {
        incident_id: id.to_owned(),
        step_id: RELEASE_STEP.to_owned(),
        mode: req.mode,
        records: incident.records.clone(),
        force: req.force,
    };
    let holds = IsolationHolds::new(clients.clone(), names);
    let (bucket, evidence) = (settings.evidence_bucket.clone(), settings.evidence.clone());
    let recorder = Recorder::new(clients.clone(), names.clone(), settings);
    // Without consent, an enforced release is planned first: a resource gone refuses it before
    // anything is restored, so the incident is never half-released by surprise.
    if req.mode == Mode::Enforce && !req.force {
        let plan = ReleaseRequest {
            mode: Mode::DryRun,
            ..request.clone()
        };
        let planned = ir_actions::release::release_containment(clients, &plan).await;
        if let Ok(p) = &planned
            && !p.not_restored.is_empty()
        {
            let refused = ReleaseError::Gone {
                not_restored: p.not_restored.clone(),
            };
            let shown = ActionError::NotFound(refused.to_string());
            if let Err(record) = recorder
                .release_failed(id, caller_arn, RELEASE_STEP, &shown, now)
                .await
            {
                tracing::error!(incident_id = id, error = %record, "the refused release could not be recorded");
            }
            return Err(refused);
        }
    }
    let restored = match held_by(&holds, id, &request.records).await {
        Ok(keys) => ir_actions::release::release_containment(clients, &request)
            .await
            .map(|r| (r, keys)),
        Err(e) => Err(e),
    };
    let (restoration, hold_keys) = match restored {
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
    let ir_actions::release::Restoration {
        report,
        not_restored,
    } = restoration;
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
            not_restored,
            recorded: None,
            incident_report: None,
        });
    }
    for key in &hold_keys {
        holds.release(key, id).await?;
    }
    let recorded = recorder
        .released(id, caller_arn, &report, &not_restored, &reason, now)
        .await?;
    let filed = store_report(clients, names, &bucket, &evidence, id, now).await;
    Ok(Released {
        incident_id: id.to_owned(),
        mode: req.mode,
        by: caller_arn.to_owned(),
        from,
        status: recorded.status,
        report,
        not_restored,
        recorded: Some(recorded),
        incident_report: Some(filed),
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

/// A release restores with the caller's own credentials, where they act: the incident's resource
/// must be in the caller's account and the clients' region (an incident in a member account or
/// another region is refused before anything is planned).
fn here(clients: &Clients, incident: &Incident, caller_arn: &str) -> Result<(), ReleaseError> {
    let account = caller_arn.split(':').nth(4).unwrap_or_default();
    let region = clients
        .sdk_config()
        .region()
        .map(ToString::to_string)
        .unwrap_or_default();
    let wanted_region = incident.region.as_deref().unwrap_or(region.as_str());
    if incident.account == account && wanted_region == region {
        return Ok(());
    }
    Err(ReleaseError::Conflict(format!(
        "incident {}'s resource is in account {}, region {wanted_region}, and `ir release` \
         restores with your own credentials, which act in account {account}, region {region}; \
         nothing was changed: undo the changes `ir incidents show` lists in that account, then \
         `ir resolve`",
        incident.summary.incident_id, incident.account
    )))
}

/// The caller may end incidents (holds an escalation role), with a reason of a sane length.
pub(crate) fn authorize(
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

/// The reason an operator gave, trimmed; none is `InvalidInput` saying what it should say.
pub(crate) fn required_reason<'a>(reason: &'a str, what: &str) -> Result<&'a str, ReleaseError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ReleaseError::InvalidInput(format!(
            "a reason is required (--reason): {what}"
        )));
    }
    Ok(reason)
}

/// The incident an approver acts on: the caller [`authorize`]d, then the incident read
/// (`NotFound` when there is none).
pub(crate) async fn authorized_incident(
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    incident_id: &str,
    reason: &str,
    caller_arn: &str,
) -> Result<ir_aws::store::Incident, ReleaseError> {
    authorize(policy, incident_id, reason, caller_arn)?;
    IncidentStore::new(clients.clone(), names.clone())
        .get(incident_id)
        .await?
        .ok_or_else(|| ReleaseError::NotFound(format!("incident {incident_id}")))
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
        // A stopped playbook is over: a responder may undo what it changed or end it as it is.
        Status::Contained | Status::NeedsAttention => Ok(()),
        // Waiting for a slot: nothing ran, so nothing to undo; it may be ended as it is (its
        // triage, polling for the slot, then starts nothing).
        Status::Queued if ending == Ending::Resolve => Ok(()),
        Status::Queued => Err(ReleaseError::Conflict(format!(
            "incident {id} is queued for a playbook slot: nothing was contained"
        ))),
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
    /// The incident's report written, locked, to the evidence bucket (or why not).
    pub incident_report: Filed,
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
    let reason = required_reason(&req.reason, "why the incident ends as it is")?;
    let incident =
        authorized_incident(clients, names, policy, &req.incident_id, reason, caller_arn).await?;
    let id = req.incident_id.as_str();
    let from = incident.summary.status;
    ended(clients, names, &incident, Ending::Resolve).await?;
    let (bucket, evidence) = (settings.evidence_bucket.clone(), settings.evidence.clone());
    let recorded = Recorder::new(clients.clone(), names.clone(), settings)
        .resolved_as_is(id, caller_arn, RESOLVE_STEP, reason, now)
        .await?;
    let filed = store_report(clients, names, &bucket, &evidence, id, now).await;
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
        incident_report: filed,
    })
}
