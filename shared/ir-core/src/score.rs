//! Scoring: a weighted sum of four components, each in [0, 1].

use serde::{Deserialize, Serialize};

use crate::config::{Scoring, Thresholds, Weights};
use crate::enrich::Enrichment;
use crate::event::SecurityEvent;
use crate::severity::Severity;

/// The four inputs of the score, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// The highest finding severity on the common scale (GuardDuty /10, ASFF normalized /100).
    pub severity: f64,
    /// Asset criticality: low 0.25, medium 0.5, high 0.75, critical 1.0.
    pub asset_criticality: f64,
    /// Earlier incidents on the resource over the saturation count, capped at 1.
    pub historical_frequency: f64,
    /// The best threat-intel score among the indicators.
    pub threat_score: f64,
}

/// The score with how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreBreakdown {
    pub components: Components,
    pub weights: Weights,
    /// Each component times its weight.
    pub contributions: Components,
    /// The sum of the contributions, in [0, 1].
    pub score: f64,
    /// The severity the score alone maps to.
    pub score_severity: Severity,
}

/// Asset criticality on [0, 1].
pub fn criticality_component(c: Severity) -> f64 {
    match c {
        Severity::Low => 0.25,
        Severity::Medium => 0.5,
        Severity::High => 0.75,
        Severity::Critical => 1.0,
    }
}

/// The components of an incident.
pub fn components(
    events: &[SecurityEvent],
    enrichment: &Enrichment,
    scoring: &Scoring,
) -> Components {
    let severity = events
        .iter()
        .map(|e| e.severity.component())
        .fold(0.0, f64::max);
    let saturation = f64::from(scoring.historical_saturation.max(1));
    Components {
        severity,
        asset_criticality: criticality_component(enrichment.criticality.value),
        historical_frequency: (f64::from(enrichment.history_count) / saturation).min(1.0),
        threat_score: enrichment.threat_score.clamp(0.0, 1.0),
    }
}

/// The severity a score maps to under the thresholds (`score >= critical` → critical, …).
pub fn severity_for(score: f64, t: &Thresholds) -> Severity {
    if score >= t.critical {
        Severity::Critical
    } else if score >= t.high {
        Severity::High
    } else if score >= t.medium {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// Scores components under the weights and thresholds.
pub fn score(c: Components, scoring: &Scoring) -> ScoreBreakdown {
    let w = scoring.weights;
    let clamp = |v: f64| v.clamp(0.0, 1.0);
    let contributions = Components {
        severity: w.severity * clamp(c.severity),
        asset_criticality: w.asset_criticality * clamp(c.asset_criticality),
        historical_frequency: w.historical_frequency * clamp(c.historical_frequency),
        threat_score: w.threat_score * clamp(c.threat_score),
    };
    let sum = contributions.severity
        + contributions.asset_criticality
        + contributions.historical_frequency
        + contributions.threat_score;
    // Rounded to 1e-9 so that 0.8 computed as 0.7999999999 still meets a 0.8 threshold.
    let score = (clamp(sum) * 1e9).round() / 1e9;
    ScoreBreakdown {
        components: c,
        weights: w,
        contributions,
        score,
        score_severity: severity_for(score, &scoring.thresholds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use proptest::prelude::*;

    fn scoring() -> Scoring {
        Config::embedded().unwrap().triage.scoring
    }

    #[test]
    fn the_seed_weights_by_hand() {
        let c = Components {
            severity: 0.8,
            asset_criticality: 1.0,
            historical_frequency: 0.4,
            threat_score: 1.0,
        };
        let b = score(c, &scoring());
        // 0.4*0.8 + 0.3*1.0 + 0.2*0.4 + 0.1*1.0 = 0.32 + 0.3 + 0.08 + 0.1
        assert!((b.score - 0.8).abs() < 1e-9, "{}", b.score);
        assert_eq!(b.score_severity, Severity::Critical);
        let zero = Components {
            severity: 0.0,
            asset_criticality: 0.0,
            historical_frequency: 0.0,
            threat_score: 0.0,
        };
        assert_eq!(score(zero, &scoring()).score_severity, Severity::Low);
    }

    #[test]
    fn thresholds_are_inclusive() {
        let t = scoring().thresholds;
        assert_eq!(severity_for(0.8, &t), Severity::Critical);
        assert_eq!(severity_for(0.79, &t), Severity::High);
        assert_eq!(severity_for(0.5, &t), Severity::High);
        assert_eq!(severity_for(0.2, &t), Severity::Medium);
        assert_eq!(severity_for(0.19, &t), Severity::Low);
    }

    fn unit() -> impl Strategy<Value = f64> {
        0.0f64..=1.0
    }

    fn components_strategy() -> impl Strategy<Value = Components> {
        (unit(), unit(), unit(), unit()).prop_map(|(a, b, c, d)| Components {
            severity: a,
            asset_criticality: b,
            historical_frequency: c,
            threat_score: d,
        })
    }

    fn weights_strategy() -> impl Strategy<Value = Weights> {
        (0u32..=100, 0u32..=100, 0u32..=100, 0u32..=100)
            .prop_filter("non-zero", |w| w.0 + w.1 + w.2 + w.3 > 0)
            .prop_map(|(a, b, c, d)| {
                let s = f64::from(a + b + c + d);
                Weights {
                    severity: f64::from(a) / s,
                    asset_criticality: f64::from(b) / s,
                    historical_frequency: f64::from(c) / s,
                    threat_score: f64::from(d) / s,
                }
            })
    }

    proptest! {
        #[test]
        fn score_is_in_unit_interval(c in components_strategy(), w in weights_strategy()) {
            let s = Scoring { weights: w, ..scoring() };
            let b = score(c, &s);
            prop_assert!((0.0..=1.0).contains(&b.score), "{}", b.score);
        }

        #[test]
        fn raising_any_component_never_lowers_score_or_severity(
            c in components_strategy(), w in weights_strategy(), which in 0usize..4, bump in unit()
        ) {
            let s = Scoring { weights: w, ..scoring() };
            let mut raised = c;
            let slot = match which {
                0 => &mut raised.severity,
                1 => &mut raised.asset_criticality,
                2 => &mut raised.historical_frequency,
                _ => &mut raised.threat_score,
            };
            *slot = (*slot + bump).min(1.0);
            let (before, after) = (score(c, &s), score(raised, &s));
            prop_assert!(after.score >= before.score, "{} < {}", after.score, before.score);
            prop_assert!(after.score_severity >= before.score_severity);
        }
    }
}
