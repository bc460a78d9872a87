//! `ir-disable-access-keys`: set a user's access keys Inactive, never deleting them (evidence).

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    // The config's protected principals and the suite's own roles (IR_SUITE_PRINCIPALS).
    let protection = ir_lambda::env::protection(&config)?;
    let guard = ir_actions::guard::Guard::from_env(
        &clients,
        config,
        ir_actions::iam::DISABLE_ACCESS_KEYS_ACTION,
    )
    .await?;
    let state = (clients, protection, guard);
    ir_lambda::serve_action(
        ir_actions::iam::DISABLE_ACCESS_KEYS_ACTION,
        state,
        |s, req: ContainmentRequest| async move {
            let (c, protection, guard) = &*s;
            guard
                .run(c, req, |at, r| async move {
                    // Acting through a member role, that role is one of the suite's own.
                    let protection = ir_actions::guard::protection_for(&at, protection);
                    ir_actions::iam::disable_access_keys(&at.clients, &protection, &r).await
                })
                .await
        },
    )
    .await
}
