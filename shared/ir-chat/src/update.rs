//! The incident update, in the shape of the suite's incident communication template (Status,
//! Severity, Time detected, Time contained, Summary, Scope, Actions taken, Next steps), as data:
//! callers fill it from their records (`ir-incident`'s notify renders the same template as
//! text); [`crate::slack::blocks`] renders it as Block Kit and [`crate::jira::adf`] as an
//! Atlassian Document Format description.

use time::OffsetDateTime;

/// One incident update. Every text is plain (no markup): the renderers escape it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentUpdate {
    /// `INC-…`, as the suite names incidents.
    pub incident_id: String,
    /// What just happened, when the update is sent as it happens (`Step isolate-instance
    /// applied`); shown first.
    pub headline: Option<String>,
    /// As shown: `Open`, `Contained`, `Resolved`, …
    pub status: String,
    /// As shown: `Critical`, `High`, `Medium`, `Low`.
    pub severity: String,
    pub time_detected: OffsetDateTime,
    /// `None` while not contained.
    pub time_contained: Option<OffsetDateTime>,
    /// The regulatory deadlines, with the time left (`GDPR …: due … (71h 59m left)`).
    pub deadlines: Vec<String>,
    pub summary: String,
    pub scope: Vec<String>,
    pub actions_taken: Vec<String>,
    pub next_steps: Vec<String>,
    /// Links shown with the update (the Jira issue, the incident report, …).
    pub links: Vec<Link>,
    /// Sent by a step in dry-run: marked as such wherever it is shown.
    pub dry_run: bool,
}

/// A labelled link. Only `http`/`https` URLs are rendered as links; any other is shown as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub url: String,
}

impl Link {
    pub fn new(label: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            url: url.into(),
        }
    }

    /// Whether the URL is one a link may point to (`http://` or `https://`, no whitespace or
    /// control character).
    pub fn is_web(&self) -> bool {
        let u = self.url.as_str();
        (u.starts_with("https://") || u.starts_with("http://"))
            && !u.chars().any(|c| c.is_whitespace() || c.is_control())
    }
}

/// What marks an update sent in dry-run (the same mark as the SNS notifications).
pub const DRY_RUN_MARK: &str = "[DRY RUN]";

/// `2026-04-20 14:32 UTC`, as the template writes times.
pub fn human_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Cuts `text` to at most `max` characters, ending with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_read_like_the_template() {
        assert_eq!(
            human_time(datetime!(2026-04-20 16:32:59 +02:00)),
            "2026-04-20 14:32 UTC"
        );
    }

    #[test]
    fn cut_marks_what_it_cuts() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut("ééééé", 4).chars().count(), 4);
    }

    #[test]
    fn only_web_links_are_links() {
        assert!(Link::new("x", "https://a.example/b").is_web());
        assert!(!Link::new("x", "javascript:alert(1)").is_web());
        assert!(!Link::new("x", "https://a.example/ b").is_web());
    }
}
