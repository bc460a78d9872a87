//! Correlation: which incident a finding belongs to.
//!
//! The rule (also in ARCHITECTURE.md):
//! 1. Every finding has a canonical key (`SecurityEvent::finding_key`); the same GuardDuty finding
//!    delivered directly or through Security Hub has the same key.
//! 2. A finding whose key is already mapped to an incident is a **repeat**: it updates that
//!    incident (count, last seen, severity if higher) and starts nothing.
//! 3. Otherwise, if the finding's resource (account, kind, id) has an open incident, the finding
//!    **attaches** to it; a higher severity raises the incident's.
//! 4. Otherwise it opens a **new** incident whose id is derived from the finding key alone:
//!    `inc-` + the first 20 hex digits of SHA-256(`"finding:" + key`). Two deliveries of one
//!    finding racing each other compute the same id, so the conditional write in the store
//!    creates exactly one incident.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::SecurityEvent;

/// Length of the hex part of an incident id.
const ID_HEX_LEN: usize = 20;

/// The deterministic incident id opened by the finding with this canonical key.
pub fn incident_id(finding_key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"finding:")
        .chain_update(finding_key.as_bytes())
        .finalize();
    let mut id = String::with_capacity(4 + ID_HEX_LEN);
    id.push_str("inc-");
    id.push_str(&hex::encode(&digest[..ID_HEX_LEN / 2]));
    id
}

/// Whether `s` has the shape of an incident id (`inc-` + 20 lowercase hex digits). Safe to use
/// as a Step Functions execution name, a DynamoDB key and an S3 key prefix.
pub fn is_incident_id(s: &str) -> bool {
    s.strip_prefix("inc-").is_some_and(|h| {
        h.len() == ID_HEX_LEN
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The name of the executions (triage, then the playbook it starts) of one revision of an
/// incident: the incident id for the revision its first finding opened, `<id>-r<n>` for the n-th
/// re-triage after a later finding raised the severity. Unique per state machine and revision,
/// so racing deliveries of one escalation start each execution once.
pub fn execution_name(incident_id: &str, revision: u32) -> String {
    if revision == 0 {
        incident_id.to_owned()
    } else {
        format!("{incident_id}-r{revision}")
    }
}

/// What correlation decided for one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Correlation {
    /// The finding opens a new incident.
    New { incident_id: String },
    /// The same finding again (GuardDuty re-publishes with a larger count): an update.
    Repeat { incident_id: String },
    /// Another finding on a resource whose incident is open: attached to it.
    Attach { incident_id: String },
}

impl Correlation {
    pub fn incident_id(&self) -> &str {
        match self {
            Correlation::New { incident_id }
            | Correlation::Repeat { incident_id }
            | Correlation::Attach { incident_id } => incident_id,
        }
    }
}

/// Decides for one finding, given what the store knows: the incident its key is mapped to (if
/// any), and the open incident on its resource (if any).
pub fn correlate(
    event: &SecurityEvent,
    known_finding: Option<&str>,
    open_on_resource: Option<&str>,
) -> Correlation {
    if let Some(id) = known_finding {
        return Correlation::Repeat {
            incident_id: id.to_owned(),
        };
    }
    if let Some(id) = open_on_resource {
        return Correlation::Attach {
            incident_id: id.to_owned(),
        };
    }
    Correlation::New {
        incident_id: incident_id(&event.finding_key),
    }
}

/// Findings of one input grouped into incidents, with the correlation of each.
#[derive(Debug, Clone)]
pub struct Group {
    pub incident_id: String,
    pub resource_key: String,
    /// Indexes into the input slice, in input order.
    pub members: Vec<usize>,
    pub correlations: Vec<Correlation>,
}

/// Groups the findings of one input (a Security Hub batch) by resource, with no store: the first
/// finding on a resource opens its incident, later findings with the same key are repeats and
/// other findings on the resource attach.
pub fn group(events: &[SecurityEvent]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_resource: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_key: BTreeMap<&str, String> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let resource_key = e.resource_key();
        let open = by_resource
            .get(&resource_key)
            .map(|&g| groups[g].incident_id.clone());
        let decision = correlate(
            e,
            by_key.get(e.finding_key.as_str()).map(String::as_str),
            open.as_deref(),
        );
        by_key.insert(&e.finding_key, decision.incident_id().to_owned());
        match by_resource.get(&resource_key) {
            Some(&g) => {
                groups[g].members.push(i);
                groups[g].correlations.push(decision);
            }
            None => {
                by_resource.insert(resource_key.clone(), groups.len());
                groups.push(Group {
                    incident_id: decision.incident_id().to_owned(),
                    resource_key,
                    members: vec![i],
                    correlations: vec![decision],
                });
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_well_formed() {
        let a = incident_id("guardduty:111122223333:us-east-1:abc");
        assert_eq!(a, incident_id("guardduty:111122223333:us-east-1:abc"));
        assert_ne!(a, incident_id("guardduty:111122223333:us-east-1:abd"));
        assert!(is_incident_id(&a), "{a}");
        assert_eq!(a.len(), 24);
        assert!(!is_incident_id("inc-XYZ"));
        assert!(!is_incident_id("inc-0123456789abcdef012"));
    }
}
