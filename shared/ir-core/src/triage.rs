//! Triage: enrichment, score, severity, playbook and SLA for one incident.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use std::collections::BTreeMap;

use crate::clocks::{self, RegulatoryDeadline};
use crate::config::{Config, Mode, OnExhausted};
use crate::enrich::{self, AssetRegistry, Enrichment, ThreatIntel};
use crate::error::{ErrorName, Named};
use crate::event::SecurityEvent;
use crate::playbook::{self, PlannedPlaybook};
use crate::score::{self, ScoreBreakdown};
use crate::severity::Severity;
use crate::sla::{self, SlaDecision};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TriageError {
    #[error("incident {0} has no events to triage")]
    NoEvents(String),
    #[error("no playbook matches severity {0}")]
    NoPlaybook(Severity),
    #[error("no response SLA configured for severity {0}")]
    NoSla(Severity),
}

impl Named for TriageError {
    fn error_name(&self) -> ErrorName {
        match self {
            TriageError::NoEvents(_) => ErrorName::InvalidInput,
            TriageError::NoPlaybook(_) | TriageError::NoSla(_) => ErrorName::Configuration,
        }
    }
}

/// The triage decision for an incident.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub incident_id: String,
    /// The incident severity: the higher of the findings' and the score's.
    pub severity: Severity,
    /// The highest severity among the findings.
    pub finding_severity: Severity,
    pub score: ScoreBreakdown,
    pub playbook: PlannedPlaybook,
    pub sla: SlaDecision,
    /// The regulatory deadlines the asset's data classification brings (`regulatory`).
    #[serde(default)]
    pub deadlines: Vec<RegulatoryDeadline>,
    /// Every finding is a generated sample: the plan is forced to dry-run.
    #[serde(default)]
    pub samples_only: bool,
    /// Who is asked to approve, in order, and how long each has (the escalation matrix row of
    /// the incident severity).
    #[serde(default)]
    pub escalation: Vec<EscalationLevel>,
    /// What an approval gate does when every level timed out.
    pub on_exhausted: OnExhausted,
    /// The incident's revision this decision is for (0: the opening finding; set by the
    /// recorder from the incident's own record).
    #[serde(default)]
    pub revision: u32,
    /// The playbook's steps for each other resource the findings name (an attack sequence's):
    /// planned for a responder, never run (the playbook acts on the incident's resource only).
    /// Absent on decisions recorded before.
    #[serde(default)]
    pub resource_plans: Vec<playbook::ResourcePlan>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One level of the escalation matrix as it applies to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscalationLevel {
    pub role: String,
    pub timeout_seconds: u64,
}

/// The wire form of a decision: its fields plus `plan`, the planned steps keyed by step key
/// (`playbook::step_key`) for the playbook state machine's choices. `plan` is derived from the
/// steps when serialized, never stored, and ignored when read back.
impl Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            incident_id: &'a str,
            severity: Severity,
            finding_severity: Severity,
            score: &'a ScoreBreakdown,
            playbook: &'a PlannedPlaybook,
            sla: &'a SlaDecision,
            #[serde(skip_serializing_if = "<[RegulatoryDeadline]>::is_empty")]
            deadlines: &'a [RegulatoryDeadline],
            samples_only: bool,
            plan: BTreeMap<String, &'a playbook::PlannedStep>,
            escalation: &'a [EscalationLevel],
            on_exhausted: OnExhausted,
            #[serde(skip_serializing_if = "is_zero")]
            revision: u32,
            #[serde(skip_serializing_if = "<[playbook::ResourcePlan]>::is_empty")]
            resource_plans: &'a [playbook::ResourcePlan],
        }
        Wire {
            incident_id: &self.incident_id,
            severity: self.severity,
            finding_severity: self.finding_severity,
            score: &self.score,
            playbook: &self.playbook,
            sla: &self.sla,
            deadlines: &self.deadlines,
            samples_only: self.samples_only,
            plan: self.plan(),
            escalation: &self.escalation,
            on_exhausted: self.on_exhausted,
            revision: self.revision,
            resource_plans: &self.resource_plans,
        }
        .serialize(s)
    }
}

impl Decision {
    /// The planned steps by step key, as the state machines see them: the steps still to run
    /// (a step an earlier revision applied is left out, so its `Check_` state skips it).
    pub fn plan(&self) -> BTreeMap<String, &playbook::PlannedStep> {
        self.playbook
            .steps
            .iter()
            .filter(|s| s.done.is_none())
            .map(|s| (playbook::step_key(&s.id), s))
            .collect()
    }

    /// The steps that wait for a human before they run.
    pub fn approval_gates(&self) -> impl Iterator<Item = &playbook::PlannedStep> {
        self.playbook.steps.iter().filter(|s| s.requires_approval)
    }
}

/// The triage engine: configuration and enrichment data, loaded once.
#[derive(Debug, Clone)]
pub struct Engine {
    pub config: Config,
    pub registry: AssetRegistry,
    pub intel: ThreatIntel,
}

impl Engine {
    pub fn new(config: Config, registry: AssetRegistry, intel: ThreatIntel) -> Engine {
        Engine {
            config,
            registry,
            intel,
        }
    }

    /// The engine on the embedded default configuration, registry and intel list.
    pub fn embedded() -> Result<Engine, String> {
        let config = Config::embedded().map_err(|e| e.to_string())?;
        let registry = AssetRegistry::from_yaml(crate::config::DEFAULT_ASSETS_YAML)
            .map_err(|e| e.to_string())?;
        let intel =
            ThreatIntel::parse(crate::config::DEFAULT_THREAT_INTEL).map_err(|e| e.to_string())?;
        Ok(Engine {
            config,
            registry,
            intel,
        })
    }

    /// Enrichment of an incident's resource and indicators.
    pub fn enrich(&self, events: &[SecurityEvent], history_count: u32) -> Enrichment {
        enrich::enrich(
            events,
            &self.registry,
            &self.intel,
            &self.config.triage.defaults,
            history_count,
        )
    }

    /// Score, severity, playbook and SLA, given the enrichment.
    pub fn decide(
        &self,
        incident_id: &str,
        events: &[SecurityEvent],
        enrichment: &Enrichment,
        detected_at: OffsetDateTime,
    ) -> Result<Decision, TriageError> {
        let first = events
            .first()
            .ok_or_else(|| TriageError::NoEvents(incident_id.to_owned()))?;
        let scoring = &self.config.triage.scoring;
        let breakdown = score::score(score::components(events, enrichment, scoring), scoring);
        let finding_severity = events
            .iter()
            .map(SecurityEvent::severity_label)
            .max()
            .unwrap_or(Severity::Low);
        let severity = finding_severity.max(breakdown.score_severity);
        let chosen =
            playbook::select(&self.config, severity).ok_or(TriageError::NoPlaybook(severity))?;
        let sla = *self
            .config
            .triage
            .response_sla
            .get(&severity)
            .ok_or(TriageError::NoSla(severity))?;
        let mut plan = playbook::plan(&self.config, chosen, &first.resource, severity);
        // Every other resource the findings name, once, in order: its plan, for a responder.
        let primary = first.resource_key();
        let mut seen = std::collections::BTreeSet::from([primary]);
        let related: Vec<&crate::event::RelatedResource> = events
            .iter()
            .flat_map(|e| e.related_resources.iter())
            .filter(|r| seen.insert(r.key()))
            .collect();
        let resource_plans = playbook::resource_plans(&self.config, chosen, &related, severity);
        // Generated sample findings (GuardDuty CreateSampleFindings) never drive enforcement.
        if events.iter().all(|e| e.sample) {
            plan.mode = Mode::DryRun;
            for step in &mut plan.steps {
                step.mode = Mode::DryRun;
            }
        }
        let escalation = self
            .config
            .escalation(severity)
            .iter()
            .map(|e| EscalationLevel {
                role: e.role.clone(),
                timeout_seconds: e.timeout.as_secs(),
            })
            .collect();
        Ok(Decision {
            incident_id: incident_id.to_owned(),
            severity,
            finding_severity,
            score: breakdown,
            playbook: plan,
            sla: sla::decide(
                severity,
                sla,
                detected_at,
                self.config.triage.immediate_window,
            ),
            deadlines: clocks::deadlines(
                &self.config,
                &enrichment.data_classification.value,
                detected_at,
            ),
            samples_only: events.iter().all(|e| e.sample),
            escalation,
            on_exhausted: self.config.notifications.on_escalation_exhausted,
            revision: 0,
            resource_plans,
        })
    }
}
