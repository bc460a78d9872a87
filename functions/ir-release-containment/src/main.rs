//! `ir-release-containment`: undo exactly what the containment actions of an incident changed.

use ir_aws::Clients;
use ir_aws::payload::Checked;
use ir_aws::release::{ACTION, release_containment};
use ir_core::action::ReleaseRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let clients = Clients::from_env().await;
    run(service_fn(
        move |event: LambdaEvent<Checked<ReleaseRequest>>| {
            let clients = clients.clone();
            async move {
                ir_aws::action::perform(ACTION, event.payload, |req| async move {
                    release_containment(&clients, &req).await
                })
                .await
            }
        },
    ))
    .await
}
