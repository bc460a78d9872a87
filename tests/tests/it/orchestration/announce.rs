//! ir-announce's and ir-clocks' code: every audit record of an incident announced to its Slack
//! channel as the stream delivers it (a local HTTP server speaking Slack's Web API), the
//! approval message carrying buttons and then who decided; the clocks' alerts recorded once
//! each, and the leadership summary once per period.

use ir_chat::fake::{FakeServer, SLACK_POST_PATH, block_actions_payload, signed_interaction};
use ir_chat::slack::blocks::{APPROVE_ACTION_ID, ApprovalRef};
use ir_chat::slack::client::SlackClient;
use ir_core::Config;
use ir_core::config::Mode;
use ir_core::orchestration::RecordRequest;
use ir_incident::announce::{AnnounceError, Announced, announce};
use ir_incident::approval::request;
use ir_incident::clocks::check;
use ir_incident::slack_decision::{SlackApprovals, decide_from_slack};
use ir_tests::TestResult;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::approval::{ALICE, BOB, policy, slack_request, start_gate};
use super::notify::outlets;
use super::{Fixture, fixture, isolation_report, stored_and_triaged};

/// Announces every record of the incident's chain in order, as the stream delivers them.
async fn announce_chain(
    f: &Fixture,
    config: &Config,
    slack: &SlackClient,
    id: &str,
) -> Vec<(String, Announced)> {
    let mut out = Vec::new();
    for r in f.chain(id).await {
        let done = announce(
            &f.clients,
            &f.names,
            config,
            Some(slack),
            id,
            r.seq,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
        out.push((r.action.clone(), done));
    }
    out
}

fn text_of(blocks: &Value) -> String {
    blocks.to_string()
}

/// Every `chat.postMessage` as Slack received it: the channel asked for, and the blocks.
fn posted(fake: &FakeServer) -> Vec<(String, String)> {
    fake.requests_to(SLACK_POST_PATH)
        .into_iter()
        .filter_map(|r| r.body)
        .map(|b| {
            (
                b["channel"].as_str().unwrap_or_default().to_owned(),
                text_of(&b["blocks"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_update_reaches_its_channel_once_and_the_approval_message_says_who_decided()
-> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let sfn = f.clients.sfn();
    let (_execution, req, _) = start_gate(sfn, &decision, "isolate_instance").await;
    request(
        &f.clients,
        &f.names,
        &f.gate(),
        &req,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let fake = FakeServer::start().await?;
    let (o, _sleep) = outlets(&f, &fake).await;
    let slack = o.slack.clone().unwrap();
    let config = Config::embedded()?;

    let first = announce_chain(&f, &config, &slack, &id).await;
    let actions: Vec<&str> = first.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["opened", "triage-started", "triaged", "approval-requested"],
        "{first:?}"
    );
    let messages = fake.slack_messages();
    let posts = posted(&fake);
    let channels: Vec<&str> = posts.iter().map(|(c, _)| c.as_str()).collect();
    // The opening goes to the updates channel although it is announced after the triage chose
    // a playbook (the chain up to it, not the incident's present, decides); from the triage on,
    // the playbook's channel; the request to the approvals channel.
    assert_eq!(
        channels,
        ["#ir-updates", "#ir-critical", "#ir-approvals"],
        "{posts:?}"
    );
    assert!(text_of(&messages[0].blocks).contains("Incident opened: CryptoCurrency"));
    assert!(
        text_of(&messages[1].blocks)
            .contains("Triaged: critical severity, playbook immediate-isolation (enforce)"),
        "{}",
        messages[1].blocks
    );
    // The approval message: buttons naming the stored plan.
    let approval = &messages[2];
    let buttons: Vec<&Value> = approval
        .blocks
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .collect();
    assert_eq!(buttons.len(), 2);
    let value = ApprovalRef::decode(buttons[0]["value"].as_str().unwrap())?;
    let stored = ir_aws::store::ApprovalStore::new(f.clients.clone(), f.names.clone())
        .get(&id, "isolate-instance")
        .await?
        .unwrap();
    let plan = stored.plan_hash.clone().unwrap();
    assert_eq!(
        (
            value.incident_id(),
            value.step_id(),
            value.plan_hash(),
            value.level()
        ),
        (id.as_str(), "isolate-instance", plan.as_str(), 0)
    );
    assert!(text_of(&approval.blocks).contains("Approval requested: step isolate-instance"));

    // The stream delivers again: nothing is posted twice.
    let posts = fake.requests().len();
    let again = announce_chain(&f, &config, &slack, &id).await;
    assert!(
        again
            .iter()
            .all(|(_, a)| matches!(a, Announced::AlreadyAnnounced | Announced::Nothing(_))),
        "{again:?}"
    );
    assert_eq!(fake.requests().len(), posts);

    // Two people approve with Slack's buttons; the approval message then says who decided.
    let secret = ir_chat::Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
    let approvals = SlackApprovals::new(
        secret.clone(),
        [("U0ALICE", ALICE), ("U0BOB", BOB)]
            .into_iter()
            .map(|(u, a)| (u.to_owned(), a.to_owned()))
            .collect(),
    );
    let t = OffsetDateTime::now_utc().unix_timestamp();
    for (i, user) in ["U0ALICE", "U0BOB"].into_iter().enumerate() {
        let click = block_actions_payload(
            user,
            APPROVE_ACTION_ID,
            buttons[0]["value"].as_str().unwrap(),
            "C0IR",
            "1733000000.000100",
        );
        let r = slack_request(&signed_interaction(&secret, t + i as i64, &click));
        decide_from_slack(
            &f.clients,
            &f.names,
            &policy(),
            Some(&approvals),
            &r,
            OffsetDateTime::now_utc(),
        )
        .await?;
    }
    // The step ran: its result is an update too.
    f.recorder()
        .record(RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "isolate-instance".into(),
            report: isolation_report(&id, Mode::Enforce),
        })
        .await?;
    let later = announce_chain(&f, &config, &slack, &id).await;
    let new: Vec<&str> = later
        .iter()
        .filter(|(_, a)| matches!(a, Announced::Sent { .. }))
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        new,
        ["approval-counted", "approved", "action:ir-isolate-instance"],
        "{later:?}"
    );
    let messages = fake.slack_messages();
    let decided = messages.iter().find(|m| m.ts == approval.ts).unwrap();
    assert_eq!(decided.updates, 1, "the approval message is updated once");
    let decided_text = text_of(&decided.blocks);
    assert!(
        decided_text.contains("Approved by *bob@example.com*"),
        "{decided_text}"
    );
    assert!(
        !decided_text.contains("\"type\":\"actions\""),
        "the buttons are gone"
    );
    let texts: Vec<String> = messages.iter().map(|m| text_of(&m.blocks)).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("approved by alice@example.com (1 of 2 approvals)")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Step isolate-instance approved by bob@example.com"))
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Step isolate-instance applied (enforce, 2 change(s))")),
        "{texts:?}"
    );

    // Keys that name no record, or no incident: refused, nothing posted.
    let posts = fake.requests().len();
    let missing = announce(
        &f.clients,
        &f.names,
        &config,
        Some(&slack),
        &id,
        9_999,
        OffsetDateTime::now_utc(),
    )
    .await;
    assert!(
        matches!(missing, Err(AnnounceError::NotFound(_))),
        "{missing:?}"
    );
    let forged = announce(
        &f.clients,
        &f.names,
        &config,
        Some(&slack),
        "inc-x\"><script>",
        0,
        OffsetDateTime::now_utc(),
    )
    .await;
    assert!(
        matches!(forged, Err(AnnounceError::InvalidInput(_))),
        "{forged:?}"
    );
    assert_eq!(fake.requests().len(), posts);
    // No bot token: nothing is announced (and nothing marked: a later deployment with one
    // announces from then on).
    let none = announce(
        &f.clients,
        &f.names,
        &config,
        None,
        &id,
        0,
        OffsetDateTime::now_utc(),
    )
    .await?;
    assert!(matches!(none, Announced::Nothing(_)));
    Ok(())
}

#[tokio::test]
async fn clock_alerts_are_recorded_once_each_and_the_leadership_summary_once_per_period()
-> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    // The asset is confidential: GDPR's 72 hours run from detection.
    assert_eq!(decision.deadlines.len(), 1, "{:?}", decision.deadlines);
    assert_eq!(decision.deadlines[0].regime, "gdpr");
    let detected = input.detected_at;
    let fake = FakeServer::start().await?;
    let (o, _sleep) = outlets(&f, &fake).await;
    let slack = o.slack.clone().unwrap();
    let config = Config::embedded()?;
    let at = |h: i64| detected + Duration::hours(h);

    // Within the critical response window: nothing is due; the summary goes out.
    let run = check(
        &f.clients,
        &f.names,
        &config,
        Some(&slack),
        detected + Duration::minutes(5),
    )
    .await?;
    assert!(run.alerts.iter().all(|a| !a.starts_with(&id)), "{run:?}");
    assert!(run.leadership_summary);
    // 37 hours on: not contained, so the SLA is breached, and half of GDPR's time is gone.
    let run = check(&f.clients, &f.names, &config, Some(&slack), at(37)).await?;
    let mine: Vec<&str> = run
        .alerts
        .iter()
        .filter(|a| a.starts_with(&id))
        .map(String::as_str)
        .collect();
    assert_eq!(
        mine,
        [format!("{id} sla#breached"), format!("{id} gdpr#left-50")]
    );
    // Again in the same period: nothing new, no second summary.
    let same = check(&f.clients, &f.names, &config, Some(&slack), at(37)).await?;
    assert!(same.alerts.iter().all(|a| !a.starts_with(&id)), "{same:?}");
    assert!(!same.leadership_summary);
    let run = check(&f.clients, &f.names, &config, Some(&slack), at(66)).await?;
    assert!(
        run.alerts.contains(&format!("{id} gdpr#left-10")),
        "{run:?}"
    );
    let run = check(&f.clients, &f.names, &config, Some(&slack), at(73)).await?;
    assert!(
        run.alerts.contains(&format!("{id} gdpr#breached")),
        "{run:?}"
    );
    let alerts: Vec<Value> = f
        .chain(&id)
        .await
        .into_iter()
        .filter(|r| r.action == "clock-alert")
        .map(|r| r.detail)
        .collect();
    assert_eq!(alerts.len(), 4, "{alerts:?}");

    // The alerts reach the channels that must know; the summaries the leadership channel.
    let before = posted(&fake).len();
    announce_chain(&f, &config, &slack, &id).await;
    let posts = posted(&fake);
    let summaries: Vec<&String> = posts
        .iter()
        .filter(|(c, t)| c == "#ir-leadership" && t.contains("Leadership summary"))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(summaries.len(), 4, "{posts:?}");
    assert!(summaries[0].contains(&id));
    let legal: Vec<&String> = posts[before..]
        .iter()
        .filter(|(c, _)| c == "#legal-compliance")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(legal.len(), 3, "{legal:?}");
    assert!(
        legal[0].contains("GDPR Art. 33: notify the supervisory authority: 50% of the time left"),
        "{}",
        legal[0]
    );
    assert!(legal[2].contains("BREACHED"));
    let sla: Vec<&str> = posts[before..]
        .iter()
        .filter(|(_, t)| t.contains("Response SLA (critical"))
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(sla, ["#ir-critical", "#ir-leadership"], "{posts:?}");
    Ok(())
}
