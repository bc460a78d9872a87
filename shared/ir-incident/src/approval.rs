//! The approval gate: a gated step asks for a decision ([`request`], `ir-request-approval`) and an
//! authenticated, authorized human decides it ([`decide`], shared by `ir approve|reject` and
//! `ir-decide-approval`).
//!
//! Step Functions resumes a `.waitForTaskToken` task for whoever sends its token, and
//! `states:SendTaskSuccess`/`SendTaskFailure` cannot be scoped to a task in IAM (the resource is
//! `*`). So the token never leaves the approvals table and the functions that must hold it: it
//! is in no notification, no audit record, no log line and no error message, and no link carries
//! it (a link would let anyone who sees the message, or a mail scanner that pre-fetches it,
//! decide — without saying who). A decision is always a call whose caller AWS authenticated
//! (SigV4: the CLI's credentials, or the IAM-authenticated Function URL), and [`decide`]
//! authorizes that caller before the token is ever read:
//!
//! 1. the caller must hold an escalation role (`notifications.approver_roles`), and at the
//!    request's level only the level's role or a higher one decides;
//! 2. people are counted, not roles (`ir_core::approval::Person`): a step needing k approvals
//!    (`approvals_required`) is approved by the k-th different person; one person approving
//!    again, under any session or role, is refused; with `notifications.two_person_rule`
//!    (default) the person who asked cannot decide; one rejection rejects;
//! 3. every vote is one conditional write ([`ApprovalStore::decide`]): the deciding vote gets
//!    the token, any later one is a no-op that says who decided and when, and an expired
//!    request cannot be decided;
//! 4. the waiting execution is resumed: `SendTaskSuccess` with [`ApprovalGranted`], or
//!    `SendTaskFailure` with the error [`REJECTED_ERROR`] and the reason as cause;
//! 5. every vote, decision and refusal is audited with the caller's ARN, person and reason.

use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ir_core::audit::event::{
    self, ApprovalNotDelivered, ApprovalRefused, ApprovalRequested, AuditEvent, RetryStarted,
};
use ir_core::correlate::is_incident_id;
use ir_core::orchestration::{ApprovalGranted, ApprovalRequest as GateRequest, REJECTED_ERROR};
use ir_core::{ErrorName, Named};
use serde::{Deserialize, Serialize};
use serde_json::json;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::audit_writer::AuditWriter;
use crate::notify::{self, ApprovalAsk};
use ir_aws::Clients;
use ir_aws::identity::{IdentityProof, ProofError};
use ir_aws::sdk::SdkFailure;
use ir_aws::store::{
    Approval, ApprovalRequest, ApprovalStatus, ApprovalStore, Ballot, Decided, IncidentStore,
    StoreError, TableNames, TaskToken,
};
pub use ir_core::approval::{
    Approver, ApproverPolicy, NotAnApprover, Person, Principal, PrincipalKind, Verdict, person,
    principal,
};

/// The longest reason a decision may carry.
pub const MAX_REASON_CHARS: usize = 1024;
const SEND_SUCCESS: &str = "states:SendTaskSuccess";
const SEND_FAILURE: &str = "states:SendTaskFailure";

/// One decision: the body of a decide-approval request, and what `ir approve|reject` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionRequest {
    /// The incident (`inc-` + 20 hex digits).
    pub incident_id: String,
    /// The gated step (`isolate-instance`).
    pub step_id: String,
    /// `approve` or `reject`.
    pub decision: Verdict,
    /// Why (at most [`MAX_REASON_CHARS`]): audited, and a rejection's cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The SHA-256 of the plan the approver saw (`planHash` of the request): the decision holds
    /// only for that plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
}

impl DecisionRequest {
    /// What the approver's identity proof must be bound to (`ir_core::approval::decision_binding`).
    pub fn binding(&self) -> String {
        ir_core::approval::decision_binding(
            &self.incident_id,
            &self.step_id,
            self.decision,
            self.plan_hash.as_deref(),
            self.reason.as_deref(),
        )
    }
}

/// What the decision function (`ir-decide-approval`) takes: a decision and the proof of who
/// makes it (a signed STS `GetCallerIdentity` bound to the decision; `ir_aws::identity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedDecision {
    pub decision: DecisionRequest,
    pub proof: IdentityProof,
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    pub incident_id: String,
    pub step_id: String,
    pub decision: Verdict,
    /// The caller's ARN as AWS authenticated it.
    pub decided_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    /// The escalation level that was decided.
    pub level: u32,
    /// What ran (or will not run): the plan the request showed.
    pub plan: serde_json::Value,
    /// The people who have approved (for a step that needs more than one).
    pub approvals: Vec<String>,
    /// How many different people the step needs.
    pub approvals_required: u32,
    /// Whether the execution was resumed: false while more approvals are needed.
    pub resumed: bool,
}

/// Why a decision was refused or did not resume the execution. [`DecideError::http_status`] is
/// the decide-approval Function URL's answer.
#[derive(Debug, Error)]
pub enum DecideError {
    /// The decision is malformed (not an incident id, an empty step, a reason too long).
    #[error("invalid decision: {0}")]
    InvalidInput(String),
    /// Nobody AWS authenticated stands behind the decision (no proof, a forged event, a proof
    /// for another decision).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller is not an approver.
    #[error(transparent)]
    NotAnApprover(#[from] NotAnApprover),
    /// The two-person rule: the caller requested this approval.
    #[error(
        "{caller} requested this approval ({requester}): the two-person rule needs someone else to decide"
    )]
    SelfApproval { caller: String, requester: String },
    /// The caller's person approved this request before (under this or another session).
    #[error(
        "{person} already approved {incident_id} {step_id} (as {by}): one person is one approval, someone else must approve"
    )]
    SamePerson {
        incident_id: String,
        step_id: String,
        person: String,
        by: String,
    },
    /// No approval was requested for the step.
    #[error("not found: {0}")]
    NotFound(String),
    /// The plan waiting for a decision is not the one the approver saw.
    #[error("plan changed: {0}")]
    PlanChanged(String),
    /// Decided before: nothing was done.
    #[error("nothing done: {incident_id} {step_id} was already {status}{}{}", .decided_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default(), .decided_at.map(|t| format!(" at {}", notify::human_time(t))).unwrap_or_default())]
    AlreadyDecided {
        incident_id: String,
        step_id: String,
        status: ApprovalStatus,
        decided_by: Option<String>,
        decided_at: Option<OffsetDateTime>,
    },
    /// The request expired, or Step Functions timed the waiting task out (`TaskTimedOut`).
    #[error("the approval window has closed: {0}")]
    WindowClosed(String),
    /// Step Functions refused the stored token (`InvalidToken`).
    #[error(
        "the approval's task token was refused by Step Functions (InvalidToken): {0}; nothing was resumed"
    )]
    TokenRefused(String),
    /// The task waiting for the decision no longer exists (`TaskDoesNotExist`).
    #[error(
        "the execution waiting for this approval no longer exists (TaskDoesNotExist): {0}; nothing was resumed"
    )]
    TaskGone(String),
    /// The approvals table or the audit log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Step Functions failed otherwise; classified by its error code.
    #[error(transparent)]
    Aws(SdkFailure),
}

impl DecideError {
    /// The HTTP status of the decide-approval Function URL's answer.
    pub fn http_status(&self) -> u16 {
        match self {
            DecideError::InvalidInput(_) => 400,
            DecideError::Unauthenticated(_) => 401,
            DecideError::NotAnApprover { .. }
            | DecideError::SelfApproval { .. }
            | DecideError::SamePerson { .. } => 403,
            DecideError::NotFound(_) => 404,
            DecideError::AlreadyDecided { .. } | DecideError::PlanChanged(_) => 409,
            DecideError::WindowClosed(_)
            | DecideError::TokenRefused(_)
            | DecideError::TaskGone(_) => 410,
            e => match e.error_name() {
                ErrorName::Retryable => 503,
                ErrorName::AccessDenied => 502,
                _ => 500,
            },
        }
    }
}

impl Named for DecideError {
    fn error_name(&self) -> ErrorName {
        match self {
            DecideError::InvalidInput(_) => ErrorName::InvalidInput,
            DecideError::NotAnApprover { .. }
            | DecideError::SelfApproval { .. }
            | DecideError::SamePerson { .. }
            | DecideError::Unauthenticated(_) => ErrorName::AccessDenied,
            DecideError::NotFound(_) => ErrorName::NotFound,
            DecideError::PlanChanged(_) => ErrorName::PlanChanged,
            DecideError::AlreadyDecided { .. }
            | DecideError::WindowClosed(_)
            | DecideError::TokenRefused(_)
            | DecideError::TaskGone(_) => ErrorName::Conflict,
            DecideError::Store(e) => e.error_name(),
            DecideError::Aws(f) => f.name,
        }
    }
}

fn check_decision(d: &DecisionRequest) -> Result<(), DecideError> {
    if !is_incident_id(&d.incident_id) {
        return Err(DecideError::InvalidInput(format!(
            "`{}` is not an incident id",
            d.incident_id
        )));
    }
    if d.step_id.is_empty() || d.step_id.len() > 256 {
        return Err(DecideError::InvalidInput(
            "stepId: 1-256 characters".to_owned(),
        ));
    }
    if let Some(r) = &d.reason
        && r.chars().count() > MAX_REASON_CHARS
    {
        return Err(DecideError::InvalidInput(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(())
}

/// An SDK failure of `SendTask*` with the token removed from its text, logged once.
fn redacted<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
    token: &TaskToken,
) -> SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut failure = SdkFailure::new(operation, err);
    if !token.expose().is_empty() {
        failure.detail = failure
            .detail
            .replace(token.expose(), "TaskToken(…redacted)");
    }
    ir_aws::store::log_failure(&failure);
    failure
}

/// The error of a `SendTask*` call in plain words; the token never in it.
fn send_error<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
    token: &TaskToken,
    approval: &Approval,
) -> DecideError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = redacted(operation, err, token);
    let at = format!(
        "{} {} (level {})",
        approval.incident_id, approval.step_id, approval.level
    );
    match err.code() {
        Some("TaskTimedOut") => DecideError::WindowClosed(format!(
            "Step Functions timed out the task waiting for {at} before this decision arrived (the gate escalated or ended)"
        )),
        Some("InvalidToken") => DecideError::TokenRefused(at),
        Some("TaskDoesNotExist") => DecideError::TaskGone(at),
        _ => DecideError::Aws(failure),
    }
}

/// Decides a pending approval as `caller_arn` (the identity AWS authenticated: the ARN STS
/// returned for the caller's signed proof): authorize (role, level, person, two-person rule),
/// count or decide once in the store, resume the waiting execution, audit. See the module docs.
///
/// Calls on the way to a resumed execution: `GetItem` (the request), `GetItem` + `UpdateItem`
/// (the vote), `SendTaskSuccess` or `SendTaskFailure`, then the audit append (`Query`,
/// `PutItem`). A caller who holds no role is refused before any call; every other refusal is
/// audited on the incident.
pub async fn decide(
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    decision: &DecisionRequest,
    caller_arn: &str,
    now: OffsetDateTime,
) -> Result<Resumed, DecideError> {
    check_decision(decision)?;
    decide_checked(clients, names, policy, decision, caller_arn, now).await
}

/// [`decide`] of a decision already checked for shape.
async fn decide_checked(
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    decision: &DecisionRequest,
    caller_arn: &str,
    now: OffsetDateTime,
) -> Result<Resumed, DecideError> {
    let approver = match policy.approver(caller_arn) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(incident_id = %decision.incident_id, step_id = %decision.step_id, caller = caller_arn, error = %e, "decision refused: not an approver");
            return Err(e.into());
        }
    };
    let (id, step) = (decision.incident_id.as_str(), decision.step_id.as_str());
    let store = ApprovalStore::new(clients.clone(), names.clone());
    let audit = AuditWriter::new(clients, names);
    let Some(approval) = store.get(id, step).await? else {
        return Err(DecideError::NotFound(format!(
            "no approval was requested for {id} step {step}"
        )));
    };
    if let Some(seen) = &decision.plan_hash
        && approval.plan_hash.as_deref() != Some(seen.as_str())
    {
        return Err(plan_changed(id, step, approval.plan_hash.as_deref(), seen));
    }
    // Requests stored before levels named roles are decided by any approver.
    if !approval.role.is_empty()
        && let Err(e) = policy.may_decide_at(&approver, &approval.role)
    {
        let why = format!("not at this level: {}", e.why);
        return Err(refuse(&audit, decision, &approver, &approval, &why, e.into(), now).await?);
    }
    if policy.is_self_approval(&approver, &approval.requester) {
        let e = DecideError::SelfApproval {
            caller: caller_arn.to_owned(),
            requester: approval.requester.clone(),
        };
        let why = "two-person rule: the caller requested the approval";
        return Err(refuse(&audit, decision, &approver, &approval, why, e, now).await?);
    }
    let reason = decision.reason.clone().unwrap_or_default();
    let ballot = Ballot {
        approve: decision.decision == Verdict::Approve,
        person: approver.person.as_str(),
        decided_by: caller_arn,
        reason: &reason,
        plan_hash: decision.plan_hash.as_deref(),
    };
    let decided = store
        .decide_on(id, step, Some(approval.clone()), &ballot, now)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(m) => DecideError::NotFound(m),
            other => DecideError::Store(other),
        })?;
    let (sealed, approval) = match decided {
        Decided::Now {
            task_token,
            approval,
        } => (task_token, *approval),
        Decided::Counted { approval } => {
            return counted(&audit, decision, &approver, &reason, &approval, now).await;
        }
        Decided::Repeated { vote } => {
            let e = DecideError::SamePerson {
                incident_id: id.to_owned(),
                step_id: step.to_owned(),
                person: vote.person.clone(),
                by: vote.by.clone(),
            };
            let why = format!(
                "two-person rule: {} approved already (as {})",
                vote.person, vote.by
            );
            return Err(refuse(&audit, decision, &approver, &approval, &why, e, now).await?);
        }
        Decided::PlanChanged { current } => {
            let seen = decision.plan_hash.as_deref().unwrap_or_default();
            return Err(plan_changed(id, step, current.as_deref(), seen));
        }
        Decided::Already {
            status,
            decided_by,
            decided_at,
        } => {
            return Err(not_decided(
                decision, &approval, status, decided_by, decided_at, now,
            ));
        }
    };
    // The stored token is sealed (only this role may open it); a token that cannot be opened is
    // a decision not delivered, recorded as such.
    let delivered = match ir_aws::sealed::open(clients, id, step, &sealed).await {
        Ok(token) => deliver(clients, decision, caller_arn, &token, &approval, now).await,
        Err(f) => Err(DecideError::Aws(f)),
    };
    if let Err(e) = delivered {
        record_undelivered(
            &store, &audit, decision, caller_arn, &reason, &approval, &e, now,
        )
        .await?;
        return Err(e);
    }
    // Exactly once: only the call that decided gets here.
    audit
        .append_patiently(
            id,
            caller_arn,
            &AuditEvent::decided(
                decision.decision,
                decided_event(&approver, &reason, &approval),
            ),
            now,
        )
        .await?;
    tracing::info!(
        incident_id = id,
        step_id = step,
        decision = decision.decision.as_str(),
        approver = caller_arn,
        level = approval.level,
        "decision delivered"
    );
    Ok(resumed(decision, caller_arn, &approval, true, now))
}

/// The audit detail of a vote or decision.
fn decided_event(approver: &Approver, reason: &str, approval: &Approval) -> event::Decided {
    event::Decided {
        step: approval.step_id.clone(),
        level: approval.level,
        approver: approver.arn.clone(),
        principal: approver.principal.to_string(),
        reason: reason.to_owned(),
        requester: approval.requester.clone(),
        plan_hash: approval.plan_hash.clone(),
        person: approver.person.to_string(),
        approvals: if approval.approvals_required > 1 {
            approval
                .approvals
                .iter()
                .map(|v| v.person.clone())
                .collect()
        } else {
            Vec::new()
        },
        approvals_required: approval.approvals_required,
    }
}

/// What a vote or decision answers.
fn resumed(
    decision: &DecisionRequest,
    caller_arn: &str,
    approval: &Approval,
    resumed: bool,
    now: OffsetDateTime,
) -> Resumed {
    Resumed {
        incident_id: approval.incident_id.clone(),
        step_id: approval.step_id.clone(),
        decision: decision.decision,
        decided_by: caller_arn.to_owned(),
        decided_at: now,
        level: approval.level,
        plan: approval.plan.clone(),
        approvals: approval
            .approvals
            .iter()
            .map(|v| v.person.clone())
            .collect(),
        approvals_required: approval.approvals_required,
        resumed,
    }
}

/// One approval counted, more needed: audited, nothing resumed.
async fn counted(
    audit: &AuditWriter,
    decision: &DecisionRequest,
    approver: &Approver,
    reason: &str,
    approval: &Approval,
    now: OffsetDateTime,
) -> Result<Resumed, DecideError> {
    audit
        .append_patiently(
            &approval.incident_id,
            &approver.arn,
            &AuditEvent::ApprovalCounted(decided_event(approver, reason, approval)),
            now,
        )
        .await?;
    tracing::info!(
        incident_id = %approval.incident_id,
        step_id = %approval.step_id,
        approver = %approver.arn,
        approvals = approval.approvals.len(),
        required = approval.approvals_required,
        "approval counted"
    );
    Ok(resumed(decision, &approver.arn, approval, false, now))
}

fn plan_changed(id: &str, step: &str, current: Option<&str>, seen: &str) -> DecideError {
    DecideError::PlanChanged(format!(
        "{id} {step} now asks about plan {}, not {seen}: read the plan again and decide on it",
        current.unwrap_or("(none)")
    ))
}

/// Nothing decided: the request was decided or closed before.
fn not_decided(
    decision: &DecisionRequest,
    approval: &Approval,
    status: ApprovalStatus,
    decided_by: Option<String>,
    decided_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> DecideError {
    let (id, step) = (decision.incident_id.as_str(), decision.step_id.as_str());
    if status == ApprovalStatus::Expired {
        let why = if approval.expires_at <= now {
            format!("expired at {}", notify::human_time(approval.expires_at))
        } else {
            "closed: the task waiting for it is gone (an earlier decision could not be \
             delivered; see the audit chain)"
                .to_owned()
        };
        return DecideError::WindowClosed(format!("the request for {id} {step} {why}"));
    }
    tracing::info!(incident_id = id, step_id = step, status = %status, "already decided: nothing done");
    DecideError::AlreadyDecided {
        incident_id: id.to_owned(),
        step_id: step.to_owned(),
        status,
        decided_by,
        decided_at,
    }
}

/// A decision whose maker is whoever signed its proof: the proof goes to STS (bound to this
/// decision), and the ARN STS authenticates is the caller of [`decide`]. A proof STS refuses is
/// audited as `approval-refused` (when the incident exists) and answered `Unauthenticated`.
pub async fn decide_signed(
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    signed: &SignedDecision,
    now: OffsetDateTime,
) -> Result<Resumed, DecideError> {
    let decision = &signed.decision;
    check_decision(decision)?;
    let caller = match ir_aws::identity::verify(clients, &signed.proof, &decision.binding()).await {
        Ok(arn) => arn,
        Err(ProofError::Sts(f)) => return Err(DecideError::Aws(f)),
        Err(e) => {
            return Err(
                refuse_unauthenticated(clients, names, decision, &e.to_string(), now).await,
            );
        }
    };
    decide_checked(clients, names, policy, decision, &caller, now).await
}

/// A decision nobody authenticated: audited on the incident (when it has a chain to append to),
/// then the error to answer.
pub async fn refuse_unauthenticated(
    clients: &Clients,
    names: &TableNames,
    decision: &DecisionRequest,
    why: &str,
    now: OffsetDateTime,
) -> DecideError {
    tracing::warn!(incident_id = %decision.incident_id, step_id = %decision.step_id, why, "decision refused: unauthenticated");
    if is_incident_id(&decision.incident_id) {
        let audit = AuditWriter::new(clients, names);
        let event = AuditEvent::ApprovalRefused(ApprovalRefused {
            step: decision.step_id.clone(),
            decision: decision.decision,
            why: format!("unauthenticated: {why}"),
            requester: String::new(),
        });
        if let Err(e) = audit
            .append_patiently(&decision.incident_id, UNAUTHENTICATED_ACTOR, &event, now)
            .await
        {
            tracing::warn!(incident_id = %decision.incident_id, error = %e, "refusal not audited");
        }
    }
    DecideError::Unauthenticated(why.to_owned())
}

/// The actor of a refusal nobody authenticated.
const UNAUTHENTICATED_ACTOR: &str = "unauthenticated";

/// A refused decision by an authenticated approver (not at this level, the two-person rule,
/// one person twice): audited on the incident; the error to return.
async fn refuse(
    audit: &AuditWriter,
    decision: &DecisionRequest,
    approver: &Approver,
    approval: &Approval,
    why: &str,
    error: DecideError,
    now: OffsetDateTime,
) -> Result<DecideError, DecideError> {
    let (id, step) = (decision.incident_id.as_str(), decision.step_id.as_str());
    tracing::warn!(
        incident_id = id,
        step_id = step,
        caller = %approver.arn,
        why,
        "decision refused"
    );
    audit
        .append_patiently(
            id,
            &approver.arn,
            &AuditEvent::ApprovalRefused(ApprovalRefused {
                step: step.to_owned(),
                decision: decision.decision,
                why: why.to_owned(),
                requester: approval.requester.clone(),
            }),
            now,
        )
        .await?;
    Ok(error)
}

/// The decision to the waiting execution: `SendTaskSuccess` with who approved, or
/// `SendTaskFailure` with the rejection.
async fn deliver(
    clients: &Clients,
    decision: &DecisionRequest,
    caller_arn: &str,
    token: &TaskToken,
    approval: &Approval,
    now: OffsetDateTime,
) -> Result<(), DecideError> {
    match decision.decision {
        Verdict::Approve => {
            let granted = ApprovalGranted {
                approved_by: caller_arn.to_owned(),
                approved_at: now,
                reason: decision.reason.clone().filter(|r| !r.is_empty()),
            };
            let output = serde_json::to_string(&granted)
                .map_err(|e| DecideError::InvalidInput(format!("approval output: {e}")))?;
            clients
                .sfn()
                .send_task_success()
                .task_token(token.expose())
                .output(output)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| send_error::<SendTaskSuccessError>(SEND_SUCCESS, &e, token, approval))
        }
        Verdict::Reject => {
            let cause = match decision.reason.as_deref() {
                Some(r) if !r.is_empty() => r.to_owned(),
                _ => format!("rejected by {caller_arn}"),
            };
            clients
                .sfn()
                .send_task_failure()
                .task_token(token.expose())
                .error(REJECTED_ERROR)
                .cause(cause)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| send_error::<SendTaskFailureError>(SEND_FAILURE, &e, token, approval))
        }
    }
}

/// The execution did not get the decision. When the waiting task is gone for good, the decision
/// took no effect: the request reads expired again, so the gate's escalation can ask the next
/// level instead of finding the step "already approved". Otherwise (the call itself failed) the
/// store keeps the decision. Either way the audit chain says so.
#[allow(clippy::too_many_arguments)] // the decision's whole context, each used once
async fn record_undelivered(
    store: &ApprovalStore,
    audit: &AuditWriter,
    decision: &DecisionRequest,
    caller_arn: &str,
    reason: &str,
    approval: &Approval,
    e: &DecideError,
    now: OffsetDateTime,
) -> Result<(), DecideError> {
    let (id, step) = (decision.incident_id.as_str(), decision.step_id.as_str());
    let task_gone = matches!(
        e,
        DecideError::WindowClosed(_) | DecideError::TokenRefused(_) | DecideError::TaskGone(_)
    );
    let voided = if task_gone {
        store.void_undelivered(approval).await?
    } else {
        false
    };
    audit
        .append_patiently(
            id,
            caller_arn,
            &AuditEvent::ApprovalNotDelivered(ApprovalNotDelivered {
                step: step.to_owned(),
                level: approval.level,
                decision: decision.decision,
                approver: caller_arn.to_owned(),
                reason: reason.to_owned(),
                error: e.to_string(),
                decision_voided: voided,
            }),
            now,
        )
        .await?;
    tracing::warn!(incident_id = id, step_id = step, error = %e, "decision recorded but not delivered");
    Ok(())
}

// ---------------------------------------------------------------------------------- request

/// What the approval gate needs besides the request.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The identity the gate runs as (its role's session ARN, from STS at init): the requester
    /// the two-person rule compares with.
    pub requester: String,
    /// The notification topic (`IR_NOTIFY_TOPIC_ARN`).
    pub topic_arn: String,
    /// Said in the request.
    pub two_person_rule: bool,
    /// The approval-token key (`IR_APPROVAL_TOKEN_KEY`): the task token is stored sealed under
    /// it (`ir_aws::sealed`).
    pub token_key: Option<String>,
}

/// What the gate did (the waiting task ignores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requested {
    pub incident_id: String,
    pub step_id: String,
    pub level: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The notification's message id.
    pub message_id: String,
}

/// Why an approval could not be requested.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The gate's payload does not hold together (a level the escalation matrix lacks, a step
    /// that is not the gated one).
    #[error("invalid approval request: {0}")]
    InvalidInput(String),
    /// The approvals table, the incident or the audit log failed (a decided step asked again is
    /// `Conflict`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The notification could not be published.
    #[error(transparent)]
    Aws(SdkFailure),
}

impl Named for RequestError {
    fn error_name(&self) -> ErrorName {
        match self {
            RequestError::InvalidInput(_) => ErrorName::InvalidInput,
            RequestError::Store(e) => e.error_name(),
            RequestError::Aws(f) => f.name,
        }
    }
}

/// `ir-request-approval`: stores the request with its task token (pending until `now` + the
/// level's timeout), audits `approval-requested` (step, level, role, timeout, plan; never the
/// token), and publishes the incident update with how to decide.
///
/// Calls: `PutItem` (the request), `GetItem` (the incident), `Query` (its audit chain, read once
/// for the update and the retry check), the audit append (`Query`, `PutItem`; skipped on a retried
/// call), `Publish`.
pub async fn request(
    clients: &Clients,
    names: &TableNames,
    settings: &GateSettings,
    req: &GateRequest,
    now: OffsetDateTime,
) -> Result<Requested, RequestError> {
    if !is_incident_id(&req.incident_id) {
        return Err(RequestError::InvalidInput(format!(
            "`{}` is not an incident id",
            req.incident_id
        )));
    }
    if req.plan.incident_id != req.incident_id || req.plan.step_id != req.step_id {
        return Err(RequestError::InvalidInput(format!(
            "the plan is for {} {}, the gate is for {} {}",
            req.plan.incident_id, req.plan.step_id, req.incident_id, req.step_id
        )));
    }
    // The step, the escalation matrix and the timeouts are the incident's recorded decision:
    // an execution started by hand with other values in its input asks nobody else and waits
    // no shorter (the actions check the same records before they enforce).
    let incident = IncidentStore::new(clients.clone(), names.clone())
        .get(&req.incident_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("incident {}", req.incident_id)))?;
    let decision = incident.decision.as_ref().ok_or_else(|| {
        RequestError::InvalidInput(format!(
            "incident {} has no triage decision",
            req.incident_id
        ))
    })?;
    let step = decision
        .playbook
        .steps
        .iter()
        .find(|s| s.id == req.step_id && s.requires_approval)
        .ok_or_else(|| {
            RequestError::InvalidInput(format!(
                "step {} is not a gated step of incident {}'s plan",
                req.step_id, req.incident_id
            ))
        })?;
    let escalation = &decision.escalation;
    let index = usize::try_from(req.level).unwrap_or(usize::MAX);
    let level = escalation.get(index).ok_or_else(|| {
        RequestError::InvalidInput(format!(
            "escalation level {} does not exist ({} recorded for the incident)",
            req.level,
            escalation.len()
        ))
    })?;
    if level.timeout_seconds == 0 {
        return Err(RequestError::InvalidInput(format!(
            "escalation level {} has no time to decide",
            req.level
        )));
    }
    let timeout = Duration::seconds(i64::try_from(level.timeout_seconds).unwrap_or(i64::MAX));
    let expires_at = now + timeout;
    let plan_hash = ir_core::action::plan_hash(&req.plan.changes);
    let received = TaskToken::new(req.task_token.clone());
    let task_token = match &settings.token_key {
        Some(key) => ir_aws::sealed::seal(clients, key, &req.incident_id, &req.step_id, &received)
            .await
            .map_err(RequestError::Aws)?,
        None => received,
    };
    let approvals_required = step.approvals_required.max(1);
    let plan = json!({
        "step": step,
        "level": req.level,
        "role": level.role,
        "approvalsRequired": approvals_required,
        "timeoutSeconds": level.timeout_seconds,
        "changes": req.plan.changes,
        "notes": req.plan.notes,
        "planHash": plan_hash,
    });
    // A step a responder retried (`ir retry`, recorded in the chain) is asked anew, in a new
    // round, and the responder who retried it is its requester: the two-person rule keeps them
    // from approving their own retry.
    let audit = AuditWriter::new(clients, names);
    let mut chain = audit.log().chain(&req.incident_id).await?;
    let retries: Vec<RetryStarted> = chain
        .iter()
        .filter_map(|r| match r.event() {
            Ok(AuditEvent::RetryStarted(x)) if x.step == req.step_id => Some(x),
            _ => None,
        })
        .collect();
    let round = u32::try_from(retries.len()).unwrap_or(u32::MAX);
    let requester = retries
        .last()
        .map_or_else(|| settings.requester.clone(), |r| r.by.clone());
    let store = ApprovalStore::new(clients.clone(), names.clone());
    store
        .request(&ApprovalRequest {
            incident_id: req.incident_id.clone(),
            step_id: req.step_id.clone(),
            task_token,
            requester: requester.clone(),
            round,
            plan: plan.clone(),
            plan_hash: Some(plan_hash.clone()),
            level: req.level,
            role: level.role.clone(),
            approvals_required,
            requested_at: now,
            expires_at,
        })
        .await?;
    let appended = audit
        .append_once(
            &req.incident_id,
            Some(&chain),
            &settings.requester,
            &AuditEvent::ApprovalRequested(ApprovalRequested {
                step: req.step_id.clone(),
                level: req.level,
                role: level.role.clone(),
                timeout_seconds: level.timeout_seconds,
                plan: step.clone(),
                requester,
                plan_hash: Some(plan_hash.clone()),
            }),
            now,
        )
        .await?;
    if appended.appended {
        chain.push(appended.record);
    }
    let message = notify::approval_message(
        &incident,
        &chain,
        ApprovalAsk {
            step,
            level: req.level,
            levels: escalation.len(),
            role: &level.role,
            timeout_seconds: level.timeout_seconds,
            expires_at,
            changes: &req.plan.changes,
            plan_hash: &plan_hash,
            approvals_required,
            two_person_rule: settings.two_person_rule,
        },
    );
    let message_id = notify::publish(clients, &settings.topic_arn, &message)
        .await
        .map_err(RequestError::Aws)?;
    tracing::info!(incident_id = %req.incident_id, step_id = %req.step_id, level = req.level, role = %level.role, %message_id, "approval requested");
    Ok(Requested {
        incident_id: req.incident_id.clone(),
        step_id: req.step_id.clone(),
        level: req.level,
        expires_at,
        message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/teams/SecurityLead";

    #[test]
    fn a_caller_who_is_not_an_approver_is_forbidden() {
        let nobody = ApproverPolicy::one_role("security_lead", &[]);
        let e = DecideError::from(nobody.approver(ROLE).unwrap_err());
        assert!(matches!(e, DecideError::NotAnApprover { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{ROLE} may not decide approvals: {ROLE} holds no role of notifications.approver_roles"
            )
        );
        assert_eq!(e.http_status(), 403);
        assert_eq!(e.error_name(), ErrorName::AccessDenied);
    }

    #[test]
    fn decisions_parse_strictly() {
        let d: DecisionRequest = serde_json::from_str(
            r#"{"incidentId":"inc-0123456789abcdef0123","stepId":"isolate-instance","decision":"approve","reason":"confirmed"}"#,
        )
        .unwrap();
        assert_eq!(d.decision, Verdict::Approve);
        assert!(check_decision(&d).is_ok());
        assert!(
            serde_json::from_str::<DecisionRequest>(
                r#"{"incidentId":"x","stepId":"s","decision":"maybe"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<DecisionRequest>(
                r#"{"incidentId":"x","stepId":"s","decision":"approve","taskToken":"t"}"#
            )
            .is_err()
        );
        let long = DecisionRequest {
            reason: Some("x".repeat(MAX_REASON_CHARS + 1)),
            ..d
        };
        assert_eq!(check_decision(&long).unwrap_err().http_status(), 400);
    }
}
