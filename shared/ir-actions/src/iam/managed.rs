//! deny-principal: the deployment's managed deny-all policy (`ContainmentDenyAllPolicy` in
//! `template.yaml`, `Deny *` on `*`) attached to a role or user, and release of that attachment.
//!
//! The policy is one per deployment, so an attachment cannot say which incident made it: each
//! incident that denies a principal tags it `ir:deny-all:<incident>` before attaching, and the
//! release of one incident removes its own tag and detaches the policy only when no other
//! incident's tag is left (releasing one incident never lifts another's containment).
//!
//! Critical path (role target; a user target uses the `*User*` operations):
//! - dry-run, and a run that finds the policy attached and the incident's tag in place:
//!   `GetRole`, `ListAttachedRolePolicies`;
//! - enforce, first run: `GetRole`, `ListAttachedRolePolicies`, `TagRole`, `AttachRolePolicy`,
//!   `ListAttachedRolePolicies` (read back).

use aws_sdk_iam::types::Tag;
use ir_core::action::{
    ContainmentRecord, InlinePolicyRecord, PolicyPurpose, Principal, PrincipalKind, policy_name,
};
use ir_core::arn::Arn;
use ir_core::config::Mode;
use serde_json::{Value, json};

use super::principal::{self, Target, label};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

/// The tag an incident's deny-all puts on the principal: `ir:deny-all:<incident>`.
pub const DENY_HOLD_TAG_PREFIX: &str = "ir:deny-all:";
/// The managed deny policy's name ends with this (`<stack>-containment-deny-all`), and it lives
/// under the suite's path `/ir-suite/`: release detaches only such a policy.
pub const DENY_POLICY_NAME_SUFFIX: &str = "containment-deny-all";
const SUITE_POLICY_PATH: &str = "policy/ir-suite/";
const HOLD_VALUE: &str = "deny-all";

/// The tag key recording that `incident_id` denied the principal.
pub fn deny_hold_tag(incident_id: &str) -> String {
    format!("{DENY_HOLD_TAG_PREFIX}{incident_id}")
}

/// Whether `arn` is a managed policy the suite deploys as its deny-all
/// (`arn:<partition>:iam::<account>:policy/ir-suite/<…>containment-deny-all`).
pub fn is_suite_deny_policy_arn(arn: &str) -> bool {
    let Some(parsed) = Arn::parse(arn) else {
        return false;
    };
    parsed.service == "iam"
        && parsed
            .resource
            .strip_prefix(SUITE_POLICY_PATH)
            .is_some_and(|name| !name.contains('/') && name.ends_with(DENY_POLICY_NAME_SUFFIX))
}

/// Attaches the deny-all policy to `target` for `incident_id` (see [`super::deny_principal`]).
pub(super) async fn attach_deny(
    clients: &Clients,
    report: &mut ReportBuilder,
    target: &Target,
    policy_arn: &str,
    incident_id: &str,
) -> Result<(), ActionError> {
    let who = target.label();
    let hold = deny_hold_tag(incident_id);
    let attribute = format!("attached-policy:{}", policy_short_name(policy_arn));
    let held = target.tags.iter().any(|(k, _)| *k == hold);
    let attached = list_attached(clients, &target.principal).await?;
    let is_attached = attached.iter().any(|a| a == policy_arn);
    let record = ContainmentRecord::InlinePolicy(InlinePolicyRecord {
        principal: target.principal.clone(),
        policy_name: policy_name(PolicyPurpose::DenyAll, incident_id),
        purpose: PolicyPurpose::DenyAll,
    });
    let before = if is_attached {
        json!(policy_arn)
    } else {
        Value::Null
    };
    let hold_attribute = format!("tag:{hold}");
    let hold_before = if held { json!(HOLD_VALUE) } else { Value::Null };

    if is_attached && held {
        report.change(&who, &attribute, before.clone(), before);
        report.change(&who, &hold_attribute, hold_before.clone(), hold_before);
        report.note(format!(
            "{who} already carries {policy_arn} for this incident: left as it is"
        ));
        report.report_mut().record = Some(record);
        return Ok(());
    }
    if report.mode() == Mode::DryRun {
        report.change(&who, &hold_attribute, hold_before, json!(HOLD_VALUE));
        report.change(&who, &attribute, before, json!(policy_arn));
        return Ok(());
    }
    // The incident's hold first: a failure between the two leaves a tag and no attachment, which
    // a re-run completes and a release cleans up; never an attachment no incident accounts for.
    if !held {
        tag_principal(clients, &target.principal, &hold).await?;
        report.change(&who, &hold_attribute, Value::Null, json!(HOLD_VALUE));
        report.report_mut().record = Some(record.clone());
    }
    if !is_attached {
        attach(clients, &target.principal, policy_arn)
            .await
            .map_err(|e| e.after(&report.snapshot(clients.calls())))?;
    }
    report.change(&who, &attribute, before, json!(policy_arn));
    report.report_mut().record = Some(record);
    // IAM is eventually consistent: a read-back that misses the attachment is rare but
    // possible; it surfaces as VerificationFailed with the change listed, and a re-run is
    // idempotent.
    let read_back = list_attached(clients, &target.principal)
        .await
        .map_err(|e| e.after(&report.snapshot(clients.calls())))?;
    if !read_back.iter().any(|a| a == policy_arn) {
        return Err(ActionError::Verification(format!(
            "{who}: {policy_arn} is not attached after AttachPolicy (attached: {read_back:?})"
        ))
        .after(&report.snapshot(clients.calls())));
    }
    Ok(())
}

/// Release of one incident's deny-all: removes the incident's tag, and detaches the suite's deny
/// policy when no other incident's tag is left on the principal. A principal this incident never
/// tagged keeps whatever is attached to it (the suite removes nothing it did not put there).
///
/// Critical path (role): `GetRole`, `ListAttachedRolePolicies`, then in enforce
/// `DetachRolePolicy` (when no other incident holds it), `UntagRole`, `ListAttachedRolePolicies`.
pub(super) async fn release_deny(
    clients: &Clients,
    principal: &Principal,
    incident_id: &str,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let who = label(principal);
    let target = match principal.kind {
        PrincipalKind::Role => principal::get_role(clients, &principal.name).await,
        PrincipalKind::User => principal::get_user(clients, &principal.name).await,
    };
    let target = match target {
        Ok(t) => t,
        Err(ActionError::NotFound(_)) => {
            report.note(format!("{who} no longer exists: nothing to detach"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let hold = deny_hold_tag(incident_id);
    let hold_attribute = format!("tag:{hold}");
    let held = target.tags.iter().any(|(k, _)| *k == hold);
    let others: Vec<&str> = target
        .tags
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(DENY_HOLD_TAG_PREFIX))
        .filter(|inc| *inc != incident_id)
        .collect();
    let suite_policies: Vec<String> = list_attached(clients, principal)
        .await?
        .into_iter()
        .filter(|a| is_suite_deny_policy_arn(a))
        .collect();
    if !held {
        for arn in &suite_policies {
            let attribute = format!("attached-policy:{}", policy_short_name(arn));
            report.change(&who, attribute, json!(arn), json!(arn));
        }
        report.note(format!(
            "{who} carries no deny-all of this incident (no tag {hold}): nothing detached"
        ));
        return Ok(());
    }
    let detach_now = others.is_empty();
    if !detach_now {
        report.note(format!(
            "{who} stays denied: incident(s) {} hold the same deny-all; only this incident's tag \
             is removed",
            others.join(", ")
        ));
    }
    let enforce = report.mode() == Mode::Enforce;
    for arn in &suite_policies {
        let attribute = format!("attached-policy:{}", policy_short_name(arn));
        if !detach_now {
            report.change(&who, attribute, json!(arn), json!(arn));
            continue;
        }
        if enforce {
            detach(clients, principal, arn).await?;
        }
        report.change(&who, attribute, json!(arn), Value::Null);
    }
    if enforce {
        untag_principal(clients, principal, &hold).await?;
    }
    report.change(&who, hold_attribute, json!(HOLD_VALUE), Value::Null);
    if enforce && detach_now {
        let left: Vec<String> = list_attached(clients, principal)
            .await?
            .into_iter()
            .filter(|a| is_suite_deny_policy_arn(a))
            .collect();
        if !left.is_empty() {
            return Err(ActionError::Verification(format!(
                "{who}: {left:?} still attached after it was detached"
            )));
        }
    }
    Ok(())
}

/// The policy's name: the last segment of its ARN.
fn policy_short_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The ARNs of the managed policies attached to a principal (every page).
async fn list_attached(
    clients: &Clients,
    principal: &Principal,
) -> Result<Vec<String>, ActionError> {
    let attached =
        super::principal::attached_policies(clients.iam(), principal.kind, &principal.name)
            .await
            .map_err(|e| e.not_found_as(|| label(principal)))?;
    Ok(attached
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect())
}

async fn attach(
    clients: &Clients,
    principal: &Principal,
    policy_arn: &str,
) -> Result<(), ActionError> {
    match principal.kind {
        PrincipalKind::Role => clients
            .iam()
            .attach_role_policy()
            .role_name(&principal.name)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("AttachRolePolicy", e).not_found_as(|| label(principal))),
        PrincipalKind::User => clients
            .iam()
            .attach_user_policy()
            .user_name(&principal.name)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("AttachUserPolicy", e).not_found_as(|| label(principal))),
    }
}

async fn detach(
    clients: &Clients,
    principal: &Principal,
    policy_arn: &str,
) -> Result<(), ActionError> {
    let what = || format!("{policy_arn} on {}", label(principal));
    match principal.kind {
        PrincipalKind::Role => clients
            .iam()
            .detach_role_policy()
            .role_name(&principal.name)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("DetachRolePolicy", e).not_found_as(what)),
        PrincipalKind::User => clients
            .iam()
            .detach_user_policy()
            .user_name(&principal.name)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("DetachUserPolicy", e).not_found_as(what)),
    }
}

fn hold_tag(key: &str) -> Result<Tag, ActionError> {
    Tag::builder()
        .key(key)
        .value(HOLD_VALUE)
        .build()
        .map_err(|e| ActionError::InvalidInput(format!("tag {key}: {e}")))
}

async fn tag_principal(
    clients: &Clients,
    principal: &Principal,
    key: &str,
) -> Result<(), ActionError> {
    let tag = hold_tag(key)?;
    match principal.kind {
        PrincipalKind::Role => clients
            .iam()
            .tag_role()
            .role_name(&principal.name)
            .tags(tag)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("TagRole", e).not_found_as(|| label(principal))),
        PrincipalKind::User => clients
            .iam()
            .tag_user()
            .user_name(&principal.name)
            .tags(tag)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("TagUser", e).not_found_as(|| label(principal))),
    }
}

async fn untag_principal(
    clients: &Clients,
    principal: &Principal,
    key: &str,
) -> Result<(), ActionError> {
    match principal.kind {
        PrincipalKind::Role => clients
            .iam()
            .untag_role()
            .role_name(&principal.name)
            .tag_keys(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("UntagRole", e).not_found_as(|| label(principal))),
        PrincipalKind::User => clients
            .iam()
            .untag_user()
            .user_name(&principal.name)
            .tag_keys(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("UntagUser", e).not_found_as(|| label(principal))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_suites_deny_policy_is_recognized() {
        assert!(is_suite_deny_policy_arn(
            "arn:aws:iam::123456789012:policy/ir-suite/prod-containment-deny-all"
        ));
        assert!(is_suite_deny_policy_arn(
            "arn:aws-us-gov:iam::123456789012:policy/ir-suite/containment-deny-all"
        ));
        for other in [
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws:iam::123456789012:policy/prod-containment-deny-all",
            "arn:aws:iam::123456789012:policy/ir-suite/x/prod-containment-deny-all",
            "arn:aws:iam::123456789012:policy/ir-suite/prod-containment-deny-all-not",
            "arn:aws:s3:::ir-suite/containment-deny-all",
            "containment-deny-all",
        ] {
            assert!(!is_suite_deny_policy_arn(other), "{other}");
        }
        assert_eq!(
            deny_hold_tag("inc-0123456789abcdef0123"),
            "ir:deny-all:inc-0123456789abcdef0123"
        );
    }
}
