#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use ir_chat::RetryPolicy;
use ir_chat::fake::{
    FAKE_SLACK_TOKEN, RecordingSleep, SLACK_POST_PATH, SLACK_UPDATE_PATH, Scripted,
};
use ir_chat::slack::blocks::{APPROVAL_BLOCK_ID, APPROVE_ACTION_ID, REJECT_ACTION_ID};
use ir_chat::slack::{
    ApprovalRef, ApprovalRequest, Decision, MessageRef, Posted, SlackClient, SlackError, Who,
    approval_decided, approval_request, incident_update,
};
use ir_chat::{Link, Secret, update::DRY_RUN_MARK};
use serde_json::{Value, json};
use time::macros::datetime;

fn approval() -> ApprovalRequest {
    ApprovalRequest {
        update: update(),
        approval: ApprovalRef::new("INC-2026-042", "isolate", "a1".repeat(32), 1).unwrap(),
        plan_summary: "Replace the security groups of i-0abc with the isolation group sg-0iso."
            .to_owned(),
        asked: "security-lead (ana, bo)".to_owned(),
        expires_at: datetime!(2026-04-20 16:00 UTC),
    }
}

fn block_of<'a>(blocks: &'a [Value], kind: &str) -> Vec<&'a Value> {
    blocks.iter().filter(|b| b["type"] == kind).collect()
}

#[tokio::test]
async fn an_update_is_posted_as_block_kit_with_the_bot_token() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let posted = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap();

    let stored = server.slack_messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        posted,
        Posted::Message(MessageRef {
            channel: "C0INCIDENTS".to_owned(),
            ts: stored[0].ts.clone()
        })
    );
    let reqs = server.requests_to(SLACK_POST_PATH);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {FAKE_SLACK_TOKEN}").as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = r.body.clone().unwrap();
    assert_eq!(body["channel"], "C0INCIDENTS");
    assert_eq!(body["unfurl_links"], false);
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("[HIGH] INC-2026-042 update: Contained. Unauthorized access")
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "Incident Update: INC-2026-042");
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Status:*\nContained",
            "*Severity:*\nHigh",
            "*Time detected:*\n2026-04-20 14:32 UTC",
            "*Time contained:*\n2026-04-20 15:08 UTC"
        ]
    );
    let sections: Vec<&str> = block_of(blocks, "section")
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect();
    assert!(sections[0].starts_with("*Summary*\nUnauthorized access"));
    assert_eq!(
        sections[1],
        "*Scope*\n• Production database read access for approximately 36 minutes\n• No evidence of data modification or exfiltration"
    );
    assert_eq!(
        sections[2],
        "*Actions taken*\n1. Database credentials rotated\n2. Compromised IAM role permissions revoked"
    );
    assert!(sections[3].starts_with("*Next steps*\n• Complete log analysis"));
    assert_eq!(
        sections[4],
        "*Links*\n• <https://example.atlassian.net/browse/IR-7|IR-7>"
    );
    let ctx = block_of(blocks, "context");
    assert_eq!(ctx.len(), 1);
    assert_eq!(ctx[0]["elements"][0]["text"], "Incident `INC-2026-042`");
    assert!(block_of(blocks, "actions").is_empty());
    assert!(sleep.waits().is_empty());
}

#[tokio::test]
async fn a_dry_run_update_says_so() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let mut u = update();
    u.dry_run = true;
    slack(&server, &sleep)
        .post_message("C0INCIDENTS", &incident_update(&u))
        .await
        .unwrap();
    let body = server.requests_to(SLACK_POST_PATH)[0].body.clone().unwrap();
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        format!("{DRY_RUN_MARK} Incident Update: INC-2026-042")
    );
    assert_eq!(
        body["blocks"][1]["fields"][4]["text"],
        "*Mode:*\nDry run: nothing was changed"
    );
    assert!(body["text"].as_str().unwrap().starts_with(DRY_RUN_MARK));
}

#[tokio::test]
async fn an_approval_request_carries_both_buttons_and_their_reference() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let req = approval();
    slack(&server, &sleep)
        .post_message("C0APPROVALS", &approval_request(&req))
        .await
        .unwrap();
    let body = server.requests_to(SLACK_POST_PATH)[0].body.clone().unwrap();
    let blocks = body["blocks"].as_array().unwrap();
    let actions = block_of(blocks, "actions");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["block_id"], APPROVAL_BLOCK_ID);
    let buttons = actions[0]["elements"].as_array().unwrap();
    assert_eq!(buttons.len(), 2);
    assert_eq!(buttons[0]["type"], "button");
    assert_eq!(buttons[0]["action_id"], APPROVE_ACTION_ID);
    assert_eq!(buttons[0]["style"], "primary");
    assert_eq!(buttons[0]["text"]["text"], "Approve");
    assert_eq!(buttons[0]["confirm"]["confirm"]["text"], "Approve");
    assert_eq!(buttons[1]["action_id"], REJECT_ACTION_ID);
    assert_eq!(buttons[1]["style"], "danger");
    for b in buttons {
        let value = b["value"].as_str().unwrap();
        let r = ApprovalRef::decode(value).unwrap();
        assert_eq!(r, req.approval);
        assert_eq!(r.incident_id(), "INC-2026-042");
        assert_eq!(r.step_id(), "isolate");
        assert_eq!(r.plan_hash(), "a1".repeat(32));
        assert_eq!(r.level(), 1);
        let v: Value = serde_json::from_str(value).unwrap();
        assert_eq!(
            v,
            json!({"v": 1, "incident": "INC-2026-042", "step": "isolate", "plan": "a1".repeat(32), "level": 1})
        );
    }
    let ask = blocks
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with("*Approval needed"))
        .unwrap();
    assert!(
        ask.contains("step `isolate`* (escalation level 2)"),
        "{ask}"
    );
    assert!(ask.contains(&format!("*Plan hash:* `{}`", "a1".repeat(32))));
    assert!(ask.contains("*Asked:* security-lead (ana, bo)"));
    assert!(ask.contains("*Expires:* 2026-04-20 16:00 UTC"));
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("approval needed for step isolate")
    );
}

#[tokio::test]
async fn a_decided_approval_replaces_the_buttons_through_chat_update() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let client = slack(&server, &sleep);
    let req = approval();
    let posted = client
        .post_message("C0APPROVALS", &approval_request(&req))
        .await
        .unwrap();
    let at = posted.message().unwrap().clone();
    let decided = approval_decided(
        &req,
        &Decision::Approved {
            by: Who::SlackUser("U0ANA1234".to_owned()),
        },
        datetime!(2026-04-20 15:12 UTC),
    );
    let updated = client.update_message(&at, &decided).await.unwrap();
    assert_eq!(updated, at);

    let upd = server.requests_to(SLACK_UPDATE_PATH);
    assert_eq!(upd.len(), 1);
    let body = upd[0].body.clone().unwrap();
    assert_eq!(body["channel"], at.channel.as_str());
    assert_eq!(body["ts"], at.ts.as_str());
    let blocks = body["blocks"].as_array().unwrap();
    assert!(block_of(blocks, "actions").is_empty());
    let texts: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect();
    assert!(
        texts.contains(&":white_check_mark: Approved by <@U0ANA1234> at 2026-04-20 15:12 UTC"),
        "{texts:?}"
    );

    let stored = server.slack_messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].updates, 1);
    assert_eq!(stored[0].blocks, body["blocks"]);

    let rejected = approval_decided(
        &req,
        &Decision::Rejected {
            by: Who::Name("bo <!here>".to_owned()),
            reason: Some("wrong instance".to_owned()),
        },
        datetime!(2026-04-20 15:13 UTC),
    );
    client.update_message(&at, &rejected).await.unwrap();
    let last = server.requests_to(SLACK_UPDATE_PATH)[1]
        .body
        .clone()
        .unwrap();
    let text = last.to_string();
    assert!(
        text.contains(":x: Rejected by *bo &lt;!here&gt;*: wrong instance at 2026-04-20 15:13 UTC"),
        "{text}"
    );
}

#[tokio::test]
async fn updating_an_unknown_message_is_a_slack_error() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let err = slack(&server, &sleep)
        .update_message(
            &MessageRef {
                channel: "C0INCIDENTS".to_owned(),
                ts: "1.000000".to_owned(),
            },
            &incident_update(&update()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Api {
            error: "message_not_found".to_owned(),
            detail: None
        }
    );
}

#[tokio::test]
async fn a_429_waits_what_retry_after_says_then_posts() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        SLACK_POST_PATH,
        1,
        Scripted::RateLimited {
            retry_after_secs: 1,
        },
    );
    let posted = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap();
    assert!(posted.message().is_some());
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 2);
    assert_eq!(sleep.waits(), [Duration::from_secs(1)]);
    assert_eq!(server.slack_messages().len(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_is_rate_limited_at_once() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        SLACK_POST_PATH,
        1,
        Scripted::RateLimited {
            retry_after_secs: 45,
        },
    );
    let err = slack(&server, &sleep)
        .with_retry(RetryPolicy {
            max_total_wait: Duration::from_secs(10),
            ..policy()
        })
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::RateLimited {
            retry_after: Some(Duration::from_secs(45)),
            attempts: 1
        }
    );
    assert_eq!(err.name(), "RateLimited");
    assert!(err.is_transient());
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 1);
    assert!(sleep.waits().is_empty());
}

#[tokio::test]
async fn waits_add_up_against_the_budget() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        SLACK_POST_PATH,
        3,
        Scripted::RateLimited {
            retry_after_secs: 4,
        },
    );
    let err = slack(&server, &sleep)
        .with_retry(RetryPolicy {
            max_attempts: 10,
            max_total_wait: Duration::from_secs(10),
            ..policy()
        })
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap_err();
    // 4 s + 4 s fit in 10 s; a third 4 s does not.
    assert_eq!(
        sleep.waits(),
        [Duration::from_secs(4), Duration::from_secs(4)]
    );
    assert_eq!(
        err,
        SlackError::RateLimited {
            retry_after: Some(Duration::from_secs(4)),
            attempts: 3
        }
    );
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(SLACK_POST_PATH, 2, Scripted::Status(500));
    let posted = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap();
    assert!(posted.message().is_some());
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 3);
    let waits = sleep.waits();
    assert_eq!(waits.len(), 2);
    // 100 ms then 200 ms, each with equal jitter: [50, 100] and [100, 200] ms.
    assert!(
        waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100),
        "{waits:?}"
    );
    assert!(
        waits[1] >= Duration::from_millis(100) && waits[1] <= Duration::from_millis(200),
        "{waits:?}"
    );
}

#[tokio::test]
async fn server_errors_end_after_the_last_attempt() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(SLACK_POST_PATH, 10, Scripted::Status(503));
    let err = slack(&server, &sleep)
        .with_retry(RetryPolicy {
            max_attempts: 3,
            ..policy()
        })
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Server {
            status: 503,
            attempts: 3
        }
    );
    assert_eq!(err.name(), "ServerError");
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 3);
    assert_eq!(sleep.waits().len(), 2);
}

#[tokio::test]
async fn ok_false_is_a_typed_error_and_not_retried() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let err = slack(&server, &sleep)
        .post_message("C0MISSING", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Api {
            error: "channel_not_found".to_owned(),
            detail: None
        }
    );
    assert_eq!(err.name(), "SlackApiError");
    assert!(!err.is_transient());
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 1);
    assert!(sleep.waits().is_empty());
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        SLACK_POST_PATH,
        1,
        Scripted::Json {
            status: 400,
            body: json!({"ok": false, "error": "invalid_arguments"}),
        },
    );
    let err = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Api {
            error: "invalid_arguments".to_owned(),
            detail: None
        }
    );
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 1);
    assert!(server.slack_messages().is_empty());
}

#[tokio::test]
async fn invalid_blocks_carry_slacks_pointer() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let mut msg = incident_update(&update());
    msg.blocks
        .push(json!({"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}}));
    let err = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &msg)
        .await
        .unwrap_err();
    match err {
        SlackError::Api { error, detail } => {
            assert_eq!(error, "invalid_blocks");
            assert!(detail.unwrap().contains("json-pointer:/blocks/"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let client = SlackClient::web_api(Secret::new("xoxb-wrong-token-999"))
        .unwrap()
        .with_base_url(server.slack_api_url())
        .with_retry(policy())
        .with_sleep(sleep.clone());
    let err = client
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Unauthorized {
            error: "invalid_auth".to_owned()
        }
    );
    assert_eq!(err.name(), "Unauthorized");
    assert!(!err.to_string().contains("xoxb-wrong-token-999"));
    assert_eq!(server.requests_to(SLACK_POST_PATH).len(), 1);
}

#[tokio::test]
async fn everything_cut_to_block_kit_limits_is_accepted() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let mut u = update();
    u.incident_id = format!("INC-{}", "9".repeat(300));
    u.status = "S".repeat(5000);
    u.summary = "<&>".repeat(4000);
    u.scope = (0..1000)
        .map(|i| format!("resource {i} {}", "z".repeat(90)))
        .collect();
    u.actions_taken = vec!["a".repeat(10_000)];
    u.next_steps = (0..3).map(|_| "n".repeat(2000)).collect();
    u.links = (0..200)
        .map(|i| Link::new(format!("l{i}|x"), format!("https://e.example/{i}?a=<b>|c")))
        .collect();
    u.dry_run = true;
    let msg = incident_update(&u);
    // The fake checks Slack's limits and would answer invalid_blocks.
    let posted = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &msg)
        .await;
    assert!(posted.is_ok(), "{posted:?}");
    let blocks = &msg.blocks;
    assert!(blocks[0]["text"]["text"].as_str().unwrap().ends_with('…'));
    let all = serde_json::to_string(blocks).unwrap();
    assert!(all.contains("more not shown"));
    assert!(!all.contains("<&>"));
    assert!(
        all.contains("<https://e.example/0?a=%3Cb%3E%7Cc|l0¦x>"),
        "link target and label escaped"
    );

    let req = ApprovalRequest {
        update: u,
        approval: ApprovalRef::new("I".repeat(255), "S".repeat(255), "P".repeat(255), 7).unwrap(),
        plan_summary: "p".repeat(9000),
        asked: "a".repeat(9000),
        expires_at: datetime!(2026-04-20 16:00 UTC),
    };
    let posted = slack(&server, &sleep)
        .post_message("C0INCIDENTS", &approval_request(&req))
        .await;
    assert!(posted.is_ok(), "{posted:?}");
}

#[tokio::test]
async fn a_webhook_posts_and_cannot_update() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let client = webhook(&server, &sleep);
    assert!(!client.can_update());
    let posted = client
        .post_message("ignored", &incident_update(&update()))
        .await
        .unwrap();
    assert_eq!(posted, Posted::Webhook);
    assert!(posted.message().is_none());
    let reqs = server.requests_to(ir_chat::fake::FAKE_WEBHOOK_PATH);
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].body.clone().unwrap();
    assert!(body.get("channel").is_none());
    assert_eq!(body["blocks"][0]["type"], "header");
    assert!(body["text"].as_str().unwrap().contains("INC-2026-042"));
    assert!(reqs[0].header("authorization").is_none());

    let err = client
        .update_message(
            &MessageRef {
                channel: "C1".to_owned(),
                ts: "1.0".to_owned(),
            },
            &incident_update(&update()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), "Unsupported");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_webhook_is_retried_and_its_errors_are_typed() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        ir_chat::fake::FAKE_WEBHOOK_PATH,
        1,
        Scripted::RateLimited {
            retry_after_secs: 2,
        },
    );
    webhook(&server, &sleep)
        .post_message("", &incident_update(&update()))
        .await
        .unwrap();
    assert_eq!(sleep.waits(), [Duration::from_secs(2)]);
    assert_eq!(
        server.requests_to(ir_chat::fake::FAKE_WEBHOOK_PATH).len(),
        2
    );

    let gone = SlackClient::webhook(Secret::new(format!(
        "{}/services/T0/B0/removed",
        server.base_url()
    )))
    .unwrap()
    .with_sleep(sleep.clone());
    let err = gone
        .post_message("", &incident_update(&update()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Unauthorized {
            error: "no_service".to_owned()
        }
    );

    let mut empty = incident_update(&update());
    empty.text.clear();
    empty.blocks.clear();
    let err = webhook(&server, &sleep)
        .post_message("", &empty)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SlackError::Api {
            error: "no_text".to_owned(),
            detail: None
        }
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error_after_every_attempt() {
    let sleep = RecordingSleep::new();
    let url = closed_port_url().await;
    let err = SlackClient::web_api(Secret::new(FAKE_SLACK_TOKEN))
        .unwrap()
        .with_base_url(format!("{url}/api"))
        .with_retry(RetryPolicy {
            max_attempts: 3,
            ..policy()
        })
        .with_sleep(sleep.clone())
        .post_message("C0INCIDENTS", &incident_update(&update()))
        .await
        .unwrap_err();
    match &err {
        SlackError::Transport { attempts, detail } => {
            assert_eq!(*attempts, 3);
            assert!(detail.starts_with("could not connect"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sleep.waits().len(), 2);
}

#[test]
fn a_bad_configuration_is_refused() {
    assert_eq!(
        SlackClient::web_api(Secret::new("")).unwrap_err().name(),
        "InvalidConfig"
    );
    assert_eq!(
        SlackClient::web_api(Secret::new("xoxb-a b"))
            .unwrap_err()
            .name(),
        "InvalidConfig"
    );
    assert_eq!(
        SlackClient::webhook(Secret::new("hooks.slack.com/services/x"))
            .unwrap_err()
            .name(),
        "InvalidConfig"
    );
}

#[tokio::test]
async fn posting_to_a_channel_name_gives_back_its_id() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let posted = slack(&server, &sleep)
        .post_message("#incidents", &incident_update(&update()))
        .await
        .unwrap();
    assert_eq!(posted.message().unwrap().channel, "C0FAKECHAN1");
}
