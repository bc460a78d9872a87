//! Contracts of the orchestration: what the state machines pass to the recorder, the approval
//! gate, the notifier, and from the triage state machine to a playbook state machine.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::action::ActionReport;
use crate::config::Mode;
use crate::event::{Resource, SecurityEvent};
use crate::playbook::PlannedStep;
use crate::triage::Decision;

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
    /// The name of the playbook execution ([`crate::correlate::execution_name`] of the
    /// decision's revision).
    pub execution_name: String,
    /// Whether the triage state machine starts the playbook; `false` with `not_started` saying
    /// why (a later revision superseded this one, or an earlier one already started this
    /// playbook).
    pub start: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_started: Option<String>,
    /// The playbook waits for a slot (`orchestrator.max_concurrent_playbooks`): the triage
    /// state machine asks again every `poll_seconds` ([`RecordRequest::ClaimSlot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueWait>,
}

/// Where a queued playbook waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueWait {
    /// 1 = next.
    pub position: usize,
    /// How many playbooks run now.
    pub running: usize,
    pub poll_seconds: u32,
}

/// The answer to a slot claim: start the playbook now, stop waiting (the incident was ended or
/// revised meanwhile: nothing starts), or wait at `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotClaim {
    pub start: bool,
    pub ended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl PlaybookInput {
    /// The playbook input of an incident; `None` when it has no events.
    pub fn new(
        events: &[SecurityEvent],
        decision: Decision,
        detected_at: OffsetDateTime,
    ) -> Option<PlaybookInput> {
        let first = events.first()?;
        let first_seen = events
            .iter()
            .filter_map(|e| e.first_seen)
            .min()
            .unwrap_or(detected_at);
        let last_seen = events
            .iter()
            .filter_map(|e| e.last_seen)
            .max()
            .unwrap_or(detected_at)
            .max(first_seen);
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
            execution_name: crate::correlate::execution_name(
                &decision.incident_id,
                decision.revision,
            ),
            start: true,
            not_started: None,
            queue: None,
            decision,
        })
    }
}

/// A Step Functions error as a `Catch` with `ResultPath` delivers it (`Cause` may be null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateError {
    #[serde(rename = "Error", default, deserialize_with = "null_as_empty")]
    pub error: String,
    #[serde(rename = "Cause", default, deserialize_with = "null_as_empty")]
    pub cause: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// What the recorder (`ir-record`) is asked to write: the incident record and the audit chain.
///
/// Tagged by `kind`. Deserialized by hand: serde's tagged enums buffer their content, which the
/// raw findings inside the events (`RawValue`) cannot go through; each kind is parsed from the
/// original text instead.
#[derive(Debug, Clone, Serialize)]
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
        /// The incident revision the triage decided (the triage input's).
        revision: u32,
    },
    /// Triage failed: the incident shows the error, the audit chain records it.
    #[serde(rename_all = "camelCase")]
    TriageFailed {
        incident_id: String,
        error: StateError,
        /// The revision whose triage failed: a playbook slot it claimed is freed.
        revision: Option<u32>,
    },
    /// A step ran: its report (changes before → after, record for release) is kept.
    #[serde(rename_all = "camelCase")]
    StepResult {
        incident_id: String,
        step_id: String,
        report: ActionReport,
    },
    /// A step failed after its retries.
    #[serde(rename_all = "camelCase")]
    StepFailed {
        incident_id: String,
        step_id: String,
        error: StateError,
    },
    /// An approval gate ended without approval (rejected, or the escalation matrix exhausted).
    #[serde(rename_all = "camelCase")]
    StepNotApproved {
        incident_id: String,
        step_id: String,
        error: StateError,
    },
    /// The playbook ran to its end.
    #[serde(rename_all = "camelCase")]
    PlaybookFinished {
        incident_id: String,
        playbook_id: String,
        /// The execution's name (its input's `executionName`): its playbook slot is freed.
        execution_name: Option<String>,
    },
    /// A step set to stop on failure failed: the playbook stops, the incident needs attention.
    #[serde(rename_all = "camelCase")]
    PlaybookStopped {
        incident_id: String,
        playbook_id: String,
        step_id: String,
        execution_name: Option<String>,
    },
    /// A queued revision's triage asks for a playbook slot again.
    #[serde(rename_all = "camelCase")]
    ClaimSlot { incident_id: String, revision: u32 },
}

mod record_wire {
    //! The bodies of each recorder kind, for deserialization from the original text.

    use serde::Deserialize;
    use time::OffsetDateTime;

    use super::StateError;
    use crate::action::ActionReport;
    use crate::event::SecurityEvent;
    use crate::triage::Decision;

    #[derive(Deserialize)]
    pub struct Kind {
        pub kind: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Triaged {
        pub incident_id: String,
        pub events: Vec<SecurityEvent>,
        pub decision: Decision,
        #[serde(with = "time::serde::rfc3339")]
        pub detected_at: OffsetDateTime,
        #[serde(default)]
        pub revision: u32,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TriageFailed {
        pub incident_id: String,
        pub error: StateError,
        #[serde(default)]
        pub revision: Option<u32>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StepResult {
        pub incident_id: String,
        pub step_id: String,
        pub report: ActionReport,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StepError {
        pub incident_id: String,
        pub step_id: String,
        pub error: StateError,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PlaybookFinished {
        pub incident_id: String,
        pub playbook_id: String,
        #[serde(default)]
        pub execution_name: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PlaybookStopped {
        pub incident_id: String,
        pub playbook_id: String,
        pub step_id: String,
        #[serde(default)]
        pub execution_name: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ClaimSlot {
        pub incident_id: String,
        pub revision: u32,
    }
}

impl<'de> Deserialize<'de> for RecordRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        let parse = |e: serde_json::Error| D::Error::custom(e.to_string());
        let kind: record_wire::Kind = serde_json::from_str(text).map_err(parse)?;
        Ok(match kind.kind.as_str() {
            "triaged" => {
                let b: record_wire::Triaged = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::Triaged {
                    incident_id: b.incident_id,
                    events: b.events,
                    decision: b.decision,
                    detected_at: b.detected_at,
                    revision: b.revision,
                }
            }
            "triage-failed" => {
                let b: record_wire::TriageFailed = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::TriageFailed {
                    incident_id: b.incident_id,
                    error: b.error,
                    revision: b.revision,
                }
            }
            "step-result" => {
                let b: record_wire::StepResult = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::StepResult {
                    incident_id: b.incident_id,
                    step_id: b.step_id,
                    report: b.report,
                }
            }
            "step-failed" => {
                let b: record_wire::StepError = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::StepFailed {
                    incident_id: b.incident_id,
                    step_id: b.step_id,
                    error: b.error,
                }
            }
            "step-not-approved" => {
                let b: record_wire::StepError = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::StepNotApproved {
                    incident_id: b.incident_id,
                    step_id: b.step_id,
                    error: b.error,
                }
            }
            "playbook-finished" => {
                let b: record_wire::PlaybookFinished = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::PlaybookFinished {
                    incident_id: b.incident_id,
                    playbook_id: b.playbook_id,
                    execution_name: b.execution_name,
                }
            }
            "playbook-stopped" => {
                let b: record_wire::PlaybookStopped = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::PlaybookStopped {
                    incident_id: b.incident_id,
                    playbook_id: b.playbook_id,
                    step_id: b.step_id,
                    execution_name: b.execution_name,
                }
            }
            "claim-slot" => {
                let b: record_wire::ClaimSlot = serde_json::from_str(text).map_err(parse)?;
                RecordRequest::ClaimSlot {
                    incident_id: b.incident_id,
                    revision: b.revision,
                }
            }
            other => {
                return Err(D::Error::custom(format!(
                    "unknown record kind `{other}` (triaged, triage-failed, step-result, step-failed, step-not-approved, playbook-finished, playbook-stopped, claim-slot)"
                )));
            }
        })
    }
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
    /// The action's dry-run report: the plan the approver approves (its changes' SHA-256 is
    /// stored with the request). The step, the escalation matrix and the timeouts come from the
    /// incident's recorded decision, never from this payload.
    pub plan: ActionReport,
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

crate::action_input!(NotifyRequest, |_r| "");

#[cfg(test)]
mod tests {
    use super::*;

    fn triaged() -> RecordRequest {
        let text = include_str!("../../../events/guardduty-cryptocurrency-bitcointool-dns.json");
        let n = crate::normalize(text.as_bytes()).unwrap();
        let engine = crate::Engine::embedded().unwrap();
        let en = engine.enrich(&n.events, 0);
        let id = crate::correlate::incident_id(&n.events[0].finding_key);
        let decision = engine
            .decide(&id, &n.events, &en, time::OffsetDateTime::UNIX_EPOCH)
            .unwrap();
        RecordRequest::Triaged {
            incident_id: id,
            events: n.events,
            decision,
            detected_at: time::OffsetDateTime::UNIX_EPOCH,
            revision: 2,
        }
    }

    #[test]
    fn every_record_kind_round_trips_with_raw_findings_inside() {
        let step_error = StateError {
            error: "Retryable".into(),
            cause: "throttled".into(),
        };
        let cases = vec![
            triaged(),
            RecordRequest::TriageFailed {
                incident_id: "inc-1".into(),
                error: step_error.clone(),
                revision: Some(1),
            },
            RecordRequest::StepFailed {
                incident_id: "inc-1".into(),
                step_id: "s".into(),
                error: step_error.clone(),
            },
            RecordRequest::StepNotApproved {
                incident_id: "inc-1".into(),
                step_id: "s".into(),
                error: step_error,
            },
            RecordRequest::PlaybookFinished {
                incident_id: "inc-1".into(),
                playbook_id: "p".into(),
                execution_name: Some("inc-1-r2".into()),
            },
            RecordRequest::PlaybookStopped {
                incident_id: "inc-1".into(),
                playbook_id: "p".into(),
                step_id: "s".into(),
                execution_name: None,
            },
            RecordRequest::ClaimSlot {
                incident_id: "inc-1".into(),
                revision: 2,
            },
        ];
        for case in cases {
            let text = serde_json::to_string(&case).unwrap();
            let back: RecordRequest = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }

    #[test]
    fn a_null_cause_and_an_unknown_kind() {
        let r: RecordRequest = serde_json::from_str(r#"{"kind":"step-failed","incidentId":"i","stepId":"s","error":{"Error":"Rejected","Cause":null}}"#).unwrap();
        let RecordRequest::StepFailed { error, .. } = r else {
            panic!()
        };
        assert_eq!(
            error,
            StateError {
                error: "Rejected".into(),
                cause: String::new()
            }
        );
        let e = serde_json::from_str::<RecordRequest>(r#"{"kind":"nope","incidentId":"i"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown record kind"), "{e}");
    }
}
