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
