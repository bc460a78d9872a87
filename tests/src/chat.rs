//! Slack for the offline suite: a local server speaking Slack's Web API (`ir_chat::fake`), the
//! app's secret in the emulator's Secrets Manager (bot token and signing secret), the on-call
//! people's Slack user ids, and what Lambda's event source mapping does for the audit table's
//! stream: each batch of new records' keys handed to `ir-announce`, in order, a failed batch
//! handed again.

use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use ir_aws::Clients;
use ir_chat::Secret;
use ir_chat::fake::{
    FAKE_SLACK_TOKEN, FakeServer, SignedRequest, block_actions_payload, signed_interaction,
};
use ir_chat::slack::blocks::{APPROVE_ACTION_ID, REJECT_ACTION_ID};
use serde_json::{Map, Value, json};

use crate::offline::{OfflineError, invoke_at};

/// The Slack app's signing secret of the offline suite.
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5-offline";

/// The on-call people's Slack user ids.
pub const ALICE: &str = "U0ALICE";
pub const BOB: &str = "U0BOB";
pub const CAROL: &str = "U0CAROL";

/// How often the stream is read when it had nothing new (Lambda polls a shard about 4 times a
/// second).
const STREAM_POLL: Duration = Duration::from_millis(100);
/// Deliveries of one batch before it is given up (the template's MaximumRetryAttempts is 8).
const STREAM_ATTEMPTS: u32 = 8;

/// Slack of the offline suite.
#[derive(Debug)]
pub struct Slack {
    pub server: FakeServer,
    pub secret_arn: String,
    pub signing_secret: Secret,
    stream: tokio::task::JoinHandle<()>,
}

impl Drop for Slack {
    fn drop(&mut self) {
        self.stream.abort();
    }
}

type Result<T> = std::result::Result<T, OfflineError>;

fn failed(what: &str, e: impl std::fmt::Display) -> OfflineError {
    OfflineError(format!("{what}: {e}"))
}

impl Slack {
    /// Starts the server and stores the app's secret; the stream is not read yet.
    pub async fn start(clients: &Clients, prefix: &str) -> Result<(FakeServer, String)> {
        let server = FakeServer::start()
            .await
            .map_err(|e| failed("starting the Slack server", e))?;
        let secret_arn = clients
            .secretsmanager()
            .create_secret()
            .name(format!("{prefix}-slack"))
            .secret_string(
                json!({"bot_token": FAKE_SLACK_TOKEN, "signing_secret": SIGNING_SECRET})
                    .to_string(),
            )
            .send()
            .await
            .map_err(|e| {
                failed(
                    "storing the Slack secret",
                    ir_aws::sdk::SdkFailure::new("secretsmanager:CreateSecret", &e),
                )
            })?
            .arn()
            .ok_or_else(|| OfflineError("the Slack secret has no ARN".to_owned()))?
            .to_owned();
        Ok((server, secret_arn))
    }

    /// The running piece: server, secret, and the stream read into `announce` at `lambda`.
    pub fn new(
        server: FakeServer,
        secret_arn: String,
        clients: &Clients,
        audit_table: &str,
        lambda: String,
    ) -> Slack {
        let stream = tokio::spawn(announce_stream(
            clients.clone(),
            audit_table.to_owned(),
            lambda,
        ));
        Slack {
            server,
            secret_arn,
            signing_secret: Secret::new(SIGNING_SECRET),
            stream,
        }
    }

    /// A click on an approval message's button by `user`, as Slack signs and sends it.
    pub fn click(&self, user: &str, approve: bool, button_value: &str, at: i64) -> SignedRequest {
        let action = if approve {
            APPROVE_ACTION_ID
        } else {
            REJECT_ACTION_ID
        };
        let payload = block_actions_payload(user, action, button_value, "C0FAKECHAN1", "1.0");
        signed_interaction(&self.signing_secret, at, &payload)
    }
}

/// A click as a Lambda Function URL delivers it to `ir-slack-endpoint` (payload format 2.0).
pub fn function_url_event(click: &SignedRequest) -> Value {
    let headers: Map<String, Value> = click
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .chain([(
            "content-type".to_owned(),
            Value::from("application/x-www-form-urlencoded"),
        )])
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/", "sourceIp": "203.0.113.9"}},
        "body": String::from_utf8_lossy(&click.body),
        "isBase64Encoded": false,
    })
}

fn attribute(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        other => json!({"NULL": format!("{other:?}").is_empty()}),
    }
}

fn record_json(r: &Record) -> Value {
    let d = r.dynamodb();
    let keys: Map<String, Value> = d
        .and_then(|d| d.keys())
        .map(|k| k.iter().map(|(n, v)| (n.clone(), attribute(v))).collect())
        .unwrap_or_default();
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|e| e.as_str()),
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": keys,
            "SequenceNumber": d.and_then(|d| d.sequence_number()),
            "StreamViewType": "KEYS_ONLY",
        },
    })
}

/// Lambda's event source mapping for the audit table's stream, one shard at a time in order.
async fn announce_stream(clients: Clients, table: String, lambda: String) {
    let streams = aws_sdk_dynamodbstreams::Client::new(clients.sdk_config());
    let mut interval = tokio::time::interval(STREAM_POLL);
    let arn = loop {
        interval.tick().await;
        if let Ok(t) = clients
            .dynamodb()
            .describe_table()
            .table_name(&table)
            .send()
            .await
            && let Some(arn) = t.table().and_then(|t| t.latest_stream_arn())
        {
            break arn.to_owned();
        }
    };
    let mut done_shards: Vec<String> = Vec::new();
    loop {
        let Ok(described) = streams.describe_stream().stream_arn(&arn).send().await else {
            interval.tick().await;
            continue;
        };
        let shards: Vec<String> = described
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let Some(shard) = shards.into_iter().find(|s| !done_shards.contains(s)) else {
            interval.tick().await;
            continue;
        };
        let Ok(it) = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
        else {
            interval.tick().await;
            continue;
        };
        let mut iterator = it.shard_iterator().map(str::to_owned);
        while let Some(current) = iterator.take() {
            let Ok(got) = streams.get_records().shard_iterator(&current).send().await else {
                iterator = Some(current);
                interval.tick().await;
                continue;
            };
            if !got.records().is_empty() {
                let event =
                    json!({"Records": got.records().iter().map(record_json).collect::<Vec<_>>()});
                deliver(&lambda, &event).await;
            } else {
                interval.tick().await;
            }
            iterator = got.next_shard_iterator().map(str::to_owned);
        }
        done_shards.push(shard);
    }
}

/// Hands a batch to `ir-announce` until it reports no failed record (or the attempts run out).
async fn deliver(lambda: &str, event: &Value) {
    let bytes = event.to_string().into_bytes();
    for _ in 0..STREAM_ATTEMPTS {
        match invoke_at(lambda, "ir-announce", &bytes).await {
            Ok(inv)
                if inv.error.is_none()
                    && inv.body["batchItemFailures"]
                        .as_array()
                        .is_none_or(Vec::is_empty) =>
            {
                return;
            }
            _ => tokio::time::sleep(STREAM_POLL).await,
        }
    }
}
