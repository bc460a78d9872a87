//! Playbooks: the action catalog, triggers, and the plan for one incident.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Mode, OnFailure, PlaybookConfig, StepConfig};
use crate::event::{RelatedResource, Resource, ResourceKind};
use crate::severity::Severity;

/// What an action does, which function runs it, and what it can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    /// The id used in playbooks (`cloud:security_group_deny_all`).
    pub id: &'static str,
    /// The Lambda function that performs it.
    pub function: &'static str,
    /// Changes the customer's environment in a way that can cause an outage.
    pub destructive: bool,
    /// Its effect stays in place once applied (a containment, a snapshot): when a later finding
    /// revises the incident, a step an earlier revision applied is recorded as done, not run
    /// again. Evidence collection and notifications are not: each revision has news to keep
    /// and to tell.
    pub once_per_incident: bool,
    /// Runs only behind an approval gate, in every mode: a step naming it must say
    /// `requires_approval: true` (config validation), `allow_unapproved_destructive` does not
    /// lift that, and the plan and the action guard treat the step as gated whatever the config.
    pub gated: bool,
    /// The resource kinds it can act on.
    pub applies_to: &'static [ResourceKind],
    pub summary: &'static str,
}

const ALL_KINDS: &[ResourceKind] = &ResourceKind::ALL;

/// Every action a playbook may name. Unknown actions are a configuration error.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        id: "cloud:security_group_deny_all",
        function: "ir-isolate-instance",
        destructive: true,
        once_per_incident: true,
        gated: false,
        applies_to: &[ResourceKind::Ec2Instance],
        summary: "isolate the instance: per-ENI all-allow conversion group, then a no-rule isolation group; protect it from termination",
    },
    ActionSpec {
        id: "cloud:revoke_session",
        function: "ir-revoke-sessions",
        destructive: true,
        once_per_incident: true,
        gated: false,
        applies_to: &[
            ResourceKind::IamRole,
            ResourceKind::IamUser,
            ResourceKind::Ec2Instance,
        ],
        summary: "deny every session issued before now (aws:TokenIssueTime) on the role, the user, or the instance profile's role",
    },
    ActionSpec {
        id: "cloud:deny_principal",
        function: "ir-deny-principal",
        destructive: true,
        once_per_incident: true,
        gated: false,
        applies_to: &[ResourceKind::IamRole, ResourceKind::IamUser],
        summary: "attach an inline deny-all policy named for the incident",
    },
    ActionSpec {
        id: "cloud:disable_access_keys",
        function: "ir-disable-access-keys",
        destructive: true,
        once_per_incident: true,
        gated: false,
        applies_to: &[ResourceKind::IamUser],
        summary: "set the finding's access key (or all the user's keys) Inactive; never delete",
    },
    ActionSpec {
        id: "cloud:terminate_instance",
        function: "ir-terminate-instance",
        destructive: true,
        once_per_incident: true,
        gated: true,
        applies_to: &[ResourceKind::Ec2Instance],
        summary: "terminate the instance once every attached volume has a completed snapshot taken for the incident; lifts the termination protection isolation set",
    },
    ActionSpec {
        id: "cloud:snapshot_volumes",
        function: "ir-snapshot-volumes",
        destructive: false,
        once_per_incident: true,
        gated: false,
        applies_to: &[ResourceKind::Ec2Instance],
        summary: "crash-consistent snapshot of every attached volume, tagged with the incident",
    },
    ActionSpec {
        id: "cloud:collect_evidence",
        function: "ir-collect-evidence",
        destructive: false,
        once_per_incident: false,
        gated: false,
        applies_to: ALL_KINDS,
        summary: "write the finding, the resource description and the incident window's CloudTrail logs to the Object Lock bucket",
    },
    ActionSpec {
        id: "cloud:fetch_audit_logs",
        function: "ir-collect-evidence",
        destructive: false,
        once_per_incident: false,
        gated: false,
        applies_to: ALL_KINDS,
        summary: "copy the incident window's CloudTrail logs to the Object Lock bucket",
    },
    ActionSpec {
        id: "slack:post_message",
        function: "ir-notify",
        destructive: false,
        once_per_incident: false,
        gated: false,
        applies_to: ALL_KINDS,
        summary: "post the incident update to a channel",
    },
    ActionSpec {
        id: "jira:create_issue",
        function: "ir-notify",
        destructive: false,
        once_per_incident: false,
        gated: false,
        applies_to: ALL_KINDS,
        summary: "request a ticket for the incident (published for the ticketing integration)",
    },
];

/// Looks an action up by id.
pub fn action(id: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.id == id)
}

/// A playbook trigger: `severity OP level` (OP one of `==`, `!=`, `>=`, `<=`, `>`, `<`) or
/// `severity in [level, ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Compare(Op, Severity),
    In(Vec<Severity>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Trigger {
    pub fn matches(&self, s: Severity) -> bool {
        match self {
            Trigger::Compare(op, level) => match op {
                Op::Eq => s == *level,
                Op::Ne => s != *level,
                Op::Ge => s >= *level,
                Op::Le => s <= *level,
                Op::Gt => s > *level,
                Op::Lt => s < *level,
            },
            Trigger::In(levels) => levels.contains(&s),
        }
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("trigger `{text}` is not `severity OP level` or `severity in [level, ...]`");
        let rest = text
            .trim()
            .strip_prefix("severity")
            .ok_or_else(bad)?
            .trim_start();
        if let Some(list) = rest.strip_prefix("in") {
            let inner = list
                .trim()
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .ok_or_else(bad)?;
            let levels = inner
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<Severity>, _>>()?;
            return Ok(Trigger::In(levels));
        }
        for (token, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if let Some(level) = rest.strip_prefix(token) {
                return Ok(Trigger::Compare(op, level.parse()?));
            }
        }
        Err(bad())
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Compare(op, level) => {
                let op = match op {
                    Op::Eq => "==",
                    Op::Ne => "!=",
                    Op::Ge => ">=",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Lt => "<",
                };
                write!(f, "severity {op} {level}")
            }
            Trigger::In(levels) => {
                let names: Vec<&str> = levels.iter().map(|l| l.as_str()).collect();
                write!(f, "severity in [{}]", names.join(", "))
            }
        }
    }
}

/// One step of the plan for an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    pub id: String,
    pub action: String,
    /// The function that performs the action.
    pub function: String,
    pub requires_approval: bool,
    pub destructive: bool,
    /// Whether the step only plans (dry-run) or changes things (enforce).
    pub mode: Mode,
    /// What the step acts on, in words (`instance i-0abc`, `role web-prod`).
    pub target: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// How many different people must approve the step (gated steps; 0 otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub approvals_required: u32,
    /// An earlier revision of the incident already applied this step in enforce mode: the
    /// audit record that shows it. The step is left out of the state machines' plan and not
    /// run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<DoneBefore>,
    /// What the playbook does when the step fails after its retries. Decisions recorded before
    /// this was planned read as `continue`, what they did; `continue` is not written, so they
    /// write back as recorded.
    #[serde(
        default = "continue_on_failure",
        skip_serializing_if = "OnFailure::is_continue"
    )]
    pub on_failure: OnFailure,
}

fn continue_on_failure() -> OnFailure {
    OnFailure::Continue
}

/// Where an earlier revision applied a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoneBefore {
    /// The audit record (sequence number) of the step's result.
    pub seq: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A playbook step left out of the plan because it does not apply to the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotApplicable {
    pub id: String,
    pub action: String,
    pub reason: String,
}

/// The playbook chosen for an incident and its steps for this resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPlaybook {
    pub id: String,
    pub trigger: String,
    pub mode: Mode,
    pub steps: Vec<PlannedStep>,
    #[serde(default)]
    pub not_applicable: Vec<NotApplicable>,
}

/// The key of a step in state-machine paths and state names: its id with `-` as `_`
/// (`isolate-instance` → `isolate_instance`). Config validation refuses ids that collide.
pub fn step_key(id: &str) -> String {
    id.replace('-', "_")
}

/// The first playbook, in config order, whose trigger matches the severity. Config validation
/// guarantees one exists for every severity.
pub fn select(config: &Config, severity: Severity) -> Option<&PlaybookConfig> {
    config
        .playbooks
        .iter()
        .find(|p| p.trigger.matches(severity))
}

/// Why an action does not apply to this resource, or `None` when it does.
pub fn inapplicable(spec: &ActionSpec, step: &StepConfig, resource: &Resource) -> Option<String> {
    let kind = resource.kind();
    if let Some(only) = &step.applies_to
        && !only.contains(&kind)
    {
        return Some(format!("step is limited to {}", join(only)));
    }
    if !spec.applies_to.contains(&kind) {
        return Some(format!(
            "{} acts on {}, not {kind}",
            spec.id,
            join(spec.applies_to)
        ));
    }
    match (spec.function, resource) {
        ("ir-revoke-sessions", Resource::Ec2Instance(i)) if i.instance_profile_arn.is_none() => {
            Some("instance has no instance profile: no role sessions to revoke".to_owned())
        }
        _ => None,
    }
}

fn join(kinds: &[ResourceKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a step acts on, in words.
pub fn target(spec: &ActionSpec, resource: &Resource) -> String {
    match (spec.function, resource) {
        ("ir-revoke-sessions", Resource::Ec2Instance(i)) => format!(
            "role of instance profile {} (instance {})",
            i.instance_profile_arn.as_deref().unwrap_or("?"),
            i.instance_id
        ),
        ("ir-disable-access-keys", Resource::IamUser(u)) => match &u.access_key_id {
            Some(k) => format!("access key {k} of user {}", u.user_name),
            None => format!("every access key of user {}", u.user_name),
        },
        (_, r) => format!("{} {}", r.kind(), r.id()),
    }
}

/// The plan of `playbook` for `resource`, of an incident of severity `severity`.
pub fn plan(
    config: &Config,
    playbook: &PlaybookConfig,
    resource: &Resource,
    severity: Severity,
) -> PlannedPlaybook {
    let mode = playbook
        .mode
        .unwrap_or(if config.orchestrator.dry_run_default {
            Mode::DryRun
        } else {
            Mode::Enforce
        });
    let mut steps = Vec::new();
    let mut not_applicable = Vec::new();
    for step in &playbook.steps {
        // Config validation guarantees every action is known; an unknown one is left out, stated.
        let Some(spec) = action(&step.action) else {
            not_applicable.push(NotApplicable {
                id: step.id.clone(),
                action: step.action.clone(),
                reason: "unknown action".into(),
            });
            continue;
        };
        if let Some(reason) = inapplicable(spec, step, resource) {
            not_applicable.push(NotApplicable {
                id: step.id.clone(),
                action: step.action.clone(),
                reason,
            });
            continue;
        }
        steps.push(PlannedStep {
            id: step.id.clone(),
            action: step.action.clone(),
            function: spec.function.to_owned(),
            requires_approval: step.requires_approval || spec.gated,
            destructive: spec.destructive,
            mode,
            target: target(spec, resource),
            summary: spec.summary.to_owned(),
            channel: step.channel.clone(),
            project: step.project.clone(),
            priority: step.priority.clone(),
            retention: step.retention.map(|r| r.to_string()),
            approvals_required: if step.requires_approval || spec.gated {
                config.approvals_required(step, severity)
            } else {
                0
            },
            done: None,
            on_failure: step
                .on_failure
                .unwrap_or(OnFailure::default_for(spec.destructive)),
        });
    }
    PlannedPlaybook {
        id: playbook.id.clone(),
        trigger: playbook.trigger.to_string(),
        mode,
        steps,
        not_applicable,
    }
}

/// A step of the incident's playbook as it would apply to another of the incident's resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStep {
    pub id: String,
    pub action: String,
    /// What the step would act on, in words (see [`target`]).
    pub target: String,
    pub destructive: bool,
    pub requires_approval: bool,
}

/// The containment plan for one more resource of an incident (an attack sequence names
/// several): the steps of the incident's playbook that apply to the resource's kind. Planned
/// for a responder, never run by the playbook, which acts on the incident's own resource only
/// (the action guard refuses any other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    /// `account/kind/id` (see [`crate::event::resource_key`]).
    pub resource_key: String,
    pub kind: ResourceKind,
    pub id: String,
    /// The steps that apply, in playbook order (none: the playbook has nothing for this kind).
    pub steps: Vec<ResourceStep>,
}

/// The plan of `playbook` for each of `related` (in order, each resource once), as
/// [`plan`] decides which steps apply to a resource.
pub fn resource_plans(
    config: &Config,
    playbook: &PlaybookConfig,
    related: &[&RelatedResource],
    severity: Severity,
) -> Vec<ResourcePlan> {
    related
        .iter()
        .map(|r| {
            let planned = plan(config, playbook, &r.resource, severity);
            ResourcePlan {
                resource_key: r.key(),
                kind: r.resource.kind(),
                id: r.resource.id().to_owned(),
                steps: planned
                    .steps
                    .into_iter()
                    .map(|s| ResourceStep {
                        id: s.id,
                        action: s.action,
                        target: s.target,
                        destructive: s.destructive,
                        requires_approval: s.requires_approval,
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_critical_principal_is_denied_behind_a_gate_and_an_instance_is_not() {
        let config = Config::embedded().unwrap();
        let isolation = select(&config, Severity::Critical).unwrap();
        let user = Resource::IamUser(crate::event::IamUser {
            user_name: "ci-deployer".into(),
            access_key_id: Some("AKIAEXAMPLE".into()),
            principal_id: None,
        });
        let for_user = plan(&config, isolation, &user, Severity::Critical);
        let deny = for_user
            .steps
            .iter()
            .find(|s| s.id == "deny-principal")
            .expect("deny-principal planned for a user");
        assert_eq!(deny.function, "ir-deny-principal");
        assert!(deny.requires_approval && deny.destructive);
        assert_eq!(deny.approvals_required, 2);
        assert_eq!(deny.target, "iam-user ci-deployer");

        let instance: Resource = serde_json::from_value(serde_json::json!({
            "type": "ec2-instance",
            "instanceId": "i-0a1b2c3d4e5f60001"
        }))
        .unwrap();
        let for_instance = plan(&config, isolation, &instance, Severity::Critical);
        assert!(!for_instance.steps.iter().any(|s| s.id == "deny-principal"));
        let skipped = for_instance
            .not_applicable
            .iter()
            .find(|n| n.id == "deny-principal")
            .expect("stated as not applicable");
        assert!(
            skipped.reason.contains("not ec2-instance"),
            "{}",
            skipped.reason
        );
    }

    #[test]
    fn a_failed_destructive_step_stops_the_playbook_unless_the_config_says_go_on() {
        let yaml = crate::config::DEFAULT_CONFIG_YAML.replacen(
            "      - id: notify-channel\n",
            "      - id: notify-channel\n        on_failure: stop\n",
            1,
        );
        assert_ne!(
            yaml,
            crate::config::DEFAULT_CONFIG_YAML,
            "fixture text not found"
        );
        let config = Config::from_yaml(&yaml).unwrap();
        let isolation = select(&config, Severity::Critical).unwrap();
        let instance: Resource = serde_json::from_value(serde_json::json!({
            "type": "ec2-instance",
            "instanceId": "i-0a1b2c3d4e5f60001"
        }))
        .unwrap();
        let planned = plan(&config, isolation, &instance, Severity::Critical);
        let of = |id: &str| {
            planned
                .steps
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.on_failure)
                .unwrap_or_else(|| panic!("{id} not in {:?}", planned.steps))
        };
        // Defaults: destructive steps stop, evidence goes on; the config overrides.
        assert_eq!(of("isolate-instance"), OnFailure::Stop);
        assert_eq!(of("collect-evidence"), OnFailure::Continue);
        assert_eq!(of("notify-channel"), OnFailure::Stop);
        // The state machines read `stop` from the plan; `continue` is left unsaid, so a
        // decision recorded before `onFailure` existed reads as `continue`, what it did, and
        // writes back as it was recorded.
        let stop = planned
            .steps
            .iter()
            .find(|s| s.id == "isolate-instance")
            .unwrap();
        assert_eq!(serde_json::to_value(stop).unwrap()["onFailure"], "stop");
        let wire = serde_json::to_value(&planned.steps[0]).unwrap();
        assert_eq!(planned.steps[0].on_failure, OnFailure::Continue);
        assert!(wire.get("onFailure").is_none(), "{wire}");
        let read: PlannedStep = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(read.on_failure, OnFailure::Continue);
        assert_eq!(serde_json::to_value(&read).unwrap(), wire);
        let bad = crate::config::DEFAULT_CONFIG_YAML.replacen(
            "      - id: notify-channel\n",
            "      - id: notify-channel\n        on_failure: maybe\n",
            1,
        );
        let e = Config::from_yaml(&bad).unwrap_err().to_string();
        assert!(e.contains("on_failure"), "{e}");
    }

    #[test]
    fn triggers_parse_and_match() {
        let t: Trigger = "severity == critical".parse().unwrap();
        assert!(t.matches(Severity::Critical) && !t.matches(Severity::High));
        let t: Trigger = "severity <= medium".parse().unwrap();
        assert!(
            t.matches(Severity::Low) && t.matches(Severity::Medium) && !t.matches(Severity::High)
        );
        let t: Trigger = "severity in [low, high]".parse().unwrap();
        assert!(t.matches(Severity::High) && !t.matches(Severity::Medium));
        let t: Trigger = "severity>high".parse().unwrap();
        assert_eq!(t, Trigger::Compare(Op::Gt, Severity::High));
        assert_eq!(t.to_string(), "severity > high");
        for bad in [
            "severity == urgent",
            "priority == high",
            "severity ~ high",
            "severity in low",
            "",
        ] {
            assert!(bad.parse::<Trigger>().is_err(), "{bad}");
        }
    }

    #[test]
    fn action_ids_are_unique() {
        for (i, a) in ACTIONS.iter().enumerate() {
            assert!(ACTIONS[i + 1..].iter().all(|b| b.id != a.id), "{}", a.id);
        }
    }
}
