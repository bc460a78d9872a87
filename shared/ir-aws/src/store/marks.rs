//! Keys-table items that say a thing was done once, each under its own prefix (an IAM
//! `dynamodb:LeadingKeys` condition gives each writer only its prefixes):
//! - `announced#<incident>#<seq>`: an audit record was announced to chat; for an approval
//!   request it holds the Slack message posted (`channel`, `ts`), which the decision updates;
//! - `leadership#<period>`: the leadership summary of a period was sent;
//! - `jira-issue#<incident>#<step>`: the Jira issue a ticket step created (`issueKey`, `url`): read
//!   strongly consistent before Jira's search, whose index lags a creation by seconds.
//!
//! A mark is written once (conditional on its absence): of two writers, one learns it came
//! second.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::StoreError;
use super::expr::Expr;
use super::item::{Item, n, s};
use super::schema::TableNames;
use crate::Clients;

/// An audit record announced.
pub const ANNOUNCED_PREFIX: &str = "announced#";
/// A leadership summary sent.
pub const LEADERSHIP_PREFIX: &str = "leadership#";
/// A ticket step's Jira issue.
pub const JIRA_ISSUE_PREFIX: &str = "jira-issue#";

const GET: &str = "dynamodb:GetItem";
const KEY: &str = "key";
const AT: &str = "markedAt";

/// `announced#<incident>#<seq>`.
pub fn announced_key(incident_id: &str, seq: u64) -> String {
    format!("{ANNOUNCED_PREFIX}{incident_id}#{seq}")
}

/// `jira-issue#<incident>#<step>`.
pub fn jira_issue_key(incident_id: &str, step_id: &str) -> String {
    format!("{JIRA_ISSUE_PREFIX}{incident_id}#{step_id}")
}

/// `leadership#<period>`.
pub fn leadership_key(period: i64) -> String {
    format!("{LEADERSHIP_PREFIX}{period}")
}

/// The marks in the keys table.
#[derive(Debug, Clone)]
pub struct Marks {
    clients: Clients,
    table: String,
}

impl Marks {
    pub fn new(clients: Clients, names: &TableNames) -> Marks {
        Marks {
            clients,
            table: names.keys.clone(),
        }
    }

    /// Writes the mark `key` with `fields` (strings; `key` and `markedAt` are the mark's own
    /// and not taken from them) unless it exists: `true` when this call wrote it.
    ///
    /// # Errors
    /// The write failed for another reason than the mark being there.
    pub async fn claim(
        &self,
        key: &str,
        fields: &BTreeMap<String, String>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut e = Expr::new();
        let k = e.name(KEY);
        e.condition(format!("attribute_not_exists({k})"));
        let mut item = Item::from([
            (KEY.to_owned(), s(key)),
            (
                AT.to_owned(),
                n(u64::try_from(now.unix_timestamp()).unwrap_or_default()),
            ),
        ]);
        for (name, value) in fields {
            if name != KEY && name != AT {
                item.insert(name.clone(), s(value.clone()));
            }
        }
        super::put_if(&self.clients, &self.table, item, &e).await
    }

    /// The mark's string fields, or `None` when it was never written (strongly consistent).
    ///
    /// # Errors
    /// The read failed.
    pub async fn get(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let out = self
            .clients
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET, &e))?;
        Ok(out.item().map(|item| {
            item.iter()
                .filter(|(k, _)| k.as_str() != KEY)
                .filter_map(|(k, v)| match v {
                    AttributeValue::S(text) => Some((k.clone(), text.clone())),
                    _ => None,
                })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mark_has_its_own_prefix() {
        assert_eq!(
            announced_key("inc-0123456789abcdef0123", 7),
            "announced#inc-0123456789abcdef0123#7"
        );
        assert_eq!(leadership_key(123), "leadership#123");
    }
}
