//! Atlassian Document Format: the JSON document Jira Cloud's REST v3 takes for rich text
//! fields such as an issue's `description`:
//! `{"version": 1, "type": "doc", "content": [block nodes]}`.
//!
//! Only what an incident needs: headings, paragraphs (lines joined by `hardBreak`), bullet and
//! ordered lists, bold text and links. ADF refuses empty text nodes; none is written. Text is
//! data, not markup, so it needs no escaping; each text is cut to [`MAX_TEXT_CHARS`] and each
//! list to [`MAX_LIST_ITEMS`] items (the description field holds at most 32 767 characters).

use serde_json::{Value, json};

use crate::update::{DRY_RUN_MARK, IncidentUpdate, Link, cut, human_time};

/// One text node at most.
pub const MAX_TEXT_CHARS: usize = 2000;
/// One list at most (then a last item says how many more).
pub const MAX_LIST_ITEMS: usize = 50;

/// A text node, or nothing for an empty text.
fn text_node(text: &str, marks: Option<Value>) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let mut node = json!({ "type": "text", "text": cut(text, MAX_TEXT_CHARS) });
    if let (Some(marks), Some(obj)) = (marks, node.as_object_mut()) {
        obj.insert("marks".to_owned(), marks);
    }
    Some(node)
}

/// Plain text as inline nodes: its lines separated by `hardBreak`.
fn inline(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push(json!({ "type": "hardBreak" }));
        }
        out.extend(text_node(line, None));
    }
    out
}

fn paragraph(content: Vec<Value>) -> Value {
    json!({ "type": "paragraph", "content": content })
}

/// A link as inline nodes: a `link` mark for a web URL, the label and URL as text otherwise.
fn link_nodes(link: &Link) -> Vec<Value> {
    let label = if link.label.trim().is_empty() {
        link.url.as_str()
    } else {
        link.label.as_str()
    };
    if link.is_web() {
        text_node(
            label,
            Some(json!([{ "type": "link", "attrs": { "href": link.url } }])),
        )
        .into_iter()
        .collect()
    } else {
        inline(&format!("{label}: {}", link.url))
    }
}

/// A document under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdfDoc {
    content: Vec<Value>,
}

impl AdfDoc {
    pub fn new() -> Self {
        Self::default()
    }

    /// A heading, level 1 to 6 (clamped).
    pub fn heading(mut self, level: u8, text: &str) -> Self {
        let content = inline(text);
        if !content.is_empty() {
            self.content.push(json!({
                "type": "heading",
                "attrs": { "level": level.clamp(1, 6) },
                "content": content,
            }));
        }
        self
    }

    /// A paragraph of plain text (its lines kept).
    pub fn paragraph(mut self, text: &str) -> Self {
        self.content.push(paragraph(inline(text)));
        self
    }

    /// A paragraph `label: value` with the label bold.
    pub fn labelled(mut self, label: &str, value: &str) -> Self {
        let mut content: Vec<Value> =
            text_node(&format!("{label}: "), Some(json!([{ "type": "strong" }])))
                .into_iter()
                .collect();
        content.extend(inline(value));
        self.content.push(paragraph(content));
        self
    }

    /// A paragraph: `prefix` then the link.
    pub fn link(mut self, prefix: &str, link: &Link) -> Self {
        let mut content = inline(prefix);
        content.extend(link_nodes(link));
        self.content.push(paragraph(content));
        self
    }

    fn list(mut self, kind: &str, items: Vec<Vec<Value>>) -> Self {
        let items: Vec<Vec<Value>> = items.into_iter().filter(|c| !c.is_empty()).collect();
        let total = items.len();
        let mut list_items: Vec<Value> = items
            .into_iter()
            .take(MAX_LIST_ITEMS)
            .map(|c| json!({ "type": "listItem", "content": [paragraph(c)] }))
            .collect();
        if total > MAX_LIST_ITEMS {
            list_items.push(json!({
                "type": "listItem",
                "content": [paragraph(inline(&format!("… {} more not shown", total - MAX_LIST_ITEMS)))],
            }));
        }
        if !list_items.is_empty() {
            self.content
                .push(json!({ "type": kind, "content": list_items }));
        }
        self
    }

    /// A bullet list, one item per line of text (empty ones left out).
    pub fn bullet_list(self, items: &[String]) -> Self {
        self.list("bulletList", items.iter().map(|i| inline(i)).collect())
    }

    /// A numbered list.
    pub fn ordered_list(self, items: &[String]) -> Self {
        self.list("orderedList", items.iter().map(|i| inline(i)).collect())
    }

    /// A bullet list of links.
    pub fn link_list(self, links: &[Link]) -> Self {
        self.list("bulletList", links.iter().map(link_nodes).collect())
    }

    /// The document.
    pub fn into_value(self) -> Value {
        json!({ "version": 1, "type": "doc", "content": self.content })
    }
}

/// The incident update as an issue description: Status, Severity, Time detected, Time
/// contained, then Summary, Scope, Actions taken, Next steps and the links, as the template
/// orders them; `incident` links the incident itself (the report, the console).
pub fn incident_description(update: &IncidentUpdate, incident: Option<&Link>) -> Value {
    let mut doc = AdfDoc::new();
    if update.dry_run {
        doc = doc.paragraph(&format!(
            "{DRY_RUN_MARK} Sent by a playbook step in dry-run: nothing was changed."
        ));
    }
    doc = doc
        .labelled("Incident", &update.incident_id)
        .labelled("Status", &update.status)
        .labelled("Severity", &update.severity)
        .labelled("Time detected", &human_time(update.time_detected))
        .labelled(
            "Time contained",
            &update
                .time_contained
                .map_or_else(|| "not contained yet".to_owned(), human_time),
        )
        .heading(3, "Summary")
        .paragraph(&update.summary);
    if !update.deadlines.is_empty() {
        doc = section(doc, "Regulatory deadlines", &update.deadlines, false, "");
    }
    doc = section(doc, "Scope", &update.scope, false, "Not determined yet.");
    doc = section(
        doc,
        "Actions taken",
        &update.actions_taken,
        true,
        "None yet.",
    );
    doc = section(doc, "Next steps", &update.next_steps, false, "None.");
    let mut links: Vec<Link> = incident.cloned().into_iter().collect();
    links.extend(update.links.iter().cloned());
    if !links.is_empty() {
        doc = doc.heading(3, "Links").link_list(&links);
    }
    doc.into_value()
}

fn section(doc: AdfDoc, title: &str, items: &[String], numbered: bool, none: &str) -> AdfDoc {
    let doc = doc.heading(3, title);
    if items.iter().all(|i| i.trim().is_empty()) {
        doc.paragraph(none)
    } else if numbered {
        doc.ordered_list(items)
    } else {
        doc.bullet_list(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text node anywhere in `v`.
    fn text_nodes(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if o.get("type").and_then(Value::as_str) == Some("text") {
                    out.push(
                        o.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    );
                }
                o.values().for_each(|x| text_nodes(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| text_nodes(x, out)),
            _ => {}
        }
    }

    #[test]
    fn documents_have_no_empty_text_and_cap_lists() {
        let items: Vec<String> = (0..80)
            .map(|i| {
                if i % 2 == 0 {
                    String::new()
                } else {
                    format!("a\n\nb{i}")
                }
            })
            .collect();
        let doc = AdfDoc::new()
            .paragraph("")
            .bullet_list(&items)
            .heading(9, "x")
            .into_value();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["type"], "doc");
        let mut texts = Vec::new();
        text_nodes(&doc, &mut texts);
        assert!(texts.iter().all(|t| !t.is_empty()));
        assert_eq!(doc["content"][2]["attrs"]["level"], 6);
        let list = doc["content"][1]["content"].as_array().map(Vec::len);
        assert_eq!(list, Some(40));
    }
}
