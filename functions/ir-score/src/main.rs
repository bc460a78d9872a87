//! `ir-score`: score, severity, playbook and SLA for an enriched incident.

mod handler;

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let engine = Arc::new(ir_aws::env::engine()?);
    run(service_fn(move |event: LambdaEvent<handler::Incoming>| {
        let engine = Arc::clone(&engine);
        async move { handler::handle(&engine, event.payload) }
    }))
    .await
}
