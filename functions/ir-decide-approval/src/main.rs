//! `ir-decide-approval`: the one path by which a gated step is approved or rejected. The
//! approver (`ir approve|reject`) invokes it with the decision and a proof of identity (an STS
//! `GetCallerIdentity` request signed with their own credentials, bound to the decision); the
//! function has STS authenticate the proof, authorizes that identity against
//! `notifications.approvers` and the two-person rule, and resumes the waiting execution. It is
//! the only holder of `states:SendTaskSuccess`/`SendTaskFailure` the suite ships.
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
