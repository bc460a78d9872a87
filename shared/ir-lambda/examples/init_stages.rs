//! What the functions' init time is made of, stage by stage: a Lambda runtime that does nothing
//! else (`IR_INIT_STAGE=runtime`), then with the telemetry (`telemetry`), with every SDK client
//! from the standard configuration chain (`clients`), and with the config loaded and validated
//! too (`config`, what most functions do). Measure each with `scripts/bench/init_time.py` on a
//! release build: `cargo build --release -p ir-lambda --example init_stages`.

use ir_aws::Clients;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let stage = std::env::var("IR_INIT_STAGE").unwrap_or_default();
    if stage != "runtime" {
        ir_lambda::telemetry::init();
    }
    let clients = if matches!(stage.as_str(), "clients" | "config") {
        Some(Clients::from_env().await)
    } else {
        None
    };
    if stage == "config" {
        ir_lambda::env::config()?;
    }
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let ready = clients.is_some();
        async move { Ok::<_, Error>(serde_json::json!({ "clients": ready })) }
    }))
    .await
}
