//! IAM containment: revoke-sessions, deny-principal, disable-access-keys, and restoring them.
//!
//! Every action first reads its principal (`GetRole` / `GetUser`: ARN, path and tags) and
//! refuses a protected one (configured principals, the suite's own roles, AWS-managed roles)
//! with [`ActionError::Protected`] before any other call. IAM has no `DryRun` flag: a dry-run
//! reads and plans, and mutates nothing.
//!
//! - revoke-sessions puts the inline policy `ir-revoke-sessions-<incident>`: `Deny *` on `*` for
//!   sessions whose `aws:TokenIssueTime` is before the revocation instant (the AWS "revoke
//!   active sessions" pattern; sessions issued later keep working);
//! - deny-principal attaches the deployment's managed deny-all policy (`Deny *` on `*`, created
//!   by the template, its ARN in `IR_DENY_POLICY_ARN`) and tags the principal
//!   `ir:deny-all:<incident>` (see [`managed`]);
//! - disable-access-keys sets the user's access keys (the finding's, or all) Inactive, never
//!   deletes them, and records them on the user (see [`deactivated_keys_tag`]).
//!
//! The inline policy names and the deny tags are per incident, so a re-run finds its own (and
//! leaves it as it is), and release removes exactly that and no other.

mod document;
mod inline;
mod keys;
mod managed;
pub(crate) mod principal;

use ir_core::action::{AccessKeyRecord, ActionReport, ContainmentRequest, InlinePolicyRecord};
use ir_core::config::Protection;

use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

pub use keys::{KEYS_TAG_PREFIX, deactivated_keys_tag};
pub use managed::{
    DENY_HOLD_TAG_PREFIX, DENY_POLICY_NAME_SUFFIX, deny_hold_tag, is_suite_deny_policy_arn,
};

/// The action name revoke-sessions reports under (its function's name).
pub const REVOKE_SESSIONS_ACTION: &str = "ir-revoke-sessions";
/// The action name deny-principal reports under (its function's name).
pub const DENY_PRINCIPAL_ACTION: &str = "ir-deny-principal";
/// The action name disable-access-keys reports under (its function's name).
pub const DISABLE_ACCESS_KEYS_ACTION: &str = "ir-disable-access-keys";

/// Revokes every session issued before now of the request's role, user, or instance's role.
///
/// Targets: `iam-role` (the role), `iam-user` (the user; also ends credentials minted earlier
/// with `GetSessionToken`), `ec2-instance` (the role of its instance profile, by
/// `GetInstanceProfile` on the name in `instanceProfileArn`; no profile is `InvalidInput`).
/// Puts the inline policy `policy_name(RevokeSessions, incident)` with
/// `policy_document(RevokeSessions, now)`; if a policy of that name already holds the deny, the
/// run is `already-in-place` and the policy, with its first instant, is left as it is.
///
/// Errors: `InvalidInput` (other resource kinds, an instance without profile), `NotFound`
/// (unknown role, user or profile), `Protected` (nothing changed), AWS failures by their code.
pub async fn revoke_sessions(
    clients: &Clients,
    protection: &Protection,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    inline::revoke_sessions(clients, protection, req).await
}

/// Denies every action to the request's role or user: attaches `deny_policy_arn` (the
/// deployment's managed `Deny *` on `*`, [`is_suite_deny_policy_arn`]) after tagging the
/// principal [`deny_hold_tag`]`(incident)`. The record is the `InlinePolicyRecord` with
/// `policy_name(DenyAll, incident)` release has always taken. Idempotent like
/// [`revoke_sessions`].
///
/// Errors: `Configuration` (`deny_policy_arn` is not the suite's deny policy), `InvalidInput` (a
/// resource that is not a role or user), `NotFound`, `Protected`.
pub async fn deny_principal(
    clients: &Clients,
    protection: &Protection,
    deny_policy_arn: &str,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    inline::deny_principal(clients, protection, deny_policy_arn, req).await
}

/// Sets Inactive the access key the finding names (`iam-user` with `accessKeyId`), or every key
/// of the user when it names none. Keys are never deleted (evidence). The record lists the keys
/// this incident changed from Active to Inactive, also on a re-run (they are written down on the
/// user before any change: see [`deactivated_keys_tag`]).
///
/// Errors: `InvalidInput` (a role: its session keys cannot be deactivated, revoke-sessions is
/// the action; an `ASIA…` temporary key; other kinds), `NotFound` (unknown user, a key that is
/// not the user's), `Protected`; a failure part-way is `Incomplete`, naming the keys already
/// deactivated.
pub async fn disable_access_keys(
    clients: &Clients,
    protection: &Protection,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    keys::disable_access_keys(clients, protection, req).await
}

/// Release of revoke-sessions / deny-principal: deletes exactly the recorded inline policy (a
/// policy already gone is `Unchanged`), never any other; for deny-principal, removes the
/// incident's deny tag and detaches the suite's deny policy unless another incident's tag holds
/// it. A record whose name is not one the suite writes is refused with `InvalidInput`. Plans
/// only when `report` is in dry-run.
pub async fn restore_inline_policy(
    clients: &Clients,
    record: &InlinePolicyRecord,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    inline::restore_inline_policy(clients, record, report).await
}

/// Release of disable-access-keys: re-activates exactly the recorded keys (a key deleted since,
/// or a user deleted since, is a note, not a failure of the others) and removes the incident's
/// bookkeeping tag from the user. Plans only when `report` is in dry-run.
pub async fn restore_access_keys(
    clients: &Clients,
    record: &AccessKeyRecord,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    keys::restore_access_keys(clients, record, report).await
}
