//! Requests signed by an outside service that must be used once: Slack's interaction requests
//! are signed with a timestamp and accepted for five minutes, so a captured request could be
//! sent again inside that window. Each one's replay key is written once to the keys table
//! (`slack-request#<key>`, conditional on its absence); a second use finds it.

use time::OffsetDateTime;

use super::StoreError;
use super::expr::Expr;
use super::item::{Item, n, s};
use super::schema::TableNames;
use crate::Clients;

/// The keys-table prefix of a used Slack request (the only keys the decision function writes).
pub const SLACK_REQUEST_PREFIX: &str = "slack-request#";

mod attr {
    pub const KEY: &str = "key";
    /// When it was used (epoch seconds).
    pub const USED_AT: &str = "usedAt";
}

/// The used-once record of signed requests.
#[derive(Debug, Clone)]
pub struct Replays {
    clients: Clients,
    table: String,
}

impl Replays {
    pub fn new(clients: Clients, names: &TableNames) -> Replays {
        Replays {
            clients,
            table: names.keys.clone(),
        }
    }

    /// Records `replay_key` as used now: `true` the first time, `false` when it was used before.
    ///
    /// # Errors
    /// The write failed for another reason than the key being there.
    pub async fn first_use(
        &self,
        replay_key: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut e = Expr::new();
        let k = e.name(attr::KEY);
        e.condition(format!("attribute_not_exists({k})"));
        let item = Item::from([
            (
                attr::KEY.to_owned(),
                s(format!("{SLACK_REQUEST_PREFIX}{replay_key}")),
            ),
            (
                attr::USED_AT.to_owned(),
                n(u64::try_from(now.unix_timestamp()).unwrap_or_default()),
            ),
        ]);
        super::put_if(&self.clients, &self.table, item, &e).await
    }
}
