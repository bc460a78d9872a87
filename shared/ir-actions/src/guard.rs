//! Enforcement decided server-side: an action changes something only when the suite's own
//! records say it may.
//!
//! An action function is invoked with a payload anyone holding `lambda:InvokeFunction` on it can
//! write, so its `mode` says what the caller *asks*, never what is allowed. Before an enforce
//! request runs, [`Guard::authorize`] reads the incident and the approval from the suite's
//! tables and refuses (`NotApproved`, audited as `step-not-approved` with the reason) unless:
//!
//! 1. the incident exists and is in `containment` (its playbook is running);
//! 2. the request is for the incident's own resource (kind and id as recorded at ingest);
//! 3. the incident's recorded plan holds the step in enforce mode, and the deployed config's
//!    playbook holds it too (a config changed to dry-run since triage wins);
//! 4. when the step is gated (the recorded plan or the deployed config says `requires_approval`,
//!    or its action is one the registry always gates, `ir_core::playbook::ActionSpec::gated`):
//!    its approval is `approved` by as many different people as the recorded plan and the
//!    deployed config require (the larger), or it expired at the last level of the incident's
//!    escalation matrix after that level's whole window and the deployed config says
//!    `on_escalation_exhausted: approve`.
//!
//! Then [`Guard::run`] binds the run to the approved plan: the action plans in dry-run first;
//! when the approval holds a plan hash and the fresh plan's differs, nothing is changed and the
//! step fails `PlanChanged` (the state machine asks again with the new plan).
//!
//! A dry-run request needs none of this: it changes nothing.
//!
//! Where every run acts, dry-run included, is the suite's record too: the resource's account
//! and region as the incident holds them (ingest recorded them from the finding; a payload
//! names neither). An account the config does not allow is refused (`AccountNotAllowed`)
//! before anything is read there; a member account is acted in through its member role,
//! assumed for this run ([`ir_aws::member`]). A dry-run for an incident the suite has no
//! record of reads in the security account and region.

use std::future::Future;

use ir_aws::member::{MemberAccess, Place, Run, Session};
use ir_aws::store::{
    Approval, ApprovalStatus, ApprovalStore, AuditLog, Incident, IncidentStore, StoreError,
    TableNames,
};
use ir_core::ErrorName;
use ir_core::action::{ActionReport, Guarded, plan_hash};
use ir_core::audit::AuditEvent;
use ir_core::audit::event::StepFailure;
use ir_core::config::{Config, Mode, OnExhausted, Protection};
use ir_core::incident::Status;
use time::OffsetDateTime;

use crate::ActionError;

/// The actor of the audit record a refusal writes.
const GUARD_ACTOR: &str = "ir-action-guard";

/// What the guard reads: the suite's tables and the deployed config; and what it knows to act
/// where the resource is (the accounts allow-list, the security account, the function's name
/// that picks the session policy).
#[derive(Debug, Clone)]
pub struct Guard {
    names: TableNames,
    config: Config,
    member: MemberAccess,
    function: &'static str,
}

/// What an authorized enforce request was allowed by.
#[derive(Debug, Clone, PartialEq)]
pub enum Authority {
    /// The request asked for a dry-run: nothing to authorize.
    DryRun,
    /// The step is not gated and the recorded plan and config enforce it.
    Plan,
    /// Approved by a person; the approved plan's hash when the gate showed one.
    Approved {
        by: String,
        plan_hash: Option<String>,
    },
    /// Nobody decided at any level and the deployed config approves on exhaustion.
    Exhausted,
}

impl Guard {
    pub fn new(
        names: TableNames,
        config: Config,
        member: MemberAccess,
        function: &'static str,
    ) -> Guard {
        Guard {
            names,
            config,
            member,
            function,
        }
    }

    /// The guard of deployed function `function`: the tables (`IR_INCIDENTS_TABLE`,
    /// `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`), the deployed config (loaded
    /// once at init by `ir_aws::config_source`) and its `accounts`, the security account
    /// (`IR_SECURITY_ACCOUNT_ID`, else STS) and the function's region.
    pub async fn from_env(
        home: &ir_aws::Clients,
        config: Config,
        function: &'static str,
    ) -> Result<Guard, ir_env::InitError> {
        let member = MemberAccess::from_env(home, config.accounts.clone())
            .await
            .map_err(|message| ir_env::InitError::Var {
                name: "IR_SECURITY_ACCOUNT_ID",
                message,
            })?;
        Ok(Guard::new(
            TableNames::from_env()?,
            config,
            member,
            function,
        ))
    }

    /// Where the request acts and with what: the incident's recorded account and region, the
    /// session there (see the module docs).
    pub async fn session<R: Guarded>(
        &self,
        home: &ir_aws::Clients,
        req: &R,
        incident: Option<&Incident>,
    ) -> Result<Session, ActionError> {
        let own = self.member.home();
        let place = incident.map_or_else(
            || own.clone(),
            |i| Place {
                account: i.account.clone(),
                // Incidents stored before the region was: their actions acted here.
                region: i.region.clone().unwrap_or_else(|| own.region.clone()),
            },
        );
        let run = Run {
            function: self.function,
            incident_id: req.incident_id(),
            step_id: req.step_id(),
        };
        self.member
            .session_for(home, &place, run)
            .await
            .map_err(|e| {
                tracing::warn!(incident_id = req.incident_id(), step_id = req.step_id(), account = %place.account, region = %place.region, error = %e, "no session where the resource is");
                ActionError::Member(e)
            })
    }

    /// Whether `req` may run as it asks (see the module docs). A refusal is audited.
    pub async fn authorize<R: Guarded>(
        &self,
        clients: &ir_aws::Clients,
        req: &R,
        now: OffsetDateTime,
    ) -> Result<Authority, ActionError> {
        let incident = self.incident(clients, req).await?;
        self.authorize_with(clients, req, incident.as_ref(), now)
            .await
    }

    /// The incident the request names, as the suite recorded it.
    async fn incident<R: Guarded>(
        &self,
        clients: &ir_aws::Clients,
        req: &R,
    ) -> Result<Option<Incident>, ActionError> {
        IncidentStore::new(clients.clone(), self.names.clone())
            .get(req.incident_id())
            .await
            .map_err(store_error)
    }

    async fn authorize_with<R: Guarded>(
        &self,
        clients: &ir_aws::Clients,
        req: &R,
        incident: Option<&Incident>,
        now: OffsetDateTime,
    ) -> Result<Authority, ActionError> {
        if req.mode() == Mode::DryRun {
            return Ok(Authority::DryRun);
        }
        match self.check(clients, req, incident, now).await {
            Ok(a) => Ok(a),
            Err(Refused::Store(e)) => Err(store_error(e)),
            Err(Refused::Not(why)) => {
                self.audit_refusal(clients, req, ErrorName::NotApproved, &why, now)
                    .await;
                tracing::warn!(incident_id = req.incident_id(), step_id = req.step_id(), why = %why, "enforce refused: not approved");
                Err(ActionError::NotApproved(why))
            }
        }
    }

    async fn check<R: Guarded>(
        &self,
        clients: &ir_aws::Clients,
        req: &R,
        incident: Option<&Incident>,
        now: OffsetDateTime,
    ) -> Result<Authority, Refused> {
        let (id, step_id) = (req.incident_id(), req.step_id());
        let Some(incident) = incident else {
            return Err(Refused::Not(format!(
                "no incident {id} in the suite's records"
            )));
        };
        if incident.summary.status != Status::Containment {
            return Err(Refused::Not(format!(
                "incident {id} is {}: steps run only while its playbook runs (containment)",
                incident.summary.status
            )));
        }
        let (want, have) = (req.resource(), &incident.resource);
        if want.kind() != have.kind() || want.id() != have.id() {
            return Err(Refused::Not(format!(
                "the request names {} {}, incident {id} is about {} {}",
                want.kind().as_str(),
                want.id(),
                have.kind().as_str(),
                have.id()
            )));
        }
        let Some(decision) = incident.decision.as_ref() else {
            return Err(Refused::Not(format!(
                "incident {id} has no triage decision"
            )));
        };
        let Some(planned) = decision.playbook.steps.iter().find(|s| s.id == step_id) else {
            return Err(Refused::Not(format!(
                "step {step_id} is not in incident {id}'s plan (playbook {})",
                decision.playbook.id
            )));
        };
        if planned.mode != Mode::Enforce {
            return Err(Refused::Not(format!(
                "incident {id}'s plan runs step {step_id} in dry-run"
            )));
        }
        let configured = self
            .config
            .playbooks
            .iter()
            .find(|p| p.id == decision.playbook.id);
        let Some(playbook) = configured else {
            return Err(Refused::Not(format!(
                "playbook {} is not in the deployed config",
                decision.playbook.id
            )));
        };
        let Some(step) = playbook.steps.iter().find(|s| s.id == step_id) else {
            return Err(Refused::Not(format!(
                "step {step_id} is not in the deployed playbook {}",
                playbook.id
            )));
        };
        if playbook.mode != Some(Mode::Enforce) {
            return Err(Refused::Not(format!(
                "the deployed config runs playbook {} in dry-run",
                playbook.id
            )));
        }
        // An action the registry gates (a termination) waits for approval whatever the plan or
        // the config says.
        let gated = [&planned.action, &step.action]
            .into_iter()
            .any(|a| ir_core::playbook::action(a).is_some_and(|spec| spec.gated));
        if !(planned.requires_approval || step.requires_approval || gated) {
            return Ok(Authority::Plan);
        }
        let approvals = ApprovalStore::new(clients.clone(), self.names.clone());
        let Some(approval) = approvals.get(id, step_id).await? else {
            return Err(Refused::Not(format!(
                "step {step_id} of {id} needs an approval and none was requested"
            )));
        };
        let required = planned
            .approvals_required
            .max(self.config.approvals_required(step, decision.severity))
            .max(1);
        self.approved(&approval, decision.escalation.len(), required, now)
    }

    /// The approval's answer: approved by someone, or exhausted with the config approving.
    fn approved(
        &self,
        approval: &Approval,
        levels: usize,
        required: u32,
        now: OffsetDateTime,
    ) -> Result<Authority, Refused> {
        let at = format!("{} {}", approval.incident_id, approval.step_id);
        let people: std::collections::BTreeSet<&str> = approval
            .approvals
            .iter()
            .map(|v| v.person.as_str())
            .collect();
        match approval.status {
            ApprovalStatus::Approved if people.len() < required as usize => {
                Err(Refused::Not(format!(
                    "{at} is marked approved by {} different people, {required} required",
                    people.len()
                )))
            }
            ApprovalStatus::Approved => Ok(Authority::Approved {
                by: approval.decided_by.clone().unwrap_or_default(),
                plan_hash: approval.plan_hash.clone(),
            }),
            ApprovalStatus::Rejected => Err(Refused::Not(format!(
                "{at} was rejected{}",
                approval
                    .decided_by
                    .as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ))),
            _ if approval.is_expired(now) => {
                let last = u32::try_from(levels.saturating_sub(1)).unwrap_or(u32::MAX);
                if self.config.notifications.on_escalation_exhausted != OnExhausted::Approve {
                    Err(Refused::Not(format!(
                        "{at} expired without a decision and the deployed config rejects on \
                         exhaustion"
                    )))
                } else if approval.level < last || now < approval.expires_at {
                    Err(Refused::Not(format!(
                        "{at} has not run through its escalation matrix (level {} of {levels}, \
                         window until {})",
                        approval.level + 1,
                        approval.expires_at
                    )))
                } else {
                    Ok(Authority::Exhausted)
                }
            }
            _ => Err(Refused::Not(format!(
                "{at} is {} (level {}): nobody approved it",
                approval.status,
                approval.level + 1
            ))),
        }
    }

    /// Runs `action` as authorized, where the resource is (`session`, see the module docs): a
    /// dry-run request as asked; an enforce request only when [`Guard::authorize`] allows it,
    /// after a dry-run plan whose hash must be the approved one. `clients` are the function's
    /// own, for the suite's records.
    pub async fn run<R, F, Fut>(
        &self,
        clients: &ir_aws::Clients,
        req: R,
        action: F,
    ) -> Result<ActionReport, ActionError>
    where
        R: Guarded,
        F: Fn(Session, R) -> Fut,
        Fut: Future<Output = Result<ActionReport, ActionError>>,
    {
        let now = OffsetDateTime::now_utc();
        let incident = self.incident(clients, &req).await?;
        let authority = self
            .authorize_with(clients, &req, incident.as_ref(), now)
            .await?;
        let session = self.session(clients, &req, incident.as_ref()).await?;
        let approved_hash = match &authority {
            Authority::DryRun => return action(session, req).await,
            Authority::Approved {
                plan_hash: Some(h), ..
            } => Some(h.clone()),
            _ => None,
        };
        if let Some(approved) = approved_hash {
            let plan = action(session.clone(), req.with_mode(Mode::DryRun)).await?;
            let fresh = plan_hash(&plan.changes);
            if fresh != approved {
                let why = format!(
                    "the plan changed since it was approved (approved sha256 {approved}, now \
                     {fresh}): nothing was changed; the step is asked again with the new plan"
                );
                self.audit_refusal(clients, &req, ErrorName::PlanChanged, &why, now)
                    .await;
                tracing::warn!(incident_id = req.incident_id(), step_id = req.step_id(), %approved, %fresh, "enforce refused: plan changed");
                return Err(ActionError::PlanChanged(why));
            }
        }
        action(session, req).await
    }

    /// The refusal in the incident's audit chain. The refusal stands when the chain cannot be
    /// written (an unknown incident has none): logged, never turned into a different error.
    async fn audit_refusal<R: Guarded>(
        &self,
        clients: &ir_aws::Clients,
        req: &R,
        name: ErrorName,
        why: &str,
        now: OffsetDateTime,
    ) {
        let log = AuditLog::new(clients.clone(), self.names.clone());
        let event = AuditEvent::StepNotApproved(StepFailure {
            step: req.step_id().to_owned(),
            error: name.as_str().to_owned(),
            cause: why.to_owned(),
        });
        if let Err(e) = log
            .append(req.incident_id(), GUARD_ACTOR, &event, now)
            .await
        {
            tracing::warn!(incident_id = req.incident_id(), error = %e, "refusal not audited");
        }
    }
}

/// The protection of a run: `base` and, acting through a member role, that role (the suite's
/// own in that account: never contained).
pub fn protection_for(session: &Session, base: &Protection) -> Protection {
    let mut p = base.clone();
    if let Some(role) = &session.member_role {
        p.suite_principals.push(role.clone());
    }
    p
}

/// The deny-all policy a run attaches: the suite's own (`home`) in the security account, the one
/// `member-account.yaml` creates in a member account.
pub fn deny_policy_for(session: &Session, home: &str) -> String {
    match session.member_role {
        Some(_) => {
            ir_core::accounts::member_deny_policy_arn(&session.partition, &session.place.account)
        }
        None => home.to_owned(),
    }
}

/// Why the guard refused, or could not tell.
enum Refused {
    Not(String),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Refused {
        Refused::Store(e)
    }
}

fn store_error(e: StoreError) -> ActionError {
    match e {
        StoreError::Aws(f) => ActionError::Aws(f),
        other => ActionError::Conflict(format!("the suite's records could not be read: {other}")),
    }
}
