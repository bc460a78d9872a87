//! snapshot-volumes: one crash-consistent set of EBS snapshots of an instance, for evidence.

use aws_sdk_ec2::types::{InstanceSpecification, ResourceType, TagSpecification};
use ir_core::action::{ActionReport, Artifacts, ContainmentRequest, SnapshotRef};
use ir_core::config::Mode;
use serde_json::{Value, json};

use super::read::{
    describe_instance, dry_run_outcome, ebs_volumes, filter, requested_instance, tag,
};
use super::tags::{MAX_TAG_VALUE, TAG_FINDING, TAG_INCIDENT, TAG_INSTANCE};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

/// The function (and report action) name.
pub const SNAPSHOT_ACTION: &str = "ir-snapshot-volumes";

/// Snapshots every EBS volume of the instance the request names, boot volume included, with ONE
/// multi-volume `CreateSnapshots` call (the snapshots are crash-consistent with each other),
/// tagged `ir:incident`, `ir:finding`, `ir:instance` and `Name`. Idempotent: snapshots already
/// tagged with this incident and instance are returned as they are (`AlreadyInPlace`). Dry-run
/// (the default) lists the volumes and proves the permission with `DryRun=true`.
///
/// # Errors
/// `InvalidInput` for a resource that is not an EC2 instance; `NotFound` for an unknown or
/// terminated instance; AWS failures as classified.
pub async fn snapshot_volumes(
    clients: &Clients,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    let instance_id = requested_instance(req, SNAPSHOT_ACTION)?;
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        SNAPSHOT_ACTION,
        req.mode,
        clients.calls().count(),
    );
    let instance = describe_instance(clients, instance_id).await?;
    let volumes = ebs_volumes(&instance);

    let mut existing =
        existing_snapshots(clients, &req.incident_id, instance_id, &mut report).await?;
    existing.sort_by_key(|s| {
        volumes
            .iter()
            .position(|v| v.volume_id == s.volume_id)
            .unwrap_or(usize::MAX)
    });
    if !existing.is_empty() {
        let mut refs = Vec::new();
        for s in &existing {
            report.change(
                s.volume_id.as_str(),
                "snapshot",
                json!(s.snapshot_id),
                json!(s.snapshot_id),
            );
            refs.push(SnapshotRef {
                snapshot_id: s.snapshot_id.clone(),
                volume_id: s.volume_id.clone(),
            });
            encryption_note(
                &s.volume_id,
                s.encrypted,
                s.kms_key_id.as_deref(),
                &mut report,
            );
        }
        for v in volumes
            .iter()
            .filter(|v| !existing.iter().any(|s| s.volume_id == v.volume_id))
        {
            report.note(format!(
                "{} ({}) has no snapshot in this incident's set: it was attached after the set was taken",
                v.volume_id, v.device_name
            ));
        }
        report.report_mut().artifacts = Some(Artifacts::Snapshots {
            instance_id: instance_id.to_owned(),
            snapshots: refs,
        });
        return Ok(report.finish(clients.calls()));
    }
    if volumes.is_empty() {
        report.note(format!(
            "instance {instance_id} has no EBS volume: there is nothing to snapshot"
        ));
        return Ok(report.finish(clients.calls()));
    }

    let described = clients
        .ec2()
        .describe_volumes()
        .set_volume_ids(Some(volumes.iter().map(|v| v.volume_id.clone()).collect()))
        .send()
        .await
        .map_err(|e| ActionError::sdk("DescribeVolumes", e))?;
    for v in described.volumes() {
        encryption_note(
            v.volume_id().unwrap_or_default(),
            v.encrypted().unwrap_or(false),
            v.kms_key_id(),
            &mut report,
        );
    }

    let name = format!("ir-{}-{instance_id}", req.incident_id);
    let description = truncate(
        &format!(
            "Incident {}: crash-consistent snapshot of {instance_id} for finding {}",
            req.incident_id, req.finding_id
        ),
        255,
    );
    let request = clients
        .ec2()
        .create_snapshots()
        // Boot volume included: it holds the logs, binaries and persistence an investigation needs.
        .instance_specification(
            InstanceSpecification::builder()
                .instance_id(instance_id)
                .exclude_boot_volume(false)
                .build(),
        )
        .description(description)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(tag(TAG_INCIDENT, &req.incident_id))
                .tags(tag(TAG_FINDING, &truncate(&req.finding_id, MAX_TAG_VALUE)))
                .tags(tag(TAG_INSTANCE, instance_id))
                .tags(tag("Name", &truncate(&name, MAX_TAG_VALUE)))
                .build(),
        );
    if report.mode() == Mode::DryRun {
        dry_run_outcome("CreateSnapshots", request.dry_run(true).send().await)?;
        for v in &volumes {
            report.change(
                v.volume_id.as_str(),
                "snapshot",
                Value::Null,
                json!(format!(
                    "(new) snapshot of {} ({})",
                    v.volume_id, v.device_name
                )),
            );
        }
        return Ok(report.finish(clients.calls()));
    }

    // No client token exists for CreateSnapshots: the tag lookup above is what makes a repeat
    // run return this set instead of taking a second one. So the SDK must not repeat the call
    // itself: an attempt whose answer was lost (a reset, a timeout) may have taken a set, and a
    // second attempt would take another that no report names. The failure goes to the state
    // machine's retry instead, whose next run finds the set by its tags.
    let out = request
        .customize()
        .config_override(
            aws_sdk_ec2::config::Builder::default()
                .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await
        .map_err(|e| {
            ActionError::sdk("CreateSnapshots", e)
                .not_found_as(|| format!("instance {instance_id}"))
        })?;
    let mut refs = Vec::new();
    for s in out.snapshots() {
        let (Some(snapshot_id), Some(volume_id)) = (s.snapshot_id(), s.volume_id()) else {
            continue;
        };
        report.change(volume_id, "snapshot", Value::Null, json!(snapshot_id));
        refs.push(SnapshotRef {
            snapshot_id: snapshot_id.to_owned(),
            volume_id: volume_id.to_owned(),
        });
        if s.state().is_some_and(|st| st.as_str() == "error") {
            report.note(format!(
                "snapshot {snapshot_id} of {volume_id} is in state error"
            ));
        }
    }
    for v in volumes
        .iter()
        .filter(|v| !refs.iter().any(|r| r.volume_id == v.volume_id))
    {
        report.note(format!(
            "CreateSnapshots returned no snapshot of {} ({})",
            v.volume_id, v.device_name
        ));
    }
    report.note("The snapshots are crash-consistent across the instance's volumes (one CreateSnapshots call), not application-consistent.");
    report.report_mut().artifacts = Some(Artifacts::Snapshots {
        instance_id: instance_id.to_owned(),
        snapshots: refs,
    });
    Ok(report.finish(clients.calls()))
}

#[derive(Debug)]
struct Existing {
    snapshot_id: String,
    volume_id: String,
    encrypted: bool,
    kms_key_id: Option<String>,
}

/// This incident's snapshots of the instance (owned by this account). Snapshots in state `error` are not evidence: they are left out and noted.
async fn existing_snapshots(
    clients: &Clients,
    incident: &str,
    instance_id: &str,
    report: &mut ReportBuilder,
) -> Result<Vec<Existing>, ActionError> {
    let mut found = Vec::new();
    let mut pages = clients
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter(&format!("tag:{TAG_INCIDENT}"), [incident]))
        .filters(filter(&format!("tag:{TAG_INSTANCE}"), [instance_id]))
        .into_paginator()
        .send();
    while let Some(out) = pages.next().await {
        let out = out.map_err(|e| ActionError::sdk("DescribeSnapshots", e))?;
        for s in out.snapshots() {
            let (Some(snapshot_id), Some(volume_id)) = (s.snapshot_id(), s.volume_id()) else {
                continue;
            };
            if s.state().is_some_and(|st| st.as_str() == "error") {
                report.note(format!("snapshot {snapshot_id} of {volume_id} (this incident) is in state error and is not counted"));
                continue;
            }
            found.push(Existing {
                snapshot_id: snapshot_id.to_owned(),
                volume_id: volume_id.to_owned(),
                encrypted: s.encrypted().unwrap_or(false),
                kms_key_id: s.kms_key_id().map(str::to_owned),
            });
        }
    }
    Ok(found)
}

/// Snapshots encrypted with the AWS-managed `aws/ebs` key cannot be shared with another
/// account (its key policy cannot be changed): they must be copied with a customer-managed key
/// first. Which key a volume uses is only known by ARN here, so the note says what to check.
fn encryption_note(
    volume_id: &str,
    encrypted: bool,
    kms_key_id: Option<&str>,
    report: &mut ReportBuilder,
) {
    if !encrypted {
        return;
    }
    match kms_key_id {
        None => report.note(format!(
            "{volume_id} is encrypted with the account's default EBS key: if that is the AWS-managed aws/ebs key, its snapshot cannot be shared with a forensic account until it is copied (CopySnapshot) with a customer-managed KMS key"
        )),
        Some(key) if key.ends_with("alias/aws/ebs") => report.note(format!(
            "{volume_id} is encrypted with the AWS-managed key aws/ebs: its snapshot cannot be shared with a forensic account until it is copied (CopySnapshot) with a customer-managed KMS key"
        )),
        Some(key) => report.note(format!(
            "{volume_id} is encrypted with KMS key {key}: if that is the AWS-managed aws/ebs key, its snapshot cannot be shared with a forensic account until it is copied (CopySnapshot) with a customer-managed KMS key; with a customer-managed key, the forensic account needs a grant on it"
        )),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
