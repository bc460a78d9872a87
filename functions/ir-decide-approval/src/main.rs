//! `ir-decide-approval`: approve or reject a gated step over an IAM-authenticated Function URL
//! (`AuthType: AWS_IAM`): the caller signs the request with its own AWS credentials, Lambda
//! authenticates it and passes its ARN, and the decision is authorized against
//! `notifications.approvers` and the two-person rule before the waiting execution is resumed.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_CONFIG_FILE` (optional: the approvers).

mod handler;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::approval::ApproverPolicy;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let policy = ApproverPolicy::from_config(&ir_lambda::env::config()?.notifications);
    let decider = handler::Decider {
        clients: Clients::from_env().await,
        names,
        policy,
    };
    ir_lambda::serve(decider, |decider, event: handler::Incoming| async move {
        handler::handle(&decider, event).await
    })
    .await
}
