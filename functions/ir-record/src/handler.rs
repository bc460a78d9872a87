//! `RecordRequest` → the playbook input (`triaged`) or what was recorded.

use ir_core::orchestration::RecordRequest;
use ir_incident::recorder::{RecordError, RecordOutput, Recorder};
use ir_lambda::payload::Checked;
use tracing::Instrument;

/// What the state machines send.
pub type Incoming = Checked<RecordRequest>;

/// The request's kind and incident, for the log span.
fn describe(r: &RecordRequest) -> (&'static str, &str) {
    match r {
        RecordRequest::Triaged { incident_id, .. } => ("triaged", incident_id),
        RecordRequest::TriageFailed { incident_id, .. } => ("triage-failed", incident_id),
        RecordRequest::StepResult { incident_id, .. } => ("step-result", incident_id),
        RecordRequest::StepFailed { incident_id, .. } => ("step-failed", incident_id),
        RecordRequest::StepNotApproved { incident_id, .. } => ("step-not-approved", incident_id),
        RecordRequest::PlaybookFinished { incident_id, .. } => ("playbook-finished", incident_id),
        RecordRequest::PlaybookStopped { incident_id, .. } => ("playbook-stopped", incident_id),
        RecordRequest::ClaimSlot { incident_id, .. } => ("claim-slot", incident_id),
    }
}

/// One invocation; a payload that does not parse is `InvalidInput`, logged once.
pub async fn handle(recorder: &Recorder, incoming: Incoming) -> Result<RecordOutput, RecordError> {
    let request = match incoming.value {
        Ok(r) => r,
        Err(why) => {
            return ir_lambda::logged("record refused", Err(RecordError::InvalidInput(why)));
        }
    };
    let (kind, incident_id) = describe(&request);
    let span = tracing::info_span!("record", kind, incident_id = %incident_id);
    ir_lambda::logged(
        "record failed",
        recorder.record(request).instrument(span).await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::ErrorName;
    use ir_core::Named;

    #[test]
    fn requests_parse_by_kind_and_bad_ones_are_invalid_input() {
        let ok = Incoming::parse(
            r#"{"kind":"step-failed","incidentId":"inc-0123456789abcdef0123","stepId":"isolate-instance","error":{"Error":"Retryable","Cause":"throttled"}}"#,
        )
        .unwrap();
        let request = ok.value.unwrap();
        assert_eq!(
            describe(&request),
            ("step-failed", "inc-0123456789abcdef0123")
        );
        let bad = Incoming::parse(r#"{"kind":"step-exploded","incidentId":"x"}"#).unwrap();
        let why = bad.value.unwrap_err();
        let e = RecordError::InvalidInput(why);
        assert_eq!(e.error_name(), ErrorName::InvalidInput);
        let d = ir_lambda::failure(&e);
        assert_eq!(d.error_type, "InvalidInput");
    }

    /// The triage request carries the raw findings (`RawValue`): it must parse through `Checked`
    /// as the runtime delivers it.
    #[test]
    fn a_triaged_request_with_raw_findings_parses() {
        let path = format!(
            "{}/../../events/guardduty-cryptocurrency-bitcointool-dns.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let n = ir_core::normalize(text.as_bytes()).unwrap();
        let engine = ir_core::Engine::embedded().unwrap();
        let id = ir_core::correlate::incident_id(&n.events[0].finding_key);
        let decision = engine
            .decide(&id, &n.events, &engine.enrich(&n.events, 0), time_zero())
            .unwrap();
        let request = RecordRequest::Triaged {
            incident_id: id.clone(),
            events: n.events,
            decision,
            detected_at: time_zero(),
            revision: 0,
        };
        let wire = serde_json::to_vec(&request).unwrap();
        // As the runtime deserializes a payload: serde_path_to_error over a slice.
        let jd = &mut serde_json::Deserializer::from_slice(&wire);
        let incoming: Incoming = serde_path_to_error::deserialize(jd).unwrap();
        let parsed = incoming.value.unwrap();
        assert_eq!(describe(&parsed), ("triaged", id.as_str()));
        let RecordRequest::Triaged { events, .. } = parsed else {
            panic!("not triaged")
        };
        assert!(
            events[0]
                .raw
                .get()
                .contains("CryptoCurrency:EC2/BitcoinTool.B!DNS")
        );
    }

    fn time_zero() -> time::OffsetDateTime {
        time::OffsetDateTime::UNIX_EPOCH
    }
}
