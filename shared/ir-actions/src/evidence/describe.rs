//! The resource's description at collection time, as JSON.
//!
//! The SDK types have no serde, so every description is built by hand from the fields an
//! investigator needs: identifiers, network placement, security-group rules (protocols, ports,
//! CIDRs, referenced groups), attached volumes, IAM policies with their documents, tags, states
//! and times. Output is deterministic: JSON object keys are sorted (serde_json's map is ordered),
//! and lists whose order carries no meaning are sorted.
//!
//! A resource that no longer exists is described as absent (`"found": false` with the error
//! code) rather than failing the collection: the finding and the CloudTrail logs of the window
//! are still worth keeping, and the absence itself is a fact about the incident at collection
//! time. Any other failure (access denied, throttling) fails the collection before anything is
//! written, so that a retry produces complete evidence.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use ir_core::{ErrorName, Named, Resource};
use serde_json::{Map, Value, json};

use super::join::{BoxFuture, join_all};
use crate::ActionError;
use ir_aws::Clients;

/// A description: the document, and whether the resource was found.
#[derive(Debug, Clone)]
pub struct Description {
    /// Kind-specific content (`instance`, `networkInterfaces`, `role`, `bucket`, ...), or the
    /// reason the resource was not found.
    pub body: Map<String, Value>,
    pub found: bool,
}

/// Describes the resource; `None` for kinds the suite does not describe.
pub async fn describe(
    clients: &Clients,
    resource: &Resource,
) -> Result<Option<Description>, ActionError> {
    let described = match resource {
        Resource::Ec2Instance(r) => ec2_instance(clients, &r.instance_id).await?,
        Resource::IamRole(r) => iam_role(clients, &r.role_name).await?,
        Resource::IamUser(r) => iam_user(clients, &r.user_name).await?,
        Resource::S3Bucket(r) => s3_bucket(clients, &r.bucket_name).await?,
        Resource::EksCluster(_) | Resource::Other(_) => return Ok(None),
    };
    Ok(Some(described))
}

// ---------------------------------------------------------------------------------------------
// helpers

/// The error code of an SDK error when it is one of `codes` (an expected absence, not logged as
/// a failure).
fn absence<E: ProvideErrorMetadata>(err: &E, matches: impl Fn(&str) -> bool) -> Option<String> {
    err.code().filter(|c| matches(c)).map(str::to_owned)
}

fn not_found(code: String, message: Option<&str>) -> Description {
    let mut body = Map::new();
    body.insert("notFound".into(), json!({"code": code, "message": message}));
    Description { body, found: false }
}

/// `{"present": false, "code": ...}`: a sub-resource that does not exist (no bucket policy).
fn missing(code: String) -> Value {
    json!({"present": false, "code": code})
}

fn time(t: Option<&DateTime>) -> Value {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
        .map_or(Value::Null, Value::String)
}

fn s(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |v| Value::String(v.to_owned()))
}

fn sorted(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by_cached_key(Value::to_string);
    items.dedup();
    items
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Value {
    Value::Object(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default().to_owned(), s(t.value())))
            .collect(),
    )
}

fn iam_tags(tags: &[aws_sdk_iam::types::Tag]) -> Value {
    Value::Object(
        tags.iter()
            .map(|t| (t.key().to_owned(), Value::String(t.value().to_owned())))
            .collect(),
    )
}

/// IAM returns policy documents URL-encoded (RFC 3986); the description stores them as JSON.
pub fn policy_json(document: &str) -> Value {
    let decoded = percent_decode(document);
    serde_json::from_str(&decoded)
        .or_else(|_| serde_json::from_str(document))
        .unwrap_or(Value::String(decoded))
}

/// Percent-decoding (no `+` → space: IAM encodes spaces as `%20`). Invalid UTF-8 after
/// decoding leaves the input as it was.
pub fn percent_decode(s: &str) -> String {
    fn hex_val(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex_val(*h).zip(hex_val(*l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

// ---------------------------------------------------------------------------------------------
// EC2

/// The instance (DescribeInstances), its interfaces (DescribeNetworkInterfaces), its security
/// groups (DescribeSecurityGroups for the groups, DescribeSecurityGroupRules for their rules with
/// rule ids, which CloudTrail events of rule changes name) and its volumes (DescribeVolumes). The
/// four follow-up calls run concurrently.
async fn ec2_instance(clients: &Clients, instance_id: &str) -> Result<Description, ActionError> {
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
    let mut token: Option<String> = None;
    loop {
        let page = match clients
            .ec2()
            .describe_security_group_rules()
            .filters(filter.clone())
            .set_next_token(token.take())
            .send()
            .await
        {
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
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
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

// ---------------------------------------------------------------------------------------------
// IAM

fn is_no_such_entity(code: &str) -> bool {
    code == "NoSuchEntity"
}

fn boundary(b: Option<&aws_sdk_iam::types::AttachedPermissionsBoundary>) -> Value {
    b.map_or(Value::Null, |b| {
        json!({"type": s(b.permissions_boundary_type().map(|t| t.as_str())), "arn": s(b.permissions_boundary_arn())})
    })
}

/// One page of an IAM listing: its items, and the marker of the next page (`None` after the
/// last: IAM sets `Marker` only with `IsTruncated`).
type IamPage<T> = (Vec<T>, Option<String>);

fn iam_page<T: Clone>(items: &[T], marker: Option<&str>, truncated: bool) -> IamPage<T> {
    (
        items.to_vec(),
        marker.filter(|_| truncated).map(str::to_owned),
    )
}

/// Every item of a paginated IAM listing: `page(marker)` fetches one page, starting with
/// `None`, until a page has no next marker.
async fn iam_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, ActionError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<IamPage<T>, ActionError>>,
{
    let mut items = Vec::new();
    let mut marker = None;
    loop {
        let (got, next) = page(marker).await?;
        items.extend(got);
        match next {
            Some(m) => marker = Some(m),
            None => return Ok(items),
        }
    }
}

/// The holder of IAM policies a description lists: a role or a user, by name.
#[derive(Debug, Clone, Copy)]
enum Holder<'a> {
    Role(&'a str),
    User(&'a str),
}

/// The holder's inline policies with their documents, sorted by name (ListRolePolicies and
/// GetRolePolicy, or the user's).
async fn inline_policies(
    iam: &aws_sdk_iam::Client,
    holder: Holder<'_>,
) -> Result<Value, ActionError> {
    let mut names = iam_pages(|marker| async move {
        Ok(match holder {
            Holder::Role(name) => {
                let page = iam
                    .list_role_policies()
                    .role_name(name)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| ActionError::sdk("iam:ListRolePolicies", e))?;
                iam_page(page.policy_names(), page.marker(), page.is_truncated())
            }
            Holder::User(name) => {
                let page = iam
                    .list_user_policies()
                    .user_name(name)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| ActionError::sdk("iam:ListUserPolicies", e))?;
                iam_page(page.policy_names(), page.marker(), page.is_truncated())
            }
        })
    })
    .await?;
    names.sort();
    let mut policies = Vec::with_capacity(names.len());
    for policy in names {
        let document = match holder {
            Holder::Role(name) => {
                iam.get_role_policy()
                    .role_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                    .map_err(|e| ActionError::sdk("iam:GetRolePolicy", e))?
                    .policy_document
            }
            Holder::User(name) => {
                iam.get_user_policy()
                    .user_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                    .map_err(|e| ActionError::sdk("iam:GetUserPolicy", e))?
                    .policy_document
            }
        };
        policies.push(json!({"policyName": policy, "document": policy_json(&document)}));
    }
    Ok(Value::Array(policies))
}

/// The holder's attached managed policies, sorted (ListAttachedRolePolicies, or the user's).
async fn attached_policies(
    iam: &aws_sdk_iam::Client,
    holder: Holder<'_>,
) -> Result<Value, ActionError> {
    let attached = iam_pages(|marker| async move {
        Ok(match holder {
            Holder::Role(name) => {
                let page = iam
                    .list_attached_role_policies()
                    .role_name(name)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| ActionError::sdk("iam:ListAttachedRolePolicies", e))?;
                iam_page(page.attached_policies(), page.marker(), page.is_truncated())
            }
            Holder::User(name) => {
                let page = iam
                    .list_attached_user_policies()
                    .user_name(name)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| ActionError::sdk("iam:ListAttachedUserPolicies", e))?;
                iam_page(page.attached_policies(), page.marker(), page.is_truncated())
            }
        })
    })
    .await?;
    let attached = attached
        .iter()
        .map(|p| json!({"policyName": s(p.policy_name()), "policyArn": s(p.policy_arn())}))
        .collect();
    Ok(Value::Array(sorted(attached)))
}

/// GetRole (with tags), its inline policies with their documents, and its attached managed
/// policies; the listings run concurrently.
async fn iam_role(clients: &Clients, name: &str) -> Result<Description, ActionError> {
    let iam = &clients.iam();
    let out = match iam.get_role().role_name(name).send().await {
        Ok(out) => out,
        Err(e) => match absence(&e, is_no_such_entity) {
            Some(code) => return Ok(not_found(code, e.message())),
            None => return Err(ActionError::sdk("iam:GetRole", e)),
        },
    };
    let Some(role) = out.role() else {
        return Ok(not_found(
            "NoSuchEntity".into(),
            Some("GetRole returned no role"),
        ));
    };
    let role_json = json!({
        "roleName": role.role_name(),
        "roleId": role.role_id(),
        "arn": role.arn(),
        "path": role.path(),
        "createDate": time(Some(role.create_date())),
        "description": s(role.description()),
        "maxSessionDuration": role.max_session_duration(),
        "permissionsBoundary": boundary(role.permissions_boundary()),
        "assumeRolePolicyDocument": role.assume_role_policy_document().map_or(Value::Null, policy_json),
        "roleLastUsed": role.role_last_used().map(|u| json!({"lastUsedDate": time(u.last_used_date()), "region": s(u.region())})),
        "tags": iam_tags(role.tags()),
    });
    let holder = Holder::Role(name);
    let parts: Vec<BoxFuture<'_, Result<Value, ActionError>>> = vec![
        Box::pin(inline_policies(iam, holder)),
        Box::pin(attached_policies(iam, holder)),
    ];
    let mut parts = join_all(parts).await.into_iter();
    let mut next = || parts.next().unwrap_or(Ok(Value::Null));
    let (inline, attached) = (next()?, next()?);
    let mut body = Map::new();
    body.insert("role".into(), role_json);
    body.insert("inlinePolicies".into(), inline);
    body.insert("attachedPolicies".into(), attached);
    Ok(Description { body, found: true })
}

/// GetUser (with tags), its inline policies with documents, attached managed policies, groups,
/// and its access keys' metadata with when and where each was last used. ListAccessKeys never
/// returns secrets; nothing here could.
async fn iam_user(clients: &Clients, name: &str) -> Result<Description, ActionError> {
    let iam = &clients.iam();
    let out = match iam.get_user().user_name(name).send().await {
        Ok(out) => out,
        Err(e) => match absence(&e, is_no_such_entity) {
            Some(code) => return Ok(not_found(code, e.message())),
            None => return Err(ActionError::sdk("iam:GetUser", e)),
        },
    };
    let Some(user) = out.user() else {
        return Ok(not_found(
            "NoSuchEntity".into(),
            Some("GetUser returned no user"),
        ));
    };
    let user_json = json!({
        "userName": user.user_name(),
        "userId": user.user_id(),
        "arn": user.arn(),
        "path": user.path(),
        "createDate": time(Some(user.create_date())),
        "passwordLastUsed": time(user.password_last_used()),
        "permissionsBoundary": boundary(user.permissions_boundary()),
        "tags": iam_tags(user.tags()),
    });
    let groups = async {
        let groups = iam_pages(|marker| async move {
            let page = iam
                .list_groups_for_user()
                .user_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| ActionError::sdk("iam:ListGroupsForUser", e))?;
            Ok(iam_page(page.groups(), page.marker(), page.is_truncated()))
        })
        .await?;
        let groups = groups
            .iter()
            .map(|g| json!({"groupName": g.group_name(), "arn": g.arn()}))
            .collect();
        Ok(Value::Array(sorted(groups)))
    };
    let keys = async {
        let mut keys = iam_pages(|marker| async move {
            let page = iam
                .list_access_keys()
                .user_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| ActionError::sdk("iam:ListAccessKeys", e))?;
            Ok(iam_page(
                page.access_key_metadata(),
                page.marker(),
                page.is_truncated(),
            ))
        })
        .await?;
        keys.sort_by(|a, b| a.access_key_id().cmp(&b.access_key_id()));
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(id) = key.access_key_id() else {
                continue;
            };
            let used = iam
                .get_access_key_last_used()
                .access_key_id(id)
                .send()
                .await
                .map_err(|e| ActionError::sdk("iam:GetAccessKeyLastUsed", e))?;
            let used = used.access_key_last_used();
            out.push(json!({
                "accessKeyId": id,
                "status": s(key.status().map(|v| v.as_str())),
                "createDate": time(key.create_date()),
                "lastUsed": used.map(|u| json!({"date": time(u.last_used_date()), "serviceName": u.service_name(), "region": u.region()})),
            }));
        }
        Ok(Value::Array(out))
    };
    let holder = Holder::User(name);
    let parts: Vec<BoxFuture<'_, Result<Value, ActionError>>> = vec![
        Box::pin(inline_policies(iam, holder)),
        Box::pin(attached_policies(iam, holder)),
        Box::pin(groups),
        Box::pin(keys),
    ];
    let mut parts = join_all(parts).await.into_iter();
    let mut next = || parts.next().unwrap_or(Ok(Value::Null));
    let (inline, attached, groups, keys) = (next()?, next()?, next()?, next()?);
    let mut body = Map::new();
    body.insert("user".into(), user_json);
    body.insert("inlinePolicies".into(), inline);
    body.insert("attachedPolicies".into(), attached);
    body.insert("groups".into(), groups);
    body.insert("accessKeys".into(), keys);
    Ok(Description { body, found: true })
}

// ---------------------------------------------------------------------------------------------
// S3

/// Bucket policy, public access block, versioning, default encryption and tagging, concurrently.
/// Each may be absent (its own error code): absence is recorded, not a failure (see
/// [`absent_or`] for other errors). A bucket that does not exist (`NoSuchBucket` from any of
/// them) is described as not found.
async fn s3_bucket(clients: &Clients, bucket: &str) -> Result<Description, ActionError> {
    let s3 = &clients.s3();
    let policy = async {
        match s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => Ok(out.policy().map_or(Value::Null, |p| {
                serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.to_owned()))
            })),
            Err(e) => absent_or("s3:GetBucketPolicy", e, "NoSuchBucketPolicy"),
        }
    };
    let public_access = async {
        match s3.get_public_access_block().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .public_access_block_configuration()
                .map_or(Value::Null, |c| {
                    json!({
                        "blockPublicAcls": c.block_public_acls(),
                        "ignorePublicAcls": c.ignore_public_acls(),
                        "blockPublicPolicy": c.block_public_policy(),
                        "restrictPublicBuckets": c.restrict_public_buckets(),
                    })
                })),
            Err(e) => absent_or(
                "s3:GetPublicAccessBlock",
                e,
                "NoSuchPublicAccessBlockConfiguration",
            ),
        }
    };
    let versioning = async {
        match s3.get_bucket_versioning().bucket(bucket).send().await {
            // No status: versioning was never enabled on the bucket.
            Ok(out) => Ok(
                json!({"status": s(out.status().map(|v| v.as_str())), "mfaDelete": s(out.mfa_delete().map(|v| v.as_str()))}),
            ),
            Err(e) => absent_or("s3:GetBucketVersioning", e, ""),
        }
    };
    let encryption = async {
        match s3.get_bucket_encryption().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .map_or(Value::Null, |c| {
                    Value::Array(
                        c.rules()
                            .iter()
                            .map(|r| {
                                let d = r.apply_server_side_encryption_by_default();
                                json!({
                                    "sseAlgorithm": s(d.map(|d| d.sse_algorithm().as_str())),
                                    "kmsMasterKeyId": s(d.and_then(|d| d.kms_master_key_id())),
                                    "bucketKeyEnabled": r.bucket_key_enabled(),
                                })
                            })
                            .collect(),
                    )
                })),
            Err(e) => absent_or(
                "s3:GetBucketEncryption",
                e,
                "ServerSideEncryptionConfigurationNotFoundError",
            ),
        }
    };
    let tagging = async {
        match s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => Ok(Value::Object(
                out.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), Value::String(t.value().to_owned())))
                    .collect(),
            )),
            Err(e) => absent_or("s3:GetBucketTagging", e, "NoSuchTagSet"),
        }
    };
    let parts: Vec<BoxFuture<'_, Result<Value, ActionError>>> = vec![
        Box::pin(policy),
        Box::pin(public_access),
        Box::pin(versioning),
        Box::pin(encryption),
        Box::pin(tagging),
    ];
    let results = join_all(parts).await;
    let mut values = Vec::with_capacity(results.len());
    for r in results {
        values.push(r?);
    }
    if let Some(gone) = values.iter().find(|v| v["code"] == "NoSuchBucket") {
        let code = gone["code"].as_str().unwrap_or("NoSuchBucket").to_owned();
        return Ok(not_found(code, Some("the bucket does not exist")));
    }
    let mut values = values.into_iter();
    let mut body = Map::new();
    let bucket_json = json!({
        "bucketName": bucket,
        "policy": values.next(),
        "publicAccessBlock": values.next(),
        "versioning": values.next(),
        "encryption": values.next(),
        "tagging": values.next(),
    });
    body.insert("bucket".into(), bucket_json);
    Ok(Description { body, found: true })
}

/// A missing sub-resource (`absent_code`) or a missing bucket is recorded as absent. Any other
/// failure except a retryable one is recorded as a read error rather than failing the
/// collection: a bucket policy is controlled by whoever controls the bucket, and an attacker who
/// denies everyone else must not be able to stop the finding and the logs from being kept (the
/// denial is itself evidence). Throttling and 5xx fail, so that the retry gets the full picture.
fn absent_or<E>(
    op: &'static str,
    e: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    absent_code: &str,
) -> Result<Value, ActionError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(code) = absence(&e, |c| {
        c == "NoSuchBucket" || (!absent_code.is_empty() && c == absent_code)
    }) {
        return Ok(missing(code));
    }
    let err = ActionError::sdk(op, e);
    match err.error_name() {
        ErrorName::Retryable => Err(err),
        name => Ok(json!({"readError": {"name": name.as_str(), "detail": err.to_string()}})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_are_url_decoded() {
        let doc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGet%2A%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Aa%20b%25%22%7D%5D%7D";
        assert_eq!(
            policy_json(doc),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::a b%"}]})
        );
        // Already-decoded JSON stays as is; a stray `%` is kept.
        assert_eq!(policy_json(r#"{"a":"50%"}"#), json!({"a": "50%"}));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(percent_decode("%FF"), "%FF");
    }
}
