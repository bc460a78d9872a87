//! The incident's timeline: every stamp and audited event of the report as one ordered list of
//! marks (first activity, detection, triage, each approval asked and given with who and when,
//! each action applied, planned or failed, the playbook's end, containment, resolution) and the
//! two response metrics as spans (MTTD: first activity → detection; MTTC: detection →
//! containment), drawn as an SVG (`<svg id="timeline">`) with the `svg` crate.
//!
//! Invariants: the marks are in time order, ties kept in the order of the incident's life
//! (detection before triage before the steps…, then audit order), one row per mark, so two
//! events in the same second are two rows; a stamp that is missing (not contained yet, first
//! activity unknown) has no mark and its span says so; every text in the drawing is an SVG
//! text node (escaped by the `svg` crate), never an attribute: attributes hold only numbers and
//! this module's own class names.

use std::fmt::Write as _;

use svg::Document;
use svg::node::element::{Circle, Group, Line, Path, Rectangle, Text, Title};
use time::OffsetDateTime;

use super::format::{clock, cut, offset, one_line};
use super::{ApprovalKind, FailureKind, IncidentReport, StepState};
use ir_core::action::Outcome;

/// What a mark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    /// The first activity the finding reports.
    Activity,
    /// EventBridge received the finding.
    Detected,
    /// The triage decision was recorded.
    Triaged,
    ApprovalRequested,
    /// One person's approval, more needed.
    ApprovalCounted,
    Approved,
    Rejected,
    /// A decision refused (the two-person rule, not an approver…).
    ApprovalRefused,
    /// Decided, not delivered to the waiting execution.
    ApprovalNotDelivered,
    /// An action's changes made (enforce).
    Applied,
    /// An action's changes planned only (dry-run).
    Planned,
    /// An action found everything in place.
    AlreadyInPlace,
    /// An action failed.
    Failed,
    /// A step's gate ended without approval.
    NotApproved,
    /// The playbook ended.
    PlaybookEnd,
    Contained,
    Resolved,
}

impl MarkKind {
    /// The class name a mark of this kind carries in the SVG (`mark-<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            MarkKind::Activity => "activity",
            MarkKind::Detected => "detected",
            MarkKind::Triaged => "triaged",
            MarkKind::ApprovalRequested => "approval-requested",
            MarkKind::ApprovalCounted => "approval-counted",
            MarkKind::Approved => "approved",
            MarkKind::Rejected => "rejected",
            MarkKind::ApprovalRefused => "approval-refused",
            MarkKind::ApprovalNotDelivered => "approval-not-delivered",
            MarkKind::Applied => "applied",
            MarkKind::Planned => "planned",
            MarkKind::AlreadyInPlace => "already-in-place",
            MarkKind::Failed => "failed",
            MarkKind::NotApproved => "not-approved",
            MarkKind::PlaybookEnd => "playbook-end",
            MarkKind::Contained => "contained",
            MarkKind::Resolved => "resolved",
        }
    }

    /// Where a kind goes among events of the same instant: the incident's life order.
    fn rank(self) -> u8 {
        match self {
            MarkKind::Activity => 0,
            MarkKind::Detected => 1,
            MarkKind::Triaged => 2,
            MarkKind::PlaybookEnd => 4,
            MarkKind::Contained => 5,
            MarkKind::Resolved => 6,
            _ => 3,
        }
    }

    fn shape(self) -> Shape {
        match self {
            MarkKind::ApprovalRequested
            | MarkKind::ApprovalCounted
            | MarkKind::Approved
            | MarkKind::Rejected
            | MarkKind::ApprovalRefused
            | MarkKind::ApprovalNotDelivered => Shape::Diamond,
            MarkKind::Applied
            | MarkKind::Planned
            | MarkKind::AlreadyInPlace
            | MarkKind::Failed
            | MarkKind::NotApproved => Shape::Square,
            _ => Shape::Circle,
        }
    }

    fn colour(self) -> &'static str {
        match self {
            MarkKind::Activity => "#9aa5b1",
            MarkKind::Detected | MarkKind::Triaged | MarkKind::PlaybookEnd => "#334e68",
            MarkKind::ApprovalRequested => "#b8a9d9",
            MarkKind::ApprovalCounted | MarkKind::Approved => "#6b46c1",
            MarkKind::Rejected
            | MarkKind::ApprovalRefused
            | MarkKind::ApprovalNotDelivered
            | MarkKind::NotApproved => "#dd6b20",
            MarkKind::Applied | MarkKind::AlreadyInPlace => "#2f855a",
            MarkKind::Planned => "#3182ce",
            MarkKind::Failed => "#c53030",
            MarkKind::Contained => "#276749",
            MarkKind::Resolved => "#1a202c",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Circle,
    Diamond,
    Square,
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub at: OffsetDateTime,
    pub kind: MarkKind,
    /// The step it belongs to.
    pub step: Option<String>,
    /// Who: the person who decided, or the identity the event is recorded under.
    pub who: Option<String>,
    /// What happened, in a few words (plain text).
    pub text: String,
    /// The audit record, for events read from the chain.
    pub seq: Option<u64>,
}

/// Which metric a span measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Time to detect: first activity → detection.
    Mttd,
    /// Time to contain: detection → containment.
    Mttc,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Mttd => "MTTD",
            SpanKind::Mttc => "MTTC",
        }
    }
}

/// A response metric over the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub kind: SpanKind,
    /// Where it starts; `None` when the start is unknown (no first activity reported).
    pub from: Option<OffsetDateTime>,
    /// Where it ends; `None` while it has not ended (not contained yet).
    pub to: Option<OffsetDateTime>,
    pub seconds: Option<f64>,
}

impl Span {
    /// `1m2s`, `not contained yet`, `unknown (no first activity reported)`.
    pub fn value(&self) -> String {
        match (self.seconds, self.kind) {
            (Some(s), _) => super::format::seconds(s),
            (None, SpanKind::Mttc) => "not contained yet".to_owned(),
            (None, SpanKind::Mttd) => "unknown (no first activity reported)".to_owned(),
        }
    }

    /// `MTTD 1m2s`, `MTTC not contained yet`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.as_str(), self.value())
    }
}

/// Who, as a row can show it: `alice@example.com (Responders)` for an assumed-role session,
/// the user or role name for an IAM user or role, the identity as given otherwise (the full
/// ARN is the mark's `who`).
pub fn short_actor(arn: &str) -> String {
    if let Some((_, rest)) = arn.split_once(":assumed-role/")
        && let Some((role, session)) = rest.split_once('/')
    {
        return format!("{session} ({role})");
    }
    for kind in [":user/", ":role/"] {
        if let Some((_, rest)) = arn.split_once(kind) {
            return rest.rsplit('/').next().unwrap_or(rest).to_owned();
        }
    }
    arn.to_owned()
}

/// The report's marks, in time order (ties in the incident's life order, then audit order).
pub fn marks(r: &IncidentReport) -> Vec<Mark> {
    let t = &r.timeline.stamps;
    let mut out = Vec::new();
    let stamp = |at, kind, text: String| Mark {
        at,
        kind,
        step: None,
        who: None,
        text,
        seq: None,
    };
    if let Some(at) = t.first_seen {
        out.push(stamp(
            at,
            MarkKind::Activity,
            "first activity reported by the finding".to_owned(),
        ));
    }
    out.push(stamp(
        t.detected_at,
        MarkKind::Detected,
        "detected: the finding was received".to_owned(),
    ));
    if let Some(at) = t.triaged_at {
        let text = match &r.decision {
            Some(d) => format!(
                "triaged: score {:.2}, severity {}, playbook {} ({})",
                d.score,
                d.severity.as_str(),
                d.playbook,
                d.mode.as_str()
            ),
            None => "triaged".to_owned(),
        };
        out.push(stamp(at, MarkKind::Triaged, text));
    }
    for s in &r.steps {
        for a in &s.approvals {
            let (kind, text) = match a.kind {
                ApprovalKind::Requested => (
                    MarkKind::ApprovalRequested,
                    format!(
                        "approval asked for {}{}",
                        s.step,
                        a.role
                            .as_deref()
                            .map(|role| format!(" ({role}, level {})", a.level.unwrap_or(0)))
                            .unwrap_or_default()
                    ),
                ),
                ApprovalKind::Counted => (
                    MarkKind::ApprovalCounted,
                    format!(
                        "{} approved by {} ({})",
                        s.step,
                        short_actor(&a.actor),
                        a.why.as_deref().unwrap_or("more approvals needed")
                    ),
                ),
                ApprovalKind::Approved => (
                    MarkKind::Approved,
                    format!("{} approved by {}", s.step, short_actor(&a.actor)),
                ),
                ApprovalKind::Rejected => (
                    MarkKind::Rejected,
                    format!("{} rejected by {}", s.step, short_actor(&a.actor)),
                ),
                ApprovalKind::Refused => (
                    MarkKind::ApprovalRefused,
                    format!(
                        "decision on {} by {} refused",
                        s.step,
                        short_actor(&a.actor)
                    ),
                ),
                ApprovalKind::NotDelivered => (
                    MarkKind::ApprovalNotDelivered,
                    format!(
                        "decision on {} by {} not delivered",
                        s.step,
                        short_actor(&a.actor)
                    ),
                ),
            };
            out.push(Mark {
                at: a.at,
                kind,
                step: Some(s.step.clone()),
                who: Some(a.actor.clone()),
                text,
                seq: Some(a.seq),
            });
        }
        if let Some(res) = &s.result {
            let (kind, what) = match res.outcome {
                Outcome::Applied => (MarkKind::Applied, "applied"),
                Outcome::Planned => (MarkKind::Planned, "planned (dry-run)"),
                Outcome::AlreadyInPlace => (MarkKind::AlreadyInPlace, "already in place"),
            };
            out.push(Mark {
                at: res.at,
                kind,
                step: Some(s.step.clone()),
                who: None,
                text: format!("{} {what}: {} change(s)", s.step, res.changes.len()),
                seq: Some(res.seq),
            });
        }
        if let Some(e) = &s.error {
            let (kind, what) = match e.kind {
                FailureKind::NotApproved => (MarkKind::NotApproved, "not approved"),
                FailureKind::Failed | FailureKind::TriageFailed => (MarkKind::Failed, "failed"),
            };
            // A failure a later result superseded is still an event of the incident.
            let later = if s.state == StepState::Failed || s.state == StepState::NotApproved {
                ""
            } else {
                ", then retried"
            };
            out.push(Mark {
                at: e.at,
                kind,
                step: Some(s.step.clone()),
                who: None,
                text: format!("{} {what}: {}{later}", s.step, e.error),
                seq: Some(e.seq),
            });
        }
    }
    if let Some(f) = &r.finished {
        out.push(Mark {
            at: f.at,
            kind: MarkKind::PlaybookEnd,
            step: None,
            who: None,
            text: if f.contained {
                format!("playbook {} finished: contained", f.playbook)
            } else {
                format!("playbook {} finished: not contained", f.playbook)
            },
            seq: Some(f.seq),
        });
    }
    if let Some(at) = t.contained_at {
        out.push(stamp(at, MarkKind::Contained, "contained".to_owned()));
    }
    if let Some(at) = t.resolved_at {
        out.push(stamp(at, MarkKind::Resolved, "resolved".to_owned()));
    }
    // Stable: ties keep the life order, then the order above (audit order within a step).
    out.sort_by_key(|m| (m.at, m.kind.rank(), m.seq.unwrap_or(0)));
    out
}

/// MTTD and MTTC.
pub fn spans(r: &IncidentReport) -> [Span; 2] {
    let t = &r.timeline.stamps;
    [
        Span {
            kind: SpanKind::Mttd,
            from: t.first_seen,
            to: Some(t.detected_at),
            seconds: r.timeline.mttd_seconds,
        },
        Span {
            kind: SpanKind::Mttc,
            from: Some(t.detected_at),
            to: t.contained_at,
            seconds: r.timeline.mttc_seconds,
        },
    ]
}

// ---------------------------------------------------------------------------------- drawing

const WIDTH: usize = 1200;
const TOP: usize = 78;
const ROW: usize = 28;
const AXIS_X: usize = 200;
const TIME_X: usize = 220;
const OFFSET_X: usize = 370;
const TEXT_X: usize = 440;
/// The most characters of a mark's text drawn (the full text is its tooltip).
const TEXT_CHARS: usize = 105;

fn row_y(i: usize) -> usize {
    TOP + i * ROW + ROW / 2
}

fn label(x: usize, y: usize, text: &str) -> Text {
    Text::new(text)
        .set("x", x)
        .set("y", y)
        .set("dominant-baseline", "middle")
}

fn shape(kind: MarkKind, y: usize) -> Box<dyn svg::Node> {
    let colour = kind.colour();
    match kind.shape() {
        Shape::Circle => Box::new(
            Circle::new()
                .set("cx", AXIS_X)
                .set("cy", y)
                .set("r", 7)
                .set("fill", colour)
                .set("stroke", "#ffffff")
                .set("stroke-width", 2),
        ),
        Shape::Square => Box::new(
            Rectangle::new()
                .set("x", AXIS_X - 6)
                .set("y", y - 6)
                .set("width", 12)
                .set("height", 12)
                .set("fill", colour)
                .set("stroke", "#ffffff")
                .set("stroke-width", 2),
        ),
        Shape::Diamond => {
            let mut d = String::new();
            // Writing to a String cannot fail.
            let _ = write!(
                d,
                "M {x} {top} L {right} {y} L {x} {bottom} L {left} {y} Z",
                x = AXIS_X,
                top = y - 8,
                right = AXIS_X + 8,
                bottom = y + 8,
                left = AXIS_X - 8
            );
            Box::new(
                Path::new()
                    .set("d", d)
                    .set("fill", colour)
                    .set("stroke", "#ffffff")
                    .set("stroke-width", 2),
            )
        }
    }
}

/// One metric as a bracket beside the rows it covers, labelled; open (dashed, to the last row)
/// when it has not ended, absent when its start is unknown.
fn span_group(span: &Span, x: usize, marks: &[Mark]) -> Option<Group> {
    let row_of = |kind: MarkKind| marks.iter().position(|m| m.kind == kind);
    let (start, end) = match span.kind {
        SpanKind::Mttd => (row_of(MarkKind::Activity)?, row_of(MarkKind::Detected)?),
        SpanKind::Mttc => {
            let start = row_of(MarkKind::Detected)?;
            (
                start,
                row_of(MarkKind::Contained).unwrap_or(marks.len().saturating_sub(1)),
            )
        }
    };
    let (y1, y2) = (row_y(start), row_y(end.max(start)));
    let open = span.to.is_none();
    let colour = match span.kind {
        SpanKind::Mttd => "#b7791f",
        SpanKind::Mttc => "#2b6cb0",
    };
    let bracket = Path::new()
        .set("d", format!("M {} {y1} H {x} V {y2} H {}", x + 10, x + 10))
        .set("fill", "none")
        .set("stroke", colour)
        .set("stroke-width", 3)
        .set("stroke-dasharray", if open { "6 4" } else { "none" });
    let mid = (y1 + y2) / 2;
    let value = match span.seconds {
        Some(s) => super::format::seconds(s),
        None => "not yet".to_owned(),
    };
    Some(
        Group::new()
            .set(
                "class",
                match span.kind {
                    SpanKind::Mttd => "span span-mttd",
                    SpanKind::Mttc => "span span-mttc",
                },
            )
            .add(Title::new(span.label()))
            .add(bracket)
            .add(
                label(x + 8, mid - 8, span.kind.as_str())
                    .set("font-weight", "bold")
                    .set("fill", colour),
            )
            .add(label(x + 8, mid + 8, &value).set("fill", colour)),
    )
}

fn legend() -> Group {
    let items = [
        (MarkKind::Detected, "detection, triage, end"),
        (MarkKind::Approved, "approval"),
        (MarkKind::Applied, "action applied"),
        (MarkKind::Planned, "action planned"),
        (MarkKind::Failed, "action failed"),
        (MarkKind::Rejected, "rejected, not approved"),
        (MarkKind::Contained, "contained, resolved"),
    ];
    let mut g = Group::new().set("class", "legend");
    let mut x = 24;
    for (kind, text) in items {
        let y = 50;
        let mark = match kind.shape() {
            Shape::Circle => Box::new(
                Circle::new()
                    .set("cx", x)
                    .set("cy", y)
                    .set("r", 6)
                    .set("fill", kind.colour()),
            ) as Box<dyn svg::Node>,
            Shape::Square => Box::new(
                Rectangle::new()
                    .set("x", x - 5)
                    .set("y", y - 5)
                    .set("width", 10)
                    .set("height", 10)
                    .set("fill", kind.colour()),
            ),
            Shape::Diamond => Box::new(
                Path::new()
                    .set(
                        "d",
                        format!(
                            "M {x} {} L {} {y} L {x} {} L {} {y} Z",
                            y - 7,
                            x + 7,
                            y + 7,
                            x - 7
                        ),
                    )
                    .set("fill", kind.colour()),
            ),
        };
        g = g.add(mark).add(label(x + 12, y, text).set("font-size", 12));
        x += 24 + text.len() * 7;
    }
    g
}

/// The timeline as one SVG element, `<svg id="timeline" …>`, sized to its rows.
pub fn svg(r: &IncidentReport) -> String {
    let marks = marks(r);
    let height = TOP + marks.len().max(1) * ROW + 16;
    let origin = r.timeline.stamps.detected_at;
    let mut doc = Document::new()
        .set("id", "timeline")
        .set("role", "img")
        .set("width", WIDTH)
        .set("height", height)
        .set("viewBox", (0, 0, WIDTH, height))
        .set(
            "font-family",
            "system-ui, -apple-system, 'Segoe UI', sans-serif",
        )
        .set("font-size", 13)
        .add(Title::new(format!(
            "Timeline of incident {} (UTC)",
            one_line(&r.incident_id)
        )))
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "#ffffff"),
        )
        .add(
            label(
                16,
                20,
                &format!("Timeline (UTC) of {}", one_line(&r.incident_id)),
            )
            .set("font-size", 16)
            .set("font-weight", "bold")
            .set("fill", "#102a43"),
        )
        .add(legend());
    for (i, _) in marks.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        doc = doc.add(
            Rectangle::new()
                .set("class", "stripe")
                .set("x", AXIS_X - 20)
                .set("y", TOP + i * ROW)
                .set("width", WIDTH - AXIS_X + 10)
                .set("height", ROW)
                .set("fill", "#f5f7fa"),
        );
    }
    // Detection is always a mark: the axis runs from the first row to the last.
    if !marks.is_empty() {
        doc = doc.add(
            Line::new()
                .set("class", "axis")
                .set("x1", AXIS_X)
                .set("y1", row_y(0))
                .set("x2", AXIS_X)
                .set("y2", row_y(marks.len() - 1))
                .set("stroke", "#829ab1")
                .set("stroke-width", 2),
        );
    }
    let [mttd, mttc] = spans(r);
    for (span, x) in [(&mttd, 16), (&mttc, 96)] {
        if let Some(g) = span_group(span, x, &marks) {
            doc = doc.add(g);
        }
    }
    for (i, m) in marks.iter().enumerate() {
        let y = row_y(i);
        let text = one_line(&m.text);
        let mut tooltip = format!("{} UTC: {text}", clock(m.at));
        if let Some(who) = &m.who {
            tooltip.push_str(&format!(" (by {})", one_line(who)));
        }
        let g = Group::new()
            .set("class", format!("mark mark-{}", m.kind.as_str()))
            .set("id", format!("mark-{i}"))
            .add(Title::new(tooltip))
            .add(shape(m.kind, y))
            .add(
                label(TIME_X, y, &clock(m.at))
                    .set("font-family", "ui-monospace, Menlo, Consolas, monospace")
                    .set("font-size", 12)
                    .set("fill", "#486581"),
            )
            .add(
                label(OFFSET_X, y, &offset(m.at, origin))
                    .set("font-size", 12)
                    .set("fill", "#627d98"),
            )
            .add(label(TEXT_X, y, &cut(&text, TEXT_CHARS)).set("fill", "#102a43"));
        doc = doc.add(g);
    }
    doc.to_string()
}
