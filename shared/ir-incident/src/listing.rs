//! What an on-call responder lists: the incidents (newest first, each with its response SLA)
//! and the approvals waiting (on whom, since when, who is asked next). Reads only.

use std::collections::BTreeSet;

use ir_aws::Clients;
use ir_aws::store::{
    Approval, ApprovalStatus, ApprovalStore, IncidentStore, StoreError, TableNames,
};
use ir_core::Severity;
use ir_core::approval::ApproverPolicy;
use ir_core::config::{Config, OnExhausted, Sla};
use ir_core::contracts::Decision;
use ir_core::duration::ConfigDuration;
use ir_core::incident::{IncidentSummary, Status};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Empty: every open status.
    pub statuses: Vec<Status>,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Detected at most this long ago.
    pub since: Option<Duration>,
}

/// One incident as the list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentRow {
    pub incident_id: String,
    pub severity: Severity,
    pub status: Status,
    pub account: String,
    /// `ec2-instance`, `iam-user`, … as the resource key says.
    pub resource_kind: String,
    pub resource_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    pub age_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaState>,
    /// The regulatory deadlines the incident carries, with the time left (negative: breached).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<DeadlineState>,
}

/// A regulatory deadline at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadlineState {
    pub regime: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    pub seconds_left: i64,
    /// `gdpr: 2d 23h left`, `gdpr: BREACHED 1h 0m ago`.
    pub text: String,
}

/// The regulatory deadlines of an incident at `now` (none before its triage decision).
pub fn deadline_states(decision: Option<&Decision>, now: OffsetDateTime) -> Vec<DeadlineState> {
    decision
        .map(|d| d.deadlines.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|d| DeadlineState {
            regime: d.regime.clone(),
            due_at: d.due_at,
            seconds_left: d.seconds_left(now),
            text: d.describe(now),
        })
        .collect()
}

/// Where an incident stands against its severity's response SLA (`triage.response_sla`):
/// responded means contained or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SlaState {
    /// Responded by the deadline.
    Met {
        #[serde(with = "time::serde::rfc3339")]
        respond_by: OffsetDateTime,
    },
    /// Not responded yet; this many seconds left.
    Due {
        #[serde(with = "time::serde::rfc3339")]
        respond_by: OffsetDateTime,
        seconds_left: i64,
    },
    /// Responded late, or not yet and past the deadline, by this many seconds.
    Breached {
        #[serde(with = "time::serde::rfc3339")]
        respond_by: OffsetDateTime,
        seconds_over: i64,
    },
}

/// The SLA state of an incident at `now`.
pub fn sla_state(
    summary: &IncidentSummary,
    sla: Sla,
    immediate_window: ConfigDuration,
    now: OffsetDateTime,
) -> SlaState {
    let t = &summary.timeline;
    let respond_by =
        ir_core::sla::decide(summary.severity, sla, t.detected_at, immediate_window).respond_by;
    let responded = t.contained_at.or(t.resolved_at);
    match responded {
        Some(at) if at <= respond_by => SlaState::Met { respond_by },
        Some(at) => SlaState::Breached {
            respond_by,
            seconds_over: (at - respond_by).whole_seconds(),
        },
        None if now <= respond_by => SlaState::Due {
            respond_by,
            seconds_left: (respond_by - now).whole_seconds(),
        },
        None => SlaState::Breached {
            respond_by,
            seconds_over: (now - respond_by).whole_seconds(),
        },
    }
}

/// The row of an incident at `now`.
pub fn row(
    summary: &IncidentSummary,
    decision: Option<&Decision>,
    config: &Config,
    now: OffsetDateTime,
) -> IncidentRow {
    let mut parts = summary.resource_key.splitn(3, '/');
    let (account, kind, id) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let detected_at = summary.timeline.detected_at;
    IncidentRow {
        incident_id: summary.incident_id.clone(),
        severity: summary.severity,
        status: summary.status,
        account,
        resource_kind: kind,
        resource_id: id,
        playbook: summary.playbook.clone(),
        detected_at,
        age_seconds: (now - detected_at).whole_seconds(),
        sla: config
            .triage
            .response_sla
            .get(&summary.severity)
            .map(|sla| sla_state(summary, *sla, config.triage.immediate_window, now)),
        deadlines: deadline_states(decision, now),
    }
}

/// The statuses an incident is open in.
pub fn open_statuses() -> Vec<Status> {
    Status::ALL.into_iter().filter(|s| s.is_open()).collect()
}

/// The incidents `filter` selects, newest first (the `by-status` index: eventually consistent).
pub async fn incidents(
    clients: &Clients,
    names: &TableNames,
    config: &Config,
    filter: &IncidentFilter,
    now: OffsetDateTime,
) -> Result<Vec<IncidentRow>, StoreError> {
    let store = IncidentStore::new(clients.clone(), names.clone());
    let statuses = if filter.statuses.is_empty() {
        open_statuses()
    } else {
        filter.statuses.clone()
    };
    let mut rows = Vec::new();
    for status in statuses {
        for incident in store.in_status(status).await? {
            let summary = &incident.summary;
            if !filter.severities.is_empty() && !filter.severities.contains(&summary.severity) {
                continue;
            }
            if filter
                .since
                .is_some_and(|since| summary.timeline.detected_at < now - since)
            {
                continue;
            }
            rows.push(row(summary, incident.decision.as_ref(), config, now));
        }
    }
    rows.sort_by(|a, b| {
        b.detected_at
            .cmp(&a.detected_at)
            .then_with(|| a.incident_id.cmp(&b.incident_id))
    });
    Ok(rows)
}

/// One approval waiting for a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub incident_id: String,
    pub severity: Severity,
    pub step_id: String,
    /// The escalation level (0 = first) and the role it asks.
    pub level: u32,
    pub role: String,
    /// Approvals counted so far, of how many different people.
    pub approvals: usize,
    pub approvals_required: u32,
    pub requester: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    pub waiting_seconds: i64,
    /// When this level's window closes.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Who is asked next if nobody decides: the next level's role, or what happens once every
    /// level ran out (`on exhaustion: reject`).
    pub next: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// Whether the caller may decide it (their role reaches the level's, they did not ask and
    /// did not approve yet). `None` when the caller is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yours: Option<bool>,
}

/// Whether `caller_arn` may decide `approval` now: an approver at its level, not its requester,
/// not already counted.
pub fn may_decide(policy: &ApproverPolicy, approval: &Approval, caller_arn: &str) -> bool {
    let Ok(approver) = policy.approver(caller_arn) else {
        return false;
    };
    policy.may_decide_at(&approver, &approval.role).is_ok()
        && !policy.is_self_approval(&approver, &approval.requester)
        && !approval
            .approvals
            .iter()
            .any(|v| v.person == approver.person.as_str())
}

/// The approvals waiting on open incidents, oldest request first; `caller_arn` marks those the
/// caller may decide.
pub async fn waiting(
    clients: &Clients,
    names: &TableNames,
    config: &Config,
    caller_arn: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<Waiting>, StoreError> {
    let incidents = IncidentStore::new(clients.clone(), names.clone());
    let mut open = BTreeSet::new();
    for status in open_statuses() {
        for s in incidents.by_status(status).await? {
            open.insert(s.incident_id);
        }
    }
    let mut out = Vec::new();
    for incident_id in open {
        out.extend(waiting_on(clients, names, config, &incident_id, caller_arn, now).await?);
    }
    out.sort_by_key(|w| w.requested_at);
    Ok(out)
}

/// The approvals waiting on one incident (none when it does not exist), oldest request first.
pub async fn waiting_on(
    clients: &Clients,
    names: &TableNames,
    config: &Config,
    incident_id: &str,
    caller_arn: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<Waiting>, StoreError> {
    let incidents = IncidentStore::new(clients.clone(), names.clone());
    let Some(incident) = incidents.get(incident_id).await? else {
        return Ok(Vec::new());
    };
    let policy = ApproverPolicy::from_config(config);
    let (levels, on_exhausted) = match &incident.decision {
        Some(d) => (d.escalation.as_slice(), d.on_exhausted),
        None => (&[][..], OnExhausted::Reject),
    };
    let mut out = Vec::new();
    let approvals = ApprovalStore::new(clients.clone(), names.clone());
    for a in approvals.pending(incident_id).await? {
        if a.status != ApprovalStatus::Pending || a.is_expired(now) {
            continue;
        }
        let next = match levels.get(a.level as usize + 1) {
            Some(level) => level.role.clone(),
            None => match on_exhausted {
                OnExhausted::Reject => "on exhaustion: reject".to_owned(),
                OnExhausted::Approve => "on exhaustion: approve".to_owned(),
            },
        };
        out.push(Waiting {
            incident_id: incident_id.to_owned(),
            severity: incident.summary.severity,
            step_id: a.step_id.clone(),
            level: a.level,
            role: a.role.clone(),
            approvals: a.approvals.len(),
            approvals_required: a.approvals_required,
            requester: a.requester.clone(),
            requested_at: a.requested_at,
            waiting_seconds: (now - a.requested_at).whole_seconds(),
            expires_at: a.expires_at,
            next,
            plan_hash: a.plan_hash.clone(),
            yours: caller_arn.map(|c| may_decide(&policy, &a, c)),
        });
    }
    out.sort_by_key(|w| w.requested_at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::incident::Timeline;

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn summary(severity: Severity, contained: Option<i64>) -> IncidentSummary {
        IncidentSummary {
            incident_id: "inc-00000000000000000001".into(),
            status: Status::Containment,
            severity,
            playbook: Some("immediate-isolation".into()),
            resource_key: "123456789012/ec2-instance/i-0abc".into(),
            finding_ids: vec![],
            timeline: Timeline {
                first_seen: None,
                detected_at: at(0),
                triaged_at: None,
                contained_at: contained.map(at),
                resolved_at: None,
            },
        }
    }

    const W: ConfigDuration = ConfigDuration::from_secs(900);

    #[test]
    fn the_sla_is_met_due_or_breached() {
        let hour = Sla::Within(ir_core::duration::ConfigDuration::from_secs(3600));
        let due = sla_state(&summary(Severity::High, None), hour, W, at(20));
        assert_eq!(
            due,
            SlaState::Due {
                respond_by: at(60),
                seconds_left: 40 * 60
            }
        );
        let breached = sla_state(&summary(Severity::High, None), hour, W, at(75));
        assert_eq!(
            breached,
            SlaState::Breached {
                respond_by: at(60),
                seconds_over: 15 * 60
            }
        );
        let met = sla_state(&summary(Severity::High, Some(30)), hour, W, at(500));
        assert_eq!(met, SlaState::Met { respond_by: at(60) });
        let late = sla_state(&summary(Severity::High, Some(90)), hour, W, at(500));
        assert!(matches!(
            late,
            SlaState::Breached {
                seconds_over: 1800,
                ..
            }
        ));
    }

    #[test]
    fn a_row_splits_the_resource_key_and_takes_the_severitys_sla() {
        let config = Config::embedded().unwrap();
        let r = row(&summary(Severity::Critical, None), None, &config, at(5));
        assert_eq!(
            (
                r.account.as_str(),
                r.resource_kind.as_str(),
                r.resource_id.as_str()
            ),
            ("123456789012", "ec2-instance", "i-0abc")
        );
        assert_eq!(r.age_seconds, 300);
        // Critical is immediate: due within triage.immediate_window (15m) of detection.
        assert!(matches!(
            r.sla,
            Some(SlaState::Due {
                seconds_left: 600,
                ..
            })
        ));
        let late = row(&summary(Severity::Critical, None), None, &config, at(16));
        assert!(matches!(
            late.sla,
            Some(SlaState::Breached {
                seconds_over: 60,
                ..
            })
        ));
    }
}
