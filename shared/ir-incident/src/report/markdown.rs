//! The report as Markdown (`ir report --format md`): seed 000's incident update first (Status,
//! Severity, Time detected, Time contained, Summary, Scope, Actions Taken, Next Steps, with the
//! sections [`crate::notify::chat_update`] builds for notifications), then what an investigator
//! needs: the timeline with MTTD and MTTC, the triage decision, every step (changes before →
//! after, approvals with who and when, failures), the evidence (bucket/key, version, SHA-256,
//! retain-until), the audit chain's verification, then the post-incident review.
//!
//! Invariant: every value from a record is passed through [`text`] (or [`cell`] in a table), so
//! a finding title, a tag or a resource id cannot open a tag, a link, an emphasis, a code span
//! or a table cell: `<` `>` `&` become entities, `\ ` * _ [ ] | ~` are backslash-escaped, and
//! line breaks become spaces (a value never starts a line, so line-start markup cannot arise). The review's sections are the responders' own Markdown and are
//! kept as written, with raw HTML neutralized (`<` as `&lt;`). The output is a pure function of
//! the report and `now` (the generation time and which action items are overdue).

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::format::{clock, offset, seconds, value_text};
use super::timeline::{self, SpanKind};
use super::{ApprovalEvent, ApprovalKind, IncidentReport, StepArtifacts, StepReport, Verification};
use ir_chat::update::human_time;
use ir_core::review::Review;

/// `value` as literal Markdown text: nothing in it is markup.
pub fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: [`text`], `-` when empty.
fn cell(value: &str) -> String {
    if value.trim().is_empty() {
        "-".to_owned()
    } else {
        text(value)
    }
}

/// The responders' own Markdown (a review section), with raw HTML neutralized.
fn authored(value: &str) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return "_Not written yet._\n".to_owned();
    }
    let mut out = trimmed.replace('&', "&amp;").replace('<', "&lt;");
    out.push('\n');
    out
}

/// Writes a line to a `String` (which cannot fail).
macro_rules! line {
    ($out:expr) => { $out.push('\n') };
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// The report as Markdown, generated at `now`.
pub fn render(r: &IncidentReport, now: OffsetDateTime) -> String {
    let mut out = String::new();
    update(&mut out, r);
    line!(out);
    line!(out, "---");
    line!(out);
    line!(out, "## Investigation Detail: {}", text(&r.incident_id));
    line!(
        out,
        "Generated {} from the incident's record, its audit chain and its evidence manifests.",
        human_time(now)
    );
    line!(out);
    identity(&mut out, r);
    timeline_section(&mut out, r);
    decision(&mut out, r);
    steps(&mut out, r);
    evidence(&mut out, r);
    audit(&mut out, r);
    review(&mut out, r.review.as_ref(), now);
    out
}

/// Seed 000's incident update.
fn update(out: &mut String, r: &IncidentReport) {
    let u = &r.update;
    line!(out, "## Incident Update: {}", text(&r.incident_id));
    if u.dry_run {
        line!(
            out,
            "**{}** The playbook ran in dry-run: nothing was changed.",
            text(ir_chat::update::DRY_RUN_MARK)
        );
    }
    line!(out, "**Status:** {}  ", text(&u.status));
    line!(out, "**Severity:** {}  ", text(&u.severity));
    line!(out, "**Time detected:** {}  ", human_time(u.time_detected));
    line!(
        out,
        "**Time contained:** {}{}",
        u.time_contained
            .map_or_else(|| "not contained yet".to_owned(), human_time),
        if u.deadlines.is_empty() { "" } else { "  " }
    );
    for (i, d) in u.deadlines.iter().enumerate() {
        let end = if i + 1 < u.deadlines.len() { "  " } else { "" };
        line!(out, "**Regulatory deadline:** {}{end}", text(d));
    }
    line!(out, "### Summary");
    line!(out, "{}", text(&u.summary));
    line!(out, "### Scope");
    for s in &u.scope {
        line!(out, "- {}", text(s));
    }
    line!(out, "### Actions Taken");
    if u.actions_taken.is_empty() {
        line!(out, "- None yet.");
    }
    for (i, a) in u.actions_taken.iter().enumerate() {
        line!(out, "{}. {}", i + 1, text(a));
    }
    line!(out, "### Next Steps");
    for s in &u.next_steps {
        line!(out, "- {}", text(s));
    }
}

fn identity(out: &mut String, r: &IncidentReport) {
    line!(
        out,
        "- **Resource:** {} {} (account {})",
        text(&r.resource.kind),
        text(&r.resource.id),
        text(&r.resource.account)
    );
    line!(
        out,
        "- **Findings:** {} ({} deliveries), last seen {}",
        r.finding_count,
        r.occurrences,
        human_time(r.last_seen)
    );
    if !r.finding_ids.is_empty() {
        line!(
            out,
            "- **Finding ids:** {}",
            r.finding_ids
                .iter()
                .map(|f| text(f))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(e) = &r.last_error {
        line!(
            out,
            "- **Last error:** {}: {}",
            text(&e.step),
            text(&e.message)
        );
    }
    line!(out);
}

fn timeline_section(out: &mut String, r: &IncidentReport) {
    line!(out, "### Timeline");
    let metrics: Vec<String> = timeline::spans(r)
        .iter()
        .map(|s| {
            let what = match s.kind {
                SpanKind::Mttd => "first activity → detection",
                SpanKind::Mttc => "detection → containment",
            };
            match s.seconds {
                Some(v) => format!("**{}** {} ({what})", s.kind.as_str(), seconds(v)),
                None => format!("**{}** {}", s.kind.as_str(), text(&s.value())),
            }
        })
        .collect();
    line!(out, "{}", metrics.join(" · "));
    line!(out);
    line!(out, "| Time (UTC) | Since detection | Event | Who |");
    line!(out, "|---|---|---|---|");
    let origin = r.timeline.stamps.detected_at;
    for m in timeline::marks(r) {
        line!(
            out,
            "| {} | {} | {} | {} |",
            clock(m.at),
            offset(m.at, origin),
            cell(&m.text),
            cell(m.who.as_deref().unwrap_or(""))
        );
    }
    line!(out);
}

fn decision(out: &mut String, r: &IncidentReport) {
    line!(out, "### Triage Decision");
    let Some(d) = &r.decision else {
        line!(out, "Not triaged yet.");
        line!(out);
        return;
    };
    line!(
        out,
        "- **Score:** {:.3} ({} by score); findings {} → incident **{}**",
        d.score,
        d.score_severity.as_str(),
        d.finding_severity.as_str(),
        d.severity.as_str()
    );
    line!(
        out,
        "- **Playbook:** {} (trigger {}), {}{}",
        text(&d.playbook),
        text(&d.trigger),
        d.mode.as_str(),
        if d.samples_only {
            ", forced to dry-run: every finding is a generated sample"
        } else {
            ""
        }
    );
    line!(
        out,
        "- **Response SLA:** {} (respond by {})",
        text(&d.sla),
        human_time(d.respond_by)
    );
    line!(out);
    line!(
        out,
        "| # | Step | Action | Target | Mode | Destructive | Approval |"
    );
    line!(out, "|---|---|---|---|---|---|---|");
    for (i, s) in d.steps.iter().enumerate() {
        line!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(&s.id),
            cell(&s.action),
            cell(&s.target),
            s.mode.as_str(),
            if s.destructive { "yes" } else { "no" },
            if s.requires_approval { "required" } else { "-" }
        );
    }
    if !d.not_applicable.is_empty() {
        line!(out);
    }
    for s in &d.not_applicable {
        line!(out, "- {} not applicable: {}", text(&s.id), text(&s.reason));
    }
    line!(out);
}

fn approval_line(a: &ApprovalEvent) -> String {
    let reason = a
        .reason
        .as_deref()
        .map(|r| format!(" (\u{201c}{}\u{201d})", text(r)))
        .unwrap_or_default();
    let when = format!("{} UTC", clock(a.at));
    match a.kind {
        ApprovalKind::Requested => {
            let mut asked = Vec::new();
            asked.extend(a.role.as_deref().map(text));
            asked.extend(a.level.map(|l| format!("level {l}")));
            asked.extend(
                a.timeout_seconds
                    .map(|t| format!("{} window", seconds(t as f64))),
            );
            format!(
                "{when}: approval asked ({}) by {}",
                asked.join(", "),
                text(&a.actor)
            )
        }
        ApprovalKind::Counted => format!(
            "{when}: **approved** by {}{reason}: {}",
            text(&a.actor),
            text(a.why.as_deref().unwrap_or("more approvals needed"))
        ),
        ApprovalKind::Approved => format!("{when}: **approved** by {}{reason}", text(&a.actor)),
        ApprovalKind::Rejected => format!("{when}: **rejected** by {}{reason}", text(&a.actor)),
        ApprovalKind::Refused => format!(
            "{when}: decision by {} refused: {}",
            text(&a.actor),
            text(a.why.as_deref().unwrap_or("no reason recorded"))
        ),
        ApprovalKind::NotDelivered => format!(
            "{when}: decided by {} but not delivered to the waiting execution: {}",
            text(&a.actor),
            text(a.why.as_deref().unwrap_or("no reason recorded"))
        ),
    }
}

fn step(out: &mut String, n: usize, s: &StepReport) {
    line!(out, "#### {}. {}: {}", n, text(&s.step), s.state.as_str());
    if let Some(res) = &s.result {
        line!(
            out,
            "- **Result:** {} ({}), recorded {} UTC (audit record {}), {} AWS calls{}",
            text(&res.function),
            res.mode.as_str(),
            clock(res.at),
            res.seq,
            res.aws_calls,
            if res.record { ", kept for release" } else { "" }
        );
        match &res.artifacts {
            Some(StepArtifacts::Evidence(e)) => line!(
                out,
                "- **Evidence:** {} objects, manifest s3://{}/{} version {}",
                e.objects,
                text(&e.bucket),
                text(&e.manifest_key),
                text(&e.manifest_version_id)
            ),
            Some(StepArtifacts::Snapshots(x)) => line!(
                out,
                "- **Snapshots:** {}",
                x.snapshots
                    .iter()
                    .map(|s| format!("{} of {}", text(&s.snapshot_id), text(&s.volume_id)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => {}
        }
    }
    if let Some(e) = &s.error {
        let what = match e.kind {
            super::FailureKind::NotApproved => "Not approved",
            super::FailureKind::Failed | super::FailureKind::TriageFailed => "Failed",
        };
        line!(
            out,
            "- **{what}:** {} UTC (audit record {}): {}{}",
            clock(e.at),
            e.seq,
            text(&e.error),
            if e.cause.is_empty() {
                String::new()
            } else {
                format!(": {}", text(&e.cause))
            }
        );
    }
    if !s.approvals.is_empty() {
        line!(out, "- **Approvals:**");
        for a in &s.approvals {
            line!(out, "  - {}", approval_line(a));
        }
    }
    if let Some(res) = &s.result {
        for note in &res.notes {
            line!(out, "- Note: {}", text(note));
        }
        if !res.changes.is_empty() {
            line!(out);
            line!(out, "| Target | Attribute | Before | After | Status |");
            line!(out, "|---|---|---|---|---|");
            for c in &res.changes {
                let status = serde_json::to_value(c.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                line!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    cell(&c.target),
                    cell(&c.attribute),
                    cell(&value_text(&c.before)),
                    cell(&value_text(&c.after)),
                    cell(&status)
                );
            }
        }
    }
    if s.result.is_none() && s.error.is_none() && s.approvals.is_empty() {
        line!(out, "- Nothing recorded yet.");
    }
    line!(out);
}

fn steps(out: &mut String, r: &IncidentReport) {
    line!(out, "### Steps");
    if r.steps.is_empty() {
        line!(out, "None recorded.");
        line!(out);
    }
    for (i, s) in r.steps.iter().enumerate() {
        step(out, i + 1, s);
    }
    if let Some(f) = &r.finished {
        if f.contained {
            line!(
                out,
                "**Playbook {} finished** {} UTC: contained (applied: {}).",
                text(&f.playbook),
                clock(f.at),
                text(&f.destructive_applied.join(", "))
            );
        } else {
            line!(
                out,
                "**Playbook {} finished** {} UTC: not contained: {}.",
                text(&f.playbook),
                clock(f.at),
                text(f.why.as_deref().unwrap_or("no reason recorded"))
            );
        }
        if !f.not_applied.is_empty() {
            line!(out, "Not applied: {}.", text(&f.not_applied.join(", ")));
        }
        line!(out);
    }
}

fn evidence(out: &mut String, r: &IncidentReport) {
    line!(out, "### Evidence");
    if r.evidence.is_empty() {
        line!(out, "No evidence manifest recorded.");
        line!(out);
    }
    for m in &r.evidence {
        line!(out, "#### s3://{}/{}", text(&m.bucket), text(&m.key));
        line!(
            out,
            "- Manifest version {}, written by step {}; {} objects",
            text(&m.version_id),
            text(&m.step),
            m.objects.len()
        );
        if let Some(lock) = &m.object_lock {
            line!(
                out,
                "- Object Lock {}, {} days",
                text(&lock.mode),
                lock.retention_days
            );
        }
        if let Some(e) = &m.error {
            line!(out, "- **PROBLEM:** {}", text(e));
        }
        if !m.objects.is_empty() {
            line!(out);
            line!(
                out,
                "| Key | Version | SHA-256 | Bytes | Collected (UTC) | Retain until (UTC) |"
            );
            line!(out, "|---|---|---|---|---|---|");
            for o in &m.objects {
                line!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    cell(&o.object.key),
                    cell(&o.object.version_id),
                    cell(&o.object.sha256),
                    o.object.size,
                    clock(o.object.collected_at),
                    o.retain_until.map_or_else(|| "-".to_owned(), clock)
                );
            }
        }
        line!(out);
    }
}

fn audit(out: &mut String, r: &IncidentReport) {
    line!(out, "### Audit Chain");
    line!(out, "- Records read: {}", r.audit.records_read);
    if let Some(e) = &r.audit.read_error {
        line!(out, "- **Unreadable:** {}", text(e));
    }
    match &r.audit.verification {
        Verification::Verified(v) => {
            line!(
                out,
                "- **Verified:** {} records, head {}, {} anchors verified",
                v.records,
                text(&v.head),
                v.anchors_checked
            );
            match v.unanchored_from {
                Some(from) if v.unanchored > 0 => line!(
                    out,
                    "- Unanchored tail: {} records from seq {}",
                    v.unanchored,
                    from
                ),
                _ => line!(out, "- Every record is anchored."),
            }
        }
        Verification::Failed { name, message } => {
            line!(
                out,
                "- **NOT VERIFIED** ({}): {}",
                name.as_str(),
                text(message)
            );
        }
    }
    for n in &r.notes {
        line!(out, "- Note: {}", text(n));
    }
    let problems = r.problems();
    if !problems.is_empty() {
        line!(out);
        line!(out, "**Problems with this report:**");
        for p in &problems {
            line!(out, "- {}", text(p));
        }
    }
    line!(out);
}

fn review(out: &mut String, review: Option<&Review>, now: OffsetDateTime) {
    line!(out, "## Post-Incident Review");
    let Some(rv) = review else {
        line!(out, "Review not held yet.");
        return;
    };
    line!(out, "**Review date:** {}  ", rv.review_date);
    line!(
        out,
        "**Opened:** {} by {}  ",
        human_time(rv.opened_at),
        text(&rv.opened_by)
    );
    match (rv.closed_at, &rv.closed_by) {
        (Some(at), by) => line!(
            out,
            "**Closed:** {}{}",
            human_time(at),
            by.as_deref()
                .map(|b| format!(" by {}", text(b)))
                .unwrap_or_default()
        ),
        (None, _) => line!(out, "**Closed:** not yet"),
    }
    let s = &rv.sections;
    for (title, body) in [
        ("Timeline Reconstruction", &s.timeline),
        ("Detection Analysis", &s.detection),
        ("Response Evaluation", &s.response),
        ("Root Cause", &s.root_cause),
    ] {
        line!(out, "### {title}");
        out.push_str(&authored(body));
    }
    line!(out, "### Action Items");
    if rv.items.is_empty() {
        line!(out, "None recorded.");
        return;
    }
    let today = now.to_offset(time::UtcOffset::UTC).date();
    line!(out, "| ID | Title | Owner | Due | Status | Jira |");
    line!(out, "|---|---|---|---|---|---|");
    for i in &rv.items {
        let status = if i.is_overdue(today) {
            format!(
                "**{} (overdue by {} days)**",
                i.status.as_str(),
                (today - i.due).whole_days()
            )
        } else {
            i.status.as_str().to_owned()
        };
        line!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&i.id),
            cell(&i.title),
            cell(&i.owner),
            i.due,
            status,
            cell(i.jira_key.as_deref().unwrap_or(""))
        );
    }
    let resolutions: Vec<_> = rv
        .items
        .iter()
        .filter_map(|i| i.resolution.as_deref().map(|r| (i, r)))
        .collect();
    if !resolutions.is_empty() {
        line!(out);
        for (i, r) in resolutions {
            line!(
                out,
                "- {} {}{}: {}",
                text(&i.id),
                i.status.as_str(),
                i.closed_at
                    .map(|at| format!(" {}", human_time(at)))
                    .unwrap_or_default(),
                text(r)
            );
        }
    }
}
