//! Intake (`ir-ingest`): every normalized finding goes through [`IncidentStore::ingest`] (new,
//! repeat or attach, race-safe); a new incident starts the triage state machine with an
//! execution named after the incident, so racing deliveries of one finding start it once
//! (`ExecutionAlreadyExists` is the success it means); a later finding that raises an open
//! incident's severity starts a new revision's triage (`<id>-r<n>`), once per revision. Ingest records (`opened`, `repeated`,
//! `attached`) are never skipped: every delivery is one.

use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use ir_core::audit::event::{
    Attached, AuditEvent, Opened, Repeated, ResourceRef, TriageStarted, actions,
};
use ir_core::contracts::{IngestOutput, TriageInput};
use ir_core::correlate::Correlation;
use ir_core::incident::Status;
use ir_core::{ErrorName, SecurityEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use ir_aws::store::{IncidentStore, TableNames};
use ir_aws::{Clients, log_sdk_error};

use crate::audit_writer::AuditWriter;
use crate::recorder::{INGEST_ACTOR, RecordError, START_EXECUTION};

/// One triage execution of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriageStart {
    pub incident_id: String,
    pub execution_arn: String,
    /// `false`: an execution with this name already existed (a racing or repeated delivery, or a
    /// retry after a crash); nothing new was started.
    pub started: bool,
}

/// What [`Intake::ingest`] did with one envelope.
#[derive(Debug, Clone)]
pub struct Intaken {
    /// The incidents the envelope touched, as the store correlated them (with their history
    /// counts), and the findings skipped with their reasons.
    pub output: IngestOutput,
    /// The triage executions started (or found) for them.
    pub triage: Vec<TriageStart>,
}

/// Ingest: findings into incidents, and new incidents into triage.
#[derive(Debug, Clone)]
pub struct Intake {
    clients: Clients,
    incidents: IncidentStore,
    audit: AuditWriter,
    triage_state_machine_arn: String,
}

/// One incident an envelope touched.
#[derive(Debug)]
struct Touched {
    incident_id: String,
    correlations: Vec<Correlation>,
    events: Vec<SecurityEvent>,
    status: Status,
    detected_at: OffsetDateTime,
    history_count: u32,
    /// The incident's revision after the envelope's deliveries.
    revision: u32,
    /// A delivery raised the incident's severity (a new revision to triage).
    escalated: bool,
}

/// The audit event of one delivery.
fn delivery_event(
    e: &SecurityEvent,
    c: &Correlation,
    incident_severity: ir_core::Severity,
) -> AuditEvent {
    let resource = || ResourceRef {
        kind: e.resource.kind(),
        id: e.resource.id().to_owned(),
    };
    match c {
        Correlation::New { .. } => AuditEvent::Opened(Opened {
            finding_id: e.finding_id.clone(),
            finding_key: e.finding_key.clone(),
            source: e.source,
            product: e.product.clone(),
            finding_type: e.finding_type.clone(),
            title: e.title.clone(),
            severity: e.severity_label(),
            account: e.account.clone(),
            region: e.region.clone(),
            resource: resource(),
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            count: e.count,
            sample: e.sample,
            notes: e.notes.clone(),
            related: related(e),
        }),
        Correlation::Repeat { .. } => AuditEvent::Repeated(Repeated {
            finding_id: e.finding_id.clone(),
            count: e.count,
            severity: e.severity_label(),
            last_seen: e.last_seen,
            updated_at: e.updated_at,
        }),
        Correlation::Attach { .. } => AuditEvent::Attached(Attached {
            finding_id: e.finding_id.clone(),
            finding_key: e.finding_key.clone(),
            source: e.source,
            finding_type: e.finding_type.clone(),
            title: e.title.clone(),
            severity: e.severity_label(),
            incident_severity,
            resource: resource(),
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            notes: e.notes.clone(),
            related: related(e),
        }),
    }
}

/// The event as its incident triages it: on the incident's resource, which the playbook acts
/// on, when the finding was attached through another of the incident's resources (one an
/// attack sequence named); the finding's own resource then joins the related ones, each
/// planned for a responder.
fn for_incident(event: SecurityEvent, ingested: &ir_aws::store::Ingested) -> SecurityEvent {
    let key = &ingested.incident.resource_key;
    if *key == event.resource_key() {
        return event;
    }
    let account = key.split('/').next().unwrap_or(&event.account).to_owned();
    let tags = event
        .related_resources
        .iter()
        .find(|r| r.key() == *key)
        .map(|r| r.tags.clone())
        .unwrap_or_default();
    event.centred_on(&account, &ingested.resource, tags)
}

/// The other resources a finding names, as the audit records them (`account/kind/id`).
fn related(e: &SecurityEvent) -> Vec<String> {
    e.related_resources.iter().map(|r| r.key()).collect()
}

/// The ARN Step Functions gives the execution `name` of `state_machine_arn`
/// (`arn:aws:states:R:A:stateMachine:M` → `arn:aws:states:R:A:execution:M:name`).
pub fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let arn = ir_core::arn::Arn::parse(state_machine_arn)?;
    let resource = format!("execution:{}:{name}", arn.state_machine()?);
    Some(arn.with_resource(&resource).to_string())
}

impl Intake {
    /// Ingest on these clients and tables, starting `triage_state_machine_arn`.
    pub fn new(
        clients: Clients,
        names: TableNames,
        triage_state_machine_arn: impl Into<String>,
    ) -> Intake {
        Intake {
            incidents: IncidentStore::new(clients.clone(), names.clone()),
            audit: AuditWriter::new(&clients, &names),
            clients,
            triage_state_machine_arn: triage_state_machine_arn.into(),
        }
    }

    /// Correlates every finding of one envelope (already normalized and grouped, see
    /// [`IngestOutput::from_normalized`]) in the store, audits each delivery, and starts triage:
    /// for every incident the envelope opened; for every incident a finding escalated (raised
    /// the severity of the open incident: a new revision, triaged again, its executions named
    /// `<id>-r<revision>` so racing deliveries start one); and for every incident it touched
    /// that is still in triage with no triage execution recorded for its revision (a delivery
    /// that crashed between the store and the start: the redelivery starts it, idempotently by
    /// name). Repeats and attaches at or below the incident's severity start nothing.
    ///
    /// All or nothing per finding, in order: a failure stops the envelope with an error (its
    /// stable name is the store's or Step Functions'); EventBridge retries the whole envelope,
    /// and the findings already stored come back as repeats.
    pub async fn ingest(&self, batch: IngestOutput) -> Result<Intaken, RecordError> {
        let mut touched: Vec<Touched> = Vec::new();
        for group in batch.incidents {
            for event in group.events {
                let ingested = self.incidents.ingest(&event, group.detected_at).await?;
                let id = ingested.correlation.incident_id().to_owned();
                let delivery =
                    delivery_event(&event, &ingested.correlation, ingested.incident.severity);
                let at = OffsetDateTime::now_utc();
                self.audit
                    .append_patiently(&id, INGEST_ACTOR, &delivery, at)
                    .await?;
                let action = delivery.action();
                tracing::info!(
                    incident_id = %id,
                    finding_id = %event.finding_id,
                    correlation = %action,
                    severity = %event.severity.label,
                    status = %ingested.incident.status,
                    history_count = ingested.history_count,
                    "finding correlated"
                );
                let slot = match touched.iter_mut().position(|t| t.incident_id == id) {
                    Some(i) => &mut touched[i],
                    None => {
                        touched.push(Touched {
                            incident_id: id.clone(),
                            correlations: Vec::new(),
                            events: Vec::new(),
                            status: ingested.incident.status,
                            detected_at: ingested.incident.timeline.detected_at,
                            history_count: ingested.history_count,
                            revision: ingested.revision,
                            escalated: false,
                        });
                        let last = touched.len() - 1;
                        &mut touched[last]
                    }
                };
                slot.status = ingested.incident.status;
                slot.revision = slot.revision.max(ingested.revision);
                slot.escalated |= ingested.escalated;
                slot.events.push(for_incident(event, &ingested));
                slot.correlations.push(ingested.correlation);
            }
        }

        let mut incidents = Vec::with_capacity(touched.len());
        let mut triage = Vec::new();
        for t in touched {
            let opened = t
                .correlations
                .iter()
                .any(|c| matches!(c, Correlation::New { .. }));
            let input = TriageInput {
                incident_id: t.incident_id.clone(),
                correlations: t.correlations,
                events: t.events,
                detected_at: t.detected_at,
                history_count: t.history_count,
                revision: t.revision,
            };
            if opened || t.escalated || t.status == Status::Triage {
                let chain = self.audit.log().chain(&t.incident_id).await?;
                let recorded = chain.iter().any(|r| {
                    r.action == actions::TRIAGE_STARTED
                        && matches!(r.event(), Ok(AuditEvent::TriageStarted(s)) if s.revision == t.revision)
                });
                if opened || !recorded {
                    if t.escalated {
                        tracing::info!(incident_id = %t.incident_id, revision = t.revision, "a later finding raised the incident's severity: triaging it again");
                    } else if !opened {
                        tracing::warn!(incident_id = %t.incident_id, revision = t.revision, "incident revision with no triage execution recorded: starting it");
                    }
                    let start = self.start_triage(&input).await?;
                    if !recorded {
                        let started = AuditEvent::TriageStarted(TriageStarted {
                            execution_arn: start.execution_arn.clone(),
                            state_machine_arn: self.triage_state_machine_arn.clone(),
                            revision: t.revision,
                        });
                        self.audit
                            .append_once(
                                &t.incident_id,
                                None,
                                INGEST_ACTOR,
                                &started,
                                OffsetDateTime::now_utc(),
                            )
                            .await?;
                    }
                    triage.push(start);
                }
            }
            incidents.push(input);
        }
        Ok(Intaken {
            output: IngestOutput {
                incidents,
                skipped: batch.skipped,
            },
            triage,
        })
    }

    /// `StartExecution` named after the incident and revision. The same name and input while it runs returns
    /// the running execution; a different input, or a name already used (for 90 days, even by a
    /// finished execution), is `ExecutionAlreadyExists`: the incident's triage exists, which is
    /// what was wanted.
    async fn start_triage(&self, input: &TriageInput) -> Result<TriageStart, RecordError> {
        let body = serde_json::to_string(input).map_err(|e| {
            RecordError::InvalidInput(format!("triage input of {}: {e}", input.incident_id))
        })?;
        let name = input.execution_name();
        let sent = self
            .clients
            .sfn()
            .start_execution()
            .state_machine_arn(&self.triage_state_machine_arn)
            .name(&name)
            .input(body)
            .send()
            .await;
        let existing = || {
            execution_arn(&self.triage_state_machine_arn, &name).ok_or_else(|| {
                RecordError::Configuration(format!(
                    "`{}` is not a state machine ARN",
                    self.triage_state_machine_arn
                ))
            })
        };
        match sent {
            Ok(out) => {
                tracing::info!(incident_id = %input.incident_id, execution_arn = out.execution_arn(), "triage started");
                Ok(TriageStart {
                    incident_id: input.incident_id.clone(),
                    execution_arn: out.execution_arn().to_owned(),
                    started: true,
                })
            }
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(StartExecutionError::ExecutionAlreadyExists(_))
                ) =>
            {
                let execution_arn = existing()?;
                tracing::info!(incident_id = %input.incident_id, %execution_arn, "triage already started: nothing new started");
                Ok(TriageStart {
                    incident_id: input.incident_id.clone(),
                    execution_arn,
                    started: false,
                })
            }
            Err(err) => {
                let mut failure = log_sdk_error(START_EXECUTION, &err);
                match err.as_service_error() {
                    // The account's open-execution quota: drains as executions finish.
                    Some(StartExecutionError::ExecutionLimitExceeded(_)) => {
                        failure.name = ErrorName::Retryable;
                        Err(RecordError::Aws(failure))
                    }
                    Some(
                        StartExecutionError::StateMachineDoesNotExist(_)
                        | StartExecutionError::StateMachineDeleting(_)
                        | StartExecutionError::InvalidArn(_),
                    ) => Err(RecordError::Configuration(format!(
                        "triage state machine {}: {failure}",
                        self.triage_state_machine_arn
                    ))),
                    // Above 256 KB (a large Security Hub batch on one resource): not retryable.
                    Some(StartExecutionError::InvalidExecutionInput(_)) => {
                        Err(RecordError::InvalidInput(format!(
                            "triage input of {} refused: {failure}",
                            input.incident_id
                        )))
                    }
                    _ => Err(RecordError::Aws(failure)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_derive_from_the_state_machine() {
        assert_eq!(
            execution_arn(
                "arn:aws:states:us-east-1:123456789012:stateMachine:ir-triage",
                "inc-0123456789abcdef0123"
            )
            .as_deref(),
            Some(
                "arn:aws:states:us-east-1:123456789012:execution:ir-triage:inc-0123456789abcdef0123"
            )
        );
        assert_eq!(
            execution_arn("arn:aws:lambda:us-east-1:1:function:x", "n"),
            None
        );
    }
}
