//! Persistence of the orchestration: incidents and their correlation keys, the audit chain, and
//! the approvals that wait on Step Functions task tokens — in DynamoDB, with the audit chain's
//! head anchored in the Object Lock evidence bucket.
//!
//! - [`IncidentStore`]: the correlation rule of ARCHITECTURE.md applied atomically
//!   (`TransactWriteItems`), the incident's status transitions and the record of what was decided
//!   and done.
//! - [`AuditLog`]: the append-only hash chain of `ir_core::audit`, one item per record, appended
//!   with a conditional put (no overwrite, no gap), anchored in the evidence bucket and verified
//!   against its anchors.
//! - [`IsolationHolds`]: which incident isolated an instance and the originals its release
//!   restores (keys `isolation#…`), written once before the instance changes.
//! - [`ApprovalStore`]: approval requests holding the task token of a waiting execution, decided
//!   exactly once.
//! - [`schema`]: the four tables, defined once ([`schema::TABLES`]), and [`create_tables`].
//!
//! Rules every store follows:
//! - every write is conditional: creations on the key not existing, updates of an incident on
//!   its `version` (optimistic locking), decisions on the approval still being pending;
//! - a lost race is re-read and retried a bounded number of times with jittered backoff, then
//!   reported as `Conflict`; nothing is left half-written (several items change together only
//!   inside one transaction);
//! - a retry of a write that already landed (the SDK retries a request whose response was lost)
//!   is recognized by a per-call write token stored with the change, and reported as the success
//!   it was rather than as a conflict;
//! - reads that decide a write are strongly consistent; queries on a global secondary index
//!   cannot be (DynamoDB refuses `ConsistentRead` there), which only the history queries use;
//! - times are stored as fixed-width UTC RFC 3339 strings (nanoseconds, `Z`), so that string
//!   order is time order in sort keys; the approvals' TTL attribute is epoch seconds (N), as
//!   DynamoDB's TTL requires;
//! - errors are a closed [`StoreError`] with stable names; SDK errors are logged once (with code
//!   and request id) through [`crate::sdk::log_sdk_error`]; no task token reaches a log line or a
//!   `Debug` output ([`TaskToken`]).

mod approvals;
mod audit;
mod expr;
mod incidents;
mod isolation;
mod item;
mod marks;
mod replays;
mod retry;
pub mod schema;
mod slots;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ir_core::incident::Status;
use ir_core::{ErrorName, Named};
use thiserror::Error;
use time::OffsetDateTime;

pub use approvals::{
    Approval, ApprovalRequest, ApprovalStatus, ApprovalStore, Ballot, Decided, TaskToken, Vote,
};
pub use audit::{AuditLog, VerifyError};
pub use incidents::{Incident, IncidentPatch, IncidentStore, Ingested, LastError};
pub use isolation::{HOLD_PREFIX, IsolationHold, IsolationHolds, hold_key};
pub use marks::{
    ANNOUNCED_PREFIX, JIRA_ISSUE_PREFIX, LEADERSHIP_PREFIX, Marks, announced_key, jira_issue_key,
    leadership_key,
};
pub use replays::{Replays, SLACK_REQUEST_PREFIX};
pub use schema::{TableNames, create_tables};
pub use slots::{PlaybookSlots, SLOTS_KEY};

use crate::sdk::SdkFailure;

/// The error of every store operation.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The arguments cannot be stored (malformed incident id, empty actor, bad time).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The incident or approval named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A status transition `Status::can_become` refuses.
    #[error("incident {incident_id}: {from} cannot become {to}")]
    IllegalTransition {
        incident_id: String,
        from: Status,
        to: Status,
    },
    /// The state is not what the caller expected (a stale `from` status, an approval already
    /// decided), or concurrent writers kept winning until the attempts ran out.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored item does not have the shape this code writes (edited by hand, or by a newer
    /// writer): never guessed at.
    #[error("unreadable {what}: {why}")]
    Corrupt { what: String, why: String },
    /// The settings the store was given are wrong (an Object Lock mode that does not exist, an
    /// evidence bucket without Object Lock).
    #[error("configuration: {0}")]
    Configuration(String),
    /// A write succeeded but reading it back showed it did not hold (an anchor not locked).
    #[error("verification failed: {0}")]
    Verification(String),
    /// An AWS call failed; classified by its error code.
    #[error(transparent)]
    Aws(#[from] SdkFailure),
    /// A request could not be built (a bug).
    #[error("{operation}: {detail}")]
    Internal {
        operation: &'static str,
        detail: String,
    },
}

impl Named for StoreError {
    fn error_name(&self) -> ErrorName {
        match self {
            StoreError::InvalidInput(_) | StoreError::IllegalTransition { .. } => {
                ErrorName::InvalidInput
            }
            StoreError::NotFound(_) => ErrorName::NotFound,
            // An unreadable record is treated like state that belongs to someone else: not
            // retried, not overwritten (the same convention as `ActionError::Conflict`).
            StoreError::Conflict(_) | StoreError::Corrupt { .. } => ErrorName::Conflict,
            StoreError::Configuration(_) => ErrorName::Configuration,
            StoreError::Verification(_) => ErrorName::VerificationFailed,
            StoreError::Aws(f) => f.name,
            StoreError::Internal { .. } => ErrorName::Internal,
        }
    }
}

impl StoreError {
    /// An SDK failure, logged once with operation, code and request id.
    pub(crate) fn sdk<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        StoreError::Aws(crate::sdk::log_sdk_error(operation, err))
    }

    /// A request builder refused its input.
    pub(crate) fn build(
        operation: &'static str,
        err: aws_smithy_types::error::operation::BuildError,
    ) -> StoreError {
        StoreError::Internal {
            operation,
            detail: err.to_string(),
        }
    }
}

/// Logs a failure built here rather than by [`crate::sdk::log_sdk_error`] (a cancellation
/// reason refined, a redacted message), with the same fields.
pub fn log_failure(f: &SdkFailure) {
    tracing::error!(
        operation = f.operation,
        error_name = f.name.as_str(),
        error_code = f.code.as_deref().unwrap_or("none"),
        request_id = f.request_id.as_deref().unwrap_or("none"),
        error = %f.detail,
        "AWS call failed"
    );
}

/// Fixed-width UTC RFC 3339 with nanoseconds: lexical order is time order.
const STAMP: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
);

/// A time as stored.
pub(crate) fn stamp(t: OffsetDateTime) -> Result<String, StoreError> {
    t.to_offset(time::UtcOffset::UTC)
        .format(STAMP)
        .map_err(|e| StoreError::InvalidInput(format!("time {t} cannot be stored: {e}")))
}

/// A stored time read back (any RFC 3339 form is accepted).
pub(crate) fn parse_stamp(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

/// Refuses anything but an incident id (`inc-` + 20 hex digits): the ids are keys and S3
/// prefixes.
pub(crate) fn check_incident_id(id: &str) -> Result<(), StoreError> {
    if ir_core::correlate::is_incident_id(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "`{id}` is not an incident id"
        )))
    }
}

/// Puts `item` into `table` if `condition`'s condition holds: `true` when written, `false` when
/// the condition failed (another writer came first, the key is there).
async fn put_if(
    clients: &crate::Clients,
    table: &str,
    item: item::Item,
    condition: &expr::Expr,
) -> Result<bool, StoreError> {
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    let put = clients
        .dynamodb()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.condition_expression())
        .set_expression_attribute_names(condition.names())
        .set_expression_attribute_values(condition.values())
        .send()
        .await;
    match put {
        Ok(_) => Ok(true),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(PutItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(err) => Err(StoreError::sdk("dynamodb:PutItem", &err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stamps_are_fixed_width_utc_and_sort_as_time() {
        let a = datetime!(2026-11-20 10:00:00 UTC);
        let b = datetime!(2026-11-20 10:00:00.5 UTC);
        let c = datetime!(2026-11-20 12:00:01 +02:00);
        let (sa, sb, sc) = (stamp(a).unwrap(), stamp(b).unwrap(), stamp(c).unwrap());
        assert_eq!(sa, "2026-11-20T10:00:00.000000000Z");
        assert_eq!(sb, "2026-11-20T10:00:00.500000000Z");
        assert_eq!(sc, "2026-11-20T10:00:01.000000000Z");
        assert!(sa < sb && sb < sc);
        for (t, s) in [(a, sa), (b, sb), (c, sc)] {
            assert_eq!(parse_stamp(&s).unwrap(), t);
        }
    }

    /// `detail` and decisions are stored as JSON text: floats must come back bit for bit, or a
    /// chain would fail to verify. serde_json parses floats exactly only with its
    /// `float_roundtrip` feature (enabled in this build through a dependency); this test fails if
    /// that ever stops being true.
    #[test]
    fn json_floats_round_trip_exactly() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let v = serde_json::json!({ "f": f });
            let text = ir_core::audit::canonical_json(&v);
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(ir_core::audit::canonical_json(&back), text, "{f:e}");
            assert_eq!(back["f"].as_f64().unwrap().to_bits(), f.to_bits(), "{f:e}");
        }
    }
}
