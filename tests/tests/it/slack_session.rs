//! A responder's incident in Slack, through the real functions: the audit table's stream drives
//! `ir-announce` (as Lambda's event source mapping would), which posts each update to the
//! incident's channel and the approval requests with their buttons; clicks reach
//! `ir-slack-endpoint` as a Function URL delivers them and are decided by `ir-decide-approval`;
//! the approval messages end saying who decided. Forged, stale and replayed clicks decide
//! nothing. Slack is a local server speaking its Web API.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ir_chat::fake::{FakeMessage, SLACK_POST_PATH, signed_interaction};
use ir_core::incident::Status;
use ir_tests::TestResult;
use ir_tests::chat::{ALICE, BOB, CAROL, function_url_event};
use ir_tests::offline::{Offline, Settings};
use serde_json::Value;
use time::OffsetDateTime;

use crate::e2e::{GATE_WAIT, GATES, RUN_WAIT, deliver};

const POSTED: Duration = Duration::from_secs(30);

/// Waits until Slack holds a message `pred` accepts.
async fn wait_for_message(
    off: &Offline,
    what: &str,
    pred: impl Fn(&FakeMessage) -> bool,
) -> FakeMessage {
    let server = &off.slack.as_ref().unwrap().server;
    let deadline = Instant::now() + POSTED;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        if let Some(m) = server.slack_messages().into_iter().find(|m| pred(m)) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no Slack message {what}: {:#?}",
            server.slack_messages()
        );
        poll.tick().await;
    }
}

fn button_value(m: &FakeMessage) -> String {
    m.blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .and_then(|b| b["elements"][0]["value"].as_str())
        .unwrap_or_else(|| panic!("no buttons: {}", m.blocks))
        .to_owned()
}

/// Clicks through the endpoint; the endpoint answers 200 whatever the decision.
async fn click(off: &Offline, request: &ir_chat::fake::SignedRequest) {
    let event = function_url_event(request).to_string();
    let answer = off
        .invoke("ir-slack-endpoint", event.as_bytes())
        .await
        .unwrap();
    assert_eq!(answer.error, None, "{:?}", answer.body);
    assert_eq!(answer.body["statusCode"], 200, "{}", answer.body);
}

async fn approvals(off: &Offline, incident: &str, step: &str) -> usize {
    ir_aws::store::ApprovalStore::new(off.clients.clone(), off.names.clone())
        .get(incident, step)
        .await
        .unwrap()
        .map_or(0, |a| a.approvals.len())
}

#[tokio::test]
async fn a_critical_incident_is_followed_and_approved_in_slack() -> TestResult {
    let off = Offline::start(Settings {
        slack: true,
        ..Settings::default()
    })
    .await?;
    let slack = off.slack.as_ref().unwrap();
    let incident = deliver(&off, "slk0000000000000000000000000d001").await;
    off.wait_for_approval(&incident, GATES[0], 0, GATE_WAIT)
        .await?;

    // The approval request, with its buttons, in the approvals channel.
    let first = wait_for_message(&off, "asking to approve revoke-credentials", |m| {
        m.blocks
            .to_string()
            .contains("Approval requested: step revoke-credentials")
    })
    .await;
    let value = button_value(&first);
    let t = OffsetDateTime::now_utc().unix_timestamp();

    // Forged (another secret), stale (ten minutes old) and unknown-user clicks decide nothing.
    let forged = signed_interaction(
        &ir_chat::Secret::new("not-the-apps-secret"),
        t,
        &ir_chat::fake::block_actions_payload(
            ALICE,
            ir_chat::slack::blocks::APPROVE_ACTION_ID,
            &value,
            "C0FAKECHAN1",
            "1.0",
        ),
    );
    click(&off, &forged).await;
    click(&off, &slack.click(ALICE, true, &value, t - 600)).await;
    click(&off, &slack.click("U0STRANGER", true, &value, t)).await;
    assert_eq!(approvals(&off, &incident, GATES[0]).await, 0);

    // Alice approves; the same request again (a replay) is not a second approval.
    let alice = slack.click(ALICE, true, &value, t + 1);
    click(&off, &alice).await;
    assert_eq!(approvals(&off, &incident, GATES[0]).await, 1);
    click(&off, &alice).await;
    assert_eq!(approvals(&off, &incident, GATES[0]).await, 1);
    // Bob approves: two people, the step runs; the second gate asks.
    click(&off, &slack.click(BOB, true, &value, t + 2)).await;
    off.wait_for_approval(&incident, GATES[1], 0, GATE_WAIT)
        .await?;
    let second = wait_for_message(&off, "asking to approve isolate-instance", |m| {
        m.blocks
            .to_string()
            .contains("Approval requested: step isolate-instance")
    })
    .await;
    let value = button_value(&second);
    let t = OffsetDateTime::now_utc().unix_timestamp();
    click(&off, &slack.click(ALICE, true, &value, t)).await;
    click(&off, &slack.click(CAROL, true, &value, t + 1)).await;
    off.wait_for_status(&incident, &[Status::Contained], RUN_WAIT)
        .await?;

    // Each approval message now says who decided, and has no buttons left.
    for (ts, last) in [(&first.ts, "bob"), (&second.ts, "carol")] {
        let decided = wait_for_message(&off, "updated with who decided", |m| {
            &m.ts == ts && m.updates > 0
        })
        .await;
        let text = decided.blocks.to_string();
        assert!(text.contains(&format!("Approved by *{last}")), "{text}");
        assert!(!text.contains("\"type\":\"actions\""), "{text}");
    }
    // The updates went to the playbook's channel as they happened, ending contained.
    wait_for_message(&off, "saying contained", |m| {
        m.blocks
            .to_string()
            .contains("Contained: playbook immediate-isolation finished")
    })
    .await;
    let posts = slack.server.requests_to(SLACK_POST_PATH);
    let channel_of = |needle: &str| -> Vec<String> {
        posts
            .iter()
            .filter_map(|r| r.body.as_ref())
            .filter(|b| b["blocks"].to_string().contains(needle))
            .map(|b| b["channel"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // Opened before triage chose a playbook: the general updates channel; from the triage on,
    // the playbook's channel.
    assert_eq!(channel_of("Incident opened"), ["#ir-updates"]);
    assert_eq!(channel_of("Triaged: critical"), ["#ir-critical"]);
    assert_eq!(
        channel_of("Approval requested"),
        ["#ir-approvals", "#ir-approvals"]
    );
    assert!(
        channel_of("Step isolate-instance applied").contains(&"#ir-critical".to_owned()),
        "{posts:?}"
    );
    // Every post carried the bot token; none carried the signing secret.
    for r in slack.server.requests() {
        let auth = r.header("authorization").unwrap_or_default().to_owned();
        assert!(auth.starts_with("Bearer "), "{}", r.path);
        let body: Value = r.body.clone().unwrap_or(Value::Null);
        assert!(!body.to_string().contains(ir_tests::chat::SIGNING_SECRET));
    }
    Ok(())
}
