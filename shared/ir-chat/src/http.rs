//! One request sent under a [`RetryPolicy`]; shared by the Slack and Jira clients.
//!
//! Nothing here logs or returns a URL, a header or a request body: an incoming-webhook URL is a
//! credential, and bodies can quote incident data.

use std::error::Error as _;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::retry::{RetryPolicy, Sleep};

/// Bodies past this are cut (and then fail to parse): no answer of these APIs is near it.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The longest `Retry-After` read (a day); anything longer is read as a day.
const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// A final answer: 2xx, or a 4xx other than 429.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text, cut to `max` characters, for an error message.
    pub fn excerpt(&self, max: usize) -> String {
        excerpt(&self.body, max)
    }
}

pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Why a call ended without a final answer.
#[derive(Debug)]
pub(crate) enum SendError {
    /// 429, and no attempt or no wait left. `retry_after`: the last wait asked for.
    RateLimited {
        retry_after: Option<Duration>,
        attempts: u32,
    },
    /// 5xx on the last attempt.
    Server { status: StatusCode, attempts: u32 },
    /// No answer on the last attempt.
    Transport { detail: String, attempts: u32 },
}

/// `Retry-After` in seconds (the form Slack and Jira send); an HTTP date is not read.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = v.parse().ok()?;
    Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)))
}

/// A transport error without its URL, with its causes.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut out = kind.to_owned();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Sends the request `build` makes, again as `policy` allows. `op` names the call in logs.
pub(crate) async fn send<F>(
    policy: &RetryPolicy,
    sleep: &dyn Sleep,
    op: &'static str,
    build: F,
) -> Result<Reply, SendError>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut waited = Duration::ZERO;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = match build().send().await {
            Ok(resp) => {
                let status = resp.status();
                let after = retry_after(resp.headers());
                match read_body(resp).await {
                    Ok(body) => Ok((status, after, body)),
                    Err(e) => Err(describe(e)),
                }
            }
            Err(e) => Err(describe(e)),
        };
        // What to do next: Ok(final) or Err((wait, error if no retry)).
        let (wait, give_up) = match outcome {
            Ok((status, after, _)) if status == StatusCode::TOO_MANY_REQUESTS => (
                after.unwrap_or_else(|| policy.backoff(attempt)),
                SendError::RateLimited {
                    retry_after: after,
                    attempts: attempt,
                },
            ),
            Ok((status, after, _)) if status.is_server_error() => (
                after.unwrap_or_else(|| policy.backoff(attempt)),
                SendError::Server {
                    status,
                    attempts: attempt,
                },
            ),
            Ok((status, _, body)) => return Ok(Reply { status, body }),
            Err(detail) => (
                policy.backoff(attempt),
                SendError::Transport {
                    detail,
                    attempts: attempt,
                },
            ),
        };
        if attempt >= max_attempts || waited.saturating_add(wait) > policy.max_total_wait {
            tracing::warn!(
                op,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                error = give_up.label(),
                "giving up"
            );
            return Err(give_up);
        }
        tracing::info!(
            op,
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            error = give_up.label(),
            "retrying"
        );
        sleep.sleep(wait).await;
        waited = waited.saturating_add(wait);
    }
}

impl SendError {
    fn label(&self) -> &'static str {
        match self {
            SendError::RateLimited { .. } => "rate limited",
            SendError::Server { .. } => "server error",
            SendError::Transport { .. } => "transport error",
        }
    }
}
