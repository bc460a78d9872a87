//! `ir-notify`: a playbook's chat message or ticket request, as an incident update published to
//! the suite's SNS topic (subscribers route it by its `kind`, `channel`, `project` attributes).
//!
//! Environment: `IR_NOTIFY_TOPIC_ARN`, `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`,
//! `IR_APPROVALS_TABLE`.

use ir_aws::Clients;
use ir_aws::notify::NOTIFY_ACTION;
use ir_aws::store::TableNames;
use ir_core::orchestration::NotifyRequest;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_aws::telemetry::init();
    let state = (
        TableNames::from_env()?,
        ir_aws::env::required("IR_NOTIFY_TOPIC_ARN")?,
    );
    let clients = Clients::from_env().await;
    ir_aws::action::serve(
        NOTIFY_ACTION,
        clients,
        state,
        |c, s, req: NotifyRequest| async move {
            ir_aws::notify::notify_step(&c, &s.0, &s.1, &req).await
        },
    )
    .await
}
