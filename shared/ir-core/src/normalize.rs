//! From an EventBridge envelope to normalized [`SecurityEvent`]s.
//!
//! Supported: `aws.guardduty` / `GuardDuty Finding` (the finding in `detail`, camelCase),
//! `aws.securityhub` / `Security Hub Findings - Imported` (ASFF, `detail.findings[]`, PascalCase)
//! and `aws.securityhub` / `Findings Imported V2` (OCSF, `detail.findings[]`, snake_case). The
//! other detail-types GuardDuty sends (runtime agent health, malware scan results and plan
//! status) are not findings and are refused by name ([`InputError::NotAFinding`]).
//!
//! A batch is all or nothing: one malformed finding fails the whole event with an error naming
//! the finding and the field, so that the event is retried or dead-lettered whole, never half
//! ingested. Findings deliberately not ingested (Security Hub loop guard, GuardDuty duplicates,
//! archived findings) are returned as [`Skipped`] with the reason.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;
use time::OffsetDateTime;

use crate::error::{ErrorName, Named};
use crate::event::{SecurityEvent, Skipped};
use crate::lenient::LenientTime;
use crate::{asff, guardduty, ocsf};

/// EventBridge refuses events larger than 256 KB; so does the suite.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

pub const GUARDDUTY_SOURCE: &str = "aws.guardduty";
pub const GUARDDUTY_DETAIL_TYPE: &str = "GuardDuty Finding";
pub const SECURITYHUB_SOURCE: &str = "aws.securityhub";
pub const SECURITYHUB_DETAIL_TYPE: &str = "Security Hub Findings - Imported";
pub const SECURITYHUB_OCSF_DETAIL_TYPE: &str = "Findings Imported V2";

/// The detail-types GuardDuty sends to EventBridge besides `GuardDuty Finding` (EventBridge's
/// reference, "Amazon GuardDuty events"): status and scan results, never findings.
pub const GUARDDUTY_NON_FINDING_DETAIL_TYPES: [&str; 7] = [
    "GuardDuty Runtime Protection Healthy",
    "GuardDuty Runtime Protection Unhealthy",
    "GuardDuty Malware Protection Object Scan Result",
    "GuardDuty Malware Protection Resource Status Active",
    "GuardDuty Malware Protection Resource Status Warning",
    "GuardDuty Malware Protection Resource Status Error",
    "GuardDuty Malware Protection Post Scan Action Failed",
];

/// Why an input could not be normalized. Every variant is `InvalidInput`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InputError {
    #[error("input is not JSON: {0}")]
    NotJson(String),
    #[error("input is not an EventBridge envelope: {0}")]
    NotAnEnvelope(String),
    #[error("event is {size} bytes, over EventBridge's {MAX_EVENT_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("unsupported event source `{0}` (supported: aws.guardduty, aws.securityhub)")]
    UnsupportedSource(String),
    #[error(
        "unsupported detail-type `{detail_type}` for source `{event_source}` (supported: {supported})"
    )]
    UnsupportedDetailType {
        event_source: String,
        detail_type: String,
        supported: &'static str,
    },
    /// A known GuardDuty event that is not a finding (agent health, a malware scan result):
    /// the rule should not have delivered it.
    #[error(
        "`{detail_type}` from `{event_source}` is a status event, not a finding: nothing to ingest (the findings rule matches `GuardDuty Finding` only)"
    )]
    NotAFinding {
        event_source: String,
        detail_type: String,
    },
    #[error("Security Hub event has no findings (detail.findings is empty)")]
    EmptyFindings,
    #[error("{location}: {message}")]
    InvalidFinding { location: String, message: String },
}

impl Named for InputError {
    fn error_name(&self) -> ErrorName {
        ErrorName::InvalidInput
    }
}

impl InputError {
    /// A stable short code for each kind of refusal (for logs and tests).
    pub fn code(&self) -> &'static str {
        match self {
            InputError::NotJson(_) => "not-json",
            InputError::NotAnEnvelope(_) => "not-an-envelope",
            InputError::TooLarge { .. } => "too-large",
            InputError::UnsupportedSource(_) => "unsupported-source",
            InputError::UnsupportedDetailType { .. } => "unsupported-detail-type",
            InputError::NotAFinding { .. } => "not-a-finding",
            InputError::EmptyFindings => "empty-findings",
            InputError::InvalidFinding { .. } => "invalid-finding",
        }
    }

    pub(crate) fn finding(location: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError::InvalidFinding {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// The envelope fields the suite reads, borrowed from the input.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeMeta<'a> {
    pub source: &'a str,
    pub detail_type: &'a str,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    /// When EventBridge received the event.
    pub time: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(rename = "detail-type", borrow, default)]
    detail_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    account: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    region: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

/// The outcome of normalizing one finding.
#[allow(clippy::large_enum_variant)]
pub(crate) enum One {
    Event(SecurityEvent),
    Skip(Skipped),
}

/// The outcome of normalizing one envelope.
#[derive(Debug, Clone)]
pub struct Normalized {
    pub events: Vec<SecurityEvent>,
    pub skipped: Vec<Skipped>,
    /// The envelope's `time`: when EventBridge received the event.
    pub received_at: Option<OffsetDateTime>,
}

/// Parses a whole envelope from bytes (the CLI, tests, benchmarks).
pub fn normalize(bytes: &[u8]) -> Result<Normalized, InputError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(InputError::TooLarge { size: bytes.len() });
    }
    let env: RawEnvelope<'_> = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => InputError::NotAnEnvelope(e.to_string()),
        _ => InputError::NotJson(e.to_string()),
    })?;
    let source = env
        .source
        .as_deref()
        .ok_or_else(|| InputError::NotAnEnvelope("missing `source`".into()))?;
    let detail_type = env
        .detail_type
        .as_deref()
        .ok_or_else(|| InputError::NotAnEnvelope("missing `detail-type`".into()))?;
    let detail = env
        .detail
        .ok_or_else(|| InputError::NotAnEnvelope("missing `detail`".into()))?;
    let time = match env.time.as_deref() {
        Some(t) => Some(
            LenientTime::parse_text(t)
                .map_err(|e| InputError::NotAnEnvelope(format!("time: {e}")))?,
        ),
        None => None,
    };
    let meta = EnvelopeMeta {
        source,
        detail_type,
        account: env.account.as_deref(),
        region: env.region.as_deref(),
        time,
    };
    normalize_detail(&meta, detail)
}

/// Normalizes the `detail` of an envelope already split (the ingest Lambda).
pub fn normalize_detail(
    meta: &EnvelopeMeta<'_>,
    detail: &RawValue,
) -> Result<Normalized, InputError> {
    let (events, skipped) = match (meta.source, meta.detail_type) {
        (GUARDDUTY_SOURCE, GUARDDUTY_DETAIL_TYPE) => match guardduty::normalize(meta, detail)? {
            One::Event(e) => (vec![e], Vec::new()),
            One::Skip(s) => (Vec::new(), vec![s]),
        },
        (GUARDDUTY_SOURCE, other) if GUARDDUTY_NON_FINDING_DETAIL_TYPES.contains(&other) => {
            return Err(InputError::NotAFinding {
                event_source: GUARDDUTY_SOURCE.into(),
                detail_type: other.into(),
            });
        }
        (GUARDDUTY_SOURCE, other) => {
            return Err(InputError::UnsupportedDetailType {
                event_source: GUARDDUTY_SOURCE.into(),
                detail_type: other.into(),
                supported: GUARDDUTY_DETAIL_TYPE,
            });
        }
        (SECURITYHUB_SOURCE, SECURITYHUB_DETAIL_TYPE) => asff::normalize_batch(meta, detail)?,
        (SECURITYHUB_SOURCE, SECURITYHUB_OCSF_DETAIL_TYPE) => ocsf::normalize_batch(meta, detail)?,
        (SECURITYHUB_SOURCE, other) => {
            return Err(InputError::UnsupportedDetailType {
                event_source: SECURITYHUB_SOURCE.into(),
                detail_type: other.into(),
                supported: "Security Hub Findings - Imported (ASFF), Findings Imported V2 (OCSF)",
            });
        }
        (other, _) => return Err(InputError::UnsupportedSource(other.into())),
    };
    Ok(Normalized {
        events,
        skipped,
        received_at: meta.time,
    })
}

/// Deserializes `raw` into `T`, reporting the JSON path of the first problem under `location`.
/// The fast path parses without tracking paths; only a failure is parsed again to locate it.
/// A Security Hub event's `detail.findings[]` (ASFF or OCSF), each left raw for its format's
/// reader: missing or empty is refused.
pub(crate) fn hub_findings(detail: &RawValue) -> Result<Vec<&RawValue>, InputError> {
    #[derive(Deserialize)]
    struct Detail<'a> {
        #[serde(borrow, default)]
        findings: Option<Vec<&'a RawValue>>,
    }
    let d: Detail<'_> = parse_at(detail, "detail")?;
    let findings = d
        .findings
        .ok_or_else(|| InputError::finding("detail.findings", "missing required field"))?;
    if findings.is_empty() {
        return Err(InputError::EmptyFindings);
    }
    Ok(findings)
}

pub(crate) fn parse_at<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    location: &str,
) -> Result<T, InputError> {
    if let Ok(v) = serde_json::from_str(raw.get()) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." {
                location.to_owned()
            } else {
                format!("{location}.{path}")
            };
            Err(InputError::finding(at, e.into_inner().to_string()))
        }
    }
}

/// Parses an optional RFC 3339 field of a finding.
pub(crate) fn parse_time(
    value: Option<&str>,
    location: &str,
) -> Result<Option<OffsetDateTime>, InputError> {
    value
        .map(|t| LenientTime::parse_text(t).map_err(|e| InputError::finding(location, e)))
        .transpose()
}

/// Requires a non-empty string field of a finding.
pub(crate) fn required<'s>(
    value: Option<&'s str>,
    location: &str,
    field: &str,
) -> Result<&'s str, InputError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(InputError::finding(
            format!("{location}.{field}"),
            "missing required field",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> InputError {
        normalize(input.as_bytes()).expect_err(input)
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        assert_eq!(err("not json").code(), "not-json");
        assert_eq!(err("[1,2]").code(), "not-an-envelope");
        assert_eq!(
            err(r#"{"source":"aws.guardduty","detail":{}}"#).code(),
            "not-an-envelope"
        );
        assert_eq!(
            err(r#"{"source":"aws.guardduty","detail-type":"GuardDuty Finding"}"#).code(),
            "not-an-envelope"
        );
        assert_eq!(err(r#"{"source":"aws.ec2()","detail-type":"EC2 Instance State-change Notification","detail":{}}"#).code(), "unsupported-source");
        assert_eq!(err(r#"{"source":"aws.guardduty","detail-type":"GuardDuty Malware Protection","detail":{}}"#).code(), "unsupported-detail-type");
        for detail_type in GUARDDUTY_NON_FINDING_DETAIL_TYPES {
            let e = err(&format!(
                r#"{{"source":"aws.guardduty","detail-type":"{detail_type}","detail":{{"schemaVersion":"1.0"}}}}"#
            ));
            assert_eq!(e.code(), "not-a-finding", "{detail_type}");
            assert_eq!(e.error_name(), ErrorName::InvalidInput);
            assert!(e.to_string().contains(detail_type), "{e}");
        }
        assert_eq!(
            err(
                r#"{"source":"aws.securityhub","detail-type":"Findings Imported V2","detail":{"findings":[]}}"#
            ),
            InputError::EmptyFindings
        );
        assert_eq!(
            err(r#"{"source":"aws.securityhub","detail-type":"Findings Imported V2","detail":{}}"#)
                .code(),
            "invalid-finding"
        );
        assert_eq!(
            err(
                r#"{"source":"aws.securityhub","detail-type":"Security Hub Findings - Imported","detail":{"findings":[]}}"#
            ),
            InputError::EmptyFindings
        );
        assert_eq!(err(r#"{"source":"aws.securityhub","detail-type":"Security Hub Findings - Imported","detail":{"findings":[]},"time":"noon"}"#).code(), "not-an-envelope");
    }

    #[test]
    fn refuses_events_over_the_eventbridge_limit() {
        let big = format!(
            r#"{{"source":"aws.guardduty","pad":"{}"}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        assert!(matches!(err(&big), InputError::TooLarge { .. }));
    }
}
