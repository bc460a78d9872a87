//! `ir release INCIDENT [--enforce] [--reason TEXT] [--json]`: end an incident's containment as
//! yourself.
//!
//! Dry-run by default: the restoration is planned from reads (each change before -> after) and
//! nothing is written. `--enforce` restores exactly what the containment records say (the
//! original security groups of every interface, the incident's inline deny policies removed, the
//! access keys it deactivated re-activated; never the evidence), then resolves the incident,
//! audits the changes and `resolved` under your identity, and anchors the audit chain in the
//! evidence bucket ([`ir_incident::release::release_incident`]). You must be in
//! `notifications.approver_roles` (any role); your identity comes from STS `GetCallerIdentity`.
//!
//! The release runs with your own credentials, so IAM is what finally guards it: the approver
//! roles need the EC2 and IAM calls of the restores (ARCHITECTURE.md lists them) and writes to
//! the incidents and audit tables and the evidence bucket. No deployed function can restore.
//!
//! Exit 0: planned, or released and resolved. Exit 1: failed part-way (what was restored first
//! is printed and audited; running it again is safe). Exit 2: malformed input or a missing
//! variable. Exit 3: no such incident, or a resource gone: nothing was restored, and
//! `--enforce --force` restores the rest and resolves (what was not restored is audited), or
//! `ir resolve` keeps everything. Exit 4: refused (not an approver, an incident not contained, already resolved).

use std::io::Write;
use std::path::PathBuf;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::config::Mode;
use ir_core::{ErrorName, Named};
use ir_incident::approval::ApproverPolicy;
use ir_incident::recorder::RecorderSettings;
use ir_incident::release::{IncidentRelease, ReleaseError, Released};
use time::OffsetDateTime;

use crate::CliError;
use crate::report::change_line;

/// The environment `ir release` reads.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_KEYS_TABLE, IR_AUDIT_TABLE, IR_APPROVALS_TABLE
                      the suite's tables
  IR_EVIDENCE_BUCKET  the Object Lock evidence bucket the resolved chain head is anchored in
  IR_CONFIG_SSM_PARAMETER, IR_CONFIG_S3_URI or IR_CONFIG_FILE
                      the deployment's config (notifications.approver_roles, the evidence
                      retention) as the functions read it, with IR_APPROVERS_<ROLE> applied
                      (default: the embedded one)
",
    aws_env_help!()
);

/// `ir release`.
#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    /// The incident (`inc-` followed by 20 hex digits).
    pub incident: String,
    /// Restore and resolve. Without it the release is only planned and nothing changes.
    #[arg(long)]
    pub enforce: bool,
    /// With --enforce: some resources are gone (terminated, deleted) and cannot be restored;
    /// restore the rest and resolve anyway. What was not restored is listed and audited.
    #[arg(long, requires = "enforce")]
    pub force: bool,
    /// Why: kept in the audit chain with the resolution.
    #[arg(long)]
    pub reason: Option<String>,
    /// The config whose notifications.approver_roles may release (default: the deployment's, as
    /// IR_CONFIG_SSM_PARAMETER, IR_CONFIG_S3_URI or IR_CONFIG_FILE name it, else the embedded
    /// config/incident-response.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What ending an incident takes, from the environment and the config: the tables, where the
/// chain head is anchored, and who may (`ir release`, `ir resolve`).
pub(crate) struct Ending {
    pub names: TableNames,
    pub settings: RecorderSettings,
    pub policy: ApproverPolicy,
}

impl Ending {
    /// From `IR_*_TABLE`, `IR_EVIDENCE_BUCKET` and the config (`config`, else the deployment's source,
    /// else the embedded one).
    pub(crate) fn from_env(config: Option<&PathBuf>) -> Result<Ending, CliError> {
        let names = crate::aws::table_names()?;
        let bucket = crate::aws::var("IR_EVIDENCE_BUCKET")?;
        let config = crate::aws::load_config(config)?;
        Ok(Ending {
            names,
            policy: ApproverPolicy::from_config(&config),
            settings: RecorderSettings {
                evidence_bucket: bucket,
                evidence: config.evidence.clone(),
                slots: ir_incident::recorder::SlotSettings::of(&config),
            },
        })
    }
}

/// An ending's outcome as one JSON object: `{"ok": true, <key>: outcome}`, or the error's stable
/// name and message with the caller.
pub(crate) fn print_json<T, E>(
    out: &mut impl Write,
    key: &str,
    result: &Result<T, E>,
    caller: &str,
) -> Result<(), CliError>
where
    T: serde::Serialize,
    E: Named + std::fmt::Display,
{
    let value = match result {
        Ok(r) => serde_json::json!({"ok": true, key: r}),
        Err(e) => serde_json::json!({
            "ok": false,
            "error": e.error_name().as_str(),
            "message": e.to_string(),
            "caller": caller,
        }),
    };
    writeln!(out, "{value}").map_err(write_error)
}

/// An operator command's outcome printed (as JSON under `key`, or as text by `render`), then
/// its exit decided by the error's stable name.
pub(crate) fn answer<T, W>(
    out: &mut W,
    key: &str,
    result: Result<T, ReleaseError>,
    caller: &str,
    json: bool,
    render: impl Fn(&T, &mut W) -> std::io::Result<()>,
) -> Result<(), CliError>
where
    T: serde::Serialize,
    W: Write,
{
    if json {
        print_json(out, key, &result, caller)?;
    } else if let Ok(r) = &result {
        render(r, out).map_err(write_error)?;
    }
    result
        .map(|_| ())
        .map_err(|e| CliError::named(e.error_name(), e.to_string()))
}

pub(crate) fn write_error(e: std::io::Error) -> CliError {
    CliError::Failed(format!("writing output: {e}"))
}

/// Runs `ir release`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    crate::aws::check_incident_id(&args.incident)?;
    let ending = Ending::from_env(args.config.as_ref())?;
    crate::aws::with_clients(async |clients| release_as_caller(args, &clients, ending, out).await)
}

/// The release with `clients`' credentials: who they belong to (STS), then
/// [`ir_incident::release::release_incident`], then the outcome printed.
pub(crate) async fn release_as_caller(
    args: &Args,
    clients: &Clients,
    ending: Ending,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let caller = crate::aws::caller_arn(clients).await?;
    let req = IncidentRelease {
        incident_id: args.incident.clone(),
        mode: if args.enforce {
            Mode::Enforce
        } else {
            Mode::DryRun
        },
        reason: args.reason.clone().filter(|r| !r.trim().is_empty()),
        force: args.force,
    };
    let result = ir_incident::release::release_incident(
        clients,
        &ending.names,
        ending.settings,
        &ending.policy,
        &req,
        &caller,
        OffsetDateTime::now_utc(),
    )
    .await;
    let write = write_error;
    if args.json {
        print_json(out, "released", &result, &caller)?;
    } else if let Ok(r) = &result {
        render(r, out).map_err(write)?;
    } else if let Err(ReleaseError::Action(ir_actions::ActionError::Incomplete { done, .. })) =
        &result
    {
        writeln!(out, "restored before the failure:").map_err(write)?;
        for c in &done.changes {
            writeln!(
                out,
                "  {}",
                change_line(&c.target, &c.attribute, &c.before, &c.after, c.status)
            )
            .map_err(write)?;
        }
    }
    match result {
        Ok(_) => Ok(()),
        Err(e @ ReleaseError::Gone { .. }) => Err(CliError::NotFound(format!(
            "{e}\nhint: `ir release {id} --enforce --force --reason \"...\"` restores what \
             remains and resolves; `ir resolve {id} --reason \"...\"` keeps everything as it \
             is and resolves",
            id = args.incident
        ))),
        Err(e @ ReleaseError::Action(_)) if e.error_name() == ErrorName::NotFound => {
            Err(CliError::NotFound(format!(
                "{e}\nhint: the resource is gone (terminated, or rebuilt?): nothing can be \
                 restored. `ir resolve {} --reason \"...\"` ends the incident and keeps its records",
                args.incident
            )))
        }
        Err(e) => Err(CliError::named(e.error_name(), e.to_string())),
    }
}

/// The release as text: what was (or would be) restored, then where the incident stands.
pub fn render(r: &Released, out: &mut impl Write) -> std::io::Result<()> {
    let verb = match r.mode {
        Mode::DryRun => "would restore (dry-run: nothing changed; run again with --enforce)",
        Mode::Enforce => "restored",
    };
    writeln!(out, "Release of {} by {}: {verb}", r.incident_id, r.by)?;
    if r.report.changes.is_empty() {
        // The notes say why (no containment records, an instance the suite terminated).
        writeln!(out, "  nothing")?;
    }
    for c in &r.report.changes {
        writeln!(
            out,
            "  {}",
            change_line(&c.target, &c.attribute, &c.before, &c.after, c.status)
        )?;
    }
    for n in &r.report.notes {
        writeln!(out, "  note: {n}")?;
    }
    if !r.not_restored.is_empty() {
        let count = r.not_restored.len();
        match r.mode {
            Mode::DryRun => writeln!(
                out,
                "  {count} cannot be restored (the resource is gone): --enforce refuses unless \
                 --force; `ir resolve` keeps everything as it is"
            )?,
            Mode::Enforce => writeln!(
                out,
                "  {count} not restored (the resource is gone), resolved with --force"
            )?,
        }
    }
    match &r.recorded {
        Some(rec) => {
            writeln!(
                out,
                "Incident {}: {} -> {} (audit record {})",
                r.incident_id, r.from, rec.status, rec.seq
            )?;
            if let Some(a) = &rec.anchor {
                writeln!(
                    out,
                    "Audit chain head {} (record {}) anchored in the evidence bucket",
                    a.hash, a.seq
                )?;
            }
        }
        None => writeln!(out, "Incident {}: still {}", r.incident_id, r.status)?,
    }
    Ok(())
}
