//! `ir-disable-access-keys`: set a user's access keys Inactive, never deleting them (evidence).

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let state = ir_aws::env::config()?.protection;
    let clients = Clients::from_env().await;
    ir_aws::action::serve(
        ir_aws::iam::DISABLE_ACCESS_KEYS_ACTION,
        clients,
        state,
        |c, protection, req: ContainmentRequest| async move {
            ir_aws::iam::disable_access_keys(&c, &protection, &req).await
        },
    )
    .await
}
