//! `ir-request-approval`: the approval gate of a destructive step (`.waitForTaskToken`). Stores
//! the request with its task token, audits it and notifies the approvers; the task then waits for
//! `ir approve|reject` or `ir-decide-approval`.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_NOTIFY_TOPIC_ARN`, `IR_APPROVAL_TOKEN_KEY` (the key task tokens are sealed under),
//! and the config (`ir_aws::config_source`: the two-person rule).

mod handler;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::approval::GateSettings;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let config = ir_aws::config_source::load(&clients).await?;
    // Who asks: this function's own identity, which the two-person rule keeps from deciding.
    let requester = handler::own_identity(&clients).await?;
    let settings = GateSettings {
        requester,
        topic_arn: ir_lambda::env::required("IR_NOTIFY_TOPIC_ARN")?,
        two_person_rule: config.notifications.two_person_rule,
        // Required: a deployment never stores a task token in the clear.
        token_key: Some(ir_lambda::env::required("IR_APPROVAL_TOKEN_KEY")?),
    };
    let gate = handler::Gate {
        clients,
        names,
        settings,
    };
    ir_lambda::serve(gate, |gate, event: handler::Incoming| async move {
        handler::handle(&gate, event).await
    })
    .await
}
