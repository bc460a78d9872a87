//! Errors as Step Functions sees them.

use std::fmt::Display;

use ir_core::ErrorName;
use lambda_runtime::Diagnostic;

/// A Lambda `Diagnostic` whose `errorType` is the stable name, so that `Retry`/`Catch` in the state
/// machines can match it.
pub fn diagnostic(name: ErrorName, message: impl Display) -> Diagnostic {
    Diagnostic {
        error_type: name.as_str().to_owned(),
        error_message: message.to_string(),
    }
}

/// The `Diagnostic` of any error with a stable name: its `errorType` is the name, its message the
/// error's text. Every function's error reaches the runtime through this.
pub fn failure<E: ir_core::Named + Display>(e: &E) -> Diagnostic {
    diagnostic(e.error_name(), e)
}

/// Logs a function's failure once, at the boundary, with its stable name; passes the result on.
pub fn logged<O, E: ir_core::Named + Display>(
    what: &'static str,
    result: Result<O, E>,
) -> Result<O, E> {
    if let Err(e) = &result {
        tracing::warn!(error_name = e.error_name().as_str(), error = %e, "{what}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_is_the_stable_name() {
        let d = diagnostic(ErrorName::Retryable, "throttled");
        assert_eq!(d.error_type, "Retryable");
        assert_eq!(d.error_message, "throttled");
    }
}
