//! release-containment: undo exactly what isolate-instance, deny-principal, revoke-sessions and
//! disable-access-keys changed, from the records they returned. Never touches evidence
//! (snapshots, evidence objects) and never removes anything it did not put there. A termination
//! is not undone: an instance terminate-instance terminated is named as such, and nothing of it
//! (its isolation included) is restored.

use ir_aws::Clients;
use ir_core::action::{ActionReport, ContainmentRecord, ReleaseRequest, TerminationRecord};

use crate::{ActionError, ReportBuilder, ec2, iam};

/// The name release reports under.
pub const ACTION: &str = "ir-release-containment";

/// Restores every record of the request, in reverse order of containment (the last change is
/// undone first). Dry-run plans the restoration; a second run finds everything restored and
/// reports `already-in-place`. A failure part-way reports what was already restored.
pub async fn release_containment(
    clients: &Clients,
    req: &ReleaseRequest,
) -> Result<ActionReport, ActionError> {
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        ACTION,
        req.mode,
        clients.calls().count(),
    );
    if req.records.is_empty() {
        report.note("no containment records: nothing to release");
    }
    let terminated: Vec<&TerminationRecord> = req
        .records
        .iter()
        .filter_map(|r| match r {
            ContainmentRecord::Termination(t) => Some(t),
            _ => None,
        })
        .collect();
    for record in req.records.iter().rev() {
        // Each restoration is boxed: the three futures are large, and nesting them inline in one
        // state machine makes the function's future needlessly deep.
        let restored = match record {
            ContainmentRecord::Termination(t) => {
                report.note(terminated_note(t, &req.incident_id));
                Ok(())
            }
            ContainmentRecord::Isolation(r)
                if terminated.iter().any(|t| t.instance_id == r.instance_id) =>
            {
                report.note(format!(
                    "{}: its isolation is not restored, the instance no longer exists (terminated by the suite)",
                    r.instance_id
                ));
                Ok(())
            }
            ContainmentRecord::Isolation(r) => {
                Box::pin(ec2::restore_isolation(clients, r, &mut report)).await
            }
            ContainmentRecord::InlinePolicy(r) => {
                Box::pin(iam::restore_inline_policy(clients, r, &mut report)).await
            }
            ContainmentRecord::AccessKeys(r) => {
                Box::pin(iam::restore_access_keys(clients, r, &mut report)).await
            }
        };
        if let Err(e) = restored {
            return Err(e.after(&report.snapshot(clients.calls())));
        }
    }
    Ok(report.finish(clients.calls()))
}

/// What release says of an instance the suite terminated.
fn terminated_note(t: &TerminationRecord, incident_id: &str) -> String {
    let snapshots: Vec<String> = t
        .snapshots
        .iter()
        .map(|s| format!("{} of {}", s.snapshot_id, s.volume_id))
        .collect();
    format!(
        "instance {} was terminated by the suite (incident {incident_id}): a termination cannot be undone, nothing of it is restored; its snapshots stay as evidence ({})",
        t.instance_id,
        snapshots.join(", ")
    )
}
