//! The approval policy: who may decide a gated step, and what a decision is.
//!
//! 1. the caller must hold an escalation role (`notifications.approver_roles`: IAM role ARNs,
//!    whose every session holds it, IAM user ARNs, or one person's assumed-role session ARN);
//! 2. at an escalation level, only the level's role or a higher one (listed later) may decide;
//! 3. people, not roles, are counted: a person is the session name of an assumed role (IAM
//!    Identity Center sets it to the user's name) or the user name of an IAM user, compared
//!    case-insensitively; a step needing k approvals needs k different people, and with
//!    `notifications.two_person_rule` (default) the person who asked cannot decide;
//! 4. the suite's own roles never decide, whatever the config lists.
//!
//! The decision path itself (the store, Step Functions, the audit chain) is in `ir-incident`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arn::Arn;
use crate::config::{ApproverRole, Config};

pub use crate::action::PrincipalKind;

/// Who may decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverPolicy {
    /// The escalation roles, lowest first, and who holds each (`notifications.approver_roles`).
    pub roles: Vec<ApproverRole>,
    /// The person who asked cannot decide (`notifications.two_person_rule`).
    pub two_person_rule: bool,
    /// The suite's own principals (exact ARNs): never approvers.
    pub suite: Vec<String>,
}

impl ApproverPolicy {
    /// The policy of a configuration (its suite principals included).
    pub fn from_config(c: &Config) -> ApproverPolicy {
        ApproverPolicy {
            roles: c.notifications.approver_roles.clone(),
            two_person_rule: c.notifications.two_person_rule,
            suite: c.protection.suite_principals.clone(),
        }
    }

    /// One role held by `identities`, the two-person rule on.
    pub fn one_role(role: &str, identities: &[&str]) -> ApproverPolicy {
        ApproverPolicy {
            roles: vec![ApproverRole {
                role: role.to_owned(),
                identities: identities.iter().map(|i| (*i).to_owned()).collect(),
            }],
            two_person_rule: true,
            suite: Vec::new(),
        }
    }
}

/// One person, as the two-person rule and the approval count tell people apart: the session
/// name of an assumed role, the user name of an IAM user (lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Person(String);

impl Person {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The person behind an ARN: an assumed-role session's name, an IAM user's name (a bare role
/// ARN, which no caller authenticates as, is its role name). `None` when it is neither.
pub fn person(arn: &str) -> Option<Person> {
    let (p, session) = principal_and_session(arn)?;
    Some(Person(session.unwrap_or(p.name).to_lowercase()))
}

/// An approver: who AWS authenticated, as the policy sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The ARN as authenticated.
    pub arn: String,
    /// The role or user.
    pub principal: Principal,
    /// The person.
    pub person: Person,
    /// The highest escalation role held.
    pub role: String,
    rank: usize,
}

/// An IAM role or user, as authorization compares them: partition, account, kind and name (the
/// path left out: a role's name is unique in its account whatever its path, and an assumed-role
/// session ARN does not carry the path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub partition: String,
    pub account: String,
    pub kind: PrincipalKind,
    pub name: String,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            PrincipalKind::Role => "role",
            PrincipalKind::User => "user",
        };
        write!(
            f,
            "arn:{}:iam::{}:{kind}/{}",
            self.partition, self.account, self.name
        )
    }
}

/// The role or user behind an ARN: `arn:P:iam::A:role/PATH/NAME`, `arn:P:iam::A:user/PATH/NAME`,
/// or an assumed-role session `arn:P:sts::A:assumed-role/NAME/SESSION`. Anything else (the
/// account root, a federated user, a group, a malformed ARN) is `None`: never an approver.
pub fn principal(arn: &str) -> Option<Principal> {
    principal_and_session(arn).map(|(p, _)| p)
}

/// [`principal`], and the session name when the ARN is an assumed-role session.
fn principal_and_session(arn: &str) -> Option<(Principal, Option<String>)> {
    let arn = Arn::parse(arn)?;
    if !arn.partition.starts_with("aws") || !arn.region.is_empty() || !arn.has_account_id() {
        return None;
    }
    let (kind, name, session) = match arn.service {
        "iam" => {
            if let Some(role) = arn.role() {
                (PrincipalKind::Role, role.name, None)
            } else {
                (PrincipalKind::User, arn.user()?.name, None)
            }
        }
        "sts" => {
            let a = arn.assumed_role()?;
            (PrincipalKind::Role, a.role, Some(a.session.to_owned()))
        }
        _ => return None,
    };
    Some((
        Principal {
            partition: arn.partition.to_owned(),
            account: arn.account.to_owned(),
            kind,
            name: name.to_owned(),
        },
        session,
    ))
}

/// Whether the configured identity `identity` is held by the caller: a role or user ARN by any
/// of its sessions, a session ARN by that session only.
fn holds(identity: &str, caller: &Principal, session: Option<&str>) -> bool {
    match principal_and_session(identity) {
        Some((p, None)) => &p == caller,
        Some((p, Some(s))) => &p == caller && session == Some(s.as_str()),
        None => false,
    }
}

/// The caller is not an approver: why, in words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{caller} may not decide approvals: {why}")]
pub struct NotAnApprover {
    /// The caller's ARN as given.
    pub caller: String,
    pub why: String,
}

impl ApproverPolicy {
    /// The caller as an approver, if it holds an escalation role: with the highest role it holds.
    pub fn approver(&self, caller_arn: &str) -> Result<Approver, NotAnApprover> {
        let refuse = |why: String| NotAnApprover {
            caller: caller_arn.to_owned(),
            why,
        };
        let Some((caller, session)) = principal_and_session(caller_arn) else {
            return Err(refuse(
                "it is not an IAM role, user or assumed-role session".to_owned(),
            ));
        };
        if self
            .suite
            .iter()
            .any(|s| principal(s).as_ref() == Some(&caller))
        {
            return Err(refuse(format!(
                "{caller} is one of the suite's own roles, which never decide"
            )));
        }
        let held = self.roles.iter().enumerate().rev().find(|(_, r)| {
            r.identities
                .iter()
                .any(|i| holds(i, &caller, session.as_deref()))
        });
        let Some((rank, role)) = held else {
            return Err(refuse(if self.roles.is_empty() {
                "notifications.approver_roles is empty: nobody can decide".to_owned()
            } else {
                format!("{caller_arn} holds no role of notifications.approver_roles")
            }));
        };
        Ok(Approver {
            arn: caller_arn.to_owned(),
            person: Person(
                session
                    .unwrap_or_else(|| caller.name.clone())
                    .to_lowercase(),
            ),
            principal: caller,
            role: role.role.clone(),
            rank,
        })
    }

    /// Whether `approver` may decide at an escalation level asking `level_role`: it holds that
    /// role or one listed after it. A role the config does not list is held by nobody.
    pub fn may_decide_at(
        &self,
        approver: &Approver,
        level_role: &str,
    ) -> Result<(), NotAnApprover> {
        match self.roles.iter().position(|r| r.role == level_role) {
            Some(needed) if approver.rank >= needed => Ok(()),
            Some(_) => Err(NotAnApprover {
                caller: approver.arn.clone(),
                why: format!(
                    "this level asks {level_role} or higher, and {} holds only {}",
                    approver.person, approver.role
                ),
            }),
            None => Err(NotAnApprover {
                caller: approver.arn.clone(),
                why: format!(
                    "this level asks {level_role}, which notifications.approver_roles does not list"
                ),
            }),
        }
    }

    /// Whether the two-person rule refuses `approver` for a request made by `requester`: the
    /// same person.
    pub fn is_self_approval(&self, approver: &Approver, requester: &str) -> bool {
        self.two_person_rule
            && (approver.arn == requester || person(requester).as_ref() == Some(&approver.person))
    }
}

/// What an approver's identity proof is bound to: the SHA-256 (hex) of the decision — incident,
/// step, verdict, the plan hash it approves and the reason it gives — so a proof made for one
/// decision authenticates no other (`ir_aws::identity`).
pub fn decision_binding(
    incident_id: &str,
    step_id: &str,
    verdict: Verdict,
    plan_hash: Option<&str>,
    reason: Option<&str>,
) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::json!([
        "ir-decision/v1",
        incident_id,
        step_id,
        verdict.as_str(),
        plan_hash.unwrap_or_default(),
        reason.unwrap_or_default(),
    ])
    .to_string();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    /// Not decided before `expiresAt`.
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
            ApprovalStatus::Expired,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("`{s}` is not an approval status"))
    }
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The step runs.
    Approve,
    /// The step does not run; the gate fails with
    /// [`REJECTED_ERROR`](crate::orchestration::REJECTED_ERROR).
    Reject,
}

impl Verdict {
    /// The audit action and the stored status it leads to.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        }
    }

    /// The stored status this verdict leads to.
    pub fn status(self) -> ApprovalStatus {
        match self {
            Verdict::Approve => ApprovalStatus::Approved,
            Verdict::Reject => ApprovalStatus::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINEER: &str = "arn:aws:iam::111122223333:role/teams/SecurityEngineer";
    const LEAD: &str = "arn:aws:iam::111122223333:role/SecurityLead";

    fn policy(two: bool) -> ApproverPolicy {
        ApproverPolicy {
            roles: vec![
                ApproverRole {
                    role: "security_engineer".into(),
                    identities: vec![
                        ENGINEER.into(),
                        "arn:aws:iam::111122223333:user/alice".into(),
                        "arn:aws:sts::111122223333:assumed-role/Oncall/dave@example.com".into(),
                    ],
                },
                ApproverRole {
                    role: "security_lead".into(),
                    identities: vec![LEAD.into()],
                },
            ],
            two_person_rule: two,
            suite: vec!["arn:aws:iam::111122223333:role/ir-suite/ir-request-approval".into()],
        }
    }

    #[test]
    fn holders_of_a_listed_identity_are_approvers_whatever_the_path() {
        let p = policy(true);
        for (ok, role) in [
            (
                "arn:aws:sts::111122223333:assumed-role/SecurityEngineer/bob@example.com",
                "security_engineer",
            ),
            (
                "arn:aws:iam::111122223333:role/other/path/SecurityEngineer",
                "security_engineer",
            ),
            ("arn:aws:iam::111122223333:user/alice", "security_engineer"),
            (
                "arn:aws:sts::111122223333:assumed-role/Oncall/dave@example.com",
                "security_engineer",
            ),
            (
                "arn:aws:sts::111122223333:assumed-role/SecurityLead/carol",
                "security_lead",
            ),
        ] {
            assert_eq!(p.approver(ok).map(|a| a.role).as_deref(), Ok(role), "{ok}");
        }
        for refused in [
            "arn:aws:sts::444455556666:assumed-role/SecurityLead/bob",
            "arn:aws:sts::111122223333:assumed-role/SecurityLeader/bob",
            "arn:aws:sts::111122223333:assumed-role/SecurityLead",
            // Another session of a role only one session of which is listed.
            "arn:aws:sts::111122223333:assumed-role/Oncall/mallory",
            "arn:aws:iam::111122223333:role/Oncall",
            "arn:aws:iam::111122223333:user/SecurityLead",
            "arn:aws:iam::111122223333:root",
            "arn:aws:sts::111122223333:federated-user/alice",
            "arn:aws-cn:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/",
            "SecurityLead",
            "",
        ] {
            assert!(p.approver(refused).is_err(), "{refused}");
        }
        let nobody = ApproverPolicy {
            roles: vec![],
            two_person_rule: true,
            suite: vec![],
        };
        let e = nobody.approver(LEAD).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{LEAD} may not decide approvals: notifications.approver_roles is empty: nobody can decide"
            )
        );
    }

    #[test]
    fn the_suite_never_decides_even_when_listed() {
        let mut p = policy(true);
        p.roles[1]
            .identities
            .push("arn:aws:iam::111122223333:role/ir-request-approval".into());
        let e = p
            .approver(
                "arn:aws:sts::111122223333:assumed-role/ir-request-approval/ir-request-approval",
            )
            .unwrap_err();
        assert!(e.why.contains("suite's own roles"), "{e}");
    }

    #[test]
    fn a_level_is_decided_by_its_role_or_a_higher_one() {
        let p = policy(true);
        let engineer = p
            .approver("arn:aws:sts::111122223333:assumed-role/SecurityEngineer/bob")
            .unwrap();
        let lead = p
            .approver("arn:aws:sts::111122223333:assumed-role/SecurityLead/carol")
            .unwrap();
        assert!(p.may_decide_at(&engineer, "security_engineer").is_ok());
        let e = p.may_decide_at(&engineer, "security_lead").unwrap_err();
        assert_eq!(
            e.why,
            "this level asks security_lead or higher, and bob holds only security_engineer"
        );
        assert!(p.may_decide_at(&lead, "security_engineer").is_ok());
        assert!(p.may_decide_at(&lead, "security_lead").is_ok());
        assert!(p.may_decide_at(&lead, "ciso").is_err());
        // Holding both: the higher role counts.
        let mut both = policy(true);
        both.roles[1]
            .identities
            .push("arn:aws:iam::111122223333:user/alice".into());
        let alice = both
            .approver("arn:aws:iam::111122223333:user/alice")
            .unwrap();
        assert_eq!(alice.role, "security_lead");
    }

    #[test]
    fn people_are_told_apart_by_session_name_not_by_role() {
        let p = policy(true);
        let bob = p
            .approver("arn:aws:sts::111122223333:assumed-role/SecurityEngineer/Bob")
            .unwrap();
        assert_eq!(bob.person.as_str(), "bob");
        let same: Vec<Person> = [
            "arn:aws:sts::111122223333:assumed-role/SecurityEngineer/bob",
            "arn:aws:sts::111122223333:assumed-role/SecurityLead/BOB",
            "arn:aws:iam::111122223333:user/bob",
        ]
        .iter()
        .map(|a| person(a).unwrap())
        .collect();
        assert!(same.iter().all(|p| p == &bob.person));
        assert_ne!(
            person("arn:aws:sts::111122223333:assumed-role/SecurityEngineer/carol"),
            Some(bob.person.clone())
        );
        assert_eq!(person("arn:aws:iam::111122223333:root"), None);

        // The two-person rule: the person who asked, in any role.
        assert!(p.is_self_approval(&bob, "arn:aws:iam::111122223333:user/bob"));
        assert!(p.is_self_approval(
            &bob,
            "arn:aws:sts::111122223333:assumed-role/SecurityLead/bob"
        ));
        assert!(!p.is_self_approval(
            &bob,
            "arn:aws:sts::111122223333:assumed-role/ir-request-approval/ir-request-approval"
        ));
        assert!(!policy(false).is_self_approval(&bob, "arn:aws:iam::111122223333:user/bob"));
    }

    #[test]
    fn principals_of_arns() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "arn:aws:sts::111122223333:assumed-role/SecurityLead/bob",
                Some("arn:aws:iam::111122223333:role/SecurityLead"),
            ),
            (
                "arn:aws:iam::111122223333:role/a/b/SecurityLead",
                Some("arn:aws:iam::111122223333:role/SecurityLead"),
            ),
            (
                "arn:aws-us-gov:iam::111122223333:user/alice",
                Some("arn:aws-us-gov:iam::111122223333:user/alice"),
            ),
            ("arn:aws:iam:us-east-1:111122223333:role/R", None),
            ("arn:aws:iam::11112222333:role/R", None),
            ("arn:aws:iam::aws:role/R", None),
            ("arn:other:iam::111122223333:role/R", None),
            ("arn:aws:iam::111122223333:group/G", None),
            ("arn:aws:iam::111122223333:user/", None),
            ("arn:aws:sts::111122223333:assumed-role/R/s/extra", None),
            ("arn:aws:sts::111122223333:assumed-role//s", None),
            ("arn:aws:s3:::111122223333", None),
        ];
        for (arn, want) in cases {
            assert_eq!(
                principal(arn).map(|p| p.to_string()).as_deref(),
                *want,
                "{arn}"
            );
        }
    }

    #[test]
    fn verdicts_lead_to_statuses() {
        assert_eq!(Verdict::Approve.status(), ApprovalStatus::Approved);
        assert_eq!(Verdict::Reject.status(), ApprovalStatus::Rejected);
        assert_eq!(
            Verdict::Approve.as_str(),
            Verdict::Approve.status().as_str()
        );
        assert_eq!(Verdict::Reject.as_str(), Verdict::Reject.status().as_str());
    }

    #[test]
    fn statuses_parse() {
        for s in ["pending", "approved", "rejected", "expired"] {
            assert_eq!(s.parse::<ApprovalStatus>().unwrap().as_str(), s);
        }
        assert!("Approved".parse::<ApprovalStatus>().is_err());
    }
}
