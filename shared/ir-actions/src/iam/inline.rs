//! revoke-sessions: one inline deny policy per incident on a role or user, and release of
//! exactly that policy. deny-principal attaches the deployment's managed deny-all instead
//! ([`super::managed`]); its release here also deletes the inline `ir-deny-all-<incident>` that
//! deny-principal wrote before it attached a managed policy.
//!
//! Critical path (role target; a user target uses the `*User*` operations, an instance target
//! adds one `GetInstanceProfile` first):
//! - dry-run, and any run that finds the policy in place: `GetRole`, `GetRolePolicy`;
//! - enforce, first run: `GetRole`, `GetRolePolicy`, `PutRolePolicy`, `GetRolePolicy` (read back).

use std::time::{Duration, SystemTime};

use ir_core::action::{
    ActionReport, ContainmentRecord, ContainmentRequest, InlinePolicyRecord, PolicyPurpose,
    Principal, PrincipalKind, policy_document, policy_name,
};
use ir_core::config::{Mode, Protection};
use ir_core::correlate::is_incident_id;
use ir_core::event::Resource;
use serde_json::Value;

use super::document::{containment_in, decode};
use super::managed::{
    DENY_POLICY_NAME_SUFFIX, attach_deny, is_suite_deny_policy_arn, release_deny,
};
use super::principal::{self, Target, label};
use super::{DENY_PRINCIPAL_ACTION, REVOKE_SESSIONS_ACTION};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

const PROPAGATION_NOTE: &str = "IAM is eventually consistent: the policy takes effect within \
     seconds to minutes, so requests may still succeed for a short while after this report";

/// Revokes every session of a role or user issued before now (see [`super::revoke_sessions`]).
pub(super) async fn revoke_sessions(
    clients: &Clients,
    protection: &Protection,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        REVOKE_SESSIONS_ACTION,
        req.mode,
        clients.calls().count(),
    );
    ensure_incident_id(&req.incident_id)?;
    let (target, instance) = match &req.resource {
        Resource::IamRole(r) => (principal::get_role(clients, &r.role_name).await?, None),
        Resource::IamUser(u) => (principal::get_user(clients, &u.user_name).await?, None),
        Resource::Ec2Instance(i) => {
            let arn = i.instance_profile_arn.as_deref().filter(|a| !a.is_empty()).ok_or_else(|| {
                ActionError::InvalidInput(format!(
                    "instance {} has no instance profile in the finding: it has no role sessions \
                     to revoke",
                    i.instance_id
                ))
            })?;
            let role = principal::instance_profile_role(clients, &i.instance_id, arn).await?;
            (role, Some((i.instance_id.clone(), arn.to_owned())))
        }
        other => {
            return Err(ActionError::InvalidInput(format!(
                "revoke-sessions acts on an iam-role, an iam-user or an ec2-instance with an \
                 instance profile, not on {} {}",
                other.kind(),
                other.id()
            )));
        }
    };
    target.ensure_unprotected(protection)?;
    let revoked_before = put_deny(
        clients,
        &mut report,
        &target,
        PolicyPurpose::RevokeSessions,
        &req.incident_id,
    )
    .await?;

    let who = target.label();
    report.note(format!(
        "denies every action to every session of {who} issued before {revoked_before} \
         (aws:TokenIssueTime); sessions issued after that instant keep working"
    ));
    match target.principal.kind {
        PrincipalKind::Role => {
            report.note(format!(
                "affects EVERY session of {who}, not only the suspicious one: every instance, \
                 container, function, service or person using this role loses the sessions it \
                 holds and must obtain new ones"
            ));
            if let Some(secs) = target.max_session_secs {
                report.note(format!(
                    "AssumeRole sessions of {who} last at most {secs} s (MaxSessionDuration; \
                     1 h when chained): keep the policy at least that long after \
                     {revoked_before} before releasing, or revoked sessions become valid again"
                ));
            }
            report.note(format!(
                "whoever can still assume {who} (with the source credentials, or as a principal \
                 its trust policy allows) gets new sessions this policy does not deny: contain \
                 that source too, or deny the role entirely with deny-principal"
            ));
        }
        PrincipalKind::User => {
            report.note(format!(
                "for {who} this ends temporary credentials minted earlier with GetSessionToken \
                 or GetFederationToken (which can last up to 36 h); requests signed with the \
                 user's long-term access keys carry no aws:TokenIssueTime and are NOT denied: \
                 disable-access-keys is the companion action, and sessions of roles the user \
                 assumed need revoke-sessions on those roles"
            ));
        }
    }
    if let Some((instance_id, profile_arn)) = instance {
        report.note(format!(
            "instance {instance_id} gets credentials of {who} from instance profile \
             {profile_arn}: an attacker still on the host can fetch FRESH credentials from the \
             instance metadata service (IMDS) after this revocation; isolate the instance and \
             swap or remove its instance profile (isolate-instance) as the companion step"
        ));
    }
    report.note(PROPAGATION_NOTE);
    dry_run_note(&mut report, &target);
    Ok(report.finish(clients.calls()))
}

/// Denies everything to a role or user (see [`super::deny_principal`]).
pub(super) async fn deny_principal(
    clients: &Clients,
    protection: &Protection,
    deny_policy_arn: &str,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        DENY_PRINCIPAL_ACTION,
        req.mode,
        clients.calls().count(),
    );
    ensure_incident_id(&req.incident_id)?;
    if !is_suite_deny_policy_arn(deny_policy_arn) {
        return Err(ActionError::Configuration(format!(
            "`{deny_policy_arn}` is not the suite's managed deny policy (an IAM policy ARN under \
             /ir-suite/ whose name ends with {DENY_POLICY_NAME_SUFFIX})"
        )));
    }
    let target = match &req.resource {
        Resource::IamRole(r) => principal::get_role(clients, &r.role_name).await?,
        Resource::IamUser(u) => principal::get_user(clients, &u.user_name).await?,
        other => {
            return Err(ActionError::InvalidInput(format!(
                "deny-principal acts on an iam-role or an iam-user, not on {} {}",
                other.kind(),
                other.id()
            )));
        }
    };
    target.ensure_unprotected(protection)?;
    attach_deny(
        clients,
        &mut report,
        &target,
        deny_policy_arn,
        &req.incident_id,
    )
    .await?;

    let who = target.label();
    report.note(format!(
        "denies every action to {who}, whatever its other policies allow (an explicit deny \
         wins), for every credential of it: current and future sessions{}",
        match target.principal.kind {
            PrincipalKind::Role => "",
            PrincipalKind::User => {
                ", its access keys and its console sessions (sign-in itself still succeeds; \
                 every action after it is denied)"
            }
        }
    ));
    if target.principal.kind == PrincipalKind::Role {
        report.note(format!(
            "affects EVERY workload and person using {who} (other instances, functions or \
             services sharing the role too): expect an outage of whatever relies on it"
        ));
    }
    report.note(PROPAGATION_NOTE);
    dry_run_note(&mut report, &target);
    Ok(report.finish(clients.calls()))
}

fn ensure_incident_id(incident_id: &str) -> Result<(), ActionError> {
    if is_incident_id(incident_id) {
        Ok(())
    } else {
        Err(ActionError::InvalidInput(format!(
            "`{incident_id}` is not an incident id"
        )))
    }
}

fn dry_run_note(report: &mut ReportBuilder, target: &Target) {
    if report.mode() == Mode::DryRun {
        report.note(format!(
            "dry-run: read {} and its policy, changed nothing; IAM has no DryRun flag, so the \
             permission to change the policy was not verified",
            target.label()
        ));
    }
}

/// Puts the incident's deny policy on the principal unless a policy of that name already holds
/// the deny. Returns the revocation instant in force (`""` for deny-all).
///
/// Idempotence: the policy name is per incident and purpose, so a second run finds it and does
/// not rewrite it; for revoke-sessions this keeps the first run's instant (rewriting it would
/// move the cut-off and also revoke the sessions legitimately issued since). A policy of that
/// name that no longer holds the deny (edited by someone with IAM rights) is rewritten.
async fn put_deny(
    clients: &Clients,
    report: &mut ReportBuilder,
    target: &Target,
    purpose: PolicyPurpose,
    incident_id: &str,
) -> Result<String, ActionError> {
    let name = policy_name(purpose, incident_id);
    let who = target.label();
    let attribute = format!("inline-policy:{name}");
    let existing = get_inline_policy(clients, &target.principal, &name).await?;
    let record = ContainmentRecord::InlinePolicy(InlinePolicyRecord {
        principal: target.principal.clone(),
        policy_name: name.clone(),
        purpose,
    });

    if let Some(doc) = &existing {
        if let Some(instant) = containment_in(purpose, doc) {
            report.change(&who, &attribute, doc.clone(), doc.clone());
            report.note(format!(
                "{who} already carries inline policy {name}: left as it is"
            ));
            report.report_mut().record = Some(record);
            return Ok(instant);
        }
        report.note(format!(
            "{who} carries an inline policy named {name} that no longer holds the deny (edited \
             since): it is rewritten"
        ));
    }

    // Revocation instant: now, rounded UP to the next second. The document carries whole
    // seconds, and `DateLessThan` a truncated instant would spare a session issued in the
    // fraction of a second before it. The clock is the function's own (NTP-synchronized on
    // Lambda); IAM compares it with the time STS stamped on each session.
    let now = SystemTime::now() + Duration::from_secs(1);
    let doc = policy_document(purpose, now.into());
    let instant = containment_in(purpose, &doc).unwrap_or_default();
    let before = existing.unwrap_or(Value::Null);

    if report.mode() == Mode::Enforce {
        put_inline_policy(clients, &target.principal, &name, &doc).await?;
        report.change(&who, &attribute, before, doc.clone());
        report.report_mut().record = Some(record);
        // IAM is eventually consistent: a read-back that misses a write it just acknowledged is
        // rare but possible; it surfaces as VerificationFailed with the change listed as
        // applied, and a re-run of the step is idempotent.
        let read_back = get_inline_policy(clients, &target.principal, &name)
            .await
            .map_err(|e| e.after(&report.snapshot(clients.calls())))?;
        if read_back
            .as_ref()
            .and_then(|d| containment_in(purpose, d))
            .is_none()
        {
            return Err(ActionError::Verification(format!(
                "{who}: inline policy {name} read back as {} after PutPolicy",
                read_back.map_or_else(|| "absent".to_owned(), |d| d.to_string())
            ))
            .after(&report.snapshot(clients.calls())));
        }
    } else {
        report.change(&who, &attribute, before, doc);
    }
    Ok(instant)
}

/// The inline policy `name` of a principal, or `None` when it (or the principal) is absent.
async fn get_inline_policy(
    clients: &Clients,
    principal: &Principal,
    name: &str,
) -> Result<Option<Value>, ActionError> {
    let raw = match principal.kind {
        PrincipalKind::Role => {
            match clients
                .iam()
                .get_role_policy()
                .role_name(&principal.name)
                .policy_name(name)
                .send()
                .await
            {
                Ok(out) => out.policy_document,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(ActionError::sdk("GetRolePolicy", e)),
            }
        }
        PrincipalKind::User => {
            match clients
                .iam()
                .get_user_policy()
                .user_name(&principal.name)
                .policy_name(name)
                .send()
                .await
            {
                Ok(out) => out.policy_document,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(ActionError::sdk("GetUserPolicy", e)),
            }
        }
    };
    decode(&raw).map(Some).map_err(|why| {
        ActionError::Verification(format!(
            "{}: inline policy {name} cannot be read: {why}",
            label(principal)
        ))
    })
}

async fn put_inline_policy(
    clients: &Clients,
    principal: &Principal,
    name: &str,
    doc: &Value,
) -> Result<(), ActionError> {
    // Compact JSON: inline policies count against a per-principal size quota (10,240 characters
    // for all of a role's inline policies, 2,048 for a user's); a `LimitExceeded` here means the
    // principal's existing inline policies leave no room.
    let text = doc.to_string();
    match principal.kind {
        PrincipalKind::Role => clients
            .iam()
            .put_role_policy()
            .role_name(&principal.name)
            .policy_name(name)
            .policy_document(text)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("PutRolePolicy", e).not_found_as(|| label(principal))),
        PrincipalKind::User => clients
            .iam()
            .put_user_policy()
            .user_name(&principal.name)
            .policy_name(name)
            .policy_document(text)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("PutUserPolicy", e).not_found_as(|| label(principal))),
    }
}

/// Whether `name` is a policy name the suite gives for `purpose` (`ir-…-<incident id>`).
fn is_suite_policy_name(purpose: PolicyPurpose, name: &str) -> bool {
    name.strip_prefix(&policy_name(purpose, ""))
        .is_some_and(is_incident_id)
}

/// Deletes exactly the recorded policy (see [`super::restore_inline_policy`]).
///
/// Critical path: `GetRolePolicy`, then in enforce `DeleteRolePolicy` and `GetRolePolicy` (read
/// back) when it is there; the `*User*` operations for a user.
pub(super) async fn restore_inline_policy(
    clients: &Clients,
    record: &InlinePolicyRecord,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let name = &record.policy_name;
    let who = label(&record.principal);
    // Release deletes only what a containment action wrote: a record naming any other policy
    // (a forged or corrupted release request) is refused before any call.
    if !is_suite_policy_name(record.purpose, name) {
        return Err(ActionError::InvalidInput(format!(
            "{who}: `{name}` is not a policy the suite writes for {:?}; refusing to delete it",
            record.purpose
        )));
    }
    if record.purpose == PolicyPurpose::DenyAll {
        // The inline deny of a containment made before deny-principal attached a managed
        // policy: deleted when present, silently skipped otherwise.
        if get_inline_policy(clients, &record.principal, name)
            .await?
            .is_some()
        {
            restore_inline(clients, record, report).await?;
        }
        let incident_id = name
            .strip_prefix(&policy_name(PolicyPurpose::DenyAll, ""))
            .unwrap_or_default();
        return release_deny(clients, &record.principal, incident_id, report).await;
    }
    restore_inline(clients, record, report).await
}

/// Deletes the recorded inline policy (its name checked by the caller).
async fn restore_inline(
    clients: &Clients,
    record: &InlinePolicyRecord,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let name = &record.policy_name;
    let who = label(&record.principal);
    let attribute = format!("inline-policy:{name}");
    let Some(doc) = get_inline_policy(clients, &record.principal, name).await? else {
        report.change(&who, &attribute, Value::Null, Value::Null);
        report.note(format!(
            "{who}: inline policy {name} is already gone (or the principal was deleted)"
        ));
        return Ok(());
    };
    if record.purpose == PolicyPurpose::RevokeSessions {
        let instant = containment_in(record.purpose, &doc).unwrap_or_default();
        report.note(format!(
            "{who}: removing {name} makes the sessions issued before {instant} that have not \
             expired valid again; if credentials were stolen, keep it until they expire"
        ));
    }
    if report.mode() == Mode::DryRun {
        report.change(&who, &attribute, doc, Value::Null);
        return Ok(());
    }
    delete_inline_policy(clients, &record.principal, name).await?;
    report.change(&who, &attribute, doc, Value::Null);
    if get_inline_policy(clients, &record.principal, name)
        .await?
        .is_some()
    {
        return Err(ActionError::Verification(format!(
            "{who}: inline policy {name} still present after it was deleted"
        )));
    }
    Ok(())
}

async fn delete_inline_policy(
    clients: &Clients,
    principal: &Principal,
    name: &str,
) -> Result<(), ActionError> {
    let what = || format!("inline policy {name} of {}", label(principal));
    match principal.kind {
        PrincipalKind::Role => clients
            .iam()
            .delete_role_policy()
            .role_name(&principal.name)
            .policy_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("DeleteRolePolicy", e).not_found_as(what)),
        PrincipalKind::User => clients
            .iam()
            .delete_user_policy()
            .user_name(&principal.name)
            .policy_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| ActionError::sdk("DeleteUserPolicy", e).not_found_as(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_suite_policy_names_are_released() {
        let inc = "inc-0123456789abcdef0123";
        assert!(is_suite_policy_name(
            PolicyPurpose::DenyAll,
            &policy_name(PolicyPurpose::DenyAll, inc)
        ));
        assert!(is_suite_policy_name(
            PolicyPurpose::RevokeSessions,
            &policy_name(PolicyPurpose::RevokeSessions, inc)
        ));
        assert!(!is_suite_policy_name(
            PolicyPurpose::DenyAll,
            &policy_name(PolicyPurpose::RevokeSessions, inc)
        ));
        assert!(!is_suite_policy_name(
            PolicyPurpose::DenyAll,
            "ir-deny-all-"
        ));
        assert!(!is_suite_policy_name(PolicyPurpose::DenyAll, "AdminAccess"));
        assert!(!is_suite_policy_name(
            PolicyPurpose::DenyAll,
            "ir-deny-all-inc-0123456789abcdef0123x"
        ));
    }
}
