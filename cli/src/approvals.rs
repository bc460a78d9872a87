//! `ir approvals list|show`: what waits for a decision, on whom, since when, and who is asked
//! next; one request's plan and its hash. Reads only.
//!
//! `ir approvals list [--mine] [--json]` reads the approvals of every open incident (the
//! incidents table's `by-status` index, then each incident's requests); `--mine` keeps those you
//! may decide (your role reaches the level's, you did not ask, you did not approve yet; your
//! identity from STS). `ir approvals show INCIDENT STEP [--json]`: the request as stored — the
//! plan to approve (each change before → after), its SHA-256 (what `ir approve --plan-hash`
//! names), the level, the role, the votes.
//!
//! Exit 0: listed or shown. Exit 1: a table could not be read. Exit 2: a malformed id or a
//! missing variable. Exit 3: no such request.

use std::io::Write;

use comfy_table::{Table, presets};
use ir_aws::store::ApprovalStore;
use ir_core::Named;
use ir_incident::listing::Waiting;
use time::{Duration, OffsetDateTime};

use crate::CliError;
use crate::report::human_duration;

/// The environment `ir approvals` reads.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_APPROVALS_TABLE
                      the suite's tables
  IR_CONFIG_FILE      the config naming who holds each escalation role (default: the embedded
                      one)
",
    aws_env_help!()
);

/// `ir approvals`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// What waits for a decision, oldest first: incident, step, level and role, votes, who
    /// asked, since when, when the level's window closes, who is asked next.
    #[command(after_help = ENV_HELP)]
    List(ListArgs),
    /// One request: the plan to approve and its hash, the level, the votes.
    #[command(after_help = ENV_HELP)]
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only the requests you may decide now.
    #[arg(long)]
    mine: bool,
    /// Print one JSON array.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The incident (`inc-` followed by 20 hex digits).
    incident: String,
    /// The gated step (`isolate-instance`).
    step: String,
    /// Print the request as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `ir approvals …`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    let names = crate::aws::table_names()?;
    match &args.command {
        Sub::List(a) => {
            let config = crate::aws::load_config(None)?;
            let now = OffsetDateTime::now_utc();
            let waiting = crate::aws::with_clients(async |clients| {
                let caller = if a.mine {
                    Some(crate::aws::caller_arn(&clients).await?)
                } else {
                    None
                };
                let all = ir_incident::listing::waiting(
                    &clients,
                    &names,
                    &config,
                    caller.as_deref(),
                    now,
                )
                .await
                .map_err(|e| CliError::named(e.error_name(), e.to_string()))?;
                Ok::<_, CliError>(
                    all.into_iter()
                        .filter(|w| !a.mine || w.yours == Some(true))
                        .collect::<Vec<_>>(),
                )
            })?;
            if a.json {
                let text = serde_json::to_string_pretty(&waiting)
                    .map_err(|e| CliError::Failed(format!("the list as JSON: {e}")))?;
                writeln!(out, "{text}").map_err(write_error)
            } else {
                writeln!(out, "{}", table(&waiting)).map_err(write_error)?;
                writeln!(out, "{} waiting", waiting.len()).map_err(write_error)
            }
        }
        Sub::Show(a) => {
            crate::aws::check_incident_id(&a.incident)?;
            let approval = crate::aws::with_clients(async |clients| {
                ApprovalStore::new(clients.clone(), names.clone())
                    .get(&a.incident, &a.step)
                    .await
                    .map_err(|e| CliError::named(e.error_name(), e.to_string()))
            })?
            .ok_or_else(|| {
                CliError::NotFound(format!(
                    "no approval request for incident {} step {}",
                    a.incident, a.step
                ))
            })?;
            let votes: Vec<_> = approval
                .approvals
                .iter()
                .map(
                    |v| serde_json::json!({"person": v.person, "by": v.by, "at": v.at.to_string()}),
                )
                .collect();
            let value = serde_json::json!({
                "incidentId": approval.incident_id,
                "stepId": approval.step_id,
                "status": approval.status.as_str(),
                "level": approval.level,
                "role": approval.role,
                "requester": approval.requester,
                "approvalsRequired": approval.approvals_required,
                "approvals": votes,
                "planHash": approval.plan_hash,
                "plan": approval.plan,
            });
            if a.json {
                let text = serde_json::to_string_pretty(&value)
                    .map_err(|e| CliError::Failed(format!("the request as JSON: {e}")))?;
                return writeln!(out, "{text}").map_err(write_error);
            }
            writeln!(
                out,
                "Approval of {} step {}: {} at level {} ({}), {} of {} approvals",
                approval.incident_id,
                approval.step_id,
                approval.status.as_str(),
                approval.level,
                approval.role,
                approval.approvals.len(),
                approval.approvals_required
            )
            .map_err(write_error)?;
            writeln!(out, "Asked by {}", approval.requester).map_err(write_error)?;
            writeln!(
                out,
                "Plan hash: {}",
                approval.plan_hash.as_deref().unwrap_or("(none)")
            )
            .map_err(write_error)?;
            let plan = serde_json::to_string_pretty(&approval.plan)
                .map_err(|e| CliError::Failed(format!("the plan as JSON: {e}")))?;
            writeln!(out, "Plan:\n{plan}").map_err(write_error)
        }
    }
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::Failed(format!("writing output: {e}"))
}

/// The waiting approvals as a table.
pub fn table(rows: &[Waiting]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "incident",
        "step",
        "level",
        "role",
        "votes",
        "asked by",
        "waiting",
        "closes in",
        "next",
    ]);
    let now = OffsetDateTime::now_utc();
    for w in rows {
        t.add_row([
            w.incident_id.clone(),
            w.step_id.clone(),
            w.level.to_string(),
            w.role.clone(),
            format!("{}/{}", w.approvals, w.approvals_required),
            w.requester
                .rsplit('/')
                .next()
                .unwrap_or(&w.requester)
                .to_owned(),
            human_duration(Duration::seconds(w.waiting_seconds)),
            human_duration(w.expires_at - now),
            w.next.clone(),
        ]);
    }
    t
}
