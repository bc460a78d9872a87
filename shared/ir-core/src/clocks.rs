//! The clocks an incident runs against: regulatory notification deadlines (by the asset's data
//! classification, counted from detection), their reminders at fractions of the time left, the
//! response SLA's breach, and the leadership summary's period. Pure: every answer is a function
//! of the recorded incident, the config and `now`, so the scheduled checker and every view agree.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::config::{Config, Regime};

/// One regulatory deadline an incident carries (decided at triage, from detection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegulatoryDeadline {
    /// The regime's id (`gdpr`).
    pub regime: String,
    /// The regime's name as configured.
    pub name: String,
    /// The data classification that brought it in.
    pub data_classification: String,
    /// The time allowed, as a duration (`3d`).
    pub deadline: String,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

impl RegulatoryDeadline {
    /// Seconds left at `now` (negative: past due).
    pub fn seconds_left(&self, now: OffsetDateTime) -> i64 {
        (self.due_at - now).whole_seconds()
    }

    /// `GDPR: 71h 59m left` or `GDPR: BREACHED 2h 5m ago`, for a list or an update.
    pub fn describe(&self, now: OffsetDateTime) -> String {
        let left = self.seconds_left(now);
        if left >= 0 {
            format!("{}: {} left", self.regime, span(left))
        } else {
            format!("{}: BREACHED {} ago", self.regime, span(-left))
        }
    }
}

/// `3d 4h`, `5h 2m`, `12m 5s`, `40s`.
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn deadline_of(
    regime: &Regime,
    classification: &str,
    detected_at: OffsetDateTime,
) -> RegulatoryDeadline {
    let secs = i64::try_from(regime.deadline.as_secs()).unwrap_or(i64::MAX);
    RegulatoryDeadline {
        regime: regime.id.clone(),
        name: regime.name.clone(),
        data_classification: classification.to_owned(),
        deadline: regime.deadline.to_string(),
        detected_at,
        due_at: detected_at.saturating_add(Duration::seconds(secs)),
    }
}

/// The deadlines an incident on an asset of `classification` carries (case-insensitive match;
/// in the config's order).
pub fn deadlines(
    config: &Config,
    classification: &str,
    detected_at: OffsetDateTime,
) -> Vec<RegulatoryDeadline> {
    config
        .regulatory
        .regimes
        .iter()
        .filter(|r| {
            r.data_classifications
                .iter()
                .any(|c| c.eq_ignore_ascii_case(classification.trim()))
        })
        .map(|r| deadline_of(r, classification.trim(), detected_at))
        .collect()
}

/// A reminder of a regulatory deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reminder {
    /// This percentage of the time allowed is left (50, 10).
    Left(u8),
    /// The deadline passed.
    Breached,
}

impl Reminder {
    /// A stable key: `left-50`, `breached` (one reminder of each per incident and regime).
    pub fn key(self) -> String {
        match self {
            Reminder::Left(p) => format!("left-{p}"),
            Reminder::Breached => "breached".to_owned(),
        }
    }
}

/// The reminders whose time has come at `now`, the most urgent last: `Left(p)` once at most
/// p % of the time is left, `Breached` once past due. A reminder already sent is the caller's
/// to skip (by its key); a checker that slept through several sends only the latest.
pub fn due_reminders(
    deadline: &RegulatoryDeadline,
    fractions: &[f64],
    now: OffsetDateTime,
) -> Option<Reminder> {
    if now >= deadline.due_at {
        return Some(Reminder::Breached);
    }
    let total = (deadline.due_at - deadline.detected_at).as_seconds_f64();
    let left = (deadline.due_at - now).as_seconds_f64();
    if total <= 0.0 {
        return None;
    }
    fractions
        .iter()
        .filter(|f| **f > 0.0 && **f < 1.0 && left <= total * **f)
        .map(|f| percent(*f))
        .min()
        .map(Reminder::Left)
}

fn percent(f: f64) -> u8 {
    // In (0, 1): the check of the config holds it there.
    let p = (f * 100.0).round();
    if p <= 1.0 {
        1
    } else if p >= 99.0 {
        99
    } else {
        // Inside (1, 99): exact in u8.
        p as u8
    }
}

/// The leadership summary's period `now` falls in (periods of `every` since the epoch): one
/// summary per period, whichever checker run sends it first.
pub fn period(now: OffsetDateTime, every: Duration) -> i64 {
    let every = every.whole_seconds().max(1);
    now.unix_timestamp().div_euclid(every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use time::macros::datetime;

    fn config() -> Config {
        Config::embedded().unwrap()
    }

    #[test]
    fn an_asset_of_a_regulated_classification_carries_each_regimes_deadline() {
        let t = datetime!(2026-04-20 14:32 UTC);
        let d = deadlines(&config(), "Confidential", t);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].regime, "gdpr");
        assert_eq!(d[0].due_at, datetime!(2026-04-23 14:32 UTC));
        assert_eq!(d[0].deadline, "3d");
        assert!(deadlines(&config(), "internal", t).is_empty());
        let phi = deadlines(&config(), "phi", t);
        assert_eq!(phi[0].due_at, datetime!(2026-06-19 14:32 UTC));
    }

    #[test]
    fn reminders_come_at_their_fractions_and_at_the_breach() {
        let t = datetime!(2026-04-20 00:00 UTC);
        let d = &deadlines(&config(), "restricted", t)[0]; // 72 h
        let f = [0.5, 0.1];
        assert_eq!(due_reminders(d, &f, t + Duration::hours(35)), None);
        assert_eq!(
            due_reminders(d, &f, t + Duration::hours(36)),
            Some(Reminder::Left(50))
        );
        assert_eq!(
            due_reminders(d, &f, t + Duration::hours(65)),
            Some(Reminder::Left(10))
        );
        assert_eq!(
            due_reminders(d, &f, t + Duration::hours(72)),
            Some(Reminder::Breached)
        );
        assert_eq!(Reminder::Left(10).key(), "left-10");
        assert_eq!(
            d.describe(t + Duration::hours(73)),
            "gdpr: BREACHED 1h 0m ago"
        );
        assert_eq!(d.describe(t + Duration::minutes(1)), "gdpr: 2d 23h left");
    }

    #[test]
    fn one_leadership_period_per_interval() {
        let every = Duration::hours(4);
        let a = period(datetime!(2026-04-20 08:00 UTC), every);
        assert_eq!(a, period(datetime!(2026-04-20 11:59:59 UTC), every));
        assert_eq!(a + 1, period(datetime!(2026-04-20 12:00 UTC), every));
    }
}
