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
//! Once resolved, the incident's report is written as HTML and JSON, locked, to the evidence
//! bucket (`incidents/<id>/report/report.{html,json}`); the output says where (bucket, key,
//! version). On a terminal, without `--json`, an enforced release shows a spinner on stderr
//! while it runs ([`Progress`]).
//!
//! Exit 0: planned, or released and resolved. Exit 1: failed part-way (what was restored first
//! is printed and audited; running it again is safe), or released and resolved but the report
//! could not be stored (the resolution stands; the output says so). Exit 2: malformed input or a missing
//! variable. Exit 3: no such incident, or a resource gone: nothing was restored, and
//! `--enforce --force` restores the rest and resolves (what was not restored is audited), or
//! `ir resolve` keeps everything. Exit 4: refused (not an approver, an incident not contained, already resolved).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::config::Mode;
use ir_core::{ErrorName, Named};
use ir_incident::approval::ApproverPolicy;
use ir_incident::recorder::RecorderSettings;
use ir_incident::release::{IncidentRelease, ReleaseError, Released};
use ir_incident::report::store::Filed;
use time::OffsetDateTime;

use crate::CliError;
use crate::report::change_line;

/// Progress on stderr while a command waits (an enforced release, a redrive): a spinner, or a
/// bar over a known count. Shown only when stderr is a terminal and the output is not `--json`;
/// otherwise inert. Cleared when dropped, so nothing of it stays in the terminal or reaches a
/// pipe.
#[derive(Debug)]
pub(crate) struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// Whether progress is shown: stderr is a terminal and the output is not JSON.
    pub(crate) fn shown(json: bool) -> bool {
        !json && std::io::stderr().is_terminal()
    }

    /// A spinner saying `message`, when `show`.
    pub(crate) fn spinner(show: bool, message: String) -> Progress {
        if !show {
            return Progress(None);
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// A bar over `len` items, when `show`.
    pub(crate) fn bar(show: bool, len: u64, message: String) -> Progress {
        if !show {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// What is being done now.
    pub(crate) fn say(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }

    /// One item done.
    pub(crate) fn done_one(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Whether anything is drawn.
    #[cfg(test)]
    fn is_drawn(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

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
    answer_filed(out, key, result, caller, json, |_| None, render)
}

/// [`answer`] for a command that resolves: an incident resolved whose report was not stored
/// (`filed`) is exit 1, its JSON `ok: false` with the resolution under `key`.
pub(crate) fn answer_filed<T, W>(
    out: &mut W,
    key: &str,
    result: Result<T, ReleaseError>,
    caller: &str,
    json: bool,
    filed: impl Fn(&T) -> Option<&Filed>,
    render: impl Fn(&T, &mut W) -> std::io::Result<()>,
) -> Result<(), CliError>
where
    T: serde::Serialize,
    W: Write,
{
    let unfiled = result.as_ref().ok().and_then(|r| filing_error(filed(r)));
    match (&result, &unfiled) {
        (Ok(r), Some(e)) if json => print_unfiled(out, key, r, e)?,
        _ if json => print_json(out, key, &result, caller)?,
        (Ok(r), _) => render(r, out).map_err(write_error)?,
        (Err(_), _) => {}
    }
    if let Some((_, e)) = unfiled {
        return Err(e);
    }
    result
        .map(|_| ())
        .map_err(|e| CliError::named(e.error_name(), e.to_string()))
}

/// A resolution whose report was not stored, as one JSON object: `ok: false`, the failure, and
/// the resolution under `key`.
fn print_unfiled<T: serde::Serialize>(
    out: &mut impl Write,
    key: &str,
    outcome: &T,
    (name, e): &(ErrorName, CliError),
) -> Result<(), CliError> {
    let value = serde_json::json!({
        "ok": false,
        "error": name.as_str(),
        "message": e.to_string(),
        key: outcome,
    });
    writeln!(out, "{value}").map_err(write_error)
}

/// The exit of a resolution whose report was not stored (exit 1, saying what was done), with
/// the failure's stable name.
pub(crate) fn filing_error(filed: Option<&Filed>) -> Option<(ErrorName, CliError)> {
    let filed = filed?;
    let failure = filed.failure.as_ref()?;
    let stored = if filed.copies.is_empty() {
        "nothing stored".to_owned()
    } else {
        format!(
            "stored before the failure: {}",
            filed
                .copies
                .iter()
                .map(|c| format!("{} version {}", c.uri(), c.version_id))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some((
        failure.error,
        CliError::Failed(format!(
            "the incident is resolved, but its report was not stored in the evidence bucket \
             ({}: {}; {stored}); `ir report INCIDENT --format html --out FILE` renders it",
            failure.error.as_str(),
            failure.message
        )),
    ))
}

/// Where the incident's report was stored, or that it was not.
pub(crate) fn render_filed(filed: &Filed, out: &mut impl Write) -> std::io::Result<()> {
    for c in &filed.copies {
        writeln!(
            out,
            "Incident report ({}) stored, locked {} until {}: {} version {}",
            c.format,
            c.lock_mode,
            ir_incident::report::format::stamp(c.retain_until),
            c.uri(),
            c.version_id
        )?;
    }
    if let Some(f) = &filed.failure {
        writeln!(
            out,
            "Incident report NOT stored: {}: {}",
            f.error.as_str(),
            f.message
        )?;
    }
    Ok(())
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
    let waiting = Progress::spinner(
        args.enforce && Progress::shown(args.json),
        format!(
            "releasing {}: restoring what containment changed, resolving, storing the report",
            args.incident
        ),
    );
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
    drop(waiting);
    let write = write_error;
    let unfiled = result
        .as_ref()
        .ok()
        .and_then(|r| filing_error(r.incident_report.as_ref()));
    if args.json {
        match (&result, &unfiled) {
            (Ok(r), Some(e)) => print_unfiled(out, "released", r, e)?,
            _ => print_json(out, "released", &result, &caller)?,
        }
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
    if let Some((_, e)) = unfiled {
        return Err(e);
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
    if let Some(filed) = &r.incident_report {
        render_filed(filed, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_never_shown_with_json_and_is_inert_when_not_shown() {
        assert!(!Progress::shown(true));
        let hidden = Progress::spinner(false, "x".into());
        assert!(!hidden.is_drawn());
        hidden.say("y".into());
        hidden.done_one();
        let bar = Progress::bar(true, 2, "redriving".into());
        assert!(bar.is_drawn());
        bar.say("m-1".into());
        bar.done_one();
        assert_eq!(
            bar.0.as_ref().map(indicatif::ProgressBar::position),
            Some(1)
        );
    }
}
