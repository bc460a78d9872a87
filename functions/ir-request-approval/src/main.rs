//! `ir-request-approval`: the approval gate of a destructive step (`.waitForTaskToken`). Stores
//! the request with its task token, audits it and notifies the approvers; the task then waits for
//! `ir approve|reject` or `ir-decide-approval`.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_NOTIFY_TOPIC_ARN`, `IR_DECIDE_APPROVAL_URL` (optional, said in the request),
//! `IR_CONFIG_FILE` (optional).

mod handler;

use std::sync::Arc;

use ir_aws::Clients;
use ir_aws::approval::GateSettings;
use ir_aws::store::TableNames;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let names = TableNames::from_env()?;
    let config = ir_aws::env::config()?;
    let clients = Clients::from_env().await;
    // Who asks: this function's own identity, which the two-person rule keeps from deciding.
    let requester = handler::own_identity(&clients).await?;
    let settings = GateSettings {
        requester,
        topic_arn: ir_aws::env::required("IR_NOTIFY_TOPIC_ARN")?,
        decide_url: ir_aws::env::optional("IR_DECIDE_APPROVAL_URL")?,
        two_person_rule: config.notifications.two_person_rule,
    };
    let gate = Arc::new(handler::Gate {
        clients,
        names,
        settings,
    });
    run(service_fn(move |event: LambdaEvent<handler::Incoming>| {
        let gate = Arc::clone(&gate);
        async move { handler::handle(&gate, event.payload).await }
    }))
    .await
}
