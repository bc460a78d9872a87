//! The Jira Cloud REST v3 client: basic auth with an account's email and API token; issue
//! creation made idempotent per incident step by a marker label.
//!
//! [`JiraClient::create_issue_once`] first searches (`POST /rest/api/3/search/jql`) for an issue
//! carrying the step's marker label ([`marker_label`]), and creates one
//! (`POST /rest/api/3/issue`) only when none is found. Jira's search is eventually consistent
//! (an issue created seconds ago may not be found yet), so this guards against the common
//! duplicates (a step retried, a function re-run) but not against two creations seconds apart:
//! callers record the key they get back and pass it on rather than calling again.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{self, Reply, SendError};
use crate::retry::{RetryPolicy, Sleep, TokioSleep};
use crate::secret::Secret;

/// The longest label Jira takes.
pub const MAX_LABEL_CHARS: usize = 255;
/// The longest summary Jira takes.
pub const MAX_SUMMARY_CHARS: usize = 255;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Jira call failed: the status and Jira's own `errorMessages` / `errors`. Never carries
/// the API token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JiraError {
    /// HTTP 429 with no attempt or wait left; `retry_after`: what Jira last asked for.
    #[error("rate limited by Jira after {attempts} attempt(s){}", retry_after.map(|d| format!(", asked to wait {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        attempts: u32,
    },
    /// 401: the email and API token are not accepted.
    #[error("Jira refused the credentials{}", joined(messages))]
    Unauthorized { messages: Vec<String> },
    /// 403: the account may not do this (browse the project, create issues).
    #[error("Jira forbids this{}", joined(messages))]
    Forbidden { messages: Vec<String> },
    /// 404: no such resource (or not visible to the account).
    #[error("Jira found nothing there{}", joined(messages))]
    NotFound { messages: Vec<String> },
    /// Any other refusal (400: a field Jira does not accept), with Jira's messages.
    #[error(
        "Jira answered HTTP {status}{}{}",
        joined(error_messages),
        field_errors(errors)
    )]
    Rejected {
        status: u16,
        error_messages: Vec<String>,
        errors: BTreeMap<String, String>,
    },
    /// 5xx on the last attempt.
    #[error("Jira answered HTTP {status} after {attempts} attempt(s)")]
    Server { status: u16, attempts: u32 },
    /// No answer on the last attempt (connection, timeout).
    #[error("Jira could not be reached after {attempts} attempt(s): {detail}")]
    Transport { detail: String, attempts: u32 },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from Jira: {detail}")]
    BadResponse { detail: String },
    /// The client cannot be built as configured.
    #[error("invalid Jira client configuration: {detail}")]
    InvalidConfig { detail: String },
    /// The issue asked for cannot be sent (no project, no label left after sanitising, …).
    #[error("invalid Jira issue: {detail}")]
    InvalidInput { detail: String },
}

fn joined(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}

fn field_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(" ({})", parts.join("; "))
    }
}

impl JiraError {
    /// A stable name, for logs, metrics and error payloads.
    pub fn name(&self) -> &'static str {
        match self {
            JiraError::RateLimited { .. } => "RateLimited",
            JiraError::Unauthorized { .. } => "Unauthorized",
            JiraError::Forbidden { .. } => "Forbidden",
            JiraError::NotFound { .. } => "NotFound",
            JiraError::Rejected { .. } => "JiraApiError",
            JiraError::Server { .. } => "ServerError",
            JiraError::Transport { .. } => "Transport",
            JiraError::BadResponse { .. } => "BadResponse",
            JiraError::InvalidConfig { .. } => "InvalidConfig",
            JiraError::InvalidInput { .. } => "InvalidInput",
        }
    }

    /// Whether the same call may succeed later (rate limit, server or transport trouble).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            JiraError::RateLimited { .. } | JiraError::Server { .. } | JiraError::Transport { .. }
        )
    }
}

impl From<SendError> for JiraError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::RateLimited {
                retry_after,
                attempts,
            } => JiraError::RateLimited {
                retry_after,
                attempts,
            },
            SendError::Server { status, attempts } => JiraError::Server {
                status: status.as_u16(),
                attempts,
            },
            SendError::Transport { detail, attempts } => JiraError::Transport { detail, attempts },
        }
    }
}

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "message"}}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: BTreeMap<String, Value>,
}

fn refusal(reply: &Reply) -> JiraError {
    let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    let mut messages: Vec<String> = body
        .error_messages
        .iter()
        .map(|m| http::excerpt(m.as_bytes(), 500))
        .collect();
    let errors: BTreeMap<String, String> = body
        .errors
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, http::excerpt(v.as_bytes(), 500))
        })
        .collect();
    if messages.is_empty() && errors.is_empty() {
        let text = reply.excerpt(200);
        if !text.is_empty() {
            messages.push(text);
        }
    }
    match reply.status {
        StatusCode::UNAUTHORIZED => JiraError::Unauthorized { messages },
        StatusCode::FORBIDDEN => JiraError::Forbidden { messages },
        StatusCode::NOT_FOUND => JiraError::NotFound { messages },
        status => JiraError::Rejected {
            status: status.as_u16(),
            error_messages: messages,
            errors,
        },
    }
}

/// An issue, as Jira names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRef {
    /// The numeric id, as a string (`"10001"`).
    pub id: String,
    /// `IR-1`.
    pub key: String,
    /// The REST URL of the issue, when Jira gave it.
    pub self_url: Option<String>,
}

/// What [`JiraClient::create_issue_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIssue {
    pub issue: IssueRef,
    /// `{base}/browse/{key}`: the issue for people.
    pub browse_url: String,
    /// Found by its marker label: created by an earlier call, not this one.
    pub already_existed: bool,
}

/// An issue to create for one step of one incident.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIssue {
    /// With `step_id`, what makes the issue unique ([`marker_label`]).
    pub incident_id: String,
    pub step_id: String,
    /// `IR`.
    pub project_key: String,
    /// `Task`, `Bug`, `Incident`, … (by name).
    pub issue_type: String,
    /// One line; cut to [`MAX_SUMMARY_CHARS`], line breaks replaced by spaces.
    pub summary: String,
    /// An Atlassian Document Format document ([`crate::jira::adf`]).
    pub description: Value,
    /// Extra labels, sanitised ([`sanitize_label`]); the marker label is added.
    pub labels: Vec<String>,
    /// A priority name (`High`), or the project's default.
    pub priority: Option<String>,
}

impl NewIssue {
    /// The label that marks this incident step's issue.
    pub fn marker_label(&self) -> String {
        marker_label(&self.incident_id, &self.step_id)
    }
}

/// `text` as a Jira label: no whitespace (Jira refuses it), only `A-Z a-z 0-9 - _ .` kept (other
/// characters become `-`), at most [`MAX_LABEL_CHARS`] (a cut label ends with a hash of the
/// whole, so two long labels stay apart).
pub fn sanitize_label(text: &str) -> String {
    let clean: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.chars().count() <= MAX_LABEL_CHARS {
        return clean;
    }
    let hash = hex::encode(Sha256::digest(clean.as_bytes()));
    let keep: String = clean.chars().take(MAX_LABEL_CHARS - 17).collect();
    format!("{keep}-{}", &hash[..16])
}

/// `ir-<incident>-<step>`, lowercased and sanitised: the label that finds a step's issue again.
pub fn marker_label(incident_id: &str, step_id: &str) -> String {
    sanitize_label(&format!("ir-{incident_id}-{step_id}").to_lowercase())
}

/// A JQL string literal.
fn jql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::update::cut(line.trim(), MAX_SUMMARY_CHARS)
}

#[derive(Deserialize)]
struct RawIssue {
    id: Option<String>,
    key: Option<String>,
    #[serde(rename = "self")]
    self_url: Option<String>,
}

impl RawIssue {
    fn into_ref(self, what: &str) -> Result<IssueRef, JiraError> {
        match (self.id, self.key) {
            (Some(id), Some(key)) if !id.is_empty() && !key.is_empty() => Ok(IssueRef {
                id,
                key,
                self_url: self.self_url,
            }),
            _ => Err(JiraError::BadResponse {
                detail: format!("{what}: an issue without id or key"),
            }),
        }
    }
}

#[derive(Deserialize)]
struct SearchAnswer {
    issues: Option<Vec<RawIssue>>,
}

/// A Jira Cloud client. Cheap to clone; `Debug` never shows the API token.
#[derive(Clone)]
pub struct JiraClient {
    base_url: String,
    email: String,
    token: Secret,
    http: reqwest::Client,
    retry: RetryPolicy,
    sleep: Arc<dyn Sleep>,
}

impl fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraClient")
            .field("base_url", &self.base_url)
            .field("email", &self.email)
            .field("token", &"<redacted>")
            .field("retry", &self.retry)
            .finish()
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, JiraError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("ir-chat/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| JiraError::InvalidConfig {
            detail: http::describe(e),
        })
}

impl JiraClient {
    /// A client for the site at `base_url` (`https://example.atlassian.net`), authenticating
    /// as `email` with `api_token`.
    pub fn new(
        base_url: impl Into<String>,
        email: impl Into<String>,
        api_token: Secret,
    ) -> Result<Self, JiraError> {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let ok = reqwest::Url::parse(&base_url)
            .map(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(JiraError::InvalidConfig {
                detail: format!("`{base_url}` is not an http(s) URL"),
            });
        }
        let email = email.into();
        if email.trim().is_empty() || api_token.is_empty() {
            return Err(JiraError::InvalidConfig {
                detail: "the email or the API token is empty".to_owned(),
            });
        }
        Ok(Self {
            base_url,
            email,
            token: api_token,
            http: http_client(DEFAULT_TIMEOUT)?,
            retry: RetryPolicy::default(),
            sleep: Arc::new(TokioSleep),
        })
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
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, JiraError> {
        self.http = http_client(timeout)?;
        Ok(self)
    }

    /// `{base}/browse/{key}`.
    pub fn browse_url(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.base_url)
    }

    async fn post(&self, op: &'static str, path: &str, body: &Value) -> Result<Reply, JiraError> {
        let url = format!("{}{path}", self.base_url);
        let reply = http::send(&self.retry, self.sleep.as_ref(), op, || {
            self.http
                .post(&url)
                .basic_auth(&self.email, Some(self.token.expose()))
                .header(reqwest::header::ACCEPT, "application/json")
                .json(body)
        })
        .await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            let e = refusal(&reply);
            tracing::warn!(
                op,
                status = reply.status.as_u16(),
                error = e.name(),
                "Jira refused the request"
            );
            Err(e)
        }
    }

    /// The first issue carrying `label` (`POST /rest/api/3/search/jql`), if any.
    pub async fn find_issue_by_label(&self, label: &str) -> Result<Option<IssueRef>, JiraError> {
        let body = json!({
            "jql": format!("labels = {}", jql_string(label)),
            "fields": ["key"],
            "maxResults": 1,
        });
        let reply = self
            .post("jira:search", "/rest/api/3/search/jql", &body)
            .await?;
        let answer: SearchAnswer =
            serde_json::from_slice(&reply.body).map_err(|e| JiraError::BadResponse {
                detail: format!("search: {e}"),
            })?;
        let issues = answer.issues.ok_or_else(|| JiraError::BadResponse {
            detail: "search: no `issues`".to_owned(),
        })?;
        issues
            .into_iter()
            .next()
            .map(|i| i.into_ref("search"))
            .transpose()
    }

    /// Creates the issue (`POST /rest/api/3/issue`), whether or not one exists already.
    pub async fn create_issue(&self, issue: &NewIssue) -> Result<IssueRef, JiraError> {
        if issue.project_key.trim().is_empty() || issue.issue_type.trim().is_empty() {
            return Err(JiraError::InvalidInput {
                detail: "the project key and the issue type are required".to_owned(),
            });
        }
        let marker = issue.marker_label();
        let mut labels: Vec<String> = Vec::new();
        for l in issue
            .labels
            .iter()
            .map(|l| sanitize_label(l))
            .chain(std::iter::once(marker))
        {
            if !l.is_empty() && !labels.contains(&l) {
                labels.push(l);
            }
        }
        let summary = one_line(&issue.summary);
        if summary.is_empty() {
            return Err(JiraError::InvalidInput {
                detail: "the summary is empty".to_owned(),
            });
        }
        let mut fields = json!({
            "project": { "key": issue.project_key },
            "issuetype": { "name": issue.issue_type },
            "summary": summary,
            "description": issue.description,
            "labels": labels,
        });
        if let (Some(p), Some(obj)) = (
            issue.priority.as_deref().filter(|p| !p.trim().is_empty()),
            fields.as_object_mut(),
        ) {
            obj.insert("priority".to_owned(), json!({ "name": p }));
        }
        let reply = self
            .post(
                "jira:create-issue",
                "/rest/api/3/issue",
                &json!({ "fields": fields }),
            )
            .await?;
        let raw: RawIssue =
            serde_json::from_slice(&reply.body).map_err(|e| JiraError::BadResponse {
                detail: format!("create issue: {e}"),
            })?;
        raw.into_ref("create issue")
    }

    /// The incident step's issue: found by its marker label, else created. See the module
    /// documentation for what "once" covers.
    pub async fn create_issue_once(&self, issue: &NewIssue) -> Result<CreatedIssue, JiraError> {
        let marker = issue.marker_label();
        if marker.trim_matches(['-', '.', '_']).is_empty() {
            return Err(JiraError::InvalidInput {
                detail: "the incident and step ids leave no label".to_owned(),
            });
        }
        if let Some(found) = self.find_issue_by_label(&marker).await? {
            tracing::info!(key = %found.key, label = %marker, "Jira issue already exists");
            return Ok(CreatedIssue {
                browse_url: self.browse_url(&found.key),
                issue: found,
                already_existed: true,
            });
        }
        let created = self.create_issue(issue).await?;
        tracing::info!(key = %created.key, label = %marker, "Jira issue created");
        Ok(CreatedIssue {
            browse_url: self.browse_url(&created.key),
            issue: created,
            already_existed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_no_spaces_and_fit() {
        assert_eq!(
            marker_label("INC-2026-042", "notify jira"),
            "ir-inc-2026-042-notify-jira"
        );
        assert_eq!(sanitize_label(" a b\"c "), "a-b-c");
        let long = sanitize_label(&"x".repeat(400));
        assert_eq!(long.chars().count(), MAX_LABEL_CHARS);
        assert_ne!(long, sanitize_label(&"x".repeat(401)));
        assert_eq!(jql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }
}
