//! Isolation holds: which incident isolated an instance, and the originals its release restores,
//! in the keys table — never on the instance, whose tags anyone with `ec2:CreateTags` can write.
//!
//! One item per instance, key `isolation#<account>:<region>:<instance id>`, written by the first
//! enforce-mode isolation of the instance before anything on it changes, with a conditional put
//! (`attribute_not_exists(key)`): of two incidents racing for one instance, one holds it. A
//! retry of the same incident reads its own hold back; release deletes the hold, conditional on
//! it still naming the releasing incident.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use ir_core::action::{EniGroups, InstanceAttributes};
use time::OffsetDateTime;

use super::expr::Expr;
use super::item::{Item, Reader, json_text, s};
use super::schema::TableNames;
use super::{StoreError, check_incident_id, stamp};
use crate::Clients;

const GET: &str = "dynamodb:GetItem";
const PUT: &str = "dynamodb:PutItem";
const DELETE: &str = "dynamodb:DeleteItem";

/// The prefix of every hold's key (the isolate role may touch only these keys).
pub const HOLD_PREFIX: &str = "isolation#";

mod attr {
    pub const KEY: &str = "key";
    pub const INCIDENT_ID: &str = "incidentId";
    pub const INSTANCE_ID: &str = "instanceId";
    pub const INTERFACES: &str = "interfaces";
    pub const ORIGINAL_ATTRIBUTES: &str = "originalAttributes";
    pub const HELD_AT: &str = "heldAt";
}

/// The key of an instance's hold: `isolation#<account>:<region>:<instance id>`.
pub fn hold_key(account: &str, region: &str, instance_id: &str) -> String {
    format!("{HOLD_PREFIX}{account}:{region}:{instance_id}")
}

/// An incident's hold on an instance: the originals as they were before its first isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationHold {
    /// [`hold_key`] of the instance.
    pub key: String,
    pub incident_id: String,
    pub instance_id: String,
    /// Every interface attached at the first isolation, with its groups before it.
    pub interfaces: Vec<EniGroups>,
    /// The instance's protection attributes before it.
    pub original_attributes: InstanceAttributes,
    pub held_at: OffsetDateTime,
}

impl IsolationHold {
    fn to_item(&self) -> Result<Item, StoreError> {
        Ok(Item::from([
            (attr::KEY.to_owned(), s(self.key.clone())),
            (attr::INCIDENT_ID.to_owned(), s(self.incident_id.clone())),
            (attr::INSTANCE_ID.to_owned(), s(self.instance_id.clone())),
            (
                attr::INTERFACES.to_owned(),
                s(json_text("interfaces", &self.interfaces)?),
            ),
            (
                attr::ORIGINAL_ATTRIBUTES.to_owned(),
                s(json_text("original attributes", &self.original_attributes)?),
            ),
            (attr::HELD_AT.to_owned(), s(stamp(self.held_at)?)),
        ]))
    }

    fn from_item(item: &Item) -> Result<IsolationHold, StoreError> {
        let r = Reader::new(item, "isolation hold");
        Ok(IsolationHold {
            key: r.s(attr::KEY)?.to_owned(),
            incident_id: r.s(attr::INCIDENT_ID)?.to_owned(),
            instance_id: r.s(attr::INSTANCE_ID)?.to_owned(),
            interfaces: r.json(attr::INTERFACES)?,
            original_attributes: r.json(attr::ORIGINAL_ATTRIBUTES)?,
            held_at: r.time(attr::HELD_AT)?,
        })
    }
}

/// The isolation holds in the keys table.
#[derive(Debug, Clone)]
pub struct IsolationHolds {
    clients: Clients,
    table: String,
}

fn key_item(key: &str) -> Item {
    Item::from([(attr::KEY.to_owned(), s(key))])
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.starts_with(HOLD_PREFIX) && key.len() > HOLD_PREFIX.len() {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "`{key}` is not an isolation hold key"
        )))
    }
}

impl IsolationHolds {
    /// The holds on these clients, in the keys table of `names`.
    pub fn new(clients: Clients, names: &TableNames) -> IsolationHolds {
        IsolationHolds {
            clients,
            table: names.keys.clone(),
        }
    }

    /// The hold under `key` (strongly consistent), if any.
    pub async fn get(&self, key: &str) -> Result<Option<IsolationHold>, StoreError> {
        check_key(key)?;
        let out = self
            .clients
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET, &e))?;
        out.item.as_ref().map(IsolationHold::from_item).transpose()
    }

    /// Writes `hold` if the instance has none (`attribute_not_exists(key)`), and returns the
    /// hold now stored: `hold` itself, or the one that was there first (read back), whichever
    /// incident it names. The caller compares the incident.
    pub async fn claim(&self, hold: &IsolationHold) -> Result<IsolationHold, StoreError> {
        check_key(&hold.key)?;
        check_incident_id(&hold.incident_id)?;
        let mut e = Expr::new();
        let k = e.name(attr::KEY);
        e.condition(format!("attribute_not_exists({k})"));
        let put = self
            .clients
            .dynamodb()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(hold.to_item()?))
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .send()
            .await;
        match put {
            Ok(_) => Ok(hold.clone()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                self.get(&hold.key).await?.ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "{}: the hold existed when it was written and is gone now (released concurrently)",
                        hold.key
                    ))
                })
            }
            Err(err) => Err(StoreError::sdk(PUT, &err)),
        }
    }

    /// Deletes the hold under `key` if it names `incident_id`. `true` when it was deleted,
    /// `false` when there was none; a hold of another incident is `Conflict` (left as it is).
    pub async fn release(&self, key: &str, incident_id: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        check_incident_id(incident_id)?;
        let mut e = Expr::new();
        e.require_eq(attr::INCIDENT_ID, s(incident_id));
        let deleted = self
            .clients
            .dynamodb()
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                match self.get(key).await? {
                    None => Ok(false),
                    Some(other) => Err(StoreError::Conflict(format!(
                        "{key} is held by incident {}, not {incident_id}: left as it is",
                        other.incident_id
                    ))),
                }
            }
            Err(err) => Err(StoreError::sdk(DELETE, &err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::action::VolumeAttachment;
    use time::macros::datetime;

    #[test]
    fn holds_round_trip_through_items() {
        let hold = IsolationHold {
            key: hold_key("123456789012", "eu-west-1", "i-0abc"),
            incident_id: "inc-0123456789abcdef0123".into(),
            instance_id: "i-0abc".into(),
            interfaces: vec![EniGroups {
                network_interface_id: "eni-1".into(),
                original_group_ids: vec!["sg-2".into(), "sg-1".into()],
            }],
            original_attributes: InstanceAttributes {
                disable_api_termination: false,
                disable_api_stop: true,
                shutdown_behavior: "terminate".into(),
                volumes: vec![VolumeAttachment {
                    device_name: "/dev/xvda".into(),
                    volume_id: "vol-1".into(),
                    delete_on_termination: true,
                }],
            },
            held_at: datetime!(2026-11-20 10:00:00 UTC),
        };
        assert_eq!(hold.key, "isolation#123456789012:eu-west-1:i-0abc");
        let back = IsolationHold::from_item(&hold.to_item().unwrap()).unwrap();
        assert_eq!(back, hold);
        assert!(check_key("open#x").is_err());
        assert!(check_key(HOLD_PREFIX).is_err());
    }
}
