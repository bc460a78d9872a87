//! The incident store: correlation of findings into incidents, atomically, and the incident's
//! life (status transitions, triage decision, containment records, last error).
//!
//! ## Correlation (ARCHITECTURE.md "Correlation"), race-safe
//!
//! One delivery of finding `K` on resource `R` first tries to open incident
//! `inc-<sha256("finding:"+K)>` with one `TransactWriteItems`:
//!
//! 1. Put `finding#K` → incident, if it does not exist;
//! 2. Put `open#R` → incident, if it does not exist;
//! 3. Put the incident, if it does not exist.
//!
//! Either all three are written (`New`) or none is, and the cancellation reasons (one per item,
//! in order, each with the item as it is thanks to `ReturnValuesOnConditionCheckFailure=ALL_OLD`)
//! say why:
//! - (1) failed: the finding is known → **Repeat**: one transaction updates the finding key
//!   (count, last seen, deliveries; conditional on its `deliveries`) and the incident (last seen,
//!   occurrences, severity raised if higher; conditional on its `version`). Nothing is started.
//! - (2) failed: the resource has an open incident → **Attach**: one transaction puts `finding#K`
//!   → that incident (if it does not exist) and updates the incident (finding id appended,
//!   severity raised if higher; conditional on its `version`).
//!
//! Racing deliveries of one finding compute the same incident id, so exactly one of them
//! creates it and reports `New`; the others become repeats. Racing different findings on one
//! resource all race for `open#R`: one opens the incident, the others attach to it. A lost
//! optimistic update (`version` moved) is retried from the item DynamoDB returned with the
//! cancellation, after a jittered backoff; so is a `TransactionConflict` (DynamoDB cancels a
//! transaction that touches an item another transaction is writing — the emulator never does).
//!
//! The SDK fills `ClientRequestToken` on every `TransactWriteItems`, so its own retries of a
//! transaction whose response was lost are idempotent (for 10 minutes). Each ingest also writes
//! its own token (`writeToken`) on the items it changes, so that a write that landed is always
//! recognized as ours — never misread as a repeat of ourselves.
//!
//! `open#R` is deleted in the same transaction that resolves the incident: after that, a new
//! finding on `R` opens a new incident, whose `history_count` counts the resolved one.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, Select,
    TransactWriteItem, Update,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ir_core::action::ContainmentRecord;
use ir_core::contracts::Decision;
use ir_core::correlate::{Correlation, incident_id};
use ir_core::incident::{IncidentSummary, Status, Timeline};
use ir_core::{ErrorName, Resource, SecurityEvent, Severity};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::expr::Expr;
use super::item::{Item, Reader, json_text, list_s, n, s};
use super::retry::{Attempts, write_token};
use super::schema::{BY_RESOURCE, BY_STATUS, TableNames};
use super::{StoreError, log_failure, stamp};
use crate::Clients;
use crate::sdk::SdkFailure;

/// Attempts at one ingest (each a transaction or a read), before `Conflict`.
const INGEST_ATTEMPTS: u32 = 40;
/// Attempts at one optimistic update of an incident, before `Conflict`.
const UPDATE_ATTEMPTS: u32 = 20;
/// The finding ids kept on the incident item (an item is at most 400 KB); `findingCount`
/// counts them all, and the keys table maps every finding to its incident.
pub const MAX_FINDING_IDS: usize = 1000;

const TX: &str = "dynamodb:TransactWriteItems";
const GET: &str = "dynamodb:GetItem";
const UPDATE: &str = "dynamodb:UpdateItem";
const QUERY: &str = "dynamodb:Query";

/// Attribute names of the incidents and keys tables.
mod attr {
    pub const INCIDENT_ID: &str = "incidentId";
    pub const STATUS: &str = "status";
    pub const SEVERITY: &str = "severity";
    pub const PLAYBOOK: &str = "playbook";
    pub const RESOURCE_KEY: &str = "resourceKey";
    pub const RESOURCE: &str = "resource";
    pub const FINDING_IDS: &str = "findingIds";
    pub const FINDING_COUNT: &str = "findingCount";
    pub const FIRST_SEEN: &str = "firstSeen";
    pub const DETECTED_AT: &str = "detectedAt";
    pub const TRIAGED_AT: &str = "triagedAt";
    pub const CONTAINED_AT: &str = "containedAt";
    pub const RESOLVED_AT: &str = "resolvedAt";
    pub const LAST_SEEN: &str = "lastSeen";
    pub const OCCURRENCES: &str = "occurrences";
    pub const DECISION: &str = "decision";
    pub const RECORDS: &str = "records";
    pub const LAST_ERROR: &str = "lastError";
    pub const VERSION: &str = "version";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const WRITE_TOKEN: &str = "writeToken";
    // keys table
    pub const KEY: &str = "key";
    pub const FINDING_ID: &str = "findingId";
    pub const COUNT: &str = "count";
    pub const DELIVERIES: &str = "deliveries";
    pub const FIRST_DELIVERED_AT: &str = "firstDeliveredAt";
    pub const OPENED_AT: &str = "openedAt";
}

/// The last failure recorded on an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub step: String,
    pub message: String,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub summary: IncidentSummary,
    /// The resource as the opening finding described it.
    pub resource: Resource,
    /// Distinct findings correlated to the incident (`summary.finding_ids` keeps the first
    /// [`MAX_FINDING_IDS`]).
    pub finding_count: u64,
    /// Deliveries ingested: the opening one, every attach and every repeat.
    pub occurrences: u64,
    /// The latest activity any delivery reported.
    pub last_seen: OffsetDateTime,
    pub decision: Option<Decision>,
    pub records: Vec<ContainmentRecord>,
    pub last_error: Option<LastError>,
    /// Incremented by every write; every update is conditional on it.
    pub version: u64,
    pub updated_at: OffsetDateTime,
    write_token: Option<String>,
}

/// What ingest decided for one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub correlation: Correlation,
    /// The incident after the delivery.
    pub incident: IncidentSummary,
    /// Earlier incidents on the same resource (this one excluded).
    pub history_count: u32,
}

/// Changes that ride along with a status transition.
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    /// Raises the severity to at least this (never lowers it).
    pub severity: Option<Severity>,
    pub playbook: Option<String>,
    /// Containment records to add (records already present are not added twice).
    pub records: Vec<ContainmentRecord>,
    pub last_error: Option<LastError>,
    /// Removes the last error (applied before `last_error`).
    pub clear_error: bool,
}

/// Incidents and correlation keys.
#[derive(Debug, Clone)]
pub struct IncidentStore {
    clients: Clients,
    names: TableNames,
}

/// One delivery being ingested.
#[derive(Debug)]
struct Delivery<'a> {
    event: &'a SecurityEvent,
    detected_at: OffsetDateTime,
    resource_key: String,
    finding_key: String,
    open_key: String,
    last_seen: OffsetDateTime,
    token: String,
}

/// The finding key item.
#[derive(Debug, Clone)]
struct FindingKey {
    incident_id: String,
    count: u64,
    deliveries: u64,
    last_seen: OffsetDateTime,
    write_token: Option<String>,
}

/// What ingest does next.
#[derive(Debug)]
enum Next {
    Open,
    Repeat {
        key: Item,
        incident: Option<Incident>,
    },
    Attach {
        incident_id: String,
        incident: Option<Incident>,
    },
}

/// The result of one ingest step.
#[derive(Debug)]
enum Step {
    Done(Correlation, Box<Incident>),
    Then(Next),
    /// Lost to a concurrent writer: back off, then `Next`.
    Contended(Next),
}

/// One cancellation reason of a transaction.
#[derive(Debug)]
struct Reason {
    code: String,
    item: Option<Item>,
}

impl Reason {
    fn failed_condition(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
}

/// How a transaction failed.
#[derive(Debug)]
enum TxError {
    /// Cancelled on conditions or conflicts: the reasons, one per item in order.
    Cancelled(Vec<Reason>),
    /// Cancelled by another transaction writing one of the items.
    Conflict,
    Failed(StoreError),
}

impl Incident {
    /// The incident a delivery opens.
    fn opened(d: &Delivery<'_>, incident_id: &str) -> Incident {
        Incident {
            summary: IncidentSummary {
                incident_id: incident_id.to_owned(),
                status: Status::Triage,
                severity: d.event.severity_label(),
                playbook: None,
                resource_key: d.resource_key.clone(),
                finding_ids: vec![d.event.finding_id.clone()],
                timeline: Timeline {
                    first_seen: d.event.first_seen,
                    detected_at: d.detected_at,
                    triaged_at: None,
                    contained_at: None,
                    resolved_at: None,
                },
            },
            resource: d.event.resource.clone(),
            finding_count: 1,
            occurrences: 1,
            last_seen: d.last_seen,
            decision: None,
            records: Vec::new(),
            last_error: None,
            version: 1,
            updated_at: d.detected_at,
            write_token: Some(d.token.clone()),
        }
    }

    fn from_item(item: &Item) -> Result<Incident, StoreError> {
        let what = match item.get(attr::INCIDENT_ID) {
            Some(AttributeValue::S(id)) => format!("incident {id}"),
            _ => "incident item".to_owned(),
        };
        let r = Reader::new(item, &what);
        Ok(Incident {
            summary: IncidentSummary {
                incident_id: r.s(attr::INCIDENT_ID)?.to_owned(),
                status: r.parsed(attr::STATUS)?,
                severity: r.parsed(attr::SEVERITY)?,
                playbook: r.opt_s(attr::PLAYBOOK)?.map(str::to_owned),
                resource_key: r.s(attr::RESOURCE_KEY)?.to_owned(),
                finding_ids: r.list_s(attr::FINDING_IDS)?,
                timeline: Timeline {
                    first_seen: r.opt_time(attr::FIRST_SEEN)?,
                    detected_at: r.time(attr::DETECTED_AT)?,
                    triaged_at: r.opt_time(attr::TRIAGED_AT)?,
                    contained_at: r.opt_time(attr::CONTAINED_AT)?,
                    resolved_at: r.opt_time(attr::RESOLVED_AT)?,
                },
            },
            resource: r.json(attr::RESOURCE)?,
            finding_count: r.u64(attr::FINDING_COUNT)?,
            occurrences: r.u64(attr::OCCURRENCES)?,
            last_seen: r.time(attr::LAST_SEEN)?,
            decision: r.opt_json(attr::DECISION)?,
            records: r
                .list_s(attr::RECORDS)?
                .iter()
                .map(|j| {
                    serde_json::from_str(j).map_err(|e| StoreError::Corrupt {
                        what: what.clone(),
                        why: format!("attribute `{}`: {e}", attr::RECORDS),
                    })
                })
                .collect::<Result<_, _>>()?,
            last_error: r.opt_json(attr::LAST_ERROR)?,
            version: r.u64(attr::VERSION)?,
            updated_at: r.time(attr::UPDATED_AT)?,
            write_token: r.opt_s(attr::WRITE_TOKEN)?.map(str::to_owned),
        })
    }

    /// The attributes that change over an incident's life, with their stored values (`None`:
    /// absent).
    fn mutable_attributes(
        &self,
    ) -> Result<Vec<(&'static str, Option<AttributeValue>)>, StoreError> {
        let t = &self.summary.timeline;
        let opt_time = |v: Option<OffsetDateTime>| v.map(stamp).transpose().map(|x| x.map(s));
        let records = self
            .records
            .iter()
            .map(|r| json_text("containment record", r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(vec![
            (attr::STATUS, Some(s(self.summary.status.as_str()))),
            (attr::SEVERITY, Some(s(self.summary.severity.as_str()))),
            (attr::PLAYBOOK, self.summary.playbook.clone().map(s)),
            (
                attr::FINDING_IDS,
                Some(list_s(self.summary.finding_ids.iter().cloned())),
            ),
            (attr::FINDING_COUNT, Some(n(self.finding_count))),
            (attr::FIRST_SEEN, opt_time(t.first_seen)?),
            (attr::TRIAGED_AT, opt_time(t.triaged_at)?),
            (attr::CONTAINED_AT, opt_time(t.contained_at)?),
            (attr::RESOLVED_AT, opt_time(t.resolved_at)?),
            (attr::LAST_SEEN, Some(s(stamp(self.last_seen)?))),
            (attr::OCCURRENCES, Some(n(self.occurrences))),
            (
                attr::DECISION,
                self.decision
                    .as_ref()
                    .map(|d| json_text("decision", d))
                    .transpose()?
                    .map(s),
            ),
            (
                attr::RECORDS,
                (!records.is_empty()).then(|| list_s(records)),
            ),
            (
                attr::LAST_ERROR,
                self.last_error
                    .as_ref()
                    .map(|e| json_text("last error", e))
                    .transpose()?
                    .map(s),
            ),
        ])
    }

    /// The whole item (for the creating put).
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = Item::new();
        item.insert(
            attr::INCIDENT_ID.into(),
            s(self.summary.incident_id.clone()),
        );
        item.insert(
            attr::RESOURCE_KEY.into(),
            s(self.summary.resource_key.clone()),
        );
        item.insert(
            attr::RESOURCE.into(),
            s(json_text("resource", &self.resource)?),
        );
        item.insert(
            attr::DETECTED_AT.into(),
            s(stamp(self.summary.timeline.detected_at)?),
        );
        item.insert(attr::VERSION.into(), n(self.version));
        item.insert(attr::UPDATED_AT.into(), s(stamp(self.updated_at)?));
        if let Some(t) = &self.write_token {
            item.insert(attr::WRITE_TOKEN.into(), s(t.clone()));
        }
        for (name, value) in self.mutable_attributes()? {
            if let Some(v) = value {
                item.insert(name.into(), v);
            }
        }
        Ok(item)
    }

    /// Whether `self` and `other` differ in anything stored (besides version and token).
    fn differs(&self, other: &Incident) -> Result<bool, StoreError> {
        Ok(self.mutable_attributes()? != other.mutable_attributes()?)
    }

    /// The update from `self` (as stored, at `self.version`) to `next`: every changed attribute,
    /// the next version, the write token and time; conditional on the version read.
    fn update_to(&self, next: &Incident) -> Result<Expr, StoreError> {
        let mut e = Expr::new();
        for ((name, old), (_, new)) in self
            .mutable_attributes()?
            .into_iter()
            .zip(next.mutable_attributes()?)
        {
            if old != new {
                match new {
                    Some(v) => e.set(name, v),
                    None => e.remove(name),
                };
            }
        }
        e.set(attr::VERSION, n(next.version));
        e.set(attr::UPDATED_AT, s(stamp(next.updated_at)?));
        if let Some(t) = &next.write_token {
            e.set(attr::WRITE_TOKEN, s(t.clone()));
        }
        e.require_eq(attr::VERSION, n(self.version));
        Ok(e)
    }

    /// Folds one delivery in: last seen, first seen, severity raised if higher, one more
    /// occurrence.
    fn absorb(&mut self, d: &Delivery<'_>) {
        self.last_seen = self.last_seen.max(d.last_seen);
        if let Some(f) = d.event.first_seen {
            let first = self.summary.timeline.first_seen.map_or(f, |x| x.min(f));
            self.summary.timeline.first_seen = Some(first);
        }
        self.summary.severity = self.summary.severity.max(d.event.severity_label());
        self.occurrences += 1;
    }

    /// The next version, written by `token` at `at`.
    fn next_version(&self, token: &str, at: OffsetDateTime) -> Incident {
        let mut next = self.clone();
        next.version = self.version + 1;
        next.updated_at = at;
        next.write_token = Some(token.to_owned());
        next
    }

    fn written_by(&self, token: &str) -> bool {
        self.write_token.as_deref() == Some(token)
    }
}

impl FindingKey {
    fn from_item(item: &Item) -> Result<FindingKey, StoreError> {
        let r = Reader::new(item, "finding key");
        Ok(FindingKey {
            incident_id: r.s(attr::INCIDENT_ID)?.to_owned(),
            count: r.u64(attr::COUNT)?,
            deliveries: r.u64(attr::DELIVERIES)?,
            last_seen: r.time(attr::LAST_SEEN)?,
            write_token: r.opt_s(attr::WRITE_TOKEN)?.map(str::to_owned),
        })
    }
}

impl Delivery<'_> {
    /// `finding#K` → `incident_id`, first delivery.
    fn finding_key_item(&self, incident_id: &str) -> Result<Item, StoreError> {
        Ok(Item::from([
            (attr::KEY.to_owned(), s(self.finding_key.clone())),
            (attr::INCIDENT_ID.to_owned(), s(incident_id)),
            (
                attr::FINDING_ID.to_owned(),
                s(self.event.finding_id.clone()),
            ),
            (attr::COUNT.to_owned(), n(self.event.count)),
            (attr::DELIVERIES.to_owned(), n(1)),
            (attr::LAST_SEEN.to_owned(), s(stamp(self.last_seen)?)),
            (
                attr::FIRST_DELIVERED_AT.to_owned(),
                s(stamp(self.detected_at)?),
            ),
            (attr::WRITE_TOKEN.to_owned(), s(self.token.clone())),
        ]))
    }

    /// `open#R` → `incident_id`.
    fn open_key_item(&self, incident_id: &str) -> Result<Item, StoreError> {
        Ok(Item::from([
            (attr::KEY.to_owned(), s(self.open_key.clone())),
            (attr::INCIDENT_ID.to_owned(), s(incident_id)),
            (attr::RESOURCE_KEY.to_owned(), s(self.resource_key.clone())),
            (attr::OPENED_AT.to_owned(), s(stamp(self.detected_at)?)),
        ]))
    }

    /// How a delivery whose own token is on the finding key was correlated (its write landed
    /// but the answer was lost): the opening delivery's key points at the incident its key
    /// derives; later deliveries counted more than one.
    fn landed_as(&self, key: &FindingKey) -> Correlation {
        let incident_id = key.incident_id.clone();
        if key.deliveries > 1 {
            Correlation::Repeat { incident_id }
        } else if incident_id == ir_core::correlate::incident_id(&self.event.finding_key) {
            Correlation::New { incident_id }
        } else {
            Correlation::Attach { incident_id }
        }
    }
}

fn key_of(name: &str, value: &str) -> Item {
    Item::from([(name.to_owned(), s(value))])
}

/// A put that only creates.
fn put_new(table: &str, item: Item, key_attr: &str) -> Result<TransactWriteItem, StoreError> {
    let mut e = Expr::new();
    let k = e.name(key_attr);
    e.condition(format!("attribute_not_exists({k})"));
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(e.condition_expression())
        .set_expression_attribute_names(e.names())
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::build(TX, e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A conditional update inside a transaction.
fn update_in_tx(table: &str, key: Item, e: &Expr) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(e.update_expression())
        .set_condition_expression(e.condition_expression())
        .set_expression_attribute_names(e.names())
        .set_expression_attribute_values(e.values())
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::build(TX, e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

impl IncidentStore {
    /// A store on these clients and tables.
    pub fn new(clients: Clients, names: TableNames) -> IncidentStore {
        IncidentStore { clients, names }
    }

    /// Correlates one delivery of a finding (see the module docs) and reports what it did.
    /// `detected_at` is when the suite received it (EventBridge's `time`).
    pub async fn ingest(
        &self,
        event: &SecurityEvent,
        detected_at: OffsetDateTime,
    ) -> Result<Ingested, StoreError> {
        if event.finding_key.is_empty() {
            return Err(StoreError::InvalidInput(format!(
                "finding {} has no correlation key",
                event.finding_id
            )));
        }
        let resource_key = event.resource_key();
        let d = Delivery {
            event,
            detected_at,
            finding_key: format!("finding#{}", event.finding_key),
            open_key: format!("open#{resource_key}"),
            resource_key,
            last_seen: event.last_seen.unwrap_or(detected_at),
            token: write_token(),
        };
        let mut attempts = Attempts::new(&self.clients, INGEST_ATTEMPTS);
        let mut next = Next::Open;
        while attempts.take() {
            let step = match next {
                Next::Open => self.try_open(&d).await?,
                Next::Repeat { key, incident } => self.try_repeat(&d, &key, incident).await?,
                Next::Attach {
                    incident_id,
                    incident,
                } => self.try_attach(&d, &incident_id, incident).await?,
            };
            next = match step {
                Step::Done(correlation, incident) => {
                    let history_count = self
                        .count_history(
                            &incident.summary.resource_key,
                            &incident.summary.incident_id,
                            incident.summary.timeline.detected_at,
                        )
                        .await?;
                    return Ok(Ingested {
                        correlation,
                        incident: incident.summary,
                        history_count,
                    });
                }
                Step::Then(n) => n,
                Step::Contended(n) => {
                    attempts.backoff().await;
                    n
                }
            };
        }
        Err(StoreError::Conflict(format!(
            "finding {} on {}: still contended after {} attempts",
            event.finding_id,
            event.resource_key(),
            attempts.used()
        )))
    }

    /// The first step: open a new incident, all or nothing.
    async fn try_open(&self, d: &Delivery<'_>) -> Result<Step, StoreError> {
        let id = incident_id(&d.event.finding_key);
        let incident = Incident::opened(d, &id);
        let items = vec![
            put_new(&self.names.keys, d.finding_key_item(&id)?, attr::KEY)?,
            put_new(&self.names.keys, d.open_key_item(&id)?, attr::KEY)?,
            put_new(
                &self.names.incidents,
                incident.to_item()?,
                attr::INCIDENT_ID,
            )?,
        ];
        let reasons = match self.transact(items).await {
            Ok(()) => {
                return Ok(Step::Done(
                    Correlation::New { incident_id: id },
                    Box::new(incident),
                ));
            }
            Err(TxError::Conflict) => return Ok(Step::Contended(Next::Open)),
            Err(TxError::Failed(e)) => return Err(e),
            Err(TxError::Cancelled(reasons)) => reasons,
        };
        let [finding, open, created] = match <[Reason; 3]>::try_from(reasons) {
            Ok(r) => r,
            // No usable reasons: read the keys to find out.
            Err(_) => return self.open_decided_by_reading(d).await,
        };
        if finding.failed_condition() {
            let key = match finding.item {
                Some(item) => item,
                None => match self.get_key(&d.finding_key).await? {
                    Some(item) => item,
                    None => return Ok(Step::Contended(Next::Open)),
                },
            };
            let parsed = FindingKey::from_item(&key)?;
            if parsed.write_token.as_deref() == Some(d.token.as_str()) {
                let incident = self.get_required(&parsed.incident_id).await?;
                return Ok(Step::Done(d.landed_as(&parsed), Box::new(incident)));
            }
            // The incident the finding opened came back with the cancellation: no extra read.
            let prefetched = match created.item {
                Some(item) if created.code == "ConditionalCheckFailed" => {
                    Some(Incident::from_item(&item)?)
                        .filter(|i| i.summary.incident_id == parsed.incident_id)
                }
                _ => None,
            };
            return Ok(Step::Then(Next::Repeat {
                key,
                incident: prefetched,
            }));
        }
        if open.failed_condition() {
            let open_item = match open.item {
                Some(item) => item,
                None => match self.get_key(&d.open_key).await? {
                    Some(item) => item,
                    None => return Ok(Step::Contended(Next::Open)),
                },
            };
            let incident_id = Reader::new(&open_item, "open key")
                .s(attr::INCIDENT_ID)?
                .to_owned();
            return Ok(Step::Then(Next::Attach {
                incident_id,
                incident: None,
            }));
        }
        if created.failed_condition() {
            return Err(StoreError::Corrupt {
                what: format!("incident {id}"),
                why: format!(
                    "it exists but {} is not mapped to it (keys table edited?)",
                    d.finding_key
                ),
            });
        }
        // Cancelled with no failed condition and no conflict: read to find out.
        self.open_decided_by_reading(d).await
    }

    /// When a cancellation carries no usable reasons, the keys say what happened.
    async fn open_decided_by_reading(&self, d: &Delivery<'_>) -> Result<Step, StoreError> {
        if let Some(key) = self.get_key(&d.finding_key).await? {
            return Ok(Step::Then(Next::Repeat {
                key,
                incident: None,
            }));
        }
        if let Some(open) = self.get_key(&d.open_key).await? {
            let incident_id = Reader::new(&open, "open key")
                .s(attr::INCIDENT_ID)?
                .to_owned();
            return Ok(Step::Then(Next::Attach {
                incident_id,
                incident: None,
            }));
        }
        Ok(Step::Contended(Next::Open))
    }

    /// The same finding again: count it on its key and on its incident.
    async fn try_repeat(
        &self,
        d: &Delivery<'_>,
        key_item: &Item,
        incident: Option<Incident>,
    ) -> Result<Step, StoreError> {
        let key = FindingKey::from_item(key_item)?;
        if key.write_token.as_deref() == Some(d.token.as_str()) {
            let incident = self.get_required(&key.incident_id).await?;
            return Ok(Step::Done(d.landed_as(&key), Box::new(incident)));
        }
        let current = match incident {
            Some(i) => i,
            None => self.get_mapped(&key.incident_id, &d.finding_key).await?,
        };
        let mut next = current.next_version(&d.token, d.detected_at);
        next.absorb(d);

        let mut ke = Expr::new();
        ke.set(attr::COUNT, n(key.count.max(d.event.count)))
            .set(attr::LAST_SEEN, s(stamp(key.last_seen.max(d.last_seen))?))
            .set(attr::DELIVERIES, n(key.deliveries + 1))
            .set(attr::WRITE_TOKEN, s(d.token.clone()))
            .require_eq(attr::DELIVERIES, n(key.deliveries))
            .require_eq(attr::INCIDENT_ID, s(key.incident_id.clone()));
        let items = vec![
            update_in_tx(&self.names.keys, key_of(attr::KEY, &d.finding_key), &ke)?,
            update_in_tx(
                &self.names.incidents,
                key_of(attr::INCIDENT_ID, &key.incident_id),
                &current.update_to(&next)?,
            )?,
        ];
        let again = |incident| Next::Repeat {
            key: key_item.clone(),
            incident,
        };
        let reasons = match self.transact(items).await {
            Ok(()) => {
                return Ok(Step::Done(
                    Correlation::Repeat {
                        incident_id: key.incident_id,
                    },
                    Box::new(next),
                ));
            }
            Err(TxError::Conflict) => return Ok(Step::Contended(again(None))),
            Err(TxError::Failed(e)) => return Err(e),
            Err(TxError::Cancelled(reasons)) => reasons,
        };
        let mut reasons = reasons.into_iter();
        let (key_reason, incident_reason) = (reasons.next(), reasons.next());
        // The incident's item as it is now, when it came back with the cancellation.
        let fresh_incident = match incident_reason {
            Some(Reason {
                code,
                item: Some(item),
            }) if code == "ConditionalCheckFailed" => Some(Incident::from_item(&item)?),
            _ => None,
        };
        match key_reason {
            Some(Reason {
                code,
                item: Some(item),
            }) if code == "ConditionalCheckFailed" => Ok(Step::Contended(Next::Repeat {
                key: item,
                incident: fresh_incident,
            })),
            Some(r) if r.failed_condition() => match self.get_key(&d.finding_key).await? {
                Some(item) => Ok(Step::Contended(Next::Repeat {
                    key: item,
                    incident: fresh_incident,
                })),
                None => Err(StoreError::Corrupt {
                    what: d.finding_key.clone(),
                    why: "the finding key disappeared (keys are never deleted)".into(),
                }),
            },
            _ => Ok(Step::Contended(again(fresh_incident))),
        }
    }

    /// Another finding on a resource whose incident is open: map it and add it to the incident.
    async fn try_attach(
        &self,
        d: &Delivery<'_>,
        incident_id: &str,
        incident: Option<Incident>,
    ) -> Result<Step, StoreError> {
        let current = match incident {
            Some(i) => i,
            None => self.get_mapped(incident_id, &d.open_key).await?,
        };
        if !current.summary.status.is_open() {
            // Resolved since `open#R` was read (resolution deletes it in the same
            // transaction): start over.
            return Ok(Step::Then(Next::Open));
        }
        let mut next = current.next_version(&d.token, d.detected_at);
        next.absorb(d);
        next.finding_count += 1;
        if next.summary.finding_ids.len() < MAX_FINDING_IDS {
            next.summary.finding_ids.push(d.event.finding_id.clone());
        }
        let items = vec![
            put_new(
                &self.names.keys,
                d.finding_key_item(incident_id)?,
                attr::KEY,
            )?,
            update_in_tx(
                &self.names.incidents,
                key_of(attr::INCIDENT_ID, incident_id),
                &current.update_to(&next)?,
            )?,
        ];
        let again = |incident| Next::Attach {
            incident_id: incident_id.to_owned(),
            incident,
        };
        let reasons = match self.transact(items).await {
            Ok(()) => {
                return Ok(Step::Done(
                    Correlation::Attach {
                        incident_id: incident_id.to_owned(),
                    },
                    Box::new(next),
                ));
            }
            Err(TxError::Conflict) => return Ok(Step::Contended(again(None))),
            Err(TxError::Failed(e)) => return Err(e),
            Err(TxError::Cancelled(reasons)) => reasons,
        };
        let mut reasons = reasons.into_iter();
        let (key_reason, incident_reason) = (reasons.next(), reasons.next());
        if let Some(r) = key_reason
            && r.failed_condition()
        {
            // The finding got mapped meanwhile (a racing delivery of it): a repeat now.
            let key = match r.item {
                Some(item) => item,
                None => match self.get_key(&d.finding_key).await? {
                    Some(item) => item,
                    None => return Ok(Step::Contended(again(None))),
                },
            };
            return Ok(Step::Then(Next::Repeat {
                key,
                incident: None,
            }));
        }
        let fresh = match incident_reason {
            Some(Reason {
                code,
                item: Some(item),
            }) if code == "ConditionalCheckFailed" => Some(Incident::from_item(&item)?),
            _ => None,
        };
        Ok(Step::Contended(again(fresh)))
    }

    /// Runs one transaction, sorting its failures: cancellations with their reasons, conflicts
    /// with other transactions, everything else (logged once).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        let err = match self
            .clients
            .dynamodb()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let reasons: Vec<Reason> = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                .cancellation_reasons()
                .iter()
                .map(|r| Reason {
                    code: r.code().unwrap_or("None").to_owned(),
                    item: r.item().cloned(),
                })
                .collect(),
            _ => return Err(TxError::Failed(StoreError::sdk(TX, &err))),
        };
        let unexpected = reasons
            .iter()
            .find(|r| {
                !matches!(
                    r.code.as_str(),
                    "None" | "ConditionalCheckFailed" | "TransactionConflict"
                )
            })
            .map(|r| r.code.clone());
        if let Some(code) = unexpected {
            let mut failure = SdkFailure::new(TX, &err);
            failure.name = match code.as_str() {
                "ThrottlingError" | "ProvisionedThroughputExceeded" => ErrorName::Retryable,
                "ValidationError" => ErrorName::InvalidInput,
                _ => ErrorName::Internal,
            };
            failure.detail = format!("cancelled with reason {code}: {}", failure.detail);
            log_failure(&failure);
            return Err(TxError::Failed(StoreError::Aws(failure)));
        }
        if reasons.iter().any(|r| r.code == "TransactionConflict") {
            return Err(TxError::Conflict);
        }
        Err(TxError::Cancelled(reasons))
    }

    /// A keys-table item, strongly consistent.
    async fn get_key(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .clients
            .dynamodb()
            .get_item()
            .table_name(&self.names.keys)
            .set_key(Some(key_of(attr::KEY, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET, &e))?;
        Ok(out.item)
    }

    /// The incident, strongly consistent.
    pub async fn get(&self, incident_id: &str) -> Result<Option<Incident>, StoreError> {
        let out = self
            .clients
            .dynamodb()
            .get_item()
            .table_name(&self.names.incidents)
            .set_key(Some(key_of(attr::INCIDENT_ID, incident_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET, &e))?;
        out.item.as_ref().map(Incident::from_item).transpose()
    }

    async fn get_required(&self, incident_id: &str) -> Result<Incident, StoreError> {
        self.get(incident_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("incident {incident_id}")))
    }

    /// The incident a key maps to: it must exist.
    async fn get_mapped(&self, incident_id: &str, key: &str) -> Result<Incident, StoreError> {
        self.get(incident_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: key.to_owned(),
                why: format!("maps to incident {incident_id}, which does not exist"),
            })
    }

    /// Moves the incident from `from` to `to` at `at`, with `patch`, if it is still in `from`.
    ///
    /// Refuses a transition `Status::can_become` does not allow (`IllegalTransition`) and a
    /// stale `from` (`Conflict`). Sets the timeline field of `to`: `containedAt` for
    /// `Contained`, `resolvedAt` for `Resolved` (the first time only; `triagedAt` is set by
    /// [`IncidentStore::record_decision`]). Resolving deletes the resource's `open#R` key in the
    /// same transaction, so the next finding on it opens a new incident.
    pub async fn transition(
        &self,
        incident_id: &str,
        from: Status,
        to: Status,
        at: OffsetDateTime,
        patch: IncidentPatch,
    ) -> Result<Incident, StoreError> {
        if !from.can_become(to) {
            return Err(StoreError::IllegalTransition {
                incident_id: incident_id.to_owned(),
                from,
                to,
            });
        }
        self.update(incident_id, at, |current| {
            if current.summary.status != from {
                return Err(StoreError::Conflict(format!(
                    "incident {incident_id} is {}, not {from}: cannot move it to {to}",
                    current.summary.status
                )));
            }
            let mut next = current.clone();
            next.summary.status = to;
            let t = &mut next.summary.timeline;
            match to {
                Status::Contained => t.contained_at = t.contained_at.or(Some(at)),
                Status::Resolved => t.resolved_at = t.resolved_at.or(Some(at)),
                Status::Triage | Status::Containment | Status::Postmortem => {}
            }
            apply_patch(&mut next, &patch);
            Ok(Some(next))
        })
        .await
    }

    /// Records the triage decision: the decision itself, `triagedAt` (the first time), the
    /// severity (raised to the decision's, never lowered: an attach may have raised it since)
    /// and the playbook.
    pub async fn record_decision(
        &self,
        incident_id: &str,
        decision: &Decision,
        at: OffsetDateTime,
    ) -> Result<Incident, StoreError> {
        if decision.incident_id != incident_id {
            return Err(StoreError::InvalidInput(format!(
                "the decision is for incident {}, not {incident_id}",
                decision.incident_id
            )));
        }
        self.update(incident_id, at, |current| {
            let mut next = current.clone();
            next.decision = Some(decision.clone());
            let t = &mut next.summary.timeline;
            t.triaged_at = t.triaged_at.or(Some(at));
            next.summary.severity = next.summary.severity.max(decision.severity);
            next.summary.playbook = Some(decision.playbook.id.clone());
            Ok(Some(next))
        })
        .await
    }

    /// Adds the records containment actions returned (release restores from them). A record
    /// already present is not added again, so a retried step changes nothing.
    pub async fn add_records(
        &self,
        incident_id: &str,
        records: &[ContainmentRecord],
    ) -> Result<Incident, StoreError> {
        let at = OffsetDateTime::now_utc();
        self.update(incident_id, at, |current| {
            let mut next = current.clone();
            add_records(&mut next.records, records);
            Ok(Some(next))
        })
        .await
    }

    /// Records the last failure of a step.
    pub async fn record_error(
        &self,
        incident_id: &str,
        step: &str,
        message: &str,
    ) -> Result<Incident, StoreError> {
        let at = OffsetDateTime::now_utc();
        self.update(incident_id, at, |current| {
            let mut next = current.clone();
            next.last_error = Some(LastError {
                step: step.to_owned(),
                message: message.to_owned(),
            });
            Ok(Some(next))
        })
        .await
    }

    /// One optimistic update: read (strongly consistent), let `plan` compute the next state,
    /// write the difference conditional on the version read; on a lost race, continue from the
    /// state DynamoDB returned with the failure. `plan` returning the same state (or `None`)
    /// writes nothing.
    async fn update<F>(
        &self,
        incident_id: &str,
        at: OffsetDateTime,
        mut plan: F,
    ) -> Result<Incident, StoreError>
    where
        F: FnMut(&Incident) -> Result<Option<Incident>, StoreError>,
    {
        let token = write_token();
        let mut attempts = Attempts::new(&self.clients, UPDATE_ATTEMPTS);
        let mut current = self.get_required(incident_id).await?;
        // `open#R` found pointing at another incident: resolve without touching it.
        let mut open_key_foreign = false;
        while attempts.take() {
            if current.written_by(&token) {
                return Ok(current);
            }
            let Some(planned) = plan(&current)? else {
                return Ok(current);
            };
            if !current.differs(&planned)? {
                return Ok(current);
            }
            let mut next = planned;
            next.version = current.version + 1;
            next.updated_at = at;
            next.write_token = Some(token.clone());
            let e = current.update_to(&next)?;
            let resolves = next.summary.status == Status::Resolved
                && current.summary.status != Status::Resolved;
            if resolves && !open_key_foreign {
                let open_key = format!("open#{}", current.summary.resource_key);
                let mut de = Expr::new();
                let k = de.name(attr::KEY);
                let id = de.name(attr::INCIDENT_ID);
                let v = de.value(s(incident_id));
                de.condition(format!("attribute_not_exists({k}) OR {id} = {v}"));
                let delete = Delete::builder()
                    .table_name(&self.names.keys)
                    .set_key(Some(key_of(attr::KEY, &open_key)))
                    .set_condition_expression(de.condition_expression())
                    .set_expression_attribute_names(de.names())
                    .set_expression_attribute_values(de.values())
                    .build()
                    .map_err(|e| StoreError::build(TX, e))?;
                let items = vec![
                    update_in_tx(
                        &self.names.incidents,
                        key_of(attr::INCIDENT_ID, incident_id),
                        &e,
                    )?,
                    TransactWriteItem::builder().delete(delete).build(),
                ];
                match self.transact(items).await {
                    Ok(()) => return Ok(next),
                    Err(TxError::Failed(e)) => return Err(e),
                    Err(TxError::Conflict) => {
                        attempts.backoff().await;
                        current = self.get_required(incident_id).await?;
                    }
                    Err(TxError::Cancelled(reasons)) => {
                        let mut reasons = reasons.into_iter();
                        match (reasons.next(), reasons.next()) {
                            (Some(r), _) if r.failed_condition() => {
                                attempts.backoff().await;
                                current = match r.item {
                                    Some(item) => Incident::from_item(&item)?,
                                    None => self.get_required(incident_id).await?,
                                };
                            }
                            (_, Some(r)) if r.failed_condition() => {
                                tracing::warn!(
                                    incident_id,
                                    open_key = %open_key,
                                    "the resource's open key maps to another incident; resolving without deleting it"
                                );
                                open_key_foreign = true;
                            }
                            _ => {
                                attempts.backoff().await;
                                current = self.get_required(incident_id).await?;
                            }
                        }
                    }
                }
                continue;
            }
            let sent = self
                .clients
                .dynamodb()
                .update_item()
                .table_name(&self.names.incidents)
                .set_key(Some(key_of(attr::INCIDENT_ID, incident_id)))
                .update_expression(e.update_expression())
                .set_condition_expression(e.condition_expression())
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match sent {
                Ok(out) => {
                    return match out.attributes {
                        Some(item) => Incident::from_item(&item),
                        None => Ok(next),
                    };
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        let item = c.item().cloned();
                        attempts.backoff().await;
                        current = match item {
                            Some(item) => Incident::from_item(&item)?,
                            None => self.get_required(incident_id).await?,
                        };
                    }
                    // A transaction (an ingest) is writing the item right now.
                    _ if err.code() == Some("TransactionConflictException") => {
                        attempts.backoff().await;
                        current = self.get_required(incident_id).await?;
                    }
                    _ => return Err(StoreError::sdk(UPDATE, &err)),
                },
            }
        }
        Err(StoreError::Conflict(format!(
            "incident {incident_id}: concurrent updates kept winning ({} attempts)",
            attempts.used()
        )))
    }

    /// Every incident ever opened on the resource, oldest first (`by-resource` index: eventually
    /// consistent, so an incident opened a moment ago may be missing).
    pub async fn history(&self, resource_key: &str) -> Result<Vec<IncidentSummary>, StoreError> {
        self.query_index(BY_RESOURCE, attr::RESOURCE_KEY, resource_key)
            .await
    }

    /// Every incident in a status, oldest first (`by-status` index: eventually consistent).
    pub async fn by_status(&self, status: Status) -> Result<Vec<IncidentSummary>, StoreError> {
        self.query_index(BY_STATUS, attr::STATUS, status.as_str())
            .await
    }

    async fn query_index(
        &self,
        index: &str,
        key_attr: &str,
        value: &str,
    ) -> Result<Vec<IncidentSummary>, StoreError> {
        let mut e = Expr::new();
        let k = e.name(key_attr);
        let v = e.value(s(value));
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .clients
                .dynamodb()
                .query()
                .table_name(&self.names.incidents)
                .index_name(index)
                .key_condition_expression(format!("{k} = {v}"))
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk(QUERY, &e))?;
            for item in page.items() {
                out.push(Incident::from_item(item)?.summary);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Incidents on the resource detected no later than `detected_at`, other than `incident_id`.
    async fn count_history(
        &self,
        resource_key: &str,
        incident_id: &str,
        detected_at: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let mut e = Expr::new();
        let rk = e.name(attr::RESOURCE_KEY);
        let d = e.name(attr::DETECTED_AT);
        let id = e.name(attr::INCIDENT_ID);
        let rkv = e.value(s(resource_key));
        let dv = e.value(s(stamp(detected_at)?));
        let idv = e.value(s(incident_id));
        let mut total: u32 = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .clients
                .dynamodb()
                .query()
                .table_name(&self.names.incidents)
                .index_name(BY_RESOURCE)
                .key_condition_expression(format!("{rk} = {rkv} AND {d} <= {dv}"))
                .filter_expression(format!("{id} <> {idv}"))
                .select(Select::Count)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk(QUERY, &e))?;
            total = total.saturating_add(u32::try_from(page.count).unwrap_or(0));
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(total)
    }
}

fn add_records(into: &mut Vec<ContainmentRecord>, records: &[ContainmentRecord]) {
    for r in records {
        if !into.contains(r) {
            into.push(r.clone());
        }
    }
}

fn apply_patch(next: &mut Incident, patch: &IncidentPatch) {
    if let Some(sev) = patch.severity {
        next.summary.severity = next.summary.severity.max(sev);
    }
    if let Some(p) = &patch.playbook {
        next.summary.playbook = Some(p.clone());
    }
    add_records(&mut next.records, &patch.records);
    if patch.clear_error {
        next.last_error = None;
    }
    if let Some(e) = &patch.last_error {
        next.last_error = Some(e.clone());
    }
}
