//! `ir-release-containment`: undo exactly what the containment actions of an incident changed.

use ir_aws::Clients;
use ir_core::action::ReleaseRequest;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let clients = Clients::from_env().await;
    ir_aws::action::serve(ir_aws::release::ACTION, clients, (), |c, _, req: ReleaseRequest| async move {
        ir_aws::release::release_containment(&c, &req).await
    })
    .await
}
