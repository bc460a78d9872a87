//! `ir-snapshot-volumes`: one crash-consistent set of EBS snapshots of an instance, for evidence.

use ir_aws::Clients;
use ir_aws::payload::Checked;
use ir_core::action::ContainmentRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

const ACTION: &str = "ir-snapshot-volumes";

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let clients = Clients::from_env().await;
    run(service_fn(
        move |event: LambdaEvent<Checked<ContainmentRequest>>| {
            let clients = clients.clone();
            async move {
                ir_aws::action::perform(ACTION, event.payload, |req| async move {
                    ir_aws::ec2::snapshot_volumes(&clients, &req).await
                })
                .await
            }
        },
    ))
    .await
}
