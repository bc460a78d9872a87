//! `ir report INCIDENT [--format text|md|json|html] [--out FILE [--force]]`: the incident as an
//! on-call engineer reads it — status and resource, the timeline with MTTD and MTTC, the triage
//! decision, every step with its changes before → after and its approvals, the evidence
//! manifests read back from the bucket, and the audit chain verified against its anchors
//! ([`ir_incident::report::build`]). Reads only.
//!
//! `text` (the default) is for a terminal; `md` is seed 000's incident update followed by the
//! investigation detail and the post-incident review; `json` is the report as one object
//! (`--json` is the same); `html` is one self-contained page with an SVG timeline. The renderings
//! are ir-incident's ([`ir_incident::report::markdown`], [`ir_incident::report::html`]).
//! `--out FILE` writes the rendering to FILE instead of stdout, never over an existing file
//! unless `--force`.
//!
//! Exit 0 when everything holds; exit 1 after printing (or writing) the whole report when the
//! audit chain does not verify or a manifest cannot be read (the last line on stderr says what);
//! exit 2 for a malformed id, a missing variable, or an `--out` path that cannot be written (an
//! existing file without `--force`, a missing directory); exit 3 for an unknown incident
//! (`no incident inc-… in table …`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::Named;
pub use ir_incident::report::format::human_duration;
use ir_incident::report::format::{stamp, value_text};
use ir_incident::report::{
    ApprovalEvent, ApprovalKind, IncidentReport, ReportError, StepArtifacts, StepReport, StepState,
    Verification,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::CliError;

/// The environment `ir report` reads.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_INCIDENTS_TABLE, IR_AUDIT_TABLE
                      the suite's incidents and audit tables (the approvals table is not read)
  IR_EVIDENCE_BUCKET  the Object Lock evidence bucket holding the audit anchors (manifests are
                      read from the bucket their step recorded)
",
    aws_env_help!()
);

/// How the report is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a terminal.
    Text,
    /// Markdown: the incident update (seed 000's template), the detail, the review.
    Md,
    /// The report as one JSON object.
    Json,
    /// One self-contained HTML page with an SVG timeline.
    Html,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Md => "md",
            Format::Json => "json",
            Format::Html => "html",
        }
    }
}

/// `ir report`.
#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    /// The incident (`inc-` followed by 20 hex digits).
    incident: String,
    /// How to render it.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Write the report to FILE instead of stdout (refused if FILE exists, unless --force).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With --out: replace FILE if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

impl Args {
    fn format(&self) -> Format {
        if self.json { Format::Json } else { self.format }
    }
}

/// Where the rendering goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    Stdout,
    /// A file; replaced only when `force`.
    File {
        path: &'a Path,
        force: bool,
    },
}

/// Runs `ir report`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    if !ir_core::correlate::is_incident_id(&args.incident) {
        return Err(CliError::Invalid(
            ReportError::InvalidInput(args.incident.clone()).to_string(),
        ));
    }
    let destination = match &args.out {
        Some(path) => {
            check_out(path, args.force)?;
            Destination::File {
                path,
                force: args.force,
            }
        }
        None => Destination::Stdout,
    };
    // Only the incidents and audit tables are read.
    let names = TableNames {
        incidents: crate::aws::var("IR_INCIDENTS_TABLE")?,
        audit: crate::aws::var("IR_AUDIT_TABLE")?,
        ..TableNames::with_prefix("unused")
    };
    let bucket = crate::aws::var("IR_EVIDENCE_BUCKET")?;
    let format = args.format();
    crate::aws::with_clients(async |clients| {
        report_as(
            &clients,
            &names,
            &bucket,
            &args.incident,
            format,
            destination,
            out,
        )
        .await
    })
}

/// An `--out` path checked before anything is read: its directory exists, and it is not a
/// file already (unless `force`) nor a directory.
fn check_out(path: &Path, force: bool) -> Result<(), CliError> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err(CliError::Invalid("--out: an empty path".to_owned()));
    }
    if path.is_dir() {
        return Err(CliError::Invalid(format!("--out {shown}: is a directory")));
    }
    if path.exists() && !force {
        return Err(CliError::Invalid(format!(
            "--out {shown}: the file exists (--force replaces it)"
        )));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(CliError::Invalid(format!(
            "--out {shown}: no directory {}",
            parent.display()
        )));
    }
    Ok(())
}

/// `ir report` with these clients, as text or JSON on `out` (`ir incidents show` prints it so).
pub async fn report(
    clients: &Clients,
    names: &TableNames,
    bucket: &str,
    incident: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let format = if json { Format::Json } else { Format::Text };
    report_as(
        clients,
        names,
        bucket,
        incident,
        format,
        Destination::Stdout,
        out,
    )
    .await
}

/// The report rendered in `format`, at the time of the call.
pub fn rendering(report: &IncidentReport, format: Format) -> Result<Vec<u8>, CliError> {
    let now = OffsetDateTime::now_utc();
    Ok(match format {
        Format::Text => {
            let mut text = Vec::new();
            render(report, &mut text).map_err(write_error)?;
            text
        }
        Format::Md => ir_incident::report::markdown::render(report, now).into_bytes(),
        Format::Html => ir_incident::report::html::render(report, now).into_bytes(),
        Format::Json => {
            let mut text = serde_json::to_vec_pretty(report)
                .map_err(|e| CliError::Failed(format!("the report as JSON: {e}")))?;
            text.push(b'\n');
            text
        }
    })
}

/// `ir report` with these clients: the report built, rendered, written, and the exit decided.
pub async fn report_as(
    clients: &Clients,
    names: &TableNames,
    bucket: &str,
    incident: &str,
    format: Format,
    destination: Destination<'_>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let report = ir_incident::report::build(clients, names, bucket, incident)
        .await
        .map_err(|e| CliError::named(e.error_name(), e.to_string()))?;
    let bytes = rendering(&report, format)?;
    match destination {
        Destination::Stdout => out.write_all(&bytes).map_err(write_error)?,
        Destination::File { path, force } => {
            write_file(path, force, &bytes)?;
            writeln!(
                out,
                "report of {incident} ({}) written to {} ({} bytes)",
                format.as_str(),
                path.display(),
                bytes.len()
            )
            .map_err(write_error)?;
        }
    }
    out.flush().map_err(write_error)?;
    let problems = report.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(problems.join("; ")))
    }
}

/// Writes `bytes` to `path`: created (never over an existing file unless `force`). A path that
/// cannot be opened is the user's input (exit 2); a write that fails after it is a failure.
fn write_file(path: &Path, force: bool, bytes: &[u8]) -> Result<(), CliError> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        CliError::Invalid(match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "--out {}: the file exists (--force replaces it)",
                path.display()
            ),
            _ => format!("--out {}: {e}", path.display()),
        })
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::Failed(format!("writing output: {e}"))
}

// ------------------------------------------------------------------------------------ text

/// One change as printed: `eni-0a: security-groups [sg-web] -> [sg-iso] (applied)`.
pub fn change_line(
    target: &str,
    attribute: &str,
    before: &Value,
    after: &Value,
    status: impl serde::Serialize,
) -> String {
    let status = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!(
        "{target}: {attribute} {} -> {} ({status})",
        value_text(before),
        value_text(after)
    )
}

fn quoted_reason(reason: Option<&str>) -> String {
    reason.map(|r| format!(" (\"{r}\")")).unwrap_or_default()
}

fn approval_line(a: &ApprovalEvent) -> String {
    let level = a.level.map(|l| format!("level {l}")).unwrap_or_default();
    match a.kind {
        ApprovalKind::Requested => {
            let mut asked = vec![level];
            asked.extend(a.role.clone());
            asked.extend(
                a.timeout_seconds
                    .map(|t| human_duration(Duration::seconds(i64::try_from(t).unwrap_or(0)))),
            );
            asked.retain(|x| !x.is_empty());
            format!(
                "approval requested {} ({}) by {}",
                stamp(a.at),
                asked.join(", "),
                a.actor
            )
        }
        ApprovalKind::Approved | ApprovalKind::Rejected => format!(
            "{} {} by {}{}",
            if a.kind == ApprovalKind::Approved {
                "approved"
            } else {
                "rejected"
            },
            stamp(a.at),
            a.actor,
            quoted_reason(a.reason.as_deref())
        ),
        ApprovalKind::Counted => format!(
            "approval counted {} by {}{}: {}",
            stamp(a.at),
            a.actor,
            quoted_reason(a.reason.as_deref()),
            a.why.as_deref().unwrap_or("more approvals needed")
        ),
        ApprovalKind::Refused => format!(
            "decision refused {} for {}: {}",
            stamp(a.at),
            a.actor,
            a.why.as_deref().unwrap_or("no reason recorded")
        ),
        ApprovalKind::NotDelivered => format!(
            "decided {} by {} but not delivered to the waiting execution: {}",
            stamp(a.at),
            a.actor,
            a.why.as_deref().unwrap_or("no reason recorded")
        ),
    }
}

/// What follows a step's state on its line.
fn step_summary(s: &StepReport) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &s.result
        && matches!(
            s.state,
            StepState::Applied | StepState::Planned | StepState::AlreadyInPlace
        )
    {
        parts.push(r.mode.as_str().to_owned());
        match &r.artifacts {
            Some(StepArtifacts::Evidence(e)) => parts.push(format!(
                "{} objects, manifest s3://{}/{}",
                e.objects, e.bucket, e.manifest_key
            )),
            Some(StepArtifacts::Snapshots(x)) => parts.push(format!(
                "snapshots {}",
                x.snapshots
                    .iter()
                    .map(|s| format!("{} ({})", s.snapshot_id, s.volume_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => {}
        }
    }
    if let Some(e) = &s.error
        && matches!(s.state, StepState::Failed | StepState::NotApproved)
    {
        parts.push(if e.cause.is_empty() {
            e.error.clone()
        } else {
            format!("{}: {}", e.error, e.cause)
        });
    }
    if let Some(d) = s.decision() {
        let verb = if d.kind == ApprovalKind::Approved {
            "approved"
        } else {
            "rejected"
        };
        parts.push(format!(
            "{verb} by {}{}",
            d.actor,
            quoted_reason(d.reason.as_deref())
        ));
    }
    parts.join("  ")
}

/// The report as text.
pub fn render(r: &IncidentReport, out: &mut impl Write) -> std::io::Result<()> {
    let playbook = r
        .playbook
        .as_deref()
        .map(|p| format!("  playbook {p}"))
        .unwrap_or_default();
    writeln!(
        out,
        "Incident {} {}  severity {}{playbook}",
        r.incident_id,
        r.status.as_str().to_uppercase(),
        r.severity.as_str()
    )?;
    writeln!(
        out,
        "Resource {} {}  account {}   findings {} (deliveries {})  last seen {}",
        r.resource.kind,
        r.resource.id,
        r.resource.account,
        r.finding_count,
        r.occurrences,
        stamp(r.last_seen)
    )?;
    let t = &r.timeline.stamps;
    let mut line = format!("Detected {}", stamp(t.detected_at));
    let since = |at: Option<OffsetDateTime>| at.map(|at| human_duration(at - t.detected_at));
    for (what, at) in [
        ("triaged", t.triaged_at),
        ("contained", t.contained_at),
        ("resolved", t.resolved_at),
    ] {
        if let Some(d) = since(at) {
            line.push_str(&format!("  {what} +{d}"));
        }
    }
    let mut metrics: Vec<String> = t
        .mttd()
        .map(|d| format!("MTTD {}", human_duration(d)))
        .into_iter()
        .collect();
    metrics.push(match t.mttc() {
        Some(d) => format!("MTTC {}", human_duration(d)),
        None => "MTTC - (not contained)".to_owned(),
    });
    line.push_str(&format!("   {}", metrics.join("  ")));
    writeln!(out, "{line}")?;
    if let Some(e) = &r.last_error {
        writeln!(out, "Last error: {}: {}", e.step, e.message)?;
    }
    match &r.decision {
        Some(d) => {
            let forced = if d.samples_only {
                ", forced: generated sample findings"
            } else {
                ""
            };
            writeln!(
                out,
                "Triage: score {:.3} ({}), findings {} -> incident {}; SLA {} (respond by {})",
                d.score,
                d.score_severity.as_str(),
                d.finding_severity.as_str(),
                d.severity.as_str(),
                d.sla,
                stamp(d.respond_by)
            )?;
            writeln!(
                out,
                "Playbook {} (trigger `{}`), {}{forced}:",
                d.playbook,
                d.trigger,
                d.mode.as_str()
            )?;
            for (n, s) in d.steps.iter().enumerate() {
                let (kind, gate) = crate::step_marks(s.destructive, s.requires_approval);
                writeln!(
                    out,
                    "  {}. {} ({}, {kind}, {}) on {}{gate}",
                    n + 1,
                    s.id,
                    s.action,
                    s.mode.as_str(),
                    s.target
                )?;
            }
            for s in &d.not_applicable {
                writeln!(out, "  -  {} not applicable: {}", s.id, s.reason)?;
            }
        }
        None => writeln!(out, "Triage: not triaged yet")?,
    }

    writeln!(out, "Steps:")?;
    if r.steps.is_empty() {
        writeln!(out, "  none recorded")?;
    }
    let width = r.steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    for s in &r.steps {
        let summary = step_summary(s);
        let line = format!("  {:<width$}  {:<17} {summary}", s.step, s.state.as_str());
        writeln!(out, "{}", line.trim_end())?;
        if let Some(res) = &s.result {
            for c in &res.changes {
                writeln!(
                    out,
                    "    {}",
                    change_line(&c.target, &c.attribute, &c.before, &c.after, c.status)
                )?;
            }
            for n in &res.notes {
                writeln!(out, "    note: {n}")?;
            }
        }
        for a in &s.approvals {
            writeln!(out, "    {}", approval_line(a))?;
        }
    }
    if let Some(f) = &r.finished {
        if f.contained {
            writeln!(
                out,
                "Playbook {} finished {}: contained (applied: {})",
                f.playbook,
                stamp(f.at),
                f.destructive_applied.join(", ")
            )?;
        } else {
            writeln!(
                out,
                "Playbook {} finished {}: not contained: {}",
                f.playbook,
                stamp(f.at),
                f.why.as_deref().unwrap_or("no reason recorded")
            )?;
        }
        if !f.not_applied.is_empty() {
            writeln!(out, "  not applied: {}", f.not_applied.join(", "))?;
        }
    }

    for m in &r.evidence {
        writeln!(
            out,
            "Evidence manifest {} version {} ({} objects, step {}):",
            m.uri(),
            m.version_id,
            m.objects.len(),
            m.step
        )?;
        if let Some(e) = &m.error {
            writeln!(out, "  PROBLEM: {e}")?;
        }
        for o in &m.objects {
            writeln!(
                out,
                "  {}  version {}  sha256 {}  {} bytes",
                o.object.key, o.object.version_id, o.object.sha256, o.object.size
            )?;
        }
    }
    for n in &r.notes {
        writeln!(out, "Note: {n}")?;
    }
    if let Some(e) = &r.audit.read_error {
        writeln!(out, "Audit chain unreadable: {e}")?;
    }
    match &r.audit.verification {
        Verification::Verified(v) => writeln!(out, "Audit: {}", crate::audit::summary(v)),
        Verification::Failed { message, .. } => {
            writeln!(out, "Audit: NOT VERIFIED: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::Severity;
    use ir_core::action::{Change, ChangeStatus, EvidenceObject, Outcome};
    use ir_core::audit::Verified;
    use ir_core::config::Mode;
    use ir_core::incident::{Status, Timeline};
    use ir_incident::report::{
        AuditReport, EvidenceArtifacts, EvidenceItem, ManifestReport, PlaybookEnd, ResourceRef,
        StepResult, TimelineReport, UpdateSections,
    };
    use serde_json::json;
    use time::macros::datetime;

    const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/alice";

    fn report() -> IncidentReport {
        let at = datetime!(2026-11-20 10:05:03 UTC);
        let manifest_key = "incidents/inc-0123456789abcdef0123/manifests/collect-evidence.json";
        let result = |function: &str, changes: Vec<Change>, artifacts| StepResult {
            seq: 3,
            at,
            function: function.to_owned(),
            outcome: Outcome::Applied,
            mode: Mode::Enforce,
            changes,
            record: true,
            artifacts,
            notes: vec![],
            aws_calls: 5,
        };
        IncidentReport {
            incident_id: "inc-0123456789abcdef0123".into(),
            status: Status::Contained,
            severity: Severity::Critical,
            playbook: Some("immediate-isolation".into()),
            resource: ResourceRef {
                kind: "ec2-instance".into(),
                id: "i-0abc".into(),
                account: "123456789012".into(),
                key: "123456789012/ec2-instance/i-0abc".into(),
            },
            finding_count: 1,
            occurrences: 2,
            finding_ids: vec!["f1".into()],
            last_seen: datetime!(2026-11-20 10:02 UTC),
            last_error: None,
            timeline: TimelineReport::new(Timeline {
                first_seen: Some(datetime!(2026-11-20 10:00 UTC)),
                detected_at: datetime!(2026-11-20 10:01:02 UTC),
                triaged_at: Some(datetime!(2026-11-20 10:01:02.4 UTC)),
                contained_at: Some(datetime!(2026-11-20 10:01:05.1 UTC)),
                resolved_at: None,
            }),
            decision: None,
            steps: vec![
                StepReport {
                    step: "collect-evidence".into(),
                    state: StepState::Applied,
                    result: Some(result(
                        "ir-collect-evidence",
                        vec![],
                        Some(StepArtifacts::Evidence(EvidenceArtifacts {
                            bucket: "ev".into(),
                            manifest_key: manifest_key.into(),
                            manifest_version_id: "v1".into(),
                            objects: 1,
                        })),
                    )),
                    error: None,
                    approvals: vec![],
                },
                StepReport {
                    step: "isolate-instance".into(),
                    state: StepState::Applied,
                    result: Some(result(
                        "ir-isolate-instance",
                        vec![Change {
                            target: "eni-0abc".into(),
                            attribute: "security-groups".into(),
                            before: json!(["sg-a", "sg-b"]),
                            after: json!(["sg-iso"]),
                            status: ChangeStatus::Applied,
                        }],
                        None,
                    )),
                    error: None,
                    approvals: vec![ApprovalEvent {
                        seq: 2,
                        at,
                        kind: ApprovalKind::Approved,
                        actor: ALICE.into(),
                        level: Some(0),
                        role: None,
                        timeout_seconds: None,
                        reason: Some("miner confirmed".into()),
                        why: None,
                    }],
                },
                StepReport {
                    step: "notify-channel".into(),
                    state: StepState::NotRun,
                    result: None,
                    error: None,
                    approvals: vec![],
                },
            ],
            finished: Some(PlaybookEnd {
                seq: 4,
                at,
                playbook: "immediate-isolation".into(),
                contained: true,
                why: None,
                destructive_applied: vec!["isolate-instance".into()],
                not_applied: vec![],
            }),
            evidence: vec![ManifestReport {
                step: "collect-evidence".into(),
                bucket: "ev".into(),
                key: manifest_key.into(),
                version_id: "v1".into(),
                object_lock: None,
                objects: vec![EvidenceItem::new(
                    EvidenceObject {
                        key: "incidents/inc-0123456789abcdef0123/finding/f1.json".into(),
                        version_id: "v0".into(),
                        sha256: "ab".repeat(32),
                        size: 42,
                        collected_at: at,
                        collected_by:
                            "arn:aws:sts::123456789012:assumed-role/ir-collect-evidence/x".into(),
                        source: None,
                    },
                    None,
                )],
                error: None,
            }],
            audit: AuditReport {
                records_read: 5,
                read_error: None,
                verification: Verification::Verified(Verified {
                    records: 5,
                    head: "cd".repeat(32),
                    anchors_checked: 1,
                    unanchored: 0,
                    unanchored_from: None,
                }),
            },
            notes: vec![],
            update: UpdateSections {
                status: "Contained".into(),
                severity: "Critical".into(),
                time_detected: datetime!(2026-11-20 10:01:02 UTC),
                time_contained: Some(datetime!(2026-11-20 10:01:05.1 UTC)),
                deadlines: vec![],
                summary: "Critical severity incident.".into(),
                scope: vec![],
                actions_taken: vec![],
                next_steps: vec![],
                dry_run: false,
            },
            review: None,
        }
    }

    #[test]
    fn the_text_report_reads_top_down() {
        let r = report();
        let mut out = Vec::new();
        render(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Incident inc-0123456789abcdef0123 CONTAINED  severity critical  playbook immediate-isolation"
        );
        assert_eq!(
            lines[2],
            "Detected 2026-11-20T10:01:02Z  triaged +0.4s  contained +3.1s   MTTD 1m2s  MTTC 3.1s"
        );
        assert!(
            text.contains(
                "  collect-evidence  applied           enforce  1 objects, manifest s3://ev/incidents/inc-0123456789abcdef0123/manifests/collect-evidence.json\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "  isolate-instance  applied           enforce  approved by {ALICE} (\"miner confirmed\")\n    eni-0abc: security-groups [sg-a, sg-b] -> [sg-iso] (applied)\n"
            )),
            "{text}"
        );
        assert!(text.contains("  notify-channel    not-run\n"), "{text}");
        assert!(text.contains("Playbook immediate-isolation finished 2026-11-20T10:05:03Z: contained (applied: isolate-instance)"), "{text}");
        assert!(text.contains(&format!(
            "  incidents/inc-0123456789abcdef0123/finding/f1.json  version v0  sha256 {}  42 bytes",
            "ab".repeat(32)
        )), "{text}");
        assert_eq!(
            lines.last().copied(),
            Some(
                format!(
                    "Audit: 5 records, head {}, 1 anchors verified, all anchored",
                    "cd".repeat(32)
                )
                .as_str()
            )
        );
        assert!(r.problems().is_empty());
    }

    #[test]
    fn a_broken_chain_is_printed_and_is_a_problem() {
        let mut r = report();
        r.audit.verification = Verification::Failed {
            name: ir_core::ErrorName::VerificationFailed,
            message: "the audit chain of inc-0123456789abcdef0123 does not verify: record 2 does not match its hash (edited)".into(),
        };
        let mut out = Vec::new();
        render(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("Audit: NOT VERIFIED: the audit chain of inc-0123456789abcdef0123 does not verify: record 2 does not match its hash (edited)\n"),
            "{text}"
        );
        assert_eq!(r.problems().len(), 1);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["audit"]["verification"]["verified"], false);
        assert_eq!(
            v["steps"][1]["result"]["changes"][0]["after"],
            json!(["sg-iso"])
        );
        assert_eq!(v["timeline"]["mttcSeconds"], 3.1);
    }
}
