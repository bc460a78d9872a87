//! The audit chain: an append-only, tamper-evident log of every decision and action.
//!
//! Each record carries its incident, a sequence number (0, 1, 2, … without gaps), a time, the
//! actor, the action, a detail object, the previous record's hash and its own hash:
//! `hash = hex(SHA-256(prev_hash || "\n" || canonical JSON of the record without its hash))`.
//! The first record's `prev_hash` is 64 zeros. Editing, deleting, inserting or reordering any
//! record breaks the chain at that point; anchoring the head hash somewhere the writer cannot
//! rewrite (the Object Lock evidence bucket) makes truncation of the tail detectable too.

pub mod event;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use event::AuditEvent;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub incident_id: String,
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: a function name, or the ARN of the human who decided.
    pub actor: String,
    /// What (`triage`, `approval-requested`, `approved`, `action:ir-isolate-instance`, …).
    pub action: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The record's event, typed (see [`event`]).
    pub fn event(&self) -> Result<event::AuditEvent, event::EventError> {
        event::AuditEvent::read(&self.action, &self.detail)
    }

    /// The step the record is about (its detail's `step`), without reading the whole event.
    pub fn step(&self) -> Option<&str> {
        self.detail.get("step").and_then(serde_json::Value::as_str)
    }
}

/// The chain head written to the evidence bucket: what the chain looked like at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    pub incident_id: String,
    pub seq: u64,
    pub hash: String,
    /// Why the head was anchored (`left-containment`, `resolved`).
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// JSON with object keys sorted at every level and no insignificant white space: the bytes that
/// are hashed. Independent of how `serde_json` orders maps.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(x) = map.get(*k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The hash of a record's content chained to `prev_hash`.
pub fn record_hash(
    incident_id: &str,
    seq: u64,
    at: OffsetDateTime,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
    prev_hash: &str,
) -> String {
    let body = serde_json::json!({
        "incidentId": incident_id,
        "seq": seq,
        "at": timestamp(at),
        "actor": actor,
        "action": action,
        "detail": detail,
        "prevHash": prev_hash,
    });
    let digest = Sha256::new()
        .chain_update(prev_hash.as_bytes())
        .chain_update(b"\n")
        .chain_update(canonical_json(&body).as_bytes())
        .finalize();
    hex::encode(digest)
}

impl AuditRecord {
    /// The record that follows `prev` (or the first record of the incident when `prev` is `None`).
    pub fn next(
        prev: Option<&AuditRecord>,
        incident_id: &str,
        at: OffsetDateTime,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> AuditRecord {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        let hash = record_hash(incident_id, seq, at, actor, action, &detail, &prev_hash);
        AuditRecord {
            incident_id: incident_id.to_owned(),
            seq,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
            prev_hash,
            hash,
        }
    }

    /// Whether the record's hash matches its content.
    pub fn is_intact(&self) -> bool {
        self.hash
            == record_hash(
                &self.incident_id,
                self.seq,
                self.at,
                &self.actor,
                &self.action,
                &self.detail,
                &self.prev_hash,
            )
    }
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    Empty,
    WrongIncident {
        seq: u64,
        found: String,
    },
    /// A sequence number is missing or out of place (deletion, insertion, reordering).
    Gap {
        position: usize,
        expected: u64,
        found: u64,
    },
    /// A record's content does not match its hash (edited).
    Tampered {
        seq: u64,
    },
    /// A record does not point at its predecessor's hash.
    BrokenLink {
        seq: u64,
    },
    /// An anchored head is not in the chain as anchored (rewritten or truncated history).
    AnchorMismatch {
        seq: u64,
        anchored: String,
        found: Option<String>,
    },
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Empty => f.write_str("the audit chain is empty"),
            ChainError::WrongIncident { seq, found } => {
                write!(f, "record {seq} belongs to incident {found}")
            }
            ChainError::Gap {
                position,
                expected,
                found,
            } => {
                write!(
                    f,
                    "record at position {position} has sequence {found}, expected {expected} (deleted, inserted or reordered)"
                )
            }
            ChainError::Tampered { seq } => {
                write!(f, "record {seq} does not match its hash (edited)")
            }
            ChainError::BrokenLink { seq } => write!(
                f,
                "record {seq} does not link to record {}",
                seq.saturating_sub(1)
            ),
            ChainError::AnchorMismatch {
                seq,
                anchored,
                found: Some(h),
            } => {
                write!(
                    f,
                    "anchored head {seq} was {anchored}, the chain now has {h}"
                )
            }
            ChainError::AnchorMismatch {
                seq,
                anchored,
                found: None,
            } => {
                write!(
                    f,
                    "anchored head {seq} ({anchored}) is missing from the chain (truncated)"
                )
            }
        }
    }
}

impl std::error::Error for ChainError {}

/// A verified chain: its length and head, and its unanchored tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: usize,
    pub head: String,
    pub anchors_checked: usize,
    /// How many records come after the last anchor (all of them when nothing is anchored): the
    /// tail the anchors do not protect, which could be rewritten or cut without a trace.
    pub unanchored: usize,
    /// The `seq` of the first of them, when there are any.
    pub unanchored_from: Option<u64>,
}

/// Verifies a chain (records in sequence order, as stored) against its anchors.
pub fn verify(
    incident_id: &str,
    records: &[AuditRecord],
    anchors: &[Anchor],
) -> Result<Verified, ChainError> {
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        if r.incident_id != incident_id {
            return Err(ChainError::WrongIncident {
                seq: r.seq,
                found: r.incident_id.clone(),
            });
        }
        let expected = u64::try_from(i).unwrap_or(u64::MAX);
        if r.seq != expected {
            return Err(ChainError::Gap {
                position: i,
                expected,
                found: r.seq,
            });
        }
        if !r.is_intact() {
            return Err(ChainError::Tampered { seq: r.seq });
        }
        if r.prev_hash != prev {
            return Err(ChainError::BrokenLink { seq: r.seq });
        }
        prev = &r.hash;
    }
    let head = records.last().ok_or(ChainError::Empty)?;
    for a in anchors.iter().filter(|a| a.incident_id == incident_id) {
        let found = usize::try_from(a.seq)
            .ok()
            .and_then(|i| records.get(i))
            .map(|r| r.hash.clone());
        if found.as_deref() != Some(a.hash.as_str()) {
            return Err(ChainError::AnchorMismatch {
                seq: a.seq,
                anchored: a.hash.clone(),
                found,
            });
        }
    }
    // Every anchor matched a record above: the last anchored seq is within the chain.
    let anchored = anchors
        .iter()
        .filter(|a| a.incident_id == incident_id)
        .map(|a| a.seq)
        .max();
    let unanchored_from = match anchored {
        None => Some(0),
        Some(seq) if seq < head.seq => Some(seq + 1),
        Some(_) => None,
    };
    Ok(Verified {
        records: records.len(),
        head: head.hash.clone(),
        anchors_checked: anchors.len(),
        unanchored: unanchored_from.map_or(0, |from| {
            usize::try_from(head.seq - from + 1).unwrap_or(usize::MAX)
        }),
        unanchored_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const ID: &str = "inc-0123456789abcdef0123";

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let at = datetime!(2026-11-20 10:00 UTC)
                + time::Duration::seconds(i64::try_from(i).unwrap());
            let r = AuditRecord::next(
                out.last(),
                ID,
                at,
                "ir-score",
                &format!("step-{i}"),
                serde_json::json!({"i": i, "b": [1, {"z": 1, "a": 2}]}),
            );
            out.push(r);
        }
        out
    }

    fn anchor(r: &AuditRecord) -> Anchor {
        Anchor {
            incident_id: ID.into(),
            seq: r.seq,
            hash: r.hash.clone(),
            reason: "left-containment".into(),
            at: r.at,
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        let v = verify(ID, &c, &[anchor(&c[2]), anchor(&c[4])]).unwrap();
        assert_eq!(v.records, 5);
        assert_eq!(v.head, c[4].hash);
        assert_eq!(c[0].prev_hash, GENESIS);
        assert_eq!((v.unanchored, v.unanchored_from), (0, None));
    }

    #[test]
    fn the_tail_after_the_last_anchor_is_counted() {
        let c = chain(5);
        let v = verify(ID, &c, &[anchor(&c[1])]).unwrap();
        assert_eq!((v.unanchored, v.unanchored_from), (3, Some(2)));
        let v = verify(ID, &c, &[anchor(&c[3]), anchor(&c[1])]).unwrap();
        assert_eq!((v.unanchored, v.unanchored_from), (1, Some(4)));
        let v = verify(ID, &c, &[]).unwrap();
        assert_eq!((v.unanchored, v.unanchored_from), (5, Some(0)));
    }

    #[test]
    fn editing_deleting_reordering_and_truncating_are_detected() {
        let c = chain(5);
        let mut edited = c.clone();
        edited[2].detail = serde_json::json!({"i": 99});
        assert_eq!(
            verify(ID, &edited, &[]),
            Err(ChainError::Tampered { seq: 2 })
        );

        let mut rehashed = edited.clone();
        rehashed[2].hash = record_hash(
            ID,
            2,
            rehashed[2].at,
            "ir-score",
            "step-2",
            &rehashed[2].detail,
            &rehashed[2].prev_hash,
        );
        assert_eq!(
            verify(ID, &rehashed, &[]),
            Err(ChainError::BrokenLink { seq: 3 })
        );

        let mut deleted = c.clone();
        deleted.remove(1);
        assert!(matches!(
            verify(ID, &deleted, &[]),
            Err(ChainError::Gap {
                position: 1,
                expected: 1,
                found: 2
            })
        ));

        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            verify(ID, &reordered, &[]),
            Err(ChainError::Gap { .. })
        ));

        // Truncating the tail leaves a valid prefix: only the anchor reveals it.
        let truncated = &c[..3];
        assert!(verify(ID, truncated, &[]).is_ok());
        assert!(matches!(
            verify(ID, truncated, &[anchor(&c[4])]),
            Err(ChainError::AnchorMismatch { found: None, .. })
        ));

        // A whole rewritten chain (new hashes everywhere) verifies alone but not against anchors.
        let mut forged = chain(5);
        forged[1] = AuditRecord::next(
            Some(&forged[0]),
            ID,
            forged[1].at,
            "someone",
            "step-1",
            serde_json::json!({}),
        );
        for i in 2..5 {
            let prev = forged[i - 1].clone();
            forged[i] = AuditRecord::next(
                Some(&prev),
                ID,
                forged[i].at,
                "ir-score",
                &forged[i].action.clone(),
                forged[i].detail.clone(),
            );
        }
        assert!(verify(ID, &forged, &[]).is_ok());
        assert!(matches!(
            verify(ID, &forged, &[anchor(&c[4])]),
            Err(ChainError::AnchorMismatch { .. })
        ));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [3, {"y": 1, "x": 2}], "c": "s\"q"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"s\"q","d":[3,{"x":2,"y":1}]},"b":1}"#
        );
    }
}
