//! The fault matrix: the immediate-isolation story on the offline suite with one fault injected
//! at one AWS call of its containment actions ([`crate::fault`]), and what the incident says
//! afterwards held against what really happened to the victim.
//!
//! Each cell ends in one of:
//! - `contained`: the incident is `contained`, every interface of the victim is in one group it
//!   did not have before, its role holds the revoke-sessions deny, the audit chain verifies;
//! - `needs-attention`: the playbook stopped, the incident says so with the failed step and its
//!   error, and its containment records match the victim: an interface is isolated only if an
//!   isolation record says so, the role holds the deny only if a record says so;
//! - `LIE: …`: anything else (contained over a victim that is not, a change no record names, an
//!   audit chain that does not verify).
//!
//! With `IR_MATRIX_DUMP` set, a chain that does not verify is printed item by item (keys, seq,
//! action, the start of the detail) on stderr.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::action::ContainmentRecord;
use ir_core::incident::Status;
use time::OffsetDateTime;

use crate::fault::FaultRule;
use crate::offline::{FINDING_FILE, Offline, OfflineError, PLAYBOOK, Settings, VictimState};

type Result<T> = std::result::Result<T, OfflineError>;

/// The functions whose AWS calls get the faults: the destructive steps of immediate-isolation.
pub const ACTIONS: [&str; 2] = ["ir-revoke-sessions", "ir-isolate-instance"];
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
    /// Every operation the action functions called, in order (the baseline's is the matrix's
    /// rows).
    pub seen: Vec<String>,
    pub seconds: f64,
}

fn fail(why: impl Into<String>) -> OfflineError {
    OfflineError(why.into())
}

/// Runs the story with `rule` on the action functions' calls and classifies the end.
///
/// # Errors
/// The suite could not start, or the story could not be driven (not an outcome: an outcome is
/// what the incident says, a lie included).
pub async fn cell(rule: Option<FaultRule>) -> Result<Cell> {
    let started = Instant::now();
    let off = Offline::start(Settings {
        faults: Some((ACTIONS.map(str::to_owned).to_vec(), rule)),
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
    let (injected, seen) = off
        .fault_proxy
        .as_ref()
        .map(|p| (p.injected(), p.seen()))
        .unwrap_or_default();
    Ok(Cell {
        outcome,
        injected,
        seen,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Approves every gate as it asks (two people each) until the playbook run ends.
async fn drive(off: &Offline, incident: &str, run: &str) -> Result<ExecutionStatus> {
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
            return Ok(d.status().clone());
        }
        for a in approvals
            .pending(incident)
            .await
            .map_err(|e| fail(format!("reading approvals: {e}")))?
        {
            let key = (a.step_id.clone(), a.requested_at);
            if !GATES.contains(&a.step_id.as_str()) || !approved.insert(key) {
                continue;
            }
            for who in [&off.people.alice, &off.people.bob] {
                off.ir_as(
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
            }
        }
        if Instant::now() > deadline {
            return Err(fail(format!("{run} still running after {CELL_WAIT:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the incident says, held against the victim.
async fn classify(
    off: &Offline,
    incident: &str,
    run: ExecutionStatus,
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
    let status = stored.summary.status;
    Ok(match status {
        Status::Contained if all_isolated && deny_on_role && isolated_record && deny_record => {
            "contained".to_owned()
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
        other => format!("LIE: the run ended {run:?} and the incident is {other}"),
    })
}
