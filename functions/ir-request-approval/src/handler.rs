//! `ApprovalRequest` (with its task token) → stored, audited, notified. The token is never logged:
//! `ApprovalRequest`'s and `Checked`'s `Debug` leave it out, and no message carries it.

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::orchestration::ApprovalRequest;
use ir_incident::approval::{GateSettings, RequestError, Requested};
use ir_lambda::payload::Checked;
use time::OffsetDateTime;
use tracing::Instrument;

/// What the `.waitForTaskToken` task sends.
pub type Incoming = Checked<ApprovalRequest>;

/// What the gate holds from init.
#[derive(Debug)]
pub struct Gate {
    pub clients: Clients,
    pub names: TableNames,
    pub settings: GateSettings,
}

/// The function's own ARN (its role's session), once at init.
pub async fn own_identity(clients: &Clients) -> Result<String, ir_aws::SdkFailure> {
    let out = clients
        .sts()
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| ir_aws::log_sdk_error("sts:GetCallerIdentity", &e))?;
    Ok(out.arn().unwrap_or("ir-request-approval").to_owned())
}

/// One invocation.
pub async fn handle(gate: &Gate, incoming: Incoming) -> Result<Requested, RequestError> {
    let req = match incoming.value {
        Ok(r) => r,
        Err(why) => {
            return ir_lambda::logged(
                "approval request refused",
                Err(RequestError::InvalidInput(why)),
            );
        }
    };
    let span = tracing::info_span!("request-approval", incident_id = %req.incident_id, step_id = %req.step_id, level = req.level);
    let done = ir_incident::approval::request(
        &gate.clients,
        &gate.names,
        &gate.settings,
        &req,
        OffsetDateTime::now_utc(),
    )
    .instrument(span)
    .await;
    ir_lambda::logged("approval request failed", done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let text = r#"{"taskToken":"AQCsecretTOKENvalue==","incidentId":"inc-0123456789abcdef0123","stepId":"isolate-instance","level":0,
            "plan":{"incidentId":"inc-0123456789abcdef0123","stepId":"isolate-instance","action":"ir-isolate-instance","mode":"dry-run",
            "outcome":"planned","changes":[],"notes":[],"awsCalls":3}}"#;
        let incoming = Incoming::parse(text).unwrap();
        assert!(!format!("{incoming:?}").contains("secretTOKEN"));
        let req = incoming.value.unwrap();
        assert_eq!(req.task_token, "AQCsecretTOKENvalue==");
        assert!(!format!("{req:?}").contains("secretTOKEN"));
    }
}
