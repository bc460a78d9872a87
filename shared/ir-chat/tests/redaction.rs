#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! No secret in `Debug`, in error messages, or in errors' `Debug`.

mod common;

use common::*;
use ir_chat::fake::{FAKE_JIRA_TOKEN, FAKE_SLACK_TOKEN, FAKE_WEBHOOK_PATH, RecordingSleep};
use ir_chat::jira::JiraClient;
use ir_chat::slack::{SlackClient, incident_update};
use ir_chat::{RetryPolicy, Secret};

const WEBHOOK_SECRET_PART: &str = "fAkEwEbHoOkSeCrEt000000";

#[tokio::test]
async fn clients_never_show_their_secrets() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let web = slack(&server, &sleep);
    let hook = webhook(&server, &sleep);
    let jira = jira(&server, &sleep);
    let shown = format!(
        "{web:?} {hook:?} {jira:?} {:?}",
        Secret::new(FAKE_SLACK_TOKEN)
    );
    assert!(FAKE_WEBHOOK_PATH.contains(WEBHOOK_SECRET_PART));
    for secret in [FAKE_SLACK_TOKEN, WEBHOOK_SECRET_PART, FAKE_JIRA_TOKEN] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("web-api") && shown.contains("incoming-webhook"));
    assert!(shown.contains("<redacted>"));
}

#[tokio::test]
async fn transport_errors_never_show_the_webhook_url() {
    let sleep = RecordingSleep::new();
    let url = format!("{}{FAKE_WEBHOOK_PATH}", closed_port_url().await);
    let err = SlackClient::webhook(Secret::new(url))
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 2,
            ..policy()
        })
        .with_sleep(sleep.clone())
        .post_message("", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "Transport");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(WEBHOOK_SECRET_PART), "{shown}");
    assert!(!shown.contains("/services/"), "{shown}");
}

#[tokio::test]
async fn jira_transport_errors_never_show_the_token() {
    let sleep = RecordingSleep::new();
    let err = JiraClient::new(
        closed_port_url().await,
        "a@b.c",
        Secret::new(FAKE_JIRA_TOKEN),
    )
    .unwrap()
    .with_retry(RetryPolicy::never())
    .with_sleep(sleep.clone())
    .find_issue_by_label("x")
    .await
    .unwrap_err();
    assert_eq!(err.name(), "Transport");
    assert!(!format!("{err} {err:?}").contains(FAKE_JIRA_TOKEN));
    assert!(sleep.waits().is_empty());
}
