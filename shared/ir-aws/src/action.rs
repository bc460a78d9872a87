//! What the containment and evidence actions share: their error, the report being built, and
//! the protected-principal check.

use ir_core::action::{ActionReport, Change, ChangeStatus, Outcome};
use ir_core::config::Mode;
use ir_core::{ErrorName, Named};
use lambda_runtime::Diagnostic;
use thiserror::Error;

use crate::sdk::SdkFailure;

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
    /// The change was made but reading it back showed it did not hold.
    #[error("verification failed: {0}")]
    Verification(String),
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
            ActionError::Incomplete { cause, .. } => cause.error_name(),
        }
    }
}

impl From<ActionError> for Diagnostic {
    fn from(e: ActionError) -> Diagnostic {
        crate::diagnostic(e.error_name(), &e)
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
    pub fn snapshot(&self, calls: &crate::calls::CallLog) -> ActionReport {
        let mut r = self.report.clone();
        r.aws_calls = calls.count_since(self.call_mark);
        r
    }

    /// Finishes: the outcome follows from the changes; the call count from the log.
    pub fn finish(mut self, calls: &crate::calls::CallLog) -> ActionReport {
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
        ActionError::Aws(crate::sdk::log_sdk_error(operation, &err))
    }
}

/// The identifying fields every action request carries.
pub trait ActionInput {
    fn incident_id(&self) -> &str;
    fn step_id(&self) -> &str;
    fn finding_id(&self) -> &str;
}

impl ActionInput for ir_core::action::ContainmentRequest {
    fn incident_id(&self) -> &str {
        &self.incident_id
    }
    fn step_id(&self) -> &str {
        &self.step_id
    }
    fn finding_id(&self) -> &str {
        &self.finding_id
    }
}

impl ActionInput for ir_core::action::EvidenceRequest {
    fn incident_id(&self) -> &str {
        &self.incident_id
    }
    fn step_id(&self) -> &str {
        &self.step_id
    }
    fn finding_id(&self) -> &str {
        &self.finding_id
    }
}

impl ActionInput for ir_core::action::ReleaseRequest {
    fn incident_id(&self) -> &str {
        &self.incident_id
    }
    fn step_id(&self) -> &str {
        &self.step_id
    }
    fn finding_id(&self) -> &str {
        ""
    }
}

/// Runs one action invocation: checks the payload, runs `f` inside a span carrying the incident,
/// finding and step ids, and logs the outcome or the error once.
pub async fn perform<T, F, Fut>(
    action: &'static str,
    incoming: crate::payload::Checked<T>,
    f: F,
) -> Result<ActionReport, ActionError>
where
    T: ActionInput,
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = Result<ActionReport, ActionError>>,
{
    use tracing::Instrument;
    let input = match incoming.value {
        Ok(v) => v,
        Err(why) => {
            let e = ActionError::InvalidInput(why);
            tracing::warn!(action, error_name = e.error_name().as_str(), error = %e, "action refused");
            return Err(e);
        }
    };
    if !ir_core::correlate::is_incident_id(input.incident_id()) {
        let e =
            ActionError::InvalidInput(format!("`{}` is not an incident id", input.incident_id()));
        tracing::warn!(action, error_name = e.error_name().as_str(), error = %e, "action refused");
        return Err(e);
    }
    let span = tracing::info_span!(
        "action",
        action,
        incident_id = %input.incident_id(),
        finding_id = %input.finding_id(),
        step_id = %input.step_id()
    );
    let result = f(input).instrument(span.clone()).await;
    let _guard = span.enter();
    match &result {
        Ok(r) => tracing::info!(
            outcome = ?r.outcome,
            mode = r.mode.as_str(),
            changes = r.changes.len(),
            aws_calls = r.aws_calls,
            "action finished"
        ),
        Err(e) => tracing::warn!(error_name = e.error_name().as_str(), error = %e, "action failed"),
    }
    result
}

/// The Lambda runtime loop of an action function: every invocation goes through [`perform`]
/// with the clients and the state read once at init (configuration, settings).
pub async fn serve<T, S, F, Fut>(
    action: &'static str,
    clients: crate::Clients,
    state: S,
    f: F,
) -> Result<(), lambda_runtime::Error>
where
    T: ActionInput + serde::de::DeserializeOwned + Send + 'static,
    S: Send + Sync + 'static,
    F: Fn(crate::Clients, std::sync::Arc<S>, T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<ActionReport, ActionError>> + Send,
{
    let state = std::sync::Arc::new(state);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<crate::payload::Checked<T>>| {
            let (clients, state, f) = (clients.clone(), std::sync::Arc::clone(&state), f.clone());
            // Boxed: an action's future is large, and the runtime's own futures nest around it.
            Box::pin(
                async move { perform(action, event.payload, |req| f(clients, state, req)).await },
            )
        },
    ))
    .await
}
