//! `ir-collect-evidence`: the finding, the resource's description and the incident window's
//! CloudTrail logs into the Object Lock evidence bucket, with a manifest written last.
//!
//! Settings are read once at init: `IR_EVIDENCE_BUCKET` (required), `IR_TRAIL_BUCKET`
//! (optional; without it no logs are collected and every report says so), and the `evidence`
//! section of the configuration. A bad setting fails init once, never an invocation.

use ir_aws::Clients;
use ir_core::action::EvidenceRequest;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let state = ir_aws::evidence::EvidenceSettings::from_env()?;
    let clients = Clients::from_env().await;
    ir_aws::action::serve(
        ir_aws::evidence::ACTION,
        clients,
        state,
        |c, settings, req: EvidenceRequest| async move {
            ir_aws::evidence::collect_evidence(&c, &settings, &req).await
        },
    )
    .await
}
