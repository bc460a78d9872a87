//! One decision → one JSON answer: `{"ok": true, "resumed": …}`, or `{"ok": false, "status",
//! "error", "message"}` with the HTTP-like status of [`DecideError::http_status`] (401 nobody
//! authenticated, 403 not an approver or the two-person rule, 404 no such approval, 409 already
//! decided or the plan changed, 410 the window closed). A refusal is an answer, never a Lambda
//! error: the caller reads why.
//!
//! The payload is a [`SignedDecision`]: the decision and the approver's identity proof (a signed
//! STS `GetCallerIdentity` bound to the decision). Nothing in the payload is taken as an
//! identity: a "Function URL event" naming an approver in `requestContext`, handed to a plain
//! `Invoke`, is refused `Unauthenticated` and audited on its incident.

use std::convert::Infallible;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::Named;
use ir_incident::approval::{ApproverPolicy, DecideError, DecisionRequest, SignedDecision};
use ir_incident::slack_decision::{SlackApprovals, SlackRequest, decide_from_slack};
use ir_lambda::payload::Checked;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::Instrument;

/// What the function is invoked with.
pub type Incoming = Checked<Value>;

/// What the function holds from init.
#[derive(Debug)]
pub struct Decider {
    pub clients: Clients,
    pub names: TableNames,
    pub policy: ApproverPolicy,
    /// Decisions from Slack's buttons, when the deployment configured them.
    pub slack: Option<SlackApprovals>,
}

/// The answer to a refusal or failure.
pub fn error_body(e: &DecideError) -> Value {
    let mut body = json!({
        "ok": false,
        "status": e.http_status(),
        "error": e.error_name().as_str(),
        "message": e.to_string(),
    });
    if let DecideError::AlreadyDecided {
        status,
        decided_by,
        decided_at,
        ..
    } = e
    {
        body["decisionStatus"] = json!(status.as_str());
        body["decidedBy"] = json!(decided_by);
        body["decidedAt"] = json!(decided_at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }));
    }
    body
}

/// The decision a payload that is not a [`SignedDecision`] seems to carry (a Function URL
/// event's body, or the bare decision), to audit the refusal on its incident.
fn unsigned_decision(payload: &Value) -> Option<DecisionRequest> {
    if let Some(body) = payload.get("body").and_then(Value::as_str) {
        return serde_json::from_str(body).ok();
    }
    payload
        .get("decision")
        .filter(|d| d.is_object())
        .or(Some(payload))
        .and_then(|d| serde_json::from_value(d.clone()).ok())
}

/// One invocation; always an answer.
pub async fn handle(decider: &Decider, incoming: Incoming) -> Result<Value, Infallible> {
    let now = OffsetDateTime::now_utc();
    let payload = match incoming.value {
        Ok(v) => v,
        Err(why) => {
            return Ok(error_body(&DecideError::InvalidInput(format!(
                "not JSON: {why}"
            ))));
        }
    };
    if let Some(request) = payload.get("slackRequest") {
        return Ok(slack(decider, request, now).await);
    }
    let signed: SignedDecision = match serde_json::from_value(payload.clone()) {
        Ok(s) => s,
        Err(why) => {
            let e = match unsigned_decision(&payload) {
                Some(d) => {
                    ir_incident::approval::refuse_unauthenticated(
                        &decider.clients,
                        &decider.names,
                        &d,
                        "the decision carries no identity proof (a signed STS GetCallerIdentity): \
                         an identity in the payload is not one AWS authenticated",
                        now,
                    )
                    .await
                }
                None => DecideError::InvalidInput(format!(
                    "the payload must be {{\"decision\": {{\"incidentId\", \"stepId\", \"decision\", \
                     \"planHash\", \"reason\"}}, \"proof\": {{\"headers\"}}}}: {why}"
                )),
            };
            return Ok(error_body(&e));
        }
    };
    let span = tracing::info_span!("decide", incident_id = %signed.decision.incident_id, step_id = %signed.decision.step_id);
    let done = ir_incident::approval::decide_signed(
        &decider.clients,
        &decider.names,
        &decider.policy,
        &signed,
        now,
    )
    .instrument(span.clone())
    .await;
    let _guard = span.enter();
    Ok(match done {
        Ok(resumed) => json!({"ok": true, "resumed": resumed}),
        Err(e) => {
            tracing::warn!(error_name = e.error_name().as_str(), status = e.http_status(), error = %e, "decision not made");
            error_body(&e)
        }
    })
}

/// A click on a Slack approval message's button, relayed as Slack sent it:
/// `{"slackRequest": {"headers", "body", "isBase64Encoded"}}`
/// ([`ir_incident::slack_decision`]).
async fn slack(decider: &Decider, request: &Value, now: OffsetDateTime) -> Value {
    let request: SlackRequest = match serde_json::from_value(request.clone()) {
        Ok(r) => r,
        Err(why) => {
            return error_body(&DecideError::InvalidInput(format!(
                "slackRequest must be {{\"headers\", \"body\", \"isBase64Encoded\"}}: {why}"
            )));
        }
    };
    let done = decide_from_slack(
        &decider.clients,
        &decider.names,
        &decider.policy,
        decider.slack.as_ref(),
        &request,
        now,
    )
    .await;
    match done {
        Ok(d) => json!({"ok": true, "resumed": d.resumed}),
        Err(e) => {
            tracing::warn!(error_name = e.error_name().as_str(), status = e.http_status(), error = %e, "Slack decision not made");
            error_body(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"incidentId":"inc-0123456789abcdef0123","stepId":"isolate-instance","decision":"approve","reason":"confirmed"}"#;

    #[test]
    fn a_function_url_event_is_read_only_to_audit_its_refusal() {
        let forged = json!({
            "version": "2.0",
            "requestContext": {"authorizer": {"iam": {"userArn": "arn:aws:iam::111122223333:role/SecurityLead"}}},
            "body": BODY,
            "isBase64Encoded": false
        });
        assert!(serde_json::from_value::<SignedDecision>(forged.clone()).is_err());
        let d = unsigned_decision(&forged).unwrap();
        assert_eq!(d.incident_id, "inc-0123456789abcdef0123");
        let bare: Value = serde_json::from_str(BODY).unwrap();
        assert_eq!(unsigned_decision(&bare).unwrap(), d);
        assert!(unsigned_decision(&json!({"hello": 1})).is_none());
    }

    #[test]
    fn answers_carry_the_stable_name_and_status() {
        let e = DecideError::AlreadyDecided {
            incident_id: "inc-0123456789abcdef0123".into(),
            step_id: "isolate-instance".into(),
            status: ir_aws::store::ApprovalStatus::Approved,
            decided_by: Some("arn:aws:iam::111122223333:user/alice".into()),
            decided_at: None,
        };
        let body = error_body(&e);
        assert_eq!(body["status"], 409);
        assert_eq!(body["error"], "Conflict");
        assert_eq!(body["decisionStatus"], "approved");
        let u = error_body(&DecideError::Unauthenticated("no proof".into()));
        assert_eq!(
            (u["status"].as_u64(), u["error"].as_str()),
            (Some(401), Some("AccessDenied"))
        );
    }
}
