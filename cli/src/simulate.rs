//! `ir simulate`: the whole triage of one event, offline, mutating nothing.

use std::io::Write;
use std::path::PathBuf;

use ir_core::config::{Config, DEFAULT_ASSETS_YAML, DEFAULT_CONFIG_YAML, DEFAULT_THREAT_INTEL};
use ir_core::contracts::IngestOutput;
use ir_core::enrich::{AssetRegistry, Enrichment, Origin, ThreatIntel};
use ir_core::event::{Resource, SecurityEvent, Skipped};
use ir_core::playbook::{NotApplicable, PlannedStep, ResourcePlan};
use ir_core::score::Components;
use ir_core::{Decision, Engine};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{CliError, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An EventBridge event as delivered (GuardDuty Finding, or Security Hub Findings - Imported).
    event_file: PathBuf,
    /// The incident-response config (default: the embedded config/incident-response.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The asset registry YAML (default: the embedded config/assets.yaml).
    #[arg(long)]
    assets: Option<PathBuf>,
    /// The threat-intel list (default: the embedded config/threat-intel.txt).
    #[arg(long)]
    intel: Option<PathBuf>,
    /// Earlier incidents on the resource, as the incident store would report them.
    #[arg(long, default_value_t = 0)]
    history: u32,
    /// Print exactly one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

fn text(bytes: Vec<u8>, what: &str) -> Result<String, CliError> {
    String::from_utf8(bytes).map_err(|_| CliError::Invalid(format!("{what} is not UTF-8 text")))
}

fn engine(args: &Args) -> Result<Engine, CliError> {
    let config_text = match &args.config {
        Some(p) => text(read_input(p, "config")?, "config")?,
        None => DEFAULT_CONFIG_YAML.to_owned(),
    };
    let config = Config::from_yaml(&config_text).map_err(|e| CliError::Invalid(e.to_string()))?;
    let assets = match &args.assets {
        Some(p) => text(read_input(p, "asset registry")?, "asset registry")?,
        None => DEFAULT_ASSETS_YAML.to_owned(),
    };
    let registry =
        AssetRegistry::from_yaml(&assets).map_err(|e| CliError::Invalid(e.to_string()))?;
    let intel = match &args.intel {
        Some(p) => text(read_input(p, "threat intel")?, "threat intel")?,
        None => DEFAULT_THREAT_INTEL.to_owned(),
    };
    let intel = ThreatIntel::parse(&intel).map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(Engine::new(config, registry, intel))
}

/// One incident of the simulation.
struct Triaged {
    events: Vec<SecurityEvent>,
    enrichment: Enrichment,
    decision: Decision,
}

pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    let engine = engine(args)?;
    let bytes = read_input(&args.event_file, "event file")?;
    let normalized = ir_core::normalize(&bytes)
        .map_err(|e| CliError::Invalid(format!("{}: {e}", args.event_file.display())))?;
    let ingest = IngestOutput::from_normalized(normalized, OffsetDateTime::now_utc());
    let mut incidents = Vec::new();
    for input in ingest.incidents {
        let enrichment = engine.enrich(&input.events, args.history);
        let decision = engine
            .decide(
                &input.incident_id,
                &input.events,
                &enrichment,
                input.detected_at,
            )
            .map_err(|e| CliError::Failed(e.to_string()))?;
        incidents.push(Triaged {
            events: input.events,
            enrichment,
            decision,
        });
    }
    // The primary incident: the most severe, then the highest score, then the first.
    let primary = incidents
        .iter()
        .enumerate()
        .max_by(|(ia, a), (ib, b)| {
            (a.decision.severity, a.decision.score.score)
                .partial_cmp(&(b.decision.severity, b.decision.score.score))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(ib.cmp(ia))
        })
        .map(|(i, _)| i);
    let write =
        |r: std::io::Result<()>| r.map_err(|e| CliError::Failed(format!("writing output: {e}")));
    if args.json {
        let report = Report::new(&incidents, primary, &ingest.skipped);
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| CliError::Failed(e.to_string()))?;
        write(writeln!(out, "{json}"))
    } else {
        write(summary(
            out,
            &args.event_file,
            &incidents,
            primary,
            &ingest.skipped,
        ))
    }
}

#[derive(Serialize)]
struct Report<'a> {
    dry_run: bool,
    incident_id: Option<&'a str>,
    severity: Option<&'a str>,
    score: Option<f64>,
    score_breakdown: Option<Breakdown>,
    playbook: Option<&'a str>,
    mode: Option<&'a str>,
    steps: Vec<Step<'a>>,
    not_applicable: &'a [NotApplicable],
    /// The plan for each other resource the findings name (an attack sequence's): planned for
    /// a responder, never run by the playbook.
    resource_plans: &'a [ResourcePlan],
    sla: Option<Sla<'a>>,
    enrichment: Option<&'a Enrichment>,
    events: Vec<Event<'a>>,
    skipped: Vec<Skip<'a>>,
    incidents: Vec<IncidentSummary<'a>>,
}

#[derive(Serialize)]
struct Breakdown {
    components: Parts,
    weights: Parts,
    contributions: Parts,
    finding_severity: &'static str,
    score_severity: &'static str,
}

#[derive(Serialize)]
struct Parts {
    severity: f64,
    asset_criticality: f64,
    historical_frequency: f64,
    threat_score: f64,
}

impl From<Components> for Parts {
    fn from(c: Components) -> Parts {
        Parts {
            severity: c.severity,
            asset_criticality: c.asset_criticality,
            historical_frequency: c.historical_frequency,
            threat_score: c.threat_score,
        }
    }
}

#[derive(Serialize)]
struct Step<'a> {
    id: &'a str,
    action: &'a str,
    function: &'a str,
    requires_approval: bool,
    destructive: bool,
    target: &'a str,
}

impl<'a> From<&'a PlannedStep> for Step<'a> {
    fn from(s: &'a PlannedStep) -> Step<'a> {
        Step {
            id: &s.id,
            action: &s.action,
            function: &s.function,
            requires_approval: s.requires_approval,
            destructive: s.destructive,
            target: &s.target,
        }
    }
}

#[derive(Serialize)]
struct Sla<'a> {
    target: &'a str,
    description: &'a str,
    respond_by: String,
}

#[derive(Serialize)]
struct ResourceView<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
}

#[derive(Serialize)]
struct Event<'a> {
    finding_id: &'a str,
    incident_id: &'a str,
    source: &'static str,
    product: &'a str,
    finding_type: &'a str,
    severity: &'static str,
    severity_value: Option<f64>,
    title: &'a str,
    resource: ResourceView<'a>,
    account: &'a str,
    region: &'a str,
    count: u64,
    sample: bool,
    indicators: Vec<&'a str>,
    /// `account/kind/id` of every other resource the finding names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_resources: Vec<String>,
    /// The GuardDuty findings the finding is made of (an attack sequence's signals).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    signal_keys: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

#[derive(Serialize)]
struct Skip<'a> {
    finding_id: &'a str,
    code: &'a ir_core::event::SkipCode,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_id: Option<&'a str>,
}

#[derive(Serialize)]
struct IncidentSummary<'a> {
    incident_id: &'a str,
    severity: &'static str,
    score: f64,
    playbook: &'a str,
    resource: ResourceView<'a>,
    findings: Vec<&'a str>,
    steps: Vec<Step<'a>>,
}

fn resource_view(r: &Resource) -> ResourceView<'_> {
    ResourceView {
        kind: r.kind().as_str(),
        id: r.id(),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl<'a> Report<'a> {
    fn new(incidents: &'a [Triaged], primary: Option<usize>, skipped: &'a [Skipped]) -> Report<'a> {
        let p = primary.and_then(|i| incidents.get(i));
        let d = p.map(|t| &t.decision);
        Report {
            dry_run: true,
            incident_id: d.map(|d| d.incident_id.as_str()),
            severity: d.map(|d| d.severity.as_str()),
            score: d.map(|d| d.score.score),
            score_breakdown: d.map(|d| Breakdown {
                components: d.score.components.into(),
                weights: Parts {
                    severity: d.score.weights.severity,
                    asset_criticality: d.score.weights.asset_criticality,
                    historical_frequency: d.score.weights.historical_frequency,
                    threat_score: d.score.weights.threat_score,
                },
                contributions: d.score.contributions.into(),
                finding_severity: d.finding_severity.as_str(),
                score_severity: d.score.score_severity.as_str(),
            }),
            playbook: d.map(|d| d.playbook.id.as_str()),
            mode: d.map(|d| d.playbook.mode.as_str()),
            steps: d
                .map(|d| d.playbook.steps.iter().map(Step::from).collect())
                .unwrap_or_default(),
            not_applicable: d.map_or(&[], |d| d.playbook.not_applicable.as_slice()),
            resource_plans: d.map_or(&[], |d| d.resource_plans.as_slice()),
            sla: d.map(|d| Sla {
                target: &d.sla.target,
                description: &d.sla.description,
                respond_by: rfc3339(d.sla.respond_by),
            }),
            enrichment: p.map(|t| &t.enrichment),
            events: incidents
                .iter()
                .flat_map(|t| {
                    t.events
                        .iter()
                        .map(move |e| (t.decision.incident_id.as_str(), e))
                })
                .map(|(incident_id, e)| Event {
                    finding_id: &e.finding_id,
                    incident_id,
                    source: e.source.as_str(),
                    product: &e.product,
                    finding_type: &e.finding_type,
                    severity: e.severity.label.as_str(),
                    severity_value: e.severity.value,
                    title: &e.title,
                    resource: resource_view(&e.resource),
                    account: &e.account,
                    region: &e.region,
                    count: e.count,
                    sample: e.sample,
                    indicators: e.indicators.iter().map(|i| i.value.as_str()).collect(),
                    related_resources: e.related_resources.iter().map(|r| r.key()).collect(),
                    signal_keys: &e.signal_keys,
                    notes: &e.notes,
                })
                .collect(),
            skipped: skipped
                .iter()
                .map(|s| Skip {
                    finding_id: &s.finding_id,
                    code: &s.code,
                    reason: &s.reason,
                    incident_id: s.incident_id.as_deref(),
                })
                .collect(),
            incidents: incidents
                .iter()
                .map(|t| IncidentSummary {
                    incident_id: &t.decision.incident_id,
                    severity: t.decision.severity.as_str(),
                    score: t.decision.score.score,
                    playbook: &t.decision.playbook.id,
                    resource: t.events.first().map_or(
                        ResourceView {
                            kind: "other",
                            id: "",
                        },
                        |e| resource_view(&e.resource),
                    ),
                    findings: t.events.iter().map(|e| e.finding_id.as_str()).collect(),
                    steps: t.decision.playbook.steps.iter().map(Step::from).collect(),
                })
                .collect(),
        }
    }
}

fn origin(o: Origin) -> &'static str {
    match o {
        Origin::Registry => "registry",
        Origin::Tag => "tag",
        Origin::Default => "default",
    }
}

fn summary(
    out: &mut impl Write,
    file: &std::path::Path,
    incidents: &[Triaged],
    primary: Option<usize>,
    skipped: &[Skipped],
) -> std::io::Result<()> {
    writeln!(
        out,
        "DRY RUN: triage simulated offline; nothing was changed."
    )?;
    writeln!(out, "Input: {}", file.display())?;
    let events: usize = incidents.iter().map(|t| t.events.len()).sum();
    writeln!(out, "\nEvents ({events}):")?;
    for t in incidents {
        for e in &t.events {
            let value = e
                .severity
                .value
                .map(|v| format!(" ({v})"))
                .unwrap_or_default();
            let sample = if e.sample { "  [generated sample]" } else { "" };
            writeln!(
                out,
                "  - {} {}  {}{}  {} {}  account {} {}{}",
                e.source.as_str(),
                e.finding_type,
                e.severity.label,
                value,
                e.resource.kind(),
                e.resource.id(),
                e.account,
                e.region,
                sample
            )?;
            writeln!(
                out,
                "    finding {}  count {}  \"{}\"",
                e.finding_id, e.count, e.title
            )?;
            for r in &e.related_resources {
                writeln!(
                    out,
                    "    also names {} {} (account {})",
                    r.resource.kind(),
                    r.resource.id(),
                    r.account
                )?;
            }
            for k in &e.signal_keys {
                writeln!(out, "    signal finding {k}")?;
            }
            for n in &e.notes {
                writeln!(out, "    note: {n}")?;
            }
        }
    }
    if !skipped.is_empty() {
        writeln!(out, "\nSkipped ({}):", skipped.len())?;
        for s in skipped {
            writeln!(out, "  - {}: {}", s.finding_id, s.reason)?;
        }
    }
    if incidents.is_empty() {
        writeln!(out, "\nNo incident: every finding was skipped.")?;
    }
    let order = primary
        .into_iter()
        .chain((0..incidents.len()).filter(|i| Some(*i) != primary));
    for i in order {
        let Some(t) = incidents.get(i) else { continue };
        let d = &t.decision;
        let en = &t.enrichment;
        writeln!(
            out,
            "\nIncident {}: severity {} (findings: {}, score: {})",
            d.incident_id,
            d.severity.as_str().to_uppercase(),
            d.finding_severity,
            d.score.score_severity
        )?;
        writeln!(
            out,
            "  Asset: owner {} ({}), environment {} ({}), criticality {} ({}), data {} ({}), earlier incidents {}",
            en.owner.value,
            origin(en.owner.origin),
            en.environment.value,
            origin(en.environment.origin),
            en.criticality.value,
            origin(en.criticality.origin),
            en.data_classification.value,
            origin(en.data_classification.origin),
            en.history_count
        )?;
        if en.intel_matches.is_empty() {
            writeln!(out, "  Threat intel: no indicator matched")?;
        }
        for m in &en.intel_matches {
            writeln!(
                out,
                "  Threat intel: {} matched {} (score {:.2})",
                m.indicator, m.matched, m.score
            )?;
        }
        for n in &en.notes {
            writeln!(out, "  Note: {n}")?;
        }
        let (c, w) = (&d.score.components, &d.score.weights);
        writeln!(
            out,
            "  Score {:.3} = severity {:.2}x{:.2} + criticality {:.2}x{:.2} + history {:.2}x{:.2} + threat {:.2}x{:.2} -> {}",
            d.score.score,
            c.severity,
            w.severity,
            c.asset_criticality,
            w.asset_criticality,
            c.historical_frequency,
            w.historical_frequency,
            c.threat_score,
            w.threat_score,
            d.score.score_severity
        )?;
        writeln!(
            out,
            "  SLA: {} (respond by {})",
            d.sla.description,
            rfc3339(d.sla.respond_by)
        )?;
        let forced = if d.samples_only {
            ", forced: generated sample findings"
        } else {
            ""
        };
        writeln!(
            out,
            "  Playbook {} (trigger `{}`), mode {}{}:",
            d.playbook.id,
            d.playbook.trigger,
            d.playbook.mode.as_str(),
            forced
        )?;
        for (n, s) in d.playbook.steps.iter().enumerate() {
            let (kind, gate) = crate::step_marks(s.destructive, s.requires_approval);
            writeln!(
                out,
                "    {}. {} ({}, {kind}) on {}{gate}",
                n + 1,
                s.id,
                s.action,
                s.target
            )?;
        }
        for s in &d.playbook.not_applicable {
            writeln!(out, "    -  {} not applicable: {}", s.id, s.reason)?;
        }
        for p in &d.resource_plans {
            writeln!(
                out,
                "  Also in scope: {} {} (planned for a responder; the playbook acts on the incident's resource only):",
                p.kind, p.id
            )?;
            if p.steps.is_empty() {
                writeln!(out, "    no step of {} applies", d.playbook.id)?;
            }
            for s in &p.steps {
                let (kind, gate) = crate::step_marks(s.destructive, s.requires_approval);
                writeln!(
                    out,
                    "    - {} ({}, {kind}) on {}{gate}",
                    s.id, s.action, s.target
                )?;
            }
        }
    }
    Ok(())
}
