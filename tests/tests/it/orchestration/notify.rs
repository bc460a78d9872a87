//! ir-notify's code: the incident update published to the topic, with the attributes
//! subscribers route on, as a subscriber receives it.

use ir_chat::fake::{
    FAKE_JIRA_EMAIL, FAKE_JIRA_TOKEN, FAKE_SLACK_TOKEN, FakeServer, RecordingSleep, Scripted,
};
use ir_core::Engine;
use ir_core::action::Outcome;
use ir_core::config::Mode;
use ir_core::orchestration::{NotifyRequest, RecordRequest};
use ir_core::playbook::PlannedStep;
use ir_incident::outlets::{OutletSettings, Outlets};
use ir_tests::TestResult;
use serde_json::{Value, json};

use super::{attribute, env, fixture, isolation_report, sent, stored_and_triaged};

#[tokio::test]
async fn notifications_publish_the_incident_update_with_routing_attributes() -> TestResult {
    let f = fixture().await;
    let (input, decision) = stored_and_triaged(&f, Mode::DryRun).await;
    let id = input.incident_id.clone();
    // One step ran (dry-run): it shows under Actions Taken.
    f.recorder()
        .record(RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "isolate-instance".into(),
            report: isolation_report(&id, Mode::DryRun),
        })
        .await?;
    let step = PlannedStep::clone(decision.plan()["notify_channel"]);
    let req = NotifyRequest {
        incident_id: id.clone(),
        step_id: step.id.clone(),
        mode: Mode::DryRun,
        step,
    };
    let mark = f.mark();
    let report =
        ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &Outlets::default(), &req)
            .await?;
    assert_eq!(
        f.calls(mark),
        ["DynamoDB:GetItem", "DynamoDB:Query", "SNS:Publish"]
    );
    assert_eq!(report.aws_calls, 3);
    assert_eq!(report.action, "ir-notify");
    assert_eq!(report.mode, Mode::DryRun);
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.changes.len(), 1);
    let change = &report.changes[0];
    assert_eq!(change.target, "#ir-critical");
    assert_eq!(change.attribute, "notification");
    assert_eq!(change.before, Value::Null);
    let message_id = change.after["messageId"].as_str().unwrap().to_owned();
    assert_eq!(change.after, json!({ "messageId": message_id }));

    let delivered = env().lambda.wait_posted(&f.inbox, 1).await;
    let note = delivered
        .iter()
        .find(|n| n["MessageId"] == message_id.as_str())
        .unwrap();
    let subject = note["Subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("[DRY RUN] [CRITICAL] {id} containment")),
        "{subject}"
    );
    let body = note["Message"].as_str().unwrap();
    for line in [
        "[DRY RUN] Channel: #ir-critical\n".to_owned(),
        format!("## Incident Update: {id}\n"),
        "**Status:** Containment\n".to_owned(),
        "**Severity:** Critical\n".to_owned(),
        "**Time contained:** not contained yet\n".to_owned(),
        "### Summary\nCritical severity incident on ec2-instance i-0a1b2c3d4e5f60001 (account 111122223333, us-east-1): 1 finding, first: The EC2 instance i-0a1b2c3d4e5f60001 queried a domain name associated with Bitcoin-related activity.".to_owned(),
        "### Actions Taken\n1. isolate-instance: ir-isolate-instance planned only (dry-run), 2 change(s) planned\n".to_owned(),
        "### Next Steps\n- This playbook runs in dry-run".to_owned(),
        format!("`ir audit verify {id}`"),
    ] {
        assert!(body.contains(&line), "missing {line:?} in:\n{body}");
    }
    let kept = sent(&f.topic).await;
    let (_, _, _, attrs) = kept.iter().find(|n| n.0 == message_id).unwrap();
    assert_eq!(attribute(attrs, "kind"), "channel-message");
    assert_eq!(attribute(attrs, "channel"), "#ir-critical");
    assert_eq!(attribute(attrs, "severity"), "critical");

    // A ticket request (investigate-and-notify's create-ticket), in enforce: no dry-run mark.
    let engine = Engine::embedded().unwrap();
    let high = engine.decide(
        &id,
        &input.events,
        &engine.enrich(&input.events, 0),
        input.detected_at,
    )?;
    assert_eq!(high.playbook.id, "investigate-and-notify");
    let mut ticket = PlannedStep::clone(high.plan()["create_ticket"]);
    ticket.mode = Mode::Enforce;
    let report = ir_incident::notify::notify_step(
        &f.clients,
        &f.names,
        &f.topic,
        &Outlets::default(),
        &NotifyRequest {
            incident_id: id.clone(),
            step_id: ticket.id.clone(),
            mode: Mode::Enforce,
            step: ticket,
        },
    )
    .await?;
    assert_eq!(report.changes[0].target, "jira:SEC");
    let message_id = report.changes[0].after["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = sent(&f.topic).await;
    let (_, message, subject, attrs) = kept.iter().find(|n| n.0 == message_id).unwrap();
    assert!(
        subject.starts_with("[CRITICAL] SEC ticket: Critical severity incident"),
        "{subject}"
    );
    assert!(
        message.starts_with("Ticket request\nProject: SEC\nPriority: High\n"),
        "{message}"
    );
    assert_eq!(attribute(attrs, "kind"), "ticket-request");
    assert_eq!(attribute(attrs, "project"), "SEC");
    assert_eq!(attribute(attrs, "priority"), "High");

    // Not a notification action.
    let wrong = NotifyRequest {
        incident_id: id.clone(),
        step_id: "isolate-instance".into(),
        mode: Mode::DryRun,
        step: PlannedStep::clone(decision.plan()["isolate_instance"]),
    };
    let e = ir_incident::notify::notify_step(
        &f.clients,
        &f.names,
        &f.topic,
        &Outlets::default(),
        &wrong,
    )
    .await
    .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&e),
        ir_core::ErrorName::InvalidInput
    );
    Ok(())
}

/// A Secrets Manager secret (on the emulator) holding `value`; its ARN.
pub(super) async fn secret(f: &super::Fixture, value: serde_json::Value) -> String {
    f.clients
        .secretsmanager()
        .create_secret()
        .name(ir_tests::unique_name("ir-chat"))
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

/// The outlets a deployment with Slack (bot token) and Jira secrets in Secrets Manager gets,
/// pointed at `fake`, waiting nowhere between retries.
pub(super) async fn outlets(
    f: &super::Fixture,
    fake: &FakeServer,
) -> (Outlets, std::sync::Arc<RecordingSleep>) {
    let slack = secret(
        f,
        json!({ "bot_token": FAKE_SLACK_TOKEN, "signing_secret": "s3cr3t" }),
    )
    .await;
    let jira = secret(
        f,
        json!({ "base_url": fake.jira_url(), "email": FAKE_JIRA_EMAIL, "api_token": FAKE_JIRA_TOKEN }),
    )
    .await;
    let mut o = Outlets::load(
        &f.clients,
        &OutletSettings {
            slack_secret_arn: Some(slack),
            slack_api_url: Some(fake.slack_api_url()),
            jira_secret_arn: Some(jira),
            jira_issue_type: None,
        },
    )
    .await
    .unwrap();
    let sleep = RecordingSleep::new();
    o.slack = o.slack.map(|s| s.with_sleep(sleep.clone()));
    o.jira = o.jira.map(|mut j| {
        j.client = j.client.with_sleep(sleep.clone());
        j
    });
    (o, sleep)
}

fn channel_step(decision: &ir_core::Decision, id: &str) -> NotifyRequest {
    let step = PlannedStep::clone(decision.plan()["notify_channel"]);
    NotifyRequest {
        incident_id: id.to_owned(),
        step_id: step.id.clone(),
        mode: Mode::Enforce,
        step,
    }
}

#[tokio::test]
async fn a_channel_step_posts_the_incident_update_to_slack_as_block_kit() -> TestResult {
    let f = fixture().await;
    let fake = FakeServer::start().await?;
    let (outlets, sleep) = outlets(&f, &fake).await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    // Slack is busy once: Retry-After is honoured, then the message goes.
    fake.script(
        "/api/chat.postMessage",
        1,
        Scripted::RateLimited {
            retry_after_secs: 3,
        },
    );
    let report = ir_incident::notify::notify_step(
        &f.clients,
        &f.names,
        &f.topic,
        &outlets,
        &channel_step(&decision, &id),
    )
    .await?;
    assert_eq!(sleep.waits(), [std::time::Duration::from_secs(3)]);
    let posts = fake.requests_to("/api/chat.postMessage");
    assert_eq!(posts.len(), 2, "the 429, then the message");
    let post = &posts[1];
    assert_eq!(
        post.header("authorization"),
        Some(format!("Bearer {FAKE_SLACK_TOKEN}").as_str())
    );
    let body = post.body.as_ref().unwrap();
    assert_eq!(body["channel"], "#ir-critical");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"].as_str().unwrap().contains(&id),
        "{:?}",
        blocks[0]
    );
    let text = body.to_string();
    for field in [
        "Status",
        "Severity",
        "Time detected",
        "Time contained",
        "Summary",
        "Scope",
        "Actions taken",
        "Next steps",
    ] {
        assert!(text.contains(field), "no {field} in {text}");
    }
    assert!(text.contains("Critical"), "{text}");
    // The topic's message and the Slack message, each a change of the step.
    let slack = report
        .changes
        .iter()
        .find(|c| c.target == "slack:#ir-critical")
        .unwrap();
    assert_eq!(slack.attribute, "message");
    let posted = fake.slack_messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(slack.after["ts"], posted[0].ts.as_str());
    assert!(report.changes.iter().any(|c| c.attribute == "notification"));
    Ok(())
}

#[tokio::test]
async fn a_slack_refusal_fails_the_step_as_delivery_failed_after_the_topic_message() -> TestResult {
    let f = fixture().await;
    let fake = FakeServer::start().await?;
    let (outlets, _) = outlets(&f, &fake).await;
    let (input, decision) = stored_and_triaged(&f, Mode::Enforce).await;
    fake.script(
        "/api/chat.postMessage",
        1,
        Scripted::Json {
            status: 200,
            body: json!({ "ok": false, "error": "channel_not_found" }),
        },
    );
    let e = ir_incident::notify::notify_step(
        &f.clients,
        &f.names,
        &f.topic,
        &outlets,
        &channel_step(&decision, &input.incident_id),
    )
    .await
    .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&e),
        ir_core::ErrorName::DeliveryFailed
    );
    let text = e.to_string();
    assert!(text.contains("channel_not_found"), "{text}");
    // Not retried: Slack said no.
    assert_eq!(fake.requests_to("/api/chat.postMessage").len(), 1);
    // What went out before is in the error: the topic's message.
    assert!(text.contains("notification"), "{text}");
    assert!(!text.contains(FAKE_SLACK_TOKEN), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_ticket_step_creates_one_jira_issue_per_incident_and_step() -> TestResult {
    let f = fixture().await;
    let fake = FakeServer::start().await?;
    let (outlets, _) = outlets(&f, &fake).await;
    let (input, _) = stored_and_triaged(&f, Mode::Enforce).await;
    let id = input.incident_id.clone();
    let engine = Engine::embedded().unwrap();
    let high = engine.decide(
        &id,
        &input.events,
        &engine.enrich(&input.events, 0),
        input.detected_at,
    )?;
    let ticket = PlannedStep::clone(high.plan()["create_ticket"]);
    let req = NotifyRequest {
        incident_id: id.clone(),
        step_id: ticket.id.clone(),
        mode: Mode::Enforce,
        step: ticket,
    };
    // Jira fails once with a 500: retried.
    fake.script("/rest/api/3/issue", 1, Scripted::Status(500));
    let first =
        ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &outlets, &req).await?;
    let again =
        ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &outlets, &req).await?;
    let issue = |r: &ir_core::action::ActionReport| {
        r.changes
            .iter()
            .find(|c| c.target == "jira:SEC" && c.attribute == "issue")
            .unwrap()
            .after
            .clone()
    };
    let (a, b) = (issue(&first), issue(&again));
    assert_eq!(a["key"], b["key"]);
    assert_eq!(a["alreadyExisted"], false);
    assert_eq!(b["alreadyExisted"], true);
    assert_eq!(fake.jira_issues().len(), 1);
    let creates = fake.requests_to("/rest/api/3/issue");
    assert_eq!(
        creates.len(),
        2,
        "the 500, then the issue; none for the rerun"
    );
    // The rerun found the issue in the suite's own record of it (read strongly consistent), not
    // through Jira's search, whose index lags a creation: one search, the first run's.
    assert_eq!(fake.requests_to(ir_chat::fake::JIRA_SEARCH_PATH).len(), 1);
    let fields = &creates[1].body.as_ref().unwrap()["fields"];
    assert_eq!(fields["project"]["key"], "SEC");
    assert_eq!(fields["priority"]["name"], "High");
    assert!(fields["summary"].as_str().unwrap().contains(&id));
    assert_eq!(fields["description"]["type"], "doc");
    assert!(
        a["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/browse/{}", a["key"].as_str().unwrap()))
    );
    Ok(())
}
