//! The clocks checker (`ir-clocks`, on a schedule): for every open incident, the response SLA's
//! breach and each regulatory deadline's reminders (at `regulatory.reminders` fractions of the
//! time left) and breach are appended to the incident's audit chain as `clock-alert` records,
//! once each (`<clock>#<reminder>`: a rerun finds it there), and `ir-announce` posts them to the
//! channels that must know. Then, while any incident is open, the leadership summary is posted
//! once per `leadership_summary.every` (`leadership#<period>` in the keys table).
//!
//! Time is the checker's own clock: nothing in its invocation is read. An incident that is
//! resolved is no longer watched (its chain is anchored at resolution).

use std::collections::BTreeMap;

use ir_aws::Clients;
use ir_aws::store::{
    AuditLog, Incident, IncidentStore, Marks, StoreError, TableNames, leadership_key,
};
use ir_chat::slack::blocks::{OpenIncident, leadership_summary};
use ir_chat::slack::client::SlackClient;
use ir_core::audit::event::{AuditEvent, ClockAlert, SLA_CLOCK};
use ir_core::clocks::{due_reminders, period, span};
use ir_core::config::Config;
use ir_core::incident::Status;
use ir_core::{ErrorName, Named};
use serde::Serialize;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::audit_writer::AuditWriter;
use crate::listing::{SlaState, open_statuses, sla_state};

/// The actor of the checker's audit records.
pub const CLOCKS_ACTOR: &str = "ir-clocks";

/// Why a check failed.
#[derive(Debug, Error)]
pub enum ClockError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Slack {name}: {message}")]
    Delivery { name: &'static str, message: String },
}

impl Named for ClockError {
    fn error_name(&self) -> ErrorName {
        match self {
            ClockError::Store(e) => e.error_name(),
            ClockError::Delivery { .. } => ErrorName::DeliveryFailed,
        }
    }
}

/// What one check did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockRun {
    /// Open incidents looked at.
    pub open: usize,
    /// `<incident> <clock>#<reminder>` of every alert appended by this run.
    pub alerts: Vec<String>,
    /// The leadership summary was posted by this run.
    pub leadership_summary: bool,
}

/// The alerts due for `incident` at `now` (before checking which the chain already holds).
pub fn due_alerts(config: &Config, incident: &Incident, now: OffsetDateTime) -> Vec<ClockAlert> {
    let mut out = Vec::new();
    let s = &incident.summary;
    if let (Some(sla), Some(decision)) = (
        config.triage.response_sla.get(&s.severity),
        incident.decision.as_ref(),
    ) && let SlaState::Breached { respond_by, .. } =
        sla_state(s, *sla, config.triage.immediate_window, now)
        && s.timeline.contained_at.is_none()
        && s.timeline.resolved_at.is_none()
    {
        out.push(ClockAlert {
            step: format!("{SLA_CLOCK}#breached"),
            clock: SLA_CLOCK.to_owned(),
            name: format!(
                "Response SLA ({} severity: {})",
                s.severity.as_str(),
                decision.sla.description
            ),
            reminder: "breached".to_owned(),
            due_at: respond_by,
        });
    }
    for d in incident
        .decision
        .as_ref()
        .map(|d| d.deadlines.as_slice())
        .unwrap_or_default()
    {
        if let Some(r) = due_reminders(d, &config.regulatory.reminders, now) {
            out.push(ClockAlert {
                step: format!("{}#{}", d.regime, r.key()),
                clock: d.regime.clone(),
                name: d.name.clone(),
                reminder: r.key(),
                due_at: d.due_at,
            });
        }
    }
    out
}

fn containment(incident: &Incident) -> String {
    let s = &incident.summary;
    match s.status {
        Status::Contained => format!(
            "Contained{}",
            s.timeline
                .contained_at
                .map(|t| format!(" at {}", ir_chat::update::human_time(t)))
                .unwrap_or_default()
        ),
        Status::NeedsAttention => "Needs attention: a step failed or was refused".to_owned(),
        Status::Containment => "Containment in progress (or waiting for approval)".to_owned(),
        Status::Triage => "Being triaged".to_owned(),
        Status::Queued => "Queued: waiting for a playbook slot".to_owned(),
        other => capitalized(other.as_str()),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn open_incident(config: &Config, incident: &Incident, now: OffsetDateTime) -> OpenIncident {
    let s = &incident.summary;
    let mut clocks = Vec::new();
    if let Some(sla) = config.triage.response_sla.get(&s.severity) {
        clocks.push(
            match sla_state(s, *sla, config.triage.immediate_window, now) {
                SlaState::Met { .. } => "SLA met".to_owned(),
                SlaState::Due { seconds_left, .. } => format!("SLA due in {}", span(seconds_left)),
                SlaState::Breached { seconds_over, .. } => {
                    format!("SLA BREACHED by {}", span(seconds_over))
                }
            },
        );
    }
    if let Some(d) = &incident.decision {
        clocks.extend(d.deadlines.iter().map(|x| x.describe(now)));
    }
    let enrichment = incident
        .decision
        .as_ref()
        .map(|d| format!("{} score {:.2}", d.finding_severity.as_str(), d.score.score));
    OpenIncident {
        incident_id: s.incident_id.clone(),
        severity: capitalized(s.severity.as_str()),
        status: containment(incident),
        scope: format!(
            "{} {} in account {}",
            incident.resource.kind().as_str(),
            incident.resource.id(),
            s.resource_key.split('/').next().unwrap_or_default()
        ),
        impact: format!(
            "{} finding(s){}",
            incident.finding_count,
            enrichment
                .map(|e| format!(", finding severity {e}"))
                .unwrap_or_default()
        ),
        clocks: if clocks.is_empty() {
            "none".to_owned()
        } else {
            clocks.join("; ")
        },
        estimated_resolution: match s.status {
            Status::Contained => "contained: resolution after evidence review".to_owned(),
            _ => "not estimated until contained".to_owned(),
        },
    }
}

/// One check at `now` (see the module docs). `slack`: the leadership summary's poster (none:
/// the summary is not sent; the alerts are still recorded).
///
/// # Errors
/// A store failure (the next run tries again), or Slack failing the summary after its retries.
pub async fn check(
    clients: &Clients,
    names: &TableNames,
    config: &Config,
    slack: Option<&SlackClient>,
    now: OffsetDateTime,
) -> Result<ClockRun, ClockError> {
    let store = IncidentStore::new(clients.clone(), names.clone());
    let mut open = Vec::new();
    for status in open_statuses() {
        open.extend(store.in_status(status).await?);
    }
    open.sort_by(|a, b| {
        b.summary
            .timeline
            .detected_at
            .cmp(&a.summary.timeline.detected_at)
    });
    let mut run = ClockRun {
        open: open.len(),
        ..ClockRun::default()
    };
    let audit = AuditWriter::new(clients, names);
    let log = AuditLog::new(clients.clone(), names.clone());
    for incident in &open {
        let due = due_alerts(config, incident, now);
        if due.is_empty() {
            continue;
        }
        let id = &incident.summary.incident_id;
        let chain = log.chain(id).await?;
        for alert in due {
            // Once each: a later run (or a rerun of this one) finds it in the chain.
            let raised = chain.iter().any(
                |r| matches!(r.event(), Ok(AuditEvent::ClockAlert(c)) if c.step == alert.step),
            );
            if raised {
                continue;
            }
            let step = alert.step.clone();
            let appended = audit
                .append_once(
                    id,
                    Some(&chain),
                    CLOCKS_ACTOR,
                    &AuditEvent::ClockAlert(alert),
                    now,
                )
                .await?;
            if appended.appended {
                tracing::info!(incident_id = %id, clock = %step, "clock alert");
                run.alerts.push(format!("{id} {step}"));
            }
        }
    }
    if let (Some(summary), Some(slack), false) =
        (&config.leadership_summary, slack, open.is_empty())
    {
        let every = Duration::seconds(i64::try_from(summary.every.as_secs()).unwrap_or(i64::MAX));
        let key = leadership_key(period(now, every));
        let marks = Marks::new(clients.clone(), names);
        if marks.get(&key).await?.is_none() {
            let incidents: Vec<OpenIncident> =
                open.iter().map(|i| open_incident(config, i, now)).collect();
            slack
                .post_message(&summary.channel, &leadership_summary(&incidents, now))
                .await
                .map_err(|e| ClockError::Delivery {
                    name: e.name(),
                    message: e.to_string(),
                })?;
            marks
                .claim(
                    &key,
                    &BTreeMap::from([("open".to_owned(), open.len().to_string())]),
                    now,
                )
                .await?;
            run.leadership_summary = true;
        }
    }
    Ok(run)
}
