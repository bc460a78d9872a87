//! `ir-ingest`: EventBridge finding events in; incidents stored, audited and sent to triage.
//!
//! Environment: `IR_TRIAGE_STATE_MACHINE_ARN`, `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`,
//! `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`.

mod handler;

use std::sync::Arc;

use ir_aws::Clients;
use ir_aws::recorder::Intake;
use ir_aws::store::TableNames;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let names = TableNames::from_env()?;
    let triage = ir_aws::env::required("IR_TRIAGE_STATE_MACHINE_ARN")?;
    let intake = Arc::new(Intake::new(Clients::from_env().await, names, triage));
    run(service_fn(move |event: LambdaEvent<handler::Incoming>| {
        let intake = Arc::clone(&intake);
        async move { handler::handle(&intake, event.payload).await }
    }))
    .await
}
