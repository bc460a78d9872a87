//! `ir-clocks`: run by EventBridge Scheduler every few minutes (the template's schedule). For
//! every open incident, the response SLA's breach and the regulatory deadlines' reminders and
//! breaches are recorded once each in its audit chain (`ir-announce` posts them); while any
//! incident is open, the leadership summary is posted once per configured period
//! (`ir_incident::clocks`). The invocation's payload is not read: time is the function's clock.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_SLACK_SECRET_ARN`, `IR_SLACK_API_URL` (the leadership summary), and the config
//! (`ir_aws::config_source`).

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::clocks::{ClockError, ClockRun, check};
use ir_incident::outlets::Outlets;
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let outlets = Outlets::from_env(&clients).await?;
    let state = (clients, names, config, outlets);
    ir_lambda::serve(state, |s, _ignored: serde_json::Value| async move {
        let done: Result<ClockRun, ClockError> = check(
            &s.0,
            &s.1,
            &s.2,
            s.3.slack.as_ref(),
            OffsetDateTime::now_utc(),
        )
        .await;
        ir_lambda::logged("clock check failed", done)
    })
    .await
}
