//! `ir-isolate-instance`: cut an instance off the network without losing it or its evidence.

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let clients = Clients::from_env().await;
    ir_lambda::serve_action(ir_actions::ec2::ISOLATE_ACTION, clients, |c, req: ContainmentRequest| async move {
        ir_actions::ec2::isolate_instance(&c, &req).await
    })
    .await
}
