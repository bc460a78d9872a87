//! `ir-snapshot-volumes`: one crash-consistent set of EBS snapshots of an instance, for evidence.

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let guard =
        ir_actions::guard::Guard::from_env(&clients, config, ir_actions::ec2::SNAPSHOT_ACTION)
            .await?;
    let state = (clients, guard);
    ir_lambda::serve_action(
        ir_actions::ec2::SNAPSHOT_ACTION,
        state,
        |s, req: ContainmentRequest| async move {
            let (c, guard) = &*s;
            guard
                .run(c, req, |at, r| async move {
                    ir_actions::ec2::snapshot_volumes(&at.clients, &r).await
                })
                .await
        },
    )
    .await
}
