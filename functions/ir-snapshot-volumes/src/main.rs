//! `ir-snapshot-volumes`: one crash-consistent set of EBS snapshots of an instance, for evidence.

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let clients = Clients::from_env().await;
    ir_lambda::serve_action(ir_actions::ec2::SNAPSHOT_ACTION, clients, |c, req: ContainmentRequest| async move {
        ir_actions::ec2::snapshot_volumes(&c, &req).await
    })
    .await
}
