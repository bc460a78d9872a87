//! Playbooks as code: the configuration compiled into Amazon States Language.
//!
//! [`render`] turns a [`Config`] into the triage state machine and one Standard state machine
//! per playbook, as JSON documents whose every function and state machine ARN is a
//! `${Substitution}` ([`substitutions`] lists them; the template fills ARNs in AWS, the local
//! cloud fills binary names, [`substitute`] does the filling). Rendering is deterministic and
//! [`to_pretty`] prints in a fixed key order, so the committed files diff cleanly.
//!
//! The triage state machine (input: [`crate::TriageInput`]):
//! `Enrich → Score → RecordTriage → StartOrNot → ChoosePlaybook → Start<Playbook> →
//! PlaybookStarted`, every task caught into `RecordTriageFailure → TriageFailed`, a decision
//! naming a playbook this machine does not know into `UnknownPlaybook → RecordTriageFailure`, a
//! revision the recorder says starts nothing (superseded, or its playbook already started by an
//! earlier revision) into `PlaybookNotStarted`, and a playbook already started for the revision
//! (execution names are the incident id and revision, unique per state machine) into
//! `PlaybookAlreadyStarted`. A playbook beyond `orchestrator.max_concurrent_playbooks` waits:
//! `StartOrNot → WaitForSlot → ClaimSlot → SlotOrWait`, round again until the recorder grants
//! the slot (→ `ChoosePlaybook`) or says the incident was ended or revised (→
//! `PlaybookNotStarted`).
//!
//! A playbook state machine (input: [`crate::contracts::PlaybookInput`]), per step `key`
//! ([`playbook::step_key`]), in config order:
//! `Check_<key>` (is the step in the plan?) → for a gated step, `Plan_<key>` (the action in
//! dry-run: the plan the approver approves) and per escalation level `j`,
//! `Level_<key>_<j>` (the level's row) → `Gate_<key>_<j>` (ask, wait for the task token) and on
//! timeout `Escalate_<key>_<j+1>` or, after the last level, `Exhausted_<key>` (the configured
//! `onExhausted`; the action itself checks the deployed config) → `Run_<key>` (a `PlanChanged`
//! failure goes back to `Plan_<key>`) → `Recorded_<key>`; a rejection or exhaustion is recorded by
//! `NotApproved_<key>`, a failure by `StepFailed_<key>` then `AfterFailure_<key>` (the plan's
//! `onFailure`: `stop` goes to `Stop_<key>`, which records `playbook-stopped` and ends in
//! `Stopped`, a Fail state; `continue` goes on); then the next step's check, and `Finish → Done`
//! after the last.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::config::{Config, OnFailure, PlaybookConfig};
use crate::orchestration::REJECTED_ERROR;
use crate::playbook::{self, ActionSpec};
use crate::severity::Severity;

/// The state a stopped playbook ends in.
const STOPPED: &str = "Stopped";

/// The file of the triage state machine.
pub const TRIAGE_FILE: &str = "triage.asl.json";
/// Playbook state machine files are `playbook-<id>.asl.json`.
pub const PLAYBOOK_FILE_PREFIX: &str = "playbook-";
/// The suffix of every state machine file.
pub const FILE_SUFFIX: &str = ".asl.json";

/// The Lambda `Invoke` optimized integration.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// The Lambda `Invoke` integration that waits for `SendTask{Success,Failure}` on its token.
pub const LAMBDA_INVOKE_WAIT: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
/// The Step Functions `StartExecution` integration (fire and forget).
pub const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";

/// The enrichment function (`ir-enrich`).
pub const ENRICH_FUNCTION: &str = "EnrichFunction";
/// The scoring function (`ir-score`).
pub const SCORE_FUNCTION: &str = "ScoreFunction";
/// The recorder (`ir-record`): incident record and audit chain.
pub const RECORD_FUNCTION: &str = "RecordFunction";
/// The approval gate (`ir-request-approval`).
pub const REQUEST_APPROVAL_FUNCTION: &str = "RequestApprovalFunction";

/// The error an action fails with when its plan differs from the approved one.
pub const PLAN_CHANGED_ERROR: &str = "PlanChanged";
/// The error an action answers when the guard refuses a step nobody approved.
pub const NOT_APPROVED_ERROR: &str = "NotApproved";
/// The error `StartExecution` fails with when an execution of that name exists.
pub const EXECUTION_ALREADY_EXISTS: &str = "StepFunctions.ExecutionAlreadyExistsException";

/// What the Lambda service reports for a failed invocation (not the function's own errors).
const LAMBDA_SERVICE_ERRORS: [&str; 5] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
];

/// A document refers to a substitution no value was given for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no value for the substitution ${{{0}}}")]
pub struct MissingSubstitution(pub String);

/// `immediate-isolation` → `ImmediateIsolation` (`-` and `_` separate words).
pub fn pascal(id: &str) -> String {
    id.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The substitution of a function: `ir-isolate-instance` → `IsolateInstanceFunction`.
pub fn function_substitution(function: &str) -> String {
    format!(
        "{}Function",
        pascal(function.strip_prefix("ir-").unwrap_or(function))
    )
}

/// The substitution of a playbook's state machine ARN: `PlaybookImmediateIsolationStateMachine`.
pub fn state_machine_substitution(playbook_id: &str) -> String {
    format!("Playbook{}StateMachine", pascal(playbook_id))
}

/// The file of a playbook's state machine: `playbook-<id>.asl.json`.
pub fn playbook_file(playbook_id: &str) -> String {
    format!("{PLAYBOOK_FILE_PREFIX}{playbook_id}{FILE_SUFFIX}")
}

/// The severities a playbook's trigger matches.
pub fn severities(playbook: &PlaybookConfig) -> Vec<Severity> {
    Severity::ALL
        .into_iter()
        .filter(|s| playbook.trigger.matches(*s))
        .collect()
}

/// How many escalation levels a playbook's gates have: the longest escalation row among the
/// severities its trigger matches.
pub fn escalation_levels(config: &Config, playbook: &PlaybookConfig) -> usize {
    severities(playbook)
        .into_iter()
        .map(|s| config.escalation(s).len())
        .max()
        .unwrap_or(0)
}

/// Every state machine of the configuration: `(file name, definition)`, triage first, then the
/// playbooks in config order.
pub fn render(config: &Config) -> Vec<(String, Value)> {
    let mut out = vec![(TRIAGE_FILE.to_owned(), render_triage(config))];
    for p in &config.playbooks {
        out.push((playbook_file(&p.id), render_playbook(config, p)));
    }
    out
}

/// Every substitution name the rendered state machines use, sorted.
pub fn substitutions(config: &Config) -> Vec<String> {
    let mut names: BTreeSet<String> = [ENRICH_FUNCTION, SCORE_FUNCTION, RECORD_FUNCTION]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for p in &config.playbooks {
        names.insert(state_machine_substitution(&p.id));
        for step in &p.steps {
            if step.requires_approval {
                names.insert(REQUEST_APPROVAL_FUNCTION.to_owned());
            }
            if let Some(spec) = playbook::action(&step.action) {
                names.insert(function_substitution(spec.function));
            }
        }
    }
    names.into_iter().collect()
}

/// The `${Name}` placeholders in a document's strings, sorted.
pub fn placeholders(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk_strings(value, &mut |s| {
        let mut rest = s;
        while let Some((name, after)) = next_placeholder(rest) {
            out.insert(name.to_owned());
            rest = after;
        }
    });
    out
}

fn walk_strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// The next `${Name}` in `s`: the name and the text after it.
fn next_placeholder(s: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(start) = s[from..].find("${").map(|i| from + i) {
        let body = &s[start + 2..];
        if let Some(end) = body.find('}') {
            let name = &body[..end];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Some((name, &body[end + 1..]));
            }
        }
        from = start + 2;
    }
    None
}

/// Replaces every `${Name}` in the document's strings with its value from `values`.
pub fn substitute(
    value: &Value,
    values: &BTreeMap<String, String>,
) -> Result<Value, MissingSubstitution> {
    Ok(match value {
        Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some((name, after)) = next_placeholder(rest) {
                let Some(v) = values.get(name) else {
                    return Err(MissingSubstitution(name.to_owned()));
                };
                // The placeholder is `${name}` right before `after`.
                let at = rest.len() - after.len() - name.len() - 3;
                out.push_str(&rest[..at]);
                out.push_str(v);
                rest = after;
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, values)?)))
                .collect::<Result<Map<String, Value>, MissingSubstitution>>()?,
        ),
        other => other.clone(),
    })
}

/// The order of keys in printed documents: these ASL fields in this order, any other key
/// (payload fields, comparison operators, retry settings) at `*` in alphabetical order.
const KEY_ORDER: [&str; 23] = [
    "Comment",
    "StartAt",
    "States",
    "Type",
    "Variable",
    "ErrorEquals",
    "Resource",
    "InputPath",
    "Parameters",
    "FunctionName",
    "ResultSelector",
    "ResultPath",
    "TimeoutSecondsPath",
    "*",
    "Choices",
    "Default",
    "Retry",
    "Catch",
    "Error",
    "Cause",
    "CausePath",
    "Next",
    "End",
];

fn key_rank(key: &str) -> (usize, &str) {
    let at = |k: &str| KEY_ORDER.iter().position(|x| *x == k);
    (at(key).or_else(|| at("*")).unwrap_or(0), key)
}

/// The document as committed: ASL fields in a fixed order ([`KEY_ORDER`]), the rest sorted,
/// 2-space indent, trailing newline. Independent of how the JSON map orders its keys.
pub fn to_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_pretty(value, 0, &mut out);
    out.push('\n');
    out
}

fn write_pretty(value: &Value, depth: usize, out: &mut String) {
    let pad = |out: &mut String, depth: usize| {
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, depth + 1);
                write_pretty(item, depth + 1, out);
            }
            out.push('\n');
            pad(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| key_rank(k));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, depth + 1);
                // A JSON string's Display is its quoted, escaped form.
                let _ = write!(out, "{}: ", Value::String(key.clone()));
                if let Some(v) = map.get(key) {
                    write_pretty(v, depth + 1, out);
                }
            }
            out.push('\n');
            pad(out, depth);
            out.push('}');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

fn placeholder(name: &str) -> String {
    format!("${{{name}}}")
}

fn retry(errors: &[&str]) -> Value {
    json!([{
        "ErrorEquals": errors,
        "IntervalSeconds": 1,
        "MaxAttempts": 4,
        "BackoffRate": 2.0
    }])
}

/// What an invocation whose sandbox died fails with: the runtime process exited mid-invocation
/// (crashed, killed, out of memory), the function ran out of time, or Lambda could not say.
const SANDBOX_ERRORS: [&str; 3] = ["Runtime.ExitError", "Sandbox.Timedout", "Lambda.Unknown"];

/// The retry of every Lambda task: the functions' own `Retryable`, the service's errors, and a
/// sandbox that died. Every function is idempotent (an action finds what an earlier attempt
/// applied; the recorder's writes are conditional), so running it again after a crash halfway
/// through its calls finishes the job and reports what is there.
fn lambda_retry() -> Value {
    let mut errors = vec!["Retryable"];
    errors.extend(LAMBDA_SERVICE_ERRORS);
    errors.extend(SANDBOX_ERRORS);
    retry(&errors)
}

fn catch(errors: &[&str], result_path: &str, next: &str) -> Value {
    json!({ "ErrorEquals": errors, "ResultPath": result_path, "Next": next })
}

/// A `lambda:invoke` task whose result (the function's output) lands at `result_path.value`.
fn lambda_task(
    function: &str,
    payload: Value,
    result_path: &str,
    next: &str,
) -> Map<String, Value> {
    let task = json!({
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": { "FunctionName": placeholder(function), "Payload": payload },
        "ResultSelector": { "value.$": "$.Payload" },
        "ResultPath": result_path,
        "Retry": lambda_retry(),
        "Next": next
    });
    match task {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn with_catch(mut task: Map<String, Value>, catches: Vec<Value>) -> Value {
    task.insert("Catch".into(), Value::Array(catches));
    Value::Object(task)
}

/// A recorder task (kind `kind`): retried like every Lambda task, never caught — a recorder
/// that cannot record fails the execution loudly.
fn record(kind: &str, mut fields: Map<String, Value>, result_path: &str, next: &str) -> Value {
    fields.insert("kind".into(), json!(kind));
    fields.insert("incidentId.$".into(), json!("$.incidentId"));
    Value::Object(lambda_task(
        RECORD_FUNCTION,
        Value::Object(fields),
        result_path,
        next,
    ))
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The running execution's own name, from the context object Step Functions sets (never from
/// the execution input, which whoever starts an execution writes).
const EXECUTION_NAME: &str = "$$.Execution.Name";

/// The triage state machine.
pub fn render_triage(config: &Config) -> Value {
    const FAILURE: &str = "RecordTriageFailure";
    let caught = || vec![catch(&["States.ALL"], "$.error", FAILURE)];
    let mut states = Map::new();
    states.insert(
        "Enrich".into(),
        with_catch(
            lambda_task(
                ENRICH_FUNCTION,
                json!({
                    "incidentId.$": "$.incidentId",
                    "events.$": "$.events",
                    "historyCount.$": "$.historyCount"
                }),
                "$.enrichment",
                "Score",
            ),
            caught(),
        ),
    );
    states.insert(
        "Score".into(),
        with_catch(
            lambda_task(
                SCORE_FUNCTION,
                json!({
                    "incidentId.$": "$.incidentId",
                    "events.$": "$.events",
                    "enrichment.$": "$.enrichment.value",
                    "detectedAt.$": "$.detectedAt"
                }),
                "$.decision",
                "RecordTriage",
            ),
            caught(),
        ),
    );
    states.insert(
        "RecordTriage".into(),
        with_catch(
            lambda_task(
                RECORD_FUNCTION,
                json!({
                    "kind": "triaged",
                    "incidentId.$": "$.incidentId",
                    "events.$": "$.events",
                    "decision.$": "$.decision.value",
                    "detectedAt.$": "$.detectedAt",
                    "revision.$": "$.revision"
                }),
                "$.playbookInput",
                "StartOrNot",
            ),
            caught(),
        ),
    );
    states.insert(
        "StartOrNot".into(),
        json!({
            "Type": "Choice",
            "Comment": "The recorder decides: a revision superseded by a later finding, or a playbook an earlier revision already started, starts nothing; a playbook beyond orchestrator.max_concurrent_playbooks waits for a slot",
            "Choices": [
                {
                    "Variable": "$.playbookInput.value.start",
                    "BooleanEquals": true,
                    "Next": "ChoosePlaybook"
                },
                {
                    "Variable": "$.playbookInput.value.queue",
                    "IsPresent": true,
                    "Next": "WaitForSlot"
                }
            ],
            "Default": "PlaybookNotStarted"
        }),
    );
    states.insert(
        "WaitForSlot".into(),
        json!({
            "Type": "Wait",
            "Comment": "Queued: ask for a slot again every orchestrator.queue_poll_seconds",
            "SecondsPath": "$.playbookInput.value.queue.pollSeconds",
            "Next": "ClaimSlot"
        }),
    );
    states.insert(
        "ClaimSlot".into(),
        with_catch(
            lambda_task(
                RECORD_FUNCTION,
                json!({
                    "kind": "claim-slot",
                    "incidentId.$": "$.incidentId",
                    "revision.$": "$.revision"
                }),
                "$.slot",
                "SlotOrWait",
            ),
            caught(),
        ),
    );
    states.insert(
        "SlotOrWait".into(),
        json!({
            "Type": "Choice",
            "Comment": "Start when the slot is granted (queued -> containment); stop waiting when the incident was ended or revised meanwhile",
            "Choices": [
                { "Variable": "$.slot.value.start", "BooleanEquals": true, "Next": "ChoosePlaybook" },
                { "Variable": "$.slot.value.ended", "BooleanEquals": true, "Next": "PlaybookNotStarted" }
            ],
            "Default": "WaitForSlot"
        }),
    );
    states.insert(
        "PlaybookNotStarted".into(),
        json!({
            "Type": "Succeed",
            "Comment": "Recorded by the recorder with the reason (`triaged`, notStarted)"
        }),
    );
    let choices: Vec<Value> = config
        .playbooks
        .iter()
        .map(|p| {
            json!({
                "Variable": "$.playbookInput.value.decision.playbook.id",
                "StringEquals": p.id,
                "Next": format!("Start{}", pascal(&p.id))
            })
        })
        .collect();
    states.insert(
        "ChoosePlaybook".into(),
        json!({ "Type": "Choice", "Choices": choices, "Default": "UnknownPlaybook" }),
    );
    for p in &config.playbooks {
        states.insert(
            format!("Start{}", pascal(&p.id)),
            json!({
                "Type": "Task",
                "Comment": format!("Playbook {} ({}); the execution is named after the incident and its revision, so a revision starts it once", p.id, p.trigger),
                "Resource": START_EXECUTION,
                "Parameters": {
                    "StateMachineArn": placeholder(&state_machine_substitution(&p.id)),
                    "Name.$": "$.playbookInput.value.executionName",
                    "Input.$": "$.playbookInput.value"
                },
                "ResultSelector": { "executionArn.$": "$.ExecutionArn" },
                "ResultPath": "$.playbookExecution",
                "Retry": retry(&["StepFunctions.ExecutionLimitExceededException"]),
                "Catch": [
                    catch(&[EXECUTION_ALREADY_EXISTS], "$.error", "PlaybookAlreadyStarted"),
                    catch(&["States.ALL"], "$.error", FAILURE)
                ],
                "Next": "PlaybookStarted"
            }),
        );
    }
    states.insert("PlaybookStarted".into(), json!({ "Type": "Succeed" }));
    states.insert(
        "PlaybookAlreadyStarted".into(),
        json!({
            "Type": "Succeed",
            "Comment": "An execution named after this incident revision exists: its playbook was already started (a repeated delivery or triage)"
        }),
    );
    states.insert(
        "UnknownPlaybook".into(),
        json!({
            "Type": "Pass",
            "Comment": "The decision names a playbook this state machine was not rendered with: the config and the state machines are out of step",
            "Parameters": {
                "Error": "UnknownPlaybook",
                "Cause.$": "States.Format('no state machine for playbook {}', $.playbookInput.value.decision.playbook.id)"
            },
            "ResultPath": "$.error",
            "Next": FAILURE
        }),
    );
    states.insert(
        FAILURE.into(),
        record(
            "triage-failed",
            fields(&[
                ("error.$", json!("$.error")),
                ("revision.$", json!("$.revision")),
            ]),
            "$.recordedFailure",
            "TriageFailed",
        ),
    );
    states.insert(
        "TriageFailed".into(),
        json!({
            "Type": "Fail",
            "Error": "TriageFailed",
            "CausePath": "States.JsonToString($.error)"
        }),
    );
    json!({
        "Comment": "Triage of one incident: enrich, score, record the decision, start the chosen playbook. Rendered by `ir playbooks render` from config/incident-response.yaml; do not edit.",
        "StartAt": "Enrich",
        "States": states
    })
}

/// What an action's function takes, by its contract.
fn action_payload(spec: &ActionSpec, step_id: &str, key: &str) -> Value {
    let plan = format!("$.decision.plan.{key}");
    let mode = format!("{plan}.mode");
    match spec.function {
        "ir-notify" => json!({
            "incidentId.$": "$.incidentId",
            "stepId": step_id,
            "mode.$": mode,
            "step.$": plan
        }),
        "ir-collect-evidence" => json!({
            "incidentId.$": "$.incidentId",
            "findingId.$": "$.findingId",
            "stepId": step_id,
            "resource.$": "$.resource",
            "mode.$": mode,
            "account.$": "$.account",
            "region.$": "$.region",
            "finding.$": "$.finding",
            "firstSeen.$": "$.firstSeen",
            "lastSeen.$": "$.lastSeen"
        }),
        _ => json!({
            "incidentId.$": "$.incidentId",
            "findingId.$": "$.findingId",
            "stepId": step_id,
            "resource.$": "$.resource",
            "mode.$": mode
        }),
    }
}

/// The state machine of one playbook.
pub fn render_playbook(config: &Config, playbook: &PlaybookConfig) -> Value {
    let levels = escalation_levels(config, playbook);
    let mut states = Map::new();
    let check = |id: &str| format!("Check_{}", playbook::step_key(id));
    for (i, step) in playbook.steps.iter().enumerate() {
        let key = playbook::step_key(&step.id);
        let next = playbook
            .steps
            .get(i + 1)
            .map_or_else(|| "Finish".to_owned(), |s| check(&s.id));
        let plan = format!("$.decision.plan.{key}");
        let run = format!("Run_{key}");
        let failed = format!("StepFailed_{key}");
        let error = format!("$.error_{key}");
        let recorded = format!("$.recorded_{key}");
        let gated = step.requires_approval;
        let exhausted = format!("Exhausted_{key}");
        let plan_state = format!("Plan_{key}");
        let first = if gated {
            plan_state.clone()
        } else {
            run.clone()
        };
        let first_level = if levels > 0 {
            format!("Level_{key}_0")
        } else {
            exhausted.clone()
        };
        states.insert(
            check(&step.id),
            json!({
                "Type": "Choice",
                "Comment": format!("Step {} ({}): only when the plan has it (it applies to the resource)", step.id, step.action),
                "Choices": [{ "Variable": plan, "IsPresent": true, "Next": first }],
                "Default": next
            }),
        );
        if gated && let Some(spec) = playbook::action(&step.action) {
            // The approver approves this plan: the action's own dry-run, stored with the
            // request with its SHA-256, which the action recomputes before it enforces.
            let mut payload = action_payload(spec, &step.id, &key);
            if let Some(p) = payload.as_object_mut() {
                p.remove("mode.$");
                p.insert("mode".into(), json!("dry-run"));
            }
            states.insert(
                plan_state.clone(),
                with_catch(
                    lambda_task(
                        &function_substitution(spec.function),
                        payload,
                        &format!("$.plan_{key}"),
                        &first_level,
                    ),
                    vec![catch(&["States.ALL"], &error, &failed)],
                ),
            );
        } else if gated {
            states.insert(
                plan_state.clone(),
                json!({"Type": "Pass", "Comment": "An unknown action has no plan: it fails when it runs", "Next": first_level}),
            );
        }
        if gated {
            let not_approved = format!("NotApproved_{key}");
            let level_path = format!("$.level_{key}");
            for j in 0..levels {
                let level = format!("Level_{key}_{j}");
                let gate = format!("Gate_{key}_{j}");
                if j > 0 {
                    states.insert(
                        format!("Escalate_{key}_{j}"),
                        json!({
                            "Type": "Choice",
                            "Choices": [{
                                "Variable": format!("$.decision.escalation[{j}]"),
                                "IsPresent": true,
                                "Next": level
                            }],
                            "Default": exhausted
                        }),
                    );
                }
                // The gate reads its timeout from the level's row copied to a flat key: a path
                // through an array index (`$.decision.escalation[0].timeoutSeconds`) yields
                // `[300]` rather than `300` on the local emulator's engine (moto's JSONPath),
                // while `$.level_<key>.timeoutSeconds` is a number on both.
                states.insert(
                    level.clone(),
                    json!({
                        "Type": "Pass",
                        "Comment": format!("Escalation level {j}: who is asked and for how long"),
                        "InputPath": format!("$.decision.escalation[{j}]"),
                        "ResultPath": level_path,
                        "Next": gate
                    }),
                );
                let on_timeout = if j + 1 < levels {
                    format!("Escalate_{key}_{}", j + 1)
                } else {
                    exhausted.clone()
                };
                states.insert(
                    gate,
                    json!({
                        "Type": "Task",
                        "Comment": format!("Approval of {} at escalation level {j}: waits for SendTaskSuccess or SendTaskFailure ({REJECTED_ERROR}) on the task token", step.id),
                        "Resource": LAMBDA_INVOKE_WAIT,
                        "Parameters": {
                            "FunctionName": placeholder(REQUEST_APPROVAL_FUNCTION),
                            "Payload": {
                                "taskToken.$": "$$.Task.Token",
                                "incidentId.$": "$.incidentId",
                                "stepId": step.id,
                                "level": j,
                                "plan.$": format!("$.plan_{key}.value")
                            }
                        },
                        "TimeoutSecondsPath": format!("{level_path}.timeoutSeconds"),
                        "ResultPath": format!("$.gate_{key}"),
                        "Retry": retry(&LAMBDA_SERVICE_ERRORS),
                        "Catch": [
                            catch(&["States.Timeout"], &error, &on_timeout),
                            catch(&[REJECTED_ERROR], &error, &not_approved),
                            catch(&["States.ALL"], &error, &failed)
                        ],
                        "Next": run
                    }),
                );
            }
            states.insert(
                exhausted.clone(),
                json!({
                    "Type": "Choice",
                    "Comment": "Nobody decided at any level: run only if the config says so",
                    "Choices": [{
                        "Variable": "$.decision.onExhausted",
                        "StringEquals": "approve",
                        "Next": run
                    }],
                    "Default": not_approved
                }),
            );
            states.insert(
                not_approved,
                record(
                    "step-not-approved",
                    fields(&[("stepId", json!(step.id)), ("error.$", json!(error))]),
                    &recorded,
                    &next,
                ),
            );
        }
        match playbook::action(&step.action) {
            Some(spec) => {
                states.insert(
                    run.clone(),
                    with_catch(
                        lambda_task(
                            &function_substitution(spec.function),
                            action_payload(spec, &step.id, &key),
                            &format!("$.result_{key}"),
                            &format!("Recorded_{key}"),
                        ),
                        if gated {
                            // Changed between approval and enforcement: nothing was changed;
                            // plan again and ask again.
                            // Refused by the guard (nobody approved what this run
                            // asks): recorded as not approved, never a failure that stops
                            // the playbook.
                            vec![
                                catch(&[PLAN_CHANGED_ERROR], &error, &plan_state),
                                catch(&[NOT_APPROVED_ERROR], &error, &format!("NotApproved_{key}")),
                                catch(&["States.ALL"], &error, &failed),
                            ]
                        } else {
                            vec![catch(&["States.ALL"], &error, &failed)]
                        },
                    ),
                );
            }
            // Config validation refuses unknown actions; a config that was not validated gets
            // a step that fails, recorded like any failed step.
            None => {
                states.insert(
                    run.clone(),
                    json!({
                        "Type": "Pass",
                        "Parameters": {
                            "Error": "UnknownAction",
                            "Cause": format!("unknown action `{}`", step.action)
                        },
                        "ResultPath": error,
                        "Next": failed
                    }),
                );
            }
        }
        states.insert(
            format!("Recorded_{key}"),
            record(
                "step-result",
                fields(&[
                    ("stepId", json!(step.id)),
                    ("report.$", json!(format!("$.result_{key}.value"))),
                ]),
                &recorded,
                &next,
            ),
        );
        let after_failure = format!("AfterFailure_{key}");
        let stop = format!("Stop_{key}");
        states.insert(
            failed,
            record(
                "step-failed",
                fields(&[("stepId", json!(step.id)), ("error.$", json!(error))]),
                &recorded,
                &after_failure,
            ),
        );
        states.insert(
            after_failure,
            json!({
                "Type": "Choice",
                "Comment": format!("{} failed: stop or go on, as the plan says (on_failure)", step.id),
                "Choices": [{
                    "And": [
                        { "Variable": format!("{plan}.onFailure"), "IsPresent": true },
                        {
                            "Variable": format!("{plan}.onFailure"),
                            "StringEquals": OnFailure::Stop.as_str()
                        }
                    ],
                    "Next": stop
                }],
                "Default": next
            }),
        );
        states.insert(
            stop,
            record(
                "playbook-stopped",
                fields(&[
                    ("playbookId", json!(playbook.id)),
                    ("stepId", json!(step.id)),
                    ("executionName.$", json!(EXECUTION_NAME)),
                ]),
                "$.stopped",
                STOPPED,
            ),
        );
    }
    states.insert(
        STOPPED.into(),
        json!({
            "Type": "Fail",
            "Comment": "A step set to stop on failure failed: the incident needs attention (ir retry, ir resolve)",
            "Error": "PlaybookStopped",
            "Cause": "a step set to stop on failure failed; the incident is needs-attention"
        }),
    );
    states.insert(
        "Finish".into(),
        record(
            "playbook-finished",
            fields(&[
                ("playbookId", json!(playbook.id)),
                ("executionName.$", json!(EXECUTION_NAME)),
            ]),
            "$.finished",
            "Done",
        ),
    );
    states.insert("Done".into(), json!({ "Type": "Succeed" }));
    let start = playbook
        .steps
        .first()
        .map_or_else(|| "Finish".to_owned(), |s| check(&s.id));
    let description = playbook
        .description
        .as_deref()
        .map(|d| format!(" {d}"))
        .unwrap_or_default();
    json!({
        "Comment": format!(
            "Playbook {} ({}).{description} Rendered by `ir playbooks render` from config/incident-response.yaml; do not edit.",
            playbook.id, playbook.trigger
        ),
        "StartAt": start,
        "States": states
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG_YAML;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml).unwrap()
    }

    fn with(from: &str, to: &str) -> String {
        assert!(
            DEFAULT_CONFIG_YAML.contains(from),
            "`{from}` not in the default config"
        );
        DEFAULT_CONFIG_YAML.replacen(from, to, 1)
    }

    fn states(doc: &Value) -> &Map<String, Value> {
        doc["States"].as_object().unwrap()
    }

    fn playbook_doc(c: &Config, id: &str) -> Value {
        let p = c.playbooks.iter().find(|p| p.id == id).unwrap();
        render_playbook(c, p)
    }

    #[test]
    fn names() {
        assert_eq!(pascal("immediate-isolation"), "ImmediateIsolation");
        assert_eq!(pascal("queue_for-review2"), "QueueForReview2");
        assert_eq!(
            function_substitution("ir-isolate-instance"),
            "IsolateInstanceFunction"
        );
        assert_eq!(function_substitution("ir-notify"), "NotifyFunction");
        assert_eq!(
            state_machine_substitution("immediate-isolation"),
            "PlaybookImmediateIsolationStateMachine"
        );
        assert_eq!(
            playbook_file("queue-for-review"),
            "playbook-queue-for-review.asl.json"
        );
    }

    #[test]
    fn renders_one_file_per_playbook_plus_triage_deterministically() {
        let c = Config::embedded().unwrap();
        let files = render(&c);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "triage.asl.json",
                "playbook-immediate-isolation.asl.json",
                "playbook-investigate-and-notify.asl.json",
                "playbook-queue-for-review.asl.json"
            ]
        );
        let again = render(&Config::embedded().unwrap());
        for ((_, a), (_, b)) in files.iter().zip(&again) {
            assert_eq!(to_pretty(a), to_pretty(b));
        }
        let text = to_pretty(&files[0].1);
        assert!(text.ends_with("}\n") && text.starts_with("{\n  \"Comment\""));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), files[0].1);
    }

    #[test]
    fn every_transition_targets_a_state_and_every_state_is_reachable() {
        let c = Config::embedded().unwrap();
        for (name, doc) in render(&c) {
            let states = states(&doc);
            let mut targets = vec![doc["StartAt"].as_str().unwrap().to_owned()];
            for s in states.values() {
                for k in ["Next", "Default"] {
                    if let Some(t) = s.get(k).and_then(Value::as_str) {
                        targets.push(t.to_owned());
                    }
                }
                for list in ["Choices", "Catch"] {
                    for c in s.get(list).and_then(Value::as_array).into_iter().flatten() {
                        targets.push(c["Next"].as_str().unwrap().to_owned());
                    }
                }
            }
            for t in &targets {
                assert!(states.contains_key(t), "{name}: {t} is not a state");
            }
            for s in states.keys() {
                assert!(targets.contains(s), "{name}: {s} is unreachable");
            }
        }
    }

    #[test]
    fn gate_levels_follow_the_escalation_matrix() {
        let c = Config::embedded().unwrap();
        let doc = playbook_doc(&c, "immediate-isolation");
        let s = states(&doc);
        // critical has two rows: levels 0 and 1, then exhaustion.
        for key in [
            "revoke_credentials",
            "disable_access_keys",
            "isolate_instance",
        ] {
            // The action's own dry-run first: the plan the approver is shown.
            assert_eq!(
                s[&format!("Check_{key}")]["Choices"][0]["Next"],
                format!("Plan_{key}")
            );
            let plan = &s[&format!("Plan_{key}")];
            assert_eq!(plan["Parameters"]["Payload"]["mode"], "dry-run");
            assert_eq!(plan["Next"], format!("Level_{key}_0"));
            let run = &s[&format!("Run_{key}")];
            assert_eq!(run["Catch"][0]["ErrorEquals"], json!([PLAN_CHANGED_ERROR]));
            assert_eq!(run["Catch"][0]["Next"], format!("Plan_{key}"));
            let g0 = &s[&format!("Gate_{key}_0")];
            assert_eq!(
                g0["Parameters"]["Payload"]["plan.$"],
                format!("$.plan_{key}.value")
            );
            assert!(g0["Parameters"]["Payload"].get("escalation.$").is_none());
            assert_eq!(g0["Resource"], LAMBDA_INVOKE_WAIT);
            assert_eq!(g0["Parameters"]["Payload"]["level"], 0);
            assert_eq!(g0["Parameters"]["Payload"]["taskToken.$"], "$$.Task.Token");
            assert_eq!(g0["Catch"][0]["ErrorEquals"], json!(["States.Timeout"]));
            assert_eq!(g0["Catch"][0]["Next"], format!("Escalate_{key}_1"));
            assert_eq!(g0["Catch"][1]["ErrorEquals"], json!(["Rejected"]));
            assert_eq!(g0["Catch"][1]["Next"], format!("NotApproved_{key}"));
            assert!(
                !g0["Retry"][0]["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e == "States.Timeout" || e == "States.ALL")
            );
            assert_eq!(
                s[&format!("Escalate_{key}_1")]["Choices"][0]["Next"],
                format!("Level_{key}_1")
            );
            let g1 = &s[&format!("Gate_{key}_1")];
            assert_eq!(g1["Parameters"]["Payload"]["level"], 1);
            assert_eq!(g1["Catch"][0]["Next"], format!("Exhausted_{key}"));
            assert!(!s.contains_key(&format!("Gate_{key}_2")));
            assert_eq!(
                s[&format!("Exhausted_{key}")]["Default"],
                format!("NotApproved_{key}")
            );
        }
        // A third level for critical adds a gate.
        let three = config(
            &with(
                "      - role: security_lead\n        timeout: 15m",
                "      - role: security_lead\n        timeout: 15m\n      - role: ciso\n        timeout: 1h",
            )
            .replacen(
                "  approver_roles:\n",
                "  approver_roles:\n    - role: ciso\n      identities: [\"arn:aws:iam::111122223333:role/Ciso\"]\n",
                1,
            ),
        );
        let doc = playbook_doc(&three, "immediate-isolation");
        assert!(states(&doc).contains_key("Gate_isolate_instance_2"));
        assert_eq!(
            states(&doc)["Gate_isolate_instance_1"]["Catch"][0]["Next"],
            "Escalate_isolate_instance_2"
        );
        // The levels are the longest row among the severities the trigger matches.
        let wide = config(&with(
            "trigger: severity == critical",
            "trigger: severity >= high",
        ));
        let p = &wide.playbooks[0];
        assert_eq!(escalation_levels(&wide, p), 2);
    }

    #[test]
    fn a_termination_step_renders_behind_a_gate_with_its_function() {
        let isolate = "      - id: isolate-instance\n        action: cloud:security_group_deny_all\n        requires_approval: true\n";
        let c = config(&with(
            isolate,
            &format!(
                "{isolate}      - id: terminate-instance\n        action: cloud:terminate_instance\n        requires_approval: true\n"
            ),
        ));
        assert!(substitutions(&c).contains(&"TerminateInstanceFunction".to_owned()));
        let doc = playbook_doc(&c, "immediate-isolation");
        let s = states(&doc);
        let plan = &s["Plan_terminate_instance"];
        assert_eq!(
            plan["Parameters"]["FunctionName"],
            "${TerminateInstanceFunction}"
        );
        assert_eq!(plan["Parameters"]["Payload"]["mode"], "dry-run");
        assert_eq!(plan["Next"], "Level_terminate_instance_0");
        let run = &s["Run_terminate_instance"];
        assert_eq!(
            run["Parameters"]["FunctionName"],
            "${TerminateInstanceFunction}"
        );
        assert_eq!(run["Parameters"]["Payload"]["resource.$"], "$.resource");
        assert_eq!(run["Catch"][0]["ErrorEquals"], json!([PLAN_CHANGED_ERROR]));
        // It runs after isolation and before the notification.
        assert_eq!(
            s["Recorded_isolate_instance"]["Next"],
            "Check_terminate_instance"
        );
        assert_eq!(
            s["Recorded_terminate_instance"]["Next"],
            "Check_notify_channel"
        );
        // The committed state machines render from the default config, which has no termination.
        let embedded = Config::embedded().unwrap();
        assert!(!substitutions(&embedded).contains(&"TerminateInstanceFunction".to_owned()));
    }

    #[test]
    fn steps_without_approval_have_no_gate() {
        let c = Config::embedded().unwrap();
        let doc = playbook_doc(&c, "immediate-isolation");
        let s = states(&doc);
        for key in ["collect_evidence", "snapshot_volumes", "notify_channel"] {
            assert_eq!(
                s[&format!("Check_{key}")]["Choices"][0]["Next"],
                format!("Run_{key}")
            );
            assert!(s.keys().all(|k| !k.starts_with(&format!("Gate_{key}"))));
            assert!(!s.contains_key(&format!("NotApproved_{key}")));
        }
        for id in ["investigate-and-notify", "queue-for-review"] {
            let doc = playbook_doc(&c, id);
            assert!(
                states(&doc)
                    .keys()
                    .all(|k| !k.starts_with("Gate_") && !k.starts_with("Level_")),
                "{id}"
            );
            assert!(
                !placeholders(&doc).contains(REQUEST_APPROVAL_FUNCTION),
                "{id}"
            );
        }
    }

    #[test]
    fn steps_chain_in_config_order_and_skip_what_the_plan_omits() {
        let c = Config::embedded().unwrap();
        let doc = playbook_doc(&c, "queue-for-review");
        let s = states(&doc);
        assert_eq!(doc["StartAt"], "Check_create_ticket");
        assert_eq!(s["Check_create_ticket"]["Default"], "Check_notify_channel");
        assert_eq!(
            s["Check_create_ticket"]["Choices"][0]["Variable"],
            "$.decision.plan.create_ticket"
        );
        assert_eq!(s["Recorded_create_ticket"]["Next"], "Check_notify_channel");
        // A failure goes on or stops, as the plan's `onFailure` says.
        assert_eq!(
            s["StepFailed_create_ticket"]["Next"],
            "AfterFailure_create_ticket"
        );
        let after = &s["AfterFailure_create_ticket"];
        // `continue` is left unsaid in a recorded plan: the choice checks presence first.
        let rule = &after["Choices"][0]["And"];
        for i in 0..2 {
            assert_eq!(
                rule[i]["Variable"],
                "$.decision.plan.create_ticket.onFailure"
            );
        }
        assert_eq!(rule[0]["IsPresent"], true);
        assert_eq!(rule[1]["StringEquals"], "stop");
        assert_eq!(after["Choices"][0]["Next"], "Stop_create_ticket");
        assert_eq!(after["Default"], "Check_notify_channel");
        let stop = &s["Stop_create_ticket"]["Parameters"]["Payload"];
        assert_eq!(stop["kind"], "playbook-stopped");
        assert_eq!(stop["stepId"], "create-ticket");
        assert_eq!(stop["playbookId"], "queue-for-review");
        assert_eq!(s["Stop_create_ticket"]["Next"], "Stopped");
        assert_eq!(s["Stopped"]["Type"], "Fail");
        assert_eq!(s["Check_notify_channel"]["Default"], "Finish");
        assert_eq!(
            s["Finish"]["Parameters"]["Payload"]["kind"],
            "playbook-finished"
        );
        assert_eq!(
            s["Finish"]["Parameters"]["Payload"]["playbookId"],
            "queue-for-review"
        );
        assert_eq!(s["Done"]["Type"], "Succeed");
        // Notify contract.
        assert_eq!(
            s["Run_create_ticket"]["Parameters"]["Payload"],
            json!({
                "incidentId.$": "$.incidentId",
                "stepId": "create-ticket",
                "mode.$": "$.decision.plan.create_ticket.mode",
                "step.$": "$.decision.plan.create_ticket"
            })
        );
        assert_eq!(
            s["Run_create_ticket"]["Parameters"]["FunctionName"],
            "${NotifyFunction}"
        );
    }

    #[test]
    fn every_lambda_task_has_the_standard_shape() {
        let c = Config::embedded().unwrap();
        for (name, doc) in render(&c) {
            for (state, s) in states(&doc) {
                if s["Type"] != "Task" {
                    continue;
                }
                assert!(
                    s["ResultPath"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("$.") && p.len() > 2),
                    "{name} {state}"
                );
                if s["Resource"] == LAMBDA_INVOKE {
                    assert_eq!(
                        s["ResultSelector"],
                        json!({ "value.$": "$.Payload" }),
                        "{name} {state}"
                    );
                    assert_eq!(s["Retry"], lambda_retry(), "{name} {state}");
                    let f = s["Parameters"]["FunctionName"].as_str().unwrap();
                    assert!(f.starts_with("${") && f.ends_with('}'), "{name} {state}");
                    let recorder = f == "${RecordFunction}";
                    // Recorders are never caught, except the triage's own decision record and
                    // its slot claims (a failure there is the triage's, recorded as such).
                    assert_eq!(
                        s.get("Catch").is_some(),
                        !recorder || state == "RecordTriage" || state == "ClaimSlot",
                        "{name} {state}"
                    );
                }
            }
        }
    }

    #[test]
    fn triage_routes_each_playbook_and_records_failures() {
        let c = Config::embedded().unwrap();
        let doc = render_triage(&c);
        let s = states(&doc);
        assert_eq!(doc["StartAt"], "Enrich");
        let choices = s["ChoosePlaybook"]["Choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3);
        assert_eq!(choices[0]["StringEquals"], "immediate-isolation");
        assert_eq!(choices[0]["Next"], "StartImmediateIsolation");
        let start = &s["StartImmediateIsolation"];
        assert_eq!(start["Resource"], START_EXECUTION);
        assert_eq!(
            start["Parameters"]["StateMachineArn"],
            "${PlaybookImmediateIsolationStateMachine}"
        );
        assert_eq!(
            start["Parameters"]["Name.$"],
            "$.playbookInput.value.executionName"
        );
        // The recorder decides whether the revision starts anything.
        assert_eq!(s["RecordTriage"]["Next"], "StartOrNot");
        assert_eq!(
            s["RecordTriage"]["Parameters"]["Payload"]["revision.$"],
            "$.revision"
        );
        let start_or_not = &s["StartOrNot"];
        assert_eq!(
            start_or_not["Choices"][0]["Variable"],
            "$.playbookInput.value.start"
        );
        assert_eq!(start_or_not["Choices"][0]["Next"], "ChoosePlaybook");
        assert_eq!(start_or_not["Default"], "PlaybookNotStarted");
        assert_eq!(s["PlaybookNotStarted"]["Type"], "Succeed");
        // A queued playbook waits, asks for its slot, and starts or stops waiting.
        assert_eq!(start_or_not["Choices"][1]["IsPresent"], true);
        assert_eq!(start_or_not["Choices"][1]["Next"], "WaitForSlot");
        assert_eq!(
            s["WaitForSlot"]["SecondsPath"],
            "$.playbookInput.value.queue.pollSeconds"
        );
        assert_eq!(s["WaitForSlot"]["Next"], "ClaimSlot");
        let claim = &s["ClaimSlot"]["Parameters"]["Payload"];
        assert_eq!(claim["kind"], "claim-slot");
        assert_eq!(claim["revision.$"], "$.revision");
        let slot = &s["SlotOrWait"];
        assert_eq!(slot["Choices"][0]["Next"], "ChoosePlaybook");
        assert_eq!(slot["Choices"][1]["Next"], "PlaybookNotStarted");
        assert_eq!(slot["Default"], "WaitForSlot");
        assert_eq!(
            s["RecordTriageFailure"]["Parameters"]["Payload"]["revision.$"],
            "$.revision"
        );
        for task in ["Enrich", "Score", "RecordTriage", "ClaimSlot"] {
            assert_eq!(s[task]["Catch"][0]["Next"], "RecordTriageFailure");
            assert_eq!(s[task]["Catch"][0]["ResultPath"], "$.error");
        }
        assert_eq!(
            s["RecordTriageFailure"]["Parameters"]["Payload"]["kind"],
            "triage-failed"
        );
        assert_eq!(s["RecordTriageFailure"]["Next"], "TriageFailed");
        assert_eq!(s["TriageFailed"]["Error"], "TriageFailed");
    }

    #[test]
    fn substitutions_are_exactly_the_placeholders_used() {
        for c in [
            Config::embedded().unwrap(),
            config(&with("        requires_approval: true\n", "")),
        ] {
            let used: BTreeSet<String> = render(&c)
                .iter()
                .flat_map(|(_, d)| placeholders(d))
                .collect();
            assert_eq!(substitutions(&c), used.into_iter().collect::<Vec<_>>());
        }
        let subs = substitutions(&Config::embedded().unwrap());
        for name in [
            "EnrichFunction",
            "ScoreFunction",
            "RecordFunction",
            "RequestApprovalFunction",
            "NotifyFunction",
            "IsolateInstanceFunction",
            "CollectEvidenceFunction",
            "PlaybookImmediateIsolationStateMachine",
        ] {
            assert!(subs.iter().any(|s| s == name), "{name}");
        }
    }

    #[test]
    fn substitute_fills_every_placeholder_or_names_the_missing_one() {
        let doc =
            json!({"a": ["${X}", "arn:${X}:${Y}-z", 1], "b": {"c": "$.path", "d": "${ not one }"}});
        let mut values = BTreeMap::new();
        values.insert("X".to_owned(), "x1".to_owned());
        assert_eq!(
            substitute(&doc, &values),
            Err(MissingSubstitution("Y".into()))
        );
        values.insert("Y".to_owned(), "y1".to_owned());
        assert_eq!(
            substitute(&doc, &values).unwrap(),
            json!({"a": ["x1", "arn:x1:y1-z", 1], "b": {"c": "$.path", "d": "${ not one }"}})
        );
        assert_eq!(
            placeholders(&doc).into_iter().collect::<Vec<_>>(),
            ["X", "Y"]
        );
    }

    #[test]
    fn pretty_printing_orders_keys_and_indents_by_two() {
        let v = json!({"b": [1, {"z": null, "a": "q\""}], "a": {}, "c": []});
        assert_eq!(
            to_pretty(&v),
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    {\n      \"a\": \"q\\\"\",\n      \"z\": null\n    }\n  ],\n  \"c\": []\n}\n"
        );
        let state = json!({"Next": "B", "Type": "Task", "Retry": [], "Resource": "r", "x": 1});
        assert_eq!(
            to_pretty(&state),
            "{\n  \"Type\": \"Task\",\n  \"Resource\": \"r\",\n  \"x\": 1,\n  \"Retry\": [],\n  \"Next\": \"B\"\n}\n"
        );
    }
}
