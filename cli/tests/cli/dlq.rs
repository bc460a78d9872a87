//! `ir dlq list` and `ir dlq redrive` as an operator runs them, against real SQS calls to the
//! local cloud: a queue holding both kinds of dead letter the template produces (an EventBridge
//! rule's, a Lambda `OnFailure` destination's) and a message of neither kind.
//!
//! The listing and the refusals run on the shared emulator. The redrive runs on the whole suite
//! offline ([`Offline`]): the real `ir-ingest` binary behind cargo lambda's Invoke API writes the
//! incidents to DynamoDB, and a second redrive of the same finding is a repeat.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;

use aws_sdk_sqs::types::MessageAttributeValue;
use ir_aws::store::{AuditLog, TableNames};
use ir_tests::offline::{Offline, Settings};
use ir_tests::{ACCOUNT_ID, REGION, cloud, unique_name};
use serde_json::{Value, json};

use crate::local_cloud::{Env, stderr, stdout};

const RULE_ARN: &str = "arn:aws:events:us-east-1:111122223333:rule/ir-GuardDutyFindingsRule-1A2B3C";
const INGEST_ARN: &str = "arn:aws:lambda:us-east-1:111122223333:function:ir-ir-ingest";
/// `events/guardduty-ssh-bruteforce.json`'s finding, and a remote address only its body holds.
const SSH_FINDING: &str = "3e91c0a7d24b48f6a5e2c7b1098d6f4a";
const SSH_REMOTE_IP: &str = "203.0.113.50";
/// `events/securityhub-inspector-cve.json`'s finding.
const CVE_FINDING: &str =
    "arn:aws:inspector2:us-east-1:111122223333:finding/6c1e9a4f2b7d4e08a3c5f1b9d2e7a640";
/// Not a dead letter, with a terminal escape sequence in it.
const GARBAGE: &str = "this is not an event \u{1b}[31m{";

fn sample(name: &str) -> String {
    let path = ir_tests::repo_root().join("events").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sqs(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

async fn create_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(unique_name("ingest-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

fn string(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .unwrap()
}

/// What EventBridge sends to a rule target's dead-letter queue: the event as it is, and why in
/// the message attributes.
async fn put_rule_dead_letter(sqs: &aws_sdk_sqs::Client, queue: &str, event: &str) -> String {
    sqs.send_message()
        .queue_url(queue)
        .message_body(event)
        .message_attributes("RULE_ARN", string(RULE_ARN))
        .message_attributes("TARGET_ARN", string(INGEST_ARN))
        .message_attributes("ERROR_CODE", string("SDK_CLIENT_ERROR"))
        .message_attributes(
            "ERROR_MESSAGE",
            string("Unable to invoke Lambda function: Rate Exceeded."),
        )
        .message_attributes("EXHAUSTED_RETRY_CONDITION", string("MaximumRetryAttempts"))
        .message_attributes(
            "RETRY_ATTEMPTS",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("185")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned()
}

/// What Lambda sends to an `OnFailure` SQS destination after the last retry: the invocation
/// record, the event as `requestPayload`.
async fn put_lambda_dead_letter(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    event: &str,
    error_type: &str,
) -> String {
    let payload: Value = serde_json::from_str(event).unwrap();
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-11-20T08:07:12.345Z",
        "requestContext": {
            "requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
            "functionArn": format!("{INGEST_ARN}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": error_type, "errorMessage": "DynamoDB:TransactWriteItems failed with ThrottlingException"}
    });
    put_raw(sqs, queue, &record.to_string()).await
}

async fn put_raw(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str) -> String {
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned()
}

/// The ids of the messages visible in the queue now (received and made visible again).
async fn visible(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<String> {
    let answer = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = answer
        .messages()
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn by_message_id(listing: &Value) -> BTreeMap<String, Value> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["messageId"].as_str().unwrap().to_owned(), m.clone()))
        .collect()
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn lists_both_kinds_of_dead_letter_and_the_unrecognized_and_leaves_them_in_the_queue() {
    let cloud = cloud().await;
    let sqs = sqs(&cloud.sdk_config());
    let queue = create_queue(&sqs).await;
    let ssh = sample("guardduty-ssh-bruteforce.json");
    let cve = sample("securityhub-inspector-cve.json");
    let a = put_rule_dead_letter(&sqs, &queue, &ssh).await;
    let b = put_lambda_dead_letter(&sqs, &queue, &cve, "Retryable").await;
    let c = put_raw(&sqs, &queue, GARBAGE).await;
    let env = Env::new(cloud, &TableNames::with_prefix("unused"), "unused");
    let dlq = [("IR_DLQ_URL", queue.as_str())];

    let out = env.ir_with(&dlq, &["dlq", "list", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let messages = by_message_id(&listing);
    assert_eq!(messages.len(), 3, "{listing}");

    let rule = &messages[&a];
    let d = &rule["deadLetter"];
    assert_eq!(
        d["origin"],
        json!({"kind": "eventbridge-rule", "ruleArn": RULE_ARN, "targetArn": INGEST_ARN,
               "exhaustedRetryCondition": "MaximumRetryAttempts", "retryAttempts": 185})
    );
    assert_eq!(d["errorName"], "SDK_CLIENT_ERROR");
    assert_eq!(
        d["errorMessage"],
        "Unable to invoke Lambda function: Rate Exceeded."
    );
    assert_eq!(d["source"], "aws.guardduty");
    assert_eq!(d["detailType"], "GuardDuty Finding");
    assert_eq!(d["findingIds"], json!([SSH_FINDING]));
    assert_eq!(d["event"], serde_json::from_str::<Value>(&ssh).unwrap());
    assert!(rule["sentAt"].as_str().is_some(), "{rule}");
    assert_eq!(rule["receiveCount"], 1);

    let function = &messages[&b]["deadLetter"];
    assert_eq!(
        function["origin"],
        json!({"kind": "lambda-destination", "functionArn": format!("{INGEST_ARN}:$LATEST"),
               "requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
               "condition": "RetriesExhausted", "attempts": 3})
    );
    assert_eq!(function["errorName"], "Retryable");
    assert_eq!(function["failedAt"], "2026-11-20T08:07:12.345Z");
    assert_eq!(function["source"], "aws.securityhub");
    assert_eq!(function["findingIds"], json!([CVE_FINDING]));
    assert_eq!(
        function["event"],
        serde_json::from_str::<Value>(&cve).unwrap()
    );

    let garbage = &messages[&c];
    assert_eq!(garbage.get("deadLetter"), None, "{garbage}");
    assert!(
        garbage["unrecognized"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{garbage}"
    );
    assert_eq!(garbage["body"], GARBAGE);

    // Listing hid nothing: every message is visible again at once.
    assert_eq!(visible(&sqs, &queue).await, sorted(&[&a, &b, &c]));

    // For people: one row each, who gave up and why, and no event unless asked.
    let out = env.ir_with(&dlq, &["dlq", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "{queue}: 3 message(s), 2 dead letter(s), 1 unrecognized\n"
        )),
        "{text}"
    );
    let row = |id: &str| {
        text.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no row for {id}: {text}"))
            .to_owned()
    };
    let ra = row(&a);
    for says in [
        "rule ir-GuardDutyFindingsRule-1A2B3C (MaximumRetryAttempts, 185 retries)",
        "SDK_CLIENT_ERROR: Unable to invoke Lambda function: Rate Exceeded.",
        "aws.guardduty / GuardDuty Finding",
        SSH_FINDING,
    ] {
        assert!(ra.contains(says), "{says}: {ra}");
    }
    let rb = row(&b);
    for says in [
        "function ir-ir-ingest (RetriesExhausted, 3 attempts)",
        "Retryable: DynamoDB:TransactWriteItems failed",
        "aws.securityhub / Security Hub Findings - Imported",
        CVE_FINDING,
    ] {
        assert!(rb.contains(says), "{says}: {rb}");
    }
    assert!(row(&c).contains("unrecognized (kept)"), "{text}");
    assert!(
        !text.contains(SSH_REMOTE_IP),
        "an event was printed: {text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let out = env.ir_with(&dlq, &["dlq", "list", "--show-event"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("event of {a}:")), "{text}");
    assert!(text.contains(SSH_REMOTE_IP), "{text}");
    assert!(text.contains(&format!("body of {c}:")), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");

    // --max and --queue-url: at most N read; the receive counts show every read.
    let out = env
        .ir(&["dlq", "list", "--json", "--max", "2", "--queue-url", &queue])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 2, "{listing}");
    assert!(
        listing
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["receiveCount"].as_u64().unwrap() >= 4),
        "{listing}"
    );
    assert_eq!(visible(&sqs, &queue).await, sorted(&[&a, &b, &c]));
}

#[tokio::test]
async fn redrive_refuses_bad_usage_and_an_unknown_message_before_invoking_anything() {
    let cloud = cloud().await;
    let sqs = sqs(&cloud.sdk_config());
    let queue = create_queue(&sqs).await;
    let a = put_rule_dead_letter(&sqs, &queue, &sample("guardduty-ssh-bruteforce.json")).await;
    // Nothing may reach this Invoke API: a connection would wait in the listener's backlog.
    let lambda = TcpListener::bind("127.0.0.1:0").unwrap();
    let lambda_url = format!("http://{}", lambda.local_addr().unwrap());
    let env = Env::new(cloud, &TableNames::with_prefix("unused"), "unused");
    let vars = [
        ("IR_DLQ_URL", queue.as_str()),
        ("AWS_ENDPOINT_URL_LAMBDA", lambda_url.as_str()),
    ];

    for (args, says) in [
        (vec!["dlq", "redrive"], "--all"),
        (vec!["dlq", "redrive", "--all", "--message-id", &a], "--all"),
        (vec!["dlq", "redrive", "--message-id"], "--message-id"),
        (vec!["dlq", "redrive", "--message-id", " "], "empty id"),
        (vec!["dlq", "list", "--max", "0"], "--max"),
    ] {
        let out = env.ir_with(&vars, &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // No queue: neither --queue-url nor IR_DLQ_URL.
    let out = env.ir(&["dlq", "redrive", "--all"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("IR_DLQ_URL"), "{}", stderr(&out));

    // A message id that is not in the queue: exit 3, nothing redriven, the queue as it was.
    let out = env
        .ir_with(
            &vars,
            &["dlq", "redrive", "--message-id", &a, "not-a-message"],
        )
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no message not-a-message in "),
        "{}",
        stderr(&out)
    );
    assert_eq!(visible(&sqs, &queue).await, sorted(&[&a]));

    // No such queue: not found too.
    let missing = format!(
        "{}/{ACCOUNT_ID}/{}",
        cloud.endpoint_url(),
        unique_name("no-such-queue")
    );
    let out = env.ir(&["dlq", "list", "--queue-url", &missing]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    lambda.set_nonblocking(true).unwrap();
    let accepted = lambda.accept();
    assert!(
        accepted
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "ir invoked a function: {accepted:?}"
    );
}

/// The incident a GuardDuty finding of the samples opens.
fn guardduty_incident(finding: &str) -> String {
    ir_core::correlate::incident_id(&format!("guardduty:111122223333:{REGION}:{finding}"))
}

async fn redrive(off: &Offline, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["dlq", "redrive", "--json"];
    all.extend_from_slice(args);
    let out = off.ir_as_responder(&all).await.unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn redrive_ingests_each_dead_letter_once_and_keeps_what_it_cannot() {
    let off = Offline::start(Settings {
        enforce: Vec::new(),
        ingest_instances: 1,
        ..Settings::default()
    })
    .await
    .unwrap();
    let sqs = sqs(&off.cloud.sdk_config());
    let queue = create_queue(&sqs).await;
    let ssh = sample("guardduty-ssh-bruteforce.json");
    let cve = sample("securityhub-inspector-cve.json");
    // An event ingest refuses (all or nothing): redriving it fails again.
    let refused = ssh.replace("\"aws.guardduty\"", "\"aws.s3\"");
    let a = put_rule_dead_letter(&sqs, &queue, &ssh).await;
    let b = put_lambda_dead_letter(&sqs, &queue, &cve, "Retryable").await;
    let c = put_raw(&sqs, &queue, GARBAGE).await;
    let d = put_lambda_dead_letter(&sqs, &queue, &refused, "InvalidInput").await;

    let (code, report, err) = redrive(&off, &["--all", "--queue-url", &queue]).await;
    assert_eq!(code, Some(1), "{report}\n{err}");
    assert!(
        err.contains("1 of 4 selected message(s) not redriven"),
        "{err}"
    );
    assert_eq!(report["ok"], false);
    assert_eq!(report["function"], "ir-ingest");
    let results = by_message_id(&report["messages"]);
    assert_eq!(results.len(), 4, "{report}");

    let incident_a = guardduty_incident(SSH_FINDING);
    assert_eq!(results[&a]["outcome"], "redriven", "{report}");
    assert_eq!(results[&a]["deleted"], true);
    assert_eq!(
        results[&a]["incidents"],
        json!([{"incidentId": incident_a, "correlations": ["new"]}])
    );
    assert_eq!(results[&b]["outcome"], "redriven", "{report}");
    assert_eq!(results[&b]["deleted"], true);
    assert_eq!(results[&b]["findingIds"], json!([CVE_FINDING]));
    let incident_b = results[&b]["incidents"][0]["incidentId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(results[&b]["incidents"][0]["correlations"], json!(["new"]));
    assert_eq!(results[&c]["outcome"], "unrecognized", "{report}");
    assert_eq!(results[&c]["deleted"], false);
    assert_eq!(results[&d]["outcome"], "failed", "{report}");
    assert_eq!(results[&d]["deleted"], false);
    assert_eq!(results[&d]["errorName"], "InvalidInput", "{report}");
    assert!(
        results[&d]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("aws.s3"),
        "{report}"
    );

    // The incidents are in DynamoDB, as ingest wrote them.
    for id in [&incident_a, &incident_b] {
        let incident = off.incident(id).await.unwrap().unwrap();
        assert_eq!(incident.occurrences, 1, "{id}");
        assert_eq!(incident.finding_count, 1, "{id}");
    }
    // What was redriven is gone; what could not be is still there, visible.
    assert_eq!(visible(&sqs, &queue).await, sorted(&[&c, &d]));

    // The same finding dead-lettered again: a second redrive is a repeat, not a second incident.
    let again = put_rule_dead_letter(&sqs, &queue, &ssh).await;
    let (code, report, err) = redrive(&off, &["--message-id", &again, "--queue-url", &queue]).await;
    assert_eq!(code, Some(0), "{report}\n{err}");
    assert_eq!(report["ok"], true);
    let results = by_message_id(&report["messages"]);
    assert_eq!(results.len(), 1, "{report}");
    assert_eq!(results[&again]["outcome"], "redriven");
    assert_eq!(results[&again]["deleted"], true);
    assert_eq!(
        results[&again]["incidents"],
        json!([{"incidentId": incident_a, "correlations": ["repeat"]}])
    );
    let incident = off.incident(&incident_a).await.unwrap().unwrap();
    assert_eq!(incident.occurrences, 2);
    assert_eq!(incident.finding_count, 1);
    let chain = AuditLog::new(off.clients.clone(), off.names.clone())
        .chain(&incident_a)
        .await
        .unwrap();
    let count = |action: &str| chain.iter().filter(|r| r.action == action).count();
    assert_eq!(count("opened"), 1);
    assert_eq!(count("repeated"), 1);
    assert_eq!(visible(&sqs, &queue).await, sorted(&[&c, &d]));

    // A message named that is not a dead letter is kept, and the command says it failed.
    let (code, report, _) = redrive(&off, &["--message-id", &c, "--queue-url", &queue]).await;
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["messages"][0]["outcome"], "unrecognized");
    assert_eq!(visible(&sqs, &queue).await, sorted(&[&c, &d]));
}
