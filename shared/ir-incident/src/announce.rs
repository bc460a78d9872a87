//! Announcements: every incident update goes to its Slack channel as it happens — opened,
//! triaged, approval requested (with the plan and Approve/Reject buttons), each escalation, each
//! decision (the approval message is updated with who decided), each step done or failed,
//! contained or stopped, resolved, the post-incident review opened, its action items, closed —
//! and each clock alert to the channel that must know
//! (regulatory reminders to the legal/compliance channel, an SLA breach to the incident's and
//! the leadership channel).
//!
//! Driven by the audit table's stream (`KEYS_ONLY`): the caller names an audit record by its
//! keys; everything announced is read from the suite's own records (the record in the chain, the
//! incident). A forged invocation can at most announce a real record again, and each record is
//! announced once (`announced#<incident>#<seq>` in the keys table, written after the post: a
//! crash in between posts twice, never zero times).
//!
//! Channels: the incident's is its playbook's `slack:post_message` step's channel, else
//! `notifications.updates_channel` (so an incident's opening, before triage chose a playbook,
//! goes there); approval requests go to `notifications.approvals_channel` when set. No Slack bot token (or only a webhook, which has one channel and cannot update a
//! message): approval buttons need the Web API, so nothing is announced without it.

use std::collections::BTreeMap;

use ir_aws::Clients;
use ir_aws::store::{
    AuditLog, Incident, IncidentStore, Marks, StoreError, TableNames, announced_key,
};
use ir_chat::slack::blocks::{self, ApprovalRef, ApprovalRequest, Decision, SlackMessage, Who};
use ir_chat::slack::client::{MessageRef, SlackClient};
use ir_core::audit::AuditRecord;
use ir_core::audit::event::{ApprovalRequested, AuditEvent, SLA_CLOCK};
use ir_core::config::{Config, Mode};
use ir_core::correlate::is_incident_id;
use ir_core::{ErrorName, Named};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::notify::chat_update;

/// Why a record could not be announced.
#[derive(Debug, Error)]
pub enum AnnounceError {
    /// The keys do not name an audit record (a malformed or forged invocation).
    #[error("invalid announcement: {0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Slack refused or failed after its client's retries.
    #[error("Slack {name}: {message}")]
    Delivery { name: &'static str, message: String },
}

impl Named for AnnounceError {
    fn error_name(&self) -> ErrorName {
        match self {
            AnnounceError::InvalidInput(_) => ErrorName::InvalidInput,
            AnnounceError::NotFound(_) => ErrorName::NotFound,
            AnnounceError::Store(e) => e.error_name(),
            AnnounceError::Delivery { .. } => ErrorName::DeliveryFailed,
        }
    }
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announced {
    /// Posted (and updated) these many messages.
    Sent { posted: usize, updated: usize },
    /// Announced before (a redelivered stream record).
    AlreadyAnnounced,
    /// Nothing to say for this record, or nowhere to say it (why).
    Nothing(String),
}

/// One message to post, and whether the decision will update it later.
#[derive(Debug)]
struct Post {
    channel: String,
    message: SlackMessage,
    /// An approval request: its message is kept (channel, ts) for the decision's update.
    keep: bool,
}

/// What to do for one record.
#[derive(Debug, Default)]
struct Plan {
    posts: Vec<Post>,
    /// The approval request record (its seq) whose message is replaced by the decided one.
    update: Option<(u64, SlackMessage)>,
}

/// The incident's channel: its playbook's `slack:post_message` step's, else the config's.
pub fn incident_channel(config: &Config, incident: &Incident) -> Option<String> {
    incident
        .decision
        .as_ref()
        .and_then(|d| {
            d.playbook
                .steps
                .iter()
                .find(|s| s.action == "slack:post_message")
                .and_then(|s| s.channel.clone())
        })
        .or_else(|| config.notifications.updates_channel.clone())
        .filter(|c| !c.trim().is_empty())
}

/// The channel of a record: the incident's once the chain up to it holds the triage, else the
/// config's updates channel. Read from the chain, not the incident's present state, so that an
/// opening announced after the triage happened still goes where it would have gone at once.
fn channel_at(config: &Config, incident: &Incident, upto: &[AuditRecord]) -> Option<String> {
    let triaged = upto
        .iter()
        .any(|r| matches!(r.event(), Ok(AuditEvent::Triaged(_))));
    if triaged {
        incident_channel(config, incident)
    } else {
        config
            .notifications
            .updates_channel
            .clone()
            .filter(|c| !c.trim().is_empty())
    }
}

fn mode_of(incident: &Incident) -> Mode {
    incident
        .decision
        .as_ref()
        .map_or(Mode::DryRun, |d| d.playbook.mode)
}

/// The name a decision shows: the session name of an assumed role, the user name of a user.
fn person(arn: &str, person: &str) -> String {
    if !person.trim().is_empty() {
        return person.to_owned();
    }
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

/// The approval request message of an `approval-requested` record.
fn approval_request(
    incident: &Incident,
    upto: &[AuditRecord],
    record: &AuditRecord,
    a: &ApprovalRequested,
) -> Option<ApprovalRequest> {
    let hash = a.plan_hash.clone()?;
    let approval = ApprovalRef::new(&incident.summary.incident_id, &a.step, hash, a.level).ok()?;
    let mut update = chat_update(incident, upto, mode_of(incident));
    update.headline = Some(if a.level == 0 {
        format!("Approval requested: step {} ({})", a.step, a.plan.action)
    } else {
        format!(
            "Escalated to {} (level {}): step {} still waits for a decision",
            a.role,
            a.level + 1,
            a.step
        )
    });
    let timeout = Duration::seconds(i64::try_from(a.timeout_seconds).unwrap_or(i64::MAX));
    Some(ApprovalRequest {
        update,
        approval,
        plan_summary: format!(
            "{} on {} ({}{}): {}",
            a.plan.action,
            a.plan.target,
            a.plan.mode.as_str(),
            if a.plan.destructive {
                ", destructive"
            } else {
                ""
            },
            a.plan.summary
        ),
        asked: format!(
            "{}{}",
            a.role,
            if a.plan.approvals_required > 1 {
                format!(
                    " ({} different people must approve)",
                    a.plan.approvals_required
                )
            } else {
                String::new()
            }
        ),
        expires_at: record.at.saturating_add(timeout),
    })
}

/// The latest `approval-requested` record for `step` at `level` before index `before`.
fn request_for<'a>(
    chain: &'a [AuditRecord],
    before: usize,
    step: &str,
    level: Option<u32>,
) -> Option<(&'a AuditRecord, ApprovalRequested)> {
    chain[..before].iter().rev().find_map(|r| match r.event() {
        Ok(AuditEvent::ApprovalRequested(a))
            if a.step == step && level.is_none_or(|l| l == a.level) =>
        {
            Some((r, a))
        }
        _ => None,
    })
}

/// The approval message of `step`'s latest request (at `level`, or any) before the record at
/// `index`, as `decision` ended it: the request's seq (whose mark holds the message) and the
/// replacement.
fn decided_request(
    incident: &Incident,
    chain: &[AuditRecord],
    index: usize,
    step: &str,
    level: Option<u32>,
    decision: &Decision,
) -> Option<(u64, SlackMessage)> {
    let (req_record, a) = request_for(chain, index, step, level)?;
    let req = approval_request(incident, &chain[..=index], req_record, &a)?;
    Some((
        req_record.seq,
        blocks::approval_decided(&req, decision, chain[index].at),
    ))
}

/// What to announce for the record at `index` of `chain`.
fn plan(config: &Config, incident: &Incident, chain: &[AuditRecord], index: usize) -> Plan {
    let record = &chain[index];
    let upto = &chain[..=index];
    let Ok(event) = record.event() else {
        return Plan::default();
    };
    let channel = channel_at(config, incident, upto);
    let mut out = Plan::default();
    let update = |headline: String| {
        let mut u = chat_update(incident, upto, mode_of(incident));
        u.headline = Some(headline);
        blocks::incident_update(&u)
    };
    let to_incident = |out: &mut Plan, headline: String| {
        if let Some(c) = &channel {
            out.posts.push(Post {
                channel: c.clone(),
                message: update(headline),
                keep: false,
            });
        }
    };
    let s = &incident.summary;
    match &event {
        AuditEvent::Opened(o) => to_incident(
            &mut out,
            format!(
                "Incident opened: {} on {} {}",
                o.finding_type,
                o.resource.kind.as_str(),
                o.resource.id
            ),
        ),
        AuditEvent::Triaged(t) => to_incident(
            &mut out,
            format!(
                "Triaged: {} severity, playbook {} ({}), {} step(s), {} behind approval{}",
                t.severity.as_str(),
                t.playbook,
                t.mode.as_str(),
                t.steps.len(),
                t.gates.len(),
                t.deadlines
                    .iter()
                    .map(|d| format!(
                        "; {} deadline {}",
                        d.regime,
                        ir_chat::update::human_time(d.due_at)
                    ))
                    .collect::<String>()
            ),
        ),
        AuditEvent::TriageFailed(f) => {
            to_incident(
                &mut out,
                format!("Triage failed: {} ({})", f.error, f.cause),
            );
        }
        AuditEvent::ApprovalRequested(a) => {
            let target = config
                .notifications
                .approvals_channel
                .clone()
                .or_else(|| channel.clone());
            if let (Some(c), Some(req)) = (target, approval_request(incident, upto, record, a)) {
                out.posts.push(Post {
                    channel: c,
                    message: blocks::approval_request(&req),
                    keep: true,
                });
            }
        }
        AuditEvent::Approved(d) | AuditEvent::Rejected(d) => {
            let approved = matches!(event, AuditEvent::Approved(_));
            let who = person(&d.approver, &d.person);
            let decision = if approved {
                Decision::Approved {
                    by: Who::Name(who.clone()),
                }
            } else {
                Decision::Rejected {
                    by: Who::Name(who.clone()),
                    reason: Some(d.reason.clone()),
                }
            };
            out.update = decided_request(incident, chain, index, &d.step, Some(d.level), &decision);
            to_incident(
                &mut out,
                format!(
                    "Step {} {} by {who}",
                    d.step,
                    if approved { "approved" } else { "rejected" }
                ),
            );
        }
        AuditEvent::ApprovalCounted(d) => to_incident(
            &mut out,
            format!(
                "Step {}: approved by {} ({} of {} approvals)",
                d.step,
                person(&d.approver, &d.person),
                d.approvals.len(),
                d.approvals_required.max(1)
            ),
        ),
        AuditEvent::ApprovalNotDelivered(n) => to_incident(
            &mut out,
            format!(
                "Step {}: the decision of {} could not be delivered ({})",
                n.step, n.approver, n.error
            ),
        ),
        AuditEvent::Step(a) => to_incident(
            &mut out,
            format!(
                "Step {} {} ({}, {} change(s))",
                a.step,
                match a.outcome {
                    ir_core::action::Outcome::Planned => "planned only",
                    ir_core::action::Outcome::Applied => "applied",
                    ir_core::action::Outcome::AlreadyInPlace => "already in place",
                },
                a.mode.as_str(),
                a.changed()
            ),
        ),
        AuditEvent::StepFailed(f) => {
            to_incident(
                &mut out,
                format!("Step {} failed: {} ({})", f.step, f.error, f.cause),
            );
        }
        AuditEvent::StepNotApproved(f) => {
            // Nobody decided in time: the approval message says so.
            let decided = chain[..index].iter().rev().any(|r| {
                matches!(r.event(), Ok(AuditEvent::Approved(d) | AuditEvent::Rejected(d)) if d.step == f.step)
            });
            if !decided {
                out.update =
                    decided_request(incident, chain, index, &f.step, None, &Decision::Expired);
            }
            to_incident(
                &mut out,
                format!("Step {} not run: {} ({})", f.step, f.error, f.cause),
            );
        }
        AuditEvent::PlaybookFinished(p) => to_incident(
            &mut out,
            if p.contained() {
                format!("Contained: playbook {} finished", p.playbook)
            } else {
                format!("Playbook {} finished ({})", p.playbook, p.status.as_str())
            },
        ),
        AuditEvent::PlaybookStopped(p) => to_incident(
            &mut out,
            format!(
                "Needs attention: playbook {} stopped at step {} ({})",
                p.playbook, p.step, p.error
            ),
        ),
        AuditEvent::RetryStarted(r) => to_incident(
            &mut out,
            format!(
                "Step {} retried by {}: {}",
                r.step,
                person(&r.by, ""),
                r.reason
            ),
        ),
        AuditEvent::Resolved(r) => to_incident(
            &mut out,
            format!("Resolved by {}: {}", person(&r.by, ""), r.reason),
        ),
        AuditEvent::ReleaseFailed(r) => to_incident(
            &mut out,
            format!("Release failed at {}: {} ({})", r.step, r.error, r.cause),
        ),
        AuditEvent::ClockAlert(c) => {
            let when = ir_chat::update::human_time(c.due_at);
            let headline = if c.reminder == "breached" {
                format!("{} BREACHED: it was due {when}", c.name)
            } else {
                let left = c.reminder.strip_prefix("left-").unwrap_or(&c.reminder);
                format!("{}: {left}% of the time left, due {when}", c.name)
            };
            let targets: Vec<String> = if c.clock == SLA_CLOCK {
                channel
                    .iter()
                    .cloned()
                    .chain(
                        config
                            .leadership_summary
                            .as_ref()
                            .map(|l| l.channel.clone()),
                    )
                    .collect()
            } else {
                config.regulatory.channel.iter().cloned().collect()
            };
            let mut seen = Vec::new();
            for t in targets {
                if seen.contains(&t) {
                    continue;
                }
                seen.push(t.clone());
                out.posts.push(Post {
                    channel: t,
                    message: update(format!("{headline} ({})", s.incident_id)),
                    keep: false,
                });
            }
        }
        AuditEvent::ReviewOpened(r) => to_incident(
            &mut out,
            format!(
                "Post-incident review opened by {}: held {}",
                person(&r.by, ""),
                r.review_date
            ),
        ),
        AuditEvent::ReviewItemAdded(a) => to_incident(
            &mut out,
            format!(
                "Action item {}: {} (owner {}, due {})",
                a.item.id, a.item.title, a.item.owner, a.item.due
            ),
        ),
        AuditEvent::ReviewItemClosed(c) => to_incident(
            &mut out,
            format!(
                "Action item {} {} by {}",
                c.id,
                c.status.as_str(),
                person(&c.by, "")
            ),
        ),
        AuditEvent::ReviewClosed(c) => to_incident(
            &mut out,
            format!(
                "Post-incident review closed by {}: {} action item(s), {} still open",
                person(&c.by, ""),
                c.items,
                c.open_items.len()
            ),
        ),
        AuditEvent::ReviewWritten(_)
        | AuditEvent::Repeated(_)
        | AuditEvent::Attached(_)
        | AuditEvent::TriageStarted(_)
        | AuditEvent::PlaybookQueued(_)
        | AuditEvent::PlaybookDequeued(_)
        | AuditEvent::ApprovalRefused(_)
        | AuditEvent::Other { .. } => {}
    }
    out
}

fn delivery(e: &ir_chat::slack::client::SlackError) -> AnnounceError {
    AnnounceError::Delivery {
        name: e.name(),
        message: e.to_string(),
    }
}

/// Announces the audit record `seq` of `incident_id` (see the module docs).
///
/// # Errors
/// `InvalidInput` for keys that are not an incident's, `NotFound` for a record or incident that
/// does not exist, a store failure, or `DeliveryFailed` when Slack failed after its retries
/// (the stream delivers the record again).
pub async fn announce(
    clients: &Clients,
    names: &TableNames,
    config: &Config,
    slack: Option<&SlackClient>,
    incident_id: &str,
    seq: u64,
    now: OffsetDateTime,
) -> Result<Announced, AnnounceError> {
    if !is_incident_id(incident_id) {
        return Err(AnnounceError::InvalidInput(format!(
            "`{incident_id}` is not an incident id"
        )));
    }
    let Some(slack) = slack.filter(|s| s.can_update()) else {
        return Ok(Announced::Nothing(
            "no Slack bot token (the Web API is needed for approval buttons and updates)"
                .to_owned(),
        ));
    };
    let marks = Marks::new(clients.clone(), names);
    let key = announced_key(incident_id, seq);
    if marks.get(&key).await?.is_some() {
        return Ok(Announced::AlreadyAnnounced);
    }
    let chain = AuditLog::new(clients.clone(), names.clone())
        .chain(incident_id)
        .await?;
    let index = chain
        .iter()
        .position(|r| r.seq == seq)
        .ok_or_else(|| AnnounceError::NotFound(format!("audit record {seq} of {incident_id}")))?;
    let incident = IncidentStore::new(clients.clone(), names.clone())
        .get(incident_id)
        .await?
        .ok_or_else(|| AnnounceError::NotFound(format!("incident {incident_id}")))?;
    let plan = plan(config, &incident, &chain, index);
    if plan.posts.is_empty() && plan.update.is_none() {
        return Ok(Announced::Nothing(format!(
            "nothing to announce for `{}` (or no channel configured)",
            chain[index].action
        )));
    }
    let mut fields = BTreeMap::new();
    let mut posted = 0;
    for post in &plan.posts {
        let sent = slack
            .post_message(&post.channel, &post.message)
            .await
            .map_err(|e| delivery(&e))?;
        posted += 1;
        if post.keep
            && let Some(m) = sent.message()
        {
            fields.insert("channel".to_owned(), m.channel.clone());
            fields.insert("ts".to_owned(), m.ts.clone());
        }
    }
    let mut updated = 0;
    if let Some((request_seq, message)) = &plan.update {
        let posted_request = marks.get(&announced_key(incident_id, *request_seq)).await?;
        if let Some(m) = posted_request.as_ref().and_then(|f| {
            Some(MessageRef {
                channel: f.get("channel")?.clone(),
                ts: f.get("ts")?.clone(),
            })
        }) {
            slack
                .update_message(&m, message)
                .await
                .map_err(|e| delivery(&e))?;
            updated += 1;
        }
    }
    marks.claim(&key, &fields, now).await?;
    tracing::info!(incident_id, seq, action = %chain[index].action, posted, updated, "announced");
    Ok(Announced::Sent { posted, updated })
}
