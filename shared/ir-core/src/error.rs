//! The stable error names every function reports to Step Functions.
//!
//! A Lambda's error reaches `Retry`/`Catch` as its `errorType`. These names are the whole
//! vocabulary: state machines match on them, so they never change meaning. Each function has its
//! own closed error enum and maps every variant onto one of these.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorName {
    /// The input is malformed or refers to something that cannot be understood. Not retried.
    InvalidInput,
    /// A resource the input names does not exist (unknown instance, deleted user). Not retried.
    NotFound,
    /// A conditional write lost a race or the state changed underneath. Not retried blindly.
    Conflict,
    /// The target is protected: a protected principal (configured, or one of the suite's own
    /// roles), or an instance whose termination the evidence rule refuses (a volume without a
    /// completed snapshot taken for the incident). Nothing was changed. Not retried.
    Protected,
    /// The caller lacks a permission the step needs.
    AccessDenied,
    /// Throttling, 5xx, timeouts, transport errors: safe to retry with backoff.
    Retryable,
    /// An action ran but reading the result back showed it did not hold.
    VerificationFailed,
    /// The function's own configuration is wrong (missing variable, invalid config file).
    Configuration,
    /// An enforce request the suite's own records do not authorize (no approval, another
    /// resource, a plan in dry-run). Nothing was changed. Not retried.
    NotApproved,
    /// The action's plan differs from the one approved. Nothing was changed; the gate asks again.
    PlanChanged,
    /// A third-party service (Slack, Jira) refused the request or did not answer after the
    /// client's own retries (429 after `Retry-After`, 5xx with backoff). Nothing in AWS was
    /// changed. Not retried by the state machine: a message sent whose answer was lost would be
    /// sent again.
    DeliveryFailed,
    /// The resource's account is not one the config allows the suite to act in
    /// (`accounts`). Nothing was read or changed there. Not retried.
    AccountNotAllowed,
    /// STS refused the member execution role: it does not exist in that account, or its trust
    /// does not let this function's role assume it (AWS answers the same for both). Nothing was
    /// changed. Not retried: the member account's stack must be deployed or fixed.
    MemberAccessDenied,
    /// STS or the service is not enabled in the region the resource is in (an opt-in region
    /// not enabled for the account, STS's regional endpoint deactivated). Not retried.
    RegionDisabled,
    /// Anything else; a bug. Not retried.
    Internal,
}

impl ErrorName {
    pub const ALL: [ErrorName; 15] = [
        ErrorName::InvalidInput,
        ErrorName::NotFound,
        ErrorName::Conflict,
        ErrorName::Protected,
        ErrorName::AccessDenied,
        ErrorName::Retryable,
        ErrorName::VerificationFailed,
        ErrorName::Configuration,
        ErrorName::NotApproved,
        ErrorName::PlanChanged,
        ErrorName::DeliveryFailed,
        ErrorName::AccountNotAllowed,
        ErrorName::MemberAccessDenied,
        ErrorName::RegionDisabled,
        ErrorName::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::InvalidInput => "InvalidInput",
            ErrorName::NotFound => "NotFound",
            ErrorName::Conflict => "Conflict",
            ErrorName::Protected => "Protected",
            ErrorName::AccessDenied => "AccessDenied",
            ErrorName::Retryable => "Retryable",
            ErrorName::VerificationFailed => "VerificationFailed",
            ErrorName::Configuration => "Configuration",
            ErrorName::NotApproved => "NotApproved",
            ErrorName::PlanChanged => "PlanChanged",
            ErrorName::DeliveryFailed => "DeliveryFailed",
            ErrorName::AccountNotAllowed => "AccountNotAllowed",
            ErrorName::MemberAccessDenied => "MemberAccessDenied",
            ErrorName::RegionDisabled => "RegionDisabled",
            ErrorName::Internal => "Internal",
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorName::Retryable)
    }

    /// The name a stable name string stands for (`"NotFound"`), if any.
    pub fn parse(name: &str) -> Option<ErrorName> {
        ErrorName::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its stable name.
pub trait Named {
    fn error_name(&self) -> ErrorName;
}

/// A handler that cannot fail (its failures are answers, as an HTTP status).
impl Named for std::convert::Infallible {
    fn error_name(&self) -> ErrorName {
        match *self {}
    }
}

/// An error that can say a request was refused as malformed (`InvalidInput`): the runtime loops
/// build it for a payload that does not parse.
pub trait Refusal {
    fn invalid_input(why: String) -> Self;
}
