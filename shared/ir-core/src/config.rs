//! The incident-response configuration (`config/incident-response.yaml`).
//!
//! Loading is two checks: the JSON Schema (`config/incident-response.schema.json`, compiled in),
//! whose errors name the offending path; then meaning: actions exist, triggers parse, every
//! severity reaches a playbook, weights sum to 1, thresholds are ordered, and a destructive step
//! in enforce mode has an approval gate unless explicitly allowed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::duration::ConfigDuration;
use crate::error::{ErrorName, Named};
use crate::event::ResourceKind;
use crate::playbook::{self, Trigger};
use crate::severity::Severity;

/// The JSON Schema the configuration is validated against.
pub const SCHEMA_JSON: &str = include_str!("../../../config/incident-response.schema.json");
/// The configuration compiled into every binary: the embedded default.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../../config/incident-response.yaml");
/// The asset registry that goes with the embedded default (the sample environment of `events/`).
pub const DEFAULT_ASSETS_YAML: &str = include_str!("../../../config/assets.yaml");
/// The threat-intelligence list that goes with the embedded default.
pub const DEFAULT_THREAT_INTEL: &str = include_str!("../../../config/threat-intel.txt");

/// One problem found in a configuration, at a JSON-pointer path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    #[error("config is invalid: {}", join(.0))]
    Invalid(Vec<Problem>),
    #[error("config schema does not compile: {0}")]
    Schema(String),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Named for ConfigError {
    fn error_name(&self) -> ErrorName {
        ErrorName::Configuration
    }
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub orchestrator: Orchestrator,
    pub triage: TriageConfig,
    pub playbooks: Vec<PlaybookConfig>,
    pub notifications: Notifications,
    #[serde(default)]
    pub evidence: EvidenceConfig,
    #[serde(default)]
    pub protection: Protection,
    /// Regulatory notification deadlines by data classification, and their reminders.
    #[serde(default)]
    pub regulatory: Regulatory,
    /// A summary of the open incidents for leadership, every so often.
    #[serde(default)]
    pub leadership_summary: Option<LeadershipSummary>,
    #[serde(default)]
    pub post_incident_review: PostIncidentReview,
    /// The accounts whose resources the suite may act on, and the role it assumes in each.
    #[serde(default)]
    pub accounts: crate::accounts::Accounts,
}

/// Regulatory regimes: an incident on an asset of one of a regime's data classifications must
/// be notified within the regime's deadline, counted from detection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Regulatory {
    /// Where reminders and breaches go (the legal/compliance channel).
    #[serde(default)]
    pub channel: Option<String>,
    /// Remind when this fraction of the time is left (each in (0, 1)), e.g. 0.5 and 0.1.
    #[serde(default)]
    pub reminders: Vec<f64>,
    #[serde(default)]
    pub regimes: Vec<Regime>,
}

/// One regulatory regime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regime {
    /// Short and stable (`gdpr`): it names the deadline everywhere.
    pub id: String,
    /// What responders read (`GDPR Art. 33: notify the supervisory authority`).
    pub name: String,
    pub deadline: ConfigDuration,
    /// The asset data classifications (asset registry, else the resource's tag) it covers.
    pub data_classifications: Vec<String>,
}

/// The leadership summary: scope, impact, containment status and estimated resolution of every
/// open incident, to a channel, every `every` while any incident is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadershipSummary {
    pub channel: String,
    pub every: ConfigDuration,
}

/// The post-incident review (`post_incident_review`): when it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostIncidentReview {
    /// The review is held this many days after the incident was resolved (1 to 30; the seed
    /// says 3 to 5), unless `ir review open --date` names the day.
    #[serde(default = "d_after_days")]
    pub after_days: u32,
}

/// The shortest and longest wait, in days, before a post-incident review.
pub const REVIEW_AFTER_DAYS: std::ops::RangeInclusive<u32> = 1..=30;

fn d_after_days() -> u32 {
    3
}

impl Default for PostIncidentReview {
    fn default() -> Self {
        PostIncidentReview {
            after_days: d_after_days(),
        }
    }
}

/// Evidence collection settings (bucket names come from the deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceConfig {
    #[serde(default = "d_lock_mode")]
    pub object_lock_mode: String,
    #[serde(default = "d_retention")]
    pub retention_days: u32,
    #[serde(default = "d_before")]
    pub cloudtrail_window_before: ConfigDuration,
    #[serde(default = "d_after")]
    pub cloudtrail_window_after: ConfigDuration,
    #[serde(default = "d_max_objects")]
    pub max_log_objects: u32,
}

fn d_lock_mode() -> String {
    "COMPLIANCE".into()
}
fn d_retention() -> u32 {
    365
}
fn d_before() -> ConfigDuration {
    ConfigDuration::from_secs(3600)
}
fn d_after() -> ConfigDuration {
    ConfigDuration::from_secs(900)
}
fn d_max_objects() -> u32 {
    2000
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            object_lock_mode: d_lock_mode(),
            retention_days: d_retention(),
            cloudtrail_window_before: d_before(),
            cloudtrail_window_after: d_after(),
            max_log_objects: d_max_objects(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Orchestrator {
    pub dry_run_default: bool,
    /// At most this many playbook executions run at once; the others are `queued`.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_playbooks: u32,
    /// How often a queued incident's triage asks for a slot again.
    #[serde(default = "default_queue_poll")]
    pub queue_poll_seconds: u32,
    #[serde(default)]
    pub allow_unapproved_destructive: bool,
}

fn default_max_concurrent() -> u32 {
    10
}

fn default_queue_poll() -> u32 {
    30
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriageConfig {
    #[serde(default)]
    pub enrichment_sources: Vec<EnrichmentSource>,
    #[serde(default)]
    pub defaults: AssetDefaults,
    pub scoring: Scoring,
    pub response_sla: BTreeMap<Severity, Sla>,
    /// How long an `immediate` response may take before the SLA counts as breached.
    #[serde(default = "default_immediate_window")]
    pub immediate_window: ConfigDuration,
}

fn default_immediate_window() -> ConfigDuration {
    ConfigDuration::from_secs(15 * 60)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EnrichmentSource {
    ResourceTags,
    AssetRegistry { path: String },
    ThreatIntel { path: String },
    IncidentHistory,
}

/// What an unknown asset is taken to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetDefaults {
    #[serde(default = "d_owner")]
    pub owner: String,
    #[serde(default = "d_environment")]
    pub environment: String,
    #[serde(default = "d_criticality")]
    pub criticality: Severity,
    #[serde(default = "d_classification")]
    pub data_classification: String,
}

fn d_owner() -> String {
    "unassigned".into()
}
fn d_environment() -> String {
    "unknown".into()
}
fn d_criticality() -> Severity {
    Severity::Medium
}
fn d_classification() -> String {
    "unclassified".into()
}

impl Default for AssetDefaults {
    fn default() -> Self {
        AssetDefaults {
            owner: d_owner(),
            environment: d_environment(),
            criticality: d_criticality(),
            data_classification: d_classification(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub severity: f64,
    pub asset_criticality: f64,
    pub historical_frequency: f64,
    pub threat_score: f64,
}

impl Weights {
    pub fn sum(&self) -> f64 {
        self.severity + self.asset_criticality + self.historical_frequency + self.threat_score
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub critical: f64,
    pub high: f64,
    pub medium: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scoring {
    pub weights: Weights,
    pub thresholds: Thresholds,
    #[serde(default = "default_saturation")]
    pub historical_saturation: u32,
}

fn default_saturation() -> u32 {
    5
}

/// A response-time target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sla {
    Immediate,
    Within(ConfigDuration),
    NextBusinessDay,
}

impl fmt::Display for Sla {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sla::Immediate => f.write_str("immediate"),
            Sla::Within(d) => write!(f, "{d}"),
            Sla::NextBusinessDay => f.write_str("next_business_day"),
        }
    }
}

impl Serialize for Sla {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sla {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "immediate" => Ok(Sla::Immediate),
            "next_business_day" => Ok(Sla::NextBusinessDay),
            other => other
                .parse()
                .map(Sla::Within)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaybookConfig {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(with = "trigger_text")]
    pub trigger: Trigger,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default = "yes")]
    pub dry_run_supported: bool,
    #[serde(default)]
    pub allow_unapproved_destructive: bool,
    pub steps: Vec<StepConfig>,
}

fn yes() -> bool {
    true
}

mod trigger_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::playbook::Trigger;

    pub fn serialize<S: Serializer>(t: &Trigger, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Trigger, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepConfig {
    pub id: String,
    pub action: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub requires_approval: bool,
    #[serde(default)]
    pub applies_to: Option<Vec<ResourceKind>>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub retention: Option<ConfigDuration>,
    /// How many different people must approve this gated step (wins over
    /// `notifications.approvals_required`).
    #[serde(default)]
    pub approvals_required: Option<u32>,
    /// What the playbook does when the step fails after its retries (default: stop for a
    /// destructive step, continue for the others).
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
}

/// What a playbook does when a step fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Record the failure and go on with the next step.
    Continue,
    /// Record the failure, stop the playbook, and leave the incident `needs-attention` until a
    /// responder retries the step (`ir retry`) or resolves the incident.
    Stop,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Continue => "continue",
            OnFailure::Stop => "stop",
        }
    }

    /// `continue`, which a recorded plan leaves unsaid: plans recorded before the choice
    /// existed read and write back byte for byte, and mean what they did then.
    pub fn is_continue(&self) -> bool {
        *self == OnFailure::Continue
    }

    /// The default of a step: a half-done containment is not carried on from silently.
    pub fn default_for(destructive: bool) -> OnFailure {
        if destructive {
            OnFailure::Stop
        } else {
            OnFailure::Continue
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notifications {
    #[serde(default)]
    pub escalation_matrix: BTreeMap<Severity, Vec<Escalation>>,
    #[serde(default = "default_exhausted")]
    pub on_escalation_exhausted: OnExhausted,
    /// Who holds each escalation role, lowest role first. At an escalation level, only the
    /// level's role or a role listed after it may decide. Empty: nobody can decide, so every
    /// gate ends as its escalation matrix runs out.
    #[serde(default)]
    pub approver_roles: Vec<ApproverRole>,
    /// How many different people must approve a gated step, by incident severity (1 when the
    /// severity is not listed); a step's own `approvals_required` wins.
    #[serde(default)]
    pub approvals_required: BTreeMap<Severity, u32>,
    /// The person who asked for an approval cannot decide it (on by default).
    #[serde(default = "yes")]
    pub two_person_rule: bool,
    /// Slack user id → the identity (an assumed-role session or IAM user ARN) a decision made
    /// with Slack's buttons is made as. A Slack user not listed cannot decide.
    #[serde(default)]
    pub slack_approvers: BTreeMap<String, String>,
    /// Where an incident's updates go as they happen when its playbook has no
    /// `slack:post_message` step (that step's channel wins).
    #[serde(default)]
    pub updates_channel: Option<String>,
    /// Where approval requests (with Approve/Reject buttons) go; unset: the incident's channel.
    #[serde(default)]
    pub approvals_channel: Option<String>,
}

/// An escalation role and the identities that hold it.
///
/// An identity is an IAM role ARN (every session of the role: each session name is a person),
/// an IAM user ARN, or one assumed-role session ARN (`arn:aws:sts::ACCT:assumed-role/ROLE/NAME`:
/// only that person in that role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverRole {
    pub role: String,
    pub identities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub role: String,
    pub timeout: ConfigDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    Reject,
    Approve,
}

fn default_exhausted() -> OnExhausted {
    OnExhausted::Reject
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Protection {
    /// Principals no action may touch, by ARN or name (`protection.principals`).
    #[serde(default)]
    pub principals: Vec<String>,
    /// The suite's own roles, by exact ARN: never from the config file, set at init from the
    /// deployment (`IR_SUITE_PRINCIPALS`, see `ir_env::protection`).
    #[serde(skip)]
    pub suite_principals: Vec<String>,
}

/// Keys the seed's config template has that the suite does not take, each with why, so a
/// copied template is told what to do rather than only that a key is unexpected.
const RETIRED_KEYS: [(&str, &str, &str); 2] = [
    (
        "orchestrator",
        "audit_store",
        "the audit chain is the suite's DynamoDB audit table, anchored in the Object Lock evidence bucket; the deployment names both (template.yaml): remove this key",
    ),
    (
        "orchestrator",
        "state_backend",
        "incident state is the suite's DynamoDB incidents table, named by the deployment (template.yaml): remove this key",
    ),
];

fn retired_keys(value: &serde_json::Value) -> Vec<Problem> {
    RETIRED_KEYS
        .iter()
        .filter(|(section, key, _)| value.get(section).and_then(|s| s.get(key)).is_some())
        .map(|(section, key, why)| Problem {
            path: format!("/{section}/{key}"),
            message: format!("`{key}` is not a setting of this suite: {why}"),
        })
        .collect()
}

impl Config {
    /// The embedded default configuration: parsed and checked for meaning. The build refuses an
    /// embedded config its schema refuses (`build.rs`), so the schema pass — most of a cold
    /// start's config cost — is not repeated here.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG_YAML, false)
    }

    /// Parses, validates against the schema, and checks the meaning of a YAML configuration.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, true)
    }

    /// Validates against the schema and checks the meaning of a configuration already parsed
    /// (a deployment's text with its overlay applied): what [`Config::from_yaml`] does after
    /// parsing, with the same error paths.
    pub fn from_value(value: serde_json::Value) -> Result<Config, ConfigError> {
        Config::checked(value, true)
    }

    fn parse(text: &str, against_schema: bool) -> Result<Config, ConfigError> {
        let value: serde_json::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        Config::checked(value, against_schema)
    }

    fn checked(value: serde_json::Value, against_schema: bool) -> Result<Config, ConfigError> {
        if against_schema {
            let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON)
                .map_err(|e| ConfigError::Schema(e.to_string()))?;
            let validator = jsonschema::validator_for(&schema)
                .map_err(|e| ConfigError::Schema(e.to_string()))?;
            let mut problems: Vec<Problem> = retired_keys(&value);
            problems.extend(validator.iter_errors(&value).map(|e| Problem {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            }));
            if !problems.is_empty() {
                return Err(ConfigError::Invalid(problems));
            }
        }
        let config: Config = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e
                .path()
                .to_string()
                .replace(['.', '['], "/")
                .replace(']', "");
            ConfigError::Invalid(vec![Problem {
                path: format!("/{path}"),
                message: e.into_inner().to_string(),
            }])
        })?;
        let problems = config.check();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The checks of meaning the schema cannot express.
    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |path: String, message: String| out.push(Problem { path, message });
        let w = &self.triage.scoring.weights;
        if (w.sum() - 1.0).abs() > 1e-6 {
            problem(
                "/triage/scoring/weights".into(),
                format!("weights must sum to 1.0, they sum to {}", w.sum()),
            );
        }
        let t = &self.triage.scoring.thresholds;
        if !(t.critical > t.high && t.high > t.medium) {
            problem(
                "/triage/scoring/thresholds".into(),
                format!(
                    "thresholds must satisfy critical > high > medium (got {}, {}, {})",
                    t.critical, t.high, t.medium
                ),
            );
        }
        for s in Severity::ALL {
            if !self.playbooks.iter().any(|p| p.trigger.matches(s)) {
                problem(
                    "/playbooks".into(),
                    format!("no playbook's trigger matches severity {s}"),
                );
            }
        }
        for (i, p) in self.playbooks.iter().enumerate() {
            if self.playbooks[..i].iter().any(|q| q.id == p.id) {
                problem(
                    format!("/playbooks/{i}/id"),
                    format!("duplicate playbook id `{}`", p.id),
                );
            }
            let mode = p.mode.unwrap_or(if self.orchestrator.dry_run_default {
                Mode::DryRun
            } else {
                Mode::Enforce
            });
            if mode == Mode::DryRun && !p.dry_run_supported {
                problem(
                    format!("/playbooks/{i}"),
                    format!(
                        "playbook `{}` does not support dry-run but its mode is dry-run; set `mode: enforce` explicitly",
                        p.id
                    ),
                );
            }
            if p.steps.iter().any(|s| s.requires_approval) {
                for s in Severity::ALL {
                    if p.trigger.matches(s) && self.escalation(s).is_empty() {
                        problem(
                            format!("/playbooks/{i}/trigger"),
                            format!(
                                "playbook `{}` has approval gates and its trigger matches severity {s}, which has no notifications.escalation_matrix row: nobody would be asked to approve",
                                p.id
                            ),
                        );
                    }
                }
            }
            let allow =
                p.allow_unapproved_destructive || self.orchestrator.allow_unapproved_destructive;
            for (j, s) in p.steps.iter().enumerate() {
                let at = format!("/playbooks/{i}/steps/{j}");
                if p.steps[..j]
                    .iter()
                    .any(|q| playbook::step_key(&q.id) == playbook::step_key(&s.id))
                {
                    problem(
                        format!("{at}/id"),
                        format!("duplicate step id `{}` in playbook `{}`", s.id, p.id),
                    );
                }
                match playbook::action(&s.action) {
                    None => {
                        let known: Vec<&str> = playbook::ACTIONS.iter().map(|a| a.id).collect();
                        problem(
                            format!("{at}/action"),
                            format!(
                                "unknown action `{}` (known: {})",
                                s.action,
                                known.join(", ")
                            ),
                        );
                    }
                    Some(spec) => {
                        if s.approvals_required.is_some() && !s.requires_approval {
                            problem(
                                format!("{at}/approvals_required"),
                                format!(
                                    "step `{}` counts approvals but has no approval gate; set requires_approval: true",
                                    s.id
                                ),
                            );
                        }
                        if spec.gated && !s.requires_approval {
                            problem(
                                format!("{at}/requires_approval"),
                                format!(
                                    "action `{}` runs only behind an approval gate, in every mode; set requires_approval: true",
                                    s.action
                                ),
                            );
                        } else if spec.destructive
                            && mode == Mode::Enforce
                            && !s.requires_approval
                            && !allow
                        {
                            problem(
                                format!("{at}/requires_approval"),
                                format!(
                                    "destructive action `{}` runs in enforce mode without an approval gate; set requires_approval: true or allow_unapproved_destructive: true",
                                    s.action
                                ),
                            );
                        }
                        if let Some(only) = &s.applies_to
                            && let Some(k) = only.iter().find(|k| !spec.applies_to.contains(k))
                        {
                            problem(
                                format!("{at}/applies_to"),
                                format!("action `{}` cannot act on {k}", s.action),
                            );
                        }
                    }
                }
            }
        }
        self.check_roles(&mut problem);
        self.check_clocks(&mut problem);
        let after = self.post_incident_review.after_days;
        if !REVIEW_AFTER_DAYS.contains(&after) {
            problem(
                "/post_incident_review/after_days".into(),
                format!(
                    "the review is held {} to {} days after resolution, not {after}",
                    REVIEW_AFTER_DAYS.start(),
                    REVIEW_AFTER_DAYS.end()
                ),
            );
        }
        out
    }

    /// Regimes named once, with a deadline and a classification; reminders inside the clock.
    fn check_clocks(&self, problem: &mut impl FnMut(String, String)) {
        let r = &self.regulatory;
        for (i, f) in r.reminders.iter().enumerate() {
            if !(*f > 0.0 && *f < 1.0) {
                problem(
                    format!("/regulatory/reminders/{i}"),
                    format!("{f} is not a fraction of the time left between 0 and 1"),
                );
            }
        }
        for (i, g) in r.regimes.iter().enumerate() {
            if r.regimes[..i].iter().any(|h| h.id == g.id) {
                problem(
                    format!("/regulatory/regimes/{i}/id"),
                    format!("regime `{}` is listed twice", g.id),
                );
            }
            if g.deadline.as_secs() == 0 {
                problem(
                    format!("/regulatory/regimes/{i}/deadline"),
                    "a deadline must be longer than 0s".to_owned(),
                );
            }
        }
        if !r.regimes.is_empty() && r.channel.is_none() {
            problem(
                "/regulatory/channel".to_owned(),
                "regimes need a channel for their reminders".to_owned(),
            );
        }
        if let Some(l) = &self.leadership_summary
            && l.every.as_secs() < 15 * 60
        {
            problem(
                "/leadership_summary/every".to_owned(),
                format!("{} is more often than every 15m", l.every),
            );
        }
    }

    /// Every role the escalation matrix names is held by someone, once.
    fn check_roles(&self, problem: &mut impl FnMut(String, String)) {
        let roles = &self.notifications.approver_roles;
        for (i, r) in roles.iter().enumerate() {
            if roles[..i].iter().any(|q| q.role == r.role) {
                problem(
                    format!("/notifications/approver_roles/{i}/role"),
                    format!("role `{}` is listed twice", r.role),
                );
            }
        }
        if roles.is_empty() {
            // Nobody can decide: every gate runs out (the documented meaning of an empty list).
            return;
        }
        for (s, levels) in &self.notifications.escalation_matrix {
            for (i, level) in levels.iter().enumerate() {
                if !roles.iter().any(|r| r.role == level.role) {
                    problem(
                        format!("/notifications/escalation_matrix/{s}/{i}/role"),
                        format!(
                            "role `{}` is held by nobody: list it in notifications.approver_roles",
                            level.role
                        ),
                    );
                }
            }
        }
    }

    /// How many different people must approve a gated step of an incident of severity `s`.
    pub fn approvals_required(&self, step: &StepConfig, s: Severity) -> u32 {
        step.approvals_required
            .or_else(|| self.notifications.approvals_required.get(&s).copied())
            .unwrap_or(1)
            .max(1)
    }

    /// The escalation chain for a severity (empty when the matrix has none).
    pub fn escalation(&self, s: Severity) -> &[Escalation] {
        self.notifications
            .escalation_matrix
            .get(&s)
            .map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        match Config::from_yaml(yaml) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn with(from: &str, to: &str) -> String {
        assert!(
            DEFAULT_CONFIG_YAML.contains(from),
            "fixture text `{from}` not in the default config"
        );
        DEFAULT_CONFIG_YAML.replacen(from, to, 1)
    }

    #[test]
    fn the_embedded_default_passes_the_schema_and_loads_the_same_without_it() {
        // What build.rs checks at build time, checked here too; skipping the schema pass for the
        // embedded text changes nothing in what is loaded.
        let checked = Config::from_yaml(DEFAULT_CONFIG_YAML).unwrap();
        let embedded = Config::embedded().unwrap();
        assert_eq!(
            serde_json::to_value(&checked).unwrap(),
            serde_json::to_value(&embedded).unwrap()
        );
        // And a file's text is held to the schema: a field the schema forbids is refused.
        let extra = format!("{DEFAULT_CONFIG_YAML}\nunknown_field: 1\n");
        let refused = Config::from_yaml(&extra).unwrap_err().to_string();
        assert!(refused.contains("unknown_field"), "{refused}");
        assert!(Config::parse(&extra, false).is_ok());
    }

    #[test]
    fn the_embedded_default_is_valid_and_routes_like_the_seed() {
        let c = Config::embedded().unwrap();
        assert_eq!(
            c.triage.scoring.weights,
            Weights {
                severity: 0.4,
                asset_criticality: 0.3,
                historical_frequency: 0.2,
                threat_score: 0.1
            }
        );
        assert_eq!(
            c.triage.scoring.thresholds,
            Thresholds {
                critical: 0.8,
                high: 0.5,
                medium: 0.2
            }
        );
        assert_eq!(
            playbook::select(&c, Severity::Critical).unwrap().id,
            "immediate-isolation"
        );
        assert_eq!(
            playbook::select(&c, Severity::High).unwrap().id,
            "investigate-and-notify"
        );
        assert_eq!(
            playbook::select(&c, Severity::Medium).unwrap().id,
            "queue-for-review"
        );
        assert_eq!(
            playbook::select(&c, Severity::Low).unwrap().id,
            "queue-for-review"
        );
        assert!(c.orchestrator.dry_run_default);
        assert_eq!(c.escalation(Severity::Critical).len(), 2);
        assert_eq!(c.escalation(Severity::Critical)[0].timeout.as_secs(), 300);
    }

    #[test]
    fn schema_errors_name_the_path() {
        let p = problems(&with(
            "        action: cloud:snapshot_volumes",
            "        action: Snapshot Volumes",
        ));
        assert!(
            p.iter().any(|p| p.path == "/playbooks/0/steps/1/action"),
            "{p:?}"
        );
        let p = problems(&with("      severity: 0.4", "      severity: 1.4"));
        assert!(
            p.iter()
                .any(|p| p.path == "/triage/scoring/weights/severity"),
            "{p:?}"
        );
        let p = problems(&with("    high: 1h", "    high: soon"));
        assert!(
            p.iter().any(|p| p.path == "/triage/response_sla/high"),
            "{p:?}"
        );
        let p = problems(&with(
            "  dry_run_default: true",
            "  dry_run_default: true\n  dry_run_defualt: false",
        ));
        assert!(
            p.iter()
                .any(|p| p.path == "/orchestrator" && p.message.contains("dry_run_defualt")),
            "{p:?}"
        );
    }

    #[test]
    fn the_review_wait_is_one_to_thirty_days_and_says_where() {
        let c = Config::from_yaml(DEFAULT_CONFIG_YAML).unwrap();
        assert_eq!(c.post_incident_review.after_days, 3);
        // Absent: the default.
        let without = DEFAULT_CONFIG_YAML
            .split("\npost_incident_review:")
            .next()
            .unwrap();
        let c = Config::from_yaml(without).unwrap();
        assert_eq!(c.post_incident_review, PostIncidentReview::default());
        let c = Config::from_yaml(&with("  after_days: 3", "  after_days: 30")).unwrap();
        assert_eq!(c.post_incident_review.after_days, 30);
        for bad in ["0", "31", "-2", "three"] {
            let p = problems(&with("  after_days: 3", &format!("  after_days: {bad}")));
            assert!(
                p.iter()
                    .any(|p| p.path == "/post_incident_review/after_days"),
                "{bad}: {p:?}"
            );
        }
        let p = problems(&with(
            "  after_days: 3",
            "  after_days: 3\n  before_days: 1",
        ));
        assert!(
            p.iter()
                .any(|p| p.path == "/post_incident_review" && p.message.contains("before_days")),
            "{p:?}"
        );
        // Without the schema pass (the embedded config's path), the meaning check still refuses.
        let text = with("  after_days: 3", "  after_days: 45");
        let value: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let refused = Config::checked(value, false).unwrap_err();
        assert!(
            refused
                .problems()
                .iter()
                .any(|p| p.path == "/post_incident_review/after_days"
                    && p.message.contains("1 to 30")),
            "{refused}"
        );
    }

    #[test]
    fn meaning_errors_name_the_path() {
        let p = problems(&with(
            "action: cloud:snapshot_volumes",
            "action: cloud:snapshot_everything",
        ));
        assert!(
            p.iter()
                .any(|p| p.path == "/playbooks/0/steps/1/action"
                    && p.message.contains("unknown action")),
            "{p:?}"
        );
        let p = problems(&with("      severity: 0.4", "      severity: 0.5"));
        assert!(
            p.iter()
                .any(|p| p.path == "/triage/scoring/weights" && p.message.contains("sum")),
            "{p:?}"
        );
        let p = problems(&with(
            "trigger: severity <= medium",
            "trigger: severity == medium",
        ));
        assert!(
            p.iter().any(|p| p.message.contains("severity low")),
            "{p:?}"
        );
        let p = problems(&with(
            "trigger: severity == high",
            "trigger: severity == urgent",
        ));
        assert!(p.iter().any(|p| p.path == "/playbooks/1/trigger"), "{p:?}");
        let p = problems(&with("      medium: 0.2", "      medium: 0.6"));
        assert!(
            p.iter().any(|p| p.path == "/triage/scoring/thresholds"),
            "{p:?}"
        );
    }

    #[test]
    fn destructive_without_approval_in_enforce_mode_is_refused_unless_allowed() {
        let enforce = with("  dry_run_default: true", "  dry_run_default: false");
        assert!(
            Config::from_yaml(&enforce).is_ok(),
            "the default gates every destructive step"
        );
        let ungated = enforce.replacen(
            "      - id: isolate-instance\n        action: cloud:security_group_deny_all\n        requires_approval: true",
            "      - id: isolate-instance\n        action: cloud:security_group_deny_all",
            1,
        );
        assert_ne!(ungated, enforce);
        let p = problems(&ungated);
        assert!(
            p.iter()
                .any(|p| p.path == "/playbooks/0/steps/5/requires_approval"),
            "{p:?}"
        );
        let allowed = ungated.replacen(
            "allow_unapproved_destructive: false",
            "allow_unapproved_destructive: true",
            1,
        );
        assert!(Config::from_yaml(&allowed).is_ok());
        // In dry-run nothing is changed, so no gate is required.
        let dry = ungated.replacen("  dry_run_default: false", "  dry_run_default: true", 1);
        assert!(Config::from_yaml(&dry).is_ok());
    }

    #[test]
    fn a_termination_runs_only_behind_a_gate_in_every_mode() {
        let isolate = "      - id: isolate-instance\n        action: cloud:security_group_deny_all\n        requires_approval: true\n";
        let terminate =
            "      - id: terminate-instance\n        action: cloud:terminate_instance\n";
        let gated = with(
            isolate,
            &format!("{isolate}{terminate}        requires_approval: true\n"),
        );
        let mut c = Config::from_yaml(&gated).unwrap();
        assert_eq!(c.playbooks[0].steps[6].action, "cloud:terminate_instance");

        // Without the gate: the schema refuses it, and so does the check of meaning, in dry-run
        // (the default) and with allow_unapproved_destructive.
        let ungated = with(isolate, &format!("{isolate}{terminate}"));
        let p = problems(&ungated);
        assert!(
            p.iter().any(
                |p| p.path == "/playbooks/0/steps/6" && p.message.contains("requires_approval")
            ),
            "{p:?}"
        );
        let refused = problems(&with(
            isolate,
            &format!("{isolate}{terminate}        requires_approval: false\n"),
        ));
        assert!(
            refused
                .iter()
                .any(|p| p.path == "/playbooks/0/steps/6/requires_approval"),
            "{refused:?}"
        );
        let allowed = ungated.replacen(
            "allow_unapproved_destructive: false",
            "allow_unapproved_destructive: true",
            1,
        );
        match Config::parse(&allowed, false) {
            Err(ConfigError::Invalid(p)) => assert!(
                p.iter()
                    .any(|p| p.path == "/playbooks/0/steps/6/requires_approval"
                        && p.message.contains("in every mode")),
                "{p:?}"
            ),
            other => panic!("expected Invalid, got {other:?}"),
        }

        // A config that was not validated still plans the step gated, with its approvals.
        c.playbooks[0].steps[6].requires_approval = false;
        let instance: crate::event::Resource = serde_json::from_value(serde_json::json!({
            "type": "ec2-instance",
            "instanceId": "i-0a1b2c3d4e5f60001"
        }))
        .unwrap();
        let planned = playbook::plan(&c, &c.playbooks[0], &instance, Severity::Critical);
        let step = planned
            .steps
            .iter()
            .find(|s| s.id == "terminate-instance")
            .unwrap();
        assert!(step.requires_approval && step.destructive);
        assert_eq!(step.function, "ir-terminate-instance");
        assert_eq!(step.approvals_required, 2);
        // Not in any default playbook.
        let embedded = Config::embedded().unwrap();
        assert!(
            embedded
                .playbooks
                .iter()
                .flat_map(|p| &p.steps)
                .all(|s| s.action != "cloud:terminate_instance")
        );
    }

    #[test]
    fn a_gated_playbook_needs_an_escalation_row_for_every_severity_it_takes() {
        // immediate-isolation has gates; high has a row, medium has none.
        assert!(
            Config::from_yaml(&with(
                "trigger: severity == critical",
                "trigger: severity >= high"
            ))
            .is_ok()
        );
        let p = problems(&with(
            "trigger: severity == critical",
            "trigger: severity >= medium",
        ));
        assert!(
            p.iter().any(|p| p.path == "/playbooks/0/trigger"
                && p.message.contains("severity medium")
                && p.message.contains("escalation_matrix")),
            "{p:?}"
        );
        assert!(
            !p.iter().any(|p| p.message.contains("severity high")),
            "{p:?}"
        );
        // Playbooks without gates need no row (queue-for-review takes medium and low).
        let ungated = with(
            "trigger: severity == critical",
            "trigger: severity >= medium",
        )
        .replace("        requires_approval: true\n", "");
        assert!(Config::from_yaml(&ungated).is_ok());
    }

    #[test]
    fn approver_roles_hold_identities_and_every_matrix_role_is_held() {
        const ROLES: &str = "  approver_roles:\n    - role: security_engineer\n      identities:\n        - arn:aws:iam::111122223333:role/SecurityEngineer\n    - role: security_lead\n      identities:\n        - arn:aws:iam::111122223333:role/SecurityLead\n";
        const RULE: &str = "  two_person_rule: true\n";
        let c = Config::embedded().unwrap();
        let roles: Vec<(&str, Vec<&str>)> = c
            .notifications
            .approver_roles
            .iter()
            .map(|r| {
                (
                    r.role.as_str(),
                    r.identities.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            roles,
            [
                (
                    "security_engineer",
                    vec!["arn:aws:iam::111122223333:role/SecurityEngineer"]
                ),
                (
                    "security_lead",
                    vec!["arn:aws:iam::111122223333:role/SecurityLead"]
                )
            ]
        );
        assert!(c.notifications.two_person_rule);

        // Users, roles under a path, one person's session: all identities.
        let listed = with(
            ROLES,
            "  approver_roles:\n    - role: security_engineer\n      identities:\n        - arn:aws-us-gov:iam::111122223333:user/alice\n        - arn:aws:sts::111122223333:assumed-role/Oncall/bob@example.com\n    - role: security_lead\n      identities:\n        - arn:aws:iam::111122223333:role/teams/SecurityLead\n",
        )
        .replacen(RULE, "  two_person_rule: false\n", 1);
        let c = Config::from_yaml(&listed).unwrap();
        assert_eq!(c.notifications.approver_roles[0].identities.len(), 2);
        assert!(!c.notifications.two_person_rule);

        // Absent: nobody is an approver, and the rule stays on.
        let c = Config::from_yaml(&with(ROLES, "").replacen(RULE, "", 1)).unwrap();
        assert!(c.notifications.approver_roles.is_empty());
        assert!(c.notifications.two_person_rule);

        for bad in [
            "SecurityLead",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::1111:role/SecurityLead",
            "arn:aws:iam::111122223333:group/Security",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:sts::111122223333:assumed-role/SecurityLead",
            "arn:aws:sts::111122223333:federated-user/alice",
        ] {
            let p = problems(&with(
                ROLES,
                &format!(
                    "  approver_roles:\n    - role: security_engineer\n      identities: [\"{bad}\"]\n    - role: security_lead\n      identities: [\"arn:aws:iam::111122223333:role/SecurityLead\"]\n"
                ),
            ));
            assert!(
                p.iter()
                    .any(|p| p.path == "/notifications/approver_roles/0/identities/0"),
                "{bad}: {p:?}"
            );
        }
        // A role the matrix names that nobody holds; a role listed twice.
        let p = problems(&with(
            ROLES,
            "  approver_roles:\n    - role: security_engineer\n      identities: [\"arn:aws:iam::111122223333:role/SecurityEngineer\"]\n    - role: security_engineer\n      identities: [\"arn:aws:iam::111122223333:role/SecurityLead\"]\n",
        ));
        assert!(
            p.iter().any(
                |p| p.path == "/notifications/escalation_matrix/critical/1/role"
                    && p.message.contains("security_lead")
            ),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.path == "/notifications/approver_roles/1/role"),
            "{p:?}"
        );
        let p = problems(&with(RULE, "  two_person_rule: sometimes\n"));
        assert!(
            p.iter().any(|p| p.path == "/notifications/two_person_rule"),
            "{p:?}"
        );
    }

    #[test]
    fn the_seed_templates_storage_keys_are_refused_with_what_to_do() {
        let p = problems(&with(
            "  max_concurrent_playbooks: 10\n",
            "  max_concurrent_playbooks: 10\n  audit_store: s3://ir-audit-logs/\n  state_backend: dynamodb://incident-state\n",
        ));
        for key in ["audit_store", "state_backend"] {
            assert!(
                p.iter().any(|p| p.path == format!("/orchestrator/{key}")
                    && p.message.contains("remove this key")),
                "{key}: {p:?}"
            );
        }
    }

    #[test]
    fn approvals_required_by_severity_and_by_step() {
        let c = Config::embedded().unwrap();
        let isolation = &c.playbooks[0];
        let gated = isolation
            .steps
            .iter()
            .find(|s| s.requires_approval)
            .unwrap();
        assert_eq!(c.approvals_required(gated, Severity::Critical), 2);
        assert_eq!(c.approvals_required(gated, Severity::High), 1);
        let three = with(
            "        action: cloud:security_group_deny_all\n        requires_approval: true\n",
            "        action: cloud:security_group_deny_all\n        requires_approval: true\n        approvals_required: 3\n",
        );
        let c = Config::from_yaml(&three).unwrap();
        let step = c.playbooks[0]
            .steps
            .iter()
            .find(|s| s.id == "isolate-instance")
            .unwrap();
        assert_eq!(c.approvals_required(step, Severity::Critical), 3);
        // Counting approvals of a step nobody approves is a mistake, said where it is.
        let ungated = with(
            "        action: cloud:collect_evidence\n",
            "        action: cloud:collect_evidence\n        approvals_required: 2\n",
        );
        let p = problems(&ungated);
        assert!(
            p.iter()
                .any(|p| p.path == "/playbooks/0/steps/0/approvals_required"),
            "{p:?}"
        );
        for bad in ["0", "11", "two"] {
            let p = problems(&with(
                "    critical: 2\n",
                &format!("    critical: {bad}\n"),
            ));
            assert!(
                p.iter()
                    .any(|p| p.path == "/notifications/approvals_required/critical"),
                "{bad}: {p:?}"
            );
        }
    }

    #[test]
    fn not_yaml_is_reported() {
        assert!(matches!(
            Config::from_yaml("orchestrator: [unclosed"),
            Err(ConfigError::Yaml(_))
        ));
    }
}
