//! EC2 instances: the instance, its interfaces, security groups with their rules, and volumes.

use aws_sdk_s3::error::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use super::super::join::{BoxFuture, join_all};
use super::{Description, absence, missing, not_found, s, sorted, time};
use crate::ActionError;
use ir_aws::Clients;

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Value {
    Value::Object(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default().to_owned(), s(t.value())))
            .collect(),
    )
}

/// The instance (DescribeInstances), its interfaces (DescribeNetworkInterfaces), its security
/// groups (DescribeSecurityGroups for the groups, DescribeSecurityGroupRules for their rules with
/// rule ids, which CloudTrail events of rule changes name) and its volumes (DescribeVolumes). The
/// four follow-up calls run concurrently.
pub(super) async fn ec2_instance(
    clients: &Clients,
    instance_id: &str,
) -> Result<Description, ActionError> {
    let out = match clients
        .ec2()
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            if let Some(code) = absence(&e, |c| c == "InvalidInstanceID.NotFound") {
                return Ok(not_found(code, e.message()));
            }
            return Err(ActionError::sdk("ec2:DescribeInstances", e));
        }
    };
    let found = out.reservations().iter().find_map(|r| {
        r.instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| (r, i))
    });
    let Some((reservation, instance)) = found else {
        return Ok(not_found(
            "InvalidInstanceID.NotFound".into(),
            Some("DescribeInstances returned no such instance"),
        ));
    };

    let mut eni_ids: Vec<String> = instance
        .network_interfaces()
        .iter()
        .filter_map(|n| n.network_interface_id().map(str::to_owned))
        .collect();
    eni_ids.sort();
    eni_ids.dedup();
    let mut group_ids: Vec<String> = instance
        .security_groups()
        .iter()
        .chain(
            instance
                .network_interfaces()
                .iter()
                .flat_map(|n| n.groups()),
        )
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    group_ids.sort();
    group_ids.dedup();
    let mut volume_ids: Vec<String> = instance
        .block_device_mappings()
        .iter()
        .filter_map(|b| b.ebs().and_then(|e| e.volume_id()).map(str::to_owned))
        .collect();
    volume_ids.sort();
    volume_ids.dedup();

    let mut block_devices: Vec<Value> = instance
        .block_device_mappings()
        .iter()
        .map(|b| {
            let ebs = b.ebs();
            json!({
                "deviceName": s(b.device_name()),
                "volumeId": s(ebs.and_then(|e| e.volume_id())),
                "deleteOnTermination": ebs.and_then(|e| e.delete_on_termination()),
                "status": s(ebs.and_then(|e| e.status()).map(|v| v.as_str())),
                "attachTime": time(ebs.and_then(|e| e.attach_time())),
            })
        })
        .collect();
    block_devices.sort_by_cached_key(|v| v["deviceName"].to_string());
    let mut instance_enis: Vec<(i32, Value)> = instance
        .network_interfaces()
        .iter()
        .map(|n| {
            let index = n.attachment().and_then(|a| a.device_index()).unwrap_or(i32::MAX);
            (index, json!({"networkInterfaceId": s(n.network_interface_id()), "deviceIndex": n.attachment().and_then(|a| a.device_index())}))
        })
        .collect();
    instance_enis.sort_by_key(|(i, v)| (*i, v.to_string()));
    let metadata = instance.metadata_options();
    let instance_json = json!({
        "instanceId": instance_id,
        "ownerId": s(reservation.owner_id()),
        "state": s(instance.state().and_then(|st| st.name()).map(|n| n.as_str())),
        "stateTransitionReason": s(instance.state_transition_reason()),
        "instanceType": s(instance.instance_type().map(|t| t.as_str())),
        "imageId": s(instance.image_id()),
        "launchTime": time(instance.launch_time()),
        "architecture": s(instance.architecture().map(|a| a.as_str())),
        "platformDetails": s(instance.platform_details()),
        "keyName": s(instance.key_name()),
        "vpcId": s(instance.vpc_id()),
        "subnetId": s(instance.subnet_id()),
        "availabilityZone": s(instance.placement().and_then(|p| p.availability_zone())),
        "privateIpAddress": s(instance.private_ip_address()),
        "publicIpAddress": s(instance.public_ip_address()),
        "privateDnsName": s(instance.private_dns_name()),
        "publicDnsName": s(instance.public_dns_name()),
        "sourceDestCheck": instance.source_dest_check(),
        "iamInstanceProfile": instance.iam_instance_profile().map(|p| json!({"arn": s(p.arn()), "id": s(p.id())})),
        "metadataOptions": metadata.map(|m| json!({
            "httpTokens": s(m.http_tokens().map(|v| v.as_str())),
            "httpEndpoint": s(m.http_endpoint().map(|v| v.as_str())),
            "httpPutResponseHopLimit": m.http_put_response_hop_limit(),
        })),
        "rootDeviceName": s(instance.root_device_name()),
        "securityGroups": sorted(instance.security_groups().iter().map(|g| json!({"groupId": s(g.group_id()), "groupName": s(g.group_name())})).collect()),
        "networkInterfaces": instance_enis.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "blockDeviceMappings": block_devices,
        "tags": ec2_tags(instance.tags()),
    });

    let ec2 = &clients.ec2();
    let enis = async {
        if eni_ids.is_empty() {
            return Ok(json!([]));
        }
        match ec2
            .describe_network_interfaces()
            .set_network_interface_ids(Some(eni_ids.clone()))
            .send()
            .await
        {
            Ok(out) => Ok(Value::Array(network_interfaces(out.network_interfaces()))),
            Err(e) => match absence(&e, |c| c.ends_with(".NotFound")) {
                Some(code) => Ok(missing(code)),
                None => Err(ActionError::sdk("ec2:DescribeNetworkInterfaces", e)),
            },
        }
    };
    let groups = async {
        if group_ids.is_empty() {
            return Ok(json!([]));
        }
        match ec2
            .describe_security_groups()
            .set_group_ids(Some(group_ids.clone()))
            .send()
            .await
        {
            Ok(out) => Ok(Value::Array(
                out.security_groups().iter().map(security_group).collect(),
            )),
            Err(e) => match absence(&e, |c| c.ends_with(".NotFound")) {
                Some(code) => Ok(missing(code)),
                None => Err(ActionError::sdk("ec2:DescribeSecurityGroups", e)),
            },
        }
    };
    let rules = async {
        if group_ids.is_empty() {
            return Ok(json!([]));
        }
        security_group_rules(clients, &group_ids).await
    };
    let volumes = async {
        if volume_ids.is_empty() {
            return Ok(json!([]));
        }
        match ec2
            .describe_volumes()
            .set_volume_ids(Some(volume_ids.clone()))
            .send()
            .await
        {
            Ok(out) => Ok(Value::Array(volumes(out.volumes()))),
            Err(e) => match absence(&e, |c| c.ends_with(".NotFound")) {
                Some(code) => Ok(missing(code)),
                None => Err(ActionError::sdk("ec2:DescribeVolumes", e)),
            },
        }
    };
    let parts: Vec<BoxFuture<'_, Result<Value, ActionError>>> = vec![
        Box::pin(enis),
        Box::pin(groups),
        Box::pin(rules),
        Box::pin(volumes),
    ];
    let mut parts = join_all(parts).await.into_iter();
    let mut next = || parts.next().unwrap_or(Ok(Value::Null));
    let (enis, mut groups, rules, volumes) = (next()?, next()?, next()?, next()?);

    // Rules go under their group: `ingress` and `egress`, sorted by rule id.
    if let (Value::Array(groups), Value::Array(rules)) = (&mut groups, &rules) {
        for group in groups.iter_mut() {
            let id = group["groupId"].clone();
            let of = |egress: bool| -> Vec<Value> {
                rules
                    .iter()
                    .filter(|r| r["groupId"] == id && r["isEgress"] == json!(egress))
                    .cloned()
                    .collect()
            };
            group["ingressRules"] = Value::Array(of(false));
            group["egressRules"] = Value::Array(of(true));
        }
    }

    let mut body = Map::new();
    body.insert("instance".into(), instance_json);
    body.insert("networkInterfaces".into(), enis);
    body.insert("securityGroups".into(), groups);
    if !rules.is_array() {
        body.insert("securityGroupRules".into(), rules);
    }
    body.insert("volumes".into(), volumes);
    Ok(Description { body, found: true })
}

fn network_interfaces(items: &[aws_sdk_ec2::types::NetworkInterface]) -> Vec<Value> {
    let mut out: Vec<Value> = items
        .iter()
        .map(|n| {
            let attachment = n.attachment();
            json!({
                "networkInterfaceId": s(n.network_interface_id()),
                "ownerId": s(n.owner_id()),
                "status": s(n.status().map(|v| v.as_str())),
                "interfaceType": s(n.interface_type().map(|v| v.as_str())),
                "description": s(n.description()),
                "requesterManaged": n.requester_managed(),
                "vpcId": s(n.vpc_id()),
                "subnetId": s(n.subnet_id()),
                "availabilityZone": s(n.availability_zone()),
                "macAddress": s(n.mac_address()),
                "sourceDestCheck": n.source_dest_check(),
                "privateIpAddresses": sorted(n.private_ip_addresses().iter().map(|p| json!({
                    "privateIpAddress": s(p.private_ip_address()),
                    "primary": p.primary(),
                    "publicIp": s(p.association().and_then(|a| a.public_ip())),
                })).collect()),
                "ipv6Addresses": sorted(n.ipv6_addresses().iter().map(|a| s(a.ipv6_address())).collect()),
                "association": n.association().map(|a| json!({"publicIp": s(a.public_ip()), "ipOwnerId": s(a.ip_owner_id())})),
                // The order of an interface's groups is kept as AWS returns it.
                "groups": n.groups().iter().map(|g| json!({"groupId": s(g.group_id()), "groupName": s(g.group_name())})).collect::<Vec<_>>(),
                "attachment": attachment.map(|a| json!({
                    "attachmentId": s(a.attachment_id()),
                    "instanceId": s(a.instance_id()),
                    "deviceIndex": a.device_index(),
                    "status": s(a.status().map(|v| v.as_str())),
                    "deleteOnTermination": a.delete_on_termination(),
                    "attachTime": time(a.attach_time()),
                })),
                "tags": ec2_tags(n.tag_set()),
            })
        })
        .collect();
    out.sort_by_cached_key(|v| {
        (
            v["attachment"]["deviceIndex"].as_i64().unwrap_or(i64::MAX),
            v["networkInterfaceId"].to_string(),
        )
    });
    out
}

fn security_group(g: &aws_sdk_ec2::types::SecurityGroup) -> Value {
    json!({
        "groupId": s(g.group_id()),
        "groupName": s(g.group_name()),
        "description": s(g.description()),
        "vpcId": s(g.vpc_id()),
        "ownerId": s(g.owner_id()),
        "tags": ec2_tags(g.tags()),
        // The rules as DescribeSecurityGroups states them (permission sets, one per protocol
        // and port range); `ingressRules`/`egressRules` hold the same rules with their ids.
        "ipPermissions": sorted(g.ip_permissions().iter().map(permission).collect()),
        "ipPermissionsEgress": sorted(g.ip_permissions_egress().iter().map(permission).collect()),
    })
}

fn permission(p: &aws_sdk_ec2::types::IpPermission) -> Value {
    json!({
        "ipProtocol": s(p.ip_protocol()),
        "fromPort": p.from_port(),
        "toPort": p.to_port(),
        "ipv4Ranges": sorted(p.ip_ranges().iter().map(|r| json!({"cidr": s(r.cidr_ip()), "description": s(r.description())})).collect()),
        "ipv6Ranges": sorted(p.ipv6_ranges().iter().map(|r| json!({"cidr": s(r.cidr_ipv6()), "description": s(r.description())})).collect()),
        "prefixListIds": sorted(p.prefix_list_ids().iter().map(|r| json!({"prefixListId": s(r.prefix_list_id()), "description": s(r.description())})).collect()),
        "referencedGroups": sorted(p.user_id_group_pairs().iter().map(|r| json!({
            "groupId": s(r.group_id()),
            "userId": s(r.user_id()),
            "vpcId": s(r.vpc_id()),
            "description": s(r.description()),
        })).collect()),
    })
}

/// Every rule of the groups, paginated, sorted by rule id.
async fn security_group_rules(
    clients: &Clients,
    group_ids: &[String],
) -> Result<Value, ActionError> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("group-id")
        .set_values(Some(group_ids.to_vec()))
        .build();
    let mut rules = Vec::new();
    let mut pages = clients
        .ec2()
        .describe_security_group_rules()
        .filters(filter)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => match absence(&e, |c| c.ends_with(".NotFound")) {
                Some(code) => return Ok(missing(code)),
                None => return Err(ActionError::sdk("ec2:DescribeSecurityGroupRules", e)),
            },
        };
        for r in page.security_group_rules() {
            rules.push(json!({
                "securityGroupRuleId": s(r.security_group_rule_id()),
                "groupId": s(r.group_id()),
                "isEgress": r.is_egress(),
                "ipProtocol": s(r.ip_protocol()),
                "fromPort": r.from_port(),
                "toPort": r.to_port(),
                "cidrIpv4": s(r.cidr_ipv4()),
                "cidrIpv6": s(r.cidr_ipv6()),
                "prefixListId": s(r.prefix_list_id()),
                "referencedGroup": r.referenced_group_info().map(|g| json!({"groupId": s(g.group_id()), "userId": s(g.user_id()), "vpcId": s(g.vpc_id())})),
                "description": s(r.description()),
                "tags": ec2_tags(r.tags()),
            }));
        }
    }
    rules.sort_by_cached_key(|r| (r["securityGroupRuleId"].to_string(), r.to_string()));
    Ok(Value::Array(rules))
}

fn volumes(items: &[aws_sdk_ec2::types::Volume]) -> Vec<Value> {
    let mut out: Vec<Value> = items
        .iter()
        .map(|v| {
            json!({
                "volumeId": s(v.volume_id()),
                "size": v.size(),
                "volumeType": s(v.volume_type().map(|t| t.as_str())),
                "state": s(v.state().map(|t| t.as_str())),
                "encrypted": v.encrypted(),
                "kmsKeyId": s(v.kms_key_id()),
                "snapshotId": s(v.snapshot_id()),
                "availabilityZone": s(v.availability_zone()),
                "createTime": time(v.create_time()),
                "iops": v.iops(),
                "throughput": v.throughput(),
                "multiAttachEnabled": v.multi_attach_enabled(),
                "attachments": sorted(v.attachments().iter().map(|a| json!({
                    "instanceId": s(a.instance_id()),
                    "device": s(a.device()),
                    "state": s(a.state().map(|t| t.as_str())),
                    "deleteOnTermination": a.delete_on_termination(),
                    "attachTime": time(a.attach_time()),
                })).collect()),
                "tags": ec2_tags(v.tags()),
            })
        })
        .collect();
    out.sort_by_cached_key(|v| v["volumeId"].to_string());
    out
}
