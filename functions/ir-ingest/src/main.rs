//! `ir-ingest`: EventBridge finding events in, incidents to triage out.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    run(service_fn(
        |event: LambdaEvent<handler::Incoming>| async move { handler::handle(event.payload) },
    ))
    .await
}
