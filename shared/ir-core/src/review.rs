//! The post-incident review (seed 000, "Post-incident review"): scheduled some days after the
//! incident is resolved, it reconstructs the timeline, analyses detection, evaluates the
//! response, names the root cause and tracks action items (owner, due date, status) to
//! completion. It is stored on the incident; every change to it is audited.
//!
//! Invariant: every change goes through [`Review`]'s own operations ([`Review::write`],
//! [`Review::add_item`], [`Review::close_item`], [`Review::close`]), which take only checked
//! input ([`NewItem::checked`], [`section_text`], [`parse_date`], [`check_item_id`]): an item id
//! is never reused, a closed item is never reopened or closed again, a closed review takes no
//! new section text or item, and a review closes only with every section written.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Date, OffsetDateTime};

use crate::error::{ErrorName, Named};

// Dates as `2026-04-27`.
time::serde::format_description!(pub(crate) iso_date, Date, "[year]-[month]-[day]");

/// Longest section text, in characters.
pub const MAX_SECTION_CHARS: usize = 8000;
/// Longest action item title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest owner (a person, a team, an email), in characters.
pub const MAX_OWNER_CHARS: usize = 100;
/// Longest note closing an item, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest Jira issue key, in characters.
pub const MAX_JIRA_KEY_CHARS: usize = 32;
/// Most action items one review holds (the review lives on the incident's item: 400 KB).
pub const MAX_ITEMS: usize = 50;
/// A review date or a due date at most this many days after the resolution (a typo in the year
/// is refused, not scheduled for 2062).
pub const MAX_DAYS_AHEAD: i64 = 731;
/// Most bytes the stored review may take (its JSON text on the incident's item).
pub const MAX_STORED_BYTES: usize = 200_000;

/// The review of one incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// The authenticated identity (ARN) that opened it.
    pub opened_by: String,
    /// The day the review meeting is held.
    #[serde(with = "iso_date")]
    pub review_date: Date,
    #[serde(default)]
    pub sections: ReviewSections,
    #[serde(default)]
    pub items: Vec<ActionItem>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub closed_by: Option<String>,
}

/// The review's written sections (Markdown, as the responders wrote them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewSections {
    /// Timeline reconstruction: what happened, minute by minute.
    #[serde(default)]
    pub timeline: String,
    /// Detection analysis: how it was found; could it have been found sooner.
    #[serde(default)]
    pub detection: String,
    /// Response evaluation: what went well, what was slow or confused.
    #[serde(default)]
    pub response: String,
    /// Root cause: the vulnerability or misconfiguration that enabled the incident.
    #[serde(default)]
    pub root_cause: String,
}

/// One action item: specific, assigned, time-bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionItem {
    /// `A1`, `A2`, … in the order added; never reused.
    pub id: String,
    pub title: String,
    pub owner: String,
    #[serde(with = "iso_date")]
    pub due: Date,
    pub status: ItemStatus,
    /// The Jira issue tracking the item, when there is one.
    #[serde(default)]
    pub jira_key: Option<String>,
    pub added_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub closed_by: Option<String>,
    /// What closing it says (done how, or why dropped).
    #[serde(default)]
    pub resolution: Option<String>,
}

/// Where an action item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Open,
    Done,
    /// Closed without being done (with the reason in `resolution`).
    Dropped,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Open => "open",
            ItemStatus::Done => "done",
            ItemStatus::Dropped => "dropped",
        }
    }
}

impl ActionItem {
    /// Still open after its due date (`today` is the UTC date).
    pub fn is_overdue(&self, today: Date) -> bool {
        self.status == ItemStatus::Open && self.due < today
    }
}

/// One section of the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    Timeline,
    Detection,
    Response,
    RootCause,
}

impl Section {
    /// Every section, in the order the review is read.
    pub const ALL: [Section; 4] = [
        Section::Timeline,
        Section::Detection,
        Section::Response,
        Section::RootCause,
    ];

    /// The stored name (`timeline`, `detection`, `response`, `root-cause`).
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Timeline => "timeline",
            Section::Detection => "detection",
            Section::Response => "response",
            Section::RootCause => "root-cause",
        }
    }

    /// Its heading.
    pub fn title(self) -> &'static str {
        match self {
            Section::Timeline => "Timeline reconstruction",
            Section::Detection => "Detection analysis",
            Section::Response => "Response evaluation",
            Section::RootCause => "Root cause",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReviewSections {
    /// The text of one section (empty: not written yet).
    pub fn get(&self, s: Section) -> &str {
        match s {
            Section::Timeline => &self.timeline,
            Section::Detection => &self.detection,
            Section::Response => &self.response,
            Section::RootCause => &self.root_cause,
        }
    }

    fn slot(&mut self, s: Section) -> &mut String {
        match s {
            Section::Timeline => &mut self.timeline,
            Section::Detection => &mut self.detection,
            Section::Response => &mut self.response,
            Section::RootCause => &mut self.root_cause,
        }
    }

    /// The sections not written yet, in order.
    pub fn missing(&self) -> Vec<Section> {
        Section::ALL
            .into_iter()
            .filter(|s| self.get(*s).trim().is_empty())
            .collect()
    }
}

/// Why a change to a review is refused. Stable names: bad input is `InvalidInput`, an item the
/// review does not have is `NotFound`, a change the review's state does not allow is `Conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReviewError {
    /// A field is malformed (a date, an item id, a Jira key, an empty or too long text).
    #[error("{field}: {why}")]
    InvalidInput { field: String, why: String },
    /// No item with this id.
    #[error("the review has no action item {id}")]
    NoSuchItem { id: String },
    /// The item is closed already (done or dropped): it is never closed twice or reopened.
    #[error("action item {id} is already {status}")]
    ItemClosed { id: String, status: &'static str },
    /// The review is closed: its sections and items are final (open items are still closed).
    #[error("the review was closed at {closed_at}: {what}")]
    ReviewClosed { closed_at: String, what: String },
    /// Closing the review with sections not written.
    #[error("the review cannot be closed before every section is written; missing: {}", list(.0))]
    SectionsMissing(Vec<Section>),
    /// The review holds as many items as it may.
    #[error("the review holds {MAX_ITEMS} action items already: track more in Jira under one item")]
    TooManyItems,
}

fn list(sections: &[Section]) -> String {
    sections
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Named for ReviewError {
    fn error_name(&self) -> ErrorName {
        match self {
            ReviewError::InvalidInput { .. } => ErrorName::InvalidInput,
            ReviewError::NoSuchItem { .. } => ErrorName::NotFound,
            ReviewError::ItemClosed { .. }
            | ReviewError::ReviewClosed { .. }
            | ReviewError::SectionsMissing(_)
            | ReviewError::TooManyItems => ErrorName::Conflict,
        }
    }
}

fn invalid(field: &str, why: impl Into<String>) -> ReviewError {
    ReviewError::InvalidInput {
        field: field.to_owned(),
        why: why.into(),
    }
}

/// A date as `YYYY-MM-DD`, nothing else (no time, no offset, no spaces).
pub fn parse_date(field: &str, text: &str) -> Result<Date, ReviewError> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return Err(invalid(
            field,
            format!("`{}` is not a date as YYYY-MM-DD", shown(text)),
        ));
    }
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|e| invalid(field, format!("`{text}` is not a date: {e}")))
}

/// `text` cut for an error message (it came from the command line).
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    let cut = cut.escape_debug().to_string();
    if text.chars().count() > 40 {
        format!("{cut}…")
    } else {
        cut
    }
}

/// An action item id: `A` and its number (`A1`, `A12`), no leading zero.
pub fn check_item_id(text: &str) -> Result<(), ReviewError> {
    let ok = text.strip_prefix('A').is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 6
            && !n.starts_with('0')
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "item",
            format!(
                "`{}` is not an action item id (A followed by its number: A1, A2, …)",
                shown(text)
            ),
        ))
    }
}

/// A Jira issue key: `[A-Z][A-Z0-9]+-[0-9]+` (`SEC-42`).
pub fn check_jira_key(text: &str) -> Result<(), ReviewError> {
    let ok = text.len() <= MAX_JIRA_KEY_CHARS
        && text.split_once('-').is_some_and(|(project, number)| {
            let p = project.as_bytes();
            p.len() >= 2
                && p.first().is_some_and(u8::is_ascii_uppercase)
                && p.iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "jira",
            format!(
                "`{}` is not a Jira issue key (PROJECT-123: capital letters and digits, a dash, a number)",
                shown(text)
            ),
        ))
    }
}

/// A one-line text (a title, an owner, a note): trimmed, not empty, at most `max` characters,
/// no control characters.
pub fn one_line(field: &str, text: &str, max: usize) -> Result<String, ReviewError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(invalid(field, "one line, without control characters"));
    }
    Ok(t.to_owned())
}

/// A section's text as written (Markdown): surrounding blank space trimmed, not empty, at most
/// [`MAX_SECTION_CHARS`] characters, no control characters but newlines and tabs.
pub fn section_text(section: Section, text: &str) -> Result<String, ReviewError> {
    let field = section.as_str();
    let t = text.trim();
    if t.is_empty() {
        return Err(invalid(
            field,
            "must not be empty (a section is written, never emptied)",
        ));
    }
    if t.chars().count() > MAX_SECTION_CHARS {
        return Err(invalid(
            field,
            format!("at most {MAX_SECTION_CHARS} characters"),
        ));
    }
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(invalid(
            field,
            "no control characters but newlines and tabs",
        ));
    }
    Ok(t.to_owned())
}

/// `date` is on or after the resolution day and at most [`MAX_DAYS_AHEAD`] days after it.
fn within(field: &str, date: Date, resolved_on: Date) -> Result<(), ReviewError> {
    if date < resolved_on {
        return Err(invalid(
            field,
            format!("{date} is before the incident was resolved ({resolved_on})"),
        ));
    }
    if (date - resolved_on).whole_days() > MAX_DAYS_AHEAD {
        return Err(invalid(
            field,
            format!(
                "{date} is more than {MAX_DAYS_AHEAD} days after the incident was resolved ({resolved_on})"
            ),
        ));
    }
    Ok(())
}

/// The day of the review: `asked` when given (not before the resolution day), else
/// `after_days` after the resolution day.
pub fn review_date(
    resolved_on: Date,
    after_days: u32,
    asked: Option<Date>,
) -> Result<Date, ReviewError> {
    let date = match asked {
        Some(d) => d,
        None => resolved_on
            .checked_add(time::Duration::days(i64::from(after_days)))
            .ok_or_else(|| invalid("date", "out of the calendar"))?,
    };
    within("date", date, resolved_on)?;
    Ok(date)
}

/// An action item as asked, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub title: String,
    pub owner: String,
    pub due: Date,
    pub jira_key: Option<String>,
}

impl NewItem {
    /// The item from what an operator typed: title and owner one line each, the due date as
    /// `YYYY-MM-DD`, the Jira key as `PROJECT-123`.
    pub fn checked(
        title: &str,
        owner: &str,
        due: &str,
        jira_key: Option<&str>,
    ) -> Result<NewItem, ReviewError> {
        let title = one_line("title", title, MAX_TITLE_CHARS)?;
        let owner = one_line("owner", owner, MAX_OWNER_CHARS)?;
        let due = parse_date("due", due)?;
        let jira_key = match jira_key {
            Some(k) => {
                check_jira_key(k)?;
                Some(k.to_owned())
            }
            None => None,
        };
        Ok(NewItem {
            title,
            owner,
            due,
            jira_key,
        })
    }
}

/// How an item is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Done,
    Dropped,
}

impl Closing {
    pub fn status(self) -> ItemStatus {
        match self {
            Closing::Done => ItemStatus::Done,
            Closing::Dropped => ItemStatus::Dropped,
        }
    }
}

/// What closing an item says, checked: one line of at most [`MAX_NOTE_CHARS`]; required to drop
/// an item (why).
pub fn closing_note(closing: Closing, note: Option<&str>) -> Result<Option<String>, ReviewError> {
    let note = note
        .map(|n| one_line("note", n, MAX_NOTE_CHARS))
        .transpose()?;
    if closing == Closing::Dropped && note.is_none() {
        return Err(invalid("note", "say why the item is dropped (--note)"));
    }
    Ok(note)
}

impl Review {
    /// A review opened by `by` at `at`, held on `review_date`, nothing written yet.
    pub fn open(by: &str, at: OffsetDateTime, review_date: Date) -> Review {
        Review {
            opened_at: at,
            opened_by: by.to_owned(),
            review_date,
            sections: ReviewSections::default(),
            items: Vec::new(),
            closed_at: None,
            closed_by: None,
        }
    }

    fn refuse_if_closed(&self, what: &str) -> Result<(), ReviewError> {
        match self.closed_at {
            Some(at) => Err(ReviewError::ReviewClosed {
                closed_at: at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| at.to_string()),
                what: what.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Writes sections (each text checked by [`section_text`]); returns the sections whose
    /// text changed (a text written again as it is changes nothing).
    pub fn write(&mut self, texts: &[(Section, String)]) -> Result<Vec<Section>, ReviewError> {
        self.refuse_if_closed("its sections are final")?;
        let mut changed = Vec::new();
        for (section, text) in texts {
            let slot = self.sections.slot(*section);
            if slot != text {
                slot.clone_from(text);
                if !changed.contains(section) {
                    changed.push(*section);
                }
            }
        }
        Ok(changed)
    }

    /// Adds an item (id: [`Review::next_item_id`]) due on or after the resolution day.
    pub fn add_item(
        &mut self,
        new: NewItem,
        resolved_on: Date,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<&ActionItem, ReviewError> {
        self.refuse_if_closed("no item is added to it")?;
        if self.items.len() >= MAX_ITEMS {
            return Err(ReviewError::TooManyItems);
        }
        within("due", new.due, resolved_on)?;
        let item = ActionItem {
            id: self.next_item_id(),
            title: new.title,
            owner: new.owner,
            due: new.due,
            status: ItemStatus::Open,
            jira_key: new.jira_key,
            added_by: by.to_owned(),
            added_at: at,
            closed_at: None,
            closed_by: None,
            resolution: None,
        };
        self.items.push(item);
        self.items.last().ok_or(ReviewError::TooManyItems)
    }

    /// Closes an open item as done or dropped, with what closing it says. A dropped item needs
    /// the note (why). Allowed after the review is closed: items are tracked to completion.
    pub fn close_item(
        &mut self,
        id: &str,
        closing: Closing,
        note: Option<String>,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<&ActionItem, ReviewError> {
        check_item_id(id)?;
        let note = closing_note(closing, note.as_deref())?;
        let item = self
            .items
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or_else(|| ReviewError::NoSuchItem { id: id.to_owned() })?;
        if item.status != ItemStatus::Open {
            return Err(ReviewError::ItemClosed {
                id: id.to_owned(),
                status: item.status.as_str(),
            });
        }
        item.status = closing.status();
        item.closed_at = Some(at);
        item.closed_by = Some(by.to_owned());
        item.resolution = note;
        Ok(item)
    }

    /// Closes the review: refused while a section is not written, or when closed already.
    pub fn close(&mut self, by: &str, at: OffsetDateTime) -> Result<(), ReviewError> {
        self.refuse_if_closed("it is closed once")?;
        let missing = self.sections.missing();
        if !missing.is_empty() {
            return Err(ReviewError::SectionsMissing(missing));
        }
        self.closed_at = Some(at);
        self.closed_by = Some(by.to_owned());
        Ok(())
    }

    /// The review's stored size is within [`MAX_STORED_BYTES`].
    pub fn check_size(&self) -> Result<(), ReviewError> {
        let bytes = serde_json::to_string(self)
            .map(|t| t.len())
            .unwrap_or(usize::MAX);
        if bytes > MAX_STORED_BYTES {
            return Err(invalid(
                "review",
                format!(
                    "it would take {bytes} bytes, more than the {MAX_STORED_BYTES} an incident keeps"
                ),
            ));
        }
        Ok(())
    }

    /// The items not yet closed.
    pub fn open_items(&self) -> impl Iterator<Item = &ActionItem> {
        self.items.iter().filter(|i| i.status == ItemStatus::Open)
    }

    /// The open items past their due date.
    pub fn overdue_items(&self, today: Date) -> impl Iterator<Item = &ActionItem> {
        self.items.iter().filter(move |i| i.is_overdue(today))
    }

    /// The id the next item gets: one more than the highest number used.
    pub fn next_item_id(&self) -> String {
        let highest = self
            .items
            .iter()
            .filter_map(|i| i.id.strip_prefix('A')?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        format!("A{}", highest.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn item(id: &str, due: Date, status: ItemStatus) -> ActionItem {
        ActionItem {
            id: id.to_owned(),
            title: "Rotate the deploy keys".to_owned(),
            owner: "team-platform".to_owned(),
            due,
            status,
            jira_key: None,
            added_by: "arn:aws:iam::111122223333:user/alice".to_owned(),
            added_at: datetime!(2026-04-24 10:00 UTC),
            closed_at: None,
            closed_by: None,
            resolution: None,
        }
    }

    fn review(items: Vec<ActionItem>) -> Review {
        Review {
            opened_at: datetime!(2026-04-24 09:00 UTC),
            opened_by: "arn:aws:iam::111122223333:user/alice".to_owned(),
            review_date: date!(2026 - 04 - 27),
            sections: ReviewSections::default(),
            items,
            closed_at: None,
            closed_by: None,
        }
    }

    #[test]
    fn only_open_items_past_their_due_date_are_overdue() {
        let r = review(vec![
            item("A1", date!(2026 - 05 - 01), ItemStatus::Open),
            item("A2", date!(2026 - 05 - 10), ItemStatus::Open),
            item("A3", date!(2026 - 05 - 01), ItemStatus::Done),
        ]);
        let today = date!(2026 - 05 - 02);
        let overdue: Vec<&str> = r.overdue_items(today).map(|i| i.id.as_str()).collect();
        assert_eq!(overdue, ["A1"]);
        assert_eq!(r.open_items().count(), 2);
        // Due today is not overdue yet.
        assert!(!r.items[0].is_overdue(date!(2026 - 05 - 01)));
    }

    #[test]
    fn item_ids_are_never_reused() {
        let mut r = review(vec![]);
        assert_eq!(r.next_item_id(), "A1");
        r.items = vec![
            item("A1", date!(2026 - 05 - 01), ItemStatus::Done),
            item("A3", date!(2026 - 05 - 01), ItemStatus::Dropped),
        ];
        assert_eq!(r.next_item_id(), "A4");
    }

    const ALICE: &str = "arn:aws:sts::111122223333:assumed-role/Responders/alice";

    #[test]
    fn dates_are_yyyy_mm_dd_and_nothing_else() {
        assert_eq!(parse_date("due", "2026-05-01"), Ok(date!(2026 - 05 - 01)));
        for bad in [
            "2026-5-1",
            "2026-05-01T00:00:00Z",
            " 2026-05-01",
            "2026-02-30",
            "2026-13-01",
            "+2026-05-01",
            "01-05-2026",
            "",
            "tomorrow",
        ] {
            let e = parse_date("due", bad).unwrap_err();
            assert_eq!(e.error_name(), ErrorName::InvalidInput, "{bad}");
            assert!(e.to_string().starts_with("due: "), "{bad}: {e}");
        }
    }

    #[test]
    fn item_ids_and_jira_keys_have_their_shapes() {
        for ok in ["A1", "A12", "A999999"] {
            assert_eq!(check_item_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "A0", "A01", "a1", "A", "A1x", "B1", "A1234567", "A-1", " A1",
        ] {
            assert!(check_item_id(bad).is_err(), "{bad}");
        }
        for ok in ["SEC-42", "IR2-1", "AB-0"] {
            assert_eq!(check_jira_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "sec-42", "S-42", "SEC42", "SEC-", "-42", "SEC-4a", "2SEC-4", "SEC-42 ", "SÉC-4",
            "SEC-1-2",
        ] {
            let e = check_jira_key(bad).unwrap_err();
            assert!(e.to_string().starts_with("jira: "), "{bad}: {e}");
        }
        assert!(check_jira_key(&format!("SEC-{}", "9".repeat(40))).is_err());
    }

    #[test]
    fn texts_are_checked_for_emptiness_length_and_control_characters() {
        assert_eq!(
            one_line("owner", "  team-platform ", 100).unwrap(),
            "team-platform"
        );
        assert!(one_line("owner", "   ", 100).is_err());
        assert!(one_line("owner", &"x".repeat(101), 100).is_err());
        assert!(one_line("title", "rotate\nkeys", 100).is_err());
        assert!(one_line("title", "rotate\u{1b}[31m keys", 100).is_err());
        let t = section_text(Section::Timeline, "\n09:00 alert\n09:05\tpaged\n").unwrap();
        assert_eq!(t, "09:00 alert\n09:05\tpaged");
        assert!(section_text(Section::Detection, " \n ").is_err());
        assert!(section_text(Section::Detection, "a\u{0}b").is_err());
        let e = section_text(Section::RootCause, &"x".repeat(MAX_SECTION_CHARS + 1)).unwrap_err();
        assert!(e.to_string().starts_with("root-cause: "), "{e}");
    }

    #[test]
    fn the_review_date_defaults_to_after_days_and_never_precedes_the_resolution() {
        let resolved = date!(2026 - 04 - 24);
        assert_eq!(review_date(resolved, 3, None), Ok(date!(2026 - 04 - 27)));
        assert_eq!(
            review_date(resolved, 3, Some(date!(2026 - 04 - 29))),
            Ok(date!(2026 - 04 - 29))
        );
        assert_eq!(review_date(resolved, 3, Some(resolved)), Ok(resolved));
        let e = review_date(resolved, 3, Some(date!(2026 - 04 - 23))).unwrap_err();
        assert!(
            e.to_string().contains("before the incident was resolved"),
            "{e}"
        );
        assert!(review_date(resolved, 3, Some(date!(2062 - 04 - 23))).is_err());
    }

    #[test]
    fn items_are_added_closed_once_and_never_reopened() {
        let resolved = date!(2026 - 04 - 24);
        let at = datetime!(2026-04-27 10:00 UTC);
        let mut r = Review::open(ALICE, at, date!(2026 - 04 - 27));
        let new = NewItem::checked(
            "Rotate the deploy keys",
            "team-platform",
            "2026-05-15",
            Some("SEC-42"),
        )
        .unwrap();
        let added = r.add_item(new.clone(), resolved, ALICE, at).unwrap();
        assert_eq!((added.id.as_str(), added.status), ("A1", ItemStatus::Open));
        assert_eq!(added.jira_key.as_deref(), Some("SEC-42"));
        let early = NewItem {
            due: date!(2026 - 04 - 20),
            ..new.clone()
        };
        assert!(r.add_item(early, resolved, ALICE, at).is_err());
        assert_eq!(r.items.len(), 1);
        r.add_item(new.clone(), resolved, ALICE, at).unwrap();

        let e = r
            .close_item("A9", Closing::Done, None, ALICE, at)
            .unwrap_err();
        assert_eq!(e.error_name(), ErrorName::NotFound);
        let e = r
            .close_item("A2", Closing::Dropped, None, ALICE, at)
            .unwrap_err();
        assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");
        let closed = r
            .close_item("A1", Closing::Done, Some("rotated".into()), ALICE, at)
            .unwrap();
        assert_eq!(closed.status, ItemStatus::Done);
        assert_eq!(closed.resolution.as_deref(), Some("rotated"));
        let e = r
            .close_item("A1", Closing::Dropped, Some("n/a".into()), ALICE, at)
            .unwrap_err();
        assert_eq!(
            e,
            ReviewError::ItemClosed {
                id: "A1".into(),
                status: "done"
            }
        );
        assert_eq!(e.error_name(), ErrorName::Conflict);
        assert_eq!(r.items[0].status, ItemStatus::Done);
    }

    #[test]
    fn a_review_closes_only_with_every_section_written_and_then_is_final() {
        let resolved = date!(2026 - 04 - 24);
        let at = datetime!(2026-04-27 10:00 UTC);
        let mut r = Review::open(ALICE, at, date!(2026 - 04 - 27));
        let changed = r
            .write(&[
                (Section::Timeline, "09:00 alert".into()),
                (Section::RootCause, "an open security group".into()),
            ])
            .unwrap();
        assert_eq!(changed, [Section::Timeline, Section::RootCause]);
        // The same text again changes nothing.
        assert_eq!(
            r.write(&[(Section::Timeline, "09:00 alert".into())])
                .unwrap(),
            []
        );
        let e = r.close(ALICE, at).unwrap_err();
        assert_eq!(
            e,
            ReviewError::SectionsMissing(vec![Section::Detection, Section::Response])
        );
        assert!(e.to_string().contains("detection, response"), "{e}");
        assert_eq!(r.closed_at, None);
        r.write(&[
            (Section::Detection, "GuardDuty, 4 minutes".into()),
            (Section::Response, "isolation approved in 6 minutes".into()),
        ])
        .unwrap();
        let new = NewItem::checked("Close port 22", "team-web", "2026-05-01", None).unwrap();
        r.add_item(new.clone(), resolved, ALICE, at).unwrap();
        r.close(ALICE, at).unwrap();
        assert_eq!(r.closed_by.as_deref(), Some(ALICE));
        assert_eq!(
            r.close(ALICE, at).unwrap_err().error_name(),
            ErrorName::Conflict
        );
        assert!(r.write(&[(Section::Timeline, "rewritten".into())]).is_err());
        assert!(r.add_item(new, resolved, ALICE, at).is_err());
        // Items are still tracked to completion.
        r.close_item("A1", Closing::Done, None, ALICE, at).unwrap();
        assert_eq!(r.open_items().count(), 0);
    }

    #[test]
    fn a_review_round_trips_as_json() {
        let r = review(vec![item("A1", date!(2026 - 05 - 01), ItemStatus::Open)]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"reviewDate\":\"2026-04-27\""), "{text}");
        assert!(text.contains("\"due\":\"2026-05-01\""), "{text}");
        let back: Review = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
