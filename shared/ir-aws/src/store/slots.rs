//! The playbook slots ([`ir_core::slots`]) in the keys table: one item, key `playbook-slots`,
//! holding the running executions and the queue as JSON and a version. Every change reads the
//! item (strongly consistent), applies the rule, and writes it back on the condition that the
//! version is still the one read; a writer that lost the race reads again.

use ir_core::slots::Slots;

use super::StoreError;
use super::expr::Expr;
use super::item::{Item, Reader, json_text, n, s};
use super::schema::TableNames;
use crate::Clients;

const GET: &str = "dynamodb:GetItem";

/// The key of the slots item (the record role may touch only this key of the keys table).
pub const SLOTS_KEY: &str = "playbook-slots";

/// How many times a change is tried against concurrent writers.
const ATTEMPTS: usize = 25;

mod attr {
    pub const KEY: &str = "key";
    pub const STATE: &str = "state";
    pub const VERSION: &str = "version";
}

/// The slots in the keys table.
#[derive(Debug, Clone)]
pub struct PlaybookSlots {
    clients: Clients,
    table: String,
}

impl PlaybookSlots {
    /// The slots on these clients, in the keys table of `names`.
    pub fn new(clients: Clients, names: &TableNames) -> PlaybookSlots {
        PlaybookSlots {
            clients,
            table: names.keys.clone(),
        }
    }

    /// The slots as stored (empty when never written), and their version.
    pub async fn get(&self) -> Result<(Slots, u64), StoreError> {
        let out = self
            .clients
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key(attr::KEY, s(SLOTS_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET, &e))?;
        match &out.item {
            None => Ok((Slots::default(), 0)),
            Some(item) => {
                let r = Reader::new(item, "playbook slots");
                Ok((r.json(attr::STATE)?, r.u64(attr::VERSION)?))
            }
        }
    }

    /// Applies `change` to the stored slots and writes them back if it says they changed
    /// (`(true, _)`), retrying against concurrent writers; returns what `change` returned for the
    /// state that was written (or read, when nothing changed).
    pub async fn update<T>(
        &self,
        mut change: impl FnMut(&mut Slots) -> (bool, T),
    ) -> Result<T, StoreError> {
        for _ in 0..ATTEMPTS {
            let (mut slots, version) = self.get().await?;
            let (changed, out) = change(&mut slots);
            if !changed {
                return Ok(out);
            }
            if self.put(&slots, version).await? {
                return Ok(out);
            }
        }
        Err(StoreError::Conflict(format!(
            "the playbook slots kept changing under {ATTEMPTS} attempts"
        )))
    }

    /// Writes `slots` as version `read + 1` if the stored version is still `read`; `false` when
    /// another writer came first.
    async fn put(&self, slots: &Slots, read: u64) -> Result<bool, StoreError> {
        let mut e = Expr::new();
        if read == 0 {
            let k = e.name(attr::KEY);
            e.condition(format!("attribute_not_exists({k})"));
        } else {
            let v = e.name(attr::VERSION);
            let was = e.value(n(read));
            e.condition(format!("{v} = {was}"));
        }
        let item = Item::from([
            (attr::KEY.to_owned(), s(SLOTS_KEY)),
            (
                attr::STATE.to_owned(),
                s(json_text("playbook slots", slots)?),
            ),
            (attr::VERSION.to_owned(), n(read + 1)),
        ]);
        super::put_if(&self.clients, &self.table, item, &e).await
    }
}
