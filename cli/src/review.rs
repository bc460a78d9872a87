//! `ir review`: the post-incident review of a resolved incident, as yourself (an approver).
//!
//! `ir review open INCIDENT [--date YYYY-MM-DD]`: a `resolved` incident becomes `postmortem`,
//! its review held `post_incident_review.after_days` after the resolution (or on `--date`, never
//! before the resolution). `ir review write INCIDENT [--timeline TEXT|@FILE] [--detection ..]
//! [--response ..] [--root-cause ..]`: the review's sections (Markdown). `ir review item add
//! INCIDENT --title T --owner O --due YYYY-MM-DD [--jira KEY]` and `ir review item close
//! INCIDENT ITEM (--done|--dropped) [--note N]`: action items, specific, assigned, time-bound,
//! tracked to completion. `ir review close INCIDENT`: once every section is written. Each
//! change is one conditional write of the incident and one audit record under your identity
//! (STS `GetCallerIdentity`); opening and closing anchor the audit chain
//! ([`ir_incident::review::change_review`]). You must hold a role of
//! `notifications.approver_roles`.
//!
//! `ir review show INCIDENT [--json]` and `ir review overdue [--json]` (every open item past its
//! due date across the incidents in postmortem) only read.
//!
//! Exit 0: done, shown, listed (nothing overdue included). Exit 1: failed. Exit 2: malformed
//! input (an incident or item id, a date, a Jira key, an empty or too long text) or a missing
//! variable. Exit 3: no such incident, item, or review to show. Exit 4: refused (not an
//! approver, an incident not resolved, a review already open or closed, an item closed already,
//! sections missing at close).

use std::io::Write;
use std::path::PathBuf;

use comfy_table::{Table, presets};
use ir_aws::Clients;
use ir_aws::store::{IncidentStore, TableNames};
use ir_core::Named;
use ir_core::review::{ActionItem, Closing, ItemStatus, Section};
use ir_incident::approval::ApproverPolicy;
use ir_incident::recorder::RecorderSettings;
use ir_incident::review::{
    OverdueItem, ReviewChange, ReviewFailure, ReviewRequest, ReviewSettings, ReviewShown, Reviewed,
};
use time::{Date, OffsetDateTime};

use ir_incident::notify::human_time;

use crate::CliError;
use crate::release::{print_json, write_error};

/// The environment the changing `ir review` commands read.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_KEYS_TABLE, IR_AUDIT_TABLE, IR_APPROVALS_TABLE
                      the suite's tables
  IR_EVIDENCE_BUCKET  the Object Lock evidence bucket the audit chain head is anchored in
                      (open, close)
  IR_CONFIG_SSM_PARAMETER, IR_CONFIG_S3_URI or IR_CONFIG_FILE
                      the deployment's config (notifications.approver_roles,
                      post_incident_review.after_days) as the functions read it, with
                      IR_APPROVERS_<ROLE> applied (default: the embedded one)
",
    aws_env_help!()
);

/// The environment `ir review show|overdue` read.
pub const READ_ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_KEYS_TABLE, IR_AUDIT_TABLE, IR_APPROVALS_TABLE
                      the suite's tables
",
    aws_env_help!()
);

/// Largest file a section is read from (`@FILE`); the section itself is held to 8000
/// characters.
const MAX_SECTION_FILE_BYTES: u64 = 64 * 1024;

/// `ir review`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Open the review of a resolved incident: it becomes postmortem, the review held
    /// post_incident_review.after_days after the resolution, or on --date.
    #[command(after_help = ENV_HELP)]
    Open(OpenArgs),
    /// Write sections of the review (Markdown; TEXT, or @FILE to read it from a file).
    #[command(after_help = ENV_HELP)]
    Write(WriteArgs),
    /// Action items: `add` one (title, owner, due date, Jira issue), `close` one (done or
    /// dropped).
    Item(ItemArgs),
    /// Close the review, once every section is written; open items are tracked on.
    #[command(after_help = ENV_HELP)]
    Close(CloseArgs),
    /// The review: its date, sections, and action items (overdue ones marked).
    #[command(after_help = READ_ENV_HELP)]
    Show(ShowArgs),
    /// Every open action item past its due date, across the incidents in postmortem.
    #[command(after_help = READ_ENV_HELP)]
    Overdue(OverdueArgs),
}

/// What every changing command takes besides its own arguments.
#[derive(Debug, clap::Args)]
struct Common {
    /// The config whose notifications.approver_roles may change reviews and whose
    /// post_incident_review.after_days schedules them (default: the deployment's, as
    /// IR_CONFIG_SSM_PARAMETER, IR_CONFIG_S3_URI or IR_CONFIG_FILE name it, else the embedded
    /// config/incident-response.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct OpenArgs {
    /// The incident (`inc-` followed by 20 hex digits), resolved.
    incident: String,
    /// The day of the review, YYYY-MM-DD (default: post_incident_review.after_days after the
    /// resolution; never before it).
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("sections").required(true).multiple(true))]
struct WriteArgs {
    /// The incident.
    incident: String,
    /// Timeline reconstruction: what happened, minute by minute.
    #[arg(long, value_name = "TEXT|@FILE", group = "sections")]
    timeline: Option<String>,
    /// Detection analysis: how it was found; could it have been found sooner.
    #[arg(long, value_name = "TEXT|@FILE", group = "sections")]
    detection: Option<String>,
    /// Response evaluation: what went well, what was slow or confused.
    #[arg(long, value_name = "TEXT|@FILE", group = "sections")]
    response: Option<String>,
    /// Root cause: the vulnerability or misconfiguration that enabled the incident.
    #[arg(long, value_name = "TEXT|@FILE", group = "sections")]
    root_cause: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct ItemArgs {
    #[command(subcommand)]
    command: ItemSub,
}

#[derive(Debug, clap::Subcommand)]
enum ItemSub {
    /// Add an action item: specific (title), assigned (owner), time-bound (due).
    #[command(after_help = ENV_HELP)]
    Add(ItemAddArgs),
    /// Close an open action item: --done, or --dropped with a --note saying why.
    #[command(after_help = ENV_HELP)]
    Close(ItemCloseArgs),
}

#[derive(Debug, clap::Args)]
struct ItemAddArgs {
    /// The incident.
    incident: String,
    /// What is to be done (one line, at most 200 characters).
    #[arg(long)]
    title: String,
    /// Who does it: a person or a team (one line, at most 100 characters).
    #[arg(long)]
    owner: String,
    /// When it is due, YYYY-MM-DD (not before the resolution).
    #[arg(long, value_name = "YYYY-MM-DD")]
    due: String,
    /// The Jira issue tracking it (PROJECT-123).
    #[arg(long, value_name = "KEY")]
    jira: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("outcome").required(true).args(["done", "dropped"]))]
struct ItemCloseArgs {
    /// The incident.
    incident: String,
    /// The item (`A1`, `A2`, …).
    item: String,
    /// It was done.
    #[arg(long)]
    done: bool,
    /// It will not be done (say why with --note).
    #[arg(long)]
    dropped: bool,
    /// What closing it says: done how, or why dropped (one line, at most 500 characters).
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct CloseArgs {
    /// The incident.
    incident: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The incident.
    incident: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct OverdueArgs {
    /// Print one JSON array.
    #[arg(long)]
    json: bool,
}

/// Runs `ir review …`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    let (incident, change, common) = match &args.command {
        Sub::Show(a) => return show(a, out),
        Sub::Overdue(a) => return list_overdue(a, out),
        Sub::Open(a) => (
            &a.incident,
            ReviewChange::Open {
                date: a.date.clone(),
            },
            &a.common,
        ),
        Sub::Write(a) => {
            crate::aws::check_incident_id(&a.incident)?;
            let mut sections = Vec::new();
            for (section, given) in [
                (Section::Timeline, &a.timeline),
                (Section::Detection, &a.detection),
                (Section::Response, &a.response),
                (Section::RootCause, &a.root_cause),
            ] {
                if let Some(given) = given {
                    sections.push((section, section_input(section, given)?));
                }
            }
            (&a.incident, ReviewChange::Write { sections }, &a.common)
        }
        Sub::Item(ItemArgs {
            command: ItemSub::Add(a),
        }) => (
            &a.incident,
            ReviewChange::AddItem {
                title: a.title.clone(),
                owner: a.owner.clone(),
                due: a.due.clone(),
                jira_key: a.jira.clone(),
            },
            &a.common,
        ),
        Sub::Item(ItemArgs {
            command: ItemSub::Close(a),
        }) => (
            &a.incident,
            ReviewChange::CloseItem {
                id: a.item.clone(),
                closing: if a.dropped {
                    Closing::Dropped
                } else {
                    Closing::Done
                },
                note: a.note.clone(),
            },
            &a.common,
        ),
        Sub::Close(a) => (&a.incident, ReviewChange::Close, &a.common),
    };
    crate::aws::check_incident_id(incident)?;
    change
        .check()
        .map_err(|e| CliError::named(e.error_name(), e.to_string()))?;
    let req = ReviewRequest {
        incident_id: incident.clone(),
        change,
    };
    let changing = Changing::from_env(common.config.as_ref())?;
    crate::aws::with_clients(async |clients| {
        change_as_caller(&req, &clients, &changing, common.json, out).await
    })
}

/// A section's text: `@FILE` read from the file (UTF-8, at most 64 KiB), anything else as is.
fn section_input(section: Section, given: &str) -> Result<String, CliError> {
    let Some(path) = given.strip_prefix('@') else {
        return Ok(given.to_owned());
    };
    let path = PathBuf::from(path);
    let what = format!("--{}", section.as_str());
    let len = std::fs::metadata(&path)
        .map_err(|e| CliError::Invalid(format!("{what} {}: {e}", path.display())))?
        .len();
    if len > MAX_SECTION_FILE_BYTES {
        return Err(CliError::Invalid(format!(
            "{what} {}: {len} bytes, more than a section holds",
            path.display()
        )));
    }
    let bytes = crate::read_input(&path, &what)?;
    String::from_utf8(bytes)
        .map_err(|e| CliError::Invalid(format!("{what} {}: not UTF-8: {e}", path.display())))
}

/// What changing a review takes: the tables, the anchor's bucket, the config's approvers and
/// review wait.
struct Changing {
    names: TableNames,
    settings: ReviewSettings,
    policy: ApproverPolicy,
}

impl Changing {
    /// From `IR_*_TABLE`, `IR_EVIDENCE_BUCKET` and the config (`config`, else the deployment's
    /// source, else the embedded one).
    fn from_env(config: Option<&PathBuf>) -> Result<Changing, CliError> {
        let names = crate::aws::table_names()?;
        let bucket = crate::aws::var("IR_EVIDENCE_BUCKET")?;
        let config = crate::aws::load_config(config)?;
        Ok(Changing {
            names,
            settings: ReviewSettings {
                recorder: RecorderSettings {
                    evidence_bucket: bucket,
                    evidence: config.evidence.clone(),
                    slots: ir_incident::recorder::SlotSettings::of(&config),
                },
                review: config.post_incident_review,
            },
            policy: ApproverPolicy::from_config(&config),
        })
    }
}

/// The change with `clients`' credentials: who they belong to (STS), then
/// [`ir_incident::review::change_review`], then the outcome printed.
async fn change_as_caller(
    req: &ReviewRequest,
    clients: &Clients,
    changing: &Changing,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let caller = crate::aws::caller_arn(clients).await?;
    let result = ir_incident::review::change_review(
        clients,
        &changing.names,
        &changing.settings,
        &changing.policy,
        req,
        &caller,
        OffsetDateTime::now_utc(),
    )
    .await;
    if json {
        print_json(out, "reviewed", &result, &caller)?;
    } else if let Ok(r) = &result {
        render(r, out).map_err(write_error)?;
    }
    result
        .map(|_| ())
        .map_err(|e: ReviewFailure| CliError::named(e.error_name(), e.to_string()))
}

/// A change as text.
fn render(r: &Reviewed, out: &mut impl Write) -> std::io::Result<()> {
    let id = &r.incident_id;
    let seq = r
        .seq
        .map(|s| format!(" (audit record {s})"))
        .unwrap_or_default();
    let review = &r.review;
    match r.action.as_str() {
        ir_core::audit::event::actions::REVIEW_OPENED => writeln!(
            out,
            "Incident {id}: resolved -> {} by {}; the review is held on {}{seq}",
            r.status, r.by, review.review_date
        )?,
        ir_core::audit::event::actions::REVIEW_WRITTEN if !r.changed => writeln!(
            out,
            "Review of {id}: nothing changed (the sections already say this)"
        )?,
        ir_core::audit::event::actions::REVIEW_WRITTEN => {
            let names: Vec<&str> = r.sections.iter().map(|s| s.as_str()).collect();
            writeln!(out, "Review of {id}: wrote {}{seq}", names.join(", "))?;
            let missing = review.sections.missing();
            if !missing.is_empty() {
                let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                writeln!(out, "  still to write: {}", names.join(", "))?;
            }
        }
        ir_core::audit::event::actions::REVIEW_ITEM_ADDED
        | ir_core::audit::event::actions::REVIEW_ITEM_CLOSED => {
            if let Some(i) = &r.item {
                let what = match i.status {
                    ItemStatus::Open => "added".to_owned(),
                    s => s.as_str().to_owned(),
                };
                writeln!(
                    out,
                    "Action item {} of {id} {what}: {} (owner {}, due {}{}){}{seq}",
                    i.id,
                    i.title,
                    i.owner,
                    i.due,
                    i.jira_key
                        .as_ref()
                        .map(|k| format!(", {k}"))
                        .unwrap_or_default(),
                    i.resolution
                        .as_ref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default(),
                )?;
            }
        }
        _ => {
            let open: Vec<&str> = review.open_items().map(|i| i.id.as_str()).collect();
            writeln!(out, "Review of {id} closed by {}{seq}", r.by)?;
            if open.is_empty() {
                writeln!(out, "  every action item is closed")?;
            } else {
                writeln!(
                    out,
                    "  {} action item(s) still open, tracked on: {}",
                    open.len(),
                    open.join(", ")
                )?;
            }
        }
    }
    if let Some(a) = &r.anchor {
        writeln!(
            out,
            "Audit chain head {} (record {}) anchored in the evidence bucket",
            a.hash, a.seq
        )?;
    }
    Ok(())
}

/// The UTC day now.
fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn show(a: &ShowArgs, out: &mut impl Write) -> Result<(), CliError> {
    crate::aws::check_incident_id(&a.incident)?;
    let names = crate::aws::table_names()?;
    let incident = crate::aws::with_clients(async |clients| {
        IncidentStore::new(clients, names)
            .get(&a.incident)
            .await
            .map_err(|e| CliError::named(e.error_name(), e.to_string()))
    })?
    .ok_or_else(|| CliError::NotFound(format!("no incident {}", a.incident)))?;
    let shown = ReviewShown::of(&incident, today()).ok_or_else(|| {
        CliError::NotFound(format!(
            "incident {} ({}) has no review{}",
            a.incident,
            incident.summary.status,
            if incident.summary.status == ir_core::incident::Status::Resolved {
                format!(": open it with `ir review open {}`", a.incident)
            } else {
                String::new()
            }
        ))
    })?;
    if a.json {
        let text = serde_json::to_string_pretty(&shown)
            .map_err(|e| CliError::Failed(format!("the review as JSON: {e}")))?;
        return writeln!(out, "{text}").map_err(write_error);
    }
    render_review(&shown, today(), out).map_err(write_error)
}

/// A review in full: date, who opened and closed it, each section, every item.
pub fn render_review(s: &ReviewShown, today: Date, out: &mut impl Write) -> std::io::Result<()> {
    let r = &s.review;
    writeln!(
        out,
        "Post-incident review of {} ({}): held on {}",
        s.incident_id, s.status, r.review_date
    )?;
    writeln!(
        out,
        "  opened by {} at {}",
        r.opened_by,
        human_time(r.opened_at)
    )?;
    match (r.closed_at, &r.closed_by) {
        (Some(at), Some(by)) => writeln!(out, "  closed by {by} at {}", human_time(at))?,
        _ => writeln!(out, "  open")?,
    }
    for section in Section::ALL {
        writeln!(out)?;
        writeln!(out, "## {}", section.title())?;
        let text = r.sections.get(section);
        if text.trim().is_empty() {
            writeln!(
                out,
                "(not written: ir review write {} --{section})",
                s.incident_id
            )?;
        } else {
            writeln!(out, "{text}")?;
        }
    }
    writeln!(out)?;
    if r.items.is_empty() {
        writeln!(out, "Action items: none")?;
    } else {
        writeln!(
            out,
            "Action items ({} open, {} overdue):",
            s.open_items.len(),
            s.overdue_items.len()
        )?;
        writeln!(out, "{}", items_table(r.items.iter(), today))?;
    }
    Ok(())
}

/// An item's status as a cell: `open`, `OVERDUE by 3d`, `done`, `dropped`.
pub fn status_cell(i: &ActionItem, today: Date) -> String {
    if i.is_overdue(today) {
        format!("OVERDUE by {}d", (today - i.due).whole_days())
    } else {
        i.status.as_str().to_owned()
    }
}

/// Action items as a table.
pub fn items_table<'a>(items: impl Iterator<Item = &'a ActionItem>, today: Date) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(["item", "status", "title", "owner", "due", "jira", "note"]);
    for i in items {
        t.add_row([
            i.id.clone(),
            status_cell(i, today),
            i.title.clone(),
            i.owner.clone(),
            i.due.to_string(),
            i.jira_key.clone().unwrap_or_else(|| "-".to_owned()),
            i.resolution.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    t
}

fn list_overdue(a: &OverdueArgs, out: &mut impl Write) -> Result<(), CliError> {
    let names = crate::aws::table_names()?;
    let today = today();
    let rows = crate::aws::with_clients(async |clients| {
        ir_incident::review::overdue(&clients, &names, today)
            .await
            .map_err(|e| CliError::named(e.error_name(), e.to_string()))
    })?;
    if a.json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| CliError::Failed(format!("the list as JSON: {e}")))?;
        return writeln!(out, "{text}").map_err(write_error);
    }
    if rows.is_empty() {
        return writeln!(out, "nothing overdue").map_err(write_error);
    }
    writeln!(out, "{}", overdue_table(&rows)).map_err(write_error)?;
    writeln!(out, "{} overdue action item(s)", rows.len()).map_err(write_error)
}

fn overdue_table(rows: &[OverdueItem]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "incident", "severity", "item", "title", "owner", "due", "overdue", "jira",
    ]);
    for r in rows {
        t.add_row([
            r.incident_id.clone(),
            r.severity.to_string(),
            r.item.id.clone(),
            r.item.title.clone(),
            r.item.owner.clone(),
            r.item.due.to_string(),
            format!("{}d", r.days_overdue),
            r.item.jira_key.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    t
}
