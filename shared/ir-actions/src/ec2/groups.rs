//! The suite's two security groups per VPC: found by name (the name embeds the VPC id and is
//! unique within the VPC), created when missing, and their rules brought to what isolation needs
//! on every run (so a run that failed between creating a group and fixing its rules is repaired
//! by the next one).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, TagSpecification,
    UserIdGroupPair,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ir_core::config::Mode;
use serde_json::{Value, json};

use super::read::{dry_run_outcome, filter, has_code, tag, tag_map};
use super::tags::TAG_GROUP;
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

const ANY_V4: &str = "0.0.0.0/0";
const ANY_V6: &str = "::/0";

/// Which of the two groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupKind {
    /// All traffic allowed, IPv4 and IPv6, in and out: while it is the interface's only group,
    /// every flow of the interface is untracked.
    Conversion,
    /// No rule at all: nothing in, nothing out.
    Isolation,
}

impl GroupKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            GroupKind::Conversion => "conversion",
            GroupKind::Isolation => "isolation",
        }
    }

    pub(crate) fn name(self, vpc_id: &str) -> String {
        format!("ir-{}-{vpc_id}", self.label())
    }

    fn description(self) -> &'static str {
        match self {
            GroupKind::Conversion => {
                "Incident response conversion group: allows all traffic so that tracked connections become untracked before isolation"
            }
            GroupKind::Isolation => {
                "Incident response isolation group: no rules, no traffic in or out"
            }
        }
    }

    /// The rules the group must have, as rendered in reports.
    fn wanted(self) -> (Vec<String>, Vec<String>) {
        match self {
            GroupKind::Conversion => {
                let all = vec![format!("all {ANY_V4}"), format!("all {ANY_V6}")];
                (all.clone(), all)
            }
            GroupKind::Isolation => (Vec::new(), Vec::new()),
        }
    }
}

/// A group by name, with its id once it exists (dry-run: `None` for a group to be created).
#[derive(Debug, Clone)]
pub(crate) struct GroupRef {
    pub name: String,
    pub id: Option<String>,
}

impl GroupRef {
    /// The id, or `(new) <name>` for a group that does not exist yet.
    pub(crate) fn shown(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("(new) {}", self.name))
    }
}

/// The conversion and isolation groups of one VPC.
#[derive(Debug, Clone)]
pub(crate) struct VpcGroups {
    pub conversion: GroupRef,
    pub isolation: GroupRef,
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress-rules",
            Direction::Egress => "egress-rules",
        }
    }
}

/// Both groups of every VPC in `vpc_ids`, existing (enforce) or planned (dry-run), with their
/// rules and tag as isolation needs them. Records creations and rule changes in `report`.
pub(crate) async fn ensure_groups(
    clients: &Clients,
    vpc_ids: &[String],
    report: &mut ReportBuilder,
) -> Result<BTreeMap<String, VpcGroups>, ActionError> {
    let kinds = [GroupKind::Conversion, GroupKind::Isolation];
    let mut found = lookup(clients, vpc_ids).await?;
    let missing: Vec<(&String, GroupKind)> = vpc_ids
        .iter()
        .flat_map(|vpc| kinds.map(|k| (vpc, k)))
        .filter(|(vpc, kind)| find(&found, vpc, *kind).is_none())
        .collect();
    if report.mode() == Mode::Enforce && !missing.is_empty() {
        for (vpc, kind) in &missing {
            match create(clients, vpc, *kind, false).await {
                Ok(out) => {
                    report.change(
                        vpc.as_str(),
                        format!("security-group:{}", kind.name(vpc)),
                        Value::Null,
                        json!(out.group_id()),
                    );
                }
                // Another run created it between our describe and our create: use that one.
                Err(e) if has_code(&e, "InvalidGroup.Duplicate") => {
                    tracing::info!(vpc_id = %vpc, group = %kind.name(vpc), "security group created concurrently; reusing it");
                }
                Err(e) => return Err(ActionError::sdk("CreateSecurityGroup", e)),
            }
        }
        // Read them back: the new groups' default egress rules (0.0.0.0/0, plus ::/0 in a VPC
        // with IPv6) are whatever EC2 gave them, and must be known exactly to be revoked.
        found = lookup(clients, vpc_ids).await?;
        if let Some((vpc, kind)) = missing
            .iter()
            .find(|(vpc, kind)| find(&found, vpc, *kind).is_none())
        {
            return Err(ActionError::Verification(format!(
                "security group {} was created but DescribeSecurityGroups does not return it",
                kind.name(vpc)
            )));
        }
    } else if let Some((first_vpc, first_kind)) = missing.first() {
        for (vpc, kind) in &missing {
            let shown = format!("(new) {}", kind.name(vpc));
            report.change(
                vpc.as_str(),
                format!("security-group:{}", kind.name(vpc)),
                Value::Null,
                json!(shown),
            );
            let (ingress, egress) = kind.wanted();
            report.change(
                shown.clone(),
                Direction::Ingress.attribute(),
                Value::Null,
                json!(ingress),
            );
            report.change(
                shown,
                Direction::Egress.attribute(),
                Value::Null,
                json!(egress),
            );
        }
        dry_run_outcome(
            "CreateSecurityGroup",
            create(clients, first_vpc, *first_kind, true).await,
        )?;
    }

    let mut groups = BTreeMap::new();
    for vpc in vpc_ids {
        let mut refs = Vec::with_capacity(2);
        for kind in kinds {
            let id = match find(&found, vpc, kind) {
                Some(g) => {
                    ensure_rules(clients, g, kind, report).await?;
                    g.group_id().map(str::to_owned)
                }
                None => None,
            };
            refs.push(GroupRef {
                name: kind.name(vpc),
                id,
            });
        }
        let mut refs = refs.into_iter();
        if let (Some(conversion), Some(isolation)) = (refs.next(), refs.next()) {
            groups.insert(
                vpc.clone(),
                VpcGroups {
                    conversion,
                    isolation,
                },
            );
        }
    }
    Ok(groups)
}

async fn lookup(clients: &Clients, vpc_ids: &[String]) -> Result<Vec<SecurityGroup>, ActionError> {
    let names: Vec<String> = vpc_ids
        .iter()
        .flat_map(|vpc| {
            [
                GroupKind::Conversion.name(vpc),
                GroupKind::Isolation.name(vpc),
            ]
        })
        .collect();
    let mut groups = Vec::new();
    let mut pages = clients
        .ec2()
        .describe_security_groups()
        .filters(filter("vpc-id", vpc_ids.iter().cloned()))
        .filters(filter("group-name", names.iter().cloned()))
        .into_paginator()
        .send();
    while let Some(out) = pages.next().await {
        let out = out.map_err(|e| ActionError::sdk("DescribeSecurityGroups", e))?;
        groups.extend(out.security_groups().iter().cloned());
    }
    Ok(groups)
}

fn find<'a>(
    groups: &'a [SecurityGroup],
    vpc_id: &str,
    kind: GroupKind,
) -> Option<&'a SecurityGroup> {
    let name = kind.name(vpc_id);
    groups
        .iter()
        .find(|g| g.vpc_id() == Some(vpc_id) && g.group_name() == Some(name.as_str()))
}

async fn create(
    clients: &Clients,
    vpc_id: &str,
    kind: GroupKind,
    dry_run: bool,
) -> Result<
    aws_sdk_ec2::operation::create_security_group::CreateSecurityGroupOutput,
    aws_sdk_ec2::error::SdkError<
        aws_sdk_ec2::operation::create_security_group::CreateSecurityGroupError,
    >,
> {
    let name = kind.name(vpc_id);
    clients
        .ec2()
        .create_security_group()
        .group_name(&name)
        .description(kind.description())
        .vpc_id(vpc_id)
        // Tagged at creation, atomically: there is no window where the group exists untagged.
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(tag(TAG_GROUP, kind.label()))
                .tags(tag("Name", &name))
                .build(),
        )
        .dry_run(dry_run)
        .send()
        .await
}

/// Brings an existing group's tag and rules to what its kind needs.
async fn ensure_rules(
    clients: &Clients,
    group: &SecurityGroup,
    kind: GroupKind,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let Some(id) = group.group_id() else {
        return Ok(());
    };
    let enforce = report.mode() == Mode::Enforce;

    let current_tag = tag_map(group.tags()).get(TAG_GROUP).cloned();
    if current_tag.as_deref() != Some(kind.label()) {
        let request = clients
            .ec2()
            .create_tags()
            .resources(id)
            .tags(tag(TAG_GROUP, kind.label()));
        if enforce {
            request
                .send()
                .await
                .map_err(|e| ActionError::sdk("CreateTags", e))?;
        } else {
            dry_run_outcome("CreateTags", request.dry_run(true).send().await)?;
        }
        report.change(
            id,
            format!("tag:{TAG_GROUP}"),
            json!(current_tag),
            json!(kind.label()),
        );
    }

    for (direction, rules) in [
        (Direction::Ingress, group.ip_permissions()),
        (Direction::Egress, group.ip_permissions_egress()),
    ] {
        let before = render(rules);
        match kind {
            GroupKind::Conversion => {
                let need_v4 = !allows_all(rules, ANY_V4);
                let need_v6 = !allows_all(rules, ANY_V6);
                if !need_v4 && !need_v6 {
                    continue;
                }
                let mut permission = IpPermission::builder().ip_protocol("-1");
                let mut after = before.clone();
                if need_v4 {
                    permission = permission.ip_ranges(IpRange::builder().cidr_ip(ANY_V4).build());
                    after.push(format!("all {ANY_V4}"));
                }
                if need_v6 {
                    permission =
                        permission.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(ANY_V6).build());
                    after.push(format!("all {ANY_V6}"));
                }
                authorize(clients, id, direction, permission.build(), !enforce).await?;
                report.change(id, direction.attribute(), json!(before), json!(after));
            }
            GroupKind::Isolation => {
                if rules.is_empty() {
                    continue;
                }
                // Revoke exactly what is there (a new group's default egress is 0.0.0.0/0 and,
                // in a VPC with IPv6, ::/0 too), rebuilt with only the matching fields.
                let permissions: Vec<IpPermission> = rules.iter().map(matching_fields).collect();
                revoke(clients, id, direction, permissions, !enforce).await?;
                report.change(
                    id,
                    direction.attribute(),
                    json!(before),
                    json!(Vec::<String>::new()),
                );
            }
        }
    }
    Ok(())
}

async fn authorize(
    clients: &Clients,
    group_id: &str,
    direction: Direction,
    permission: IpPermission,
    dry_run: bool,
) -> Result<(), ActionError> {
    match direction {
        Direction::Ingress => {
            let r = clients
                .ec2()
                .authorize_security_group_ingress()
                .group_id(group_id)
                .ip_permissions(permission)
                .dry_run(dry_run)
                .send()
                .await;
            rule_change_outcome(
                "AuthorizeSecurityGroupIngress",
                r,
                dry_run,
                "InvalidPermission.Duplicate",
            )
        }
        Direction::Egress => {
            let r = clients
                .ec2()
                .authorize_security_group_egress()
                .group_id(group_id)
                .ip_permissions(permission)
                .dry_run(dry_run)
                .send()
                .await;
            rule_change_outcome(
                "AuthorizeSecurityGroupEgress",
                r,
                dry_run,
                "InvalidPermission.Duplicate",
            )
        }
    }
}

async fn revoke(
    clients: &Clients,
    group_id: &str,
    direction: Direction,
    permissions: Vec<IpPermission>,
    dry_run: bool,
) -> Result<(), ActionError> {
    match direction {
        Direction::Ingress => {
            let r = clients
                .ec2()
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .dry_run(dry_run)
                .send()
                .await;
            rule_change_outcome(
                "RevokeSecurityGroupIngress",
                r,
                dry_run,
                "InvalidPermission.NotFound",
            )
        }
        Direction::Egress => {
            let r = clients
                .ec2()
                .revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .dry_run(dry_run)
                .send()
                .await;
            rule_change_outcome(
                "RevokeSecurityGroupEgress",
                r,
                dry_run,
                "InvalidPermission.NotFound",
            )
        }
    }
}

/// The outcome of a rule change: with `DryRun` the permission check; otherwise success, or the
/// one error code a concurrent run causes (the rule was already added, or already revoked),
/// which is success too: the read-back verification has the last word.
fn rule_change_outcome<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
    dry_run: bool,
    raced: &str,
) -> Result<(), ActionError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        _ if dry_run => dry_run_outcome(operation, result),
        Err(e) if has_code(&e, raced) => Ok(()),
        Err(e) => Err(ActionError::sdk(operation, e)),
        Ok(_) => Ok(()),
    }
}

/// Whether the rules allow all protocols to/from `cidr` (`0.0.0.0/0` or `::/0`).
fn allows_all(rules: &[IpPermission], cidr: &str) -> bool {
    rules
        .iter()
        .filter(|p| p.ip_protocol() == Some("-1"))
        .any(|p| {
            p.ip_ranges().iter().any(|r| r.cidr_ip() == Some(cidr))
                || p.ipv6_ranges().iter().any(|r| r.cidr_ipv6() == Some(cidr))
        })
}

/// A described rule reduced to the fields EC2 matches a revoke on (descriptions and peering
/// details are not part of a rule's identity).
fn matching_fields(p: &IpPermission) -> IpPermission {
    IpPermission::builder()
        .set_ip_protocol(p.ip_protocol().map(str::to_owned))
        .set_from_port(p.from_port())
        .set_to_port(p.to_port())
        .set_ip_ranges(Some(
            p.ip_ranges()
                .iter()
                .map(|r| {
                    IpRange::builder()
                        .set_cidr_ip(r.cidr_ip().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .set_ipv6_ranges(Some(
            p.ipv6_ranges()
                .iter()
                .map(|r| {
                    Ipv6Range::builder()
                        .set_cidr_ipv6(r.cidr_ipv6().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .set_prefix_list_ids(Some(
            p.prefix_list_ids()
                .iter()
                .map(|r| {
                    PrefixListId::builder()
                        .set_prefix_list_id(r.prefix_list_id().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .set_user_id_group_pairs(Some(
            p.user_id_group_pairs()
                .iter()
                .map(|g| {
                    UserIdGroupPair::builder()
                        .set_group_id(g.group_id().map(str::to_owned))
                        .set_user_id(g.user_id().map(str::to_owned))
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// Rules as `<protocol>[ <from>-<to>] <source>`, one per source, e.g. `all 0.0.0.0/0`,
/// `tcp 22-22 10.0.0.0/8`, `tcp 443-443 sg-0abc`.
pub(crate) fn render(rules: &[IpPermission]) -> Vec<String> {
    let mut out = Vec::new();
    for p in rules {
        let protocol = match p.ip_protocol() {
            Some("-1") | None => "all".to_owned(),
            Some(other) => other.to_owned(),
        };
        let ports = match (p.from_port(), p.to_port()) {
            (Some(from), Some(to)) if protocol != "all" => format!(" {from}-{to}"),
            _ => String::new(),
        };
        let sources = p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip())
            .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
            .chain(
                p.prefix_list_ids()
                    .iter()
                    .filter_map(|r| r.prefix_list_id()),
            )
            .chain(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()));
        out.extend(sources.map(|s| format!("{protocol}{ports} {s}")));
    }
    out
}
