//! Small formatting helpers every rendering of the report shares (text, Markdown, HTML, the
//! timeline): times in UTC, durations as a clock reads them, a change's value as read. They
//! return plain text; escaping for a markup is the caller's (see [`super::markdown`] and
//! [`super::html`]).

use serde_json::Value;
use time::{Duration, OffsetDateTime, UtcOffset};

/// `2026-11-20T10:05:00Z` (whole seconds, UTC).
pub fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-11-20 10:05:00` (whole seconds, UTC; the column says UTC).
pub fn clock(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `3.1s`, `12s`, `1m2s`, `2h5m`, `3d4h`.
pub fn human_duration(d: Duration) -> String {
    if d.is_negative() {
        return format!("-{}", human_duration(d.abs()));
    }
    let secs = d.whole_seconds();
    if secs < 60 {
        let text = format!("{:.1}", d.as_seconds_f64());
        return format!("{}s", text.strip_suffix(".0").unwrap_or(&text));
    }
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else {
        format!("{minutes}m{seconds}s")
    }
}

/// A number of seconds as [`human_duration`] says it.
pub fn seconds(s: f64) -> String {
    human_duration(Duration::seconds_f64(s))
}

/// `+3.1s` after `origin`, `-1m2s` before it.
pub fn offset(at: OffsetDateTime, origin: OffsetDateTime) -> String {
    let d = at - origin;
    if d.is_negative() {
        human_duration(d)
    } else {
        format!("+{}", human_duration(d))
    }
}

/// A change's value as read: `[sg-a, sg-b]`, `true`, `stop`, compact JSON for the rest.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_owned(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// `text` cut to at most `max` characters, ending with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One line: every control character (newlines included) a space.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(human_duration(Duration::milliseconds(400)), "0.4s");
        assert_eq!(human_duration(Duration::milliseconds(3100)), "3.1s");
        assert_eq!(human_duration(Duration::seconds(12)), "12s");
        assert_eq!(human_duration(Duration::seconds(62)), "1m2s");
        assert_eq!(human_duration(Duration::minutes(125)), "2h5m");
        assert_eq!(human_duration(Duration::hours(76)), "3d4h");
        assert_eq!(human_duration(Duration::seconds(-90)), "-1m30s");
        assert_eq!(seconds(3.1), "3.1s");
    }

    #[test]
    fn times_are_utc_whole_seconds() {
        let t = datetime!(2026-11-20 11:05:03.7 +01:00);
        assert_eq!(stamp(t), "2026-11-20T10:05:03Z");
        assert_eq!(clock(t), "2026-11-20 10:05:03");
        assert_eq!(offset(t, datetime!(2026-11-20 10:05:00 UTC)), "+3.7s");
        assert_eq!(offset(datetime!(2026-11-20 10:04 UTC), t), "-1m3s");
    }

    #[test]
    fn values_and_lines() {
        assert_eq!(
            value_text(&serde_json::json!(["sg-a", "sg-b"])),
            "[sg-a, sg-b]"
        );
        assert_eq!(value_text(&Value::Null), "none");
        assert_eq!(value_text(&serde_json::json!({"a": 1})), "{\"a\":1}");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        assert_eq!(one_line("a\nb\r\tc"), "a b  c");
    }
}
