//! ir-notify's code: the incident update published to the topic, with the attributes
//! subscribers route on, as a subscriber receives it.

use ir_core::Engine;
use ir_core::action::Outcome;
use ir_core::config::Mode;
use ir_core::orchestration::{NotifyRequest, RecordRequest};
use ir_core::playbook::PlannedStep;
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
    let report = ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &req).await?;
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
    let e = ir_incident::notify::notify_step(&f.clients, &f.names, &f.topic, &wrong)
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&e),
        ir_core::ErrorName::InvalidInput
    );
    Ok(())
}
