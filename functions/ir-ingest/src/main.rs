//! `ir-ingest`: EventBridge finding events in; incidents stored, audited and sent to triage.
//!
//! Environment: `IR_TRIAGE_STATE_MACHINE_ARN`, `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`,
//! `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`.

mod handler;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::intake::Intake;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let triage = ir_lambda::env::required("IR_TRIAGE_STATE_MACHINE_ARN")?;
    let intake = Intake::new(Clients::from_env().await, names, triage);
    ir_lambda::serve(intake, |intake, event: handler::Incoming| async move {
        handler::handle(&intake, event).await
    })
    .await
}
