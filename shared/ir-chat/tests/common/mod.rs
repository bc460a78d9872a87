//! Shared test fixtures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use ir_chat::fake::{
    FAKE_JIRA_EMAIL, FAKE_JIRA_TOKEN, FAKE_SLACK_TOKEN, FakeServer, RecordingSleep,
};
use ir_chat::jira::JiraClient;
use ir_chat::slack::SlackClient;
use ir_chat::{IncidentUpdate, Link, RetryPolicy, Secret};
use time::macros::datetime;

/// Generous attempts and budget; backoff small (and never actually waited: RecordingSleep).
pub fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        max_total_wait: Duration::from_secs(30),
    }
}

pub fn update() -> IncidentUpdate {
    IncidentUpdate {
        incident_id: "INC-2026-042".to_owned(),
        headline: None,
        deadlines: Vec::new(),
        status: "Contained".to_owned(),
        severity: "High".to_owned(),
        time_detected: datetime!(2026-04-20 14:32 UTC),
        time_contained: Some(datetime!(2026-04-20 15:08 UTC)),
        summary: "Unauthorized access to the production API database was detected through anomalous query patterns flagged by GuardDuty.".to_owned(),
        scope: vec![
            "Production database read access for approximately 36 minutes".to_owned(),
            "No evidence of data modification or exfiltration".to_owned(),
        ],
        actions_taken: vec![
            "Database credentials rotated".to_owned(),
            "Compromised IAM role permissions revoked".to_owned(),
        ],
        next_steps: vec!["Complete log analysis for full scope determination".to_owned()],
        links: vec![Link::new("IR-7", "https://example.atlassian.net/browse/IR-7")],
        dry_run: false,
    }
}

pub async fn server() -> FakeServer {
    FakeServer::start().await.unwrap()
}

pub fn slack(server: &FakeServer, sleep: &Arc<RecordingSleep>) -> SlackClient {
    SlackClient::web_api(Secret::new(FAKE_SLACK_TOKEN))
        .unwrap()
        .with_base_url(server.slack_api_url())
        .with_retry(policy())
        .with_sleep(sleep.clone())
}

pub fn webhook(server: &FakeServer, sleep: &Arc<RecordingSleep>) -> SlackClient {
    SlackClient::webhook(Secret::new(server.webhook_url()))
        .unwrap()
        .with_retry(policy())
        .with_sleep(sleep.clone())
}

pub fn jira(server: &FakeServer, sleep: &Arc<RecordingSleep>) -> JiraClient {
    JiraClient::new(
        server.jira_url(),
        FAKE_JIRA_EMAIL,
        Secret::new(FAKE_JIRA_TOKEN),
    )
    .unwrap()
    .with_retry(policy())
    .with_sleep(sleep.clone())
}

/// A URL on which nothing listens.
pub async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
