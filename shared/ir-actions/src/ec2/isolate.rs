//! isolate-instance: cut an instance off the network without losing it or its evidence.

use std::collections::{BTreeMap, BTreeSet};

use ir_core::action::{
    ActionReport, ContainmentRecord, ContainmentRequest, EniGroups, InstanceAttributes,
    IsolationRecord,
};
use ir_core::config::Mode;
use serde_json::{Value, json};

use super::groups::{VpcGroups, ensure_groups};
use super::read::{
    InstanceView, attached_enis, conflict, dry_run_outcome, instance_hold_key, read_instance,
    requested_instance, tag,
};
use super::tags::{
    AUTOSCALING_GROUP_TAG, TAG_INCIDENT, TAG_ORIGINAL_ATTRIBUTES, TAG_ORIGINAL_GROUPS,
    TAG_QUARANTINED_AT, encode_attributes, rfc3339_seconds, split_value,
};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;
use ir_aws::store::{IsolationHold, IsolationHolds};

/// The function (and report action) name.
pub const ISOLATE_ACTION: &str = "ir-isolate-instance";

/// Isolates the instance the request names: every attached interface ends on its VPC's
/// isolation group (no rules), through the all-allow conversion group so that established
/// connections are cut; the instance is protected against termination, stop, shutdown-terminate
/// and volume deletion. Before anything on the instance changes, the incident's hold on it is
/// written to the keys table ([`IsolationHolds`]) with the originals, so every run of the
/// incident returns the same [`IsolationRecord`]. The instance's `ir:*` tags are written for
/// people to read and never read back as truth (anyone who can tag the instance can write them).
/// Dry-run (the default) reads, plans and proves permissions with `DryRun=true`, changing and
/// writing nothing.
///
/// # Errors
/// `InvalidInput` for a resource that is not an EC2 instance; `NotFound` for an unknown or
/// terminated instance; `Conflict` when another incident holds it; `Verification`
/// when an interface still carries another group after isolation; AWS failures as classified.
/// A failure after changes were made is `Incomplete`, carrying the report of those changes.
pub async fn isolate_instance(
    clients: &Clients,
    holds: &IsolationHolds,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    let instance_id = requested_instance(req, ISOLATE_ACTION)?;
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        ISOLATE_ACTION,
        req.mode,
        clients.calls().count(),
    );
    let view = read_instance(clients, instance_id).await?;
    match isolate(clients, holds, &req.incident_id, &view, &mut report).await {
        Ok(record) => {
            report.report_mut().record = record.map(ContainmentRecord::Isolation);
            Ok(report.finish(clients.calls()))
        }
        Err(e) => Err(e.after(&report.snapshot(clients.calls()))),
    }
}

async fn isolate(
    clients: &Clients,
    holds: &IsolationHolds,
    incident: &str,
    view: &InstanceView,
    report: &mut ReportBuilder,
) -> Result<Option<IsolationRecord>, ActionError> {
    let key = instance_hold_key(clients, &view.id, view.owner_id.as_deref())?;
    let held = holds.get(&key).await?;
    refuse_other_incident(view, incident, &key, held.as_ref())?;
    let home_vpc = view
        .vpc_id
        .clone()
        .or_else(|| view.enis.first().map(|e| e.vpc_id.clone()))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ActionError::InvalidInput(format!(
                "instance {} is not in a VPC: security-group isolation needs one",
                view.id
            ))
        })?;
    // An instance may have interfaces in several VPCs (multi-VPC ENI attachments): each VPC has
    // its own pair of groups.
    let vpc_ids: Vec<String> = std::iter::once(home_vpc.clone())
        .chain(view.enis.iter().map(|e| e.vpc_id.clone()))
        .filter(|v| !v.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let groups = ensure_groups(clients, &vpc_ids, report).await?;
    let ours: BTreeSet<String> = groups
        .values()
        .flat_map(|g| [g.conversion.id.clone(), g.isolation.id.clone()])
        .flatten()
        .collect();

    // The originals: from this incident's hold (an earlier run wrote it before changing
    // anything), else from the live state, still untouched because nothing on the instance is
    // changed before the hold is written.
    let (mut interfaces, mut original_attributes) = originals(view, &ours, held.as_ref(), report);
    let now = time::OffsetDateTime::now_utc();
    let mut held_at = held
        .as_ref()
        .map_or(now.replace_nanosecond(0).unwrap_or(now), |h| h.held_at);
    if report.mode() == Mode::Enforce && held.is_none() {
        let wanted = IsolationHold {
            key: key.clone(),
            incident_id: incident.to_owned(),
            instance_id: view.id.clone(),
            interfaces: interfaces.clone(),
            original_attributes: original_attributes.clone(),
            held_at,
        };
        let stored = holds.claim(&wanted).await?;
        // Another run wrote first: an other incident's hold is refused, this incident's (a
        // concurrent run of the same step) is the truth.
        refuse_other_incident(view, incident, &key, Some(&stored))?;
        if stored != wanted {
            (interfaces, original_attributes) = originals(view, &ours, Some(&stored), report);
        }
        held_at = stored.held_at;
    }

    let mut instance_tags = vec![(TAG_INCIDENT.to_owned(), incident.to_owned())];
    instance_tags.extend(
        split_value(
            TAG_ORIGINAL_ATTRIBUTES,
            &encode_attributes(&original_attributes),
        )
        .map_err(ActionError::InvalidInput)?,
    );
    instance_tags.push((TAG_QUARANTINED_AT.to_owned(), rfc3339_seconds(held_at)));
    let tags_added: Vec<String> = instance_tags.iter().map(|(k, _)| k.clone()).collect();
    persist_originals(clients, view, incident, instance_tags, &interfaces, report).await?;

    // Preserve before cutting the network: an intruder who notices the isolation can still run
    // `shutdown` on the host, which would terminate the instance and its volumes.
    preserve(clients, view, report).await?;
    let network_changed = isolate_network(clients, view, &groups, report).await?;

    if report.mode() == Mode::Enforce
        && report
            .report_mut()
            .changes
            .iter()
            .any(|c| c.status == ir_core::action::ChangeStatus::Applied)
    {
        verify(clients, &view.id, &groups).await?;
    }
    notes(view, &groups, &home_vpc, network_changed, report);

    if report.mode() == Mode::DryRun {
        return Ok(None);
    }
    let home = groups.get(&home_vpc);
    Ok(Some(IsolationRecord {
        instance_id: view.id.clone(),
        vpc_id: home_vpc.clone(),
        conversion_group_id: home
            .and_then(|g| g.conversion.id.clone())
            .unwrap_or_default(),
        isolation_group_id: home
            .and_then(|g| g.isolation.id.clone())
            .unwrap_or_default(),
        interfaces,
        original_attributes,
        tags_added,
        hold_key: Some(key),
    }))
}

/// Another incident's hold is never overwritten: it holds the only trusted copy of the
/// originals its release needs. Tags play no part: an `ir:incident` tag anyone can write
/// neither blocks an isolation nor names its holder.
fn refuse_other_incident(
    view: &InstanceView,
    incident: &str,
    key: &str,
    held: Option<&IsolationHold>,
) -> Result<(), ActionError> {
    match held {
        Some(other) if other.incident_id != incident => Err(conflict(
            "isolate-instance",
            format!(
                "instance {} is already contained by incident {} (held by another incident: {key}); release that incident first, or add this finding to it",
                view.id, other.incident_id
            ),
        )),
        _ => Ok(()),
    }
}

/// Each interface's original groups and the instance's original attributes: from the hold
/// when there is one, else from the live state (without the suite's own groups).
fn originals(
    view: &InstanceView,
    ours: &BTreeSet<String>,
    held: Option<&IsolationHold>,
    report: &mut ReportBuilder,
) -> (Vec<EniGroups>, InstanceAttributes) {
    let interfaces = view
        .enis
        .iter()
        .map(|eni| {
            let kept = held.and_then(|h| {
                h.interfaces
                    .iter()
                    .find(|i| i.network_interface_id == eni.id)
            });
            EniGroups {
                network_interface_id: eni.id.clone(),
                original_group_ids: match kept {
                    Some(k) => k.original_group_ids.clone(),
                    None => live_groups(eni, ours, held.is_some(), report),
                },
            }
        })
        .collect();
    let Some(hold) = held else {
        return (interfaces, view.attributes.clone());
    };
    for v in &view.attributes.volumes {
        if !hold
            .original_attributes
            .volumes
            .iter()
            .any(|o| o.volume_id == v.volume_id)
        {
            report.note(format!(
                "{} ({}) was attached after isolation began: it is protected too, but release will not change its DeleteOnTermination",
                v.volume_id, v.device_name
            ));
        }
    }
    (interfaces, hold.original_attributes.clone())
}

/// An interface's groups as they are now, without the suite's own.
fn live_groups(
    eni: &super::read::Eni,
    ours: &BTreeSet<String>,
    attached_since: bool,
    report: &mut ReportBuilder,
) -> Vec<String> {
    let kept: Vec<String> = eni
        .groups
        .iter()
        .filter(|g| !ours.contains(*g))
        .cloned()
        .collect();
    if attached_since {
        report.note(format!(
            "{} was attached after isolation began: its original groups are taken to be {kept:?}",
            eni.id
        ));
    } else if kept.len() != eni.groups.len() {
        let consequence = if kept.is_empty() {
            "its original groups are unknown and release will leave it isolated".to_owned()
        } else {
            format!("its original groups are taken to be {kept:?}")
        };
        report.note(format!(
            "{} already carried the suite's conversion or isolation group and no incident holds the instance: {consequence}",
            eni.id
        ));
    }
    kept
}

type TagPlan<'a> = (String, &'a BTreeMap<String, String>, Vec<(String, String)>);

/// Writes the originals (and the incident) as tags, for people looking at the instance, before
/// anything else on it changes. A tag whose value differs (a stale or forged one) is overwritten;
/// nothing reads them back as truth.
async fn persist_originals(
    clients: &Clients,
    view: &InstanceView,
    incident: &str,
    instance_tags: Vec<(String, String)>,
    interfaces: &[EniGroups],
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    // (resource, its current tags, the tags it must carry)
    let mut wanted: Vec<TagPlan<'_>> = vec![(view.id.clone(), &view.tags, instance_tags)];
    for (eni, record) in view.enis.iter().zip(interfaces) {
        let mut tags = vec![(TAG_INCIDENT.to_owned(), incident.to_owned())];
        tags.extend(
            split_value(TAG_ORIGINAL_GROUPS, &record.original_group_ids)
                .map_err(ActionError::InvalidInput)?,
        );
        wanted.push((eni.id.clone(), &eni.tags, tags));
    }

    // Resources needing the same tags share one CreateTags call.
    let mut batches: BTreeMap<Vec<(String, String)>, Vec<String>> = BTreeMap::new();
    for (resource, existing, tags) in &wanted {
        let missing: Vec<(String, String)> = tags
            .iter()
            .filter(|(k, v)| existing.get(k) != Some(v))
            .cloned()
            .collect();
        if !missing.is_empty() {
            batches.entry(missing).or_default().push(resource.clone());
        }
    }
    if report.mode() == Mode::Enforce {
        for (tags, resources) in &batches {
            clients
                .ec2()
                .create_tags()
                .set_resources(Some(resources.clone()))
                .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                .send()
                .await
                .map_err(|e| {
                    ActionError::sdk("CreateTags", e).not_found_as(|| format!("{resources:?}"))
                })?;
        }
    } else if !batches.is_empty() {
        // One call proves the permission for every resource and tag key to be written.
        let resources: BTreeSet<String> = batches.values().flatten().cloned().collect();
        let mut tags: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in batches.keys().flatten() {
            tags.entry(k.as_str()).or_insert(v.as_str());
        }
        let request = clients
            .ec2()
            .create_tags()
            .set_resources(Some(resources.into_iter().collect()))
            .set_tags(Some(tags.into_iter().map(|(k, v)| tag(k, v)).collect()))
            .dry_run(true);
        dry_run_outcome("CreateTags", request.send().await)?;
    }
    for (resource, existing, tags) in &wanted {
        for (key, value) in tags {
            let before = existing.get(key).map_or(Value::Null, |v| json!(v));
            report.change(
                resource.as_str(),
                format!("tag:{key}"),
                before,
                json!(value),
            );
        }
    }
    Ok(())
}

/// Termination and stop protection, `stop` on instance-initiated shutdown, and no volume
/// deleted with the instance.
async fn preserve(
    clients: &Clients,
    view: &InstanceView,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let id = view.id.as_str();
    let live = &view.attributes;
    let enforce = report.mode() == Mode::Enforce;
    let modify = || clients.ec2().modify_instance_attribute().instance_id(id);
    let boolean = |v: bool| {
        aws_sdk_ec2::types::AttributeBooleanValue::builder()
            .value(v)
            .build()
    };
    let failed = |e| {
        ActionError::sdk("ModifyInstanceAttribute", e).not_found_as(|| format!("instance {id}"))
    };

    let volumes: Vec<_> = live
        .volumes
        .iter()
        .filter(|v| v.delete_on_termination)
        .collect();
    let any = !live.disable_api_termination
        || !live.disable_api_stop
        || live.shutdown_behavior != "stop"
        || !volumes.is_empty();
    if !enforce && any {
        dry_run_outcome(
            "ModifyInstanceAttribute",
            modify()
                .disable_api_termination(boolean(true))
                .dry_run(true)
                .send()
                .await,
        )?;
    }

    if enforce && !live.disable_api_termination {
        modify()
            .disable_api_termination(boolean(true))
            .send()
            .await
            .map_err(failed)?;
    }
    report.change(
        id,
        "disable-api-termination",
        json!(live.disable_api_termination),
        json!(true),
    );
    if enforce && !live.disable_api_stop {
        modify()
            .disable_api_stop(boolean(true))
            .send()
            .await
            .map_err(failed)?;
    }
    report.change(
        id,
        "disable-api-stop",
        json!(live.disable_api_stop),
        json!(true),
    );
    if enforce && live.shutdown_behavior != "stop" {
        // The `Attribute`/`Value` form of the call: AWS accepts it like the structured one, and
        // the local emulator silently ignores the structured InstanceInitiatedShutdownBehavior.
        modify()
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .value("stop")
            .send()
            .await
            .map_err(failed)?;
    }
    report.change(
        id,
        "instance-initiated-shutdown-behavior",
        json!(live.shutdown_behavior),
        json!("stop"),
    );

    if enforce && !volumes.is_empty() {
        let mappings = volumes
            .iter()
            .map(|v| {
                aws_sdk_ec2::types::InstanceBlockDeviceMappingSpecification::builder()
                    .device_name(&v.device_name)
                    .ebs(
                        aws_sdk_ec2::types::EbsInstanceBlockDeviceSpecification::builder()
                            .volume_id(&v.volume_id)
                            .delete_on_termination(false)
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
    for v in &live.volumes {
        report.change(
            v.volume_id.as_str(),
            "delete-on-termination",
            json!(v.delete_on_termination),
            json!(false),
        );
    }
    Ok(())
}

/// Moves every interface to its VPC's isolation group, through the conversion group. Returns
/// whether any interface changed (or would change, in dry-run).
///
/// Security-group changes do not end tracked connections (an established TCP flow lives until
/// it idles out, five days by default). A flow is untracked only while the interface's rules
/// allow all traffic both ways for 0.0.0.0/0 and ::/0, and untracked flows stop the moment such
/// rules go away. So each interface gets the all-allow group alone, then the empty group alone.
/// Each interface is changed with ModifyNetworkInterfaceAttribute: ModifyInstanceAttribute
/// `--groups` fails on an instance with several interfaces (the local emulator accepts it, AWS
/// does not).
async fn isolate_network(
    clients: &Clients,
    view: &InstanceView,
    groups: &BTreeMap<String, VpcGroups>,
    report: &mut ReportBuilder,
) -> Result<bool, ActionError> {
    let mut changed = false;
    for eni in &view.enis {
        let Some(g) = groups.get(&eni.vpc_id) else {
            return Err(ActionError::Verification(format!(
                "{} is in VPC {} which has no isolation group",
                eni.id, eni.vpc_id
            )));
        };
        let before = json!(eni.groups);
        if let Some(iso) = g
            .isolation
            .id
            .as_deref()
            .filter(|iso| eni.groups.len() == 1 && eni.groups.first().is_some_and(|x| x == iso))
        {
            report.change(eni.id.as_str(), "security-groups", before, json!([iso]));
            continue;
        }
        changed = true;
        let set_groups = |group: String| {
            clients
                .ec2()
                .modify_network_interface_attribute()
                .network_interface_id(&eni.id)
                .groups(group)
        };
        let failed = |e| {
            ActionError::sdk("ModifyNetworkInterfaceAttribute", e).not_found_as(|| eni.id.clone())
        };
        match (
            report.mode(),
            g.conversion.id.clone(),
            g.isolation.id.clone(),
        ) {
            (Mode::Enforce, Some(conversion), Some(isolation)) => {
                let on_conversion =
                    eni.groups.len() == 1 && eni.groups.first() == Some(&conversion);
                if !on_conversion {
                    set_groups(conversion).send().await.map_err(failed)?;
                }
                set_groups(isolation.clone()).send().await.map_err(failed)?;
                report.change(
                    eni.id.as_str(),
                    "security-groups",
                    before,
                    json!([isolation]),
                );
            }
            (Mode::Enforce, _, _) => {
                return Err(ActionError::Verification(format!(
                    "the conversion or isolation group of VPC {} does not exist",
                    eni.vpc_id
                )));
            }
            (Mode::DryRun, conversion, isolation) => {
                // Prove the permission on this interface with a group that exists already.
                let probe = conversion
                    .or(isolation)
                    .or_else(|| eni.groups.first().cloned())
                    .unwrap_or_default();
                dry_run_outcome(
                    "ModifyNetworkInterfaceAttribute",
                    set_groups(probe).dry_run(true).send().await,
                )?;
                report.change(
                    eni.id.as_str(),
                    "security-groups",
                    before,
                    json!([g.isolation.shown()]),
                );
            }
        }
    }
    Ok(changed)
}

/// Reads every attached interface and the isolation groups back: each interface must carry
/// exactly its VPC's isolation group, and that group no rule.
async fn verify(
    clients: &Clients,
    instance_id: &str,
    groups: &BTreeMap<String, VpcGroups>,
) -> Result<(), ActionError> {
    let mut problems = Vec::new();
    for eni in attached_enis(clients, instance_id).await? {
        let wanted = groups.get(&eni.vpc_id).and_then(|g| g.isolation.id.clone());
        match wanted {
            Some(iso) if eni.groups.len() == 1 && eni.groups.first() == Some(&iso) => {}
            Some(iso) => problems.push(format!(
                "{} carries {:?} instead of only the isolation group {iso}",
                eni.id, eni.groups
            )),
            None => problems.push(format!(
                "{} (VPC {}) carries {:?} and its VPC has no isolation group",
                eni.id, eni.vpc_id, eni.groups
            )),
        }
    }
    let isolation_ids: Vec<String> = groups
        .values()
        .filter_map(|g| g.isolation.id.clone())
        .collect();
    if !isolation_ids.is_empty() {
        let out = clients
            .ec2()
            .describe_security_groups()
            .set_group_ids(Some(isolation_ids))
            .send()
            .await
            .map_err(|e| ActionError::sdk("DescribeSecurityGroups", e))?;
        for g in out.security_groups() {
            if !g.ip_permissions().is_empty() || !g.ip_permissions_egress().is_empty() {
                problems.push(format!(
                    "isolation group {} has rules (ingress {:?}, egress {:?})",
                    g.group_id().unwrap_or_default(),
                    super::groups::render(g.ip_permissions()),
                    super::groups::render(g.ip_permissions_egress())
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ActionError::Verification(format!(
            "instance {instance_id} is not isolated: {}",
            problems.join("; ")
        )))
    }
}

fn notes(
    view: &InstanceView,
    groups: &BTreeMap<String, VpcGroups>,
    home_vpc: &str,
    network_changed: bool,
    report: &mut ReportBuilder,
) {
    if network_changed {
        let pairs: Vec<String> = groups
            .iter()
            .map(|(vpc, g)| {
                format!(
                    "{vpc}: {} then {}",
                    g.conversion.shown(),
                    g.isolation.shown()
                )
            })
            .collect();
        report.note(format!(
            "Each interface is set to the all-allow conversion group alone, then to the rule-less isolation group alone ({}): this turns established (tracked) connections into untracked ones and then drops them, which replacing the groups in one step would not.",
            pairs.join("; ")
        ));
    }
    let subnets: BTreeSet<&str> = view
        .enis
        .iter()
        .map(|e| e.subnet_id.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    report.note(format!(
        "Security groups cannot cut ICMP or flows through NAT gateways, load balancers, Global Accelerator, Network Firewall or Transit Gateway: those are always tracked and may survive isolation. The escalation is a stateless network ACL denying the traffic on subnet(s) {} (it affects every resource in them).",
        subnets.into_iter().collect::<Vec<_>>().join(", ")
    ));
    let profile = view
        .instance_profile_arn
        .as_deref()
        .map_or_else(String::new, |arn| format!(" ({arn})"));
    report.note(format!(
        "An intruder on the host can still read instance-profile credentials{profile} from the instance metadata service: revoke the role's sessions (revoke-sessions) and remove or replace the instance profile."
    ));
    if let Some(asg) = view.tags.get(AUTOSCALING_GROUP_TAG) {
        report.note(format!(
            "The instance belongs to Auto Scaling group {asg}, which may mark it unhealthy once isolated and replace and terminate it (termination protection does not stop Auto Scaling): detach it from the group or put it in Standby. This action does not."
        ));
    }
    if groups.len() > 1 {
        report.note(format!(
            "The instance has interfaces in several VPCs; each uses its own VPC's groups. The record names the groups of {home_vpc}."
        ));
    }
}
