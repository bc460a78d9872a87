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
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

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
    pub const ROLE: &str = "role";
    pub const APPROVALS_REQUIRED: &str = "approvalsRequired";
    pub const APPROVALS: &str = "approvals";
    pub const ROUND: &str = "round";
}

/// How many times a decision re-reads a request that changed under it before giving up.
const DECIDE_ATTEMPTS: usize = 8;

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
    /// The escalation role this level asks (it or a higher role decides).
    pub role: String,
    /// How many different people must approve (at least 1).
    pub approvals_required: u32,
    pub requested_at: OffsetDateTime,
    /// After this the request can no longer be approved; also the TTL of the item.
    pub expires_at: OffsetDateTime,
    /// The step's approval round: 0 for the playbook's own run, n for the n-th `ir retry` of
    /// the step (counted from the audit chain). A new round asks again, whatever was decided.
    pub round: u32,
}

/// One person's approval of a request that needs more than one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    /// The person (`ir_core::approval::Person`).
    pub person: String,
    /// The ARN AWS authenticated.
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// This write's own token: a vote whose answer was lost is recognized by it.
    #[serde(default, skip_serializing)]
    token: String,
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
    /// The escalation role the level asks (empty on requests stored before roles were bound).
    pub role: String,
    /// How many different people must approve.
    pub approvals_required: u32,
    /// Who approved so far (the last one decides when they reach `approvals_required`).
    pub approvals: Vec<Vote>,
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
            role: r.opt_s(attr::ROLE)?.unwrap_or_default().to_owned(),
            approvals_required: u32::try_from(r.opt_u64(attr::APPROVALS_REQUIRED)?.unwrap_or(1))
                .unwrap_or(u32::MAX)
                .max(1),
            approvals: votes(item)?,
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

/// The votes of an item: a list of JSON strings (absent: none).
fn votes(item: &Item) -> Result<Vec<Vote>, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        what: "approval".into(),
        why: format!("attribute `{}`: {why}", attr::APPROVALS),
    };
    match item.get(attr::APPROVALS) {
        None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(text) => {
                    serde_json::from_str::<Vote>(text).map_err(|e| corrupt(e.to_string()))
                }
                _ => Err(corrupt("an entry is not a string".into())),
            })
            .collect(),
        Some(_) => Err(corrupt("not a list".into())),
    }
}

/// A vote as stored (its token included).
fn vote_text(v: &Vote) -> Result<String, StoreError> {
    let mut value = serde_json::to_value(v).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
    value["token"] = serde_json::Value::String(v.token.clone());
    Ok(value.to_string())
}

/// One person's decision on a request.
#[derive(Debug, Clone, Copy)]
pub struct Ballot<'a> {
    /// Approve (counted) or reject (final: one rejection rejects).
    pub approve: bool,
    /// The person (`ir_core::approval::Person`): one vote each.
    pub person: &'a str,
    /// The ARN AWS authenticated.
    pub decided_by: &'a str,
    pub reason: &'a str,
    /// The plan the person saw: the decision holds only while the request asks about it.
    pub plan_hash: Option<&'a str>,
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
    /// An approval counted, more are needed: nothing to resume yet.
    Counted { approval: Box<Approval> },
    /// This person approved this request before: one person is one vote.
    Repeated { vote: Vote },
    /// The request asks about another plan than the one the person saw.
    PlanChanged { current: Option<String> },
    /// It was decided (or expired) before: nothing to do, no token.
    Already {
        status: ApprovalStatus,
        decided_by: Option<String>,
        decided_at: Option<OffsetDateTime>,
    },
}

/// What a landed write of a ballot means.
fn outcome(decides: bool, approval: Approval) -> Decided {
    if decides {
        Decided::Now {
            task_token: approval.task_token.clone(),
            approval: Box::new(approval),
        }
    } else {
        Decided::Counted {
            approval: Box::new(approval),
        }
    }
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
    /// level never replaces a higher one (`Conflict`) — except in a new round (a responder
    /// retried the step after it failed: `round` above the stored one), which asks anew.
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
        if !req.role.is_empty() {
            item.insert(attr::ROLE.into(), s(req.role.clone()));
        }
        item.insert(
            attr::APPROVALS_REQUIRED.into(),
            n(req.approvals_required.max(1)),
        );
        item.insert(attr::APPROVALS.into(), AttributeValue::L(Vec::new()));
        item.insert(attr::STATUS.into(), s(ApprovalStatus::Pending.as_str()));
        item.insert(attr::REQUESTED_AT.into(), s(stamp(req.requested_at)?));
        item.insert(attr::EXPIRES_AT.into(), n(req.expires_at.unix_timestamp()));
        if req.round > 0 {
            item.insert(attr::ROUND.into(), n(req.round));
        }
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
        // A retry of the step (`ir retry`) is a new question, whatever the last round decided;
        // within a round, the rules above.
        if req.round > 0 {
            let round = e.name(attr::ROUND);
            let new_round = e.value(n(req.round));
            condition.push_str(&format!(
                " OR ({status} <> {pending} AND (attribute_not_exists({round}) OR {round} < {new_round}))"
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

    /// Records one person's decision on a pending approval.
    ///
    /// A rejection decides at once. An approval is counted: the request is decided (approved)
    /// by the approval that brings the count to `approvals_required`, and one person counts
    /// once ([`Decided::Repeated`]). Every write is conditional on the request being the one
    /// read (pending, unexpired, same level, request time, count and plan): a request that
    /// changed meanwhile is read again. The deciding call gets [`Decided::Now`] with the task
    /// token; a counted one [`Decided::Counted`]; any later one [`Decided::Already`] with who
    /// decided and when (an expired request is marked `expired`). An unknown step is
    /// `NotFound`. A write whose answer was lost but that landed is recognized by its own token.
    pub async fn decide(
        &self,
        incident_id: &str,
        step_id: &str,
        ballot: &Ballot<'_>,
        at: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        self.decide_on(incident_id, step_id, None, ballot, at).await
    }

    /// [`ApprovalStore::decide`] starting from `read`, the request as the caller just read it
    /// (one `GetItem` fewer; a request that changed since is read again).
    pub async fn decide_on(
        &self,
        incident_id: &str,
        step_id: &str,
        read: Option<Approval>,
        ballot: &Ballot<'_>,
        at: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        check_incident_id(incident_id)?;
        check_step(step_id)?;
        let mut read = read.filter(|a| a.incident_id == incident_id && a.step_id == step_id);
        if ballot.decided_by.is_empty() || ballot.person.is_empty() {
            return Err(StoreError::InvalidInput(
                "a decision needs the approver's identity".into(),
            ));
        }
        for _ in 0..DECIDE_ATTEMPTS {
            let current = match read.take() {
                Some(current) => current,
                None => self.get(incident_id, step_id).await?.ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "no approval was requested for {incident_id} {step_id}"
                    ))
                })?,
            };
            if current.status != ApprovalStatus::Pending {
                return Ok(Decided::Already {
                    status: current.status,
                    decided_by: current.decided_by,
                    decided_at: current.decided_at,
                });
            }
            if current.is_expired(at) {
                self.mark_expired(incident_id, step_id, at).await?;
                return Ok(Decided::Already {
                    status: ApprovalStatus::Expired,
                    decided_by: None,
                    decided_at: None,
                });
            }
            if let Some(seen) = ballot.plan_hash
                && current.plan_hash.as_deref() != Some(seen)
            {
                return Ok(Decided::PlanChanged {
                    current: current.plan_hash,
                });
            }
            if ballot.approve
                && let Some(vote) = current.approvals.iter().find(|v| v.person == ballot.person)
            {
                return Ok(Decided::Repeated { vote: vote.clone() });
            }
            if let Some(outcome) = self.write_ballot(&current, ballot, at).await? {
                return Ok(outcome);
            }
        }
        Err(StoreError::Conflict(format!(
            "approval of {incident_id} {step_id} changed {DECIDE_ATTEMPTS} times while it was decided"
        )))
    }

    /// One conditional write of `ballot` on the request as `current` holds it: the outcome, or
    /// `None` when the request changed since it was read.
    async fn write_ballot(
        &self,
        current: &Approval,
        ballot: &Ballot<'_>,
        at: OffsetDateTime,
    ) -> Result<Option<Decided>, StoreError> {
        let (incident_id, step_id) = (current.incident_id.as_str(), current.step_id.as_str());
        let count = current.approvals.len();
        let decides = !ballot.approve || count + 1 >= current.approvals_required as usize;
        let token = write_token();
        let mut e = Expr::new();
        if ballot.approve {
            let vote = Vote {
                person: ballot.person.to_owned(),
                by: ballot.decided_by.to_owned(),
                at,
                reason: ballot.reason.to_owned(),
                token: token.clone(),
            };
            let list = e.name(attr::APPROVALS);
            let entry = e.value(AttributeValue::L(vec![s(vote_text(&vote)?)]));
            let none = e.value(AttributeValue::L(Vec::new()));
            // A request stored before votes were counted has no list yet.
            e.set_expression(format!(
                "{list} = list_append(if_not_exists({list}, {none}), {entry})"
            ));
        }
        if decides {
            let status = if ballot.approve {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Rejected
            };
            e.set(attr::STATUS, s(status.as_str()))
                .set(attr::DECIDED_BY, s(ballot.decided_by))
                .set(attr::DECIDED_AT, s(stamp(at)?))
                .set(attr::DECISION_TOKEN, s(token.clone()));
            if !ballot.reason.is_empty() {
                e.set(attr::REASON, s(ballot.reason));
            }
        }
        let status = e.name(attr::STATUS);
        let expires = e.name(attr::EXPIRES_AT);
        let pending = e.value(s(ApprovalStatus::Pending.as_str()));
        let now = e.value(n(at.unix_timestamp()));
        e.condition(format!("{status} = {pending}"))
            .condition(format!("{expires} > {now}"))
            .require_eq(attr::LEVEL, n(current.level))
            .require_eq(attr::REQUESTED_AT, s(stamp(current.requested_at)?));
        if ballot.approve {
            // The votes as read: a vote landed meanwhile makes this write read again.
            let votes = e.name(attr::APPROVALS);
            let seen = e.value(n(count));
            e.condition(if count == 0 {
                format!("attribute_not_exists({votes}) OR size({votes}) = {seen}")
            } else {
                format!("size({votes}) = {seen}")
            });
        }
        if let Some(h) = ballot.plan_hash {
            e.require_eq(attr::PLAN_HASH, s(h));
        }
        let sent = self
            .update(incident_id, step_id, &e)
            .return_values(ReturnValue::AllNew)
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
                return Ok(Some(outcome(decides, approval)));
            }
            Err(err) => err,
        };
        if !matches!(
            err.as_service_error(),
            Some(UpdateItemError::ConditionalCheckFailedException(_))
        ) {
            return Err(StoreError::sdk(UPDATE, &err));
        }
        // Changed since it was read — perhaps by this very write, whose answer was lost.
        let Some(now) = self.get(incident_id, step_id).await? else {
            return Ok(None);
        };
        let landed = if decides {
            now.decision_token.as_deref() == Some(token.as_str())
        } else {
            now.approvals.iter().any(|v| v.token == token)
        };
        Ok(landed.then(|| outcome(decides, now)))
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
            role: "security_lead".into(),
            approvals_required: 1,
            requested_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            round: 0,
        };
        assert!(!format!("{req:?}").contains("secret-token-text"));
    }
}
