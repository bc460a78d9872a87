//! The Slack client: the Web API with a bot token (`chat.postMessage`, `chat.update`) or an
//! incoming webhook (post only).
//!
//! The Web API answers HTTP 200 with `{"ok": false, "error": "channel_not_found"}` for most
//! errors: `ok: false` is an error here ([`SlackError::Api`], or [`SlackError::Unauthorized`]
//! for the authentication errors). Retries follow [`RetryPolicy`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{self, SendError, excerpt};
use crate::retry::{RetryPolicy, Sleep, TokioSleep};
use crate::secret::Secret;
use crate::slack::blocks::SlackMessage;

/// Slack's Web API.
pub const SLACK_API_BASE: &str = "https://slack.com/api";

/// What Slack's Web API expects of a JSON body.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The default time one attempt may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `error` values of `ok: false` answers that mean the token is not accepted.
const AUTH_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
];

/// Why a Slack call failed. Never carries a token or a webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429 with no attempt or wait left; `retry_after`: what Slack last asked for.
    #[error("rate limited by Slack after {attempts} attempt(s){}", retry_after.map(|d| format!(", asked to wait {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        attempts: u32,
    },
    /// The token (or webhook) is not accepted: `invalid_auth`, `token_revoked`, a removed
    /// webhook, …
    #[error("Slack refused the credentials: {error}")]
    Unauthorized { error: String },
    /// `ok: false` (or a webhook's error text), with Slack's error string and, when given, its
    /// `response_metadata.messages` (which say which block is invalid).
    #[error("Slack answered {error}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Api {
        error: String,
        detail: Option<String>,
    },
    /// An HTTP status other than 2xx, 429 and 5xx, with no Slack error in the body.
    #[error("Slack answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// 5xx on the last attempt.
    #[error("Slack answered HTTP {status} after {attempts} attempt(s)")]
    Server { status: u16, attempts: u32 },
    /// No answer on the last attempt (connection, timeout).
    #[error("Slack could not be reached after {attempts} attempt(s): {detail}")]
    Transport { detail: String, attempts: u32 },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from Slack: {detail}")]
    BadResponse { detail: String },
    /// Something the transport cannot do (an incoming webhook cannot update a message).
    #[error("an incoming webhook cannot {what}")]
    Unsupported { what: &'static str },
    /// The client cannot be built as configured.
    #[error("invalid Slack client configuration: {detail}")]
    InvalidConfig { detail: String },
}

impl SlackError {
    /// A stable name, for logs, metrics and error payloads.
    pub fn name(&self) -> &'static str {
        match self {
            SlackError::RateLimited { .. } => "RateLimited",
            SlackError::Unauthorized { .. } => "Unauthorized",
            SlackError::Api { .. } => "SlackApiError",
            SlackError::Http { .. } => "HttpError",
            SlackError::Server { .. } => "ServerError",
            SlackError::Transport { .. } => "Transport",
            SlackError::BadResponse { .. } => "BadResponse",
            SlackError::Unsupported { .. } => "Unsupported",
            SlackError::InvalidConfig { .. } => "InvalidConfig",
        }
    }

    /// Whether the same call may succeed later (rate limit, server or transport trouble).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SlackError::RateLimited { .. }
                | SlackError::Server { .. }
                | SlackError::Transport { .. }
        )
    }
}

impl From<SendError> for SlackError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::RateLimited {
                retry_after,
                attempts,
            } => SlackError::RateLimited {
                retry_after,
                attempts,
            },
            SendError::Server { status, attempts } => SlackError::Server {
                status: status.as_u16(),
                attempts,
            },
            SendError::Transport { detail, attempts } => SlackError::Transport { detail, attempts },
        }
    }
}

/// A message in a channel: where `chat.update` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    /// The channel id (`C…`), as Slack answered.
    pub channel: String,
    /// The message's timestamp, its id within the channel.
    pub ts: String,
}

/// What posting gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// Posted through the Web API: the message can be updated.
    Message(MessageRef),
    /// Posted through an incoming webhook: Slack says nothing of the message.
    Webhook,
}

impl Posted {
    /// The message, when the Web API posted it.
    pub fn message(&self) -> Option<&MessageRef> {
        match self {
            Posted::Message(m) => Some(m),
            Posted::Webhook => None,
        }
    }
}

#[derive(Clone)]
enum Transport {
    WebApi { token: Secret, base_url: String },
    Webhook { url: Secret },
}

/// A Slack client. Cheap to clone; `Debug` shows the transport and never the token or URL.
#[derive(Clone)]
pub struct SlackClient {
    transport: Transport,
    http: reqwest::Client,
    retry: RetryPolicy,
    sleep: Arc<dyn Sleep>,
}

impl fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SlackClient");
        match &self.transport {
            Transport::WebApi { base_url, .. } => d
                .field("transport", &"web-api")
                .field("base_url", base_url)
                .field("token", &"<redacted>"),
            Transport::Webhook { .. } => d
                .field("transport", &"incoming-webhook")
                .field("url", &"<redacted>"),
        };
        d.field("retry", &self.retry).finish()
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, SlackError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("ir-chat/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SlackError::InvalidConfig {
            detail: http::describe(e),
        })
}

/// Whether `s` can be sent in a header as is (visible ASCII, no space).
fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Deserialize)]
struct ApiAnswer {
    ok: Option<bool>,
    error: Option<String>,
    channel: Option<String>,
    ts: Option<String>,
    response_metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    messages: Vec<String>,
}

impl SlackClient {
    /// A Web API client with a bot token (`xoxb-…`), on [`SLACK_API_BASE`].
    pub fn web_api(bot_token: Secret) -> Result<Self, SlackError> {
        if !header_safe(bot_token.expose()) {
            return Err(SlackError::InvalidConfig {
                detail: "the bot token is empty or has characters a header cannot carry".to_owned(),
            });
        }
        Ok(Self {
            transport: Transport::WebApi {
                token: bot_token,
                base_url: SLACK_API_BASE.to_owned(),
            },
            http: http_client(DEFAULT_TIMEOUT)?,
            retry: RetryPolicy::default(),
            sleep: Arc::new(TokioSleep),
        })
    }

    /// An incoming-webhook client. The URL is a credential: it is kept as a [`Secret`].
    pub fn webhook(url: Secret) -> Result<Self, SlackError> {
        let ok = reqwest::Url::parse(url.expose())
            .map(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(SlackError::InvalidConfig {
                detail: "the incoming-webhook URL is not an http(s) URL".to_owned(),
            });
        }
        Ok(Self {
            transport: Transport::Webhook { url },
            http: http_client(DEFAULT_TIMEOUT)?,
            retry: RetryPolicy::default(),
            sleep: Arc::new(TokioSleep),
        })
    }

    /// Another Web API base URL (`https://slack.com/api` otherwise), for tests and proxies.
    /// No effect on a webhook client.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        if let Transport::WebApi { base_url: b, .. } = &mut self.transport {
            *b = base_url.into().trim_end_matches('/').to_owned();
        }
        self
    }

    /// The retry rules ([`RetryPolicy::default`] otherwise).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How the client waits between attempts ([`TokioSleep`] otherwise).
    pub fn with_sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.sleep = sleep;
        self
    }

    /// The time one attempt may take (10 s otherwise).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, SlackError> {
        self.http = http_client(timeout)?;
        Ok(self)
    }

    /// Whether the client can update messages (Web API) or only post (webhook).
    pub fn can_update(&self) -> bool {
        matches!(self.transport, Transport::WebApi { .. })
    }

    /// Posts `message` to `channel` (an id, `C…`, or a name the bot can post to).
    ///
    /// Web API: `chat.postMessage`, giving back the channel id and the message's `ts`. Webhook:
    /// the webhook's own channel, fixed when it was created; `channel` is not sent.
    pub async fn post_message(
        &self,
        channel: &str,
        message: &SlackMessage,
    ) -> Result<Posted, SlackError> {
        match &self.transport {
            Transport::WebApi { token, base_url } => {
                let body = json!({
                    "channel": channel,
                    "text": message.text,
                    "blocks": message.blocks,
                    "unfurl_links": false,
                    "unfurl_media": false,
                });
                let url = format!("{base_url}/chat.postMessage");
                let at = self
                    .web_api_call("chat.postMessage", &url, token, &body)
                    .await?;
                Ok(Posted::Message(at))
            }
            Transport::Webhook { url } => {
                let body = json!({
                    "text": message.text,
                    "blocks": message.blocks,
                    "unfurl_links": false,
                    "unfurl_media": false,
                });
                self.webhook_call(url, &body).await?;
                Ok(Posted::Webhook)
            }
        }
    }

    /// Replaces the message at `at` with `message` (`chat.update`); Web API only.
    pub async fn update_message(
        &self,
        at: &MessageRef,
        message: &SlackMessage,
    ) -> Result<MessageRef, SlackError> {
        let Transport::WebApi { token, base_url } = &self.transport else {
            return Err(SlackError::Unsupported {
                what: "update a message",
            });
        };
        let body = json!({
            "channel": at.channel,
            "ts": at.ts,
            "text": message.text,
            "blocks": message.blocks,
        });
        let url = format!("{base_url}/chat.update");
        self.web_api_call("chat.update", &url, token, &body).await
    }

    async fn web_api_call(
        &self,
        method: &'static str,
        url: &str,
        token: &Secret,
        body: &Value,
    ) -> Result<MessageRef, SlackError> {
        let reply = http::send(&self.retry, self.sleep.as_ref(), method, || {
            self.http
                .post(url)
                .bearer_auth(token.expose())
                .header(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))
                .json(body)
        })
        .await?;
        let answer: Option<ApiAnswer> = serde_json::from_slice(&reply.body).ok();
        if !reply.status.is_success() {
            return Err(match (reply.status, answer.and_then(|a| a.error)) {
                (_, Some(error)) if AUTH_ERRORS.contains(&error.as_str()) => {
                    SlackError::Unauthorized { error }
                }
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, error) => {
                    SlackError::Unauthorized {
                        error: error.unwrap_or_else(|| format!("HTTP {}", reply.status.as_u16())),
                    }
                }
                (_, Some(error)) => SlackError::Api {
                    error,
                    detail: None,
                },
                (status, None) => SlackError::Http {
                    status: status.as_u16(),
                    body: reply.excerpt(200),
                },
            });
        }
        let Some(answer) = answer else {
            return Err(SlackError::BadResponse {
                detail: format!("{method}: the body is not a JSON object"),
            });
        };
        match answer.ok {
            Some(true) => {}
            Some(false) => {
                let error = answer.error.unwrap_or_else(|| "unknown_error".to_owned());
                tracing::warn!(method, error = %error, "Slack answered ok: false");
                if AUTH_ERRORS.contains(&error.as_str()) {
                    return Err(SlackError::Unauthorized { error });
                }
                let detail = answer
                    .response_metadata
                    .map(|m| m.messages.join("; "))
                    .filter(|d| !d.is_empty())
                    .map(|d| excerpt(d.as_bytes(), 500));
                return Err(SlackError::Api { error, detail });
            }
            None => {
                return Err(SlackError::BadResponse {
                    detail: format!("{method}: no `ok` in the answer"),
                });
            }
        }
        match (answer.channel, answer.ts) {
            (Some(channel), Some(ts)) if !channel.is_empty() && !ts.is_empty() => {
                Ok(MessageRef { channel, ts })
            }
            _ => Err(SlackError::BadResponse {
                detail: format!("{method}: ok, but no channel or ts"),
            }),
        }
    }

    async fn webhook_call(&self, url: &Secret, body: &Value) -> Result<(), SlackError> {
        let reply = http::send(&self.retry, self.sleep.as_ref(), "incoming-webhook", || {
            self.http.post(url.expose()).json(body)
        })
        .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        // Webhooks answer a short error string: `invalid_payload`, `channel_not_found`,
        // `no_service` (the webhook was removed), `invalid_token`, …
        let error = reply.excerpt(100);
        tracing::warn!(status = reply.status.as_u16(), error = %error, "incoming webhook refused the message");
        let error = if error.is_empty() {
            format!("HTTP {}", reply.status.as_u16())
        } else {
            error
        };
        Err(match reply.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                if error == "invalid_token" || reply.status == StatusCode::UNAUTHORIZED =>
            {
                SlackError::Unauthorized { error }
            }
            _ if error == "no_service" || error == "no_team" || error == "invalid_token" => {
                SlackError::Unauthorized { error }
            }
            _ => SlackError::Api {
                error,
                detail: None,
            },
        })
    }
}
