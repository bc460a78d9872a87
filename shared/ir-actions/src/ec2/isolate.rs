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
    InstanceView, attached_enis, conflict, dry_run_outcome, read_instance, requested_instance, tag,
};
use super::tags::{
    AUTOSCALING_GROUP_TAG, TAG_INCIDENT, TAG_ORIGINAL_ATTRIBUTES, TAG_ORIGINAL_GROUPS,
    TAG_QUARANTINED_AT, decode_attributes, encode_attributes, joined_value, now_rfc3339,
    split_value,
};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

/// The function (and report action) name.
pub const ISOLATE_ACTION: &str = "ir-isolate-instance";

/// Isolates the instance the request names: every attached interface ends on its VPC's
/// isolation group (no rules), through the all-allow conversion group so that established
/// connections are cut; the instance is protected against termination, stop, shutdown-terminate
/// and volume deletion; the originals are kept in tags first so every run returns the same
/// [`IsolationRecord`]. Dry-run (the default) reads, plans and proves permissions with
/// `DryRun=true`, changing nothing.
///
/// # Errors
/// `InvalidInput` for a resource that is not an EC2 instance; `NotFound` for an unknown or
/// terminated instance; `Conflict` when another incident already contains it; `Verification`
/// when an interface still carries another group after isolation; AWS failures as classified.
/// A failure after changes were made is `Incomplete`, carrying the report of those changes.
pub async fn isolate_instance(
    clients: &Clients,
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
    match isolate(clients, &req.incident_id, &view, &mut report).await {
        Ok(record) => {
            report.report_mut().record = record.map(ContainmentRecord::Isolation);
            Ok(report.finish(clients.calls()))
        }
        Err(e) => Err(e.after(&report.snapshot(clients.calls()))),
    }
}

async fn isolate(
    clients: &Clients,
    incident: &str,
    view: &InstanceView,
    report: &mut ReportBuilder,
) -> Result<Option<IsolationRecord>, ActionError> {
    refuse_other_incident(view, incident)?;
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

    // The originals: from the tags an earlier run wrote (they survive the changes), else from
    // the live state, which is still untouched because nothing is changed before the tags are.
    let interfaces: Vec<EniGroups> = view
        .enis
        .iter()
        .map(|eni| EniGroups {
            network_interface_id: eni.id.clone(),
            original_group_ids: original_groups(eni, &ours, report),
        })
        .collect();
    let original_attributes = original_attributes(view, report)?;

    let mut instance_tags = vec![(TAG_INCIDENT.to_owned(), incident.to_owned())];
    instance_tags.extend(
        split_value(
            TAG_ORIGINAL_ATTRIBUTES,
            &encode_attributes(&original_attributes),
        )
        .map_err(ActionError::InvalidInput)?,
    );
    instance_tags.push((TAG_QUARANTINED_AT.to_owned(), now_rfc3339()));
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
    }))
}

/// Another incident's isolation is never overwritten: its tags hold the only copy of the
/// originals its release needs.
fn refuse_other_incident(view: &InstanceView, incident: &str) -> Result<(), ActionError> {
    let claimed = std::iter::once((view.id.as_str(), &view.tags))
        .chain(view.enis.iter().map(|e| (e.id.as_str(), &e.tags)));
    for (resource, tags) in claimed {
        if let Some(other) = tags
            .get(TAG_INCIDENT)
            .filter(|other| other.as_str() != incident)
        {
            return Err(conflict(
                "isolate-instance",
                format!(
                    "instance {}: {resource} is already contained by incident {other} (tag {TAG_INCIDENT}); release that incident first, or add this finding to it",
                    view.id
                ),
            ));
        }
    }
    Ok(())
}

fn original_groups(
    eni: &super::read::Eni,
    ours: &BTreeSet<String>,
    report: &mut ReportBuilder,
) -> Vec<String> {
    if let Some(value) = joined_value(&eni.tags, TAG_ORIGINAL_GROUPS) {
        return value.split_whitespace().map(str::to_owned).collect();
    }
    let kept: Vec<String> = eni
        .groups
        .iter()
        .filter(|g| !ours.contains(*g))
        .cloned()
        .collect();
    if kept.len() != eni.groups.len() {
        let consequence = if kept.is_empty() {
            "its original groups are unknown and release will leave it isolated".to_owned()
        } else {
            format!("its original groups are taken to be {kept:?}")
        };
        report.note(format!(
            "{} already carried the suite's conversion or isolation group and has no {TAG_ORIGINAL_GROUPS} tag: {consequence}",
            eni.id
        ));
    }
    kept
}

fn original_attributes(
    view: &InstanceView,
    report: &mut ReportBuilder,
) -> Result<InstanceAttributes, ActionError> {
    let Some(value) = joined_value(&view.tags, TAG_ORIGINAL_ATTRIBUTES) else {
        return Ok(view.attributes.clone());
    };
    let original = decode_attributes(&value).map_err(|why| {
        conflict(
            "isolate-instance",
            format!("tag {TAG_ORIGINAL_ATTRIBUTES} on {} cannot be read ({why}); it was not written by this suite or was altered", view.id),
        )
    })?;
    for v in &view.attributes.volumes {
        if !original.volumes.iter().any(|o| o.volume_id == v.volume_id) {
            report.note(format!(
                "{} ({}) was attached after isolation began: it is protected too, but release will not change its DeleteOnTermination",
                v.volume_id, v.device_name
            ));
        }
    }
    Ok(original)
}

type TagPlan<'a> = (String, &'a BTreeMap<String, String>, Vec<(String, String)>);

/// Writes the originals (and the incident) as tags before anything else on the instance
/// changes. Tags already present are kept as they are: they hold the originals of a first run.
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
            .filter(|(k, _)| !existing.contains_key(k))
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
            match existing.get(key) {
                Some(current) => report.change(
                    resource.as_str(),
                    format!("tag:{key}"),
                    json!(current),
                    json!(current),
                ),
                None => report.change(
                    resource.as_str(),
                    format!("tag:{key}"),
                    Value::Null,
                    json!(value),
                ),
            }
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
