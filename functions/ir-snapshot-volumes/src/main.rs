//! `ir-snapshot-volumes`: one crash-consistent set of EBS snapshots of an instance, for evidence.

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let clients = Clients::from_env().await;
    ir_aws::action::serve(ir_aws::ec2::SNAPSHOT_ACTION, clients, (), |c, _, req: ContainmentRequest| async move {
        ir_aws::ec2::snapshot_volumes(&c, &req).await
    })
    .await
}
