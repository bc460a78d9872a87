//! What lands in the ingest dead-letter queue, read back: one SQS message (its body and its
//! message attributes) as a typed [`DeadLetter`], or [`Unrecognized`] with the reason.
//!
//! Two producers share the queue (template.yaml, `IngestDeadLetterQueue`):
//!
//! * the findings rules' targets (`DeadLetterConfig`): EventBridge could not deliver the event to
//!   `ir-ingest`. The body is the original event; the message attributes say which rule and
//!   target, why (`ERROR_CODE`, `ERROR_MESSAGE`) and after how many retries
//!   (`EXHAUSTED_RETRY_CONDITION`, `RETRY_ATTEMPTS`);
//! * `ir-ingest`'s asynchronous-invocation `OnFailure` destination: the function ran and failed
//!   every attempt. The body is Lambda's invocation record: `requestContext` (request id,
//!   function ARN, `condition` such as `RetriesExhausted` or `EventAgeExceeded`,
//!   `approximateInvokeCount`), `requestPayload` (the original event), `responseContext` and
//!   `responsePayload` (the function's `errorType` and `errorMessage`).
//!
//! The original event is kept verbatim ([`DeadLetter::event`]): it is what a redrive sends back
//! to `ir-ingest`. Anything else (not JSON, not an object, a record without its event, an event
//! without the rule's attributes) is [`Unrecognized`]: listed, never redriven. The input is
//! hostile: nothing here panics, whatever the body or the attributes hold.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;
use time::OffsetDateTime;

use crate::lenient::LenientTime;

/// The message attributes EventBridge sets on a dead letter.
pub mod attributes {
    pub const RULE_ARN: &str = "RULE_ARN";
    pub const TARGET_ARN: &str = "TARGET_ARN";
    pub const ERROR_CODE: &str = "ERROR_CODE";
    pub const ERROR_MESSAGE: &str = "ERROR_MESSAGE";
    pub const EXHAUSTED_RETRY_CONDITION: &str = "EXHAUSTED_RETRY_CONDITION";
    pub const RETRY_ATTEMPTS: &str = "RETRY_ATTEMPTS";
}

/// Who gave up on the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// An EventBridge rule could not deliver the event to its target.
    #[serde(rename_all = "camelCase")]
    EventbridgeRule {
        rule_arn: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        target_arn: Option<String>,
        /// `MaximumRetryAttempts` or `MaximumEventAgeInSeconds`, when EventBridge says.
        #[serde(skip_serializing_if = "Option::is_none")]
        exhausted_retry_condition: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_attempts: Option<u32>,
    },
    /// The function ran, failed, and Lambda gave up (its `OnFailure` destination).
    #[serde(rename_all = "camelCase")]
    LambdaDestination {
        function_arn: String,
        request_id: String,
        /// `RetriesExhausted`, `EventAgeExceeded`, ...
        condition: String,
        /// `approximateInvokeCount`.
        #[serde(skip_serializing_if = "Option::is_none")]
        attempts: Option<u32>,
    },
}

impl Origin {
    /// The rule's or the function's name: the last part of its ARN.
    pub fn name(&self) -> &str {
        match self {
            Origin::EventbridgeRule { rule_arn, .. } => {
                rule_arn.rsplit('/').next().unwrap_or(rule_arn)
            }
            Origin::LambdaDestination { function_arn, .. } => {
                // arn:aws:lambda:region:account:function:NAME[:qualifier]
                let mut parts = function_arn.split(':');
                match parts.nth(6) {
                    Some(name) if !name.is_empty() => name,
                    _ => function_arn,
                }
            }
        }
    }
}

/// One dead letter, understood.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub origin: Origin,
    /// EventBridge's `ERROR_CODE`, or the function's `errorType`.
    pub error_name: Option<String>,
    /// EventBridge's `ERROR_MESSAGE`, or the function's `errorMessage`.
    pub error_message: Option<String>,
    /// When Lambda gave up (the record's `timestamp`); EventBridge's dead letters carry no time
    /// of their own (the message's sent time says when it was dead-lettered).
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
    /// The event's `source`, when it has one.
    pub source: Option<String>,
    /// The event's `detail-type`, when it has one.
    pub detail_type: Option<String>,
    /// The findings the event carries: GuardDuty's `detail.id`, Security Hub's
    /// `detail.findings[].Id`.
    pub finding_ids: Vec<String>,
    /// The original event, verbatim.
    pub event: Box<RawValue>,
}

/// A message that is neither kind of dead letter: kept, listed, never redriven.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("unrecognized: {reason}")]
pub struct Unrecognized {
    pub reason: String,
}

fn unrecognized(reason: impl Into<String>) -> Unrecognized {
    Unrecognized {
        reason: reason.into(),
    }
}

/// Reads one SQS message of the ingest dead-letter queue: its `body` and its message attributes
/// (String and Number attributes, by name, as their string values).
///
/// A message with EventBridge's `RULE_ARN` attribute is a rule's dead letter whose body is the
/// event; otherwise a body with `requestContext` and `requestPayload` is a Lambda invocation
/// record; anything else is [`Unrecognized`]. Either way the event must be a JSON object.
///
/// # Errors
/// [`Unrecognized`], with the reason, for every other message.
pub fn parse(
    body: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<DeadLetter, Unrecognized> {
    let fields: BTreeMap<String, Box<RawValue>> = match serde_json::from_str(body) {
        Ok(fields) => fields,
        Err(e) => {
            return Err(match serde_json::from_str::<Value>(body) {
                Ok(other) => unrecognized(format!(
                    "the body is a JSON {}, not an event or an invocation record",
                    kind(&other)
                )),
                Err(_) => unrecognized(format!("the body is not JSON: {e}")),
            });
        }
    };
    if let Some(rule_arn) = attributes.get(attributes::RULE_ARN) {
        return eventbridge(body, rule_arn, attributes);
    }
    match (fields.get("requestContext"), fields.get("requestPayload")) {
        (Some(context), Some(payload)) => lambda(&fields, context, payload),
        (Some(_), None) => Err(unrecognized(
            "a Lambda invocation record without its requestPayload (the event)",
        )),
        (None, Some(_)) => Err(unrecognized(
            "a Lambda invocation record without its requestContext",
        )),
        (None, None) => Err(unrecognized(
            "neither an EventBridge dead letter (no RULE_ARN attribute) nor a Lambda invocation \
             record (no requestContext and requestPayload)",
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn eventbridge(
    body: &str,
    rule_arn: &str,
    attrs: &BTreeMap<String, String>,
) -> Result<DeadLetter, Unrecognized> {
    if rule_arn.trim().is_empty() {
        return Err(unrecognized("the RULE_ARN attribute is empty"));
    }
    let event = RawValue::from_string(body.trim().to_owned())
        .map_err(|e| unrecognized(format!("the body is not JSON: {e}")))?;
    let attr = |name: &str| {
        attrs
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let peek = EventPeek::of(&event)?;
    Ok(DeadLetter {
        origin: Origin::EventbridgeRule {
            rule_arn: rule_arn.trim().to_owned(),
            target_arn: attr(attributes::TARGET_ARN),
            exhausted_retry_condition: attr(attributes::EXHAUSTED_RETRY_CONDITION),
            retry_attempts: attr(attributes::RETRY_ATTEMPTS).and_then(|n| n.parse().ok()),
        },
        error_name: attr(attributes::ERROR_CODE),
        error_message: attr(attributes::ERROR_MESSAGE),
        failed_at: None,
        source: peek.source,
        detail_type: peek.detail_type,
        finding_ids: peek.finding_ids,
        event,
    })
}

fn lambda(
    fields: &BTreeMap<String, Box<RawValue>>,
    context: &RawValue,
    payload: &RawValue,
) -> Result<DeadLetter, Unrecognized> {
    let context: Value = serde_json::from_str(context.get())
        .map_err(|e| unrecognized(format!("requestContext: {e}")))?;
    let text = |name: &str| {
        context
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                unrecognized(format!(
                    "a Lambda invocation record without requestContext.{name}"
                ))
            })
    };
    let origin = Origin::LambdaDestination {
        function_arn: text("functionArn")?,
        request_id: text("requestId")?,
        condition: text("condition")?,
        attempts: context
            .get("approximateInvokeCount")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
    };
    let value = |name: &str| -> Value {
        fields
            .get(name)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null)
    };
    let response = value("responsePayload");
    let response_text = |name: &str| {
        response
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
    };
    let failed_at = match value("timestamp") {
        Value::String(s) => LenientTime::parse_text(&s).ok(),
        _ => None,
    };
    let event = payload.to_owned();
    let peek =
        EventPeek::of(&event).map_err(|u| unrecognized(format!("requestPayload: {}", u.reason)))?;
    Ok(DeadLetter {
        origin,
        error_name: response_text("errorType"),
        error_message: response_text("errorMessage"),
        failed_at,
        source: peek.source,
        detail_type: peek.detail_type,
        finding_ids: peek.finding_ids,
        event,
    })
}

/// What a listing shows of an event; the event must be a JSON object.
struct EventPeek {
    source: Option<String>,
    detail_type: Option<String>,
    finding_ids: Vec<String>,
}

impl EventPeek {
    fn of(event: &RawValue) -> Result<EventPeek, Unrecognized> {
        let v: Value = serde_json::from_str(event.get())
            .map_err(|e| unrecognized(format!("the event is not JSON: {e}")))?;
        if !v.is_object() {
            return Err(unrecognized(format!(
                "the event is a JSON {}, not an object",
                kind(&v)
            )));
        }
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let detail = v.get("detail");
        let mut finding_ids: Vec<String> = Vec::new();
        if let Some(id) = text(detail.and_then(|d| d.get("id"))) {
            finding_ids.push(id);
        }
        if let Some(findings) = detail
            .and_then(|d| d.get("findings"))
            .and_then(Value::as_array)
        {
            finding_ids.extend(findings.iter().filter_map(|f| text(f.get("Id"))));
        }
        Ok(EventPeek {
            source: text(v.get("source")),
            detail_type: text(v.get("detail-type")),
            finding_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample(name: &str) -> String {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn rule_attributes() -> BTreeMap<String, String> {
        [
            (
                "RULE_ARN",
                "arn:aws:events:us-east-1:111122223333:rule/ir-GuardDutyFindingsRule-1A2B3C",
            ),
            (
                "TARGET_ARN",
                "arn:aws:lambda:us-east-1:111122223333:function:ir-ir-ingest",
            ),
            ("ERROR_CODE", "SDK_CLIENT_ERROR"),
            (
                "ERROR_MESSAGE",
                "Unable to invoke Lambda function: Rate Exceeded.",
            ),
            ("EXHAUSTED_RETRY_CONDITION", "MaximumRetryAttempts"),
            ("RETRY_ATTEMPTS", "185"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn invocation_record(payload: &str) -> String {
        format!(
            r#"{{"version":"1.0","timestamp":"2026-11-20T08:07:12.345Z",
                "requestContext":{{"requestId":"c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
                  "functionArn":"arn:aws:lambda:us-east-1:111122223333:function:ir-ir-ingest:$LATEST",
                  "condition":"RetriesExhausted","approximateInvokeCount":3}},
                "requestPayload":{payload},
                "responseContext":{{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"}},
                "responsePayload":{{"errorType":"Retryable","errorMessage":"DynamoDB:TransactWriteItems failed with ThrottlingException"}}}}"#
        )
    }

    #[test]
    fn an_eventbridge_dead_letter_is_the_event_verbatim_with_the_rules_attributes() {
        let body = sample("guardduty-ssh-bruteforce.json");
        let d = parse(&body, &rule_attributes()).unwrap();
        assert_eq!(
            d.origin,
            Origin::EventbridgeRule {
                rule_arn:
                    "arn:aws:events:us-east-1:111122223333:rule/ir-GuardDutyFindingsRule-1A2B3C"
                        .into(),
                target_arn: Some(
                    "arn:aws:lambda:us-east-1:111122223333:function:ir-ir-ingest".into()
                ),
                exhausted_retry_condition: Some("MaximumRetryAttempts".into()),
                retry_attempts: Some(185),
            }
        );
        assert_eq!(d.origin.name(), "ir-GuardDutyFindingsRule-1A2B3C");
        assert_eq!(d.error_name.as_deref(), Some("SDK_CLIENT_ERROR"));
        assert_eq!(
            d.error_message.as_deref(),
            Some("Unable to invoke Lambda function: Rate Exceeded.")
        );
        assert_eq!(d.failed_at, None);
        assert_eq!(d.source.as_deref(), Some("aws.guardduty"));
        assert_eq!(d.detail_type.as_deref(), Some("GuardDuty Finding"));
        assert_eq!(d.finding_ids, ["3e91c0a7d24b48f6a5e2c7b1098d6f4a"]);
        // Verbatim: byte for byte what was dead-lettered (a redrive sends exactly this).
        assert_eq!(d.event.get(), body.trim());
    }

    #[test]
    fn a_lambda_invocation_record_gives_the_request_payload_verbatim_and_the_functions_error() {
        let event = sample("securityhub-fsbp-control-failure.json");
        let d = parse(&invocation_record(&event), &BTreeMap::new()).unwrap();
        assert_eq!(
            d.origin,
            Origin::LambdaDestination {
                function_arn: "arn:aws:lambda:us-east-1:111122223333:function:ir-ir-ingest:$LATEST"
                    .into(),
                request_id: "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2".into(),
                condition: "RetriesExhausted".into(),
                attempts: Some(3),
            }
        );
        assert_eq!(d.origin.name(), "ir-ir-ingest");
        assert_eq!(d.error_name.as_deref(), Some("Retryable"));
        assert_eq!(
            d.error_message.as_deref(),
            Some("DynamoDB:TransactWriteItems failed with ThrottlingException")
        );
        assert_eq!(
            d.failed_at,
            Some(time::macros::datetime!(2026-11-20 08:07:12.345 UTC))
        );
        assert_eq!(d.source.as_deref(), Some("aws.securityhub"));
        assert_eq!(
            d.detail_type.as_deref(),
            Some("Security Hub Findings - Imported")
        );
        // Both findings of the batch, in order.
        assert_eq!(d.finding_ids.len(), 2, "{:?}", d.finding_ids);
        assert!(d.finding_ids.iter().all(|id| event.contains(id.as_str())));
        assert_eq!(d.event.get(), event.trim());
    }

    #[test]
    fn an_event_too_old_to_run_has_no_error_of_the_function() {
        // EventAgeExceeded: the function never ran this time; there is no responsePayload.
        let body = json!({
            "version": "1.0",
            "timestamp": "2026-11-20T14:00:00Z",
            "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:111122223333:function:ir-ingest",
                               "condition": "EventAgeExceeded", "approximateInvokeCount": 0},
            "requestPayload": {"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {"id": 42}},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"}
        })
        .to_string();
        let d = parse(&body, &BTreeMap::new()).unwrap();
        assert!(matches!(
            &d.origin,
            Origin::LambdaDestination { condition, attempts: Some(0), .. } if condition == "EventAgeExceeded"
        ));
        assert_eq!(d.origin.name(), "ir-ingest");
        assert_eq!((d.error_name, d.error_message), (None, None));
        // A finding id that is not a string is not a finding id.
        assert!(d.finding_ids.is_empty());
    }

    #[test]
    fn the_json_form_names_the_origin_and_keeps_the_event() {
        let body = sample("guardduty-ssh-bruteforce.json");
        let d = parse(&body, &rule_attributes()).unwrap();
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["origin"]["kind"], "eventbridge-rule");
        assert_eq!(v["origin"]["retryAttempts"], 185);
        assert_eq!(v["errorName"], "SDK_CLIENT_ERROR");
        assert_eq!(v["failedAt"], Value::Null);
        assert_eq!(v["findingIds"], json!(["3e91c0a7d24b48f6a5e2c7b1098d6f4a"]));
        let original: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["event"], original);

        let l = parse(
            &invocation_record(&sample("guardduty-ssh-bruteforce.json")),
            &BTreeMap::new(),
        )
        .unwrap();
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["origin"]["kind"], "lambda-destination");
        assert_eq!(v["origin"]["condition"], "RetriesExhausted");
        assert_eq!(v["origin"]["attempts"], 3);
        assert_eq!(v["failedAt"], "2026-11-20T08:07:12.345Z");
        assert_eq!(v["event"], original);
    }

    #[test]
    fn anything_else_is_unrecognized_with_the_reason() {
        let none = BTreeMap::new();
        let event = sample("guardduty-ssh-bruteforce.json");
        let cases: Vec<(String, BTreeMap<String, String>, &str)> = vec![
            ("not json {".into(), none.clone(), "not JSON"),
            (String::new(), none.clone(), "not JSON"),
            ("[1, 2, 3]".into(), rule_attributes(), "JSON array"),
            ("\"an event\"".into(), rule_attributes(), "JSON string"),
            ("null".into(), none.clone(), "JSON null"),
            // An event without the rule's attributes: not a dead letter of either kind.
            (event.clone(), none.clone(), "no RULE_ARN"),
            (
                json!({"requestContext": {"requestId": "r", "functionArn": "f", "condition": "c"}})
                    .to_string(),
                none.clone(),
                "without its requestPayload",
            ),
            (
                json!({"requestPayload": {"source": "aws.guardduty"}}).to_string(),
                none.clone(),
                "without its requestContext",
            ),
            (
                json!({"requestContext": {"requestId": "r", "condition": "c"}, "requestPayload": {}})
                    .to_string(),
                none.clone(),
                "requestContext.functionArn",
            ),
            (
                json!({"requestContext": "r", "requestPayload": {}}).to_string(),
                none.clone(),
                "requestContext.functionArn",
            ),
            (
                json!({"requestContext": {"requestId": "r", "functionArn": "f", "condition": "c"},
                       "requestPayload": "an event"})
                .to_string(),
                none.clone(),
                "requestPayload: the event is a JSON string",
            ),
            (
                event.clone(),
                [("RULE_ARN".to_owned(), "  ".to_owned())].into(),
                "RULE_ARN attribute is empty",
            ),
        ];
        for (body, attrs, says) in cases {
            let e = parse(&body, &attrs).unwrap_err();
            assert!(e.reason.contains(says), "{body:?}: {e}");
            assert!(e.to_string().starts_with("unrecognized: "));
        }
    }

    #[test]
    fn odd_attribute_values_are_dropped_not_trusted() {
        let mut attrs = rule_attributes();
        attrs.insert("RETRY_ATTEMPTS".into(), "-1".into());
        attrs.insert("ERROR_CODE".into(), "   ".into());
        attrs.remove("TARGET_ARN");
        let d = parse(&sample("guardduty-ssh-bruteforce.json"), &attrs).unwrap();
        assert!(matches!(
            d.origin,
            Origin::EventbridgeRule {
                retry_attempts: None,
                target_arn: None,
                ..
            }
        ));
        assert_eq!(d.error_name, None);
    }

    /// Deeply nested input stays an error (serde_json's recursion limit), never a stack overflow.
    #[test]
    fn deep_nesting_is_unrecognized() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep, &rule_attributes()).is_err());
        let record = invocation_record(&format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ));
        assert!(parse(&record, &BTreeMap::new()).is_err());
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("requestContext".to_owned()),
                        Just("requestPayload".to_owned()),
                        Just("responsePayload".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("functionArn".to_owned()),
                        Just("requestId".to_owned()),
                        Just("condition".to_owned()),
                        Just("approximateInvokeCount".to_owned()),
                        Just("detail".to_owned()),
                        Just("findings".to_owned()),
                        Just("Id".to_owned()),
                        Just("id".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_never_a_panic(body in ".{0,200}", rule in proptest::option::of(".{0,20}")) {
            let attrs: BTreeMap<String, String> =
                rule.into_iter().map(|r| ("RULE_ARN".to_owned(), r)).collect();
            let _ = parse(&body, &attrs);
        }

        #[test]
        fn any_json_is_parsed_or_refused_never_a_panic(v in json_value(), with_rule in any::<bool>()) {
            let attrs = if with_rule { rule_attributes() } else { BTreeMap::new() };
            let body = v.to_string();
            if let Ok(d) = parse(&body, &attrs) {
                // What is recognized always carries an object event, verbatim from the body.
                let event: Value = serde_json::from_str(d.event.get()).unwrap();
                prop_assert!(event.is_object());
                prop_assert!(body.contains(d.event.get()));
            }
        }
    }
}
