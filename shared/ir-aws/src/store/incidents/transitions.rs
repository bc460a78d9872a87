//! An incident's life: status transitions, the triage decision, containment records, the last
//! error and the post-incident review, each one optimistic update.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::BTreeSet;

use ir_core::action::ContainmentRecord;
use ir_core::contracts::Decision;
use ir_core::event::RelatedResource;
use ir_core::incident::Status;
use ir_core::review::Review;
use time::OffsetDateTime;

use super::tx::{TX, TxError, update_in_tx};
use super::{Incident, IncidentPatch, IncidentStore, LastError, attr, key_of};
use crate::store::StoreError;
use crate::store::expr::Expr;
use crate::store::item::s;
use crate::store::retry::{Attempts, write_token};

/// Attempts at one optimistic update of an incident, before `Conflict`.
const UPDATE_ATTEMPTS: u32 = 20;

const UPDATE: &str = "dynamodb:UpdateItem";

impl IncidentStore {
    /// Moves the incident from `from` to `to` at `at`, with `patch`, if it is still in `from`.
    ///
    /// Refuses a transition `Status::can_become` does not allow (`IllegalTransition`) and a
    /// stale `from` (`Conflict`). Sets the timeline field of `to`: `containedAt` for
    /// `Contained`, `resolvedAt` for `Resolved` (the first time only; `triagedAt` is set by
    /// [`IncidentStore::record_decision`]). Resolving deletes the resource's `open#R` key in the
    /// same transaction, so the next finding on it opens a new incident.
    pub async fn transition(
        &self,
        incident_id: &str,
        from: Status,
        to: Status,
        at: OffsetDateTime,
        patch: IncidentPatch,
    ) -> Result<Incident, StoreError> {
        if !from.can_become(to) {
            return Err(StoreError::IllegalTransition {
                incident_id: incident_id.to_owned(),
                from,
                to,
            });
        }
        self.update(incident_id, at, |current| {
            if current.summary.status != from {
                return Err(StoreError::Conflict(format!(
                    "incident {incident_id} is {}, not {from}: cannot move it to {to}",
                    current.summary.status
                )));
            }
            let mut next = current.clone();
            next.summary.status = to;
            let t = &mut next.summary.timeline;
            match to {
                Status::Contained => t.contained_at = t.contained_at.or(Some(at)),
                Status::Resolved => t.resolved_at = t.resolved_at.or(Some(at)),
                Status::Triage
                | Status::Queued
                | Status::Containment
                | Status::NeedsAttention
                | Status::Postmortem => {}
            }
            apply_patch(&mut next, &patch);
            Ok(Some(next))
        })
        .await
    }

    /// Records the triage decision: the decision itself, `triagedAt` (the first time), the
    /// severity (raised to the decision's, never lowered: an attach may have raised it since)
    /// and the playbook; only for the incident's current revision. A decision for an earlier
    /// revision (superseded by a later finding) writes nothing: the incident returned is at a
    /// later revision, which says so. A revision the incident never had is `InvalidInput`; a
    /// closed incident is `Conflict` (no decision is written on it).
    pub async fn record_decision(
        &self,
        incident_id: &str,
        decision: &Decision,
        at: OffsetDateTime,
    ) -> Result<Incident, StoreError> {
        if decision.incident_id != incident_id {
            return Err(StoreError::InvalidInput(format!(
                "the decision is for incident {}, not {incident_id}",
                decision.incident_id
            )));
        }
        self.update(incident_id, at, |current| {
            let status = current.summary.status;
            if !status.is_open() {
                return Err(StoreError::Conflict(format!(
                    "incident {incident_id} is {status}: it was closed while it was triaged; no playbook runs"
                )));
            }
            if decision.revision > current.revision {
                return Err(StoreError::InvalidInput(format!(
                    "incident {incident_id} has no revision {} (it is at revision {}): a decision is recorded for a revision the incident's own record has",
                    decision.revision, current.revision
                )));
            }
            let recorded_later = current
                .decision
                .as_ref()
                .is_some_and(|d| d.revision > decision.revision);
            if decision.revision < current.revision || recorded_later {
                // Superseded: a later finding revised the incident; its triage decides.
                return Ok(None);
            }
            let mut next = current.clone();
            next.decision = Some(decision.clone());
            let t = &mut next.summary.timeline;
            t.triaged_at = t.triaged_at.or(Some(at));
            next.summary.severity = next.summary.severity.max(decision.severity);
            next.summary.playbook = Some(decision.playbook.id.clone());
            Ok(Some(next))
        })
        .await
    }

    /// Adds the records containment actions returned (release restores from them). A record
    /// already present is not added again, so a retried step changes nothing.
    pub async fn add_records(
        &self,
        incident_id: &str,
        records: &[ContainmentRecord],
    ) -> Result<Incident, StoreError> {
        let at = OffsetDateTime::now_utc();
        self.update(incident_id, at, |current| {
            let mut next = current.clone();
            add_records(&mut next.records, records);
            Ok(Some(next))
        })
        .await
    }

    /// Records the last failure of a step.
    pub async fn record_error(
        &self,
        incident_id: &str,
        step: &str,
        message: &str,
    ) -> Result<Incident, StoreError> {
        let at = OffsetDateTime::now_utc();
        self.update(incident_id, at, |current| {
            let mut next = current.clone();
            next.last_error = Some(LastError {
                step: step.to_owned(),
                message: message.to_owned(),
            });
            Ok(Some(next))
        })
        .await
    }

    /// Writes the incident's post-incident review as `plan` computes it from the incident as read
    /// (strongly consistent), with the status `plan` says, in one write conditional on the
    /// version read. A lost race reads the incident again and plans again from what the other
    /// writer left, so a concurrent change (another's item, a section) is never overwritten.
    /// `plan` returning `None`, or what is stored already, writes nothing. A status change
    /// `Status::can_become` refuses is `IllegalTransition`; the review never resolves an incident.
    pub async fn write_review<F>(
        &self,
        incident_id: &str,
        at: OffsetDateTime,
        mut plan: F,
    ) -> Result<Incident, StoreError>
    where
        F: FnMut(&Incident) -> Result<Option<(Status, Review)>, StoreError>,
    {
        self.update(incident_id, at, |current| {
            let Some((status, review)) = plan(current)? else {
                return Ok(None);
            };
            let from = current.summary.status;
            if status != from && (!from.can_become(status) || status == Status::Resolved) {
                return Err(StoreError::IllegalTransition {
                    incident_id: incident_id.to_owned(),
                    from,
                    to: status,
                });
            }
            let mut next = current.clone();
            next.summary.status = status;
            next.review = Some(review);
            Ok(Some(next))
        })
        .await
    }

    /// One optimistic update: read (strongly consistent), let `plan` compute the next state,
    /// write the difference conditional on the version read; on a lost race, continue from the
    /// state DynamoDB returned with the failure. `plan` returning the same state (or `None`)
    /// writes nothing.
    async fn update<F>(
        &self,
        incident_id: &str,
        at: OffsetDateTime,
        mut plan: F,
    ) -> Result<Incident, StoreError>
    where
        F: FnMut(&Incident) -> Result<Option<Incident>, StoreError>,
    {
        let token = write_token();
        let mut attempts = Attempts::new(&self.clients, UPDATE_ATTEMPTS);
        let mut current = self.get_required(incident_id).await?;
        // `open#` keys found pointing at another incident: resolve without touching them.
        let mut foreign: BTreeSet<String> = BTreeSet::new();
        while attempts.take() {
            if current.written_by(&token) {
                return Ok(current);
            }
            let Some(planned) = plan(&current)? else {
                return Ok(current);
            };
            if !current.differs(&planned)? {
                return Ok(current);
            }
            let mut next = planned;
            next.version = current.version + 1;
            next.updated_at = at;
            next.write_token = Some(token.clone());
            let e = current.update_to(&next)?;
            let resolves = next.summary.status == Status::Resolved
                && current.summary.status != Status::Resolved;
            // The `open#` of the incident's resource and of each related one (an attack
            // sequence's): at most 1 + 64 deletes, within a transaction's 100 items.
            let mut open_keys: Vec<String> = Vec::new();
            for k in std::iter::once(current.summary.resource_key.clone())
                .chain(current.related_resources.iter().map(RelatedResource::key))
            {
                let k = format!("open#{k}");
                if !foreign.contains(&k) && !open_keys.contains(&k) {
                    open_keys.push(k);
                }
            }
            if resolves && !open_keys.is_empty() {
                let mut items = vec![update_in_tx(
                    &self.names.incidents,
                    key_of(attr::INCIDENT_ID, incident_id),
                    &e,
                )?];
                for open_key in &open_keys {
                    let mut de = Expr::new();
                    let k = de.name(attr::KEY);
                    let id = de.name(attr::INCIDENT_ID);
                    let v = de.value(s(incident_id));
                    de.condition(format!("attribute_not_exists({k}) OR {id} = {v}"));
                    let delete = Delete::builder()
                        .table_name(&self.names.keys)
                        .set_key(Some(key_of(attr::KEY, open_key)))
                        .set_condition_expression(de.condition_expression())
                        .set_expression_attribute_names(de.names())
                        .set_expression_attribute_values(de.values())
                        .build()
                        .map_err(|e| StoreError::build(TX, e))?;
                    items.push(TransactWriteItem::builder().delete(delete).build());
                }
                match self.transact(items).await {
                    Ok(()) => return Ok(next),
                    Err(TxError::Failed(e)) => return Err(e),
                    Err(TxError::Conflict) => {
                        attempts.backoff().await;
                        current = self.get_required(incident_id).await?;
                    }
                    Err(TxError::Cancelled(reasons)) => {
                        let mut reasons = reasons.into_iter();
                        match reasons.next() {
                            Some(r) if r.failed_condition() => {
                                attempts.backoff().await;
                                current = match r.item {
                                    Some(item) => Incident::from_item(&item)?,
                                    None => self.get_required(incident_id).await?,
                                };
                            }
                            _ => {
                                let held: Vec<&String> = reasons
                                    .zip(&open_keys)
                                    .filter(|(r, _)| r.failed_condition())
                                    .map(|(_, k)| k)
                                    .collect();
                                if held.is_empty() {
                                    attempts.backoff().await;
                                    current = self.get_required(incident_id).await?;
                                }
                                for open_key in held {
                                    tracing::warn!(
                                        incident_id,
                                        open_key = %open_key,
                                        "the resource's open key maps to another incident; resolving without deleting it"
                                    );
                                    foreign.insert(open_key.clone());
                                }
                            }
                        }
                    }
                }
                continue;
            }
            let sent = self
                .clients
                .dynamodb()
                .update_item()
                .table_name(&self.names.incidents)
                .set_key(Some(key_of(attr::INCIDENT_ID, incident_id)))
                .update_expression(e.update_expression())
                .set_condition_expression(e.condition_expression())
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match sent {
                Ok(out) => {
                    return match out.attributes {
                        Some(item) => Incident::from_item(&item),
                        None => Ok(next),
                    };
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        let item = c.item().cloned();
                        attempts.backoff().await;
                        current = match item {
                            Some(item) => Incident::from_item(&item)?,
                            None => self.get_required(incident_id).await?,
                        };
                    }
                    // A transaction (an ingest) is writing the item right now.
                    _ if err.code() == Some("TransactionConflictException") => {
                        attempts.backoff().await;
                        current = self.get_required(incident_id).await?;
                    }
                    _ => return Err(StoreError::sdk(UPDATE, &err)),
                },
            }
        }
        Err(StoreError::Conflict(format!(
            "incident {incident_id}: concurrent updates kept winning ({} attempts)",
            attempts.used()
        )))
    }
}

fn add_records(into: &mut Vec<ContainmentRecord>, records: &[ContainmentRecord]) {
    for r in records {
        if !into.contains(r) {
            into.push(r.clone());
        }
    }
}

fn apply_patch(next: &mut Incident, patch: &IncidentPatch) {
    if let Some(sev) = patch.severity {
        next.summary.severity = next.summary.severity.max(sev);
    }
    if let Some(p) = &patch.playbook {
        next.summary.playbook = Some(p.clone());
    }
    add_records(&mut next.records, &patch.records);
    if patch.clear_error {
        next.last_error = None;
    }
    if let Some(e) = &patch.last_error {
        next.last_error = Some(e.clone());
    }
}
