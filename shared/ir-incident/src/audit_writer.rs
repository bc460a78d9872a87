//! The audit log as the orchestration functions write it: patient with contended chains, and
//! skipping what a retried call already wrote (see the recorder's module docs on idempotency).

use ir_core::audit::{AuditEvent, AuditRecord, canonical_json};
use serde_json::Value;
use time::OffsetDateTime;

use ir_aws::Clients;
use ir_aws::store::{AuditLog, StoreError, TableNames};

/// Whether the latest record of `chain` with `action` for `step` has exactly `detail`.
fn already_recorded(
    chain: &[AuditRecord],
    action: &str,
    step: Option<&str>,
    detail: &Value,
) -> bool {
    let wanted = canonical_json(detail);
    chain
        .iter()
        .rev()
        .find(|r| r.action == action && r.step() == step)
        .is_some_and(|r| canonical_json(&r.detail) == wanted)
}

/// An audit record as appended (or found already there).
#[derive(Debug, Clone)]
pub struct Appended {
    pub record: AuditRecord,
    /// `false`: the chain already held this record (a retried call); nothing was appended.
    pub appended: bool,
}

/// Rounds of [`AuditLog::append`] (each its own bounded attempts) before a `Conflict` stands.
const APPEND_ROUNDS: u32 = 4;

/// 64 unpredictable bits for a jittered pause (std's randomly keyed SipHash over the time).
fn jitter_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// The audit log as the orchestration functions write it: patient with contended chains, and
/// skipping what a retried call already wrote.
#[derive(Debug, Clone)]
pub(crate) struct AuditWriter {
    clients: Clients,
    log: AuditLog,
}

impl AuditWriter {
    pub(crate) fn new(clients: &Clients, names: &TableNames) -> AuditWriter {
        AuditWriter {
            clients: clients.clone(),
            log: AuditLog::new(clients.clone(), names.clone()),
        }
    }

    /// The log itself (reads, anchors).
    pub(crate) fn log(&self) -> &AuditLog {
        &self.log
    }

    /// [`AuditLog::append`], tried again when it reports `Conflict`: a chain is one sequence,
    /// and every delivery of a finding appends to its incident's chain, so a burst of deliveries
    /// (twenty at once) can outlast one call's attempts. A `Conflict` means nothing was appended
    /// (every attempt's conditional put failed), so another round after a jittered pause is safe.
    pub(crate) async fn append_patiently(
        &self,
        incident_id: &str,
        actor: &str,
        event: &AuditEvent,
        at: OffsetDateTime,
    ) -> Result<AuditRecord, StoreError> {
        use aws_sdk_dynamodb::config::AsyncSleep;
        let mut round = 1;
        loop {
            match self.log.append(incident_id, actor, event, at).await {
                Err(StoreError::Conflict(why)) if round < APPEND_ROUNDS => {
                    let action = event.action();
                    tracing::info!(incident_id, action = %action, round, %why, "audit chain contended: trying again");
                    let ceiling_ms = 100 * u64::from(round);
                    let pause = std::time::Duration::from_millis(jitter_bits() % ceiling_ms);
                    if let Some(sleep) = self.clients.dynamodb().config().sleep_impl() {
                        sleep.sleep(pause).await;
                    }
                    round += 1;
                }
                other => return other,
            }
        }
    }

    /// Appends `event` unless the latest record with its action for the same step already holds
    /// exactly its detail (see the module docs). `chain` is the incident's chain as read by the
    /// caller; `None` reads it here.
    pub(crate) async fn append_once(
        &self,
        incident_id: &str,
        chain: Option<&[AuditRecord]>,
        actor: &str,
        event: &AuditEvent,
        at: OffsetDateTime,
    ) -> Result<Appended, StoreError> {
        let read;
        let chain = match chain {
            Some(c) => c,
            None => {
                read = self.log.chain(incident_id).await?;
                &read
            }
        };
        let action = event.action();
        let step = event.step();
        let detail = event
            .detail()
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        let latest = chain
            .iter()
            .rev()
            .find(|r| r.action == action && r.step() == step);
        if let Some(record) = latest
            && already_recorded(chain, &action, step, &detail)
        {
            tracing::info!(
                incident_id,
                action = %action,
                seq = record.seq,
                "audit record already in the chain (a retried call): not appended again"
            );
            return Ok(Appended {
                record: record.clone(),
                appended: false,
            });
        }
        let record = self.append_patiently(incident_id, actor, event, at).await?;
        Ok(Appended {
            record,
            appended: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn record(prev: Option<&AuditRecord>, action: &str, detail: Value) -> AuditRecord {
        AuditRecord::next(
            prev,
            "inc-0123456789abcdef0123",
            datetime!(2026-11-20 10:00 UTC),
            "ir-record",
            action,
            detail,
        )
    }

    #[test]
    fn only_the_latest_record_of_an_action_and_step_is_compared() {
        let a = record(
            None,
            "step-failed",
            json!({"step": "isolate", "error": "X"}),
        );
        let b = record(Some(&a), "repeated", json!({"findingId": "f"}));
        let chain = vec![a.clone(), b.clone()];
        assert!(already_recorded(
            &chain,
            "step-failed",
            Some("isolate"),
            &json!({"error": "X", "step": "isolate"})
        ));
        assert!(!already_recorded(
            &chain,
            "step-failed",
            Some("isolate"),
            &json!({"step": "isolate", "error": "Y"})
        ));
        assert!(!already_recorded(
            &chain,
            "step-failed",
            Some("snapshot"),
            &json!({"step": "snapshot", "error": "X"})
        ));
        let c = record(
            Some(&b),
            "step-failed",
            json!({"step": "isolate", "error": "Y"}),
        );
        let chain = vec![a, b, c];
        // X is no longer the latest for the step: recorded again.
        assert!(!already_recorded(
            &chain,
            "step-failed",
            Some("isolate"),
            &json!({"step": "isolate", "error": "X"})
        ));
    }
}
