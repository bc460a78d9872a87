//! Structured JSON logs for the functions.

use tracing_subscriber::EnvFilter;

/// JSON logs on stdout, one object per line, with the current span's fields (incident id,
/// finding id) on every line. The level comes from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else
/// `info`. Lambda adds the timestamp. Safe to call more than once.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| l.to_lowercase())
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}
