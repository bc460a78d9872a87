//! `EnrichInput` → `Enrichment`.

use ir_core::correlate::is_incident_id;
use ir_core::enrich::Enrichment;
use ir_core::{Engine, EnrichInput, ErrorName, Named};
use ir_lambda::payload::Checked;
use thiserror::Error;

pub type Incoming = Checked<EnrichInput>;

#[derive(Debug, Error)]
pub enum EnrichError {
    #[error("invalid input: {0}")]
    Payload(String),
    #[error("`{0}` is not an incident id")]
    IncidentId(String),
    #[error("incident {0} has no events")]
    NoEvents(String),
}

impl Named for EnrichError {
    fn error_name(&self) -> ErrorName {
        ErrorName::InvalidInput
    }
}

pub fn handle(engine: &Engine, incoming: Incoming) -> Result<Enrichment, EnrichError> {
    ir_lambda::logged("enrichment refused", enrich(engine, incoming))
}

pub fn enrich(engine: &Engine, incoming: Incoming) -> Result<Enrichment, EnrichError> {
    let input = incoming.value.map_err(EnrichError::Payload)?;
    if !is_incident_id(&input.incident_id) {
        return Err(EnrichError::IncidentId(input.incident_id));
    }
    if input.events.is_empty() {
        return Err(EnrichError::NoEvents(input.incident_id));
    }
    let span = tracing::info_span!("enrich", incident_id = %input.incident_id, finding_id = %input.events[0].finding_id);
    let _guard = span.enter();
    let enrichment = engine.enrich(&input.events, input.history_count);
    tracing::info!(
        criticality = %enrichment.criticality.value,
        threat_score = enrichment.threat_score,
        history_count = enrichment.history_count,
        "incident enriched"
    );
    Ok(enrichment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::enrich::Origin;
    use ir_core::{IngestOutput, Severity};
    use time::OffsetDateTime;

    fn input(sample: &str) -> String {
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
        serde_json::to_string(&EnrichInput {
            incident_id: t.incident_id.clone(),
            events: t.events.clone(),
            history_count: 3,
        })
        .unwrap()
    }

    #[test]
    fn enriches_from_the_registry_and_intel() {
        let engine = Engine::embedded().unwrap();
        let out = enrich(
            &engine,
            Incoming::parse(&input("guardduty-backdoor-cc-activity.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(out.criticality.value, Severity::Critical);
        assert_eq!(out.criticality.origin, Origin::Registry);
        assert_eq!(out.history_count, 3);
        assert!(out.threat_score > 0.9, "{}", out.threat_score);
    }

    #[test]
    fn bad_payloads_are_invalid_input() {
        let engine = Engine::embedded().unwrap();
        for text in [
            r#"{"incidentId": "inc-x"}"#.to_owned(),
            input("guardduty-backdoor-cc-activity.json").replacen("inc-", "INC-", 1),
        ] {
            let e = enrich(&engine, Incoming::parse(&text).unwrap()).unwrap_err();
            assert_eq!(ir_lambda::failure(&e).error_type, "InvalidInput");
        }
    }
}
