//! Response-time SLA: by when someone must act on an incident.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, Time, Weekday};

use crate::config::Sla;
use crate::duration::ConfigDuration;
use crate::severity::Severity;

/// Business days start at this hour, UTC.
pub const BUSINESS_DAY_START_HOUR: u8 = 9;

/// The SLA that applies to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaDecision {
    pub severity: Severity,
    /// The target as configured (`immediate`, `1h`, `4h`, `next_business_day`).
    pub target: String,
    /// In words (`immediate, all hands`, `within 1 hour`, …).
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub respond_by: OffsetDateTime,
}

/// The SLA for `severity` counted from `detected_at`. `immediate` is due within
/// `immediate_window` (`triage.immediate_window`); `next_business_day` is 09:00 UTC of the
/// next Monday–Friday after the detection date.
pub fn decide(
    severity: Severity,
    sla: Sla,
    detected_at: OffsetDateTime,
    immediate_window: ConfigDuration,
) -> SlaDecision {
    let (description, respond_by) = match sla {
        Sla::Immediate => {
            let secs = i64::try_from(immediate_window.as_secs()).unwrap_or(i64::MAX);
            (
                format!("immediate, all hands (within {immediate_window})"),
                detected_at.saturating_add(Duration::seconds(secs)),
            )
        }
        Sla::Within(d) => {
            let secs = d.as_secs();
            let words = match secs {
                s if s % 3600 == 0 && s / 3600 == 1 => "within 1 hour".to_owned(),
                s if s % 3600 == 0 => format!("within {} hours", s / 3600),
                s if s % 60 == 0 => format!("within {} minutes", s / 60),
                s => format!("within {s} seconds"),
            };
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            (words, detected_at.saturating_add(Duration::seconds(secs)))
        }
        Sla::NextBusinessDay => {
            let mut day = detected_at.to_offset(time::UtcOffset::UTC).date();
            while let Some(next) = day.next_day() {
                day = next;
                if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
                    break;
                }
            }
            let start = Time::from_hms(BUSINESS_DAY_START_HOUR, 0, 0).unwrap_or(Time::MIDNIGHT);
            (
                "next business day".to_owned(),
                day.with_time(start).assume_utc(),
            )
        }
    };
    SlaDecision {
        severity,
        target: sla.to_string(),
        description,
        respond_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::ConfigDuration;
    use time::macros::datetime;

    const W: ConfigDuration = ConfigDuration::from_secs(15 * 60);

    #[test]
    fn targets() {
        let t = datetime!(2026-11-20 10:00 UTC); // a Friday
        let now = decide(Severity::Critical, Sla::Immediate, t, W);
        assert_eq!(now.respond_by, datetime!(2026-11-20 10:15 UTC));
        assert_eq!(now.description, "immediate, all hands (within 15m)");
        let high = decide(
            Severity::High,
            Sla::Within(ConfigDuration::from_secs(3600)),
            t,
            W,
        );
        assert_eq!(high.respond_by, datetime!(2026-11-20 11:00 UTC));
        assert_eq!(high.description, "within 1 hour");
        assert_eq!(
            decide(
                Severity::Medium,
                Sla::Within(ConfigDuration::from_secs(4 * 3600)),
                t,
                W
            )
            .description,
            "within 4 hours"
        );
        assert_eq!(
            decide(Severity::Low, Sla::NextBusinessDay, t, W).respond_by,
            datetime!(2026-11-23 09:00 UTC)
        );
        assert_eq!(
            decide(
                Severity::Low,
                Sla::NextBusinessDay,
                datetime!(2026-11-17 23:00 UTC),
                W
            )
            .respond_by,
            datetime!(2026-11-18 09:00 UTC)
        );
    }
}
