//! The audit chains the suite recorded before its audit details were typed
//! (`tests/fixtures/audit/`, written by the suite's own writers against the local cloud) still
//! verify, and still fail where an edit breaks them: the hash of every stored record is what
//! today's chain code computes.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::PathBuf;

use ir_core::audit::{AuditRecord, ChainError, verify};

fn fixtures() -> Vec<(String, Vec<AuditRecord>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/audit");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let chain: Vec<AuditRecord> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), chain));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_recorded_chain_verifies() {
    let chains = fixtures();
    assert!(chains.len() >= 16, "only {} fixture chains", chains.len());
    let mut records = 0;
    for (name, chain) in &chains {
        let id = &chain.first().unwrap().incident_id;
        let verified = verify(id, chain, &[]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(verified.records, chain.len(), "{name}");
        records += chain.len();
    }
    assert!(records > 100, "only {records} records");
}

#[test]
fn an_edited_detail_in_a_recorded_chain_fails_at_that_record() {
    for (name, mut chain) in fixtures() {
        let at = chain.len() / 2;
        chain[at].detail["edited"] = serde_json::json!(true);
        let id = chain[0].incident_id.clone();
        let seq = chain[at].seq;
        assert_eq!(
            verify(&id, &chain, &[]).unwrap_err(),
            ChainError::Tampered { seq },
            "{name}"
        );
    }
}

/// Every recorded record reads as a typed event of the vocabulary (none falls back to `Other`),
/// and that event writes back the same action and, byte for byte, the same canonical detail:
/// records written through the vocabulary hash as the untyped writers' records did.
#[test]
fn every_recorded_record_reads_as_a_typed_event_and_writes_back_byte_for_byte() {
    use ir_core::audit::{AuditEvent, canonical_json};
    let mut actions = std::collections::BTreeSet::new();
    for (name, chain) in fixtures() {
        for r in &chain {
            let event = r
                .event()
                .unwrap_or_else(|e| panic!("{name} seq {}: {e}", r.seq));
            assert!(
                !matches!(event, AuditEvent::Other { .. }),
                "{name} seq {}: `{}` is not in the vocabulary",
                r.seq,
                r.action
            );
            assert_eq!(event.action(), r.action, "{name} seq {}", r.seq);
            let written = event.detail().unwrap();
            assert_eq!(
                canonical_json(&written),
                canonical_json(&r.detail),
                "{name} seq {} ({})",
                r.seq,
                r.action
            );
            // And the hash of a record written from the event is the stored hash.
            let rewritten = AuditRecord {
                detail: written,
                ..r.clone()
            };
            assert!(rewritten.is_intact(), "{name} seq {}", r.seq);
            actions.insert(r.action.split(':').next().unwrap_or_default().to_owned());
        }
    }
    // The fixtures hold every kind of record the suite writes.
    let expected = [
        "action",
        "approval-not-delivered",
        "approval-refused",
        "approval-requested",
        "approved",
        "attached",
        "opened",
        "playbook-finished",
        "rejected",
        "release-failed",
        "repeated",
        "resolved",
        "step-failed",
        "step-not-approved",
        "triage-failed",
        "triage-started",
        "triaged",
    ];
    assert_eq!(
        actions.iter().map(String::as_str).collect::<Vec<_>>(),
        expected,
        "record kinds in the fixtures"
    );
}
