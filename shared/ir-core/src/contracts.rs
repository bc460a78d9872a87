//! The typed payloads between states: what each function takes and returns.
//!
//! The state machines pass only the fields a step needs and merge results with `ResultPath`:
//! ingest → [`TriageInput`]; enrich takes [`EnrichInput`] and returns an [`Enrichment`] merged at
//! `$.enrichment`; score takes [`ScoreInput`] and returns a [`Decision`] merged at `$.decision`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::correlate::Correlation;
use crate::enrich::Enrichment;
use crate::event::{SecurityEvent, Skipped};
pub use crate::triage::Decision;

/// One incident to triage: the input of the triage state machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriageInput {
    pub incident_id: String,
    /// How each event was correlated, in event order.
    pub correlations: Vec<Correlation>,
    pub events: Vec<SecurityEvent>,
    /// When the suite received the first event (EventBridge's `time`).
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    /// Earlier incidents on the resource.
    #[serde(default)]
    pub history_count: u32,
    /// The incident's revision this triage decides: 0 for the finding that opened it, one more
    /// for every later finding that raised its severity (re-triage). The recorder checks it
    /// against the incident's own record.
    #[serde(default)]
    pub revision: u32,
}

impl TriageInput {
    /// The name of this revision's triage and playbook executions.
    pub fn execution_name(&self) -> String {
        crate::correlate::execution_name(&self.incident_id, self.revision)
    }
}

/// What `ir-ingest` returns for one EventBridge event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestOutput {
    pub incidents: Vec<TriageInput>,
    pub skipped: Vec<Skipped>,
}

/// The input of `ir-enrich`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichInput {
    pub incident_id: String,
    pub events: Vec<SecurityEvent>,
    #[serde(default)]
    pub history_count: u32,
}

/// The input of `ir-score`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreInput {
    pub incident_id: String,
    pub events: Vec<SecurityEvent>,
    pub enrichment: Enrichment,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
}

impl IngestOutput {
    /// Groups the events of one envelope into incidents (see [`crate::correlate::group`]).
    /// `received_at` is EventBridge's `time`; `now` stands in when the envelope had none.
    pub fn from_normalized(
        normalized: crate::normalize::Normalized,
        now: OffsetDateTime,
    ) -> IngestOutput {
        let detected_at = normalized.received_at.unwrap_or(now);
        let groups = crate::correlate::group(&normalized.events);
        let mut slots: Vec<Option<SecurityEvent>> =
            normalized.events.into_iter().map(Some).collect();
        let incidents = groups
            .into_iter()
            .map(|g| TriageInput {
                incident_id: g.incident_id,
                correlations: g.correlations,
                events: g
                    .members
                    .iter()
                    .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
                    .collect(),
                detected_at,
                history_count: 0,
                revision: 0,
            })
            .collect();
        IngestOutput {
            incidents,
            skipped: normalized.skipped,
        }
    }
}
