//! `ir-isolate-instance`: cut an instance off the network without losing it or its evidence.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`
//! (the instance's hold is an `isolation#…` item of the keys table).

use ir_aws::Clients;
use ir_aws::store::{IsolationHolds, TableNames};
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let holds = IsolationHolds::new(clients.clone(), &names);
    let guard =
        ir_actions::guard::Guard::from_env(&clients, config, ir_actions::ec2::ISOLATE_ACTION)
            .await?;
    ir_lambda::serve_action(
        ir_actions::ec2::ISOLATE_ACTION,
        (clients, holds, guard),
        |s, req: ContainmentRequest| async move {
            let (c, holds, guard) = &*s;
            guard
                .run(c, req, |at, r| async move {
                    ir_actions::ec2::isolate_instance(&at.clients, holds, &r).await
                })
                .await
        },
    )
    .await
}
