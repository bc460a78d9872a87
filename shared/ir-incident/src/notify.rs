//! Notifications: the incident update, in the shape of the incident communication template
//! (status, severity, time detected, time contained, summary, scope, actions), published to the
//! suite's SNS topic, for an approval request, a channel message or a ticket request.
//!
//! One topic carries every notification; message attributes (`kind`, `channel`, `project`,
//! `priority`, `incidentId`, `severity`, `step`) let subscribers filter (an SNS subscription
//! filter policy per chat channel or ticketing integration). Nothing here holds a secret: an
//! approval request says how to decide, never with what token.
//!
//! SNS standard topics have no deduplication: a retried notifier publishes again, so a
//! subscriber can see one update twice (at least once, never lost).

use std::collections::BTreeMap;

use aws_sdk_sns::types::MessageAttributeValue;
use ir_core::action::{ActionReport, Change, ChangeStatus, Outcome};
use ir_core::audit::{AuditEvent, AuditRecord};
use ir_core::config::Mode;
use ir_core::correlate::is_incident_id;
use ir_core::incident::Status;
use ir_core::orchestration::NotifyRequest;
use ir_core::playbook::PlannedStep;
use ir_core::{ErrorName, Severity};
use serde_json::{Value, json};
use time::OffsetDateTime;

use ir_actions::action::{ActionError, ReportBuilder};
use ir_aws::sdk::SdkFailure;
use ir_aws::store::{AuditLog, Incident, IncidentStore, Marks, TableNames, jira_issue_key};
use ir_aws::{Clients, log_sdk_error};
use ir_chat::IncidentUpdate;
use ir_chat::jira::client::NewIssue;

use crate::outlets::Outlets;

/// The function that sends a step's notification.
pub const NOTIFY_ACTION: &str = "ir-notify";
/// SNS refuses longer subjects.
pub const MAX_SUBJECT_CHARS: usize = 100;
pub use ir_chat::update::{DRY_RUN_MARK, human_time};

const PUBLISH: &str = "sns:Publish";

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Printable ASCII, at most [`MAX_SUBJECT_CHARS`] (SNS's rules for a subject).
    pub subject: String,
    pub body: String,
    /// String message attributes, for subscription filter policies (at most 10, none empty).
    pub attributes: BTreeMap<String, String>,
}

/// A subject SNS accepts: printable ASCII only, at most [`MAX_SUBJECT_CHARS`].
pub fn subject(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    if out.len() > MAX_SUBJECT_CHARS {
        out.truncate(MAX_SUBJECT_CHARS - 1);
        out.push('~');
    }
    out
}

/// Publishes `message` to the topic; returns its message id.
pub async fn publish(
    clients: &Clients,
    topic_arn: &str,
    message: &Message,
) -> Result<String, SdkFailure> {
    let mut req = clients
        .sns()
        .publish()
        .topic_arn(topic_arn)
        .subject(subject(&message.subject))
        .message(&message.body);
    for (name, value) in message.attributes.iter().filter(|(_, v)| !v.is_empty()) {
        let v = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| SdkFailure {
                operation: PUBLISH,
                name: ErrorName::Internal,
                code: None,
                request_id: None,
                detail: format!("message attribute {name}: {e}"),
            })?;
        req = req.message_attributes(name, v);
    }
    let out = req.send().await.map_err(|e| log_sdk_error(PUBLISH, &e))?;
    Ok(out.message_id().unwrap_or_default().to_owned())
}

// ------------------------------------------------------------------------------------ render

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn status_label(s: Status) -> String {
    capitalized(s.as_str())
}

fn severity_label(s: Severity) -> String {
    capitalized(s.as_str())
}

/// How an approver decides a gated step, said in the approval request.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalAsk<'a> {
    pub step: &'a PlannedStep,
    /// 0 first.
    pub level: u32,
    /// How many levels the escalation matrix row has.
    pub levels: usize,
    /// Who is asked at this level (the escalation matrix's role).
    pub role: &'a str,
    pub timeout_seconds: u64,
    pub expires_at: OffsetDateTime,
    /// The action's planned changes (its dry-run), and their SHA-256: what is approved.
    pub changes: &'a [ir_core::action::Change],
    pub plan_hash: &'a str,
    /// How many different people must approve.
    pub approvals_required: u32,
    pub two_person_rule: bool,
}

/// What an update is for.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// A gated step waits for a human.
    Approval(ApprovalAsk<'a>),
    /// A chat message (`slack:post_message`) to a channel.
    Channel { channel: &'a str, mode: Mode },
    /// A ticket to open (`jira:create_issue`).
    Ticket {
        project: &'a str,
        priority: &'a str,
        mode: Mode,
    },
}

/// One line of "Actions Taken" per step result, decision, failure and refusal.
fn taken(events: &[(&AuditRecord, AuditEvent)]) -> Vec<String> {
    events
        .iter()
        .filter_map(|(r, e)| taken_line(r, e))
        .collect()
}

fn taken_line(r: &AuditRecord, event: &AuditEvent) -> Option<String> {
    Some(match event {
        AuditEvent::Step(a) => {
            let (mode, changes) = (a.mode.as_str(), a.changed());
            let what = match a.outcome {
                Outcome::Planned => {
                    format!("planned only (dry-run), {changes} change(s) planned")
                }
                Outcome::Applied => format!("applied ({mode}), {changes} change(s)"),
                Outcome::AlreadyInPlace => {
                    format!("already in place ({mode}), nothing to change")
                }
            };
            format!("{}: {} {what}", a.step, a.function)
        }
        AuditEvent::Approved(d) => format!("{}: approved by {}", d.step, r.actor),
        AuditEvent::ApprovalCounted(d) => format!(
            "{}: approved by {} ({} of {} approvals)",
            d.step,
            r.actor,
            d.approvals.len(),
            d.approvals_required.max(1)
        ),
        AuditEvent::Rejected(d) => format!(
            "{}: rejected by {}{}",
            d.step,
            r.actor,
            Some(&d.reason)
                .filter(|x| !x.is_empty())
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        ),
        AuditEvent::StepFailed(f) => format!("{}: failed ({})", f.step, f.error),
        AuditEvent::StepNotApproved(f) => format!("{}: not approved ({})", f.step, f.error),
        _ => return None,
    })
}

/// The steps of the plan that have not run yet (no result, failure or refusal).
fn planned(incident: &Incident, events: &[(&AuditRecord, AuditEvent)]) -> Vec<String> {
    let Some(decision) = &incident.decision else {
        return Vec::new();
    };
    let done: Vec<&str> = events
        .iter()
        .filter(|(_, e)| e.ends_step())
        .filter_map(|(_, e)| e.step())
        .collect();
    decision
        .playbook
        .steps
        .iter()
        .filter(|s| !done.contains(&s.id.as_str()))
        .map(|s| {
            format!(
                "{}: {} on {} ({}{}{})",
                s.id,
                s.action,
                s.target,
                s.mode.as_str(),
                if s.destructive { ", destructive" } else { "" },
                if s.requires_approval {
                    ", needs approval"
                } else {
                    ""
                }
            )
        })
        .collect()
}

/// `1 finding`, `3 findings`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn numbered(lines: &[String], none: &str) -> String {
    if lines.is_empty() {
        return format!("- {none}\n");
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{}. {l}\n", i + 1))
        .collect()
}

/// The incident update (the incident communication template) for `purpose`: the header, the
/// summary, the scope, the actions taken and planned, then what the purpose asks for.
pub fn incident_update(
    incident: &Incident,
    chain: &[AuditRecord],
    purpose: &Purpose<'_>,
) -> String {
    let events = readable(chain);
    let scope = Scope::of(incident, &events);
    let pending = planned(incident, &events);
    let mut out = header(incident);
    out.push_str("### Summary\n");
    out.push_str(&summary(incident, &scope));
    out.push_str("### Scope\n");
    out.push_str(&scope_lines(incident, &scope));
    out.push_str("### Actions Taken\n");
    out.push_str(&numbered(&taken(&events), "None yet."));
    out.push_str("### Actions Planned\n");
    out.push_str(&numbered(
        &pending,
        if incident.decision.is_some() {
            "None left."
        } else {
            "Decided when triage ends."
        },
    ));
    match purpose {
        Purpose::Approval(ask) => out.push_str(&how_to_decide(&incident.summary.incident_id, ask)),
        Purpose::Channel { mode, .. } | Purpose::Ticket { mode, .. } => {
            out.push_str(&next_steps(incident, *mode, &pending));
        }
    }
    out
}

/// The records of the chain this version can read, each with its event.
fn readable(chain: &[AuditRecord]) -> Vec<(&AuditRecord, AuditEvent)> {
    chain
        .iter()
        .filter_map(|r| r.event().ok().map(|e| (r, e)))
        .collect()
}

/// Where the incident is and what it was first seen as, from its ingest records.
struct Scope<'a> {
    resource: String,
    /// `account A, region` (or `account A` when the region is unknown).
    place: String,
    /// The titles of the findings that opened or attached to it, in order.
    titles: Vec<&'a str>,
    /// What the normalizer noticed about those findings.
    notes: Vec<&'a str>,
}

impl<'a> Scope<'a> {
    fn of(incident: &Incident, events: &'a [(&AuditRecord, AuditEvent)]) -> Scope<'a> {
        let opened = events.iter().find_map(|(_, e)| match e {
            AuditEvent::Opened(o) => Some(o),
            _ => None,
        });
        let titles = events
            .iter()
            .filter_map(|(_, e)| match e {
                AuditEvent::Opened(o) => Some(o.title.as_str()),
                AuditEvent::Attached(a) => Some(a.title.as_str()),
                _ => None,
            })
            .collect();
        let notes = events
            .iter()
            .flat_map(|(_, e)| match e {
                AuditEvent::Opened(o) => o.notes.as_slice(),
                AuditEvent::Attached(a) => a.notes.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
            .collect();
        let account_from_key = incident.summary.resource_key.split('/').next();
        let account = opened
            .map(|o| o.account.as_str())
            .or(account_from_key)
            .unwrap_or("unknown");
        let place = match opened {
            Some(o) => format!("account {account}, {}", o.region),
            None => format!("account {account}"),
        };
        Scope {
            resource: format!(
                "{} {}",
                incident.resource.kind().as_str(),
                incident.resource.id()
            ),
            place,
            titles,
            notes,
        }
    }
}

/// The title line and the status, severity and times.
fn header(incident: &Incident) -> String {
    let s = &incident.summary;
    let t = &s.timeline;
    let mut out = String::new();
    out.push_str(&format!("## Incident Update: {}\n", s.incident_id));
    out.push_str(&format!("**Status:** {}\n", status_label(s.status)));
    out.push_str(&format!("**Severity:** {}\n", severity_label(s.severity)));
    out.push_str(&format!(
        "**Time detected:** {}\n",
        human_time(t.detected_at)
    ));
    out.push_str(&format!(
        "**Time contained:** {}\n",
        t.contained_at
            .map_or_else(|| "not contained yet".to_owned(), human_time)
    ));
    for line in deadline_lines(incident, OffsetDateTime::now_utc()) {
        out.push_str(&format!("**Regulatory deadline:** {line}\n"));
    }
    out
}

/// Each regulatory deadline the incident carries, with the time left at `now`:
/// `GDPR Art. 33: …: due 2026-04-23 14:32 UTC (71h 59m left)`.
pub fn deadline_lines(incident: &Incident, now: OffsetDateTime) -> Vec<String> {
    incident
        .decision
        .as_ref()
        .map(|d| d.deadlines.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let left = d.seconds_left(now);
            format!(
                "{}: due {} ({})",
                d.name,
                human_time(d.due_at),
                if left >= 0 {
                    format!("{} left", ir_core::clocks::span(left))
                } else {
                    format!("BREACHED {} ago", ir_core::clocks::span(-left))
                }
            )
        })
        .collect()
}

fn summary(incident: &Incident, scope: &Scope<'_>) -> String {
    let s = &incident.summary;
    let mut summary = format!(
        "{} severity incident on {} ({}): {}",
        severity_label(s.severity),
        scope.resource,
        scope.place,
        counted(incident.finding_count, "finding", "findings")
    );
    if let Some(first) = scope.titles.first() {
        summary.push_str(&format!(", first: {first}"));
    }
    summary.push('.');
    if let Some(d) = &incident.decision {
        summary.push_str(&format!(
            " Triage score {:.2}; playbook {} in {} mode.",
            d.score.score,
            d.playbook.id,
            d.playbook.mode.as_str()
        ));
        if d.samples_only {
            summary.push_str(" Every finding is a generated sample: nothing is enforced.");
        }
    } else {
        summary.push_str(" Triage in progress.");
    }
    summary.push('\n');
    summary
}

fn scope_lines(incident: &Incident, scope: &Scope<'_>) -> String {
    scope_items(incident, scope)
        .iter()
        .map(|l| format!("- {l}\n"))
        .collect()
}

fn scope_items(incident: &Incident, scope: &Scope<'_>) -> Vec<String> {
    let t = &incident.summary.timeline;
    let mut out = Vec::new();
    out.push(format!("Resource: {} ({})", scope.resource, scope.place));
    out.extend(related_items(incident));
    out.push(format!(
        "Findings: {} ({}){}",
        incident.finding_count,
        counted(incident.occurrences, "delivery", "deliveries"),
        if scope.titles.len() > 1 {
            format!(": {}", scope.titles.join("; "))
        } else {
            String::new()
        }
    ));
    out.push(format!(
        "Activity: first seen {}, last seen {}",
        t.first_seen
            .map_or_else(|| "unknown".to_owned(), human_time),
        human_time(incident.last_seen)
    ));
    for n in &scope.notes {
        out.push(format!("Note: {n}"));
    }
    if let Some(e) = &incident.last_error {
        out.push(format!("Last error: {}: {}", e.step, e.message));
    }
    out
}

/// One line per other resource of the incident (an attack sequence's), with the steps its
/// playbook would take on it: planned for a responder, never run by the playbook.
fn related_items(incident: &Incident) -> Vec<String> {
    let plans = incident
        .decision
        .as_ref()
        .map(|d| d.resource_plans.as_slice())
        .unwrap_or_default();
    incident
        .related_resources
        .iter()
        .map(|r| {
            let key = r.key();
            let planned = match plans.iter().find(|p| p.resource_key == key) {
                Some(p) if p.steps.is_empty() => "no step of the playbook applies".to_owned(),
                Some(p) => format!(
                    "planned, not run: {}",
                    p.steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "not triaged yet".to_owned(),
            };
            format!(
                "Also in scope: {} {} (account {}): {planned}",
                r.resource.kind().as_str(),
                r.resource.id(),
                r.account
            )
        })
        .collect()
}

/// What waits for a decision, who is asked until when, and how to decide.
fn how_to_decide(id: &str, ask: &ApprovalAsk<'_>) -> String {
    let step = ask.step;
    let mut out = String::new();
    out.push_str("### Approval Needed\n");
    out.push_str(&format!(
        "Step **{}** ({}, function {}) on {}, mode **{}**{}, waits for a decision.\n",
        step.id,
        step.action,
        step.function,
        step.target,
        step.mode.as_str(),
        if step.destructive {
            ", destructive"
        } else {
            ""
        }
    ));
    out.push_str(&format!("Plan: {}\n", step.summary));
    out.push_str(&format!(
        "Asked: {} (escalation level {} of {}); the window closes at {} ({}s), then {}.\n",
        ask.role,
        ask.level + 1,
        ask.levels.max(1),
        human_time(ask.expires_at),
        ask.timeout_seconds,
        if (ask.level as usize) + 1 < ask.levels {
            "the next level is asked"
        } else {
            "the escalation matrix is exhausted"
        }
    ));
    out.push_str(&format!("### The Plan (sha256 {})\n", ask.plan_hash));
    if ask.changes.is_empty() {
        out.push_str("- nothing to change: everything is already in place\n");
    }
    for c in ask.changes {
        out.push_str(&format!(
            "- {} {}: {} → {}\n",
            c.target, c.attribute, c.before, c.after
        ));
    }
    out.push_str("### How to Decide\n");
    out.push_str(&format!(
        "- Approve: `ir approve {id} --step {} --plan-hash {} [--reason \"...\"]`\n",
        step.id, ask.plan_hash
    ));
    out.push_str(&format!(
        "- Reject: `ir reject {id} --step {} --reason \"...\"`\n",
        step.id
    ));
    out.push_str(
        "The approval holds for this plan only: if it changes before the step runs, nothing is \
         changed and you are asked again.\n",
    );
    if ask.approvals_required > 1 {
        out.push_str(&format!(
            "This step needs {} approvals from different people ({} or a higher role); one rejection rejects it.\n",
            ask.approvals_required, ask.role
        ));
    }
    out.push_str(&format!(
        "Run with your own AWS credentials: only people holding {} or a higher role in notifications.approver_roles can decide{}. There is no approval link: a decision is always signed with the approver's own credentials.\n",
        ask.role,
        if ask.two_person_rule {
            ", and the person who asked for the approval cannot approve it"
        } else {
            ""
        }
    ));
    out
}

/// What the responders do next, for a channel message or a ticket.
fn next_steps(incident: &Incident, mode: Mode, pending: &[String]) -> String {
    let mut out = String::from("### Next Steps\n");
    for line in next_step_items(incident, mode, pending) {
        out.push_str(&format!("- {line}\n"));
    }
    out
}

fn next_step_items(incident: &Incident, mode: Mode, pending: &[String]) -> Vec<String> {
    let s = &incident.summary;
    let mut out = Vec::new();
    if is_dry_run(incident, mode) {
        out.push("This playbook runs in dry-run: the plan above changed nothing. Review it; enforce by setting `mode: enforce` on the playbook.".to_owned());
    }
    out.push(if s.status == Status::Contained {
        "Contained: collect and review the evidence, then resolve the incident or release the containment.".to_owned()
    } else if !pending.is_empty() {
        "Steps are still to run or waiting for approval (see Actions Planned).".to_owned()
    } else {
        "Review the actions taken and the evidence; decide on containment and resolution.".to_owned()
    });
    out.push(format!("Audit trail: `ir audit verify {}`", s.incident_id));
    out
}

fn is_dry_run(incident: &Incident, mode: Mode) -> bool {
    mode == Mode::DryRun
        || incident
            .decision
            .as_ref()
            .is_some_and(|d| d.playbook.mode == Mode::DryRun)
}

/// The incident update as the chat and ticketing clients render it (Block Kit, ADF): the same
/// sections as [`incident_update`]'s text, the planned steps under next steps.
pub fn chat_update(incident: &Incident, chain: &[AuditRecord], mode: Mode) -> IncidentUpdate {
    let events = readable(chain);
    let scope = Scope::of(incident, &events);
    let pending = planned(incident, &events);
    let s = &incident.summary;
    let mut next = next_step_items(incident, mode, &pending);
    next.extend(pending.iter().map(|p| format!("Planned: {p}")));
    IncidentUpdate {
        incident_id: s.incident_id.clone(),
        headline: None,
        deadlines: deadline_lines(incident, OffsetDateTime::now_utc()),
        status: status_label(s.status),
        severity: severity_label(s.severity),
        time_detected: s.timeline.detected_at,
        time_contained: s.timeline.contained_at,
        summary: summary(incident, &scope).trim().to_owned(),
        scope: scope_items(incident, &scope),
        actions_taken: taken(&events),
        next_steps: next,
        links: Vec::new(),
        dry_run: is_dry_run(incident, mode),
    }
}

fn base_attributes(incident: &Incident, kind: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kind".to_owned(), kind.to_owned()),
        (
            "incidentId".to_owned(),
            incident.summary.incident_id.clone(),
        ),
        (
            "severity".to_owned(),
            incident.summary.severity.as_str().to_owned(),
        ),
    ])
}

/// The approval request: the incident update and how to decide. Carries no task token.
pub fn approval_message(
    incident: &Incident,
    chain: &[AuditRecord],
    ask: ApprovalAsk<'_>,
) -> Message {
    let s = &incident.summary;
    let mut attributes = base_attributes(incident, "approval-request");
    attributes.insert("step".to_owned(), ask.step.id.clone());
    attributes.insert("role".to_owned(), ask.role.to_owned());
    Message {
        subject: subject(&format!(
            "[{}] {}: approval needed for {} ({})",
            s.severity.as_str().to_uppercase(),
            s.incident_id,
            ask.step.id,
            ask.step.mode.as_str()
        )),
        body: incident_update(incident, chain, &Purpose::Approval(ask)),
        attributes,
    }
}

/// The notification of a `slack:post_message` or `jira:create_issue` step.
pub fn step_message(
    incident: &Incident,
    chain: &[AuditRecord],
    req: &NotifyRequest,
) -> Result<Message, ActionError> {
    let s = &incident.summary;
    let dry = if req.mode == Mode::DryRun {
        format!("{DRY_RUN_MARK} ")
    } else {
        String::new()
    };
    let sev = s.severity.as_str().to_uppercase();
    match req.step.action.as_str() {
        "slack:post_message" => {
            let channel = req
                .step
                .channel
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    ActionError::InvalidInput(format!(
                        "step {}: slack:post_message needs a channel",
                        req.step_id
                    ))
                })?;
            let mut attributes = base_attributes(incident, "channel-message");
            attributes.insert("channel".to_owned(), channel.to_owned());
            attributes.insert("step".to_owned(), req.step_id.clone());
            Ok(Message {
                subject: subject(&format!(
                    "{dry}[{sev}] {} {}: {} {}",
                    s.incident_id,
                    s.status.as_str(),
                    incident.resource.kind().as_str(),
                    incident.resource.id()
                )),
                body: format!(
                    "{dry}Channel: {channel}\n\n{}",
                    incident_update(
                        incident,
                        chain,
                        &Purpose::Channel {
                            channel,
                            mode: req.mode
                        }
                    )
                ),
                attributes,
            })
        }
        "jira:create_issue" => {
            let project = req
                .step
                .project
                .as_deref()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    ActionError::InvalidInput(format!(
                        "step {}: jira:create_issue needs a project",
                        req.step_id
                    ))
                })?;
            let priority = req
                .step
                .priority
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("Medium");
            let mut attributes = base_attributes(incident, "ticket-request");
            attributes.insert("project".to_owned(), project.to_owned());
            attributes.insert("priority".to_owned(), priority.to_owned());
            attributes.insert("step".to_owned(), req.step_id.clone());
            let title = format!(
                "{} severity incident {} on {} {}",
                severity_label(s.severity),
                s.incident_id,
                incident.resource.kind().as_str(),
                incident.resource.id()
            );
            Ok(Message {
                subject: subject(&format!("{dry}[{sev}] {project} ticket: {title}")),
                body: format!(
                    "{dry}Ticket request\nProject: {project}\nPriority: {priority}\nTitle: {title}\n\n{}",
                    incident_update(
                        incident,
                        chain,
                        &Purpose::Ticket {
                            project,
                            priority,
                            mode: req.mode
                        }
                    )
                ),
                attributes,
            })
        }
        other => Err(ActionError::InvalidInput(format!(
            "step {}: {NOTIFY_ACTION} sends slack:post_message and jira:create_issue, not {other}",
            req.step_id
        ))),
    }
}

/// `ir-notify`: renders the step's notification and publishes it to `topic_arn`; then, when the
/// deployment configured them ([`Outlets`]), posts a chat message to Slack as Block Kit (the
/// step's channel) or creates the step's Jira issue (once per incident and step: a rerun finds
/// the issue it made).
///
/// Notifications change no resource, so a step in dry-run is still sent, its subject marked
/// [`DRY_RUN_MARK`]; the report has one change per outlet, applied in either mode:
/// `notification` null → `{messageId}`, `message` null → `{channel, ts}` (Slack), `issue` null →
/// `{key, url, alreadyExisted}` (Jira). Calls: `GetItem` (the incident), `Query` (its audit
/// chain), `Publish`.
///
/// # Errors
/// A Slack or Jira failure after the client's own retries is `DeliveryFailed`, after the
/// topic's message went out (the error says so): the step fails and the incident shows it;
/// `on_failure` decides whether the playbook goes on (it does by default for notifications).
pub async fn notify_step(
    clients: &Clients,
    names: &TableNames,
    topic_arn: &str,
    outlets: &Outlets,
    req: &NotifyRequest,
) -> Result<ActionReport, ActionError> {
    let mark = clients.calls().count();
    if !is_incident_id(&req.incident_id) {
        return Err(ActionError::InvalidInput(format!(
            "`{}` is not an incident id",
            req.incident_id
        )));
    }
    let incident = IncidentStore::new(clients.clone(), names.clone())
        .get(&req.incident_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("incident {}", req.incident_id)))?;
    let chain = AuditLog::new(clients.clone(), names.clone())
        .chain(&req.incident_id)
        .await?;
    let message = step_message(&incident, &chain, req)?;
    let target = match (
        message.attributes.get("channel"),
        message.attributes.get("project"),
    ) {
        (Some(c), _) => c.clone(),
        (None, Some(p)) => format!("jira:{p}"),
        (None, None) => topic_arn.to_owned(),
    };
    let message_id = publish(clients, topic_arn, &message).await.map_err(|f| {
        if f.name == ErrorName::NotFound {
            ActionError::Configuration(format!("notification topic {topic_arn}: {f}"))
        } else {
            ActionError::Aws(f)
        }
    })?;
    tracing::info!(incident_id = %req.incident_id, step_id = %req.step_id, %message_id, mode = req.mode.as_str(), "notification sent");
    let mut b = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        NOTIFY_ACTION,
        req.mode,
        mark,
    );
    b.report_mut().changes.push(Change {
        target,
        attribute: "notification".to_owned(),
        before: Value::Null,
        after: json!({ "messageId": message_id }),
        // Sent in either mode.
        status: ChangeStatus::Applied,
    });
    if req.mode == Mode::DryRun {
        b.note(format!(
            "dry-run: the notification was sent anyway, its subject marked {DRY_RUN_MARK}; notifications change no resource"
        ));
    }
    let marks = Marks::new(clients.clone(), names);
    let delivered = deliver(outlets, &marks, &incident, &chain, req, &message, &mut b).await;
    let mut report = b.finish(clients.calls());
    report.outcome = Outcome::Applied;
    match delivered {
        Ok(()) => Ok(report),
        Err(e) => Err(e.after(&report)),
    }
}

/// A chat or ticketing failure, by the client error's stable name.
fn delivery(service: &'static str, name: &'static str, e: &dyn std::fmt::Display) -> ActionError {
    ActionError::Delivery {
        service,
        name,
        message: e.to_string(),
    }
}

/// The step's Slack message or Jira issue, when those outlets are configured: one change each.
async fn deliver(
    outlets: &Outlets,
    marks: &Marks,
    incident: &Incident,
    chain: &[AuditRecord],
    req: &NotifyRequest,
    message: &Message,
    b: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let update = || chat_update(incident, chain, req.mode);
    if let (Some(slack), Some(channel)) = (&outlets.slack, message.attributes.get("channel")) {
        let posted = slack
            .post_message(channel, &ir_chat::slack::blocks::incident_update(&update()))
            .await
            .map_err(|e| delivery("slack", e.name(), &e))?;
        let after = match posted.message() {
            Some(m) => json!({ "channel": m.channel, "ts": m.ts }),
            None => json!({ "webhook": true }),
        };
        tracing::info!(incident_id = %req.incident_id, step_id = %req.step_id, %channel, "posted to Slack");
        b.report_mut().changes.push(Change {
            target: format!("slack:{channel}"),
            attribute: "message".to_owned(),
            before: Value::Null,
            after,
            status: ChangeStatus::Applied,
        });
    }
    if let (Some(jira), Some(project)) = (&outlets.jira, message.attributes.get("project")) {
        let update = update();
        let issue = NewIssue {
            incident_id: req.incident_id.clone(),
            step_id: req.step_id.clone(),
            project_key: project.clone(),
            issue_type: jira.issue_type.clone(),
            summary: format!(
                "{}{} incident {}: {}",
                if update.dry_run { "[DRY RUN] " } else { "" },
                update.severity,
                update.incident_id,
                incident.resource.id()
            ),
            description: ir_chat::jira::adf::incident_description(&update, None),
            labels: vec!["incident-response".to_owned()],
            priority: message.attributes.get("priority").cloned(),
        };
        // The issue a run of this step made is recorded in the keys table, read strongly
        // consistent: Jira's search (create_issue_once's own check) lags a creation by
        // seconds, so a quick retry could otherwise make a second issue.
        let mark = jira_issue_key(&req.incident_id, &req.step_id);
        let (key, url, already) = match marks.get(&mark).await? {
            Some(f) if f.contains_key("issueKey") => (
                f.get("issueKey").cloned().unwrap_or_default(),
                f.get("url").cloned().unwrap_or_default(),
                true,
            ),
            _ => {
                let created = jira
                    .client
                    .create_issue_once(&issue)
                    .await
                    .map_err(|e| delivery("jira", e.name(), &e))?;
                marks
                    .claim(
                        &mark,
                        &BTreeMap::from([
                            ("issueKey".to_owned(), created.issue.key.clone()),
                            ("url".to_owned(), created.browse_url.clone()),
                        ]),
                        OffsetDateTime::now_utc(),
                    )
                    .await?;
                (
                    created.issue.key,
                    created.browse_url,
                    created.already_existed,
                )
            }
        };
        tracing::info!(incident_id = %req.incident_id, step_id = %req.step_id, %key, already, "Jira issue");
        b.report_mut().changes.push(Change {
            target: format!("jira:{project}"),
            attribute: "issue".to_owned(),
            before: Value::Null,
            after: json!({
                "key": key,
                "url": url,
                "alreadyExisted": already,
            }),
            status: ChangeStatus::Applied,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn subjects_are_printable_ascii_within_the_limit() {
        assert_eq!(subject("ok: fine"), "ok: fine");
        assert_eq!(subject("é\nx"), "??x");
        let long = subject(&"x".repeat(150));
        assert_eq!(long.len(), MAX_SUBJECT_CHARS);
        assert!(long.ends_with('~'));
    }

    #[test]
    fn times_read_like_the_template() {
        assert_eq!(
            human_time(datetime!(2026-04-20 16:32:59 +02:00)),
            "2026-04-20 14:32 UTC"
        );
    }
}
