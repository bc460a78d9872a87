//! `ir-deny-principal`: deny every action to a role or user by attaching the deployment's managed
//! deny-all policy (`IR_DENY_POLICY_ARN`).

use ir_aws::Clients;
use ir_core::action::ContainmentRequest;

/// What every invocation shares: read once at init.
struct State {
    clients: Clients,
    protection: ir_core::config::Protection,
    deny_policy_arn: String,
    guard: ir_actions::guard::Guard,
}

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    // Read once at init: a bad setting fails the start, never an invocation.
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    // The config's protected principals and the suite's own roles (IR_SUITE_PRINCIPALS).
    let protection = ir_lambda::env::protection(&config)?;
    let deny_policy_arn = ir_lambda::env::required("IR_DENY_POLICY_ARN")?;
    if !ir_actions::iam::is_suite_deny_policy_arn(&deny_policy_arn) {
        return Err(format!(
            "environment variable IR_DENY_POLICY_ARN: `{deny_policy_arn}` is not the suite's \
             managed deny policy (policy/ir-suite/…{})",
            ir_actions::iam::DENY_POLICY_NAME_SUFFIX
        )
        .into());
    }
    let guard = ir_actions::guard::Guard::from_env(
        &clients,
        config,
        ir_actions::iam::DENY_PRINCIPAL_ACTION,
    )
    .await?;
    let state = State {
        clients,
        protection,
        deny_policy_arn,
        guard,
    };
    ir_lambda::serve_action(
        ir_actions::iam::DENY_PRINCIPAL_ACTION,
        state,
        |s, req: ContainmentRequest| async move {
            let s = &*s;
            s.guard
                .run(&s.clients, req, |at, r| async move {
                    // In a member account: its own deny-all policy, and its member role is one
                    // of the suite's own.
                    let protection = ir_actions::guard::protection_for(&at, &s.protection);
                    let policy = ir_actions::guard::deny_policy_for(&at, &s.deny_policy_arn);
                    ir_actions::iam::deny_principal(&at.clients, &protection, &policy, &r).await
                })
                .await
        },
    )
    .await
}
