//! `ir-terminate-instance`: end a compromised instance once every volume attached to it has a
//! completed snapshot taken for the incident. Gated: it enforces only what the suite's approval
//! records say was approved, and plans otherwise.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`
//! (the incident's snapshots are read from its audit chain; another incident's isolation hold,
//! an `isolation#…` item of the keys table, is refused), and the config (`ir_aws::config_source`:
//! the deployment's SSM parameter, S3 object or file, else the embedded one, with the
//! `IR_APPROVERS_*` and `IR_PLAYBOOK_MODE_*` overlay).

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::action::ContainmentRequest;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    let guard =
        ir_actions::guard::Guard::from_env(&clients, config, ir_actions::ec2::TERMINATE_ACTION)
            .await?;
    ir_lambda::serve_action(
        ir_actions::ec2::TERMINATE_ACTION,
        (clients, names, guard),
        |s, req: ContainmentRequest| async move {
            let (c, names, guard) = &*s;
            guard
                .run(c, req, |at, r| async move {
                    ir_actions::ec2::terminate_instance(c, &at.clients, names, &r).await
                })
                .await
        },
    )
    .await
}
