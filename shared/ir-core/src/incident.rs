//! The incident: status, timestamps, and the transitions allowed between statuses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::severity::Severity;

/// Where an incident stands. Transitions only move forward, except that containment can be
/// released back to triage when it was rejected or released without resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Triage,
    /// Triaged, its playbook waiting for a slot (`orchestrator.max_concurrent_playbooks`
    /// executions already run): it starts in arrival order when one frees.
    Queued,
    Containment,
    Contained,
    /// A step set to stop on failure failed: the playbook stopped, and a responder decides
    /// (`ir retry` the step, or `ir resolve`).
    NeedsAttention,
    Resolved,
    Postmortem,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Triage,
        Status::Queued,
        Status::Containment,
        Status::Contained,
        Status::NeedsAttention,
        Status::Resolved,
        Status::Postmortem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triage => "triage",
            Status::Queued => "queued",
            Status::Containment => "containment",
            Status::Contained => "contained",
            Status::NeedsAttention => "needs-attention",
            Status::Resolved => "resolved",
            Status::Postmortem => "postmortem",
        }
    }

    /// An incident is open until it is resolved.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Triage
                | Status::Queued
                | Status::Containment
                | Status::Contained
                | Status::NeedsAttention
        )
    }

    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: Status) -> bool {
        use Status::{
            Contained, Containment, NeedsAttention, Postmortem, Queued, Resolved, Triage,
        };
        matches!(
            (self, to),
            (Triage, Containment)
                | (Triage, Queued)
                | (Queued, Containment)
                | (Queued, Resolved)
                | (Triage, Resolved)
                | (Containment, Contained)
                | (Containment, Triage)
                | (Containment, Resolved)
                | (Contained, Resolved)
                | (Containment, NeedsAttention)
                | (Contained, NeedsAttention)
                | (NeedsAttention, Containment)
                | (NeedsAttention, Resolved)
                | (Resolved, Postmortem)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an incident status"))
    }
}

/// The timestamps from which response metrics are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// When the activity was first seen by the detector (the earliest finding's first-seen).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub first_seen: Option<OffsetDateTime>,
    /// When the suite received the first finding.
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub triaged_at: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub contained_at: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub resolved_at: Option<OffsetDateTime>,
}

impl Timeline {
    /// Time to detect: first activity → received by the suite.
    pub fn mttd(&self) -> Option<Duration> {
        self.first_seen.map(|f| self.detected_at - f)
    }

    /// Time to contain: received → contained.
    pub fn mttc(&self) -> Option<Duration> {
        self.contained_at.map(|c| c - self.detected_at)
    }
}

/// The summary of an incident as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSummary {
    pub incident_id: String,
    pub status: Status,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    /// `account/kind/id` (see `SecurityEvent::resource_key`).
    pub resource_key: String,
    pub finding_ids: Vec<String>,
    pub timeline: Timeline,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn transitions() {
        assert!(Status::Triage.can_become(Status::Containment));
        assert!(Status::Containment.can_become(Status::Contained));
        assert!(Status::Contained.can_become(Status::Resolved));
        assert!(Status::Resolved.can_become(Status::Postmortem));
        assert!(!Status::Resolved.can_become(Status::Triage));
        assert!(!Status::Contained.can_become(Status::Containment));
        assert!(!Status::Postmortem.can_become(Status::Resolved));
        for s in Status::ALL {
            assert!(!s.can_become(s), "{s} to itself");
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
    }

    #[test]
    fn metrics() {
        let t = Timeline {
            first_seen: Some(datetime!(2026-11-20 10:00 UTC)),
            detected_at: datetime!(2026-11-20 10:05 UTC),
            triaged_at: Some(datetime!(2026-11-20 10:05:02 UTC)),
            contained_at: Some(datetime!(2026-11-20 10:09 UTC)),
            resolved_at: None,
        };
        assert_eq!(t.mttd(), Some(Duration::minutes(5)));
        assert_eq!(t.mttc(), Some(Duration::minutes(4)));
    }
}
