//! `ir-isolate-instance`: cut an instance off the network without losing it or its evidence.

use ir_aws::Clients;
use ir_aws::payload::Checked;
use ir_core::action::ContainmentRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

const ACTION: &str = "ir-isolate-instance";

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let clients = Clients::from_env().await;
    run(service_fn(
        move |event: LambdaEvent<Checked<ContainmentRequest>>| {
            let clients = clients.clone();
            async move {
                ir_aws::action::perform(ACTION, event.payload, |req| async move {
                    ir_aws::ec2::isolate_instance(&clients, &req).await
                })
                .await
            }
        },
    ))
    .await
}
