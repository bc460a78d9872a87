//! `ir retry INCIDENT --step STEP --reason TEXT [--json]`: run a failed step again as yourself.
//!
//! For an incident whose playbook stopped because a step set to `on_failure: stop` failed
//! (status `needs-attention`): once the cause is fixed, a new execution of the same playbook
//! runs that step and the steps the stop left unrun ([`ir_incident::retry::retry_step`]). A
//! gated step waits for a new approval, and you cannot approve your own retry (the two-person
//! rule). You must hold a role of `notifications.approver_roles`; your identity comes from STS
//! `GetCallerIdentity`; the retry is audited under it with your reason.
//!
//! Exit 0: started. Exit 1: failed. Exit 2: malformed input or no reason. Exit 3: no such
//! incident. Exit 4: refused (not an approver, not `needs-attention`, another step stopped it).

use std::io::Write;
use std::path::PathBuf;

use ir_aws::Clients;
use ir_incident::retry::{Retried, StepRetry};
use time::OffsetDateTime;

use crate::CliError;

/// `ir retry`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::release::ENV_HELP)]
pub struct Args {
    /// The incident (`inc-` followed by 20 hex digits).
    pub incident: String,
    /// The step the playbook stopped at.
    #[arg(long)]
    pub step: String,
    /// What was fixed: audited.
    #[arg(long)]
    pub reason: String,
    /// The config whose notifications.approver_roles may retry (default: IR_CONFIG_FILE, else
    /// the embedded config/incident-response.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ir retry`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    crate::aws::check_incident_id(&args.incident)?;
    if args.reason.trim().is_empty() {
        return Err(CliError::Invalid("--reason: say what was fixed".to_owned()));
    }
    let ending = crate::release::Ending::from_env(args.config.as_ref())?;
    crate::aws::with_clients(async |clients| retry_as_caller(args, &clients, ending, out).await)
}

async fn retry_as_caller(
    args: &Args,
    clients: &Clients,
    ending: crate::release::Ending,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let caller = crate::aws::caller_arn(clients).await?;
    let req = StepRetry {
        incident_id: args.incident.clone(),
        step_id: args.step.clone(),
        reason: args.reason.clone(),
    };
    let result = ir_incident::retry::retry_step(
        clients,
        &ending.names,
        &ending.policy,
        &req,
        &caller,
        OffsetDateTime::now_utc(),
    )
    .await;
    crate::release::answer(out, "retried", result, &caller, args.json, render)
}

/// The retry as text.
pub fn render(r: &Retried, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Incident {}: {} -> {} by {} (audit record {}); step {} retried in {}",
        r.incident_id, r.from, r.status, r.by, r.seq, r.step_id, r.execution_arn
    )?;
    writeln!(out, "Runs: {}", r.steps.join(", "))?;
    Ok(())
}
