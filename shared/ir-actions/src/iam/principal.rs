//! Resolving the principal a containment request targets, and refusing protected ones.
//!
//! The protection check needs the principal's ARN, path and tags. `GetRole` and `GetUser` return
//! all three (tags included), so one read per principal is enough and it happens before any
//! other call on the principal's policies or keys.

use ir_core::action::{Principal, PrincipalFacts, PrincipalKind, protection_reason};
use ir_core::arn::Arn;
use ir_core::config::Protection;

use crate::ActionError;
use ir_aws::Clients;

/// A principal as IAM describes it: what the protection check and the notes need.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub principal: Principal,
    pub arn: String,
    pub path: String,
    pub tags: Vec<(String, String)>,
    /// A role's maximum session duration in seconds (how long a stolen session can live).
    pub max_session_secs: Option<i32>,
}

impl Target {
    /// `role/<name>` or `user/<name>`: the target of the report's changes.
    pub fn label(&self) -> String {
        label(&self.principal)
    }

    /// Refuses a protected principal (configured, the suite's own, AWS-managed).
    pub fn ensure_unprotected(&self, protection: &Protection) -> Result<(), ActionError> {
        let facts = PrincipalFacts {
            name: &self.principal.name,
            arn: &self.arn,
            path: &self.path,
        };
        match protection_reason(&facts, protection) {
            Some(reason) => {
                tracing::warn!(principal = %self.arn, %reason, "protected principal: refused");
                Err(ActionError::Protected(format!(
                    "{reason}; nothing was changed"
                )))
            }
            None => Ok(()),
        }
    }
}

/// `role/<name>` or `user/<name>`.
pub(crate) fn label(p: &Principal) -> String {
    match p.kind {
        PrincipalKind::Role => format!("role/{}", p.name),
        PrincipalKind::User => format!("user/{}", p.name),
    }
}

fn tag_pairs(tags: &[aws_sdk_iam::types::Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

/// `GetRole`: the role, or `NotFound`.
pub(crate) async fn get_role(clients: &Clients, name: &str) -> Result<Target, ActionError> {
    let out = clients
        .iam()
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| ActionError::sdk("GetRole", e).not_found_as(|| format!("role {name}")))?;
    let role = out
        .role()
        .ok_or_else(|| ActionError::NotFound(format!("role {name}: GetRole returned no role")))?;
    Ok(Target {
        principal: Principal {
            kind: PrincipalKind::Role,
            name: role.role_name().to_owned(),
        },
        arn: role.arn().to_owned(),
        path: role.path().to_owned(),
        tags: tag_pairs(role.tags()),
        max_session_secs: role.max_session_duration(),
    })
}

/// `GetUser`: the user, or `NotFound` (a deleted user is `NoSuchEntity`).
pub(crate) async fn get_user(clients: &Clients, name: &str) -> Result<Target, ActionError> {
    let out = clients
        .iam()
        .get_user()
        .user_name(name)
        .send()
        .await
        .map_err(|e| ActionError::sdk("GetUser", e).not_found_as(|| format!("user {name}")))?;
    let user = out
        .user()
        .ok_or_else(|| ActionError::NotFound(format!("user {name}: GetUser returned no user")))?;
    Ok(Target {
        principal: Principal {
            kind: PrincipalKind::User,
            name: user.user_name().to_owned(),
        },
        arn: user.arn().to_owned(),
        path: user.path().to_owned(),
        tags: tag_pairs(user.tags()),
        max_session_secs: None,
    })
}

/// The instance profile name of an instance profile ARN
/// (`arn:<partition>:iam::<account>:instance-profile/<path>/<name>`): the last path segment,
/// which is what `GetInstanceProfile` takes.
pub(crate) fn instance_profile_name(arn: &str) -> Option<&str> {
    Some(Arn::parse(arn)?.instance_profile()?.name)
}

/// The role of an instance profile, by the profile's ARN: `GetInstanceProfile`, then `GetRole`
/// on its role (the role list of an instance profile does not carry tags, and the protection
/// check needs them).
pub(crate) async fn instance_profile_role(
    clients: &Clients,
    instance_id: &str,
    profile_arn: &str,
) -> Result<Target, ActionError> {
    let name = instance_profile_name(profile_arn).ok_or_else(|| {
        ActionError::InvalidInput(format!(
            "instance {instance_id}: `{profile_arn}` is not an instance profile ARN"
        ))
    })?;
    let out = clients
        .iam()
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(|e| {
            ActionError::sdk("GetInstanceProfile", e).not_found_as(|| {
                format!("instance profile {profile_arn} of instance {instance_id}")
            })
        })?;
    let roles: Vec<&str> = out
        .instance_profile()
        .map(|p| p.roles().iter().map(|r| r.role_name()).collect())
        .unwrap_or_default();
    match roles.as_slice() {
        [role] => get_role(clients, role).await,
        [] => Err(ActionError::InvalidInput(format!(
            "instance profile {profile_arn} of instance {instance_id} has no role: the instance \
             has no role credentials to revoke (if a role was removed from the profile, revoke \
             that role by name)"
        ))),
        // AWS allows one role per instance profile; more means the request cannot be mapped
        // onto one inline-policy record.
        many => Err(ActionError::InvalidInput(format!(
            "instance profile {profile_arn} has {} roles ({}); revoke each role by name",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// The managed policies attached to a role or a user, every page (`ListAttachedRolePolicies` or
/// `ListAttachedUserPolicies`).
pub(crate) async fn attached_policies(
    iam: &aws_sdk_iam::Client,
    kind: PrincipalKind,
    name: &str,
) -> Result<Vec<aws_sdk_iam::types::AttachedPolicy>, ActionError> {
    let mut attached = Vec::new();
    match kind {
        PrincipalKind::Role => {
            let mut pages = iam
                .list_attached_role_policies()
                .role_name(name)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| ActionError::sdk("iam:ListAttachedRolePolicies", e))?;
                attached.extend_from_slice(page.attached_policies());
            }
        }
        PrincipalKind::User => {
            let mut pages = iam
                .list_attached_user_policies()
                .user_name(name)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| ActionError::sdk("iam:ListAttachedUserPolicies", e))?;
                attached.extend_from_slice(page.attached_policies());
            }
        }
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_come_from_the_last_path_segment() {
        assert_eq!(
            instance_profile_name("arn:aws:iam::123456789012:instance-profile/web"),
            Some("web")
        );
        assert_eq!(
            instance_profile_name("arn:aws-cn:iam::123456789012:instance-profile/a/b/web"),
            Some("web")
        );
        assert_eq!(
            instance_profile_name("arn:aws:iam::123456789012:role/web"),
            None
        );
        assert_eq!(
            instance_profile_name("arn:aws:iam::123456789012:instance-profile/"),
            None
        );
        assert_eq!(instance_profile_name("web"), None);
    }
}
