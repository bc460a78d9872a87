//! Restoring what isolate-instance changed, exactly as its record says.

use std::collections::BTreeMap;

use ir_core::action::IsolationRecord;
use ir_core::config::Mode;
use serde_json::{Value, json};

use super::read::{attached_enis, dry_run_outcome, read_instance};
use super::tags::{TAG_INCIDENT, TAG_ORIGINAL_ATTRIBUTES, TAG_ORIGINAL_GROUPS, is_part_of};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

/// Restores what isolation changed on `record.instance_id`: each interface's original groups in
/// their order, the original termination/stop protection, shutdown behaviour and per-volume
/// DeleteOnTermination, and removes the tags isolation added (on the instance and its
/// interfaces). Changes are recorded in `report` (dry-run: `Planned`, with `DryRun=true` calls
/// proving the permissions; enforce: `Applied`, or `Unchanged` for what is already as it was),
/// so a second call changes nothing. Snapshots and other evidence are never touched, and the
/// per-VPC conversion and isolation groups stay (other instances may be using them).
///
/// The originals come from `record` alone, never from the instance's tags (anyone who can tag
/// the instance can write those). Whether the instance is still held by the record's incident
/// is the caller's check, on the hold `record.hold_key` names (`ir release` makes it before
/// restoring, and deletes the hold after).
///
/// # Errors
/// `NotFound` when the instance no longer exists or is terminated; `Verification` when an interface does not carry its original groups afterwards; AWS failures
/// as classified. Changes made before a failure are already in `report`: wrap the error with
/// [`ActionError::after`] on its snapshot.
pub async fn restore_isolation(
    clients: &Clients,
    record: &IsolationRecord,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let enforce = report.mode() == Mode::Enforce;
    let view = read_instance(clients, &record.instance_id).await?;
    let id = view.id.as_str();

    // Network: straight back to the original groups. No conversion step is needed here: the
    // isolation group allows nothing, so there is no tracked flow to carry over.
    let mut restored = Vec::new();
    for interface in &record.interfaces {
        let eni_id = interface.network_interface_id.as_str();
        let Some(eni) = view.enis.iter().find(|e| e.id == eni_id) else {
            report.note(format!(
                "{eni_id} is no longer attached to {id}: its security groups were left as they are"
            ));
            continue;
        };
        let original = &interface.original_group_ids;
        if original.is_empty() {
            report.note(format!("{eni_id}: its original security groups were not known at isolation; it stays on {:?}", eni.groups));
            continue;
        }
        if &eni.groups != original {
            let request = clients
                .ec2()
                .modify_network_interface_attribute()
                .network_interface_id(eni_id)
                .set_groups(Some(original.clone()));
            if enforce {
                request.send().await.map_err(|e| {
                    ActionError::sdk("ModifyNetworkInterfaceAttribute", e)
                        .not_found_as(|| format!("{eni_id} or one of {original:?}"))
                })?;
                restored.push((eni_id, original));
            } else {
                dry_run_outcome(
                    "ModifyNetworkInterfaceAttribute",
                    request.dry_run(true).send().await,
                )?;
            }
        }
        report.change(
            eni_id,
            "security-groups",
            json!(eni.groups),
            json!(original),
        );
    }

    // Instance attributes and volumes.
    let live = &view.attributes;
    let original = &record.original_attributes;
    let modify = || clients.ec2().modify_instance_attribute().instance_id(id);
    let boolean = |v: bool| {
        aws_sdk_ec2::types::AttributeBooleanValue::builder()
            .value(v)
            .build()
    };
    let failed = |e| {
        ActionError::sdk("ModifyInstanceAttribute", e).not_found_as(|| format!("instance {id}"))
    };
    let mut volumes = Vec::new();
    for v in &original.volumes {
        match live.volumes.iter().find(|l| l.volume_id == v.volume_id) {
            Some(l) => volumes.push((l, v.delete_on_termination)),
            None => report.note(format!(
                "{} is no longer attached to {id}: its DeleteOnTermination was not restored",
                v.volume_id
            )),
        }
    }
    let volumes_to_change: Vec<_> = volumes
        .iter()
        .filter(|(l, want)| l.delete_on_termination != *want)
        .collect();
    let any = live.disable_api_termination != original.disable_api_termination
        || live.disable_api_stop != original.disable_api_stop
        || live.shutdown_behavior != original.shutdown_behavior
        || !volumes_to_change.is_empty();
    if !enforce && any {
        dry_run_outcome(
            "ModifyInstanceAttribute",
            modify()
                .disable_api_termination(boolean(original.disable_api_termination))
                .dry_run(true)
                .send()
                .await,
        )?;
    }
    if enforce && live.disable_api_termination != original.disable_api_termination {
        modify()
            .disable_api_termination(boolean(original.disable_api_termination))
            .send()
            .await
            .map_err(failed)?;
    }
    report.change(
        id,
        "disable-api-termination",
        json!(live.disable_api_termination),
        json!(original.disable_api_termination),
    );
    if enforce && live.disable_api_stop != original.disable_api_stop {
        modify()
            .disable_api_stop(boolean(original.disable_api_stop))
            .send()
            .await
            .map_err(failed)?;
    }
    report.change(
        id,
        "disable-api-stop",
        json!(live.disable_api_stop),
        json!(original.disable_api_stop),
    );
    if enforce && live.shutdown_behavior != original.shutdown_behavior {
        // The `Attribute`/`Value` form of the call: AWS accepts it like the structured one, and
        // the local emulator silently ignores the structured InstanceInitiatedShutdownBehavior.
        modify()
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .value(&original.shutdown_behavior)
            .send()
            .await
            .map_err(failed)?;
    }
    report.change(
        id,
        "instance-initiated-shutdown-behavior",
        json!(live.shutdown_behavior),
        json!(original.shutdown_behavior),
    );
    if enforce && !volumes_to_change.is_empty() {
        let mappings = volumes_to_change
            .iter()
            .map(|(l, want)| {
                aws_sdk_ec2::types::InstanceBlockDeviceMappingSpecification::builder()
                    .device_name(&l.device_name)
                    .ebs(
                        aws_sdk_ec2::types::EbsInstanceBlockDeviceSpecification::builder()
                            .volume_id(&l.volume_id)
                            .delete_on_termination(*want)
                            .build(),
                    )
                    .build()
            })
            .collect();
        modify()
            .set_block_device_mappings(Some(mappings))
            .send()
            .await
            .map_err(failed)?;
    }
    for (l, want) in &volumes {
        report.change(
            l.volume_id.as_str(),
            "delete-on-termination",
            json!(l.delete_on_termination),
            json!(want),
        );
    }

    // Tags last: the record, not the tags, drives a restore, but keeping them until the end
    // leaves the instance marked as contained while anything above is still failing.
    let mut removals: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    let mut removed: Vec<(String, String, String)> = Vec::new();
    let instance_keys: Vec<String> = view
        .tags
        .keys()
        .filter(|k| {
            record.tags_added.iter().any(|t| t == *k) || is_part_of(k, TAG_ORIGINAL_ATTRIBUTES)
        })
        .cloned()
        .collect();
    if !instance_keys.is_empty() {
        removed.extend(instance_keys.iter().map(|k| {
            (
                id.to_owned(),
                k.clone(),
                view.tags.get(k).cloned().unwrap_or_default(),
            )
        }));
        removals
            .entry(instance_keys)
            .or_default()
            .push(id.to_owned());
    }
    for eni in view.enis.iter().filter(|e| {
        record
            .interfaces
            .iter()
            .any(|i| i.network_interface_id == e.id)
    }) {
        let keys: Vec<String> = eni
            .tags
            .keys()
            .filter(|k| *k == TAG_INCIDENT || is_part_of(k, TAG_ORIGINAL_GROUPS))
            .cloned()
            .collect();
        if !keys.is_empty() {
            removed.extend(keys.iter().map(|k| {
                (
                    eni.id.clone(),
                    k.clone(),
                    eni.tags.get(k).cloned().unwrap_or_default(),
                )
            }));
            removals.entry(keys).or_default().push(eni.id.clone());
        }
    }
    let delete = |keys: &[String], resources: &[String]| {
        clients
            .ec2()
            .delete_tags()
            .set_resources(Some(resources.to_vec()))
            .set_tags(Some(
                keys.iter()
                    .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
                    .collect(),
            ))
    };
    if enforce {
        for (keys, resources) in &removals {
            delete(keys, resources)
                .send()
                .await
                .map_err(|e| ActionError::sdk("DeleteTags", e))?;
        }
    } else if !removals.is_empty() {
        let keys: Vec<String> = removals
            .keys()
            .flatten()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let resources: Vec<String> = removals.values().flatten().cloned().collect();
        dry_run_outcome(
            "DeleteTags",
            delete(&keys, &resources).dry_run(true).send().await,
        )?;
    }
    for (resource, key, value) in removed {
        report.change(resource, format!("tag:{key}"), json!(value), Value::Null);
    }

    if !restored.is_empty() {
        verify_restored(clients, id, &restored).await?;
    }
    Ok(())
}

/// Each restored interface must carry its original groups. EC2 does not promise to list an
/// interface's groups in the order they were set, so the same set in another order is accepted.
async fn verify_restored(
    clients: &Clients,
    instance_id: &str,
    restored: &[(&str, &Vec<String>)],
) -> Result<(), ActionError> {
    let enis = attached_enis(clients, instance_id).await?;
    let mut problems = Vec::new();
    for (eni_id, want) in restored {
        let got = enis
            .iter()
            .find(|e| e.id == *eni_id)
            .map(|e| e.groups.clone())
            .unwrap_or_default();
        let mut sorted_got = got.clone();
        sorted_got.sort();
        let mut sorted_want = (*want).clone();
        sorted_want.sort();
        if sorted_got != sorted_want {
            problems.push(format!("{eni_id} carries {got:?} instead of {want:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ActionError::Verification(format!(
            "restore of {instance_id}: {}",
            problems.join("; ")
        )))
    }
}
