//! `ir-enrich`: asset context, threat intel and history for an incident.

mod handler;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // The deployment's config (SSM parameter, S3 object or file, else the embedded one): SDK
    // clients are built only to fetch it from SSM or S3; this function calls no other AWS API.
    let config = ir_aws::config_source::load_without_clients().await?;
    let engine = ir_lambda::env::engine(config)?;
    ir_lambda::serve(engine, |engine, event: handler::Incoming| async move {
        handler::handle(&engine, event)
    })
    .await
}
