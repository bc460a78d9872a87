//! `ir-announce`: every new audit record, as the audit table's stream (`KEYS_ONLY`) delivers its
//! keys, announced to the incident's Slack channel (`ir_incident::announce`): opened, triaged,
//! approval requested with Approve/Reject buttons, escalations, decisions (the approval message
//! updated with who decided), steps, contained, resolved, clock alerts.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_SLACK_SECRET_ARN` (a bot token: announcements need the Web API), `IR_SLACK_API_URL`, and
//! the config (`ir_aws::config_source`) for the channels.

mod handler;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::outlets::Outlets;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let outlets = Outlets::from_env(&clients).await?;
    let announcer = handler::Announcer {
        clients,
        names,
        config,
        outlets,
    };
    ir_lambda::serve(announcer, |a, event: handler::Incoming| async move {
        handler::handle(&a, event).await
    })
    .await
}
