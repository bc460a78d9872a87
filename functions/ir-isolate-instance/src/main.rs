//! `ir-isolate-instance`: cut an instance off the network without losing it or its evidence.

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let clients = Clients::from_env().await;
    ir_aws::action::serve(ir_aws::ec2::ISOLATE_ACTION, clients, (), |c, _, req: ContainmentRequest| async move {
        ir_aws::ec2::isolate_instance(&c, &req).await
    })
    .await
}
