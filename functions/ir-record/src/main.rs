//! `ir-record`: the incident record and its audit chain, written as the state machines go.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_EVIDENCE_BUCKET` (where the audit head is anchored), `IR_CONFIG_FILE` (optional).

mod handler;

use std::sync::Arc;

use ir_aws::Clients;
use ir_aws::recorder::{Recorder, RecorderSettings};
use ir_aws::store::TableNames;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let names = TableNames::from_env()?;
    let settings = RecorderSettings {
        evidence_bucket: ir_aws::env::required("IR_EVIDENCE_BUCKET")?,
        evidence: ir_aws::env::config()?.evidence,
    };
    let recorder = Arc::new(Recorder::new(Clients::from_env().await, names, settings));
    run(service_fn(move |event: LambdaEvent<handler::Incoming>| {
        let recorder = Arc::clone(&recorder);
        async move { handler::handle(&recorder, event.payload).await }
    }))
    .await
}
