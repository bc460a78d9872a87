//! The report as one self-contained HTML page (`ir report --format html`, and the copy stored
//! in the evidence bucket at resolution): the same sections as [`super::markdown`], with the SVG
//! [`super::timeline`] inline.
//!
//! Invariants: one file, no external URL, no script, inline CSS only, and a
//! `Content-Security-Policy` that forbids scripts and every fetch (`default-src 'none'`), so a
//! value that escaped escaping still could not run or call out; every value from a record goes
//! through [`esc`] (`&`, `<`, `>`, `"`, `'` as entities) before it is written, in text and in
//! attributes alike (finding titles, tags, resource ids, reasons are attacker-controlled). The
//! output is a pure function of the report and `now`.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::format::{clock, offset, seconds, value_text};
use super::timeline::{self, SpanKind};
use super::{
    ApprovalEvent, ApprovalKind, FailureKind, IncidentReport, StepArtifacts, StepReport, StepState,
    Verification,
};
use ir_chat::update::human_time;
use ir_core::review::Review;

/// `value` escaped for HTML text and quoted attribute values.
pub fn esc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #102a43;
  margin: 0; background: #f0f4f8; }
main { max-width: 1240px; margin: 0 auto; padding: 24px; }
header.banner { background: #102a43; color: #fff; padding: 18px 24px; }
header.banner h1 { margin: 0 0 6px 0; font-size: 22px; }
header.banner .sub { color: #bcccdc; font-size: 13px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin: 16px 0;
  box-shadow: 0 1px 2px rgba(16,42,67,.12); overflow-x: auto; }
h2 { font-size: 18px; margin: 0 0 10px 0; }
h3 { font-size: 15px; margin: 16px 0 6px 0; }
h4 { font-size: 14px; margin: 14px 0 6px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 6px 0; }
th, td { text-align: left; border-bottom: 1px solid #d9e2ec; padding: 4px 8px; vertical-align: top; }
th { background: #f0f4f8; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
  overflow-wrap: anywhere; }
.badge { display: inline-block; border-radius: 10px; padding: 1px 9px; font-size: 12px;
  font-weight: 600; color: #fff; background: #627d98; }
.state-applied, .state-already-in-place, .ok { background: #2f855a; }
.state-planned { background: #3182ce; }
.state-failed, .bad { background: #c53030; }
.state-not-approved, .state-rejected { background: #dd6b20; }
.state-awaiting-approval, .state-approved { background: #6b46c1; }
.sev-critical { background: #9b2c2c; } .sev-high { background: #c05621; }
.sev-medium { background: #b7791f; } .sev-low { background: #2c7a7b; }
.metrics { font-size: 15px; margin: 4px 0 10px 0; }
.metrics b { margin-right: 4px; }
.problem { color: #c53030; font-weight: 600; }
.authored { white-space: pre-wrap; background: #f8fafc; border-left: 3px solid #9fb3c8;
  padding: 8px 12px; margin: 4px 0; }
.dry-run { background: #fefcbf; border: 1px solid #d69e2e; padding: 6px 10px; border-radius: 6px; }
ol, ul { margin: 4px 0; padding-left: 22px; }
.overdue { color: #c53030; font-weight: 600; }
#timeline { display: block; max-width: 100%; height: auto; }
";

/// Writes to a `String` (which cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", esc(class), esc(text))
}

/// The report as one HTML page, generated at `now`.
pub fn render(r: &IncidentReport, now: OffsetDateTime) -> String {
    let mut out = String::new();
    put!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Incident report {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&r.incident_id)
    );
    put!(
        out,
        "<header class=\"banner\"><h1>Incident report {}</h1><div class=\"sub\">Generated {} \
         from the incident's record, its audit chain and its evidence manifests.</div></header>\n<main>\n",
        esc(&r.incident_id),
        esc(&human_time(now))
    );
    update(&mut out, r);
    timeline_section(&mut out, r);
    decision(&mut out, r);
    steps(&mut out, r);
    evidence(&mut out, r);
    audit(&mut out, r);
    review(&mut out, r.review.as_ref(), now);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn update(out: &mut String, r: &IncidentReport) {
    let u = &r.update;
    put!(
        out,
        "<section id=\"update\">\n<h2>Incident Update: {}</h2>\n",
        esc(&r.incident_id)
    );
    if u.dry_run {
        put!(
            out,
            "<p class=\"dry-run\">{} The playbook ran in dry-run: nothing was changed.</p>\n",
            esc(ir_chat::update::DRY_RUN_MARK)
        );
    }
    put!(
        out,
        "<dl class=\"facts\">\n<dt>Status</dt><dd>{}</dd>\n<dt>Severity</dt><dd>{}</dd>\n\
         <dt>Time detected</dt><dd>{}</dd>\n<dt>Time contained</dt><dd>{}</dd>\n\
         <dt>Resource</dt><dd><code>{}</code> {} (account {})</dd>\n\
         <dt>Findings</dt><dd>{} ({} deliveries), last seen {}</dd>\n",
        esc(&u.status),
        badge(&format!("sev-{}", r.severity.as_str()), &u.severity),
        esc(&human_time(u.time_detected)),
        esc(&u
            .time_contained
            .map_or_else(|| "not contained yet".to_owned(), human_time)),
        esc(&r.resource.id),
        esc(&r.resource.kind),
        esc(&r.resource.account),
        r.finding_count,
        r.occurrences,
        esc(&human_time(r.last_seen))
    );
    for d in &u.deadlines {
        put!(out, "<dt>Regulatory deadline</dt><dd>{}</dd>\n", esc(d));
    }
    if !r.finding_ids.is_empty() {
        put!(
            out,
            "<dt>Finding ids</dt><dd class=\"mono\">{}</dd>\n",
            r.finding_ids
                .iter()
                .map(|f| esc(f))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(e) = &r.last_error {
        put!(
            out,
            "<dt>Last error</dt><dd class=\"problem\">{}: {}</dd>\n",
            esc(&e.step),
            esc(&e.message)
        );
    }
    out.push_str("</dl>\n");
    put!(out, "<h3>Summary</h3>\n<p>{}</p>\n", esc(&u.summary));
    list(out, "Scope", "ul", &u.scope, "None.");
    list(out, "Actions Taken", "ol", &u.actions_taken, "None yet.");
    list(out, "Next Steps", "ul", &u.next_steps, "None.");
    out.push_str("</section>\n");
}

fn list(out: &mut String, title: &str, tag: &str, items: &[String], none: &str) {
    put!(out, "<h3>{}</h3>\n", esc(title));
    if items.is_empty() {
        put!(out, "<p>{}</p>\n", esc(none));
        return;
    }
    put!(out, "<{tag}>\n");
    for i in items {
        put!(out, "<li>{}</li>\n", esc(i));
    }
    put!(out, "</{tag}>\n");
}

fn timeline_section(out: &mut String, r: &IncidentReport) {
    out.push_str("<section id=\"timeline-section\">\n<h2>Timeline</h2>\n<p class=\"metrics\">");
    let spans = timeline::spans(r);
    let parts: Vec<String> = spans
        .iter()
        .map(|s| {
            let what = match s.kind {
                SpanKind::Mttd => "first activity → detection",
                SpanKind::Mttc => "detection → containment",
            };
            match s.seconds {
                Some(v) => format!(
                    "<b>{}</b>{} <small>({})</small>",
                    s.kind.as_str(),
                    esc(&seconds(v)),
                    esc(what)
                ),
                None => format!("<b>{}</b>{}", s.kind.as_str(), esc(&s.value())),
            }
        })
        .collect();
    out.push_str(&parts.join(" &middot; "));
    out.push_str("</p>\n");
    // The svg crate escapes every text node; attributes are this crate's numbers and names.
    out.push_str(&timeline::svg(r));
    out.push('\n');
    out.push_str(
        "<details><summary>The events as a table</summary>\n<table>\n\
         <tr><th>Time (UTC)</th><th>Since detection</th><th>Event</th><th>Who</th></tr>\n",
    );
    let origin = r.timeline.stamps.detected_at;
    for m in timeline::marks(r) {
        put!(
            out,
            "<tr class=\"event-{}\"><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>\n",
            m.kind.as_str(),
            esc(&clock(m.at)),
            esc(&offset(m.at, origin)),
            esc(&m.text),
            esc(m.who.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n</details>\n</section>\n");
}

fn decision(out: &mut String, r: &IncidentReport) {
    out.push_str("<section id=\"decision\">\n<h2>Triage Decision</h2>\n");
    let Some(d) = &r.decision else {
        out.push_str("<p>Not triaged yet.</p>\n</section>\n");
        return;
    };
    put!(
        out,
        "<dl class=\"facts\">\n<dt>Score</dt><dd>{:.3} ({} by score); findings {} → incident {}</dd>\n\
         <dt>Playbook</dt><dd><code>{}</code> (trigger <code>{}</code>), {}{}</dd>\n\
         <dt>Response SLA</dt><dd>{} (respond by {})</dd>\n</dl>\n",
        d.score,
        d.score_severity.as_str(),
        d.finding_severity.as_str(),
        badge(&format!("sev-{}", d.severity.as_str()), d.severity.as_str()),
        esc(&d.playbook),
        esc(&d.trigger),
        d.mode.as_str(),
        if d.samples_only {
            ", forced to dry-run: every finding is a generated sample"
        } else {
            ""
        },
        esc(&d.sla),
        esc(&human_time(d.respond_by))
    );
    out.push_str(
        "<table>\n<tr><th>#</th><th>Step</th><th>Action</th><th>Target</th><th>Mode</th>\
         <th>Destructive</th><th>Approval</th></tr>\n",
    );
    for (i, s) in d.steps.iter().enumerate() {
        put!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            i + 1,
            esc(&s.id),
            esc(&s.action),
            esc(&s.target),
            s.mode.as_str(),
            if s.destructive { "yes" } else { "no" },
            if s.requires_approval { "required" } else { "-" }
        );
    }
    out.push_str("</table>\n");
    if !d.not_applicable.is_empty() {
        out.push_str("<ul>\n");
        for s in &d.not_applicable {
            put!(
                out,
                "<li><code>{}</code> not applicable: {}</li>\n",
                esc(&s.id),
                esc(&s.reason)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn approval(a: &ApprovalEvent) -> String {
    let who = format!("<span class=\"mono\">{}</span>", esc(&a.actor));
    let reason = a
        .reason
        .as_deref()
        .map(|r| format!(" (&ldquo;{}&rdquo;)", esc(r)))
        .unwrap_or_default();
    let when = format!("<span class=\"mono\">{} UTC</span>", esc(&clock(a.at)));
    match a.kind {
        ApprovalKind::Requested => {
            let mut asked = Vec::new();
            asked.extend(a.role.as_deref().map(esc));
            asked.extend(a.level.map(|l| format!("level {l}")));
            asked.extend(
                a.timeout_seconds
                    .map(|t| format!("{} window", esc(&seconds(t as f64)))),
            );
            format!("{when} approval asked ({}) by {who}", asked.join(", "))
        }
        ApprovalKind::Counted => format!(
            "{when} <b>approved</b> by {who}{reason}: {}",
            esc(a.why.as_deref().unwrap_or("more approvals needed"))
        ),
        ApprovalKind::Approved => format!("{when} <b>approved</b> by {who}{reason}"),
        ApprovalKind::Rejected => format!("{when} <b>rejected</b> by {who}{reason}"),
        ApprovalKind::Refused => format!(
            "{when} decision by {who} refused: {}",
            esc(a.why.as_deref().unwrap_or("no reason recorded"))
        ),
        ApprovalKind::NotDelivered => format!(
            "{when} decided by {who} but not delivered to the waiting execution: {}",
            esc(a.why.as_deref().unwrap_or("no reason recorded"))
        ),
    }
}

fn step(out: &mut String, n: usize, s: &StepReport) {
    put!(
        out,
        "<h3>{}. <code>{}</code> {}</h3>\n<ul>\n",
        n,
        esc(&s.step),
        badge(&format!("state-{}", s.state.as_str()), s.state.as_str())
    );
    if let Some(res) = &s.result {
        put!(
            out,
            "<li>Result: <code>{}</code> ({}), recorded <span class=\"mono\">{} UTC</span> \
             (audit record {}), {} AWS calls{}</li>\n",
            esc(&res.function),
            res.mode.as_str(),
            esc(&clock(res.at)),
            res.seq,
            res.aws_calls,
            if res.record { ", kept for release" } else { "" }
        );
        match &res.artifacts {
            Some(StepArtifacts::Evidence(e)) => put!(
                out,
                "<li>Evidence: {} objects, manifest <code>s3://{}/{}</code> version <code>{}</code></li>\n",
                e.objects,
                esc(&e.bucket),
                esc(&e.manifest_key),
                esc(&e.manifest_version_id)
            ),
            Some(StepArtifacts::Snapshots(x)) => put!(
                out,
                "<li>Snapshots: {}</li>\n",
                x.snapshots
                    .iter()
                    .map(|s| format!(
                        "<code>{}</code> of <code>{}</code>",
                        esc(&s.snapshot_id),
                        esc(&s.volume_id)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => {}
        }
        for note in &res.notes {
            put!(out, "<li>Note: {}</li>\n", esc(note));
        }
    }
    if let Some(e) = &s.error {
        let what = match e.kind {
            FailureKind::NotApproved => "Not approved",
            FailureKind::Failed | FailureKind::TriageFailed => "Failed",
        };
        let class = if matches!(s.state, StepState::Failed | StepState::NotApproved) {
            "problem"
        } else {
            ""
        };
        put!(
            out,
            "<li class=\"{class}\">{what}: <span class=\"mono\">{} UTC</span> (audit record {}): {}{}</li>\n",
            esc(&clock(e.at)),
            e.seq,
            esc(&e.error),
            if e.cause.is_empty() {
                String::new()
            } else {
                format!(": {}", esc(&e.cause))
            }
        );
    }
    for a in &s.approvals {
        put!(out, "<li>{}</li>\n", approval(a));
    }
    if s.result.is_none() && s.error.is_none() && s.approvals.is_empty() {
        out.push_str("<li>Nothing recorded yet.</li>\n");
    }
    out.push_str("</ul>\n");
    if let Some(res) = s.result.as_ref().filter(|r| !r.changes.is_empty()) {
        out.push_str(
            "<table class=\"changes\">\n<tr><th>Target</th><th>Attribute</th><th>Before</th>\
             <th>After</th><th>Status</th></tr>\n",
        );
        for c in &res.changes {
            let status = serde_json::to_value(c.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            put!(
                out,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td></tr>\n",
                esc(&c.target),
                esc(&c.attribute),
                esc(&value_text(&c.before)),
                esc(&value_text(&c.after)),
                esc(&status)
            );
        }
        out.push_str("</table>\n");
    }
}

fn steps(out: &mut String, r: &IncidentReport) {
    out.push_str("<section id=\"steps\">\n<h2>Steps</h2>\n");
    if r.steps.is_empty() {
        out.push_str("<p>None recorded.</p>\n");
    }
    for (i, s) in r.steps.iter().enumerate() {
        step(out, i + 1, s);
    }
    if let Some(f) = &r.finished {
        if f.contained {
            put!(
                out,
                "<p><b>Playbook <code>{}</code> finished</b> {} UTC: contained (applied: {}).</p>\n",
                esc(&f.playbook),
                esc(&clock(f.at)),
                esc(&f.destructive_applied.join(", "))
            );
        } else {
            put!(
                out,
                "<p><b>Playbook <code>{}</code> finished</b> {} UTC: not contained: {}.</p>\n",
                esc(&f.playbook),
                esc(&clock(f.at)),
                esc(f.why.as_deref().unwrap_or("no reason recorded"))
            );
        }
        if !f.not_applied.is_empty() {
            put!(
                out,
                "<p>Not applied: {}.</p>\n",
                esc(&f.not_applied.join(", "))
            );
        }
    }
    out.push_str("</section>\n");
}

fn evidence(out: &mut String, r: &IncidentReport) {
    out.push_str("<section id=\"evidence\">\n<h2>Evidence</h2>\n");
    if r.evidence.is_empty() {
        out.push_str("<p>No evidence manifest recorded.</p>\n");
    }
    for m in &r.evidence {
        put!(
            out,
            "<h3><code>s3://{}/{}</code></h3>\n<p>Manifest version <code>{}</code>, written by step \
             <code>{}</code>; {} objects{}.</p>\n",
            esc(&m.bucket),
            esc(&m.key),
            esc(&m.version_id),
            esc(&m.step),
            m.objects.len(),
            m.object_lock
                .as_ref()
                .map(|l| format!("; Object Lock {}, {} days", esc(&l.mode), l.retention_days))
                .unwrap_or_default()
        );
        if let Some(e) = &m.error {
            put!(out, "<p class=\"problem\">PROBLEM: {}</p>\n", esc(e));
        }
        if m.objects.is_empty() {
            continue;
        }
        out.push_str(
            "<table>\n<tr><th>Key</th><th>Version</th><th>SHA-256</th><th>Bytes</th>\
             <th>Collected (UTC)</th><th>Retain until (UTC)</th></tr>\n",
        );
        for o in &m.objects {
            put!(
                out,
                "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>\n",
                esc(&o.object.key),
                esc(&o.object.version_id),
                esc(&o.object.sha256),
                o.object.size,
                esc(&clock(o.object.collected_at)),
                esc(&o.retain_until.map_or_else(|| "-".to_owned(), clock))
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

fn audit(out: &mut String, r: &IncidentReport) {
    out.push_str("<section id=\"audit\">\n<h2>Audit Chain</h2>\n<ul>\n");
    put!(out, "<li>Records read: {}</li>\n", r.audit.records_read);
    if let Some(e) = &r.audit.read_error {
        put!(out, "<li class=\"problem\">Unreadable: {}</li>\n", esc(e));
    }
    match &r.audit.verification {
        Verification::Verified(v) => {
            put!(
                out,
                "<li>{} {} records, head <code>{}</code>, {} anchors verified</li>\n",
                badge("ok", "verified"),
                v.records,
                esc(&v.head),
                v.anchors_checked
            );
            match v.unanchored_from {
                Some(from) if v.unanchored > 0 => put!(
                    out,
                    "<li>Unanchored tail: {} records from seq {}</li>\n",
                    v.unanchored,
                    from
                ),
                _ => out.push_str("<li>Every record is anchored.</li>\n"),
            }
        }
        Verification::Failed { name, message } => put!(
            out,
            "<li class=\"problem\">{} ({}): {}</li>\n",
            badge("bad", "NOT VERIFIED"),
            esc(name.as_str()),
            esc(message)
        ),
    }
    for n in &r.notes {
        put!(out, "<li>Note: {}</li>\n", esc(n));
    }
    out.push_str("</ul>\n");
    let problems = r.problems();
    if !problems.is_empty() {
        out.push_str("<h3 class=\"problem\">Problems with this report</h3>\n<ul>\n");
        for p in &problems {
            put!(out, "<li class=\"problem\">{}</li>\n", esc(p));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn review(out: &mut String, review: Option<&Review>, now: OffsetDateTime) {
    out.push_str("<section id=\"review\">\n<h2>Post-Incident Review</h2>\n");
    let Some(rv) = review else {
        out.push_str("<p>Review not held yet.</p>\n</section>\n");
        return;
    };
    put!(
        out,
        "<dl class=\"facts\">\n<dt>Review date</dt><dd>{}</dd>\n<dt>Opened</dt><dd>{} by \
         <span class=\"mono\">{}</span></dd>\n<dt>Closed</dt><dd>{}</dd>\n</dl>\n",
        esc(&rv.review_date.to_string()),
        esc(&human_time(rv.opened_at)),
        esc(&rv.opened_by),
        match (rv.closed_at, &rv.closed_by) {
            (Some(at), by) => format!(
                "{}{}",
                esc(&human_time(at)),
                by.as_deref()
                    .map(|b| format!(" by <span class=\"mono\">{}</span>", esc(b)))
                    .unwrap_or_default()
            ),
            (None, _) => "not yet".to_owned(),
        }
    );
    let s = &rv.sections;
    for (title, body) in [
        ("Timeline Reconstruction", &s.timeline),
        ("Detection Analysis", &s.detection),
        ("Response Evaluation", &s.response),
        ("Root Cause", &s.root_cause),
    ] {
        put!(out, "<h3>{title}</h3>\n");
        if body.trim().is_empty() {
            out.push_str("<p><i>Not written yet.</i></p>\n");
        } else {
            put!(out, "<div class=\"authored\">{}</div>\n", esc(body.trim()));
        }
    }
    out.push_str("<h3>Action Items</h3>\n");
    if rv.items.is_empty() {
        out.push_str("<p>None recorded.</p>\n</section>\n");
        return;
    }
    let today = now.to_offset(time::UtcOffset::UTC).date();
    out.push_str(
        "<table id=\"action-items\">\n<tr><th>ID</th><th>Title</th><th>Owner</th><th>Due</th>\
         <th>Status</th><th>Jira</th></tr>\n",
    );
    for i in &rv.items {
        let status = if i.is_overdue(today) {
            format!(
                "<span class=\"overdue\">{} (overdue by {} days)</span>",
                i.status.as_str(),
                (today - i.due).whole_days()
            )
        } else {
            i.status.as_str().to_owned()
        };
        let resolution = i
            .resolution
            .as_deref()
            .map(|r| format!("<br><small>{}</small>", esc(r)))
            .unwrap_or_default();
        put!(
            out,
            "<tr><td>{}</td><td>{}{resolution}</td><td>{}</td><td class=\"mono\">{}</td><td>{status}</td><td class=\"mono\">{}</td></tr>\n",
            esc(&i.id),
            esc(&i.title),
            esc(&i.owner),
            esc(&i.due.to_string()),
            esc(i.jira_key.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("</table>\n</section>\n");
}
