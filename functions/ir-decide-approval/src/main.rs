//! `ir-decide-approval`: the one path by which a gated step is approved or rejected. The
//! approver (`ir approve|reject`) invokes it with the decision and a proof of identity (an STS
//! `GetCallerIdentity` request signed with their own credentials, bound to the decision); the
//! function has STS authenticate the proof, authorizes that identity (the escalation role the
//! request's level asks, people counted one each, the two-person rule), and resumes the waiting
//! execution once enough people approved. It is the only holder of
//! `states:SendTaskSuccess`/`SendTaskFailure` the suite ships.
//!
//! Environment: `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE`,
//! `IR_SUITE_PRINCIPALS` (the suite's own roles, which never decide), and the config's
//! approver roles (`ir_aws::config_source`: the deployment's SSM parameter, S3 object or file,
//! else the embedded one, with the `IR_APPROVERS_*` overlay).

mod handler;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_incident::approval::ApproverPolicy;
use ir_incident::slack_decision::SlackApprovals;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let names = TableNames::from_env()?;
    let clients = Clients::from_env().await;
    let mut config = ir_aws::config_source::load(&clients).await?;
    config.protection.suite_principals = ir_lambda::env::suite_principals()?;
    let policy = ApproverPolicy::from_config(&config);
    let slack = slack_approvals(&clients, &config).await?;
    let decider = handler::Decider {
        clients,
        names,
        policy,
        slack,
    };
    ir_lambda::serve(decider, |decider, event: handler::Incoming| async move {
        handler::handle(&decider, event).await
    })
    .await
}

/// Decisions from Slack's buttons: the app's signing secret (the `IR_SLACK_SECRET_ARN` secret)
/// and the config's `notifications.slack_approvers`. No secret: none are accepted.
async fn slack_approvals(
    clients: &Clients,
    config: &ir_core::Config,
) -> Result<Option<SlackApprovals>, ir_lambda::Error> {
    let Some(arn) = std::env::var("IR_SLACK_SECRET_ARN")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let users = config.notifications.slack_approvers.clone();
    Ok(Some(SlackApprovals::load(clients, &arn, users).await?))
}
