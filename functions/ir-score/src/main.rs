//! `ir-score`: score, severity, playbook and SLA for an enriched incident.

mod handler;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let engine = ir_lambda::env::engine()?;
    ir_lambda::serve(engine, |engine, event: handler::Incoming| async move {
        handler::handle(&engine, event)
    })
    .await
}
