//! One batch of the audit table's stream → each record announced in order. The answer is
//! Lambda's partial batch response: the first record that failed (and so every later one) is
//! delivered again; a record whose keys are not an audit record's is logged with its raw keys
//! and skipped (delivering it again cannot help).

use std::convert::Infallible;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::{Config, ErrorName, Named};
use ir_incident::announce::{AnnounceError, Announced, announce};
use ir_incident::outlets::Outlets;
use ir_lambda::payload::Checked;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What the function is invoked with.
pub type Incoming = Checked<StreamEvent>;

/// What the function holds from init.
#[derive(Debug)]
pub struct Announcer {
    pub clients: Clients,
    pub names: TableNames,
    pub config: Config,
    /// Slack, when the deployment gave its secret (a bot token).
    pub outlets: Outlets,
}

/// A DynamoDB stream batch, as Lambda's event source mapping delivers it (only what is read).
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

/// One stream record.
#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    pub dynamodb: StreamData,
}

/// The record's keys and its place in the shard.
#[derive(Debug, Deserialize)]
pub struct StreamData {
    #[serde(rename = "Keys")]
    pub keys: serde_json::Value,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
}

/// Lambda's partial batch response.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

/// A record to deliver again (and every one after it).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The audit keys of a stream record (`incidentId` S, `seq` N), or why not.
pub fn audit_keys(keys: &serde_json::Value) -> Result<(String, u64), String> {
    let id = keys
        .pointer("/incidentId/S")
        .and_then(serde_json::Value::as_str)
        .ok_or("no incidentId (S) key")?;
    let seq = keys
        .pointer("/seq/N")
        .and_then(serde_json::Value::as_str)
        .ok_or("no seq (N) key")?
        .parse::<u64>()
        .map_err(|e| format!("seq: {e}"))?;
    Ok((id.to_owned(), seq))
}

/// One batch.
pub async fn handle(a: &Announcer, incoming: Incoming) -> Result<BatchResponse, Infallible> {
    let event = match incoming.value {
        Ok(e) => e,
        Err(why) => {
            // Nothing to deliver again: not a stream batch.
            tracing::warn!(error_name = ErrorName::InvalidInput.as_str(), %why, "not a stream batch: ignored");
            return Ok(BatchResponse::default());
        }
    };
    let now = OffsetDateTime::now_utc();
    for record in &event.records {
        if record.event_name != "INSERT" {
            continue;
        }
        let (incident_id, seq) = match audit_keys(&record.dynamodb.keys) {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!(error_name = ErrorName::InvalidInput.as_str(), keys = %record.dynamodb.keys, %why, "not an audit record's keys: skipped");
                continue;
            }
        };
        let done = announce(
            &a.clients,
            &a.names,
            &a.config,
            a.outlets.slack.as_ref(),
            &incident_id,
            seq,
            now,
        )
        .await;
        match done {
            Ok(Announced::Sent { posted, updated }) => {
                tracing::info!(%incident_id, seq, posted, updated, "announced");
            }
            Ok(Announced::AlreadyAnnounced) => {
                tracing::info!(%incident_id, seq, "announced before");
            }
            Ok(Announced::Nothing(why)) => {
                tracing::debug!(%incident_id, seq, %why, "nothing announced");
            }
            Err(e @ (AnnounceError::InvalidInput(_) | AnnounceError::NotFound(_))) => {
                tracing::warn!(%incident_id, seq, error_name = e.error_name().as_str(), error = %e, "not announced: skipped");
            }
            Err(e) => {
                tracing::warn!(%incident_id, seq, error_name = e.error_name().as_str(), error = %e, "not announced: delivered again");
                return Ok(BatchResponse {
                    batch_item_failures: vec![ItemFailure {
                        item_identifier: record.dynamodb.sequence_number.clone(),
                    }],
                });
            }
        }
    }
    Ok(BatchResponse::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_read_strictly() {
        assert_eq!(
            audit_keys(
                &json!({"incidentId": {"S": "inc-0123456789abcdef0123"}, "seq": {"N": "7"}})
            ),
            Ok(("inc-0123456789abcdef0123".to_owned(), 7))
        );
        assert!(audit_keys(&json!({"incidentId": {"N": "1"}, "seq": {"N": "7"}})).is_err());
        assert!(audit_keys(&json!({"incidentId": {"S": "x"}, "seq": {"N": "-1"}})).is_err());
        assert!(audit_keys(&json!({})).is_err());
    }

    #[test]
    fn a_batch_parses_from_lambdas_shape() {
        let e: StreamEvent = serde_json::from_value(json!({"Records": [{
            "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"incidentId": {"S": "inc-0123456789abcdef0123"}, "seq": {"N": "0"}},
                         "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "KEYS_ONLY"}}]}))
        .unwrap();
        assert_eq!(e.records[0].dynamodb.sequence_number, "111");
    }
}
