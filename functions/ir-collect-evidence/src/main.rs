//! `ir-collect-evidence`: the finding, the resource's description and the incident window's
//! CloudTrail logs into the Object Lock evidence bucket, with a manifest written last.
//!
//! Settings are read once at init: `IR_EVIDENCE_BUCKET` (required), `IR_TRAIL_BUCKET`
//! (optional; without it no logs are collected and every report says so), the `evidence`
//! section of the configuration (`ir_aws::config_source`: the deployment's SSM parameter, S3
//! object or file, else the embedded one), and the suite's tables (the guard; a step's `retention`, the
//! log window before the first activity, read from the incident's recorded plan). A bad setting
//! fails init once, never an invocation.

use ir_actions::evidence::{self, EvidenceSettings};
use ir_aws::Clients;
use ir_core::action::EvidenceRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let settings = EvidenceSettings::from_env(config.evidence.clone())?;
    let guard = ir_actions::guard::Guard::from_env(&clients, config, evidence::ACTION).await?;
    let names = ir_aws::store::TableNames::from_env()?;
    let state = (clients, settings, guard, names);
    ir_lambda::serve_action(
        evidence::ACTION,
        state,
        |s, req: EvidenceRequest| async move {
            let (c, settings, guard, names) = &*s;
            guard
                .run(c, req, |at, mut r| async move {
                    // The step's own log window (its recorded `retention`), else the default.
                    let settings = settings.for_step(c, names, &r).await?;
                    // The source account and region the evidence records are where the session
                    // acts: the incident's, not the payload's.
                    r.account.clone_from(&at.place.account);
                    r.region.clone_from(&at.place.region);
                    evidence::collect_evidence_at(c, &at.clients, &settings, &r).await
                })
                .await
        },
    )
    .await
}
