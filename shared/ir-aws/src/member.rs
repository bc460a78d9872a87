//! Acting where the resource is: the clients one action run uses in the resource's account and
//! region (`ir_core::accounts` has the rules).
//!
//! The account and region come from the incident as ingest recorded it, never from a payload
//! (the guard reads them). The security account's own resources are acted on with the
//! function's own credentials (in the resource's region). Any other account's through the
//! member execution role, assumed for this run alone: `sts:AssumeRole` with the session named
//! after the incident and step, the action's session policy, the configured external id and the
//! shortest duration STS allows (15 minutes). Every failure is typed: the account not allowed
//! (`AccountNotAllowed`), the role missing or not trusting this function (`MemberAccessDenied`),
//! STS or the region not enabled (`RegionDisabled`), throttling (`Retryable`).

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ir_core::accounts::{self, Accounts, Allowance};
use ir_core::{ErrorName, Named};
use thiserror::Error;

use crate::{Clients, SdkFailure};

/// The shortest session STS issues: an action run is over long before.
const SESSION_SECONDS: i32 = 900;
/// How many parents up an OU chain is read before giving up (Organizations nests OUs five deep).
const MAX_OU_DEPTH: usize = 8;

/// Where one action acts: the resource's account and region, as the incident records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub account: String,
    pub region: String,
}

/// Why the clients for a place could not be had.
#[derive(Debug, Error)]
pub enum MemberError {
    /// The account is not allowed (`accounts` in the config), or the place is not an account
    /// and region at all.
    #[error("account {account}: containment refused: {why}")]
    NotAllowed { account: String, why: String },
    /// STS refused the member role.
    #[error(
        "cannot assume {role_arn} ({code}: {message}): the role is missing in account \
         {account}, or its trust does not let this function's role assume it; deploy or fix \
         member-account.yaml there"
    )]
    AccessDenied {
        account: String,
        role_arn: String,
        code: String,
        message: String,
    },
    /// STS (or the region) is not enabled.
    #[error("region {region} is not enabled ({code}: {message})")]
    RegionDisabled {
        region: String,
        code: String,
        message: String,
    },
    /// Any other failure of STS or Organizations, classified by its code.
    #[error(transparent)]
    Aws(SdkFailure),
}

impl Named for MemberError {
    fn error_name(&self) -> ErrorName {
        match self {
            MemberError::NotAllowed { .. } => ErrorName::AccountNotAllowed,
            MemberError::AccessDenied { .. } => ErrorName::MemberAccessDenied,
            MemberError::RegionDisabled { .. } => ErrorName::RegionDisabled,
            MemberError::Aws(f) => f.name,
        }
    }
}

/// What one action run acts with: the clients, where they act, and (acting through a member
/// role) that role's ARN, which the run treats as one of the suite's own roles.
#[derive(Debug, Clone)]
pub struct Session {
    pub clients: Clients,
    pub place: Place,
    pub partition: String,
    /// The member execution role assumed; `None` in the security account.
    pub member_role: Option<String>,
}

/// The one action run acting: who asks (its function name), for which incident and step.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub function: &'a str,
    pub incident_id: &'a str,
    pub step_id: &'a str,
}

/// What a function knows to act across accounts: the accounts allow-list, the security
/// account, and its own region and partition.
#[derive(Debug, Clone)]
pub struct MemberAccess {
    accounts: Accounts,
    security_account: String,
    home_region: String,
    partition: String,
}

/// The partition of a region (`aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`, else `aws`).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

impl MemberAccess {
    pub fn new(accounts: Accounts, security_account: &str, home_region: &str) -> MemberAccess {
        MemberAccess {
            accounts,
            security_account: security_account.to_owned(),
            home_region: home_region.to_owned(),
            partition: partition_of(home_region).to_owned(),
        }
    }

    /// A deployed function's: the security account from `IR_SECURITY_ACCOUNT_ID` (the
    /// template sets it), else STS's answer for the function's own credentials; the region of
    /// `home`'s configuration.
    ///
    /// # Errors
    /// `IR_SECURITY_ACCOUNT_ID` is not an account id, or STS cannot say.
    pub async fn from_env(home: &Clients, accounts: Accounts) -> Result<MemberAccess, String> {
        let region = home
            .sdk_config()
            .region()
            .map(ToString::to_string)
            .ok_or("no AWS region configured (AWS_REGION)")?;
        let account = match std::env::var("IR_SECURITY_ACCOUNT_ID") {
            Ok(a) if accounts::is_account_id(a.trim()) => a.trim().to_owned(),
            Ok(a) => return Err(format!("IR_SECURITY_ACCOUNT_ID={a:?} is not an account id")),
            Err(_) => home
                .sts()
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| format!("sts:GetCallerIdentity: {}", crate::sdk::classify(&e)))?
                .account()
                .map(str::to_owned)
                .ok_or("sts:GetCallerIdentity named no account")?,
        };
        Ok(MemberAccess::new(accounts, &account, &region))
    }

    pub fn security_account(&self) -> &str {
        &self.security_account
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Whether `account` may be acted on, reading its OU ancestry from AWS Organizations when
    /// the configured OUs are what could allow it.
    ///
    /// # Errors
    /// Organizations failed (its failure is typed; an account it does not know is refused).
    pub async fn allowance(&self, home: &Clients, account: &str) -> Result<Allowance, MemberError> {
        let ancestry = if accounts::is_account_id(account)
            && self
                .accounts
                .needs_ancestry(&self.security_account, account)
        {
            Some(ancestry(home, account).await?)
        } else {
            None
        };
        Ok(self
            .accounts
            .allows(&self.security_account, account, ancestry.as_deref()))
    }

    /// The place of the security account's own resources in the function's region (where a
    /// dry-run of an incident the suite has no record of reads).
    pub fn home(&self) -> Place {
        Place {
            account: self.security_account.clone(),
            region: self.home_region.clone(),
        }
    }

    /// The session `run` acts with at `place`: the function's own clients (in the place's
    /// region) for the security account, the member role's session for an allowed member
    /// account.
    ///
    /// # Errors
    /// See [`MemberError`]: nothing is acted on without a session.
    pub async fn session_for(
        &self,
        home: &Clients,
        place: &Place,
        run: Run<'_>,
    ) -> Result<Session, MemberError> {
        let member_role = (place.account != self.security_account).then(|| {
            self.accounts
                .member_role_arn(&self.partition, &place.account)
        });
        let clients = self.clients_for(home, place, run).await?;
        Ok(Session {
            clients,
            place: place.clone(),
            partition: self.partition.clone(),
            member_role,
        })
    }

    async fn clients_for(
        &self,
        home: &Clients,
        place: &Place,
        run: Run<'_>,
    ) -> Result<Clients, MemberError> {
        if !accounts::is_region(&place.region) {
            return Err(MemberError::NotAllowed {
                account: place.account.clone(),
                why: format!("{:?} is not a region", place.region),
            });
        }
        match self.allowance(home, &place.account).await? {
            Allowance::Refused(why) => Err(MemberError::NotAllowed {
                account: place.account.clone(),
                why,
            }),
            Allowance::SecurityAccount if place.region == self.home_region => Ok(home.clone()),
            Allowance::SecurityAccount => {
                let sdk = home
                    .sdk_config()
                    .to_builder()
                    .region(Region::new(place.region.clone()))
                    .build();
                Ok(home.derived(&sdk))
            }
            Allowance::ListedAccount | Allowance::OrganizationalUnit(_) => {
                self.assume(home, place, run).await
            }
        }
    }

    async fn assume(
        &self,
        home: &Clients,
        place: &Place,
        run: Run<'_>,
    ) -> Result<Clients, MemberError> {
        let role_arn = self
            .accounts
            .member_role_arn(&self.partition, &place.account);
        let Some(policy) = accounts::session_policy(run.function) else {
            return Err(MemberError::NotAllowed {
                account: place.account.clone(),
                why: format!("{} does not act in member accounts", run.function),
            });
        };
        let session = accounts::session_name(run.incident_id, run.step_id);
        let answer = home
            .sts()
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(&session)
            .policy(policy.to_string())
            .duration_seconds(SESSION_SECONDS)
            .set_external_id(self.accounts.external_id.clone())
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) => {
                let failure = crate::log_sdk_error("sts:AssumeRole", &e);
                let code = failure.code.clone().unwrap_or_default();
                // STS's own words, not the whole error chain: they go on the incident.
                let message = e.message().unwrap_or_default().to_owned();
                return Err(match failure.name {
                    ErrorName::AccessDenied => MemberError::AccessDenied {
                        account: place.account.clone(),
                        role_arn,
                        code,
                        message,
                    },
                    ErrorName::RegionDisabled => MemberError::RegionDisabled {
                        region: self.home_region.clone(),
                        code,
                        message,
                    },
                    _ => MemberError::Aws(failure),
                });
            }
        };
        let Some(c) = out.credentials() else {
            return Err(MemberError::Aws(SdkFailure {
                operation: "sts:AssumeRole",
                name: ErrorName::Internal,
                code: None,
                request_id: None,
                detail: "STS answered without credentials".to_owned(),
            }));
        };
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            expiry,
            "ir-member-session",
        );
        tracing::info!(
            account = %place.account,
            region = %place.region,
            role = %role_arn,
            session = %session,
            "acting through the member role"
        );
        let sdk = home
            .sdk_config()
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .region(Region::new(place.region.clone()))
            .build();
        Ok(home.derived(&sdk))
    }
}

/// The OU ids above `account`, nearest first, up to the root (exclusive), as AWS Organizations
/// reports them.
async fn ancestry(home: &Clients, account: &str) -> Result<Vec<String>, MemberError> {
    let mut out = Vec::new();
    let mut child = account.to_owned();
    for _ in 0..MAX_OU_DEPTH {
        let answer = home
            .organizations()
            .list_parents()
            .child_id(&child)
            .send()
            .await;
        let parents = match answer {
            Ok(p) => p,
            Err(e) => {
                let failure = crate::log_sdk_error("organizations:ListParents", &e);
                return Err(match failure.name {
                    // An account Organizations does not know is in no allowed OU.
                    ErrorName::NotFound => MemberError::NotAllowed {
                        account: account.to_owned(),
                        why: format!("AWS Organizations does not know it: {failure}"),
                    },
                    _ => MemberError::Aws(failure),
                });
            }
        };
        let Some(parent) = parents.parents().first() else {
            break;
        };
        let id = parent.id().unwrap_or_default().to_owned();
        let is_ou = parent
            .r#type()
            .is_some_and(|t| *t == aws_sdk_organizations::types::ParentType::OrganizationalUnit);
        if !is_ou || id.is_empty() {
            break;
        }
        out.push(id.clone());
        child = id;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn every_refusal_has_its_stable_name() {
        let e = MemberError::NotAllowed {
            account: "1".into(),
            why: "x".into(),
        };
        assert_eq!(e.error_name(), ErrorName::AccountNotAllowed);
        let e = MemberError::AccessDenied {
            account: "1".into(),
            role_arn: "r".into(),
            code: "AccessDenied".into(),
            message: "m".into(),
        };
        assert_eq!(e.error_name(), ErrorName::MemberAccessDenied);
        assert!(e.to_string().contains("member-account.yaml"));
        let e = MemberError::RegionDisabled {
            region: "me-south-1".into(),
            code: "RegionDisabledException".into(),
            message: "m".into(),
        };
        assert_eq!(e.error_name(), ErrorName::RegionDisabled);
    }
}
