//! Severity: the four labels the suite reasons in, and how each source's scale maps onto them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The incident severity. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every label, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// GuardDuty's 1.0–10.0 scale: 1.0–3.9 low, 4.0–6.9 medium, 7.0–8.9 high, 9.0–10.0 critical.
    /// Values between bands (3.95) fall to the lower band; anything outside 1.0–10.0 is refused.
    pub fn from_guardduty(value: f64) -> Result<Severity, String> {
        if !value.is_finite() || !(1.0..=10.0).contains(&value) {
            return Err(format!("GuardDuty severity {value} is outside 1.0–10.0"));
        }
        Ok(if value >= 9.0 {
            Severity::Critical
        } else if value >= 7.0 {
            Severity::High
        } else if value >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        })
    }

    /// ASFF `Severity.Label`. `INFORMATIONAL` maps to `low`.
    pub fn from_asff_label(label: &str) -> Result<Severity, String> {
        match label {
            "INFORMATIONAL" | "LOW" => Ok(Severity::Low),
            "MEDIUM" => Ok(Severity::Medium),
            "HIGH" => Ok(Severity::High),
            "CRITICAL" => Ok(Severity::Critical),
            other => Err(format!(
                "Security Hub severity label `{other}` is not one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL"
            )),
        }
    }

    /// ASFF `Severity.Normalized` (0–100): 0 informational, 1–39 low, 40–69 medium, 70–89 high,
    /// 90–100 critical.
    pub fn from_asff_normalized(value: f64) -> Result<Severity, String> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(format!(
                "Security Hub normalized severity {value} is outside 0–100"
            ));
        }
        Ok(if value >= 90.0 {
            Severity::Critical
        } else if value >= 70.0 {
            Severity::High
        } else if value >= 40.0 {
            Severity::Medium
        } else {
            Severity::Low
        })
    }

    /// The lowest point of this label's band on the common [0, 1] scale: used as the scoring
    /// component when a finding carries only a label.
    pub fn band_floor(self) -> f64 {
        match self {
            Severity::Low => 0.1,
            Severity::Medium => 0.4,
            Severity::High => 0.7,
            Severity::Critical => 0.9,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "`{other}` is not a severity (low, medium, high, critical)"
            )),
        }
    }
}

/// The scale a finding's numeric severity was given on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeverityScale {
    /// GuardDuty, 1.0–10.0.
    GuardDuty,
    /// ASFF `Severity.Normalized`, 0–100.
    AsffNormalized,
    /// ASFF with a label and no number.
    AsffLabel,
}

/// A finding's severity as delivered: the label, the original number and its scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingSeverity {
    pub label: Severity,
    /// The original numeric value (GuardDuty `severity`, ASFF `Severity.Normalized`).
    pub value: Option<f64>,
    pub scale: SeverityScale,
}

impl FindingSeverity {
    /// The severity on the common [0, 1] scale used by scoring.
    pub fn component(&self) -> f64 {
        let c = match (self.scale, self.value) {
            (SeverityScale::GuardDuty, Some(v)) => v / 10.0,
            (SeverityScale::AsffNormalized, Some(v)) => v / 100.0,
            _ => self.label.band_floor(),
        };
        c.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardduty_bands() {
        let cases = [
            (1.0, Severity::Low),
            (3.9, Severity::Low),
            (3.95, Severity::Low),
            (4.0, Severity::Medium),
            (6.9, Severity::Medium),
            (7.0, Severity::High),
            (8.0, Severity::High),
            (8.9, Severity::High),
            (9.0, Severity::Critical),
            (10.0, Severity::Critical),
        ];
        for (v, want) in cases {
            assert_eq!(Severity::from_guardduty(v).unwrap(), want, "{v}");
        }
        for bad in [0.0, 0.99, 10.01, -3.0, f64::NAN, f64::INFINITY] {
            assert!(Severity::from_guardduty(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn asff_labels_and_numbers() {
        assert_eq!(
            Severity::from_asff_label("INFORMATIONAL").unwrap(),
            Severity::Low
        );
        assert_eq!(
            Severity::from_asff_label("CRITICAL").unwrap(),
            Severity::Critical
        );
        assert!(Severity::from_asff_label("critical").is_err());
        assert_eq!(Severity::from_asff_normalized(0.0).unwrap(), Severity::Low);
        assert_eq!(
            Severity::from_asff_normalized(40.0).unwrap(),
            Severity::Medium
        );
        assert_eq!(
            Severity::from_asff_normalized(70.0).unwrap(),
            Severity::High
        );
        assert_eq!(
            Severity::from_asff_normalized(90.0).unwrap(),
            Severity::Critical
        );
        assert!(Severity::from_asff_normalized(101.0).is_err());
    }

    #[test]
    fn ordering_is_by_gravity() {
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
        assert_eq!("High".parse::<Severity>().unwrap(), Severity::High);
    }

    #[test]
    fn component_uses_the_scale() {
        let gd = FindingSeverity {
            label: Severity::High,
            value: Some(8.0),
            scale: SeverityScale::GuardDuty,
        };
        assert!((gd.component() - 0.8).abs() < 1e-9);
        let sh = FindingSeverity {
            label: Severity::Medium,
            value: Some(40.0),
            scale: SeverityScale::AsffNormalized,
        };
        assert!((sh.component() - 0.4).abs() < 1e-9);
        let label = FindingSeverity {
            label: Severity::Critical,
            value: None,
            scale: SeverityScale::AsffLabel,
        };
        assert!((label.component() - 0.9).abs() < 1e-9);
    }
}
