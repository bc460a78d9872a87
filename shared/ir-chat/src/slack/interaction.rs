//! Interaction payloads: what Slack POSTs to the interactions endpoint when someone clicks a
//! button, `application/x-www-form-urlencoded` with one field, `payload`, holding JSON.
//!
//! Only `block_actions` is read. Parsing takes any bytes and never panics; it happens after
//! [`super::verify()`], and even then nothing in the payload is trusted beyond "Slack says user
//! U clicked button B on message M": the button's value names what the clicker asks to decide
//! and is checked by the caller against its own records.

use serde::Deserialize;

use crate::slack::blocks::{APPROVE_ACTION_ID, ApprovalRef, REJECT_ACTION_ID};

/// Bodies past this are refused unread (a payload quotes the whole message, at most 50 blocks).
pub const MAX_INTERACTION_BYTES: usize = 512 * 1024;

/// The longest id (user, team, channel, action, ts) read.
const MAX_ID_CHARS: usize = 255;

/// Why a payload cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the interaction body is larger than {MAX_INTERACTION_BYTES} bytes")]
    TooLarge,
    #[error("malformed interaction payload: {0}")]
    Malformed(String),
    /// A well-formed payload of another type (`view_submission`, `shortcut`, …).
    #[error("unsupported interaction type `{0}`")]
    Unsupported(String),
}

impl PayloadError {
    /// A stable name, for logs, metrics and error payloads.
    pub fn name(&self) -> &'static str {
        match self {
            PayloadError::TooLarge => "PayloadTooLarge",
            PayloadError::Malformed(_) => "MalformedPayload",
            PayloadError::Unsupported(_) => "UnsupportedPayload",
        }
    }
}

fn malformed(what: impl Into<String>) -> PayloadError {
    PayloadError::Malformed(what.into())
}

/// One clicked element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub action_id: String,
    pub block_id: Option<String>,
    /// The element's type (`button`).
    pub kind: String,
    /// The button's `value`: untrusted.
    pub value: Option<String>,
    pub action_ts: Option<String>,
}

/// A `block_actions` payload, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockActions {
    pub team_id: String,
    pub user_id: String,
    /// `user.username`, else `user.name`.
    pub user_name: Option<String>,
    pub api_app_id: Option<String>,
    /// The first (for a button, the only) action.
    pub action: Action,
    /// `container.channel_id`, else `channel.id`.
    pub channel_id: String,
    /// `container.message_ts`, else `message.ts`: the message clicked, for `chat.update`.
    pub message_ts: String,
    /// Where Slack accepts a reply for 30 minutes (at most 5 uses). Prefer `chat.update` on
    /// the channel and ts the suite recorded when it posted the request.
    pub response_url: Option<String>,
    pub trigger_id: Option<String>,
}

/// Which approval button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalChoice {
    Approve,
    Reject,
}

impl BlockActions {
    /// The approval button clicked and what its value refers to: untrusted, to be checked
    /// against the caller's records (the step, the level waited for, the stored plan hash).
    pub fn approval(&self) -> Result<(ApprovalChoice, ApprovalRef), PayloadError> {
        let choice = match self.action.action_id.as_str() {
            APPROVE_ACTION_ID => ApprovalChoice::Approve,
            REJECT_ACTION_ID => ApprovalChoice::Reject,
            other => {
                return Err(malformed(format!(
                    "action `{}` is not an approval button",
                    other.chars().take(64).collect::<String>()
                )));
            }
        };
        let value = self
            .action
            .value
            .as_deref()
            .ok_or_else(|| malformed("the approval button has no value"))?;
        let r = ApprovalRef::decode(value).map_err(|e| malformed(e.to_string()))?;
        Ok((choice, r))
    }
}

#[derive(Deserialize)]
struct RawPayload {
    #[serde(rename = "type")]
    kind: Option<String>,
    user: Option<RawUser>,
    team: Option<RawId>,
    api_app_id: Option<String>,
    container: Option<RawContainer>,
    channel: Option<RawId>,
    message: Option<RawMessage>,
    response_url: Option<String>,
    trigger_id: Option<String>,
    actions: Option<Vec<RawAction>>,
}

#[derive(Deserialize)]
struct RawUser {
    id: Option<String>,
    username: Option<String>,
    name: Option<String>,
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct RawId {
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawContainer {
    channel_id: Option<String>,
    message_ts: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    ts: Option<String>,
}

#[derive(Deserialize)]
struct RawAction {
    action_id: Option<String>,
    block_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
    action_ts: Option<String>,
}

/// An id: present, not empty, at most 255 characters, no control character or space.
fn id(value: Option<String>, what: &str) -> Result<String, PayloadError> {
    let v = value.ok_or_else(|| malformed(format!("no {what}")))?;
    if v.is_empty()
        || v.chars().count() > MAX_ID_CHARS
        || v.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(malformed(format!("{what} is not an id")));
    }
    Ok(v)
}

/// An optional text: dropped when empty, refused when it has control characters or is longer
/// than `max`.
fn text(value: Option<String>, what: &str, max: usize) -> Result<Option<String>, PayloadError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(malformed(format!("{what} is malformed")))
        }
        Some(v) => Ok(Some(v)),
    }
}

/// Reads the raw request body: the `payload` form field, exactly once, holding a
/// `block_actions` payload.
pub fn parse_interaction(body: &[u8]) -> Result<BlockActions, PayloadError> {
    if body.len() > MAX_INTERACTION_BYTES {
        return Err(PayloadError::TooLarge);
    }
    let mut payload = None;
    for (name, value) in form_urlencoded::parse(body) {
        if name == "payload" && payload.replace(value).is_some() {
            return Err(malformed("more than one payload field"));
        }
    }
    let payload = payload.ok_or_else(|| malformed("no payload field"))?;
    parse_payload_json(&payload)
}

/// Reads the JSON of the `payload` field.
pub fn parse_payload_json(json: &str) -> Result<BlockActions, PayloadError> {
    if json.len() > MAX_INTERACTION_BYTES {
        return Err(PayloadError::TooLarge);
    }
    let raw: RawPayload =
        serde_json::from_str(json).map_err(|e| malformed(format!("not the expected JSON: {e}")))?;
    let kind = raw.kind.ok_or_else(|| malformed("no type"))?;
    if kind != "block_actions" {
        return Err(PayloadError::Unsupported(
            kind.chars().take(64).collect::<String>(),
        ));
    }
    let user = raw.user.ok_or_else(|| malformed("no user"))?;
    let user_id = id(user.id, "user.id")?;
    let user_name = match text(user.username, "user.username", MAX_ID_CHARS)? {
        Some(n) => Some(n),
        None => text(user.name, "user.name", MAX_ID_CHARS)?,
    };
    let team_id = id(raw.team.and_then(|t| t.id).or(user.team_id), "team.id")?;

    let container = raw.container;
    let (c_channel, c_ts) = container
        .map(|c| (c.channel_id, c.message_ts))
        .unwrap_or((None, None));
    let channel_field = raw.channel.and_then(|c| c.id);
    let message_field = raw.message.and_then(|m| m.ts);
    if let (Some(a), Some(b)) = (&c_channel, &channel_field)
        && a != b
    {
        return Err(malformed("container.channel_id and channel.id differ"));
    }
    if let (Some(a), Some(b)) = (&c_ts, &message_field)
        && a != b
    {
        return Err(malformed("container.message_ts and message.ts differ"));
    }
    let channel_id = id(c_channel.or(channel_field), "channel id")?;
    let message_ts = id(c_ts.or(message_field), "message ts")?;

    let first = raw
        .actions
        .and_then(|a| a.into_iter().next())
        .ok_or_else(|| malformed("no action"))?;
    let action = Action {
        action_id: id(first.action_id, "actions[0].action_id")?,
        block_id: text(first.block_id, "actions[0].block_id", MAX_ID_CHARS)?,
        kind: id(first.kind, "actions[0].type")?,
        value: text(
            first.value,
            "actions[0].value",
            crate::slack::blocks::MAX_BUTTON_VALUE_CHARS,
        )?,
        action_ts: text(first.action_ts, "actions[0].action_ts", MAX_ID_CHARS)?,
    };
    Ok(BlockActions {
        team_id,
        user_id,
        user_name,
        api_app_id: text(raw.api_app_id, "api_app_id", MAX_ID_CHARS)?,
        action,
        channel_id,
        message_ts,
        response_url: text(raw.response_url, "response_url", 2048)?,
        trigger_id: text(raw.trigger_id, "trigger_id", MAX_ID_CHARS)?,
    })
}
