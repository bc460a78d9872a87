//! `ir incidents list|show`: what is open, newest first, and one incident in full. Reads only.
//!
//! `ir incidents list [--status S]... [--severity S]... [--since DURATION] [--config FILE]
//! [--json]`: id, severity, status, resource, account, playbook, age and the response SLA (due
//! in, breached by, met), from the incidents table's `by-status` index (every open status unless
//! `--status` says which). `ir incidents show ID [--json]`: the incident report (`ir report`),
//! the approvals waiting on it, and its post-incident review: the review date and the open
//! action items, overdue ones marked.
//!
//! Exit 0: listed or shown. Exit 1: a table could not be read, or the shown incident's audit
//! chain does not verify. Exit 2: a malformed id, status, severity or duration, or a missing
//! variable. Exit 3: no such incident.

use std::io::Write;
use std::path::PathBuf;

use comfy_table::{Table, presets};
use ir_aws::store::IncidentStore;
use ir_aws::store::TableNames;
use ir_core::incident::Status;
use ir_core::{Named, Severity};
use ir_incident::listing::{IncidentFilter, IncidentRow, SlaState};
use ir_incident::review::ReviewShown;
use time::{Duration, OffsetDateTime};

use crate::CliError;
use crate::report::human_duration;

/// The environment `ir incidents` reads.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_AUDIT_TABLE, IR_APPROVALS_TABLE
                      the suite's tables
  IR_EVIDENCE_BUCKET  (show) the evidence bucket holding the audit anchors
  IR_CONFIG_FILE      the config whose triage.response_sla the list measures (default: the
                      embedded one)
",
    aws_env_help!()
);

/// `ir incidents`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// The incidents, newest first: id, severity, status, resource, account, playbook, age,
    /// response SLA. Open ones unless --status says which.
    #[command(after_help = ENV_HELP)]
    List(ListArgs),
    /// One incident in full (as `ir report`), the approvals waiting on it, and its post-incident
    /// review's date and open action items (overdue ones marked).
    #[command(after_help = ENV_HELP)]
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only this status (repeatable): triage, queued, containment, contained, needs-attention,
    /// resolved, postmortem.
    #[arg(long, value_name = "S", value_parser = parse_status)]
    status: Vec<Status>,
    /// Only this severity (repeatable): critical, high, medium, low.
    #[arg(long, value_name = "S", value_parser = parse_severity)]
    severity: Vec<Severity>,
    /// Detected at most this long ago (`90m`, `24h`, `7d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    since: Option<Duration>,
    /// The config whose response SLAs apply (default: IR_CONFIG_FILE, else the embedded one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print one JSON array.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The incident (`inc-` followed by 20 hex digits).
    incident: String,
    /// Print one JSON object (`report`, `approvals`, `review`: null when none is open).
    #[arg(long)]
    json: bool,
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse()
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    serde_json::from_value(serde_json::Value::from(s))
        .map_err(|_| format!("`{s}` is not a severity (critical, high, medium, low)"))
}

fn parse_since(s: &str) -> Result<Duration, String> {
    let d: ir_core::duration::ConfigDuration = s.parse()?;
    let secs = i64::try_from(d.as_secs()).map_err(|_| format!("`{s}` is too long"))?;
    Ok(Duration::seconds(secs))
}

/// Runs `ir incidents …`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    match &args.command {
        Sub::List(a) => {
            let names = crate::aws::table_names()?;
            let config = crate::aws::load_config(a.config.as_ref())?;
            let filter = IncidentFilter {
                statuses: a.status.clone(),
                severities: a.severity.clone(),
                since: a.since,
            };
            let now = OffsetDateTime::now_utc();
            let rows = crate::aws::with_clients(async |clients| {
                ir_incident::listing::incidents(&clients, &names, &config, &filter, now)
                    .await
                    .map_err(|e| CliError::named(e.error_name(), e.to_string()))
            })?;
            if a.json {
                let text = serde_json::to_string_pretty(&rows)
                    .map_err(|e| CliError::Failed(format!("the list as JSON: {e}")))?;
                writeln!(out, "{text}").map_err(write_error)
            } else {
                writeln!(out, "{}", table(&rows)).map_err(write_error)?;
                writeln!(out, "{} incident(s)", rows.len()).map_err(write_error)
            }
        }
        Sub::Show(a) => show(a, out),
    }
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::Failed(format!("writing output: {e}"))
}

/// The SLA as a cell: `due in 42m`, `BREACHED by 1h12m`, `met`.
pub fn sla_cell(sla: Option<&SlaState>) -> String {
    match sla {
        None => "-".to_owned(),
        Some(SlaState::Met { .. }) => "met".to_owned(),
        Some(SlaState::Due { seconds_left, .. }) => {
            format!(
                "due in {}",
                human_duration(Duration::seconds(*seconds_left))
            )
        }
        Some(SlaState::Breached { seconds_over, .. }) => {
            format!(
                "BREACHED by {}",
                human_duration(Duration::seconds(*seconds_over))
            )
        }
    }
}

/// The incidents as a table.
/// Each regulatory deadline with the time left (`gdpr: 2d 23h left`), or `-`.
fn deadlines_cell(deadlines: &[ir_incident::listing::DeadlineState]) -> String {
    if deadlines.is_empty() {
        return "-".to_owned();
    }
    deadlines
        .iter()
        .map(|d| d.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn table(rows: &[IncidentRow]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "incident",
        "severity",
        "status",
        "resource",
        "account",
        "playbook",
        "age",
        "SLA",
        "regulatory",
    ]);
    for r in rows {
        t.add_row([
            r.incident_id.clone(),
            r.severity.to_string(),
            r.status.to_string(),
            format!("{} {}", r.resource_kind, r.resource_id),
            r.account.clone(),
            r.playbook.clone().unwrap_or_else(|| "-".to_owned()),
            human_duration(Duration::seconds(r.age_seconds)),
            sla_cell(r.sla.as_ref()),
            deadlines_cell(&r.deadlines),
        ]);
    }
    t
}

fn show(a: &ShowArgs, out: &mut impl Write) -> Result<(), CliError> {
    crate::aws::check_incident_id(&a.incident)?;
    let names: TableNames = crate::aws::table_names()?;
    let bucket = crate::aws::var("IR_EVIDENCE_BUCKET")?;
    let config = crate::aws::load_config(None)?;
    let now = OffsetDateTime::now_utc();
    crate::aws::with_clients(async |clients| {
        let waiting =
            ir_incident::listing::waiting_on(&clients, &names, &config, &a.incident, None, now)
                .await
                .map_err(|e| CliError::named(e.error_name(), e.to_string()))?;
        let stored = IncidentStore::new(clients.clone(), names.clone())
            .get(&a.incident)
            .await
            .map_err(|e| CliError::named(e.error_name(), e.to_string()))?;
        let review = stored.as_ref().and_then(|i| ReviewShown::of(i, now.date()));
        let resources = stored.as_ref().map(ResourceShown::of).unwrap_or_default();
        if a.json {
            let report = ir_incident::report::build(&clients, &names, &bucket, &a.incident)
                .await
                .map_err(|e| CliError::named(e.error_name(), e.to_string()))?;
            let value = serde_json::json!({
                "report": report,
                "resources": resources,
                "approvals": waiting,
                "review": review,
            });
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| CliError::Failed(format!("the incident as JSON: {e}")))?;
            writeln!(out, "{text}").map_err(write_error)?;
            let problems = report.problems();
            return if problems.is_empty() {
                Ok(())
            } else {
                Err(CliError::Failed(problems.join("; ")))
            };
        }
        let reported =
            crate::report::report(&clients, &names, &bucket, &a.incident, false, out).await;
        writeln!(out).map_err(write_error)?;
        resource_lines(&resources, out).map_err(write_error)?;
        if waiting.is_empty() {
            writeln!(out, "Approvals waiting: none").map_err(write_error)?;
        } else {
            writeln!(out, "Approvals waiting:").map_err(write_error)?;
            writeln!(out, "{}", crate::approvals::table(&waiting)).map_err(write_error)?;
        }
        review_lines(review.as_ref(), now.date(), out).map_err(write_error)?;
        reported
    })
}

/// One resource of an incident and its containment plan: the incident's own, on which the
/// playbook runs, or one more an attack sequence named, planned for a responder and never run
/// by the playbook (the action guard refuses any resource but the incident's).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceShown {
    resource_key: String,
    kind: &'static str,
    id: String,
    /// `runs`: the playbook's steps; `planned`: a responder's plan, not run.
    plan: &'static str,
    steps: Vec<ir_core::playbook::ResourceStep>,
}

impl ResourceShown {
    fn of(i: &ir_aws::store::Incident) -> Vec<ResourceShown> {
        let decision = i.decision.as_ref();
        let own = ResourceShown {
            resource_key: i.summary.resource_key.clone(),
            kind: i.resource.kind().as_str(),
            id: i.resource.id().to_owned(),
            plan: "runs",
            steps: decision
                .map(|d| {
                    d.playbook
                        .steps
                        .iter()
                        .map(|s| ir_core::playbook::ResourceStep {
                            id: s.id.clone(),
                            action: s.action.clone(),
                            target: s.target.clone(),
                            destructive: s.destructive,
                            requires_approval: s.requires_approval,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let related = i.related_resources.iter().map(|r| {
            let key = r.key();
            ResourceShown {
                steps: decision
                    .and_then(|d| d.resource_plans.iter().find(|p| p.resource_key == key))
                    .map(|p| p.steps.clone())
                    .unwrap_or_default(),
                resource_key: key,
                kind: r.resource.kind().as_str(),
                id: r.resource.id().to_owned(),
                plan: "planned",
            }
        });
        std::iter::once(own).chain(related).collect()
    }
}

/// The incident's resources and their plans, when it has more than its own.
fn resource_lines(resources: &[ResourceShown], out: &mut impl Write) -> std::io::Result<()> {
    if resources.len() < 2 {
        return Ok(());
    }
    writeln!(
        out,
        "Resources ({}): the playbook runs on the first; the others' steps are planned for a responder, not run",
        resources.len()
    )?;
    for r in resources {
        let steps: Vec<String> = r
            .steps
            .iter()
            .map(|s| {
                if s.requires_approval {
                    format!("{} (approval)", s.id)
                } else {
                    s.id.clone()
                }
            })
            .collect();
        writeln!(
            out,
            "  {} {} {} [{}]: {}",
            r.plan,
            r.kind,
            r.id,
            r.resource_key,
            if steps.is_empty() {
                "no step".to_owned()
            } else {
                steps.join(", ")
            }
        )?;
    }
    writeln!(out)
}

/// The review's date and its open action items, overdue ones marked.
fn review_lines(
    review: Option<&ReviewShown>,
    today: time::Date,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let Some(s) = review else {
        return writeln!(out, "Post-incident review: none");
    };
    let r = &s.review;
    let state = if r.closed_at.is_some() {
        "closed"
    } else {
        "open"
    };
    writeln!(
        out,
        "Post-incident review: held on {} ({state}); {} open action item(s), {} overdue",
        r.review_date,
        s.open_items.len(),
        s.overdue_items.len()
    )?;
    if !s.open_items.is_empty() {
        writeln!(out, "{}", crate::review::items_table(r.open_items(), today))?;
    }
    Ok(())
}
