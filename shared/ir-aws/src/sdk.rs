//! SDK errors: classified by their error code, logged once with code and request id.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use ir_core::ErrorName;

const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

const CONFLICT_CODES: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionCanceledException",
    "ExecutionAlreadyExists",
    "EntityAlreadyExists",
    "InvalidGroup.Duplicate",
    "InvalidPermission.Duplicate",
    "DeleteConflict",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "IdempotentParameterMismatch",
    "OperationAborted",
];

const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
];

/// The region is not enabled for the account (an opt-in region), or STS is deactivated there.
const REGION_CODES: &[&str] = &["RegionDisabledException", "OptInRequired"];

const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchEntity",
    "ResourceNotFoundException",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchVersion",
    "StateMachineDoesNotExist",
    "ExecutionDoesNotExist",
    "TaskDoesNotExist",
    // AWS Organizations: an account or OU it does not know.
    "AccountNotFoundException",
    "ChildNotFoundException",
];

/// The stable name for an error code and HTTP status.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> ErrorName {
    match code {
        Some(c) if RETRYABLE_CODES.contains(&c) => ErrorName::Retryable,
        Some(c) if CONFLICT_CODES.contains(&c) => ErrorName::Conflict,
        Some(c) if REGION_CODES.contains(&c) => ErrorName::RegionDisabled,
        Some(c) if ACCESS_CODES.contains(&c) => ErrorName::AccessDenied,
        Some(c) if NOT_FOUND_CODES.contains(&c) || c.ends_with(".NotFound") => ErrorName::NotFound,
        Some(c)
            if c.ends_with(".Malformed")
                || c.starts_with("InvalidParameter")
                || c == "ValidationException"
                || c == "MalformedPolicyDocument" =>
        {
            ErrorName::InvalidInput
        }
        _ => match status {
            Some(429) => ErrorName::Retryable,
            Some(s) if s >= 500 => ErrorName::Retryable,
            Some(404) => ErrorName::NotFound,
            Some(403) => ErrorName::AccessDenied,
            _ => ErrorName::Internal,
        },
    }
}

/// The stable name of an SDK error: transport failures and timeouts are retryable; service errors
/// are classified by their code (throttling and 5xx are retryable).
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorName {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorName::Retryable
        }
        SdkError::ConstructionFailure(_) => ErrorName::Internal,
        SdkError::ServiceError(se) => {
            classify_code(se.err().code(), Some(se.raw().status().as_u16()))
        }
        _ => classify_code(err.code(), None),
    }
}

/// An SDK failure reduced to what a report needs: operation, stable name, code, request id and
/// the full error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkFailure {
    pub operation: &'static str,
    pub name: ErrorName,
    pub code: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
}

impl fmt::Display for SdkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(c) = &self.code {
            write!(f, " with {c}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, " (request id {r})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for SdkFailure {}

impl SdkFailure {
    pub fn new<E: ProvideErrorMetadata + std::error::Error + 'static>(
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> SdkFailure {
        SdkFailure {
            operation,
            name: classify(err),
            code: err.code().map(str::to_owned),
            request_id: err.request_id().map(str::to_owned),
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

/// Classifies an SDK error and logs it once, with operation, code and request id.
pub fn log_sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> SdkFailure {
    let failure = SdkFailure::new(operation, err);
    tracing::error!(
        operation,
        error_name = failure.name.as_str(),
        error_code = failure.code.as_deref().unwrap_or("none"),
        request_id = failure.request_id.as_deref().unwrap_or("none"),
        error = %failure.detail,
        "AWS call failed"
    );
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_stable_names() {
        let cases = [
            (Some("ThrottlingException"), Some(400), ErrorName::Retryable),
            (
                Some("RequestLimitExceeded"),
                Some(503),
                ErrorName::Retryable,
            ),
            (Some("SomethingNew"), Some(503), ErrorName::Retryable),
            (None, Some(429), ErrorName::Retryable),
            (
                Some("ConditionalCheckFailedException"),
                Some(400),
                ErrorName::Conflict,
            ),
            (
                Some("ExecutionAlreadyExists"),
                Some(400),
                ErrorName::Conflict,
            ),
            (
                Some("InvalidInstanceID.NotFound"),
                Some(400),
                ErrorName::NotFound,
            ),
            (Some("NoSuchEntity"), Some(404), ErrorName::NotFound),
            (
                Some("InvalidInstanceID.Malformed"),
                Some(400),
                ErrorName::InvalidInput,
            ),
            (
                Some("UnauthorizedOperation"),
                Some(403),
                ErrorName::AccessDenied,
            ),
            (Some("SomethingNew"), Some(400), ErrorName::Internal),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify_code(code, status), want, "{code:?} {status:?}");
        }
    }
}
