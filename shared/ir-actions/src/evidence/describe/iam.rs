//! IAM roles and users: the principal, its inline and attached policies, groups and access keys.

use aws_sdk_s3::error::ProvideErrorMetadata;
use ir_core::action::PrincipalKind;
use serde_json::{Map, Value, json};

use super::super::join::{BoxFuture, join_all};
use super::{Description, absence, not_found, policy_json, s, sorted, time};
use crate::ActionError;
use ir_aws::Clients;

fn iam_tags(tags: &[aws_sdk_iam::types::Tag]) -> Value {
    Value::Object(
        tags.iter()
            .map(|t| (t.key().to_owned(), Value::String(t.value().to_owned())))
            .collect(),
    )
}

fn is_no_such_entity(code: &str) -> bool {
    code == "NoSuchEntity"
}

fn boundary(b: Option<&aws_sdk_iam::types::AttachedPermissionsBoundary>) -> Value {
    b.map_or(Value::Null, |b| {
        json!({"type": s(b.permissions_boundary_type().map(|t| t.as_str())), "arn": s(b.permissions_boundary_arn())})
    })
}

// The IAM listings below follow `Marker` with the SDK's paginators. IAM sets `Marker` only
// with `IsTruncated`, so a page that is not truncated is the last, whatever marker it carries.

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
    let mut names = Vec::new();
    match holder {
        Holder::Role(name) => {
            let mut pages = iam
                .list_role_policies()
                .role_name(name)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| ActionError::sdk("iam:ListRolePolicies", e))?;
                names.extend_from_slice(page.policy_names());
                if !page.is_truncated() {
                    break;
                }
            }
        }
        Holder::User(name) => {
            let mut pages = iam
                .list_user_policies()
                .user_name(name)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| ActionError::sdk("iam:ListUserPolicies", e))?;
                names.extend_from_slice(page.policy_names());
                if !page.is_truncated() {
                    break;
                }
            }
        }
    }
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
    let (kind, name) = match holder {
        Holder::Role(name) => (PrincipalKind::Role, name),
        Holder::User(name) => (PrincipalKind::User, name),
    };
    let attached = crate::iam::principal::attached_policies(iam, kind, name).await?;
    let attached = attached
        .iter()
        .map(|p| json!({"policyName": s(p.policy_name()), "policyArn": s(p.policy_arn())}))
        .collect();
    Ok(Value::Array(sorted(attached)))
}

/// GetRole (with tags), its inline policies with their documents, and its attached managed
/// policies; the listings run concurrently.
pub(super) async fn iam_role(clients: &Clients, name: &str) -> Result<Description, ActionError> {
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
pub(super) async fn iam_user(clients: &Clients, name: &str) -> Result<Description, ActionError> {
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
        let mut groups = Vec::new();
        let mut pages = iam
            .list_groups_for_user()
            .user_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ActionError::sdk("iam:ListGroupsForUser", e))?;
            groups.extend_from_slice(page.groups());
            if !page.is_truncated() {
                break;
            }
        }
        let groups = groups
            .iter()
            .map(|g| json!({"groupName": g.group_name(), "arn": g.arn()}))
            .collect();
        Ok(Value::Array(sorted(groups)))
    };
    let keys = async {
        let mut keys = Vec::new();
        let mut pages = iam
            .list_access_keys()
            .user_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ActionError::sdk("iam:ListAccessKeys", e))?;
            keys.extend_from_slice(page.access_key_metadata());
            if !page.is_truncated() {
                break;
            }
        }
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
