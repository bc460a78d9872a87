//! Structured JSON logs for the functions.

use tracing_subscriber::EnvFilter;

/// JSON logs on stdout, one object per line, with the current span's fields (incident id,
/// finding id) on every line. The level comes from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else
/// `info`; the SDK's wire-level targets are capped at INFO so that no body (task token,
/// credential) is ever logged. Lambda adds the timestamp. Safe to call more than once.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| l.to_lowercase())
        .unwrap_or_else(|_| "info".to_owned());
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // The SDK's HTTP layers log whole request and response bodies at TRACE: task tokens and
    // credentials would land in the logs. These targets never go below INFO, whatever is asked.
    for quiet in [
        "aws_smithy_runtime=info",
        "aws_smithy_runtime_api=info",
        "aws_smithy_http_client=info",
        "hyper=info",
        "h2=info",
        "rustls=info",
    ] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}
