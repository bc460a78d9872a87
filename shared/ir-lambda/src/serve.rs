//! The Lambda runtime loops: every function's `main` ends in one of these, after reading its
//! configuration and building its clients once at init.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use ir_core::action::{ActionInput, ActionReport};
use ir_core::{Named, Refusal};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::diagnostic::failure;
use crate::payload::Checked;

/// Runs a function: each invocation's payload goes to `handler` with the state read once at
/// init. An error reaches the runtime as a [`Diagnostic`] whose `errorType` is its stable name
/// (what `Retry`/`Catch` in the state machines match), so no function converts errors itself
/// (the runtime's `Diagnostic`).
pub async fn serve<P, O, E, S, F, Fut>(state: S, handler: F) -> Result<(), lambda_runtime::Error>
where
    P: DeserializeOwned + Send + 'static,
    O: Serialize + Send,
    E: Named + Display + Send,
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, P) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send,
{
    let state = Arc::new(state);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<P>| {
        let (state, handler) = (Arc::clone(&state), handler.clone());
        // Boxed: a handler's future can be large, and the runtime's own futures nest around it.
        Box::pin(async move { handler(state, event.payload).await.map_err(|e| failure(&e)) })
    }))
    .await
}

/// Runs one action invocation: checks the payload, runs `f` inside a span carrying the incident,
/// finding and step ids, and logs the outcome or the error once.
pub async fn perform<T, E, F, Fut>(
    action: &'static str,
    incoming: Checked<T>,
    f: F,
) -> Result<ActionReport, E>
where
    T: ActionInput,
    E: Refusal + Named + Display,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<ActionReport, E>>,
{
    let input = match incoming.value {
        Ok(v) => v,
        Err(why) => {
            let e = E::invalid_input(why);
            tracing::warn!(action, error_name = e.error_name().as_str(), error = %e, "action refused");
            return Err(e);
        }
    };
    if !ir_core::correlate::is_incident_id(input.incident_id()) {
        let e = E::invalid_input(format!("`{}` is not an incident id", input.incident_id()));
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

/// The runtime loop of an action function: every invocation goes through [`perform`] with the
/// state read once at init (clients, configuration, settings).
pub async fn serve_action<T, E, S, F, Fut>(
    action: &'static str,
    state: S,
    f: F,
) -> Result<(), lambda_runtime::Error>
where
    T: ActionInput + DeserializeOwned + Send + 'static,
    E: Refusal + Named + Display + Send,
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<ActionReport, E>> + Send,
{
    serve(state, move |state: Arc<S>, incoming: Checked<T>| {
        let f = f.clone();
        async move { perform(action, incoming, |req| f(state, req)).await }
    })
    .await
}
