//! `ir-slack-endpoint`: the public address Slack sends Approve/Reject button clicks to (a
//! Lambda Function URL, `AuthType: NONE`: Slack cannot sign AWS requests). It checks nothing
//! itself and decides nothing: it relays the request as Slack sent it (headers, body, base64
//! flag) to `ir-decide-approval`, the one decision path, which verifies Slack's signature and
//! five-minute window, uses each request once, maps the Slack user to an approver and applies
//! every rule of `ir approve`. Its role may only invoke that function.
//!
//! Environment: `IR_DECIDE_FUNCTION` (the decision function's name or ARN).

mod handler;

use ir_aws::Clients;

#[tokio::main]
async fn main() -> Result<(), ir_lambda::Error> {
    ir_lambda::telemetry::init();
    let function = ir_lambda::env::required("IR_DECIDE_FUNCTION")?;
    let clients = Clients::from_env().await;
    let relay = handler::Relay {
        lambda: aws_sdk_lambda::Client::new(clients.sdk_config()),
        function,
    };
    ir_lambda::serve(relay, |r, event: handler::Incoming| async move {
        handler::handle(&r, event).await
    })
    .await
}
