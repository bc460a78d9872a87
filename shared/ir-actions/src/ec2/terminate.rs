//! terminate-instance: end a compromised instance once its disks are kept as evidence.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{AttributeBooleanValue, InstanceAttributeName};
use ir_core::action::{ActionReport, ContainmentRecord, ContainmentRequest, SnapshotRef};
use ir_core::action::{TerminationRecord, VolumeAttachment};
use ir_core::config::Mode;
use ir_core::termination::{self, Backing, SnapshotState};
use serde_json::json;

use super::read::{
    conflict, describe_owned_instance, dry_run_outcome, ebs_volumes, filter, instance_hold_key,
    requested_instance, tag_map,
};
use super::tags::AUTOSCALING_GROUP_TAG;
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;
use ir_aws::store::{AuditLog, IncidentStore, IsolationHolds, TableNames};

/// The function (and report action) name.
pub const TERMINATE_ACTION: &str = "ir-terminate-instance";

/// The state a termination plans to reach.
const TERMINATED: &str = "terminated";

/// Terminates the instance the request names, only when every EBS volume attached to it now has
/// a completed snapshot taken for the incident: the snapshots the incident's audit chain records
/// from enforced runs of snapshot-volumes, each verified with `DescribeSnapshots` (it exists, is
/// of that volume, is `completed`, was started after the incident was detected; see
/// [`ir_core::termination`]). Tags on snapshots and on the instance are not read as truth.
///
/// Then the termination protection isolation set is lifted (`ModifyInstanceAttribute
/// DisableApiTermination=false`, only when it is on) and the instance terminated
/// (`TerminateInstances`). Both are changes of the report, before → after, and the report's
/// record ([`TerminationRecord`]) names the instance and the snapshots that backed it: release
/// restores nothing of a terminated instance. Dry-run (the default) reads and checks the same,
/// proves both calls with `DryRun=true`, and reports the plan: the instance, the protection that
/// would be lifted, the snapshot of each volume, what becomes of each volume.
///
/// # Errors
/// `InvalidInput` for a resource that is not an EC2 instance; `NotFound` for an unknown,
/// terminated or terminating instance, or an incident the suite has no record of; `Protected`
/// when a volume has no completed snapshot taken for the incident (naming every such volume and
/// why), or the instance has no EBS volume; `Conflict` when another incident holds the instance;
/// `Verification` when EC2 does not answer the termination with a shutting-down or terminated
/// instance; AWS failures as classified. A failure after the protection was lifted is
/// `Incomplete`, carrying that change.
///
/// `records` reads the suite's tables (the security account's); `clients` act on the instance
/// (in its account and region).
pub async fn terminate_instance(
    records: &Clients,
    clients: &Clients,
    names: &TableNames,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    let instance_id = requested_instance(req, TERMINATE_ACTION)?;
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        TERMINATE_ACTION,
        req.mode,
        clients.calls().count(),
    );
    let (instance, owner) = describe_owned_instance(clients, instance_id).await?;

    // Another incident's isolation hold: its release restores this instance, not ours to end.
    let key = instance_hold_key(clients, instance_id, owner.as_deref())?;
    if let Some(other) = IsolationHolds::new(records.clone(), names)
        .get(&key)
        .await?
        .filter(|h| h.incident_id != req.incident_id)
    {
        return Err(conflict(
            "terminate-instance",
            format!(
                "instance {instance_id} is contained by incident {} ({key}): nothing was changed",
                other.incident_id
            ),
        ));
    }

    let attached = attached_volumes(clients, &instance).await?;
    let backing = backed(records, clients, names, req, instance_id, &attached).await?;

    let state = instance
        .state()
        .and_then(|s| s.name())
        .map_or_else(String::new, |n| n.as_str().to_owned());
    let protected = termination_protection(clients, instance_id).await?;
    notes(&instance, &backing, &req.incident_id, &mut report);

    let boolean = |v: bool| AttributeBooleanValue::builder().value(v).build();
    let lift = || {
        clients
            .ec2()
            .modify_instance_attribute()
            .instance_id(instance_id)
            .disable_api_termination(boolean(false))
    };
    let terminate = || {
        clients
            .ec2()
            .terminate_instances()
            .instance_ids(instance_id)
    };
    if report.mode() == Mode::DryRun {
        if protected {
            dry_run_outcome("ModifyInstanceAttribute", lift().dry_run(true).send().await)?;
        }
        dry_run_outcome("TerminateInstances", terminate().dry_run(true).send().await)?;
        report.change(
            instance_id,
            "disable-api-termination",
            json!(protected),
            json!(false),
        );
        report.change(
            instance_id,
            "instance-state",
            json!(state),
            json!(TERMINATED),
        );
        return Ok(report.finish(clients.calls()));
    }

    if protected {
        lift().send().await.map_err(|e| {
            ActionError::sdk("ModifyInstanceAttribute", e)
                .not_found_as(|| format!("instance {instance_id}"))
        })?;
    }
    report.change(
        instance_id,
        "disable-api-termination",
        json!(protected),
        json!(false),
    );
    let ended = match terminate().send().await {
        Ok(out) => out,
        Err(e) => {
            let failed = ActionError::sdk("TerminateInstances", e)
                .not_found_as(|| format!("instance {instance_id}"));
            return Err(failed.after(&report.snapshot(clients.calls())));
        }
    };
    let now = ended
        .terminating_instances()
        .iter()
        .find(|c| c.instance_id() == Some(instance_id))
        .and_then(|c| c.current_state())
        .and_then(|s| s.name())
        .map_or_else(String::new, |n| n.as_str().to_owned());
    report.change(instance_id, "instance-state", json!(state), json!(now));
    if now != "shutting-down" && now != TERMINATED {
        let e = ActionError::Verification(format!(
            "TerminateInstances answered instance {instance_id} is `{now}`, not shutting-down or terminated"
        ));
        return Err(e.after(&report.snapshot(clients.calls())));
    }
    report.report_mut().record = Some(ContainmentRecord::Termination(TerminationRecord {
        instance_id: instance_id.to_owned(),
        snapshots: backing
            .iter()
            .map(|b| SnapshotRef {
                snapshot_id: b.snapshot_id.clone(),
                volume_id: b.volume.volume_id.clone(),
            })
            .collect(),
        protection_lifted: protected,
    }));
    Ok(report.finish(clients.calls()))
}

/// The EBS volumes attached to the instance now: its block device mappings, and every volume
/// `DescribeVolumes` finds attached (or attaching) to it, which a mapping read a moment earlier
/// may not list yet. In mapping order, then by id.
async fn attached_volumes(
    clients: &Clients,
    instance: &aws_sdk_ec2::types::Instance,
) -> Result<Vec<VolumeAttachment>, ActionError> {
    let instance_id = instance.instance_id().unwrap_or_default();
    let mut volumes = ebs_volumes(instance);
    let mut pages = clients
        .ec2()
        .describe_volumes()
        .filters(filter("attachment.instance-id", [instance_id]))
        .into_paginator()
        .send();
    let mut more: Vec<VolumeAttachment> = Vec::new();
    while let Some(out) = pages.next().await {
        let out = out.map_err(|e| ActionError::sdk("DescribeVolumes", e))?;
        for v in out.volumes() {
            let Some(volume_id) = v.volume_id() else {
                continue;
            };
            if volumes.iter().any(|known| known.volume_id == volume_id) {
                continue;
            }
            let attachment = v
                .attachments()
                .iter()
                .find(|a| a.instance_id() == Some(instance_id));
            more.push(VolumeAttachment {
                device_name: attachment
                    .and_then(|a| a.device())
                    .unwrap_or("unknown device")
                    .to_owned(),
                volume_id: volume_id.to_owned(),
                delete_on_termination: attachment
                    .and_then(|a| a.delete_on_termination())
                    .unwrap_or(false),
            });
        }
    }
    more.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    volumes.extend(more);
    Ok(volumes)
}

/// The snapshot backing each attached volume, from the incident's records and EC2, or
/// `Protected` naming every volume without one.
async fn backed(
    records: &Clients,
    clients: &Clients,
    names: &TableNames,
    req: &ContainmentRequest,
    instance_id: &str,
    attached: &[VolumeAttachment],
) -> Result<Vec<Backing>, ActionError> {
    let id = req.incident_id.as_str();
    let incident = IncidentStore::new(records.clone(), names.clone())
        .get(id)
        .await?
        .ok_or_else(|| {
            ActionError::NotFound(format!(
                "incident {id} is not in the suite's records: nothing says which snapshots back \
                 instance {instance_id}"
            ))
        })?;
    let chain = AuditLog::new(records.clone(), names.clone())
        .chain(id)
        .await?;
    let recorded = termination::recorded_snapshots(&chain, instance_id);
    let described = describe_snapshots(clients, &recorded).await?;
    termination::backing(
        attached,
        &recorded,
        &described,
        incident.summary.timeline.detected_at,
    )
    .map_err(|why| {
        ActionError::Protected(format!(
            "instance {instance_id} is not terminated without its evidence: {}",
            why.join("; ")
        ))
    })
}

/// The recorded snapshots as EC2 describes them now (owned by this account). Filtered by id
/// rather than asked by id, so that a recorded snapshot that no longer exists is absent rather
/// than an error for the whole call.
async fn describe_snapshots(
    clients: &Clients,
    recorded: &[SnapshotRef],
) -> Result<Vec<SnapshotState>, ActionError> {
    let ids: BTreeSet<&str> = recorded.iter().map(|r| r.snapshot_id.as_str()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut pages = clients
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter("snapshot-id", ids))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ActionError::sdk("DescribeSnapshots", e))?;
        for s in page.snapshots() {
            let (Some(snapshot_id), Some(volume_id)) = (s.snapshot_id(), s.volume_id()) else {
                continue;
            };
            out.push(SnapshotState {
                snapshot_id: snapshot_id.to_owned(),
                volume_id: volume_id.to_owned(),
                state: s
                    .state()
                    .map_or_else(String::new, |st| st.as_str().to_owned()),
                progress: s.progress().map(str::to_owned),
                start_time: s.start_time().and_then(|t| {
                    time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok()
                }),
            });
        }
    }
    Ok(out)
}

/// `DisableApiTermination` as EC2 reports it now (only `DescribeInstanceAttribute` returns it).
async fn termination_protection(clients: &Clients, instance_id: &str) -> Result<bool, ActionError> {
    let out = clients
        .ec2()
        .describe_instance_attribute()
        .instance_id(instance_id)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .map_err(|e| {
            ActionError::sdk("DescribeInstanceAttribute", e)
                .not_found_as(|| format!("instance {instance_id} (disableApiTermination)"))
        })?;
    Ok(out
        .disable_api_termination()
        .and_then(|v| v.value())
        .unwrap_or(false))
}

fn notes(
    instance: &aws_sdk_ec2::types::Instance,
    backing: &[Backing],
    incident: &str,
    report: &mut ReportBuilder,
) {
    for b in backing {
        let fate = if b.volume.delete_on_termination {
            "deleted with the instance (DeleteOnTermination)"
        } else {
            "kept, detached (DeleteOnTermination is off)"
        };
        report.note(format!(
            "{} ({}) is backed by snapshot {} (completed, taken for incident {incident}); the volume is {fate}",
            b.volume.volume_id, b.volume.device_name, b.snapshot_id
        ));
    }
    report.note(
        "A termination cannot be undone: memory and instance-store contents are lost, and \
         `ir release` restores nothing of this instance (it says the suite terminated it).",
    );
    if let Some(asg) = tag_map(instance.tags()).get(AUTOSCALING_GROUP_TAG) {
        report.note(format!(
            "The instance belongs to Auto Scaling group {asg}, which will launch a replacement from the same launch template: fix what was compromised there first."
        ));
    }
}
