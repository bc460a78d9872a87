//! One HTTP request from a Lambda Function URL (payload format 2.0) → relayed to the decision
//! function as `{"slackRequest": {"headers", "body", "isBase64Encoded"}}` → an HTTP answer.
//!
//! Only `POST` with a body of at most [`MAX_BODY_BYTES`] is relayed (405, 413 otherwise; Slack's
//! interaction payloads are a few kilobytes). The answer is always 200 with an empty body when
//! the decision function answered (Slack shows nothing for a block action; the approval message
//! is updated by `ir-announce` when the decision lands in the audit chain, and a refusal is in
//! the decision function's log and, for a known incident, its audit chain); 502 when it could
//! not be reached. The decision function's answer is never echoed: it is not Slack's to read.

use std::convert::Infallible;

use aws_sdk_lambda::primitives::Blob;
use ir_lambda::payload::Checked;
use serde::Deserialize;
use serde_json::{Value, json};

/// Larger bodies are refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the function is invoked with.
pub type Incoming = Checked<UrlRequest>;

/// What the function holds from init.
#[derive(Debug)]
pub struct Relay {
    pub lambda: aws_sdk_lambda::Client,
    pub function: String,
}

/// The parts of a Function URL request that are relayed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRequest {
    #[serde(default)]
    pub headers: serde_json::Map<String, Value>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    #[serde(default)]
    pub request_context: Value,
}

fn answer(status: u16, message: &str) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": message,
    })
}

/// The relayed payload, or the HTTP answer refusing the request.
pub fn relayed(req: &UrlRequest) -> Result<Value, Value> {
    let method = req
        .request_context
        .pointer("/http/method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !method.eq_ignore_ascii_case("POST") {
        return Err(answer(405, "POST only"));
    }
    let body = req.body.as_deref().unwrap_or_default();
    // Base64 is 4/3 the bytes it carries: the limit holds for either form.
    if body.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(answer(413, "request too large"));
    }
    // Header names are case-insensitive; the decision function reads them so. Only strings pass.
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .filter(|(_, v)| v.is_string())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    Ok(json!({
        "slackRequest": {
            "headers": headers,
            "body": body,
            "isBase64Encoded": req.is_base64_encoded,
        }
    }))
}

/// One request; always an HTTP answer.
pub async fn handle(r: &Relay, incoming: Incoming) -> Result<Value, Infallible> {
    let req = match incoming.value {
        Ok(req) => req,
        Err(why) => {
            tracing::warn!(%why, "not a Function URL request");
            return Ok(answer(400, "bad request"));
        }
    };
    let payload = match relayed(&req) {
        Ok(p) => p,
        Err(refused) => return Ok(refused),
    };
    let bytes = match serde_json::to_vec(&payload) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "the relayed request");
            return Ok(answer(500, "internal error"));
        }
    };
    let invoked = r
        .lambda
        .invoke()
        .function_name(&r.function)
        .payload(Blob::new(bytes))
        .send()
        .await;
    match invoked {
        Ok(out) if out.function_error().is_none() => {
            let decided: Value = out
                .payload()
                .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
                .unwrap_or(Value::Null);
            tracing::info!(
                ok = decided["ok"].as_bool().unwrap_or(false),
                status = decided["status"].as_u64().unwrap_or(200),
                error_name = decided["error"].as_str().unwrap_or(""),
                "relayed"
            );
            Ok(json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": ""}))
        }
        Ok(out) => {
            tracing::warn!(
                function_error = out.function_error().unwrap_or_default(),
                "the decision function failed"
            );
            Ok(answer(502, "the decision could not be made; try again"))
        }
        Err(e) => {
            let f = ir_aws::sdk::SdkFailure::new("lambda:Invoke", &e);
            tracing::warn!(error = %f, "the decision function could not be reached");
            Ok(answer(502, "the decision could not be made; try again"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, body: &str) -> UrlRequest {
        serde_json::from_value(json!({
            "version": "2.0",
            "headers": {"X-Slack-Signature": "v0=abc", "X-Slack-Request-Timestamp": "1", "x-forged": 5},
            "body": body,
            "isBase64Encoded": false,
            "requestContext": {"http": {"method": method}}
        }))
        .unwrap()
    }

    #[test]
    fn only_posts_of_sane_size_are_relayed_with_their_headers_as_sent() {
        let p = relayed(&req("POST", "payload=x")).unwrap();
        assert_eq!(p["slackRequest"]["body"], "payload=x");
        assert_eq!(p["slackRequest"]["headers"]["x-slack-signature"], "v0=abc");
        assert!(p["slackRequest"]["headers"].get("x-forged").is_none());
        assert_eq!(relayed(&req("GET", "")).unwrap_err()["statusCode"], 405);
        let big = "x".repeat(MAX_BODY_BYTES * 2);
        assert_eq!(relayed(&req("POST", &big)).unwrap_err()["statusCode"], 413);
    }
}
