//! Enrichment: what the organization knows about the resource and the remote indicators.
//!
//! Sources, in order of authority for each asset field: the asset registry, then the resource's
//! tags carried by the finding, then the configured defaults. Every value says where it came from.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::AssetDefaults;
use crate::error::{ErrorName, Named};
use crate::event::{Indicator, IndicatorKind, SecurityEvent};
use crate::severity::Severity;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EnrichmentDataError {
    #[error("asset registry: {0}")]
    Registry(String),
    #[error("threat intel line {line}: {message}")]
    Intel { line: usize, message: String },
}

impl Named for EnrichmentDataError {
    fn error_name(&self) -> ErrorName {
        ErrorName::Configuration
    }
}

/// One entry of the asset registry file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRecord {
    pub resource_id: String,
    /// The account the resource is in. An entry without one is about that id in any account;
    /// one with it only in that account, and wins there (the same instance id in two accounts
    /// is two resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub criticality: Option<Severity>,
    #[serde(default)]
    pub data_classification: Option<String>,
}

/// The asset registry: (account, resource id) → record; an entry without an account is about
/// the id in any account.
#[derive(Debug, Clone, Default)]
pub struct AssetRegistry {
    by_id: HashMap<(Option<String>, String), AssetRecord>,
}

impl AssetRegistry {
    /// Parses the registry YAML: a list of records. Duplicate ids are an error.
    pub fn from_yaml(text: &str) -> Result<AssetRegistry, EnrichmentDataError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let records: Option<Vec<AssetRecord>> =
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                EnrichmentDataError::Registry(format!("{path}: {}", e.into_inner()))
            })?;
        let mut by_id = HashMap::new();
        for (i, r) in records.unwrap_or_default().into_iter().enumerate() {
            if r.resource_id.trim().is_empty() {
                return Err(EnrichmentDataError::Registry(format!(
                    "[{i}].resource_id: empty"
                )));
            }
            if let Some(a) = &r.account
                && !crate::accounts::is_account_id(a)
            {
                return Err(EnrichmentDataError::Registry(format!(
                    "[{i}].account: `{a}` is not an account id (twelve digits)"
                )));
            }
            if let Some(prev) = by_id.insert((r.account.clone(), r.resource_id.clone()), r) {
                return Err(EnrichmentDataError::Registry(format!(
                    "[{i}].resource_id: duplicate `{}`{}",
                    prev.resource_id,
                    prev.account
                        .as_deref()
                        .map(|a| format!(" in account {a}"))
                        .unwrap_or_default()
                )));
            }
        }
        Ok(AssetRegistry { by_id })
    }

    /// The record of `resource_id` in `account`: the entry naming that account, else the one
    /// naming none.
    pub fn get(&self, account: &str, resource_id: &str) -> Option<&AssetRecord> {
        self.by_id
            .get(&(Some(account.to_owned()), resource_id.to_owned()))
            .or_else(|| self.by_id.get(&(None, resource_id.to_owned())))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The threat-intelligence list: IPs, CIDR blocks and domains, each with a score in [0, 1].
#[derive(Debug, Clone, Default)]
pub struct ThreatIntel {
    ips: HashMap<IpAddr, f64>,
    nets: Vec<(IpAddr, u8, f64)>,
    domains: HashMap<String, f64>,
}

impl ThreatIntel {
    /// Parses the list: one indicator per line, an optional score in [0, 1] after white space
    /// (default 1.0); `#` starts a comment. A domain matches itself and its subdomains.
    pub fn parse(text: &str) -> Result<ThreatIntel, EnrichmentDataError> {
        let mut intel = ThreatIntel::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let err = |message: String| EnrichmentDataError::Intel {
                line: line_no,
                message,
            };
            let mut parts = content.split_whitespace();
            let indicator = parts.next().unwrap_or_default();
            let score = match parts.next() {
                None => 1.0,
                Some(s) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| err(format!("score `{s}` is not a number in [0, 1]")))?,
            };
            if let Some(extra) = parts.next() {
                return Err(err(format!("unexpected `{extra}` after the score")));
            }
            if let Some((addr, bits)) = indicator.split_once('/') {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| err(format!("`{indicator}` is not a CIDR block")))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits
                    .parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| err(format!("`{indicator}` has a bad prefix length")))?;
                intel.nets.push((addr, bits, score));
            } else if let Ok(ip) = indicator.parse::<IpAddr>() {
                intel.ips.insert(ip, score);
            } else if is_domain(indicator) {
                intel
                    .domains
                    .insert(indicator.trim_end_matches('.').to_ascii_lowercase(), score);
            } else {
                return Err(err(format!(
                    "`{indicator}` is not an IP address, CIDR block or domain"
                )));
            }
        }
        Ok(intel)
    }

    pub fn len(&self) -> usize {
        self.ips.len() + self.nets.len() + self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best-scoring entry matching one indicator.
    pub fn lookup(&self, indicator: &Indicator) -> Option<(String, f64)> {
        match indicator.kind {
            IndicatorKind::Ip => {
                let ip: IpAddr = indicator.value.parse().ok()?;
                let exact = self.ips.get(&ip).map(|s| (ip.to_string(), *s));
                let net = self
                    .nets
                    .iter()
                    .filter(|(net, bits, _)| in_net(ip, *net, *bits))
                    .map(|(net, bits, s)| (format!("{net}/{bits}"), *s))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                [exact, net]
                    .into_iter()
                    .flatten()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            }
            IndicatorKind::Domain => {
                let mut d = indicator.value.trim_end_matches('.');
                loop {
                    if let Some(s) = self.domains.get(d) {
                        return Some((d.to_owned(), *s));
                    }
                    d = d.split_once('.')?.1;
                }
            }
        }
    }
}

fn is_domain(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Where an enriched value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Registry,
    Tag,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributed<T> {
    pub value: T,
    pub origin: Origin,
}

/// A threat-intel hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntelMatch {
    pub indicator: String,
    pub matched: String,
    pub score: f64,
}

/// Everything triage knows about an incident's resource and indicators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrichment {
    pub owner: Attributed<String>,
    pub environment: Attributed<String>,
    pub criticality: Attributed<Severity>,
    pub data_classification: Attributed<String>,
    /// The highest score among the matched indicators; 0 when none matched.
    pub threat_score: f64,
    #[serde(default)]
    pub intel_matches: Vec<IntelMatch>,
    /// Earlier incidents on the resource.
    pub history_count: u32,
    /// Things worth knowing that did not change the outcome (an unreadable tag, …).
    #[serde(default)]
    pub notes: Vec<String>,
}

fn tag<'t>(tags: &'t BTreeMap<String, String>, names: &[&str]) -> Option<&'t str> {
    tags.iter()
        .find(|(k, v)| names.iter().any(|n| k.eq_ignore_ascii_case(n)) && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

fn pick(registry: Option<&String>, tag: Option<&str>, default: &str) -> Attributed<String> {
    match (registry, tag) {
        (Some(v), _) => Attributed {
            value: v.clone(),
            origin: Origin::Registry,
        },
        (None, Some(t)) => Attributed {
            value: t.to_owned(),
            origin: Origin::Tag,
        },
        (None, None) => Attributed {
            value: default.to_owned(),
            origin: Origin::Default,
        },
    }
}

/// Enriches an incident (its events share one resource).
pub fn enrich(
    events: &[SecurityEvent],
    registry: &AssetRegistry,
    intel: &ThreatIntel,
    defaults: &AssetDefaults,
    history_count: u32,
) -> Enrichment {
    let mut notes = Vec::new();
    let resource_id = events.first().map(|e| e.resource.id()).unwrap_or_default();
    let account = events
        .first()
        .map(|e| e.account.as_str())
        .unwrap_or_default();
    let record = registry.get(account, resource_id);
    let empty = BTreeMap::new();
    let tags = events
        .iter()
        .map(|e| &e.resource_tags)
        .find(|t| !t.is_empty())
        .unwrap_or(&empty);

    let owner = pick(
        record.and_then(|r| r.owner.as_ref()),
        tag(tags, &["owner"]),
        &defaults.owner,
    );
    let environment = pick(
        record.and_then(|r| r.environment.as_ref()),
        tag(tags, &["env", "environment"]),
        &defaults.environment,
    );
    let data_classification = pick(
        record.and_then(|r| r.data_classification.as_ref()),
        tag(
            tags,
            &[
                "data-classification",
                "data_classification",
                "dataclassification",
            ],
        ),
        &defaults.data_classification,
    );
    let tag_criticality = tag(tags, &["criticality"]).and_then(|t| match t.parse::<Severity>() {
        Ok(s) => Some(s),
        Err(_) => {
            notes.push(format!(
                "tag criticality=`{t}` is not low, medium, high or critical: ignored"
            ));
            None
        }
    });
    let criticality = match (record.and_then(|r| r.criticality), tag_criticality) {
        (Some(v), _) => Attributed {
            value: v,
            origin: Origin::Registry,
        },
        (None, Some(v)) => Attributed {
            value: v,
            origin: Origin::Tag,
        },
        (None, None) => Attributed {
            value: defaults.criticality,
            origin: Origin::Default,
        },
    };
    if record.is_none() && tags.is_empty() {
        notes.push(format!(
            "asset `{resource_id}` is unknown to the registry and carries no tags: defaults used"
        ));
    }

    let mut intel_matches = Vec::new();
    for e in events {
        for ind in &e.indicators {
            if let Some((matched, score)) = intel.lookup(ind)
                && !intel_matches
                    .iter()
                    .any(|m: &IntelMatch| m.indicator == ind.value)
            {
                intel_matches.push(IntelMatch {
                    indicator: ind.value.clone(),
                    matched,
                    score,
                });
            }
        }
    }
    let threat_score = intel_matches.iter().map(|m| m.score).fold(0.0, f64::max);
    Enrichment {
        owner,
        environment,
        criticality,
        data_classification,
        threat_score,
        intel_matches,
        history_count,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(v: &str) -> Indicator {
        Indicator {
            kind: IndicatorKind::Ip,
            value: v.into(),
            asn: None,
        }
    }
    fn domain(v: &str) -> Indicator {
        Indicator {
            kind: IndicatorKind::Domain,
            value: v.into(),
            asn: None,
        }
    }

    #[test]
    fn intel_matches_ips_nets_and_subdomains() {
        let intel = ThreatIntel::parse(
            "# c\n198.51.100.23 0.9\n203.0.113.0/24 0.5\nevil.example\n2001:db8::/32 0.3\n\n",
        )
        .unwrap();
        assert_eq!(intel.len(), 4);
        assert_eq!(
            intel.lookup(&ip("198.51.100.23")),
            Some(("198.51.100.23".into(), 0.9))
        );
        assert_eq!(
            intel.lookup(&ip("203.0.113.77")),
            Some(("203.0.113.0/24".into(), 0.5))
        );
        assert_eq!(
            intel.lookup(&ip("2001:db8::1")),
            Some(("2001:db8::/32".into(), 0.3))
        );
        assert_eq!(intel.lookup(&ip("192.0.2.1")), None);
        assert_eq!(
            intel.lookup(&domain("c2.evil.example")),
            Some(("evil.example".into(), 1.0))
        );
        assert_eq!(intel.lookup(&domain("notevil.example")), None);
        assert_eq!(intel.lookup(&ip("not-an-ip")), None);
    }

    #[test]
    fn intel_errors_name_the_line() {
        for (text, line) in [
            ("1.2.3.4 2.0", 1),
            ("# ok\n1.2.3.4/40", 2),
            ("ok.example\nnot_a_thing", 2),
            ("1.2.3.4 0.5 extra", 1),
        ] {
            match ThreatIntel::parse(text) {
                Err(EnrichmentDataError::Intel { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn registry_rejects_unknown_fields_and_duplicates() {
        assert!(AssetRegistry::from_yaml("- resource_id: a\n  criticality: extreme\n").is_err());
        assert!(AssetRegistry::from_yaml("- resource_id: a\n  ownr: x\n").is_err());
        assert!(AssetRegistry::from_yaml("- resource_id: a\n- resource_id: a\n").is_err());
        assert_eq!(AssetRegistry::from_yaml("").unwrap().len(), 0);
        let r = AssetRegistry::from_yaml("- resource_id: a\n  criticality: high\n").unwrap();
        assert_eq!(
            r.get("111122223333", "a").unwrap().criticality,
            Some(Severity::High)
        );
    }

    #[test]
    fn the_same_id_in_two_accounts_is_two_assets() {
        let r = AssetRegistry::from_yaml(
            "- resource_id: i-1\n  account: '111111111111'\n  criticality: critical\n\
             - resource_id: i-1\n  account: '222222222222'\n  criticality: low\n\
             - resource_id: i-1\n  criticality: medium\n",
        )
        .unwrap();
        let of = |a: &str| r.get(a, "i-1").and_then(|x| x.criticality);
        assert_eq!(of("111111111111"), Some(Severity::Critical));
        assert_eq!(of("222222222222"), Some(Severity::Low));
        // An account no entry names: the entry naming none.
        assert_eq!(of("333333333333"), Some(Severity::Medium));
        // Duplicates are per account; an account must be one.
        assert!(
            AssetRegistry::from_yaml(
                "- resource_id: i-1\n  account: '111111111111'\n\
                 - resource_id: i-1\n  account: '111111111111'\n"
            )
            .is_err()
        );
        assert!(AssetRegistry::from_yaml("- resource_id: i-1\n  account: prod\n").is_err());
    }
}
