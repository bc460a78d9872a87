//! `ir-record`: the incident record and its audit chain, written as the state machines go.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_EVIDENCE_BUCKET` (where the audit head is anchored), and the config (`ir_aws::config_source`).

mod handler;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::recorder::{Recorder, RecorderSettings, SlotSettings};

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let settings = RecorderSettings {
        evidence_bucket: ir_lambda::env::required("IR_EVIDENCE_BUCKET")?,
        slots: SlotSettings::of(&config),
        evidence: config.evidence,
    };
    let recorder = Recorder::new(clients, names, settings);
    ir_lambda::serve(recorder, |recorder, event: handler::Incoming| async move {
        handler::handle(&recorder, event).await
    })
    .await
}
