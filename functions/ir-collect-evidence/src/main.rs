//! `ir-collect-evidence`: the finding, the resource's description and the incident window's
//! CloudTrail logs into the Object Lock evidence bucket, with a manifest written last.
//!
//! Settings are read once at init: `IR_EVIDENCE_BUCKET` (required), `IR_TRAIL_BUCKET`
//! (optional; without it no logs are collected and every report says so), and the `evidence`
//! section of the configuration. A bad setting fails init once, never an invocation.

use std::sync::Arc;

use ir_aws::Clients;
use ir_aws::evidence::{ACTION, EvidenceSettings};
use ir_aws::payload::Checked;
use ir_core::action::EvidenceRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let settings = Arc::new(EvidenceSettings::from_env()?);
    let clients = Clients::from_env().await;
    run(service_fn(
        move |event: LambdaEvent<Checked<EvidenceRequest>>| {
            let (clients, settings) = (clients.clone(), Arc::clone(&settings));
            async move {
                ir_aws::action::perform(ACTION, event.payload, |req| async move {
                    ir_aws::evidence::collect_evidence(&clients, &settings, &req).await
                })
                .await
            }
        },
    ))
    .await
}
