//! Block Kit rendering of incident updates and approval requests.
//!
//! Every text from the incident is escaped for `mrkdwn` (`&`, `<`, `>`), so a finding title
//! cannot mention `@channel`, link elsewhere or break the layout. Block Kit's limits are kept by
//! cutting, with a visible `…` or "N more not shown", never by failing: header text
//! [`MAX_HEADER_CHARS`], section text [`MAX_SECTION_CHARS`], [`MAX_FIELDS`] fields of
//! [`MAX_FIELD_CHARS`], [`MAX_BLOCKS`] blocks.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::update::{DRY_RUN_MARK, IncidentUpdate, Link, cut, human_time};

/// A header block's text.
pub const MAX_HEADER_CHARS: usize = 150;
/// A section block's text.
pub const MAX_SECTION_CHARS: usize = 3000;
/// One field of a section block.
pub const MAX_FIELD_CHARS: usize = 2000;
/// Fields of one section block.
pub const MAX_FIELDS: usize = 10;
/// Blocks of one message.
pub const MAX_BLOCKS: usize = 50;
/// A button's `value`.
pub const MAX_BUTTON_VALUE_CHARS: usize = 2000;
/// The top-level `text` (Slack cuts at 40 000; notifications show far less).
pub const MAX_FALLBACK_CHARS: usize = 3000;

/// `action_id` of the Approve button.
pub const APPROVE_ACTION_ID: &str = "ir_approve";
/// `action_id` of the Reject button.
pub const REJECT_ACTION_ID: &str = "ir_reject";
/// `block_id` of the actions block holding the two buttons.
pub const APPROVAL_BLOCK_ID: &str = "ir_approval";

/// The longest incident id, step id or plan hash an [`ApprovalRef`] carries.
pub const MAX_REF_PART_CHARS: usize = 255;

/// A message: Block Kit `blocks` and the plain `text` Slack shows in notifications and where
/// blocks cannot be shown.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    pub text: String,
    pub blocks: Vec<Value>,
}

// ------------------------------------------------------------------------------------ escape

/// `text` escaped for `mrkdwn` and the top-level `text`: `&`, `<`, `>` as entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped `mrkdwn` cut to `max` characters, never inside an entity.
fn fit(escaped: &str, max: usize) -> String {
    if escaped.chars().count() <= max {
        return escaped.to_owned();
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    // A cut `&amp;` would show as `&am`: drop an entity left open.
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

/// A URL as `mrkdwn` link target: the characters that end or split `<url|label>` encoded.
fn link_target(url: &str) -> String {
    url.replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

fn link_mrkdwn(link: &Link) -> String {
    if link.is_web() {
        format!(
            "<{}|{}>",
            link_target(&link.url),
            escape(&link.label).replace('|', "¦")
        )
    } else {
        format!("{}: {}", escape(&link.label), escape(&link.url))
    }
}

// ------------------------------------------------------------------------------------ blocks

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text, "emoji": true })
}

fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": text })
}

fn header_block(text: &str) -> Value {
    json!({ "type": "header", "text": plain(&cut(text, MAX_HEADER_CHARS)) })
}

fn section(text_mrkdwn: &str) -> Value {
    json!({ "type": "section", "text": mrkdwn(&fit(text_mrkdwn, MAX_SECTION_CHARS)) })
}

fn fields_section(fields: &[(&str, String)]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .take(MAX_FIELDS)
        .map(|(name, value)| {
            mrkdwn(&fit(
                &format!("*{}:*\n{}", escape(name), escape(value)),
                MAX_FIELD_CHARS,
            ))
        })
        .collect();
    json!({ "type": "section", "fields": fields })
}

fn context(text_mrkdwn: &str) -> Value {
    json!({ "type": "context", "elements": [mrkdwn(&fit(text_mrkdwn, MAX_FIELD_CHARS))] })
}

fn divider() -> Value {
    json!({ "type": "divider" })
}

/// A titled list in one section: as many lines as fit, then "N more not shown".
fn list_section(title: &str, lines: &[String], numbered: bool, none: &str) -> Value {
    let mut text = format!("*{}*", escape(title));
    if lines.is_empty() {
        text.push_str(&format!("\n_{}_", escape(none)));
        return section(&text);
    }
    // Room kept for the marker.
    let budget = MAX_SECTION_CHARS - 40;
    let mut used = text.chars().count();
    for (i, line) in lines.iter().enumerate() {
        let bullet = if numbered {
            format!("{}. ", i + 1)
        } else {
            "• ".to_owned()
        };
        let item = format!("\n{bullet}{}", escape(line));
        let len = item.chars().count();
        if used + len <= budget {
            text.push_str(&item);
            used += len;
            continue;
        }
        if i == 0 {
            // One line longer than the section: show what fits of it.
            text.push_str(&fit(&item, budget - used));
            if lines.len() == 1 {
                break;
            }
            text.push_str(&format!("\n_… {} more not shown_", lines.len() - 1));
        } else {
            text.push_str(&format!("\n_… {} more not shown_", lines.len() - i));
        }
        break;
    }
    section(&text)
}

/// At most [`MAX_BLOCKS`]: the last kept block says how many were left out.
fn capped(mut blocks: Vec<Value>) -> Vec<Value> {
    if blocks.len() > MAX_BLOCKS {
        let dropped = blocks.len() - (MAX_BLOCKS - 1);
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(context(&format!("_… {dropped} more blocks not shown_")));
    }
    blocks
}

fn title(update: &IncidentUpdate) -> String {
    let dry = if update.dry_run {
        format!("{DRY_RUN_MARK} ")
    } else {
        String::new()
    };
    format!("{dry}Incident Update: {}", update.incident_id)
}

/// The blocks of the update, in the template's order; `extra` goes before the context line.
fn update_blocks(update: &IncidentUpdate, extra: Vec<Value>) -> Vec<Value> {
    let mut fields = vec![
        ("Status", update.status.clone()),
        ("Severity", update.severity.clone()),
        ("Time detected", human_time(update.time_detected)),
        (
            "Time contained",
            update
                .time_contained
                .map_or_else(|| "not contained yet".to_owned(), human_time),
        ),
    ];
    if update.dry_run {
        fields.push(("Mode", "Dry run: nothing was changed".to_owned()));
    }
    let mut blocks = vec![header_block(&title(update))];
    if let Some(h) = update.headline.as_deref().filter(|h| !h.trim().is_empty()) {
        blocks.push(section(&format!("*{}*", escape(h.trim()))));
    }
    blocks.push(fields_section(&fields));
    if !update.deadlines.is_empty() {
        blocks.push(list_section(
            "Regulatory deadlines",
            &update.deadlines,
            false,
            "",
        ));
    }
    blocks.extend([
        section(&format!("*Summary*\n{}", escape(&update.summary))),
        list_section("Scope", &update.scope, false, "Not determined yet."),
        list_section("Actions taken", &update.actions_taken, true, "None yet."),
        list_section("Next steps", &update.next_steps, false, "None."),
    ]);
    if !update.links.is_empty() {
        blocks.push(links_section(&update.links));
    }
    blocks.extend(extra);
    blocks.push(context(&format!(
        "Incident `{}`{}",
        escape(&update.incident_id),
        if update.dry_run { " · dry run" } else { "" }
    )));
    capped(blocks)
}

fn links_section(links: &[Link]) -> Value {
    let mut text = "*Links*".to_owned();
    for (i, l) in links.iter().enumerate() {
        let item = format!("\n• {}", link_mrkdwn(l));
        if text.chars().count() + item.chars().count() > MAX_SECTION_CHARS - 40 {
            text.push_str(&format!("\n_… {} more not shown_", links.len() - i));
            break;
        }
        text.push_str(&item);
    }
    section(&text)
}

fn fallback(update: &IncidentUpdate, what: &str) -> String {
    let dry = if update.dry_run {
        format!("{DRY_RUN_MARK} ")
    } else {
        String::new()
    };
    fit(
        &escape(&format!(
            "{dry}[{}] {} {what}: {}. {}",
            update.severity.to_uppercase(),
            update.incident_id,
            update.status,
            update.summary
        )),
        MAX_FALLBACK_CHARS,
    )
}

/// The incident update as a message: a header, the Status/Severity/Time detected/Time
/// contained fields, Summary, Scope, Actions taken, Next steps, the links, and a context line
/// with the incident id.
pub fn incident_update(update: &IncidentUpdate) -> SlackMessage {
    SlackMessage {
        text: fallback(update, update.headline.as_deref().unwrap_or("update")),
        blocks: update_blocks(update, Vec::new()),
    }
}

// ------------------------------------------------------------------------------------ approval

/// What an Approve or Reject button refers to: the incident, the gated step, the hash of the
/// plan shown, and the escalation level asked (0 first).
///
/// Carried in the buttons' `value` as compact JSON,
/// `{"v":1,"incident":"INC-…","step":"isolate","plan":"<sha256 hex>","level":0}`, at most
/// [`MAX_BUTTON_VALUE_CHARS`]. Whoever clicks can forge it: it says what the clicker asks to
/// decide, and the receiving endpoint checks every part against its own records (the step
/// waits for this level, the plan hash is the stored one) before deciding anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRef {
    /// Format version, 1.
    v: u32,
    incident: String,
    step: String,
    plan: String,
    level: u32,
}

/// Why an [`ApprovalRef`] cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefError {
    #[error("the approval reference's {0} is empty")]
    Empty(&'static str),
    #[error("the approval reference's {0} is longer than {MAX_REF_PART_CHARS} characters")]
    TooLong(&'static str),
    #[error("the approval reference's {0} has a control character")]
    ControlCharacter(&'static str),
    #[error("the approval reference is not version 1")]
    Version,
    #[error("the approval reference is not valid JSON of the expected shape")]
    Malformed,
}

impl ApprovalRef {
    /// The format version written.
    pub const VERSION: u32 = 1;

    /// Checks every part: not empty, at most [`MAX_REF_PART_CHARS`] characters, no control
    /// character (so the encoded value always fits a button).
    pub fn new(
        incident_id: impl Into<String>,
        step_id: impl Into<String>,
        plan_hash: impl Into<String>,
        level: u32,
    ) -> Result<Self, ApprovalRefError> {
        let r = Self {
            v: Self::VERSION,
            incident: incident_id.into(),
            step: step_id.into(),
            plan: plan_hash.into(),
            level,
        };
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), ApprovalRefError> {
        if self.v != Self::VERSION {
            return Err(ApprovalRefError::Version);
        }
        for (name, part) in [
            ("incident id", &self.incident),
            ("step id", &self.step),
            ("plan hash", &self.plan),
        ] {
            if part.trim().is_empty() {
                return Err(ApprovalRefError::Empty(name));
            }
            if part.chars().count() > MAX_REF_PART_CHARS {
                return Err(ApprovalRefError::TooLong(name));
            }
            if part.chars().any(char::is_control) {
                return Err(ApprovalRefError::ControlCharacter(name));
            }
        }
        Ok(())
    }

    pub fn incident_id(&self) -> &str {
        &self.incident
    }
    pub fn step_id(&self) -> &str {
        &self.step
    }
    pub fn plan_hash(&self) -> &str {
        &self.plan
    }
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The button value.
    pub fn encode(&self) -> String {
        // Serializing strings and integers cannot fail; the fallback keeps the signature total.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a button value back (untrusted input: any string).
    pub fn decode(value: &str) -> Result<Self, ApprovalRefError> {
        if value.chars().count() > MAX_BUTTON_VALUE_CHARS {
            return Err(ApprovalRefError::Malformed);
        }
        let r: Self = serde_json::from_str(value).map_err(|_| ApprovalRefError::Malformed)?;
        r.check()?;
        Ok(r)
    }
}

/// An approval request: the incident update, what waits for a decision, from whom, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub update: IncidentUpdate,
    /// What the buttons refer to.
    pub approval: ApprovalRef,
    /// What the step will do if approved (its dry-run, in a sentence or a few lines).
    pub plan_summary: String,
    /// Who is asked (the escalation role, or names).
    pub asked: String,
    /// When the request expires (then the next level is asked, or the step is not run).
    pub expires_at: OffsetDateTime,
}

fn approval_section(req: &ApprovalRequest) -> Value {
    let a = &req.approval;
    section(&format!(
        "*Approval needed: step `{}`* (escalation level {})\n{}\n*Plan hash:* `{}`\n*Asked:* {}\n*Expires:* {}",
        escape(a.step_id()),
        a.level() + 1,
        escape(&req.plan_summary),
        escape(a.plan_hash()),
        escape(&req.asked),
        human_time(req.expires_at)
    ))
}

fn button(action_id: &str, label: &str, style: &str, value: &str, confirm: Option<Value>) -> Value {
    let mut b = json!({
        "type": "button",
        "action_id": action_id,
        "text": plain(label),
        "style": style,
        "value": value,
    });
    if let (Some(confirm), Some(obj)) = (confirm, b.as_object_mut()) {
        obj.insert("confirm".to_owned(), confirm);
    }
    b
}

/// The approval request: the update, then what waits for a decision, then an `actions` block
/// ([`APPROVAL_BLOCK_ID`]) with Approve ([`APPROVE_ACTION_ID`], style `primary`, behind a
/// confirmation dialog) and Reject ([`REJECT_ACTION_ID`], style `danger`), both valued
/// [`ApprovalRef::encode`].
pub fn approval_request(req: &ApprovalRequest) -> SlackMessage {
    let a = &req.approval;
    let value = a.encode();
    let confirm = json!({
        "title": plain(&cut(&format!("Approve {}?", a.step_id()), 100)),
        "text": plain(&cut(
            &format!(
                "Step {} of {} runs as planned (plan sha256 {}).",
                a.step_id(),
                a.incident_id(),
                a.plan_hash()
            ),
            300,
        )),
        "confirm": plain("Approve"),
        "deny": plain("Cancel"),
    });
    let actions = json!({
        "type": "actions",
        "block_id": APPROVAL_BLOCK_ID,
        "elements": [
            button(APPROVE_ACTION_ID, "Approve", "primary", &value, Some(confirm)),
            button(REJECT_ACTION_ID, "Reject", "danger", &value, None),
        ],
    });
    SlackMessage {
        text: fallback(
            &req.update,
            &format!("approval needed for step {}", a.step_id()),
        ),
        blocks: update_blocks(&req.update, vec![divider(), approval_section(req), actions]),
    }
}

/// Who decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A Slack user id (`U…`/`W…`), shown as a mention.
    SlackUser(String),
    /// A name, shown as text.
    Name(String),
}

impl Who {
    fn mrkdwn(&self) -> String {
        match self {
            Who::SlackUser(id)
                if id.len() <= 32
                    && (id.starts_with('U') || id.starts_with('W'))
                    && id.len() > 1
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
            {
                format!("<@{id}>")
            }
            Who::SlackUser(s) | Who::Name(s) => format!("*{}*", escape(s)),
        }
    }
}

/// How an approval request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approved {
        by: Who,
    },
    Rejected {
        by: Who,
        reason: Option<String>,
    },
    /// Nobody decided in time.
    Expired,
}

/// The approval request once decided, for `chat.update`: the same update and plan, the buttons
/// replaced by "Approved by X" / "Rejected by X: reason" / "Expired", and when.
pub fn approval_decided(
    req: &ApprovalRequest,
    decision: &Decision,
    at: OffsetDateTime,
) -> SlackMessage {
    let when = human_time(at);
    let (line, short) = match decision {
        Decision::Approved { by } => (
            format!(":white_check_mark: Approved by {} at {when}", by.mrkdwn()),
            "approved".to_owned(),
        ),
        Decision::Rejected { by, reason } => (
            format!(
                ":x: Rejected by {}{} at {when}",
                by.mrkdwn(),
                reason
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": {}", escape(r)))
                    .unwrap_or_default()
            ),
            "rejected".to_owned(),
        ),
        Decision::Expired => (
            format!(":hourglass: Expired at {when}: nobody decided in time"),
            "expired".to_owned(),
        ),
    };
    SlackMessage {
        text: fallback(
            &req.update,
            &format!("step {} {short}", req.approval.step_id()),
        ),
        blocks: update_blocks(
            &req.update,
            vec![divider(), approval_section(req), section(&line)],
        ),
    }
}

// -------------------------------------------------------------------------- leadership summary

/// One open incident in the leadership summary. Plain text: the renderer escapes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub incident_id: String,
    pub severity: String,
    /// Containment status in words (`Contained`, `Waiting for approval of isolate-instance`).
    pub status: String,
    /// Scope: the resource, its account and region.
    pub scope: String,
    /// Impact: the asset's criticality and data classification, the findings.
    pub impact: String,
    /// The response SLA and the regulatory clocks, in words.
    pub clocks: String,
    /// The estimated resolution, in words.
    pub estimated_resolution: String,
}

/// The leadership summary: every open incident's scope, impact, containment status and
/// estimated resolution (at most 20 incidents shown, Slack's 50 blocks; the rest counted).
pub fn leadership_summary(incidents: &[OpenIncident], at: OffsetDateTime) -> SlackMessage {
    const SHOWN: usize = 20;
    let mut blocks = vec![
        header_block(&format!(
            "Leadership summary: {} open incident{}",
            incidents.len(),
            if incidents.len() == 1 { "" } else { "s" }
        )),
        context(&format!("As of {}", human_time(at))),
    ];
    for i in incidents.iter().take(SHOWN) {
        blocks.push(divider());
        blocks.push(section(&fit(
            &format!(
                "*{}* · {} · {}\n*Scope:* {}\n*Impact:* {}\n*Clocks:* {}\n*Estimated resolution:* {}",
                escape(&i.incident_id),
                escape(&i.severity),
                escape(&i.status),
                escape(&i.scope),
                escape(&i.impact),
                escape(&i.clocks),
                escape(&i.estimated_resolution)
            ),
            MAX_SECTION_CHARS,
        )));
    }
    if incidents.len() > SHOWN {
        blocks.push(context(&format!(
            "{} more open incidents not shown: `ir incidents list`",
            incidents.len() - SHOWN
        )));
    }
    SlackMessage {
        text: fit(
            &escape(&format!(
                "Leadership summary: {} open incident(s) as of {}",
                incidents.len(),
                human_time(at)
            )),
            MAX_FALLBACK_CHARS,
        ),
        blocks: capped(blocks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn update() -> IncidentUpdate {
        IncidentUpdate {
            incident_id: "INC-2026-042".to_owned(),
            headline: None,
            deadlines: Vec::new(),
            status: "Contained".to_owned(),
            severity: "High".to_owned(),
            time_detected: datetime!(2026-04-20 14:32 UTC),
            time_contained: Some(datetime!(2026-04-20 15:08 UTC)),
            summary: "Unauthorized access <!channel> & more".to_owned(),
            scope: vec!["Production database read access".to_owned()],
            actions_taken: vec!["Database credentials rotated".to_owned()],
            next_steps: vec![],
            links: vec![],
            dry_run: false,
        }
    }

    fn texts(blocks: &[Value]) -> String {
        serde_json::to_string(blocks).unwrap_or_default()
    }

    #[test]
    fn incident_text_is_escaped() {
        let m = incident_update(&update());
        let all = texts(&m.blocks);
        assert!(!all.contains("<!channel>"), "{all}");
        assert!(all.contains("&lt;!channel&gt; &amp; more"));
        assert!(m.text.contains("&lt;!channel&gt;"));
    }

    #[test]
    fn the_leadership_summary_escapes_what_it_shows_and_counts_what_it_does_not() {
        let one = OpenIncident {
            incident_id: "inc-0123456789abcdef0123".to_owned(),
            severity: "Critical".to_owned(),
            status: "Contained".to_owned(),
            scope: "ec2-instance i-0abc <!channel>".to_owned(),
            impact: "critical asset".to_owned(),
            clocks: "gdpr: 2d left".to_owned(),
            estimated_resolution: "no estimate recorded".to_owned(),
        };
        let m = leadership_summary(&vec![one; 42], datetime!(2026-04-20 14:32 UTC));
        let text = serde_json::to_string(&m.blocks).unwrap();
        assert!(text.contains("Leadership summary: 42 open incidents"));
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("&lt;!channel&gt;"));
        assert!(text.contains("22 more open incidents not shown"));
        assert!(m.blocks.len() <= 50);
    }

    #[test]
    fn fit_never_leaves_an_entity_open() {
        let s = escape(&"a&".repeat(100));
        for max in 2..60 {
            let f = fit(&s, max);
            assert!(f.chars().count() <= max);
            let body = f.trim_end_matches('…');
            if let Some(i) = body.rfind('&') {
                assert!(body[i..].contains(';'), "{f}");
            }
        }
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let mut u = update();
        u.scope = (0..500)
            .map(|i| format!("line {i} {}", "x".repeat(40)))
            .collect();
        let m = incident_update(&u);
        let scope = m.blocks[3]["text"]["text"].as_str().unwrap_or_default();
        assert!(scope.chars().count() <= MAX_SECTION_CHARS);
        assert!(scope.contains("more not shown"), "{scope}");
    }

    #[test]
    fn approval_refs_round_trip_and_refuse_garbage() {
        let r = ApprovalRef::new("INC-1", "isolate", "ab".repeat(32), 1)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(ApprovalRef::decode(&r.encode()), Ok(r.clone()));
        assert!(ApprovalRef::decode("{").is_err());
        assert!(
            ApprovalRef::decode(r#"{"v":2,"incident":"a","step":"b","plan":"c","level":0}"#)
                .is_err()
        );
        assert!(
            ApprovalRef::decode(r#"{"v":1,"incident":"","step":"b","plan":"c","level":0}"#)
                .is_err()
        );
        assert!(
            ApprovalRef::decode(r#"{"v":1,"incident":"a","step":"b","plan":"c","level":0,"x":1}"#)
                .is_err()
        );
        assert_eq!(
            ApprovalRef::new("x".repeat(256), "s", "p", 0),
            Err(ApprovalRefError::TooLong("incident id"))
        );
        let longest = ApprovalRef::new(
            "\"".repeat(255),
            "\\".repeat(255),
            "é".repeat(255),
            u32::MAX,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(longest.encode().chars().count() <= MAX_BUTTON_VALUE_CHARS);
    }
}
