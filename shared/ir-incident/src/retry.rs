//! `ir retry`: a responder re-runs the step a stopped playbook failed at, through its gate.
//!
//! A step set to `on_failure: stop` that fails leaves the incident `needs-attention`
//! (`playbook-stopped` in the chain says which step, the error, what was applied and what never
//! ran). Once the cause is fixed, an approver retries the step: a new execution of the same
//! playbook state machine runs that step and the steps the stop left unrun; the steps before it
//! are recorded as done and skipped. A gated step asks anew (a new approval round, whatever was
//! decided before) and the responder who retried is its requester, so the two-person rule keeps
//! them from approving their own retry. Everything the new execution needs comes from the
//! suite's own records: the playbook execution's input as Step Functions kept it (found through
//! the triage execution the chain names), the incident's recorded plan and the audit chain.

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::Decision;
use ir_core::audit::AuditRecord;
use ir_core::audit::event::{AuditEvent, PlaybookStopped, RetryStarted};
use ir_core::incident::Status;
use ir_core::playbook::DoneBefore;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use ir_aws::store::{AuditLog, IncidentPatch, IncidentStore, StoreError, TableNames};
use ir_aws::{Clients, log_sdk_error};

use crate::approval::ApproverPolicy;
use crate::audit_writer::AuditWriter;
use crate::recorder::RecordError;
use crate::release::{ReleaseError, authorized_incident, required_reason};

/// An operator's request to run a failed step again.
#[derive(Debug, Clone)]
pub struct StepRetry {
    pub incident_id: String,
    pub step_id: String,
    /// Why (what was fixed): audited.
    pub reason: String,
}

/// What `ir retry` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retried {
    pub incident_id: String,
    pub step_id: String,
    /// The caller's ARN as AWS authenticated it.
    pub by: String,
    pub from: Status,
    pub status: Status,
    /// The new playbook execution.
    pub execution_arn: String,
    /// The steps it runs: the retried one, then those the stop left unrun.
    pub steps: Vec<String>,
    /// The `retry-started` audit record.
    pub seq: u64,
}

const DESCRIBE_EXECUTION: &str = "states:DescribeExecution";
const START_EXECUTION: &str = "states:StartExecution";

fn describe_failed(
    e: &aws_sdk_sfn::error::SdkError<
        aws_sdk_sfn::operation::describe_execution::DescribeExecutionError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> ReleaseError {
    ReleaseError::Record(RecordError::Aws(log_sdk_error(DESCRIBE_EXECUTION, e)))
}

/// The playbook execution that ran `stopped.playbook` for this incident: the triage execution of
/// the revision whose `triaged` started that playbook names it in its output.
async fn stopped_execution(
    clients: &Clients,
    chain: &[AuditRecord],
    incident_id: &str,
    stopped: &PlaybookStopped,
) -> Result<(String, String, Value), ReleaseError> {
    let revision = chain
        .iter()
        .rev()
        .find_map(|r| match r.event() {
            Ok(AuditEvent::Triaged(t))
                if t.playbook == stopped.playbook && t.not_started.is_none() =>
            {
                Some(t.revision)
            }
            _ => None,
        })
        .ok_or_else(|| {
            ReleaseError::Conflict(format!(
                "incident {incident_id}: no triage started playbook {}",
                stopped.playbook
            ))
        })?;
    let triage = chain
        .iter()
        .find_map(|r| match r.event() {
            Ok(AuditEvent::TriageStarted(s)) if s.revision == revision => Some(s.execution_arn),
            _ => None,
        })
        .ok_or_else(|| {
            ReleaseError::Conflict(format!(
                "incident {incident_id}: no triage execution recorded for revision {revision}"
            ))
        })?;
    let sfn = clients.sfn();
    let triaged = sfn
        .describe_execution()
        .execution_arn(&triage)
        .send()
        .await
        .map_err(|e| describe_failed(&e))?;
    let output: Value = triaged
        .output()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or(Value::Null);
    let playbook_arn = output["playbookExecution"]["executionArn"]
        .as_str()
        .ok_or_else(|| {
            ReleaseError::Conflict(format!(
                "incident {incident_id}: triage execution {triage} started no playbook"
            ))
        })?
        .to_owned();
    let run = sfn
        .describe_execution()
        .execution_arn(&playbook_arn)
        .send()
        .await
        .map_err(|e| describe_failed(&e))?;
    if run.status() == &ExecutionStatus::Running {
        return Err(ReleaseError::Conflict(format!(
            "playbook execution {playbook_arn} is still running"
        )));
    }
    let input: Value = run
        .input()
        .and_then(|i| serde_json::from_str(i).ok())
        .ok_or_else(|| {
            ReleaseError::Conflict(format!(
                "playbook execution {playbook_arn} has no readable input"
            ))
        })?;
    Ok((playbook_arn, run.state_machine_arn().to_owned(), input))
}

/// The decision of a retry: the steps before `step` marked done (each by its latest record in
/// the chain), `step` itself to run again; returns the steps that run.
fn retry_plan(
    decision: &mut Decision,
    chain: &[AuditRecord],
    step: &str,
) -> Result<Vec<String>, String> {
    let at = decision
        .playbook
        .steps
        .iter()
        .position(|s| s.id == step)
        .ok_or_else(|| format!("step {step} is not in the incident's plan"))?;
    for (i, s) in decision.playbook.steps.iter_mut().enumerate() {
        if i < at {
            if s.done.is_none() {
                let seq = chain
                    .iter()
                    .rev()
                    .find(|r| {
                        r.event()
                            .is_ok_and(|e| e.ends_step() && e.step() == Some(s.id.as_str()))
                    })
                    .map_or(0, |r| r.seq);
                s.done = Some(DoneBefore { seq });
            }
        } else if i == at {
            s.done = None;
        }
    }
    Ok(decision
        .playbook
        .steps
        .iter()
        .skip(at)
        .filter(|s| s.done.is_none())
        .map(|s| s.id.clone())
        .collect())
}

/// `ir retry`: runs `req.step_id` of `req.incident_id` again as `caller_arn` (an approver);
/// see the module docs. The incident must be `needs-attention` and the step the one its
/// playbook stopped at.
///
/// Order: the incident moves `needs-attention → containment` (conditional: of two racing
/// retries one wins), `retry-started` is audited (before the execution starts, so its gate finds
/// the requester), then the execution starts under a name derived from the stopped one and the
/// retry count. A start that fails puts the incident back to `needs-attention` with the error.
pub async fn retry_step(
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    req: &StepRetry,
    caller_arn: &str,
    now: OffsetDateTime,
) -> Result<Retried, ReleaseError> {
    let reason = required_reason(&req.reason, "what was fixed")?;
    let incident =
        authorized_incident(clients, names, policy, &req.incident_id, reason, caller_arn).await?;
    let id = req.incident_id.as_str();
    let incidents = IncidentStore::new(clients.clone(), names.clone());
    let from = incident.summary.status;
    if from != Status::NeedsAttention {
        return Err(ReleaseError::Conflict(format!(
            "incident {id} is {from}: only a step a stopped playbook failed at can be retried"
        )));
    }
    let chain = AuditLog::new(clients.clone(), names.clone())
        .chain(id)
        .await?;
    let stopped = chain
        .iter()
        .rev()
        .find_map(|r| match r.event() {
            Ok(AuditEvent::PlaybookStopped(s)) => Some(s),
            _ => None,
        })
        .ok_or_else(|| ReleaseError::Conflict(format!("incident {id} has no stopped playbook")))?;
    if stopped.step != req.step_id {
        return Err(ReleaseError::Conflict(format!(
            "the playbook stopped at step {}, not {}: retry {}",
            stopped.step, req.step_id, stopped.step
        )));
    }
    let (stopped_arn, machine, mut input) =
        stopped_execution(clients, &chain, id, &stopped).await?;
    let mut decision: Decision = serde_json::from_value(input["decision"].clone())
        .map_err(|e| ReleaseError::Conflict(format!("{stopped_arn}: its decision: {e}")))?;
    let steps =
        retry_plan(&mut decision, &chain, &req.step_id).map_err(ReleaseError::InvalidInput)?;
    input["decision"] = serde_json::to_value(&decision)
        .map_err(|e| ReleaseError::InvalidInput(format!("the retried decision: {e}")))?;
    let retries = chain
        .iter()
        .filter(|r| r.action == ir_core::audit::event::actions::RETRY_STARTED)
        .count();
    let base = stopped_arn.rsplit(':').next().unwrap_or(id);
    let base = base.split("-retry").next().unwrap_or(base);
    let name = format!("{base}-retry{}", retries + 1);
    let execution_arn = crate::intake::execution_arn(&machine, &name)
        .ok_or_else(|| ReleaseError::Conflict(format!("`{machine}` is not a state machine ARN")))?;

    let moved = incidents
        .transition(
            id,
            Status::NeedsAttention,
            Status::Containment,
            now,
            IncidentPatch {
                clear_error: true,
                ..IncidentPatch::default()
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(why) => ReleaseError::Conflict(why),
            other => other.into(),
        })?;
    let audit = AuditWriter::new(clients, names);
    let record = audit
        .append_patiently(
            id,
            caller_arn,
            &AuditEvent::RetryStarted(RetryStarted {
                step: req.step_id.clone(),
                by: caller_arn.to_owned(),
                reason: reason.to_owned(),
                execution_arn: execution_arn.clone(),
                steps: steps.clone(),
            }),
            now,
        )
        .await?;
    let body = serde_json::to_string(&input)
        .map_err(|e| ReleaseError::InvalidInput(format!("the retry's input: {e}")))?;
    let started = clients
        .sfn()
        .start_execution()
        .state_machine_arn(&machine)
        .name(&name)
        .input(body)
        .send()
        .await;
    if let Err(e) = started {
        let failure = log_sdk_error(START_EXECUTION, &e);
        let message = format!("retry of {} not started: {failure}", req.step_id);
        incidents
            .transition(
                id,
                Status::Containment,
                Status::NeedsAttention,
                OffsetDateTime::now_utc(),
                IncidentPatch {
                    last_error: Some(ir_aws::store::LastError {
                        step: req.step_id.clone(),
                        message,
                    }),
                    ..IncidentPatch::default()
                },
            )
            .await?;
        return Err(ReleaseError::Record(RecordError::Aws(failure)));
    }
    tracing::info!(incident_id = id, step_id = %req.step_id, by = caller_arn, %execution_arn, "step retried");
    Ok(Retried {
        incident_id: id.to_owned(),
        step_id: req.step_id.clone(),
        by: caller_arn.to_owned(),
        from,
        status: moved.summary.status,
        execution_arn,
        steps,
        seq: record.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        let text = include_str!("../../../events/guardduty-cryptocurrency-bitcointool-dns.json");
        let n = ir_core::normalize(text.as_bytes()).unwrap();
        let engine = ir_core::Engine::embedded().unwrap();
        let en = engine.enrich(&n.events, 5);
        engine
            .decide(
                "inc-0123456789abcdef0123",
                &n.events,
                &en,
                OffsetDateTime::UNIX_EPOCH,
            )
            .unwrap()
    }

    #[test]
    fn a_retry_skips_what_ran_before_the_step_and_runs_it_and_what_the_stop_left() {
        let mut d = decision();
        let ids: Vec<String> = d.playbook.steps.iter().map(|s| s.id.clone()).collect();
        assert!(ids.len() >= 3, "{ids:?}");
        let retried = ids[1].clone();
        let steps = retry_plan(&mut d, &[], &retried).unwrap();
        assert_eq!(steps, ids[1..].to_vec());
        assert!(d.playbook.steps[0].done.is_some());
        assert!(d.playbook.steps[1..].iter().all(|s| s.done.is_none()));
        // The state machines' plan holds only what runs.
        let plan: Vec<String> = d.plan().values().map(|s| s.id.clone()).collect();
        assert!(
            !plan.contains(&ids[0]) && plan.contains(&retried),
            "{plan:?}"
        );
        assert!(retry_plan(&mut d, &[], "no-such-step").is_err());
    }
}
