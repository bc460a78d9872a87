//! `ir resolve INCIDENT --reason TEXT [--json]`: end an incident as yourself without undoing
//! anything.
//!
//! For an incident whose resource was rebuilt from clean infrastructure code, terminated, or
//! whose risk was accepted: containment and evidence stay exactly as they are (the incident's
//! records still say what containment changed), the incident is resolved, `resolved` is audited
//! under your identity with the reason, and the audit chain is anchored in the evidence bucket
//! ([`ir_incident::release::resolve_incident`]). It works when the resource is gone, where
//! `ir release` cannot restore. You must hold a role of `notifications.approver_roles`; your
//! identity comes from STS `GetCallerIdentity`.
//!
//! The incident must be `contained`, in `containment` with its playbook finished (a dry-run,
//! rejected or partly contained incident), or in `triage` whose triage failed.
//!
//! Once resolved, the incident's report is written as HTML and JSON, locked, to the evidence
//! bucket (`incidents/<id>/report/report.{html,json}`); the output says where (bucket, key,
//! version).
//!
//! Exit 0: resolved. Exit 1: failed, or resolved but the report could not be stored (the
//! resolution stands; the output says so). Exit 2: malformed input, no reason, or a missing
//! variable. Exit 3: no such incident. Exit 4: refused (not an approver, a playbook still
//! running, already resolved).

use std::io::Write;
use std::path::PathBuf;

use ir_aws::Clients;
use ir_incident::release::{IncidentResolution, Resolution};
use time::OffsetDateTime;

use crate::CliError;

/// `ir resolve`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::release::ENV_HELP)]
pub struct Args {
    /// The incident (`inc-` followed by 20 hex digits).
    pub incident: String,
    /// Why the incident ends as it is (rebuilt from IaC, terminated, risk accepted): audited.
    #[arg(long)]
    pub reason: String,
    /// The config whose notifications.approver_roles may resolve (default: the deployment's, as
    /// IR_CONFIG_SSM_PARAMETER, IR_CONFIG_S3_URI or IR_CONFIG_FILE name it, else the embedded
    /// config/incident-response.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ir resolve`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    crate::aws::check_incident_id(&args.incident)?;
    if args.reason.trim().is_empty() {
        return Err(CliError::Invalid(
            "--reason: say why the incident ends as it is".to_owned(),
        ));
    }
    let ending = crate::release::Ending::from_env(args.config.as_ref())?;
    crate::aws::with_clients(async |clients| resolve_as_caller(args, &clients, ending, out).await)
}

/// The resolution with `clients`' credentials: who they belong to (STS), then
/// [`ir_incident::release::resolve_incident`], then the outcome printed.
pub(crate) async fn resolve_as_caller(
    args: &Args,
    clients: &Clients,
    ending: crate::release::Ending,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let caller = crate::aws::caller_arn(clients).await?;
    let req = IncidentResolution {
        incident_id: args.incident.clone(),
        reason: args.reason.clone(),
    };
    let result = ir_incident::release::resolve_incident(
        clients,
        &ending.names,
        ending.settings,
        &ending.policy,
        &req,
        &caller,
        OffsetDateTime::now_utc(),
    )
    .await;
    crate::release::answer_filed(
        out,
        "resolved",
        result,
        &caller,
        args.json,
        |r: &Resolution| Some(&r.incident_report),
        render,
    )
}

/// The resolution as text.
pub fn render(r: &Resolution, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Incident {}: {} -> {} by {} (audit record {}); nothing undone: {} containment change(s) left as they are",
        r.incident_id, r.from, r.status, r.by, r.recorded.seq, r.kept
    )?;
    if let Some(a) = &r.recorded.anchor {
        writeln!(
            out,
            "Audit chain head {} (record {}) anchored in the evidence bucket",
            a.hash, a.seq
        )?;
    }
    crate::release::render_filed(&r.incident_report, out)
}
