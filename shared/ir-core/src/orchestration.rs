//! Contracts of the orchestration: what the state machines pass to the recorder, the approval
//! gate, the notifier, and from the triage state machine to a playbook state machine.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::action::ActionReport;
use crate::config::Mode;
use crate::event::{Resource, SecurityEvent};
use crate::playbook::PlannedStep;
use crate::triage::{Decision, EscalationLevel};

/// The input of a playbook state machine: everything its steps need, prepared once when the
/// triage decision is recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookInput {
    pub incident_id: String,
    /// The incident's first finding.
    pub finding_id: String,
    pub resource: Resource,
    pub account: String,
    pub region: String,
    /// The first finding exactly as delivered (evidence).
    pub finding: Box<RawValue>,
    /// The activity window over every finding of the incident.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// The mode every step runs in (the playbook's; dry-run unless it says enforce).
    pub mode: Mode,
    pub decision: Decision,
}

impl PlaybookInput {
    /// The playbook input of an incident; `None` when it has no events.
    pub fn new(events: &[SecurityEvent], decision: Decision, detected_at: OffsetDateTime) -> Option<PlaybookInput> {
        let first = events.first()?;
        let first_seen = events.iter().filter_map(|e| e.first_seen).min().unwrap_or(detected_at);
        let last_seen = events.iter().filter_map(|e| e.last_seen).max().unwrap_or(detected_at).max(first_seen);
        Some(PlaybookInput {
            incident_id: decision.incident_id.clone(),
            finding_id: first.finding_id.clone(),
            resource: first.resource.clone(),
            account: first.account.clone(),
            region: first.region.clone(),
            finding: first.raw.clone(),
            first_seen,
            last_seen,
            mode: decision.playbook.mode,
            decision,
        })
    }
}

/// A Step Functions error as a `Catch` with `ResultPath` delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateError {
    #[serde(rename = "Error", default)]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// What the recorder (`ir-record`) is asked to write: the incident record and the audit chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RecordRequest {
    /// Triage decided: store the decision, move the incident to containment, return the
    /// playbook input.
    #[serde(rename_all = "camelCase")]
    Triaged {
        incident_id: String,
        events: Vec<SecurityEvent>,
        decision: Decision,
        #[serde(with = "time::serde::rfc3339")]
        detected_at: OffsetDateTime,
    },
    /// Triage failed: the incident shows the error, the audit chain records it.
    #[serde(rename_all = "camelCase")]
    TriageFailed { incident_id: String, error: StateError },
    /// A step ran: its report (changes before → after, record for release) is kept.
    #[serde(rename_all = "camelCase")]
    StepResult { incident_id: String, step_id: String, report: ActionReport },
    /// A step failed after its retries.
    #[serde(rename_all = "camelCase")]
    StepFailed { incident_id: String, step_id: String, error: StateError },
    /// An approval gate ended without approval (rejected, or the escalation matrix exhausted).
    #[serde(rename_all = "camelCase")]
    StepNotApproved { incident_id: String, step_id: String, error: StateError },
    /// The playbook ran to its end.
    #[serde(rename_all = "camelCase")]
    PlaybookFinished { incident_id: String, playbook_id: String },
}

/// What the approval gate (`ir-request-approval`) receives from `lambda:invoke.waitForTaskToken`.
/// The task token is a bearer secret for the gate: it is stored, never logged.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    pub task_token: String,
    pub incident_id: String,
    pub step_id: String,
    /// The escalation level being asked (0 first).
    pub level: u32,
    pub step: PlannedStep,
    pub escalation: Vec<EscalationLevel>,
}

impl std::fmt::Debug for ApprovalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalRequest")
            .field("task_token", &"(redacted)")
            .field("incident_id", &self.incident_id)
            .field("step_id", &self.step_id)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// What an approved gate returns to the state machine (`SendTaskSuccess` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalGranted {
    pub approved_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The error name a rejected gate fails with (`SendTaskFailure`), matched by the state machine.
pub const REJECTED_ERROR: &str = "Rejected";

/// What the notifier (`ir-notify`) is asked to send for a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyRequest {
    pub incident_id: String,
    pub step_id: String,
    #[serde(default)]
    pub mode: Mode,
    pub step: PlannedStep,
}
