//! What the containment and evidence actions share: their error, the report being built, and
//! the protected-principal check.

use ir_core::action::{ActionReport, Change, ChangeStatus, Outcome};
use ir_core::config::Mode;
use ir_core::{ErrorName, Named};
use thiserror::Error;

use ir_aws::SdkFailure;
use ir_aws::store::{StoreError, VerifyError};

/// The error of every action function.
#[derive(Debug, Error)]
pub enum ActionError {
    /// The request is malformed or does not fit the action (wrong resource kind, missing field).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A resource the request names does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The target is a protected principal; nothing was changed.
    #[error("refused: {0}")]
    Protected(String),
    /// The state belongs to someone else (another incident's containment, an unreadable record).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The function's configuration is wrong (missing bucket name, invalid config).
    #[error("configuration: {0}")]
    Configuration(String),
    /// An AWS call failed; classified by its error code.
    #[error(transparent)]
    Aws(#[from] SdkFailure),
    /// An enforce request the suite's records do not authorize (no approval, not the incident's
    /// resource, a dry-run plan); nothing was changed.
    #[error("not approved: {0}")]
    NotApproved(String),
    /// The plan differs from the one approved; nothing was changed.
    #[error("plan changed: {0}")]
    PlanChanged(String),
    /// The change was made but reading it back showed it did not hold.
    #[error("verification failed: {0}")]
    Verification(String),
    /// A chat or ticketing service refused or did not answer (its stable error name and
    /// message; never a secret).
    #[error("{service} delivery failed: {name}: {message}")]
    Delivery {
        service: &'static str,
        name: &'static str,
        message: String,
    },
    /// No session where the resource is: its account is not allowed, the member role could not
    /// be assumed, the region is not enabled. Nothing was read or changed there.
    #[error(transparent)]
    Member(#[from] ir_aws::member::MemberError),
    /// A failure after some changes were made: the report says exactly which.
    #[error("{cause}; changes already made: {}", summary(done))]
    Incomplete {
        cause: Box<ActionError>,
        done: Box<ActionReport>,
    },
}

fn summary(done: &ActionReport) -> String {
    let applied: Vec<String> = done
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .map(|c| format!("{} {}", c.target, c.attribute))
        .collect();
    if applied.is_empty() {
        "none".to_owned()
    } else {
        applied.join(", ")
    }
}

impl Named for ActionError {
    fn error_name(&self) -> ErrorName {
        match self {
            ActionError::InvalidInput(_) => ErrorName::InvalidInput,
            ActionError::NotFound(_) => ErrorName::NotFound,
            ActionError::Protected(_) => ErrorName::Protected,
            ActionError::Conflict(_) => ErrorName::Conflict,
            ActionError::Configuration(_) => ErrorName::Configuration,
            ActionError::Aws(f) => f.name,
            ActionError::Verification(_) => ErrorName::VerificationFailed,
            ActionError::NotApproved(_) => ErrorName::NotApproved,
            ActionError::PlanChanged(_) => ErrorName::PlanChanged,
            ActionError::Delivery { .. } => ErrorName::DeliveryFailed,
            ActionError::Member(e) => e.error_name(),
            ActionError::Incomplete { cause, .. } => cause.error_name(),
        }
    }
}

impl ir_core::Refusal for ActionError {
    fn invalid_input(why: String) -> ActionError {
        ActionError::InvalidInput(why)
    }
}

impl ActionError {
    /// Wraps a failure with the changes made before it, when there were any.
    pub fn after(self, done: &ActionReport) -> ActionError {
        if done
            .changes
            .iter()
            .any(|c| c.status == ChangeStatus::Applied)
        {
            ActionError::Incomplete {
                cause: Box::new(self),
                done: Box::new(done.clone()),
            }
        } else {
            self
        }
    }

    /// An AWS `NotFound` failure becomes a plain `NotFound` naming the resource.
    pub fn not_found_as(self, what: impl FnOnce() -> String) -> ActionError {
        match self {
            ActionError::Aws(f) if f.name == ErrorName::NotFound => {
                ActionError::NotFound(format!("{} ({})", what(), f))
            }
            other => other,
        }
    }
}

/// An action report under construction.
#[derive(Debug)]
pub struct ReportBuilder {
    report: ActionReport,
    call_mark: usize,
}

impl ReportBuilder {
    pub fn new(
        incident_id: &str,
        step_id: &str,
        action: &str,
        mode: Mode,
        call_mark: usize,
    ) -> ReportBuilder {
        ReportBuilder {
            report: ActionReport {
                incident_id: incident_id.to_owned(),
                step_id: step_id.to_owned(),
                action: action.to_owned(),
                mode,
                outcome: Outcome::Planned,
                changes: Vec::new(),
                record: None,
                artifacts: None,
                notes: Vec::new(),
                aws_calls: 0,
            },
            call_mark,
        }
    }

    pub fn mode(&self) -> Mode {
        self.report.mode
    }

    /// Records a change: `Unchanged` when before == after, else `Planned` in dry-run and
    /// `Applied` in enforce (call it after the change succeeded).
    pub fn change(
        &mut self,
        target: impl Into<String>,
        attribute: impl Into<String>,
        before: serde_json::Value,
        after: serde_json::Value,
    ) {
        let status = if before == after {
            ChangeStatus::Unchanged
        } else if self.report.mode == Mode::DryRun {
            ChangeStatus::Planned
        } else {
            ChangeStatus::Applied
        };
        self.report.changes.push(Change {
            target: target.into(),
            attribute: attribute.into(),
            before,
            after,
            status,
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.report.notes.push(note.into());
    }

    pub fn report_mut(&mut self) -> &mut ActionReport {
        &mut self.report
    }

    /// The report so far (for an error that must say what was already done).
    pub fn snapshot(&self, calls: &ir_aws::CallLog) -> ActionReport {
        let mut r = self.report.clone();
        r.aws_calls = calls.count_since(self.call_mark);
        r
    }

    /// Finishes: the outcome follows from the changes; the call count from the log.
    pub fn finish(mut self, calls: &ir_aws::CallLog) -> ActionReport {
        let any_change = self
            .report
            .changes
            .iter()
            .any(|c| c.status != ChangeStatus::Unchanged);
        self.report.outcome = match (any_change, self.report.mode) {
            (false, _) => Outcome::AlreadyInPlace,
            (true, Mode::DryRun) => Outcome::Planned,
            (true, Mode::Enforce) => Outcome::Applied,
        };
        self.report.aws_calls = calls.count_since(self.call_mark);
        self.report
    }
}

impl ActionError {
    /// An SDK failure, logged once here with operation, code and request id.
    pub fn sdk<E>(
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> ActionError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        ActionError::Aws(ir_aws::log_sdk_error(operation, &err))
    }
}

impl From<StoreError> for ActionError {
    /// The same stable name on the other side.
    fn from(e: StoreError) -> ActionError {
        match e {
            StoreError::InvalidInput(m) => ActionError::InvalidInput(m),
            e @ StoreError::IllegalTransition { .. } => ActionError::InvalidInput(e.to_string()),
            StoreError::NotFound(m) => ActionError::NotFound(m),
            StoreError::Conflict(m) => ActionError::Conflict(m),
            e @ StoreError::Corrupt { .. } => ActionError::Conflict(e.to_string()),
            StoreError::Configuration(m) => ActionError::Configuration(m),
            StoreError::Verification(m) => ActionError::Verification(m),
            StoreError::Aws(f) => ActionError::Aws(f),
            StoreError::Internal { operation, detail } => ActionError::Aws(SdkFailure {
                operation,
                name: ErrorName::Internal,
                code: None,
                request_id: None,
                detail,
            }),
        }
    }
}

impl From<VerifyError> for ActionError {
    fn from(e: VerifyError) -> ActionError {
        match e {
            VerifyError::Store(e) => e.into(),
            other => ActionError::Verification(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use ir_core::incident::Status;

    use super::*;

    #[test]
    fn names_survive_conversion() {
        let cases = [
            StoreError::InvalidInput("x".into()),
            StoreError::NotFound("x".into()),
            StoreError::IllegalTransition {
                incident_id: "inc-0".into(),
                from: Status::Resolved,
                to: Status::Triage,
            },
            StoreError::Conflict("x".into()),
            StoreError::Corrupt {
                what: "x".into(),
                why: "y".into(),
            },
            StoreError::Configuration("x".into()),
            StoreError::Verification("x".into()),
            StoreError::Internal {
                operation: "dynamodb:PutItem",
                detail: "x".into(),
            },
        ];
        for e in cases {
            let name = e.error_name();
            assert_eq!(ActionError::from(e).error_name(), name);
        }
    }
}
