//! The post-incident review (seed 000, "Post-incident review"): scheduled some days after the
//! incident is resolved, it reconstructs the timeline, analyses detection, evaluates the
//! response, names the root cause and tracks action items (owner, due date, status) to
//! completion. It is stored on the incident; every change to it is audited.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

// Dates as `2026-04-27`.
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

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

impl Review {
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
