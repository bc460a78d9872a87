//! EventBridge envelope → normalized findings → incidents in the store → triage executions.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use ir_core::normalize::MAX_EVENT_BYTES;
use ir_core::{EnvelopeMeta, ErrorName, IngestOutput, InputError, Named};
use ir_incident::intake::Intake;
use ir_incident::recorder::RecordError;
use ir_lambda::payload::Checked;
use serde_json::value::RawValue;
use thiserror::Error;
use time::OffsetDateTime;

/// What the function receives: an EventBridge envelope whose `detail` is kept verbatim.
pub type Incoming = Checked<EventBridgeEvent<Box<RawValue>>>;

/// The function's error; its stable name is what EventBridge's retry and dead-letter policy and
/// the logs see.
#[derive(Debug, Error)]
pub enum IngestError {
    /// Not an EventBridge envelope at all.
    #[error("input is not an EventBridge envelope: {0}")]
    Envelope(String),
    /// An envelope whose findings cannot be understood.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Storing the findings or starting triage failed (`Retryable`, `Conflict`, ...).
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl Named for IngestError {
    fn error_name(&self) -> ErrorName {
        match self {
            IngestError::Envelope(_) => ErrorName::InvalidInput,
            IngestError::Input(e) => e.error_name(),
            IngestError::Record(e) => e.error_name(),
        }
    }
}

/// One invocation: normalize, then store every finding and start the triage of new incidents.
pub async fn handle(intake: &Intake, incoming: Incoming) -> Result<IngestOutput, IngestError> {
    let bytes = incoming.raw.get().len();
    let result = match normalize(incoming, OffsetDateTime::now_utc()) {
        Ok(batch) => {
            for s in &batch.skipped {
                tracing::info!(finding_id = %s.finding_id, code = ?s.code, reason = %s.reason, incident_id = ?s.incident_id, "finding skipped");
            }
            intake.ingest(batch).await.map_err(IngestError::from)
        }
        Err(e) => Err(e),
    };
    match &result {
        Ok(done) => {
            for t in &done.triage {
                tracing::info!(incident_id = %t.incident_id, execution_arn = %t.execution_arn, started = t.started, "triage execution");
            }
        }
        // Logged once here, at the boundary; the raw event is kept by EventBridge's dead-letter queue.
        Err(e) => {
            tracing::warn!(error_name = e.error_name().as_str(), error = %e, bytes, "event refused")
        }
    }
    result.map(|done| done.output)
}

/// The pure part: the envelope's findings, normalized and grouped, given the current time.
pub fn normalize(incoming: Incoming, now: OffsetDateTime) -> Result<IngestOutput, IngestError> {
    let size = incoming.raw.get().len();
    if size > MAX_EVENT_BYTES {
        return Err(InputError::TooLarge { size }.into());
    }
    let envelope = incoming.value.map_err(IngestError::Envelope)?;
    let time = match envelope.time {
        Some(t) => Some(
            t.timestamp_nanos_opt()
                .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok())
                .ok_or_else(|| IngestError::Envelope(format!("time {t} is out of range")))?,
        ),
        None => None,
    };
    let meta = EnvelopeMeta {
        source: &envelope.source,
        detail_type: &envelope.detail_type,
        account: envelope.account.as_deref(),
        region: envelope.region.as_deref(),
        time,
    };
    let normalized = ir_core::normalize_detail(&meta, &envelope.detail)?;
    Ok(IngestOutput::from_normalized(normalized, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::correlate::Correlation;

    fn sample(name: &str) -> String {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn run(text: &str) -> Result<IngestOutput, IngestError> {
        normalize(Incoming::parse(text).unwrap(), OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_guardduty_event_becomes_one_new_incident() {
        let out = run(&sample("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
        assert_eq!(out.incidents.len(), 1);
        let i = &out.incidents[0];
        assert!(ir_core::correlate::is_incident_id(&i.incident_id));
        assert!(matches!(i.correlations[0], Correlation::New { .. }));
        assert_eq!(i.events[0].finding_id, "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1");
        // Detection time is EventBridge's `time`, not the clock.
        assert_ne!(i.detected_at, OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn the_security_hub_copy_of_a_guardduty_finding_names_the_same_incident() {
        let direct = run(&sample("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
        let via_hub = run(&sample("securityhub-guardduty-duplicate.json")).unwrap();
        assert!(via_hub.incidents.is_empty());
        assert_eq!(via_hub.skipped.len(), 1);
        assert_eq!(
            via_hub.skipped[0].incident_id.as_deref(),
            Some(direct.incidents[0].incident_id.as_str())
        );
    }

    #[test]
    fn malformed_input_is_invalid_input() {
        let not_envelope = run(r#"{"hello": "world"}"#).unwrap_err();
        assert!(matches!(not_envelope, IngestError::Envelope(_)));
        let bad_severity = sample("guardduty-ssh-bruteforce.json").replacen(
            "\"severity\": 2",
            "\"severity\": \"very\"",
            1,
        );
        assert_ne!(
            bad_severity,
            sample("guardduty-ssh-bruteforce.json"),
            "fixture text not found"
        );
        let e = run(&bad_severity).unwrap_err();
        assert!(e.to_string().contains("detail.severity"), "{e}");
        for e in [not_envelope, e] {
            let d = ir_lambda::failure(&e);
            assert_eq!(d.error_type, "InvalidInput");
        }
    }

    #[test]
    fn guardduty_status_events_are_refused_by_name_and_the_ocsf_copy_is_a_duplicate() {
        let health = sample("guardduty-ssh-bruteforce.json").replacen(
            "\"GuardDuty Finding\"",
            "\"GuardDuty Runtime Protection Unhealthy\"",
            1,
        );
        let e = run(&health).unwrap_err();
        assert!(
            matches!(&e, IngestError::Input(i) if i.code() == "not-a-finding"),
            "{e}"
        );
        assert_eq!(ir_lambda::failure(&e).error_type, "InvalidInput");
        let direct = run(&sample("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
        let ocsf = run(&sample("securityhub-ocsf-guardduty-bitcoin.json")).unwrap();
        assert!(ocsf.incidents.is_empty());
        assert_eq!(
            ocsf.skipped[0].incident_id.as_deref(),
            Some(direct.incidents[0].incident_id.as_str())
        );
    }

    #[test]
    fn store_and_step_functions_failures_keep_their_names() {
        use ir_aws::store::StoreError;
        let cases = [
            (
                IngestError::from(RecordError::Store(StoreError::Conflict("contended".into()))),
                "Conflict",
            ),
            (
                IngestError::from(RecordError::Configuration("no state machine".into())),
                "Configuration",
            ),
            (
                IngestError::from(RecordError::Aws(ir_aws::SdkFailure {
                    operation: "states:StartExecution",
                    name: ErrorName::Retryable,
                    code: Some("ThrottlingException".into()),
                    request_id: None,
                    detail: "slow down".into(),
                })),
                "Retryable",
            ),
        ];
        for (e, name) in cases {
            let d = ir_lambda::failure(&e);
            assert_eq!(d.error_type, name);
        }
    }
}
