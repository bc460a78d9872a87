//! `ir-revoke-sessions`: end every session of a role or user issued before now (an instance: its profile's role).

use ir_aws::Clients;
use ir_aws::payload::Checked;
use ir_core::action::ContainmentRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

const ACTION: &str = ir_aws::iam::REVOKE_SESSIONS_ACTION;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    // Configuration is read once: a bad config file fails init, never an invocation.
    let protection = std::sync::Arc::new(ir_aws::env::config()?.protection);
    let clients = Clients::from_env().await;
    run(service_fn(
        move |event: LambdaEvent<Checked<ContainmentRequest>>| {
            let (clients, protection) = (clients.clone(), protection.clone());
            async move {
                ir_aws::action::perform(ACTION, event.payload, |req| async move {
                    ir_aws::iam::revoke_sessions(&clients, &protection, &req).await
                })
                .await
            }
        },
    ))
    .await
}
