//! A Function URL request → a decision → a JSON answer with an HTTP status: 200 resumed, 400 bad
//! body, 403 not an approver (or no IAM identity, or the two-person rule), 404 no such approval,
//! 405 not a POST, 409 already decided, 410 the approval window has closed, 5xx a failure.
//!
//! A POST only: nothing is decided by a GET (links are pre-fetched by mail scanners and chat
//! unfurlers), and there is no token in the request — only the incident, the step and the
//! decision, which the caller's own identity is authorized to make.

use std::convert::Infallible;

use aws_lambda_events::http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::Named;
use ir_incident::approval::{ApproverPolicy, DecideError, DecisionRequest};
use ir_lambda::payload::Checked;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::Instrument;

/// What the Function URL sends.
pub type Incoming = Checked<LambdaFunctionUrlRequest>;

/// What the function holds from init.
#[derive(Debug)]
pub struct Decider {
    pub clients: Clients,
    pub names: TableNames,
    pub policy: ApproverPolicy,
}

/// The longest body accepted.
const MAX_BODY_BYTES: usize = 16 * 1024;

fn answer(status: u16, body: &Value) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = i64::from(status);
    r.headers = headers;
    r.body = Some(body.to_string());
    r
}

fn refusal(status: u16, error: &str, message: &str) -> LambdaFunctionUrlResponse {
    answer(status, &json!({"error": error, "message": message}))
}

/// The caller's ARN as Lambda authenticated it (`requestContext.authorizer.iam.userArn`).
fn caller(req: &LambdaFunctionUrlRequest) -> Option<&str> {
    req.request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.iam.as_ref())
        .and_then(|i| i.user_arn.as_deref())
        .filter(|a| !a.is_empty())
}

/// The decision in the body (JSON, base64 when Lambda encoded it).
fn decision(req: &LambdaFunctionUrlRequest) -> Result<DecisionRequest, String> {
    let raw = req.body.as_deref().unwrap_or_default();
    if raw.len() > MAX_BODY_BYTES {
        return Err(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    }
    let bytes = if req.is_base64_encoded {
        aws_smithy_types::base64::decode(raw).map_err(|e| format!("the body is not base64: {e}"))?
    } else {
        raw.as_bytes().to_vec()
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the body must be {{\"incidentId\", \"stepId\", \"decision\": \"approve\"|\"reject\", \"reason\"}}: {e}"
        )
    })
}

fn error_body(e: &DecideError) -> Value {
    let mut body = json!({"error": e.error_name().as_str(), "message": e.to_string()});
    if let DecideError::AlreadyDecided {
        status,
        decided_by,
        decided_at,
        ..
    } = e
    {
        body["status"] = json!(status.as_str());
        body["decidedBy"] = json!(decided_by);
        body["decidedAt"] = json!(decided_at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }));
    }
    body
}

/// One request; always an HTTP answer (a failure is a status, never a Lambda error).
pub async fn handle(
    decider: &Decider,
    incoming: Incoming,
) -> Result<LambdaFunctionUrlResponse, Infallible> {
    let req = match incoming.value {
        Ok(r) => r,
        Err(why) => {
            tracing::warn!(error = %why, "not a Function URL request");
            return Ok(refusal(
                400,
                "InvalidInput",
                &format!("not a Function URL request: {why}"),
            ));
        }
    };
    let method = req
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or_default();
    if !method.eq_ignore_ascii_case("POST") {
        return Ok(refusal(
            405,
            "MethodNotAllowed",
            "decide with a signed POST",
        ));
    }
    let Some(caller) = caller(&req) else {
        tracing::warn!("decision without an IAM identity refused");
        return Ok(refusal(
            403,
            "AccessDenied",
            "no IAM identity: this URL takes SigV4-signed requests only (AuthType AWS_IAM)",
        ));
    };
    let decision = match decision(&req) {
        Ok(d) => d,
        Err(why) => return Ok(refusal(400, "InvalidInput", &why)),
    };
    let span = tracing::info_span!("decide", incident_id = %decision.incident_id, step_id = %decision.step_id, caller);
    let done = ir_incident::approval::decide(
        &decider.clients,
        &decider.names,
        &decider.policy,
        &decision,
        caller,
        OffsetDateTime::now_utc(),
    )
    .instrument(span.clone())
    .await;
    let _guard = span.enter();
    Ok(match done {
        Ok(resumed) => answer(200, &json!(resumed)),
        Err(e) => {
            tracing::warn!(error_name = e.error_name().as_str(), status = e.http_status(), error = %e, "decision not made");
            answer(e.http_status(), &error_body(&e))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: &str,
        iam: Option<&str>,
        body: &str,
        base64: bool,
    ) -> LambdaFunctionUrlRequest {
        let authorizer = iam.map_or(
            Value::Null,
            |arn| json!({"iam": {"userArn": arn, "accountId": "111122223333"}}),
        );
        let event = json!({
            "version": "2.0",
            "rawPath": "/",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "111122223333",
                "requestId": "r-1",
                "authorizer": authorizer,
                "timeEpoch": 0,
                "http": {"method": method, "path": "/"}
            },
            "body": body,
            "isBase64Encoded": base64
        });
        serde_json::from_value(event).unwrap()
    }

    const BODY: &str = r#"{"incidentId":"inc-0123456789abcdef0123","stepId":"isolate-instance","decision":"reject","reason":"false positive"}"#;

    #[test]
    fn the_caller_comes_from_the_iam_authorizer_only() {
        let r = request(
            "POST",
            Some("arn:aws:sts::111122223333:assumed-role/SecurityLead/bob"),
            BODY,
            false,
        );
        assert_eq!(
            caller(&r),
            Some("arn:aws:sts::111122223333:assumed-role/SecurityLead/bob")
        );
        assert_eq!(caller(&request("POST", None, BODY, false)), None);
    }

    #[test]
    fn bodies_parse_plain_or_base64_and_refuse_anything_else() {
        let plain = decision(&request("POST", None, BODY, false)).unwrap();
        assert_eq!(plain.reason.as_deref(), Some("false positive"));
        let encoded = aws_smithy_types::base64::encode(BODY);
        assert_eq!(
            decision(&request("POST", None, &encoded, true)).unwrap(),
            plain
        );
        for bad in [
            "",
            "{}",
            r#"{"incidentId":"inc-0123456789abcdef0123","stepId":"s","decision":"yes"}"#,
            r#"{"incidentId":"inc-0123456789abcdef0123","stepId":"s","decision":"approve","taskToken":"x"}"#,
        ] {
            assert!(
                decision(&request("POST", None, bad, false)).is_err(),
                "{bad}"
            );
        }
    }

    /// A decider whose clients point nowhere: the refusals below happen before any call.
    fn offline() -> Decider {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Decider {
            clients: Clients::new(&sdk, ir_aws::ClientOptions::default()),
            names: TableNames::with_prefix("offline"),
            policy: ApproverPolicy {
                approvers: vec!["arn:aws:iam::111122223333:role/SecurityLead".into()],
                two_person_rule: true,
            },
        }
    }

    async fn status(decider: &Decider, req: LambdaFunctionUrlRequest) -> (i64, Value) {
        let incoming = Incoming::parse(&serde_json::to_string(&req).unwrap()).unwrap();
        let a = handle(decider, incoming).await.unwrap();
        (
            a.status_code,
            serde_json::from_str(a.body.as_deref().unwrap()).unwrap(),
        )
    }

    #[tokio::test]
    async fn refusals_before_any_call() {
        let d = offline();
        let who = Some("arn:aws:sts::111122223333:assumed-role/Developer/eve");
        assert_eq!(status(&d, request("GET", who, BODY, false)).await.0, 405);
        let (code, body) = status(&d, request("POST", None, BODY, false)).await;
        assert_eq!(code, 403);
        assert!(
            body["message"].as_str().unwrap().contains("AWS_IAM"),
            "{body}"
        );
        assert_eq!(
            status(&d, request("POST", who, "{not json", false)).await.0,
            400
        );
        let (code, body) = status(&d, request("POST", who, BODY, false)).await;
        assert_eq!(code, 403, "{body}");
        assert_eq!(body["error"], "AccessDenied");
        assert_eq!(d.clients.calls().count(), 0);
        let not_an_event = Incoming::parse(r#"{"hello": 1}"#).unwrap();
        assert_eq!(handle(&d, not_an_event).await.unwrap().status_code, 400);
    }

    #[test]
    fn answers_are_json_with_their_status() {
        let a = refusal(403, "AccessDenied", "no");
        assert_eq!(a.status_code, 403);
        assert_eq!(a.headers.get(CONTENT_TYPE).unwrap(), "application/json");
        let body: Value = serde_json::from_str(a.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["error"], "AccessDenied");
        let e = DecideError::AlreadyDecided {
            incident_id: "inc-0123456789abcdef0123".into(),
            step_id: "isolate-instance".into(),
            status: ir_aws::store::ApprovalStatus::Approved,
            decided_by: Some("arn:aws:iam::111122223333:user/alice".into()),
            decided_at: None,
        };
        assert_eq!(e.http_status(), 409);
        let body = error_body(&e);
        assert_eq!(body["status"], "approved");
        assert_eq!(body["decidedBy"], "arn:aws:iam::111122223333:user/alice");
    }
}
