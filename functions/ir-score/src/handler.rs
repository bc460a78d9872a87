//! `ScoreInput` → `Decision`.

use ir_core::correlate::is_incident_id;
use ir_core::triage::TriageError;
use ir_core::{Decision, Engine, ErrorName, Named, ScoreInput};
use ir_lambda::payload::Checked;
use thiserror::Error;

pub type Incoming = Checked<ScoreInput>;

#[derive(Debug, Error)]
pub enum ScoreError {
    #[error("invalid input: {0}")]
    Payload(String),
    #[error("`{0}` is not an incident id")]
    IncidentId(String),
    #[error(transparent)]
    Triage(#[from] TriageError),
}

impl Named for ScoreError {
    fn error_name(&self) -> ErrorName {
        match self {
            ScoreError::Payload(_) | ScoreError::IncidentId(_) => ErrorName::InvalidInput,
            ScoreError::Triage(e) => e.error_name(),
        }
    }
}

pub fn handle(engine: &Engine, incoming: Incoming) -> Result<Decision, ScoreError> {
    ir_lambda::logged("scoring refused", score(engine, incoming))
}

pub fn score(engine: &Engine, incoming: Incoming) -> Result<Decision, ScoreError> {
    let input = incoming.value.map_err(ScoreError::Payload)?;
    if !is_incident_id(&input.incident_id) {
        return Err(ScoreError::IncidentId(input.incident_id));
    }
    let span = tracing::info_span!("score", incident_id = %input.incident_id);
    let _guard = span.enter();
    let decision = engine.decide(
        &input.incident_id,
        &input.events,
        &input.enrichment,
        input.detected_at,
    )?;
    tracing::info!(
        severity = %decision.severity,
        score = decision.score.score,
        playbook = %decision.playbook.id,
        approval_gates = decision.approval_gates().count(),
        "incident scored"
    );
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::{IngestOutput, Severity};
    use time::OffsetDateTime;

    fn input(sample: &str, history: u32) -> String {
        let engine = Engine::embedded().unwrap();
        let text = std::fs::read(format!(
            "{}/../../events/{sample}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let ingest = IngestOutput::from_normalized(
            ir_core::normalize(&text).unwrap(),
            OffsetDateTime::UNIX_EPOCH,
        );
        let t = &ingest.incidents[0];
        let enrichment = engine.enrich(&t.events, history);
        serde_json::to_string(&ScoreInput {
            incident_id: t.incident_id.clone(),
            events: t.events.clone(),
            enrichment,
            detected_at: t.detected_at,
        })
        .unwrap()
    }

    #[test]
    fn history_raises_a_high_finding_on_a_critical_asset_to_critical() {
        let engine = Engine::embedded().unwrap();
        let quiet = score(
            &engine,
            Incoming::parse(&input("guardduty-cryptocurrency-bitcointool-dns.json", 0)).unwrap(),
        )
        .unwrap();
        let repeat = score(
            &engine,
            Incoming::parse(&input("guardduty-cryptocurrency-bitcointool-dns.json", 2)).unwrap(),
        )
        .unwrap();
        assert_eq!(quiet.severity, Severity::High);
        assert_eq!(quiet.playbook.id, "investigate-and-notify");
        assert_eq!(repeat.severity, Severity::Critical);
        assert_eq!(repeat.playbook.id, "immediate-isolation");
        assert!(
            repeat
                .approval_gates()
                .any(|s| s.function == "ir-isolate-instance")
        );
    }

    #[test]
    fn no_events_is_invalid_input() {
        let engine = Engine::embedded().unwrap();
        let mut v: serde_json::Value =
            serde_json::from_str(&input("guardduty-s3-exfiltration.json", 0)).unwrap();
        v["events"] = serde_json::json!([]);
        let e = score(&engine, Incoming::parse(&v.to_string()).unwrap()).unwrap_err();
        assert_eq!(ir_lambda::failure(&e).error_type, "InvalidInput");
    }
}
