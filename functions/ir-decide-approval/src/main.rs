//! `ir-decide-approval`: approve or reject a gated step over an IAM-authenticated Function URL
//! (`AuthType: AWS_IAM`): the caller signs the request with its own AWS credentials, Lambda
//! authenticates it and passes its ARN, and the decision is authorized against
//! `notifications.approvers` and the two-person rule before the waiting execution is resumed.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_CONFIG_FILE` (optional: the approvers).

mod handler;

use std::sync::Arc;

use ir_aws::Clients;
use ir_aws::approval::ApproverPolicy;
use ir_aws::store::TableNames;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let names = TableNames::from_env()?;
    let policy = ApproverPolicy::from_config(&ir_aws::env::config()?.notifications);
    let decider = Arc::new(handler::Decider {
        clients: Clients::from_env().await,
        names,
        policy,
    });
    run(service_fn(move |event: LambdaEvent<handler::Incoming>| {
        let decider = Arc::clone(&decider);
        async move { handler::handle(&decider, event.payload).await }
    }))
    .await
}
