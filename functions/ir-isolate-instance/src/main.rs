//! `ir-isolate-instance`: cut an instance off the network without losing it or its evidence.

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let guard = ir_actions::guard::Guard::from_env()?;
    let state = (Clients::from_env().await, guard);
    ir_lambda::serve_action(
        ir_actions::ec2::ISOLATE_ACTION,
        state,
        |s, req: ContainmentRequest| async move {
            let (c, guard) = &*s;
            guard
                .run(c, req, |r| async move {
                    ir_actions::ec2::isolate_instance(c, &r).await
                })
                .await
        },
    )
    .await
}
