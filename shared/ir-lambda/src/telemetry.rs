//! Structured JSON logs for the functions.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Targets (and every target whose name starts with one) that are never logged above a level,
/// whatever `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` ask for:
/// - `lambda_runtime` (and `lambda_runtime_api_client`) logs the raw invocation event at TRACE:
///   the approval gate's events carry Step Functions task tokens, and the actions' carry findings;
/// - the SDK's HTTP layers log whole request and response bodies at TRACE: task tokens and
///   credentials would land in the logs.
const CAPS: &[(&str, Level)] = &[
    ("lambda_runtime", Level::DEBUG),
    ("aws_smithy_runtime", Level::INFO),
    ("aws_smithy_http_client", Level::INFO),
    ("hyper", Level::INFO),
    ("h2", Level::INFO),
    ("rustls", Level::INFO),
];

/// Whether an event or span of `target` at `level` may be logged at all (see [`CAPS`]). A less
/// severe level is a greater `Level` (`TRACE > DEBUG > INFO`).
fn within_caps(target: &str, level: &Level) -> bool {
    CAPS.iter()
        .all(|(prefix, max)| !target.starts_with(prefix) || level <= max)
}

/// The level filter: `RUST_LOG` when it is set and valid, else `AWS_LAMBDA_LOG_LEVEL`, else
/// `info`; and never beyond [`CAPS`], which no directive can lift (a more specific directive
/// such as `lambda_runtime::layers=trace` included).
fn filter<S>(rust_log: Option<&str>, lambda_level: Option<&str>) -> impl Filter<S> + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let level = lambda_level.map_or_else(|| "info".to_owned(), str::to_lowercase);
    let env = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    env.and(filter_fn(|meta: &Metadata<'_>| {
        within_caps(meta.target(), meta.level())
    }))
}

/// JSON logs on stdout, one object per line, with the current span's fields (incident id,
/// finding id) on every line. The level comes from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else
/// `info`; the Lambda runtime never logs at TRACE (it would log the raw event, task tokens
/// included) and the SDK's wire-level targets never below INFO, whatever is asked. Lambda adds
/// the timestamp. Safe to call more than once.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_filter(filter(rust_log.as_deref(), lambda_level.as_deref()));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What is logged under `RUST_LOG=rust_log` and `AWS_LAMBDA_LOG_LEVEL=lambda_level` when
    /// the runtime logs a raw event at TRACE and the suite logs at TRACE and DEBUG.
    fn logged(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .without_time()
            .with_writer(move || writer.clone())
            .with_filter(filter(rust_log, lambda_level));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "{\"taskToken\":\"SECRET-1\"}", "raw JSON event received from Lambda");
            tracing::trace!(target: "lambda_runtime_api_client", body = "SECRET-2", "raw");
            tracing::debug!(target: "lambda_runtime::runtime", "runtime-debug");
            tracing::trace!(target: "aws_smithy_runtime::client::http", body = "SECRET-3", "wire");
            tracing::trace!(target: "ir_incident::approval", "suite-trace");
            tracing::debug!(target: "ir_incident::approval", "suite-debug");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_runtime_never_logs_at_trace_whatever_the_settings() {
        for (rust_log, lambda_level) in [
            (Some("trace"), None),
            (
                Some("lambda_runtime=trace,lambda_runtime_api_client=trace"),
                None,
            ),
            (
                Some("lambda_runtime::layers::api_response=trace,trace"),
                None,
            ),
            (Some("[{body}]=trace,trace"), None),
            (None, Some("TRACE")),
            (Some("not a [ valid directive"), Some("trace")),
        ] {
            let logs = logged(rust_log, lambda_level);
            // TRACE was asked for the runtime: it gets DEBUG, never the raw event.
            assert!(
                logs.contains("runtime-debug"),
                "{rust_log:?} {lambda_level:?}: {logs}"
            );
            assert!(
                !logs.contains("SECRET"),
                "{rust_log:?} {lambda_level:?}: {logs}"
            );
        }
    }

    #[test]
    fn trace_stays_available_to_everything_else() {
        for (rust_log, lambda_level) in [(Some("trace"), None), (None, Some("TRACE"))] {
            let logs = logged(rust_log, lambda_level);
            assert!(logs.contains("suite-trace"), "{logs}");
        }
    }

    #[test]
    fn the_default_level_is_info() {
        let logs = logged(None, None);
        assert!(
            !logs.contains("suite-debug") && !logs.contains("runtime-debug"),
            "{logs}"
        );
        let logs = logged(None, Some("DEBUG"));
        assert!(
            logs.contains("suite-debug") && !logs.contains("suite-trace"),
            "{logs}"
        );
    }

    #[test]
    fn caps_are_by_target_prefix_and_level() {
        assert!(!within_caps("lambda_runtime", &Level::TRACE));
        assert!(!within_caps(
            "lambda_runtime_api_client::body",
            &Level::TRACE
        ));
        assert!(within_caps("lambda_runtime", &Level::DEBUG));
        assert!(!within_caps("aws_smithy_runtime::client", &Level::DEBUG));
        assert!(within_caps("ir_lambda::serve", &Level::TRACE));
    }
}
