//! Reading an instance as EC2 describes it now (never as the finding described it: the finding
//! may be stale), and the small helpers the EC2 actions share.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceAttributeName, Tag};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use ir_core::action::{ContainmentRequest, InstanceAttributes, VolumeAttachment};
use ir_core::event::Resource;

use crate::ActionError;
use ir_aws::Clients;

/// One network interface attached to the instance.
#[derive(Debug, Clone)]
pub(crate) struct Eni {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// Security group ids, in the order EC2 returns them.
    pub groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// (network card index, device index): the order interfaces are handled and reported in.
    pub slot: (i32, i32),
}

/// An instance with everything isolation and its release read.
#[derive(Debug, Clone)]
pub(crate) struct InstanceView {
    pub id: String,
    /// The account that owns the instance (its reservation's `OwnerId`).
    pub owner_id: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub instance_profile_arn: Option<String>,
    /// Attached interfaces, ordered by network card and device index.
    pub enis: Vec<Eni>,
    /// The protection attributes as they are now, EBS volumes in mapping order.
    pub attributes: InstanceAttributes,
}

/// The instance id of a request on an EC2 instance; any other resource kind is invalid input.
pub(crate) fn requested_instance<'a>(
    req: &'a ContainmentRequest,
    action: &str,
) -> Result<&'a str, ActionError> {
    match &req.resource {
        Resource::Ec2Instance(i) if !i.instance_id.trim().is_empty() => Ok(i.instance_id.trim()),
        Resource::Ec2Instance(_) => Err(ActionError::InvalidInput(format!(
            "{action}: the request names no instance id"
        ))),
        other => Err(ActionError::InvalidInput(format!(
            "{action} acts on an ec2-instance, not on {} `{}`",
            other.kind(),
            other.id()
        ))),
    }
}

/// A refusal because the state belongs to someone else (another incident's containment, an
/// unreadable record tag). Reported under the stable name `Conflict`.
pub(crate) fn conflict(operation: &'static str, detail: String) -> ActionError {
    ActionError::Conflict(format!("{operation}: {detail}"))
}

/// `isolation#<account>:<region>:<instance id>`, the key of an instance's isolation hold: the
/// account that owns the instance (its reservation's `OwnerId`), the region of the EC2 client.
pub(crate) fn instance_hold_key(
    clients: &Clients,
    instance_id: &str,
    owner_id: Option<&str>,
) -> Result<String, ActionError> {
    let account = owner_id.filter(|a| !a.is_empty()).ok_or_else(|| {
        ActionError::Verification(format!(
            "DescribeInstances returned no owner account for {instance_id}"
        ))
    })?;
    let region = clients
        .ec2()
        .config()
        .region()
        .ok_or_else(|| ActionError::Configuration("the EC2 client has no region".to_owned()))?;
    Ok(ir_aws::store::hold_key(
        account,
        region.as_ref(),
        instance_id,
    ))
}

/// The outcome of a mutating call sent with `DryRun=true`: `DryRunOperation` proves the
/// permission; `UnauthorizedOperation` (and every other error) is reported as it is classified.
pub(crate) fn dry_run_outcome<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<(), ActionError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Err(e) if e.code() == Some("DryRunOperation") => Ok(()),
        Err(e) => Err(ActionError::sdk(operation, e)),
        Ok(_) => Err(ActionError::Verification(format!(
            "{operation} sent with DryRun=true was executed instead of only checked; the endpoint does not honour DryRun"
        ))),
    }
}

/// Whether an SDK error carries this error code.
pub(crate) fn has_code<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
    code: &str,
) -> bool {
    err.code() == Some(code)
}

pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

pub(crate) fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub(crate) fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

/// DescribeInstances for one instance; unknown, terminated or terminating instances are
/// `NotFound` naming it.
pub(crate) async fn describe_instance(
    clients: &Clients,
    instance_id: &str,
) -> Result<aws_sdk_ec2::types::Instance, ActionError> {
    describe_owned_instance(clients, instance_id)
        .await
        .map(|(instance, _)| instance)
}

/// [`describe_instance`] with the account that owns it (its reservation's `OwnerId`).
pub(crate) async fn describe_owned_instance(
    clients: &Clients,
    instance_id: &str,
) -> Result<(aws_sdk_ec2::types::Instance, Option<String>), ActionError> {
    let out = clients
        .ec2()
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| {
            ActionError::sdk("DescribeInstances", e)
                .not_found_as(|| format!("instance {instance_id}"))
        })?;
    let (instance, owner_id) = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances().iter().map(move |i| (i, r.owner_id())))
        .find(|(i, _)| i.instance_id() == Some(instance_id))
        .map(|(i, owner)| (i.clone(), owner.map(str::to_owned)))
        .ok_or_else(|| ActionError::NotFound(format!("instance {instance_id} does not exist")))?;
    let state = instance
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    if state == "terminated" || state == "shutting-down" {
        return Err(ActionError::NotFound(format!(
            "instance {instance_id} is {state}"
        )));
    }
    Ok((instance, owner_id))
}

/// The interfaces attached to the instance now (DescribeNetworkInterfaces filtered on the
/// attachment, so an interface attached after the instance was described is seen too).
pub(crate) async fn attached_enis(
    clients: &Clients,
    instance_id: &str,
) -> Result<Vec<Eni>, ActionError> {
    let mut enis = Vec::new();
    let mut pages = clients
        .ec2()
        .describe_network_interfaces()
        .filters(filter("attachment.instance-id", [instance_id]))
        .into_paginator()
        .send();
    while let Some(out) = pages.next().await {
        let out = out.map_err(|e| ActionError::sdk("DescribeNetworkInterfaces", e))?;
        for ni in out.network_interfaces() {
            let Some(id) = ni.network_interface_id() else {
                continue;
            };
            let attachment = ni.attachment();
            enis.push(Eni {
                id: id.to_owned(),
                vpc_id: ni.vpc_id().unwrap_or_default().to_owned(),
                subnet_id: ni.subnet_id().unwrap_or_default().to_owned(),
                groups: ni
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned))
                    .collect(),
                tags: tag_map(ni.tag_set()),
                slot: (
                    attachment.and_then(|a| a.network_card_index()).unwrap_or(0),
                    attachment
                        .and_then(|a| a.device_index())
                        .unwrap_or(i32::MAX),
                ),
            });
        }
    }
    enis.sort_by(|a, b| a.slot.cmp(&b.slot).then_with(|| a.id.cmp(&b.id)));
    Ok(enis)
}

/// The EBS volumes of the instance with their DeleteOnTermination, in mapping order.
pub(crate) fn ebs_volumes(instance: &aws_sdk_ec2::types::Instance) -> Vec<VolumeAttachment> {
    instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| {
            let ebs = m.ebs()?;
            Some(VolumeAttachment {
                device_name: m.device_name()?.to_owned(),
                volume_id: ebs.volume_id()?.to_owned(),
                delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
            })
        })
        .collect()
}

/// The instance, its interfaces and its protection attributes: DescribeInstances,
/// DescribeNetworkInterfaces and three DescribeInstanceAttribute calls (EC2 returns the
/// termination/stop protection and the shutdown behaviour only through the latter).
pub(crate) async fn read_instance(
    clients: &Clients,
    instance_id: &str,
) -> Result<InstanceView, ActionError> {
    let (instance, owner_id) = describe_owned_instance(clients, instance_id).await?;
    let enis = attached_enis(clients, instance_id).await?;
    let attribute = |name: InstanceAttributeName| {
        let name_text = name.as_str().to_owned();
        let request = clients
            .ec2()
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(name);
        async move {
            request.send().await.map_err(|e| {
                ActionError::sdk("DescribeInstanceAttribute", e)
                    .not_found_as(|| format!("instance {instance_id} ({name_text})"))
            })
        }
    };
    let termination = attribute(InstanceAttributeName::DisableApiTermination).await?;
    let stop = attribute(InstanceAttributeName::DisableApiStop).await?;
    let shutdown = attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior).await?;
    let attributes = InstanceAttributes {
        disable_api_termination: termination
            .disable_api_termination()
            .and_then(|v| v.value())
            .unwrap_or(false),
        disable_api_stop: stop
            .disable_api_stop()
            .and_then(|v| v.value())
            .unwrap_or(false),
        // EC2's default when the attribute was never set is `stop`.
        shutdown_behavior: shutdown
            .instance_initiated_shutdown_behavior()
            .and_then(|v| v.value())
            .filter(|v| !v.is_empty())
            .unwrap_or("stop")
            .to_owned(),
        volumes: ebs_volumes(&instance),
    };
    Ok(InstanceView {
        id: instance_id.to_owned(),
        owner_id,
        vpc_id: instance.vpc_id().map(str::to_owned),
        tags: tag_map(instance.tags()),
        instance_profile_arn: instance
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .map(str::to_owned),
        enis,
        attributes,
    })
}
