//! Where the suite may act: the accounts of an AWS Organization whose resources it contains,
//! the execution role it assumes in each, and what one assumed session may do.
//!
//! The suite runs in the security account (GuardDuty's and Security Hub's delegated
//! administrator). A finding about a member account's resource is acted on in that account and
//! the finding's region, through the member execution role `member-account.yaml` creates there
//! (`arn:<partition>:iam::<member>:role/ir-suite/ir-member-responder`), assumed by the one action
//! that runs, with a session policy narrowing it to that action's calls and a session name
//! naming the incident and step, so the member's CloudTrail shows who acted and why.
//!
//! Which accounts: the config's `accounts` section. An account is allowed when it is the
//! security account itself (and `include_security_account` holds), one of
//! `allowed_account_ids`, or a member of one of `allowed_organizational_units` (at any depth, as
//! AWS Organizations reports the account's parents). Nothing else: an empty section allows the
//! security account only.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The path of the member execution role and of the member's deny-all policy: the suite's own
/// path, which the member template's and the suite's protections name by exact ARN.
pub const MEMBER_PATH: &str = "/ir-suite/";
/// The member execution role's name: fixed, as `member-account.yaml` creates it and the action
/// roles' `sts:AssumeRole` permission names it, so the three cannot drift apart.
pub const MEMBER_ROLE_NAME: &str = "ir-member-responder";
/// The deny-all managed policy `member-account.yaml` creates in each member account, which
/// deny-principal attaches there (its name ends as the suite's own deny policy's does).
pub const MEMBER_DENY_POLICY_NAME: &str = "ir-member-containment-deny-all";
/// STS's limit on a role session name.
pub const SESSION_NAME_MAX: usize = 64;

fn yes() -> bool {
    true
}

/// The config's `accounts` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    /// Whether the security account's own resources may be acted on (with the functions' own
    /// roles, no role assumed).
    #[serde(default = "yes")]
    pub include_security_account: bool,
    /// Member accounts whose resources may be acted on, by id.
    #[serde(default)]
    pub allowed_account_ids: Vec<String>,
    /// Organizational units (`ou-…`) whose accounts, at any depth, may be acted on.
    #[serde(default)]
    pub allowed_organizational_units: Vec<String>,
    /// The external id the member role's trust requires (`member-account.yaml`'s
    /// `ExternalId`), when the organization's deployment uses one instead of, or with,
    /// `aws:PrincipalOrgID`.
    #[serde(default)]
    pub external_id: Option<String>,
}

impl Default for Accounts {
    fn default() -> Accounts {
        Accounts {
            include_security_account: true,
            allowed_account_ids: Vec::new(),
            allowed_organizational_units: Vec::new(),
            external_id: None,
        }
    }
}

/// Why an account may be acted on, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowance {
    /// The security account itself: the functions' own roles act.
    SecurityAccount,
    /// A member account listed by id.
    ListedAccount,
    /// A member account under this allowed organizational unit.
    OrganizationalUnit(String),
    /// Not allowed: why, in words a responder reads.
    Refused(String),
}

impl Allowance {
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Allowance::Refused(_))
    }
}

/// Whether `s` is an AWS account id (twelve digits).
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is an AWS region name as the suite accepts one (`eu-west-1`, `us-gov-west-1`):
/// lowercase letters, digits and dashes, starting with a letter, at most 32 characters.
pub fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Accounts {
    /// Whether the OU ancestry of `account` must be read to decide ([`Accounts::allows`]): OUs
    /// are configured and the id alone does not decide.
    pub fn needs_ancestry(&self, security_account: &str, account: &str) -> bool {
        !self.allowed_organizational_units.is_empty()
            && account != security_account
            && !self.allowed_account_ids.iter().any(|a| a == account)
    }

    /// Whether resources of `account` may be acted on. `ancestry` is the account's parents as
    /// AWS Organizations reports them (the OU ids up to the root), when they were read.
    pub fn allows(
        &self,
        security_account: &str,
        account: &str,
        ancestry: Option<&[String]>,
    ) -> Allowance {
        if !is_account_id(account) {
            return Allowance::Refused(format!("{account:?} is not an account id"));
        }
        if account == security_account {
            return if self.include_security_account {
                Allowance::SecurityAccount
            } else {
                Allowance::Refused(format!(
                    "account {account} is the security account, and accounts.\
                     include_security_account is false"
                ))
            };
        }
        if self.allowed_account_ids.iter().any(|a| a == account) {
            return Allowance::ListedAccount;
        }
        if let Some(ou) = ancestry.and_then(|parents| {
            parents
                .iter()
                .find(|p| self.allowed_organizational_units.contains(p))
        }) {
            return Allowance::OrganizationalUnit(ou.clone());
        }
        Allowance::Refused(format!(
            "account {account} is neither in accounts.allowed_account_ids nor under any of \
             accounts.allowed_organizational_units ({})",
            if self.allowed_organizational_units.is_empty() {
                "none configured".to_owned()
            } else {
                self.allowed_organizational_units.join(", ")
            }
        ))
    }

    /// The member execution role in `account`.
    pub fn member_role_arn(&self, partition: &str, account: &str) -> String {
        format!("arn:{partition}:iam::{account}:role{MEMBER_PATH}{MEMBER_ROLE_NAME}")
    }
}

/// The deny-all policy `member-account.yaml` creates in `account`.
pub fn member_deny_policy_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:policy{MEMBER_PATH}{MEMBER_DENY_POLICY_NAME}")
}

/// The role session name of an action run: `ir-<incident>-<step>`, in the characters STS
/// accepts (`[\w+=,.@-]`; anything else becomes `-`), at most 64 characters. The member's
/// CloudTrail shows it on every call the session makes.
pub fn session_name(incident_id: &str, step_id: &str) -> String {
    let raw = format!("ir-{incident_id}-{step_id}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(SESSION_NAME_MAX)
        .collect()
}

/// The calls one action function makes in the account it acts in: its assumed session's
/// policy allows these and nothing else (the member role's own policy scopes the resources).
/// `None` for a function that does not act in member accounts.
pub fn session_actions(function: &str) -> Option<&'static [&'static str]> {
    Some(match function {
        "ir-isolate-instance" => &[
            "ec2:DescribeInstances",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSecurityGroupRules",
            "ec2:DescribeInstanceAttribute",
            "ec2:CreateSecurityGroup",
            "ec2:CreateTags",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:ModifyNetworkInterfaceAttribute",
            "ec2:ModifyInstanceAttribute",
        ],
        "ir-snapshot-volumes" => &[
            "ec2:DescribeInstances",
            "ec2:DescribeVolumes",
            "ec2:DescribeSnapshots",
            "ec2:CreateSnapshots",
            "ec2:CreateTags",
            "ec2:LockSnapshot",
        ],
        "ir-terminate-instance" => &[
            "ec2:DescribeInstances",
            "ec2:DescribeInstanceAttribute",
            "ec2:DescribeVolumes",
            "ec2:DescribeSnapshots",
            "ec2:ModifyInstanceAttribute",
            "ec2:TerminateInstances",
        ],
        "ir-revoke-sessions" => &[
            "iam:GetInstanceProfile",
            "iam:GetRole",
            "iam:GetRolePolicy",
            "iam:GetUser",
            "iam:GetUserPolicy",
            "iam:PutRolePolicy",
            "iam:PutUserPolicy",
        ],
        "ir-deny-principal" => &[
            "iam:GetRole",
            "iam:GetUser",
            "iam:ListAttachedRolePolicies",
            "iam:ListAttachedUserPolicies",
            "iam:AttachRolePolicy",
            "iam:AttachUserPolicy",
            "iam:TagRole",
            "iam:TagUser",
        ],
        "ir-disable-access-keys" => &[
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:TagUser",
            "iam:UpdateAccessKey",
        ],
        "ir-collect-evidence" => &[
            "ec2:DescribeInstances",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSecurityGroupRules",
            "ec2:DescribeVolumes",
            "iam:GetRole",
            "iam:GetUser",
            "iam:GetRolePolicy",
            "iam:GetUserPolicy",
            "iam:ListRolePolicies",
            "iam:ListUserPolicies",
            "iam:ListAttachedRolePolicies",
            "iam:ListAttachedUserPolicies",
            "iam:ListAccessKeys",
            "iam:GetAccessKeyLastUsed",
            "iam:ListGroupsForUser",
            "s3:GetBucketPolicy",
            "s3:GetBucketPublicAccessBlock",
            "s3:GetBucketVersioning",
            "s3:GetEncryptionConfiguration",
            "s3:GetBucketTagging",
        ],
        _ => return None,
    })
}

/// The session policy of `function`'s assumed session: its calls ([`session_actions`]), on any
/// resource the member role's own policy allows (a session policy only narrows). `None` for a
/// function that does not act in member accounts.
pub fn session_policy(function: &str) -> Option<Value> {
    let actions = session_actions(function)?;
    Some(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlyThisAction",
            "Effect": "Allow",
            "Action": actions,
            "Resource": "*"
        }]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "111111111111";
    const MEMBER: &str = "222222222222";

    fn accounts(ids: &[&str], ous: &[&str], include: bool) -> Accounts {
        Accounts {
            include_security_account: include,
            allowed_account_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            allowed_organizational_units: ous.iter().map(|s| (*s).to_owned()).collect(),
            ..Accounts::default()
        }
    }

    #[test]
    fn the_default_allows_the_security_account_only() {
        let a = Accounts::default();
        assert_eq!(a.allows(HOME, HOME, None), Allowance::SecurityAccount);
        assert!(!a.allows(HOME, MEMBER, None).is_allowed());
        assert!(!a.needs_ancestry(HOME, MEMBER));
    }

    #[test]
    fn the_security_account_can_be_left_out() {
        let a = accounts(&[MEMBER], &[], false);
        let refused = a.allows(HOME, HOME, None);
        assert!(
            matches!(&refused, Allowance::Refused(why) if why.contains("include_security_account")),
            "{refused:?}"
        );
        assert_eq!(a.allows(HOME, MEMBER, None), Allowance::ListedAccount);
    }

    #[test]
    fn an_account_under_an_allowed_ou_at_any_depth_is_allowed_and_no_other() {
        let a = accounts(&[], &["ou-ab12-workload1"], true);
        assert!(a.needs_ancestry(HOME, MEMBER));
        assert!(!a.needs_ancestry(HOME, HOME));
        let deep = vec![
            "ou-ab12-team0001".to_owned(),
            "ou-ab12-workload1".to_owned(),
        ];
        assert_eq!(
            a.allows(HOME, MEMBER, Some(&deep)),
            Allowance::OrganizationalUnit("ou-ab12-workload1".into())
        );
        let elsewhere = vec!["ou-ab12-sandbox01".to_owned(), "r-ab12".to_owned()];
        assert!(!a.allows(HOME, MEMBER, Some(&elsewhere)).is_allowed());
        // Without the ancestry read, an OU cannot allow.
        assert!(!a.allows(HOME, MEMBER, None).is_allowed());
    }

    #[test]
    fn what_is_not_an_account_id_is_refused() {
        let a = accounts(&["22222222222x"], &[], true);
        for bad in ["22222222222x", "", "2222222222222", "../111111111111"] {
            assert!(!a.allows(HOME, bad, None).is_allowed(), "{bad}");
        }
    }

    #[test]
    fn the_member_role_and_deny_policy_are_under_the_suites_path() {
        let a = Accounts::default();
        assert_eq!(
            a.member_role_arn("aws", MEMBER),
            "arn:aws:iam::222222222222:role/ir-suite/ir-member-responder"
        );
        assert_eq!(
            member_deny_policy_arn("aws-us-gov", MEMBER),
            "arn:aws-us-gov:iam::222222222222:policy/ir-suite/ir-member-containment-deny-all"
        );
    }

    #[test]
    fn session_names_name_the_incident_and_step_within_stss_limits() {
        assert_eq!(
            session_name("inc-0123456789abcdef0123", "isolate-instance"),
            "ir-inc-0123456789abcdef0123-isolate-instance"
        );
        let long = session_name("inc-0123456789abcdef0123", &"x".repeat(100));
        assert_eq!(long.len(), SESSION_NAME_MAX);
        assert_eq!(session_name("inc-1", "a b/c:d"), "ir-inc-1-a-b-c-d");
    }

    #[test]
    fn every_acting_function_has_a_session_policy_of_its_own_calls_only() {
        for f in [
            "ir-isolate-instance",
            "ir-snapshot-volumes",
            "ir-terminate-instance",
            "ir-revoke-sessions",
            "ir-deny-principal",
            "ir-disable-access-keys",
            "ir-collect-evidence",
        ] {
            let p = session_policy(f).unwrap();
            let actions = p["Statement"][0]["Action"].as_array().unwrap();
            assert!(!actions.is_empty(), "{f}");
            assert!(
                actions
                    .iter()
                    .all(|a| a.as_str().is_some_and(|s| !s.contains('*'))),
                "{f}: {actions:?}"
            );
        }
        // Only the termination's session may terminate.
        for f in ["ir-isolate-instance", "ir-snapshot-volumes"] {
            assert!(
                !session_actions(f)
                    .unwrap()
                    .contains(&"ec2:TerminateInstances")
            );
        }
        assert_eq!(session_policy("ir-notify"), None);
    }

    #[test]
    fn regions_are_names_not_paths() {
        assert!(is_region("eu-west-1"));
        assert!(is_region("us-gov-west-1"));
        for bad in ["", "EU-west-1", "eu_west_1", "eu-west-1/../", "local"] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
