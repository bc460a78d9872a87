//! In-process fake Slack and Jira servers for tests (feature `fake-servers`), on
//! `127.0.0.1:<any port>`, speaking the real shapes:
//!
//! - Slack Web API, under `/api`: `chat.postMessage` and `chat.update` (`Authorization: Bearer`,
//!   JSON bodies; HTTP 200 with `{"ok": true, "channel", "ts", "message"}` or
//!   `{"ok": false, "error"}`; `invalid_auth`, `not_authed`, `channel_not_found`, `no_text`,
//!   `message_not_found`, `invalid_blocks` with `response_metadata.messages`; a `warning`
//!   `missing_charset` when the content type has no charset, as Slack does);
//! - a Slack incoming webhook at [`FakeConfig::webhook_path`] (`ok`, or 400 `invalid_payload`
//!   / `no_text` / `invalid_blocks`, 404 `no_service` for another webhook path);
//! - Jira Cloud REST v3 (basic auth): `POST /rest/api/3/issue` (201 `{"id","key","self"}`, 400
//!   `{"errorMessages", "errors"}` for a field Jira refuses) and `POST /rest/api/3/search/jql`
//!   (`{"issues": [...], "isLast": true}`) for queries `labels = "…"`, finding created issues.
//!
//! Every request is recorded ([`FakeServer::requests`]); the next N requests to a path can be
//! answered 429 with `Retry-After`, a status, or any JSON ([`FakeServer::script`]).
//! [`signed_interaction`] signs an interaction request as Slack does; [`RecordingSleep`] lets a
//! client "wait" without waiting, and says how long it would have.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::retry::Sleep;
use crate::secret::Secret;
use crate::slack::verify;

/// The bot token the fake Slack accepts by default.
pub const FAKE_SLACK_TOKEN: &str = "xoxb-1111111111-2222222222-fAkEtOkEnFaKeToKeN0000";
/// The signing secret [`signed_interaction`] is used with in tests.
pub const FAKE_SIGNING_SECRET: &str = "8f742231b10e8888abcd99fakefake85a5";
/// The incoming-webhook path the fake Slack accepts by default.
pub const FAKE_WEBHOOK_PATH: &str = "/services/T0FAKE000/B0FAKE000/fAkEwEbHoOkSeCrEt000000";
/// The Jira account and API token the fake Jira accepts by default.
pub const FAKE_JIRA_EMAIL: &str = "ir-bot@example.com";
pub const FAKE_JIRA_TOKEN: &str = "ATATT3xFfGF0fAkEjIrAtOkEn0000";

/// The search path.
pub const JIRA_SEARCH_PATH: &str = "/rest/api/3/search/jql";
/// The create-issue path.
pub const JIRA_ISSUE_PATH: &str = "/rest/api/3/issue";
/// `chat.postMessage`.
pub const SLACK_POST_PATH: &str = "/api/chat.postMessage";
/// `chat.update`.
pub const SLACK_UPDATE_PATH: &str = "/api/chat.update";

/// What the fake servers accept.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub slack_token: String,
    pub webhook_path: String,
    pub jira_email: String,
    pub jira_token: String,
    /// Projects issues may be created in.
    pub jira_projects: Vec<String>,
    /// Channels `chat.postMessage` answers `channel_not_found` for.
    pub missing_channels: Vec<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            slack_token: FAKE_SLACK_TOKEN.to_owned(),
            webhook_path: FAKE_WEBHOOK_PATH.to_owned(),
            jira_email: FAKE_JIRA_EMAIL.to_owned(),
            jira_token: FAKE_JIRA_TOKEN.to_owned(),
            jira_projects: vec!["IR".to_owned(), "SEC".to_owned()],
            missing_channels: vec!["C0MISSING".to_owned()],
        }
    }
}

/// One request as received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, when it is JSON.
    pub body: Option<Value>,
    pub raw_body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer, in place of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// 429 with `Retry-After: <secs>` (and the service's rate-limit body).
    RateLimited { retry_after_secs: u64 },
    /// This status with the service's usual error body.
    Status(u16),
    /// This status and JSON body.
    Json { status: u16, body: Value },
}

/// A message as the fake Slack holds it (after any `chat.update`).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    /// How many times `chat.update` replaced it.
    pub updates: u32,
}

/// An issue as the fake Jira holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeIssue {
    pub id: String,
    pub key: String,
    /// The `fields` object as received.
    pub fields: Value,
}

impl FakeIssue {
    pub fn labels(&self) -> Vec<String> {
        self.fields["labels"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct FakeState {
    requests: Vec<RecordedRequest>,
    scripts: HashMap<String, VecDeque<Scripted>>,
    messages: Vec<FakeMessage>,
    issues: Vec<FakeIssue>,
    next_ts: u64,
    next_issue: u64,
}

#[derive(Debug)]
struct Shared {
    config: FakeConfig,
    base_url: String,
    state: Mutex<FakeState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake servers (Slack and Jira on one port). Stops when dropped.
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts with [`FakeConfig::default`].
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeConfig::default()).await
    }

    /// Starts on `127.0.0.1`, any free port.
    pub async fn start_with(config: FakeConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            base_url: format!("http://{addr}"),
            state: Mutex::new(FakeState::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake server stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`: the Jira base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Slack Web API base URL (`…/api`).
    pub fn slack_api_url(&self) -> String {
        format!("{}/api", self.base_url())
    }

    /// The incoming-webhook URL the fake accepts.
    pub fn webhook_url(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.config.webhook_path)
    }

    /// The Jira site URL.
    pub fn jira_url(&self) -> String {
        self.base_url()
    }

    /// Answers the next `times` requests to `path` with `answer` instead of the normal one.
    pub fn script(&self, path: &str, times: usize, answer: Scripted) {
        let mut st = self.shared.state();
        let queue = st.scripts.entry(path.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(answer, times));
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The messages posted (as last updated).
    pub fn slack_messages(&self) -> Vec<FakeMessage> {
        self.shared.state().messages.clone()
    }

    /// The issues created.
    pub fn jira_issues(&self) -> Vec<FakeIssue> {
        self.shared.state().issues.clone()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn text_response(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        body.to_owned(),
    )
        .into_response()
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn slack_error(error: &str) -> Response {
    json_response(StatusCode::OK, json!({ "ok": false, "error": error }))
}

fn jira_error(code: StatusCode, messages: &[&str], errors: Value) -> Response {
    json_response(code, json!({ "errorMessages": messages, "errors": errors }))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).ok(),
        raw_body: body.to_vec(),
    };
    let scripted = {
        let mut st = shared.state();
        st.requests.push(recorded.clone());
        st.scripts.get_mut(&path).and_then(VecDeque::pop_front)
    };
    let slack = path.starts_with("/api/") || path.starts_with("/services/");
    if let Some(s) = scripted {
        return scripted_response(&s, slack);
    }
    if method != Method::POST {
        return if slack {
            text_response(StatusCode::METHOD_NOT_ALLOWED, "invalid_method")
        } else {
            jira_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &["Method not allowed."],
                json!({}),
            )
        };
    }
    match path.as_str() {
        SLACK_POST_PATH | SLACK_UPDATE_PATH => slack_web_api(&shared, &path, &recorded),
        p if p.starts_with("/services/") => slack_webhook(&shared, &recorded),
        JIRA_SEARCH_PATH | JIRA_ISSUE_PATH => jira(&shared, &path, &recorded),
        p if p.starts_with("/api/") => slack_error("unknown_method"),
        _ => jira_error(StatusCode::NOT_FOUND, &["Not found."], json!({})),
    }
}

fn scripted_response(s: &Scripted, slack: bool) -> Response {
    match s {
        Scripted::RateLimited { retry_after_secs } => {
            let body = if slack {
                json!({ "ok": false, "error": "ratelimited" })
            } else {
                json!({ "errorMessages": ["Rate limit exceeded."], "errors": {} })
            };
            let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, body);
            if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Scripted::Status(code) => {
            if slack {
                text_response(status(*code), "internal_error")
            } else {
                jira_error(status(*code), &["Internal server error."], json!({}))
            }
        }
        Scripted::Json { status: code, body } => json_response(status(*code), body.clone()),
    }
}

// ------------------------------------------------------------------------------------ Slack

/// Where a block breaks one of Slack's limits, as Slack's `response_metadata.messages` say it.
fn check_blocks(blocks: &Value) -> Result<(), String> {
    let err = |pointer: String, why: &str| Err(format!("[ERROR] {why} [json-pointer:{pointer}]"));
    let Some(blocks) = blocks.as_array() else {
        return err("/blocks".to_owned(), "must be an array");
    };
    if blocks.len() > 50 {
        return err("/blocks".to_owned(), "no more than 50 items allowed");
    }
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("/blocks/{i}");
        if let Some(id) = b.get("block_id")
            && chars(id) > 255
        {
            return err(format!("{at}/block_id"), "must be less than 256 characters");
        }
        match b["type"].as_str() {
            Some("header") => {
                if b["text"]["type"] != "plain_text" {
                    return err(format!("{at}/text/type"), "must be plain_text");
                }
                if chars(&b["text"]["text"]) > 150 || chars(&b["text"]["text"]) == 0 {
                    return err(format!("{at}/text/text"), "must be 1 to 150 characters");
                }
            }
            Some("section") => {
                let text = b.get("text");
                let fields = b.get("fields").and_then(Value::as_array);
                if text.is_none() && fields.is_none() {
                    return err(at, "must have text or fields");
                }
                if let Some(t) = text
                    && (chars(&t["text"]) > 3000 || chars(&t["text"]) == 0)
                {
                    return err(format!("{at}/text/text"), "must be 1 to 3000 characters");
                }
                if let Some(f) = fields {
                    if f.len() > 10 {
                        return err(format!("{at}/fields"), "no more than 10 items allowed");
                    }
                    for (j, x) in f.iter().enumerate() {
                        if chars(&x["text"]) > 2000 || chars(&x["text"]) == 0 {
                            return err(
                                format!("{at}/fields/{j}/text"),
                                "must be 1 to 2000 characters",
                            );
                        }
                    }
                }
            }
            Some("actions") => {
                let Some(elements) = b["elements"].as_array() else {
                    return err(format!("{at}/elements"), "must be an array");
                };
                if elements.is_empty() || elements.len() > 25 {
                    return err(format!("{at}/elements"), "must have 1 to 25 items");
                }
                for (j, e) in elements.iter().enumerate() {
                    let at = format!("{at}/elements/{j}");
                    if chars(&e["text"]["text"]) > 75 {
                        return err(format!("{at}/text/text"), "must be less than 76 characters");
                    }
                    if chars(&e["value"]) > 2000 {
                        return err(format!("{at}/value"), "must be less than 2001 characters");
                    }
                    if chars(&e["action_id"]) > 255 {
                        return err(
                            format!("{at}/action_id"),
                            "must be less than 256 characters",
                        );
                    }
                    if let Some(style) = e.get("style")
                        && style != "primary"
                        && style != "danger"
                    {
                        return err(format!("{at}/style"), "must be primary or danger");
                    }
                }
            }
            Some("context") => {
                let n = b["elements"].as_array().map_or(0, Vec::len);
                if n == 0 || n > 10 {
                    return err(format!("{at}/elements"), "must have 1 to 10 items");
                }
            }
            Some("divider") => {}
            _ => return err(format!("{at}/type"), "unsupported block type"),
        }
    }
    Ok(())
}

fn slack_web_api(shared: &Shared, path: &str, req: &RecordedRequest) -> Response {
    let Some(auth) = req.header("authorization") else {
        return slack_error("not_authed");
    };
    if auth != format!("Bearer {}", shared.config.slack_token) {
        return slack_error("invalid_auth");
    }
    let content_type = req.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return slack_error("invalid_form_data");
    }
    let Some(body) = req.body.as_ref().filter(|b| b.is_object()) else {
        return slack_error("invalid_json");
    };
    let channel = body["channel"].as_str().unwrap_or_default();
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let blocks = body.get("blocks").cloned().unwrap_or(json!([]));
    if channel.is_empty() || shared.config.missing_channels.iter().any(|c| c == channel) {
        return slack_error("channel_not_found");
    }
    if text.is_empty() && blocks.as_array().is_none_or(Vec::is_empty) {
        return slack_error("no_text");
    }
    if let Err(message) = check_blocks(&blocks) {
        return json_response(
            StatusCode::OK,
            json!({ "ok": false, "error": "invalid_blocks", "response_metadata": { "messages": [message] } }),
        );
    }
    // Slack answers with the channel's id when posting to a name.
    let channel_id = if channel
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        channel.to_owned()
    } else {
        "C0FAKECHAN1".to_owned()
    };
    let mut st = shared.state();
    let mut answer = if path == SLACK_POST_PATH {
        st.next_ts += 1;
        let ts = format!("{}.{:06}", 1_733_000_000 + st.next_ts, st.next_ts * 100);
        let message = json!({
            "type": "message", "subtype": "bot_message", "bot_id": "B0FAKEBOT01",
            "app_id": "A0FAKEAPP01", "text": text, "blocks": blocks, "ts": ts,
        });
        st.messages.push(FakeMessage {
            channel: channel_id.clone(),
            ts: ts.clone(),
            text,
            blocks,
            updates: 0,
        });
        json!({ "ok": true, "channel": channel_id, "ts": ts, "message": message })
    } else {
        let ts = body["ts"].as_str().unwrap_or_default();
        let Some(m) = st
            .messages
            .iter_mut()
            .find(|m| m.channel == channel_id && m.ts == ts)
        else {
            return slack_error("message_not_found");
        };
        m.text.clone_from(&text);
        m.blocks = blocks.clone();
        m.updates += 1;
        json!({
            "ok": true, "channel": channel_id, "ts": ts, "text": text,
            "message": { "type": "message", "bot_id": "B0FAKEBOT01", "text": text, "blocks": blocks,
                         "edited": { "user": "B0FAKEBOT01", "ts": format!("{}.000000", 1_733_100_000 + st.next_ts) } },
        })
    };
    if !content_type.to_ascii_lowercase().contains("charset=utf-8")
        && let Some(obj) = answer.as_object_mut()
    {
        obj.insert("warning".to_owned(), json!("missing_charset"));
        obj.insert(
            "response_metadata".to_owned(),
            json!({ "warnings": ["missing_charset"] }),
        );
    }
    json_response(StatusCode::OK, answer)
}

fn slack_webhook(shared: &Shared, req: &RecordedRequest) -> Response {
    if req.path != shared.config.webhook_path {
        return text_response(StatusCode::NOT_FOUND, "no_service");
    }
    let Some(body) = req.body.as_ref().filter(|b| b.is_object()) else {
        return text_response(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let text = body["text"].as_str().unwrap_or_default();
    let blocks = body.get("blocks").cloned().unwrap_or(json!([]));
    if text.is_empty() && blocks.as_array().is_none_or(Vec::is_empty) {
        return text_response(StatusCode::BAD_REQUEST, "no_text");
    }
    if check_blocks(&blocks).is_err() {
        return text_response(StatusCode::BAD_REQUEST, "invalid_blocks");
    }
    text_response(StatusCode::OK, "ok")
}

// ------------------------------------------------------------------------------------ Jira

fn jira(shared: &Shared, path: &str, req: &RecordedRequest) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            shared.config.jira_email, shared.config.jira_token
        ))
    );
    if req.header("authorization") != Some(expected.as_str()) {
        return jira_error(
            StatusCode::UNAUTHORIZED,
            &["Client must be authenticated to access this resource."],
            json!({}),
        );
    }
    let Some(body) = req.body.as_ref().filter(|b| b.is_object()) else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["Invalid request payload. Refer to the REST API documentation and try again."],
            json!({}),
        );
    };
    if path == JIRA_SEARCH_PATH {
        jira_search(shared, body)
    } else {
        jira_create(shared, body)
    }
}

/// The label of `labels = "…"`, the one query form the fake reads.
fn label_query(jql: &str) -> Option<String> {
    let rest = jql.trim().strip_prefix("labels")?.trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn jira_search(shared: &Shared, body: &Value) -> Response {
    let Some(jql) = body["jql"].as_str() else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["The JQL query is required."],
            json!({}),
        );
    };
    let Some(label) = label_query(jql) else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["Error in the JQL Query: the fake Jira reads only `labels = \"…\"`."],
            json!({}),
        );
    };
    let max = body["maxResults"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(50);
    let st = shared.state();
    let issues: Vec<Value> = st
        .issues
        .iter()
        .filter(|i| i.labels().iter().any(|l| l.eq_ignore_ascii_case(&label)))
        .take(max)
        .map(|i| {
            json!({
                "expand": "",
                "id": i.id,
                "key": i.key,
                "self": format!("{}/rest/api/3/issue/{}", shared.base_url, i.id),
                "fields": {},
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "issues": issues, "isLast": true }))
}

fn jira_create(shared: &Shared, body: &Value) -> Response {
    let fields = &body["fields"];
    let mut errors = BTreeMap::new();
    let project = fields["project"]["key"].as_str().unwrap_or_default();
    if !shared.config.jira_projects.iter().any(|p| p == project) {
        errors.insert("project", "valid project is required".to_owned());
    }
    if fields["issuetype"]["name"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        errors.insert("issuetype", "Specify an issue type".to_owned());
    }
    match fields["summary"].as_str() {
        None | Some("") => {
            errors.insert(
                "summary",
                "You must specify a summary of the issue.".to_owned(),
            );
        }
        Some(s) if s.chars().count() > 255 => {
            errors.insert(
                "summary",
                "Summary must be less than 255 characters.".to_owned(),
            );
        }
        Some(s) if s.contains('\n') => {
            errors.insert(
                "summary",
                "The summary is invalid because it contains newline characters.".to_owned(),
            );
        }
        Some(_) => {}
    }
    if let Some(d) = fields.get("description")
        && !(d["type"] == "doc" && d["version"] == 1 && d["content"].is_array())
    {
        errors.insert(
            "description",
            "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                .to_owned(),
        );
    }
    if let Some(labels) = fields.get("labels") {
        let bad = labels.as_array().map_or(Some("labels".to_owned()), |a| {
            a.iter()
                .filter_map(Value::as_str)
                .find(|l| {
                    l.contains(char::is_whitespace) || l.is_empty() || l.chars().count() > 255
                })
                .map(str::to_owned)
        });
        if let Some(l) = bad {
            errors.insert(
                "labels",
                format!("The label '{l}' contains spaces which is invalid."),
            );
        }
    }
    if let Some(p) = fields.get("priority") {
        let ok = p["name"]
            .as_str()
            .is_some_and(|n| ["Highest", "High", "Medium", "Low", "Lowest"].contains(&n));
        if !ok {
            errors.insert(
                "priority",
                "Specify the Priority (name) in the string format".to_owned(),
            );
        }
    }
    if !errors.is_empty() {
        return jira_error(StatusCode::BAD_REQUEST, &[], json!(errors));
    }
    let mut st = shared.state();
    st.next_issue += 1;
    let id = format!("{}", 10_000 + st.next_issue);
    let key = format!("{project}-{}", st.next_issue);
    st.issues.push(FakeIssue {
        id: id.clone(),
        key: key.clone(),
        fields: fields.clone(),
    });
    json_response(
        StatusCode::CREATED,
        json!({ "id": id, "key": key, "self": format!("{}/rest/api/3/issue/{id}", shared.base_url) }),
    )
}

// ------------------------------------------------------------------------- interactions, waits

/// An interaction request as Slack sends it: the form body and its two headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `payload=<url-encoded JSON>`.
    pub body: Vec<u8>,
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: String,
    /// `X-Slack-Signature`.
    pub signature: String,
}

impl SignedRequest {
    /// The two headers, named as Slack names them.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        vec![
            (verify::TIMESTAMP_HEADER, self.timestamp.as_str()),
            (verify::SIGNATURE_HEADER, self.signature.as_str()),
        ]
    }
}

/// Signs `payload` (the JSON of the `payload` field) at `unix_time` with `signing_secret`, as
/// Slack does for the interactions endpoint.
pub fn signed_interaction(
    signing_secret: &Secret,
    unix_time: i64,
    payload: &Value,
) -> SignedRequest {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let timestamp = unix_time.to_string();
    let signature = verify::signature(signing_secret, &timestamp, body.as_bytes());
    SignedRequest {
        body: body.into_bytes(),
        timestamp,
        signature,
    }
}

/// A `block_actions` payload shaped as Slack sends one for a button click on a message.
pub fn block_actions_payload(
    user_id: &str,
    action_id: &str,
    value: &str,
    channel_id: &str,
    message_ts: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "user": { "id": user_id, "username": "ana.responder", "name": "ana.responder", "team_id": "T0FAKE000" },
        "api_app_id": "A0FAKEAPP01",
        "token": "deprecatedVerificationToken",
        "container": { "type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": false },
        "trigger_id": "1733000000.1111111111.abcdef0123456789abcdef0123456789",
        "team": { "id": "T0FAKE000", "domain": "example-sec" },
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": { "id": channel_id, "name": "incidents" },
        "message": {
            "type": "message", "subtype": "bot_message", "text": "approval needed",
            "ts": message_ts, "bot_id": "B0FAKEBOT01", "blocks": [],
        },
        "state": { "values": {} },
        "response_url": "https://hooks.slack.com/actions/T0FAKE000/1733000000000/fAkErEsPoNsEuRl",
        "actions": [{
            "action_id": action_id,
            "block_id": "ir_approval",
            "text": { "type": "plain_text", "text": "Approve", "emoji": true },
            "value": value,
            "style": "primary",
            "type": "button",
            "action_ts": "1733000001.000200",
        }],
    })
}

/// A [`Sleep`] that returns at once and records what it was asked to wait.
#[derive(Debug, Default)]
pub struct RecordingSleep {
    waits: Mutex<Vec<Duration>>,
}

impl RecordingSleep {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The waits asked for, in order.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Their sum.
    pub fn total(&self) -> Duration {
        self.waits().iter().sum()
    }
}

impl Sleep for RecordingSleep {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.waits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(duration);
        Box::pin(std::future::ready(()))
    }
}
