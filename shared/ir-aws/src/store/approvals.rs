//! Approvals: a gated step waits (Step Functions `.waitForTaskToken`) until a human decides.
//!
//! The waiting task's token is stored with the request; a decision is one conditional update
//! (`status = pending` and not expired) that returns the token exactly once — to the caller that
//! decided — so the execution is resumed once. A second decision is a clear no-op
//! ([`Decided::Already`]) that returns no token.
//!
//! The approval path itself must authenticate and authorize the approver before calling
//! [`ApprovalStore::decide`]: task tokens cannot be scoped in IAM (`states:SendTask*` needs
//! `Resource: *`), so whoever holds a token can resume the execution. Tokens therefore never
//! appear in a log line or a `Debug` output ([`TaskToken`]).
//!
//! `expiresAt` (epoch seconds) is the table's TTL attribute, so old requests disappear. DynamoDB
//! deletes expired items only eventually (typically within days), so expiry is enforced by the
//! decision's condition, not by the TTL.

use std::fmt;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use time::OffsetDateTime;

use super::expr::Expr;
use super::item::{Item, Reader, json_text, n, s};
use super::retry::write_token;
use super::schema::TableNames;
use super::{StoreError, check_incident_id, log_failure, stamp};
use crate::{Clients, SdkFailure};

pub use ir_core::approval::ApprovalStatus;

const PUT: &str = "dynamodb:PutItem";
const UPDATE: &str = "dynamodb:UpdateItem";
const GET: &str = "dynamodb:GetItem";
const QUERY: &str = "dynamodb:Query";

/// What stands in for a token anywhere text is produced.
const REDACTED: &str = "TaskToken(…redacted)";

mod attr {
    pub const INCIDENT_ID: &str = "incidentId";
    pub const STEP_ID: &str = "stepId";
    pub const TASK_TOKEN: &str = "taskToken";
    pub const REQUESTER: &str = "requester";
    pub const PLAN: &str = "plan";
    pub const PLAN_HASH: &str = "planHash";
    pub const LEVEL: &str = "level";
    pub const STATUS: &str = "status";
    pub const REQUESTED_AT: &str = "requestedAt";
    pub const EXPIRES_AT: &str = "expiresAt";
    pub const DECIDED_BY: &str = "decidedBy";
    pub const DECIDED_AT: &str = "decidedAt";
    pub const REASON: &str = "reason";
    pub const DECISION_TOKEN: &str = "decisionToken";
}

/// A Step Functions task token. Whoever holds it can resume the execution, so its `Debug` and
/// `Display` never show it; [`TaskToken::expose`] is for `SendTaskSuccess`/`SendTaskFailure`.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskToken(String);

impl TaskToken {
    pub fn new(token: impl Into<String>) -> TaskToken {
        TaskToken(token.into())
    }

    /// The token itself, to send back to Step Functions. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A request for approval of one gated step.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub incident_id: String,
    pub step_id: String,
    /// The token of the task waiting for the decision.
    pub task_token: TaskToken,
    /// Who asks (the function or state machine).
    pub requester: String,
    /// What will run if approved (shown to the approver).
    pub plan: serde_json::Value,
    /// The SHA-256 of the action's planned changes (`ir_core::action::plan_hash`): what the
    /// approver approves, and what the action recomputes before it enforces.
    pub plan_hash: Option<String>,
    /// The escalation level (0 first; a re-request at a higher level escalates).
    pub level: u32,
    pub requested_at: OffsetDateTime,
    /// After this the request can no longer be approved; also the TTL of the item.
    pub expires_at: OffsetDateTime,
}

/// An approval as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub incident_id: String,
    pub step_id: String,
    pub task_token: TaskToken,
    pub requester: String,
    pub plan: serde_json::Value,
    pub plan_hash: Option<String>,
    pub level: u32,
    pub status: ApprovalStatus,
    pub requested_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub reason: Option<String>,
    decision_token: Option<String>,
}

impl Approval {
    /// Whether it can no longer be decided at `now` (pending and past `expires_at`, or marked
    /// expired).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.status == ApprovalStatus::Expired
            || (self.status == ApprovalStatus::Pending && now >= self.expires_at)
    }

    fn from_item(item: &Item) -> Result<Approval, StoreError> {
        let r = Reader::new(item, "approval");
        let expires = r.i64(attr::EXPIRES_AT)?;
        Ok(Approval {
            incident_id: r.s(attr::INCIDENT_ID)?.to_owned(),
            step_id: r.s(attr::STEP_ID)?.to_owned(),
            task_token: TaskToken::new(r.s(attr::TASK_TOKEN)?),
            requester: r.s(attr::REQUESTER)?.to_owned(),
            plan: r.json(attr::PLAN)?,
            plan_hash: r.opt_s(attr::PLAN_HASH)?.map(str::to_owned),
            level: u32::try_from(r.u64(attr::LEVEL)?).map_err(|e| StoreError::Corrupt {
                what: "approval".into(),
                why: format!("attribute `{}`: {e}", attr::LEVEL),
            })?,
            status: r.parsed(attr::STATUS)?,
            requested_at: r.time(attr::REQUESTED_AT)?,
            expires_at: OffsetDateTime::from_unix_timestamp(expires).map_err(|e| {
                StoreError::Corrupt {
                    what: "approval".into(),
                    why: format!("attribute `{}`: {e}", attr::EXPIRES_AT),
                }
            })?,
            decided_by: r.opt_s(attr::DECIDED_BY)?.map(str::to_owned),
            decided_at: r.opt_time(attr::DECIDED_AT)?,
            reason: r.opt_s(attr::REASON)?.map(str::to_owned),
            decision_token: r.opt_s(attr::DECISION_TOKEN)?.map(str::to_owned),
        })
    }
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// This call decided: resume the execution with `task_token` (`SendTaskSuccess` when
    /// approved, `SendTaskFailure` when rejected).
    Now {
        task_token: TaskToken,
        approval: Box<Approval>,
    },
    /// It was decided (or expired) before: nothing to do, no token.
    Already {
        status: ApprovalStatus,
        decided_by: Option<String>,
        decided_at: Option<OffsetDateTime>,
    },
}

/// Approval requests and decisions.
#[derive(Debug, Clone)]
pub struct ApprovalStore {
    clients: Clients,
    names: TableNames,
}

fn key(incident_id: &str, step_id: &str) -> Item {
    Item::from([
        (attr::INCIDENT_ID.to_owned(), s(incident_id)),
        (attr::STEP_ID.to_owned(), s(step_id)),
    ])
}

fn check_step(step_id: &str) -> Result<(), StoreError> {
    if step_id.is_empty() || step_id.len() > 256 {
        return Err(StoreError::InvalidInput(format!(
            "step id `{step_id}`: 1-256 bytes"
        )));
    }
    Ok(())
}

/// An SDK failure with every occurrence of the token removed from its message, logged once.
fn sdk_error_redacted<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
    token: &TaskToken,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut failure = SdkFailure::new(operation, err);
    if !token.0.is_empty() {
        failure.detail = failure.detail.replace(&token.0, REDACTED);
    }
    log_failure(&failure);
    StoreError::Aws(failure)
}

impl ApprovalStore {
    /// The store on these clients and tables.
    pub fn new(clients: Clients, names: TableNames) -> ApprovalStore {
        ApprovalStore { clients, names }
    }

    /// An `UpdateItem` of one approval with `e`'s update, condition, names and values.
    fn update(
        &self,
        incident_id: &str,
        step_id: &str,
        e: &Expr,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.clients
            .dynamodb()
            .update_item()
            .table_name(&self.names.approvals)
            .set_key(Some(key(incident_id, step_id)))
            .update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
    }

    /// Stores a request (pending).
    ///
    /// A request for a step that already has one replaces it only while it is still pending
    /// and only at the same or a higher level: an escalation, or a retried waiting task (Step
    /// Functions gives every attempt of a `.waitForTaskToken` task a new token, and only the
    /// latest can resume the execution). An expired request (nobody decided in time; a late
    /// decision marked it) is replaced by the escalation to a higher level, which is what the
    /// state machine does next. A decided step is never reopened (`Conflict`), and a lower
    /// level never replaces a higher one (`Conflict`).
    pub async fn request(&self, req: &ApprovalRequest) -> Result<Approval, StoreError> {
        check_incident_id(&req.incident_id)?;
        check_step(&req.step_id)?;
        if req.task_token.0.is_empty() || req.requester.is_empty() {
            return Err(StoreError::InvalidInput(
                "an approval request needs a task token and a requester".into(),
            ));
        }
        if req.expires_at <= req.requested_at {
            return Err(StoreError::InvalidInput(format!(
                "approval of {} {} expires ({}) before it is requested ({})",
                req.incident_id, req.step_id, req.expires_at, req.requested_at
            )));
        }
        let mut item = key(&req.incident_id, &req.step_id);
        item.insert(attr::TASK_TOKEN.into(), s(req.task_token.0.clone()));
        item.insert(attr::REQUESTER.into(), s(req.requester.clone()));
        item.insert(attr::PLAN.into(), s(json_text("plan", &req.plan)?));
        if let Some(h) = &req.plan_hash {
            item.insert(attr::PLAN_HASH.into(), s(h.clone()));
        }
        item.insert(attr::LEVEL.into(), n(req.level));
        item.insert(attr::STATUS.into(), s(ApprovalStatus::Pending.as_str()));
        item.insert(attr::REQUESTED_AT.into(), s(stamp(req.requested_at)?));
        item.insert(attr::EXPIRES_AT.into(), n(req.expires_at.unix_timestamp()));
        let stored = Approval::from_item(&item)?;

        let mut e = Expr::new();
        let step = e.name(attr::STEP_ID);
        let status = e.name(attr::STATUS);
        let level = e.name(attr::LEVEL);
        let pending = e.value(s(ApprovalStatus::Pending.as_str()));
        let expired = e.value(s(ApprovalStatus::Expired.as_str()));
        let new_level = e.value(n(req.level));
        let mut condition = format!(
            "attribute_not_exists({step}) OR ({status} = {pending} AND {level} <= {new_level}) \
             OR ({status} = {expired} AND {level} < {new_level})"
        );
        // An approved plan that no longer holds (the action failed `PlanChanged`) is a new
        // question: the new plan is asked for from the first level.
        if let Some(h) = &req.plan_hash {
            let approved = e.value(s(ApprovalStatus::Approved.as_str()));
            let hash = e.name(attr::PLAN_HASH);
            let new_hash = e.value(s(h.clone()));
            condition.push_str(&format!(
                " OR ({status} = {approved} AND attribute_exists({hash}) AND {hash} <> {new_hash})"
            ));
        }
        e.condition(condition);
        let put = self
            .clients
            .dynamodb()
            .put_item()
            .table_name(&self.names.approvals)
            .set_item(Some(item))
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match put {
            Ok(_) => return Ok(stored),
            Err(err) => err,
        };
        let existing = match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(c)) => match c.item() {
                Some(item) => Approval::from_item(item)?,
                None => self
                    .get(&req.incident_id, &req.step_id)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Conflict(format!(
                            "approval of {} {} changed while it was requested",
                            req.incident_id, req.step_id
                        ))
                    })?,
            },
            _ => return Err(sdk_error_redacted(PUT, &err, &req.task_token)),
        };
        if existing.status == ApprovalStatus::Expired {
            return Err(StoreError::Conflict(format!(
                "approval of {} {} expired at level {}: only an escalation to a higher level \
                 (not {}) asks again",
                req.incident_id, req.step_id, existing.level, req.level
            )));
        }
        if existing.status != ApprovalStatus::Pending {
            return Err(StoreError::Conflict(format!(
                "approval of {} {} is already {}{}: a decided step is not requested again",
                req.incident_id,
                req.step_id,
                existing.status,
                existing
                    .decided_by
                    .as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default()
            )));
        }
        Err(StoreError::Conflict(format!(
            "approval of {} {} is pending at level {}: a request at level {} does not replace it",
            req.incident_id, req.step_id, existing.level, req.level
        )))
    }

    /// Decides a pending approval, once.
    ///
    /// Conditional on the request being pending and unexpired at `at`: the first decision gets
    /// [`Decided::Now`] with the task token; any later one gets [`Decided::Already`] with who
    /// decided and when (an expired request is marked `expired`). An unknown step is
    /// `NotFound`. A decision whose answer was lost but that landed is recognized by its own
    /// token and still returns `Now`.
    #[allow(clippy::too_many_arguments)] // one decision's whole content, each used once
    pub async fn decide(
        &self,
        incident_id: &str,
        step_id: &str,
        approve: bool,
        decided_by: &str,
        reason: &str,
        plan_hash: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        check_incident_id(incident_id)?;
        check_step(step_id)?;
        if decided_by.is_empty() {
            return Err(StoreError::InvalidInput(
                "a decision needs the approver's identity".into(),
            ));
        }
        let decision = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        let token = write_token();
        let mut e = Expr::new();
        e.set(attr::STATUS, s(decision.as_str()))
            .set(attr::DECIDED_BY, s(decided_by))
            .set(attr::DECIDED_AT, s(stamp(at)?))
            .set(attr::DECISION_TOKEN, s(token.clone()));
        if !reason.is_empty() {
            e.set(attr::REASON, s(reason));
        }
        let status = e.name(attr::STATUS);
        let expires = e.name(attr::EXPIRES_AT);
        let pending = e.value(s(ApprovalStatus::Pending.as_str()));
        let now = e.value(n(at.unix_timestamp()));
        e.condition(format!("{status} = {pending}"))
            .condition(format!("{expires} > {now}"));
        if let Some(h) = plan_hash {
            let stored = e.name(attr::PLAN_HASH);
            let seen = e.value(s(h));
            e.condition(format!("{stored} = {seen}"));
        }
        let sent = self
            .update(incident_id, step_id, &e)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match sent {
            Ok(out) => {
                let approval = match out.attributes {
                    Some(item) => Approval::from_item(&item)?,
                    None => self.get(incident_id, step_id).await?.ok_or_else(|| {
                        StoreError::NotFound(format!("approval of {incident_id} {step_id}"))
                    })?,
                };
                return Ok(Decided::Now {
                    task_token: approval.task_token.clone(),
                    approval: Box::new(approval),
                });
            }
            Err(err) => err,
        };
        let current = match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                Some(item) => Some(Approval::from_item(item)?),
                None => self.get(incident_id, step_id).await?,
            },
            _ => return Err(StoreError::sdk(UPDATE, &err)),
        };
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!(
                "no approval was requested for {incident_id} {step_id}"
            )));
        };
        if current.decision_token.as_deref() == Some(token.as_str()) {
            return Ok(Decided::Now {
                task_token: current.task_token.clone(),
                approval: Box::new(current),
            });
        }
        if current.status == ApprovalStatus::Pending {
            // Pending but past its expiry.
            self.mark_expired(incident_id, step_id, at).await?;
            return Ok(Decided::Already {
                status: ApprovalStatus::Expired,
                decided_by: None,
                decided_at: None,
            });
        }
        Ok(Decided::Already {
            status: current.status,
            decided_by: current.decided_by,
            decided_at: current.decided_at,
        })
    }

    /// Takes back a decision that Step Functions refused to deliver because the waiting task is
    /// gone (it timed out, its execution ended, or the token was refused): the decision took no
    /// effect, so the request reads `expired` — undecided — and the gate's escalation may ask
    /// again. Who tried to decide stays in the audit chain (`approval-not-delivered`).
    ///
    /// Conditional on `approval` being this very decision (its decision token), so a decision
    /// that did take effect is never undone. Returns whether the record changed.
    pub async fn void_undelivered(&self, approval: &Approval) -> Result<bool, StoreError> {
        let Some(token) = approval.decision_token.as_deref() else {
            return Err(StoreError::InvalidInput(format!(
                "approval of {} {} carries no decision to take back",
                approval.incident_id, approval.step_id
            )));
        };
        let mut e = Expr::new();
        e.set(attr::STATUS, s(ApprovalStatus::Expired.as_str()))
            .remove(attr::DECIDED_BY)
            .remove(attr::DECIDED_AT)
            .remove(attr::REASON)
            .remove(attr::DECISION_TOKEN)
            .require_eq(attr::DECISION_TOKEN, s(token));
        let sent = self
            .update(&approval.incident_id, &approval.step_id, &e)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // Not this decision any more (replaced by an escalation's request): nothing to undo.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(sdk_error_redacted(UPDATE, &err, &approval.task_token)),
        }
    }

    /// Marks a pending request past its expiry as expired (if it still is).
    async fn mark_expired(
        &self,
        incident_id: &str,
        step_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut e = Expr::new();
        e.set(attr::STATUS, s(ApprovalStatus::Expired.as_str()));
        let status = e.name(attr::STATUS);
        let expires = e.name(attr::EXPIRES_AT);
        let pending = e.value(s(ApprovalStatus::Pending.as_str()));
        let now = e.value(n(at.unix_timestamp()));
        e.condition(format!("{status} = {pending}"))
            .condition(format!("{expires} <= {now}"));
        let sent = self.update(incident_id, step_id, &e).send().await;
        match sent {
            Ok(_) => Ok(()),
            // Decided or marked meanwhile: nothing to mark.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(StoreError::sdk(UPDATE, &err)),
        }
    }

    /// One approval (strongly consistent).
    pub async fn get(
        &self,
        incident_id: &str,
        step_id: &str,
    ) -> Result<Option<Approval>, StoreError> {
        check_incident_id(incident_id)?;
        check_step(step_id)?;
        let out = self
            .clients
            .dynamodb()
            .get_item()
            .table_name(&self.names.approvals)
            .set_key(Some(key(incident_id, step_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET, &e))?;
        out.item.as_ref().map(Approval::from_item).transpose()
    }

    /// The incident's pending approvals (strongly consistent), by step id. Use
    /// [`Approval::is_expired`] to tell the ones that can still be decided.
    pub async fn pending(&self, incident_id: &str) -> Result<Vec<Approval>, StoreError> {
        check_incident_id(incident_id)?;
        let mut e = Expr::new();
        let k = e.name(attr::INCIDENT_ID);
        let kv = e.value(s(incident_id));
        let status = e.name(attr::STATUS);
        let pending = e.value(s(ApprovalStatus::Pending.as_str()));
        let mut out = Vec::new();
        let mut pages = self
            .clients
            .dynamodb()
            .query()
            .table_name(&self.names.approvals)
            .key_condition_expression(format!("{k} = {kv}"))
            .filter_expression(format!("{status} = {pending}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(QUERY, &e))?;
            for item in page.items() {
                out.push(Approval::from_item(item)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = TaskToken::new("AAAAKgAAAAIAAAAAAAAAAsecret-token-text");
        assert_eq!(format!("{t:?}"), "TaskToken(…redacted)");
        assert_eq!(format!("{t}"), "TaskToken(…redacted)");
        assert_eq!(t.expose(), "AAAAKgAAAAIAAAAAAAAAAsecret-token-text");
        let req = ApprovalRequest {
            incident_id: "inc-0123456789abcdef0123".into(),
            step_id: "isolate".into(),
            task_token: t,
            requester: "ir-triage".into(),
            plan: serde_json::json!({}),
            plan_hash: None,
            level: 1,
            requested_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!format!("{req:?}").contains("secret-token-text"));
    }
}
