//! `ir-enrich`: asset context, threat intel and history for an incident.

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
