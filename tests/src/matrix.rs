//! The fault matrix: the immediate-isolation story on the offline suite with one fault injected
//! at one AWS call of one of its action functions ([`crate::fault`]), or that function's
//! process killed after k of its mutations, and what the incident says afterwards held against
//! what really happened to the victim and the evidence.
//!
//! Each cell ends in one of:
//! - `contained`: the incident is `contained`, every interface of the victim is in one group it
//!   did not have before, its role holds the revoke-sessions deny, every step of the plan has
//!   its result, failure or refusal in the audit chain, and the chain verifies; a step that
//!   failed and was allowed to (evidence, notification) is named: `contained (failed and
//!   recorded: collect-evidence)`;
//! - `needs-attention`: the playbook stopped, the incident says so with the failed step and its
//!   error, and its containment records match the victim: an interface is isolated only if an
//!   isolation record says so, the role holds the deny only if a record says so;
//! - `STUCK: …`: the run did not end within the cell's time (the incident says what it says,
//!   which is classified no further);
//! - `LIE: …`: anything else: contained over a victim that is not, a change no record names, a
//!   step with no record, an evidence manifest or snapshot the audit names that does not exist,
//!   a snapshot of the incident no record names, an audit chain that does not verify.
//!
//! With `IR_MATRIX_DUMP` set, a chain that does not verify is printed item by item (keys, seq,
//! action, the start of the detail) on stderr.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use std::collections::BTreeMap;

use ir_core::action::ContainmentRecord;
use ir_core::audit::AuditEvent;
use ir_core::audit::event::StepArtifacts;
use ir_core::incident::Status;
use time::OffsetDateTime;

use crate::fault::FaultRule;
use crate::offline::{
    FINDING_FILE, Faults, Offline, OfflineError, PLAYBOOK, Settings, VictimState,
};

type Result<T> = std::result::Result<T, OfflineError>;

/// The functions whose AWS calls get the faults: every action of immediate-isolation.
pub const ACTIONS: [&str; 7] = [
    "ir-collect-evidence",
    "ir-snapshot-volumes",
    "ir-revoke-sessions",
    "ir-disable-access-keys",
    "ir-deny-principal",
    "ir-isolate-instance",
    "ir-notify",
];
/// The gated steps, in order.
const GATES: [&str; 2] = ["revoke-credentials", "isolate-instance"];
/// How long one cell may take.
const CELL_WAIT: Duration = Duration::from_secs(240);

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    pub outcome: String,
    /// Faults the proxy injected.
    pub injected: u32,
    /// Every operation each action function called, in order (the baseline's are the matrix's
    /// rows).
    pub seen: BTreeMap<String, Vec<String>>,
    /// How many times the faulted function's process was killed.
    pub kills: usize,
    pub seconds: f64,
}

fn fail(why: impl Into<String>) -> OfflineError {
    OfflineError(why.into())
}

/// Runs the story with `rule` on one action function's calls (`(function, rule)`) and
/// classifies the end.
///
/// # Errors
/// The suite could not start, or the story could not be driven (not an outcome: an outcome is
/// what the incident says, a lie included).
pub async fn cell(rule: Option<(&str, FaultRule)>) -> Result<Cell> {
    let started = Instant::now();
    let faulted = rule.as_ref().map(|(f, _)| (*f).to_owned());
    let off = Offline::start(Settings {
        faults: Some(Faults {
            binaries: ACTIONS.map(str::to_owned).to_vec(),
            rule: rule.map(|(f, r)| (f.to_owned(), r)),
        }),
        ..Settings::default()
    })
    .await?;
    let before = off.victim.state(&off.clients).await?;
    let now = OffsetDateTime::now_utc();
    off.seed_history(3, now).await?;
    let finding_id = format!("{:032x}", started.elapsed().as_nanos() ^ 0xfa17);
    let envelope = off
        .victim
        .finding(&finding_id, now, time::Duration::minutes(5))?;
    let answer = off.invoke("ir-ingest", &envelope).await?;
    if let Some(e) = answer.error {
        return Err(fail(format!("ir-ingest failed on {FINDING_FILE}: {e}")));
    }
    let incident = ir_core::correlate::incident_id(&format!(
        "guardduty:{}:{}:{finding_id}",
        crate::ACCOUNT_ID,
        crate::REGION
    ));
    let run = off.execution_arn(off.playbook_arn(PLAYBOOK), &incident);
    let status = drive(&off, &incident, &run).await?;
    let outcome = classify(&off, &incident, status, &before).await?;
    let seen = off
        .fault_proxies
        .iter()
        .map(|(f, p)| (f.clone(), p.seen()))
        .collect();
    let injected = faulted
        .as_ref()
        .and_then(|f| off.fault_proxies.get(f))
        .map_or(0, |p| p.injected());
    let kills = faulted
        .as_ref()
        .map_or(0, |f| off.starts(f).saturating_sub(1));
    Ok(Cell {
        outcome,
        injected,
        seen,
        kills,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Approves every gate as it asks (two people each) until the playbook run ends; its status,
/// and the error and cause it failed with.
async fn drive(off: &Offline, incident: &str, run: &str) -> Result<(ExecutionStatus, String)> {
    let deadline = Instant::now() + CELL_WAIT;
    let approvals = ir_aws::store::ApprovalStore::new(off.clients.clone(), off.names.clone());
    let mut approved = BTreeSet::new();
    loop {
        let described = off
            .clients
            .sfn()
            .describe_execution()
            .execution_arn(run)
            .send()
            .await;
        if let Ok(d) = &described
            && d.status() != &ExecutionStatus::Running
        {
            if d.status() != &ExecutionStatus::Succeeded
                && std::env::var_os("IR_MATRIX_DUMP").is_some()
            {
                dump_history(off, run).await;
            }
            let why = format!(
                "{} {}",
                d.error().unwrap_or_default(),
                d.cause()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
            return Ok((d.status().clone(), why.trim().to_owned()));
        }
        for a in approvals
            .pending(incident)
            .await
            .map_err(|e| fail(format!("reading approvals: {e}")))?
        {
            if !GATES.contains(&a.step_id.as_str()) {
                continue;
            }
            for who in [&off.people.alice, &off.people.bob] {
                let key = (a.step_id.clone(), a.requested_at, who.arn.clone());
                if approved.contains(&key) {
                    continue;
                }
                let out = off
                    .ir_as(
                        who,
                        &[
                            "approve",
                            incident,
                            "--step",
                            &a.step_id,
                            "--reason",
                            "fault matrix",
                        ],
                    )
                    .await?;
                // Approved, or refused by policy (already decided, say): done. A failure (1)
                // is asked again on the next round.
                if out.status.success() || out.status.code() == Some(4) {
                    approved.insert(key);
                }
            }
        }
        if Instant::now() > deadline {
            if std::env::var_os("IR_MATRIX_DUMP").is_some() {
                dump_history(off, run).await;
            }
            return Ok((
                ExecutionStatus::Running,
                format!("still running after {CELL_WAIT:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the incident says, held against the victim.
async fn classify(
    off: &Offline,
    incident: &str,
    (run, why): (ExecutionStatus, String),
    before: &VictimState,
) -> Result<String> {
    let stored = off
        .incident(incident)
        .await?
        .ok_or_else(|| fail(format!("incident {incident} is gone")))?;
    let after = off.victim.state(&off.clients).await?;
    let isolated_record = stored
        .records
        .iter()
        .any(|r| matches!(r, ContainmentRecord::Isolation(_)));
    let deny_record = stored
        .records
        .iter()
        .any(|r| matches!(r, ContainmentRecord::InlinePolicy(_)));
    let changed: Vec<&String> = after
        .interface_groups
        .iter()
        .filter(|(eni, groups)| before.interface_groups.get(*eni) != Some(groups))
        .map(|(eni, _)| eni)
        .collect();
    let all_isolated = {
        let groups: BTreeSet<&Vec<String>> = after.interface_groups.values().collect();
        groups.len() == 1
            && groups.iter().all(|g| {
                g.len() == 1 && before.interface_groups.values().all(|b| !b.contains(&g[0]))
            })
    };
    let deny_on_role = after.role_policies.len() > before.role_policies.len();
    let verify = off
        .ir_as_responder(&["audit", "verify", incident, "--json"])
        .await?;
    if !verify.status.success() {
        if std::env::var_os("IR_MATRIX_DUMP").is_some() {
            let items = off
                .clients
                .dynamodb()
                .query()
                .table_name(&off.names.audit)
                .key_condition_expression("incidentId = :i")
                .expression_attribute_values(
                    ":i",
                    aws_sdk_dynamodb::types::AttributeValue::S(incident.to_owned()),
                )
                .send()
                .await;
            if let Ok(out) = items {
                for item in out.items() {
                    let mut keys: Vec<&String> = item.keys().collect();
                    keys.sort();
                    let detail = item
                        .get("detail")
                        .and_then(|d| d.as_s().ok())
                        .map(|d| d.chars().take(300).collect::<String>())
                        .unwrap_or_default();
                    eprintln!(
                        "ITEM {:?} {:?} {keys:?} {detail}",
                        item.get("seq"),
                        item.get("action")
                    );
                }
            }
        }
        return Ok(format!(
            "LIE: the audit chain does not verify: {}{}",
            String::from_utf8_lossy(&verify.stdout).trim(),
            String::from_utf8_lossy(&verify.stderr).trim()
        ));
    }
    if run == ExecutionStatus::Running {
        return Ok(format!(
            "STUCK: the run is {why}; the incident says {}",
            stored.summary.status
        ));
    }
    let steps = match steps_held(off, incident, &stored).await? {
        Ok(steps) => steps,
        Err(lie) => return Ok(lie),
    };
    let status = stored.summary.status;
    Ok(match status {
        Status::Contained if !steps.unrecorded.is_empty() => format!(
            "LIE: contained, but no record of step(s) {}",
            steps.unrecorded.join(", ")
        ),
        Status::Contained if all_isolated && deny_on_role && isolated_record && deny_record => {
            if steps.failed.is_empty() {
                "contained".to_owned()
            } else {
                format!(
                    "contained (failed and recorded: {})",
                    steps.failed.join(", ")
                )
            }
        }
        Status::Contained => format!(
            "LIE: contained, but isolated={all_isolated} deny={deny_on_role} records: isolation={isolated_record} deny={deny_record}"
        ),
        Status::NeedsAttention => {
            let error = stored
                .last_error
                .as_ref()
                .map(|e| e.step.clone())
                .unwrap_or_default();
            if error.is_empty() {
                "LIE: needs-attention without the failed step".to_owned()
            } else if !changed.is_empty() && !isolated_record {
                format!(
                    "LIE: needs-attention at {error}, but {} interface(s) changed with no isolation record",
                    changed.len()
                )
            } else if isolated_record && !all_isolated {
                format!(
                    "LIE: needs-attention at {error}, an isolation record over a victim not isolated"
                )
            } else if deny_on_role != deny_record {
                format!(
                    "LIE: needs-attention at {error}, deny on the role={deny_on_role} but recorded={deny_record}"
                )
            } else {
                let applied: Vec<&str> = [(deny_record, "revoke"), (isolated_record, "isolate")]
                    .into_iter()
                    .filter_map(|(yes, s)| yes.then_some(s))
                    .collect();
                format!(
                    "needs-attention at {error} (applied: {}; interfaces changed: {})",
                    if applied.is_empty() {
                        "none".to_owned()
                    } else {
                        applied.join(", ")
                    },
                    changed.len()
                )
            }
        }
        other => format!("LIE: the run ended {run:?} ({why}) and the incident is {other}"),
    })
}

/// What the audit chain says of the plan's steps.
#[derive(Debug, Default)]
struct Steps {
    /// Steps with a `step-failed` record and no result.
    failed: Vec<String>,
    /// Steps of the plan with no result, failure or refusal.
    unrecorded: Vec<String>,
}

/// The plan's steps as the audit records them, and the evidence and snapshots it names held
/// against the bucket and EC2: `Err` is the lie found.
async fn steps_held(
    off: &Offline,
    incident: &str,
    stored: &ir_aws::store::Incident,
) -> Result<std::result::Result<Steps, String>> {
    let chain = ir_aws::store::AuditLog::new(off.clients.clone(), off.names.clone())
        .chain(incident)
        .await
        .map_err(|e| fail(format!("reading the audit chain: {e}")))?;
    let events: Vec<AuditEvent> = chain
        .iter()
        .filter_map(|r| AuditEvent::read(&r.action, &r.detail).ok())
        .collect();
    let mut steps = Steps::default();
    let planned: Vec<String> = stored
        .decision
        .as_ref()
        .map(|d| d.playbook.steps.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    for id in planned {
        let ends: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.ends_step() && e.step() == Some(id.as_str()))
            .collect();
        if ends.iter().any(|e| matches!(e, AuditEvent::Step(_))) {
            continue;
        }
        if ends.iter().any(|e| matches!(e, AuditEvent::StepFailed(_))) {
            steps.failed.push(id);
        } else if ends.is_empty() {
            steps.unrecorded.push(id);
        }
    }
    let mut recorded_snapshots = BTreeSet::new();
    for event in &events {
        let AuditEvent::Step(step) = event else {
            continue;
        };
        match &step.artifacts {
            Some(StepArtifacts::Evidence(e)) => {
                let found = off
                    .clients
                    .s3()
                    .head_object()
                    .bucket(&e.bucket)
                    .key(&e.manifest_key)
                    .version_id(&e.manifest_version_id)
                    .send()
                    .await;
                if found.is_err() {
                    return Ok(Err(format!(
                        "LIE: {} names manifest {} version {}, which the bucket does not hold",
                        step.step, e.manifest_key, e.manifest_version_id
                    )));
                }
            }
            Some(StepArtifacts::Snapshots(s)) => {
                recorded_snapshots.extend(s.snapshots.iter().map(|r| r.snapshot_id.clone()));
            }
            None => {}
        }
    }
    let tagged = off
        .clients
        .ec2()
        .describe_snapshots()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:ir:incident")
                .values(incident)
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail(format!("describing the incident's snapshots: {e:?}")))?;
    let existing: BTreeSet<String> = tagged
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    if let Some(missing) = recorded_snapshots.difference(&existing).next() {
        return Ok(Err(format!(
            "LIE: the audit names snapshot {missing}, which does not exist"
        )));
    }
    let untracked: Vec<&String> = existing.difference(&recorded_snapshots).collect();
    if !untracked.is_empty() {
        return Ok(Err(format!(
            "LIE: {} snapshot(s) of the incident no record names",
            untracked.len()
        )));
    }
    Ok(Ok(steps))
}

/// The run's last events, on stderr (with `IR_MATRIX_DUMP`).
async fn dump_history(off: &Offline, run: &str) {
    let Ok(h) = off
        .clients
        .sfn()
        .get_execution_history()
        .execution_arn(run)
        .reverse_order(true)
        .max_results(25)
        .send()
        .await
    else {
        return;
    };
    for e in h.events().iter().rev() {
        eprintln!("EVENT {e:?}");
    }
}
