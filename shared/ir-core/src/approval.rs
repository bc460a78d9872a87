//! The approval policy: who may decide a gated step, and what a decision is.
//!
//! 1. the caller must be one of `notifications.approvers` (IAM role or user ARNs; an
//!    assumed-role session `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` is the role
//!    `arn:aws:iam::ACCT:role/…/ROLE`, whatever its path);
//! 2. with `notifications.two_person_rule` (default), the caller must not be the identity that
//!    requested the approval (the same role in any session counts as the same identity).
//!
//! The decision path itself (the store, Step Functions, the audit chain) is in `ir-incident`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arn::Arn;
use crate::config::Notifications;

pub use crate::action::PrincipalKind;

/// Who may decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverPolicy {
    /// IAM role and user ARNs (`notifications.approvers`).
    pub approvers: Vec<String>,
    /// The requester cannot decide (`notifications.two_person_rule`).
    pub two_person_rule: bool,
}

impl ApproverPolicy {
    /// The policy of a configuration.
    pub fn from_config(n: &Notifications) -> ApproverPolicy {
        ApproverPolicy {
            approvers: n.approvers.clone(),
            two_person_rule: n.two_person_rule,
        }
    }
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
    let arn = Arn::parse(arn)?;
    if !arn.partition.starts_with("aws") || !arn.region.is_empty() || !arn.has_account_id() {
        return None;
    }
    let (kind, name) = match arn.service {
        "iam" => {
            if let Some(role) = arn.role() {
                (PrincipalKind::Role, role.name)
            } else {
                (PrincipalKind::User, arn.user()?.name)
            }
        }
        "sts" => (PrincipalKind::Role, arn.assumed_role()?.role),
        _ => return None,
    };
    Some(Principal {
        partition: arn.partition.to_owned(),
        account: arn.account.to_owned(),
        kind,
        name: name.to_owned(),
    })
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
    /// The caller's principal if it is an approver.
    pub fn approver(&self, caller_arn: &str) -> Result<Principal, NotAnApprover> {
        let Some(caller) = principal(caller_arn) else {
            return Err(NotAnApprover {
                caller: caller_arn.to_owned(),
                why: "it is not an IAM role, user or assumed-role session".to_owned(),
            });
        };
        if self
            .approvers
            .iter()
            .any(|a| principal(a).as_ref() == Some(&caller))
        {
            Ok(caller)
        } else {
            Err(NotAnApprover {
                caller: caller_arn.to_owned(),
                why: if self.approvers.is_empty() {
                    "notifications.approvers is empty: nobody can decide".to_owned()
                } else {
                    format!("{caller} is not in notifications.approvers")
                },
            })
        }
    }

    /// Whether the two-person rule refuses `caller` for a request made by `requester`.
    pub fn is_self_approval(&self, caller: &Principal, caller_arn: &str, requester: &str) -> bool {
        self.two_person_rule
            && (caller_arn == requester || principal(requester).as_ref() == Some(caller))
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

    const ROLE: &str = "arn:aws:iam::111122223333:role/teams/SecurityLead";

    fn policy(two: bool) -> ApproverPolicy {
        ApproverPolicy {
            approvers: vec![ROLE.into(), "arn:aws:iam::111122223333:user/alice".into()],
            two_person_rule: two,
        }
    }

    #[test]
    fn sessions_of_a_listed_role_are_approvers_whatever_the_path() {
        let p = policy(true);
        for ok in [
            "arn:aws:sts::111122223333:assumed-role/SecurityLead/bob@example.com",
            "arn:aws:iam::111122223333:role/SecurityLead",
            "arn:aws:iam::111122223333:role/other/path/SecurityLead",
            "arn:aws:iam::111122223333:user/alice",
        ] {
            assert!(p.approver(ok).is_ok(), "{ok}");
        }
        for refused in [
            "arn:aws:sts::444455556666:assumed-role/SecurityLead/bob",
            "arn:aws:sts::111122223333:assumed-role/SecurityLeader/bob",
            "arn:aws:sts::111122223333:assumed-role/SecurityLead",
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
            approvers: vec![],
            two_person_rule: true,
        };
        let e = nobody.approver(ROLE).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{ROLE} may not decide approvals: notifications.approvers is empty: nobody can decide"
            )
        );
    }

    #[test]
    fn the_two_person_rule_compares_principals_not_sessions() {
        let caller_arn = "arn:aws:sts::111122223333:assumed-role/SecurityLead/bob";
        let caller = principal(caller_arn).unwrap();
        let requester = "arn:aws:sts::111122223333:assumed-role/SecurityLead/ir-request-approval";
        assert!(policy(true).is_self_approval(&caller, caller_arn, requester));
        assert!(!policy(false).is_self_approval(&caller, caller_arn, requester));
        assert!(!policy(true).is_self_approval(
            &caller,
            caller_arn,
            "arn:aws:sts::111122223333:assumed-role/ir-request-approval/x"
        ));
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
