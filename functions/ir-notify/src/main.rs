//! `ir-notify`: a playbook's chat message or ticket request, as an incident update published to
//! the suite's SNS topic (subscribers route it by its `kind`, `channel`, `project` attributes).
//!
//! Environment: `IR_NOTIFY_TOPIC_ARN`, `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`,
//! `IR_APPROVALS_TABLE`; for Slack and Jira, `IR_SLACK_SECRET_ARN`, `IR_SLACK_API_URL`,
//! `IR_JIRA_SECRET_ARN`, `IR_JIRA_ISSUE_TYPE` (`ir_incident::outlets`).

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::orchestration::NotifyRequest;
use ir_incident::notify::{NOTIFY_ACTION, notify_step};
use ir_incident::outlets::Outlets;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let topic = ir_lambda::env::required("IR_NOTIFY_TOPIC_ARN")?;
    let clients = Clients::from_env().await;
    // Slack and Jira, when the deployment gave their secrets: read once, here.
    let outlets = Outlets::from_env(&clients).await?;
    let state = (clients, names, topic, outlets);
    ir_lambda::serve_action(NOTIFY_ACTION, state, |s, req: NotifyRequest| async move {
        notify_step(&s.0, &s.1, &s.2, &s.3, &req).await
    })
    .await
}
