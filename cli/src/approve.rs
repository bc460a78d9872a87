//! `ir approve|reject INCIDENT --step STEP [--reason TEXT]`: decide a gated step as yourself.
//!
//! Your AWS credentials come from the standard chain (environment, `AWS_PROFILE`, SSO, instance
//! role; `AWS_ENDPOINT_URL` is honoured, so the local cloud works too); who you are comes from
//! STS `GetCallerIdentity`, and [`ir_incident::approval::decide`] authorizes that identity against
//! `notifications.approvers` and the two-person rule before resuming the waiting execution.
//!
//! The decision is made with your own credentials, so IAM is what finally guards it: grant
//! `states:SendTaskSuccess`/`SendTaskFailure` and writes to the approvals table only to the
//! approver roles (the decide-approval Function URL enforces the same rules server-side, for
//! approvers who should hold neither).

use std::io::Write;
use std::path::PathBuf;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::approval::{ApproverPolicy, DecideError, DecisionRequest, Resumed, Verdict};
use time::OffsetDateTime;

use crate::CliError;

/// The environment `ir approve`, `ir reject` and `ir audit verify` read.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_KEYS_TABLE, IR_AUDIT_TABLE, IR_APPROVALS_TABLE
                      the suite's tables (all four; `ir audit verify` needs only IR_AUDIT_TABLE)
  IR_EVIDENCE_BUCKET  the Object Lock evidence bucket holding the audit anchors (`ir audit verify`)
  IR_CONFIG_FILE      the config with notifications.approvers (default: the embedded one)
",
    aws_env_help!()
);

/// `ir approve` / `ir reject`.
#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    /// The incident (`inc-` followed by 20 hex digits).
    pub incident: String,
    /// The gated step waiting for a decision (`isolate-instance`).
    #[arg(long)]
    pub step: String,
    /// Why: kept in the audit chain, and the rejection's cause the state machine records.
    #[arg(long)]
    pub reason: Option<String>,
    /// The config whose notifications.approvers may decide (default: IR_CONFIG_FILE, else the
    /// embedded config/incident-response.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(crate) use crate::aws::{caller_arn, load_config};

/// The outcome of a decision as printed, or the error with its exit code. A second decision that
/// asked for what was already decided is a success that did nothing (exit 0); one that asked for
/// the opposite is a failure (exit 1).
pub fn outcome(verdict: Verdict, result: Result<Resumed, DecideError>) -> Result<String, CliError> {
    match result {
        Ok(r) => Ok(match r.decision {
            Verdict::Approve => format!(
                "approved: {} step {} (escalation level {}) by {}; the waiting execution resumed and the step runs",
                r.incident_id, r.step_id, r.level, r.decided_by
            ),
            Verdict::Reject => format!(
                "rejected: {} step {} (escalation level {}) by {}; the step will not run",
                r.incident_id, r.step_id, r.level, r.decided_by
            ),
        }),
        Err(e @ DecideError::AlreadyDecided { status, .. }) if status == verdict.status() => {
            Ok(e.to_string())
        }
        Err(e @ DecideError::InvalidInput(_)) => Err(CliError::Invalid(e.to_string())),
        Err(e) => Err(CliError::Failed(e.to_string())),
    }
}

/// Runs `ir approve` (`Verdict::Approve`) or `ir reject`.
pub fn run(verdict: Verdict, args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    let names = crate::aws::table_names()?;
    let config = load_config(args.config.as_ref())?;
    let policy = ApproverPolicy::from_config(&config.notifications);
    crate::aws::with_clients(async |clients| {
        decide_as_caller(verdict, args, &clients, &names, &policy, out).await
    })
}

/// The decision with `clients`' credentials: who they belong to (STS), then
/// [`ir_incident::approval::decide`], then the outcome printed.
pub async fn decide_as_caller(
    verdict: Verdict,
    args: &Args,
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let decision = DecisionRequest {
        incident_id: args.incident.clone(),
        step_id: args.step.clone(),
        decision: verdict,
        reason: args.reason.clone().filter(|r| !r.trim().is_empty()),
    };
    // Malformed input is refused before asking AWS anything.
    if !ir_core::correlate::is_incident_id(&decision.incident_id) {
        return Err(CliError::Invalid(format!(
            "`{}` is not an incident id (inc- followed by 20 hex digits)",
            decision.incident_id
        )));
    }
    let caller = caller_arn(clients).await?;
    let result = ir_incident::approval::decide(
        clients,
        names,
        policy,
        &decision,
        &caller,
        OffsetDateTime::now_utc(),
    )
    .await;
    if args.json {
        let value = match &result {
            Ok(r) => serde_json::json!({"ok": true, "resumed": r}),
            Err(e) => serde_json::json!({
                "ok": false,
                "status": e.http_status(),
                "error": ir_core::Named::error_name(e).as_str(),
                "message": e.to_string(),
                "caller": caller,
            }),
        };
        let printed = outcome(verdict, result);
        writeln!(out, "{value}").map_err(|e| CliError::Failed(format!("writing output: {e}")))?;
        return printed.map(|_| ());
    }
    let line = outcome(verdict, result)?;
    writeln!(out, "{line}").map_err(|e| CliError::Failed(format!("writing output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_aws::store::ApprovalStatus;

    fn already(status: ApprovalStatus) -> Result<Resumed, DecideError> {
        Err(DecideError::AlreadyDecided {
            incident_id: "inc-0123456789abcdef0123".into(),
            step_id: "isolate-instance".into(),
            status,
            decided_by: Some("arn:aws:iam::111122223333:user/alice".into()),
            decided_at: None,
        })
    }

    #[test]
    fn a_repeated_decision_is_a_no_op_and_a_contrary_one_fails() {
        let same = outcome(Verdict::Approve, already(ApprovalStatus::Approved)).unwrap();
        assert!(
            same.contains("nothing done") && same.contains("alice"),
            "{same}"
        );
        let contrary = outcome(Verdict::Reject, already(ApprovalStatus::Approved)).unwrap_err();
        assert!(matches!(contrary, CliError::Failed(_)));
        assert!(
            contrary.to_string().contains("already approved"),
            "{contrary}"
        );
        let closed = outcome(
            Verdict::Approve,
            Err(DecideError::WindowClosed("expired".into())),
        )
        .unwrap_err();
        assert!(
            closed
                .to_string()
                .starts_with("the approval window has closed")
        );
        let bad =
            outcome(Verdict::Approve, Err(DecideError::InvalidInput("x".into()))).unwrap_err();
        assert!(matches!(bad, CliError::Invalid(_)));
    }
}
