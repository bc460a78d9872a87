//! `ir-release-containment`: undo exactly what the containment actions of an incident changed.

use ir_aws::Clients;
use ir_core::action::ReleaseRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let clients = Clients::from_env().await;
    ir_lambda::serve_action(ir_actions::release::ACTION, clients, |c, req: ReleaseRequest| async move {
        ir_actions::release::release_containment(&c, &req).await
    })
    .await
}
