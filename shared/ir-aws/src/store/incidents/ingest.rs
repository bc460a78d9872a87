//! Ingest: one delivery of a finding correlated into an incident, race-safe (see the
//! docs of the incident store).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::TransactWriteItem;
use ir_core::SecurityEvent;
use ir_core::correlate::{Correlation, incident_id};
use ir_core::event::RelatedResource;
use ir_core::incident::{IncidentSummary, Status, Timeline};
use ir_core::sequence::{MAX_RESOURCES, MAX_SIGNAL_KEYS};
use time::OffsetDateTime;

use super::tx::{Reason, TxError, put_new, update_in_tx};
use super::{
    GET, Incident, IncidentStore, Ingested, MAX_FINDING_IDS, MAX_RELATED_RESOURCES, attr, key_of,
};
use crate::store::expr::Expr;
use crate::store::item::{Item, Reader, n, s};
use crate::store::retry::{Attempts, write_token};
use crate::store::{StoreError, stamp};

/// Attempts at one ingest (each a transaction or a read), before `Conflict`.
const INGEST_ATTEMPTS: u32 = 40;

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
    /// Every resource key the delivery maps (`resource_key` first, then the related resources
    /// of the finding's account), at most [`MAX_RESOURCES`].
    resource_keys: Vec<String>,
    /// The signal findings' keys it maps (never its own), at most [`MAX_SIGNAL_KEYS`].
    signal_keys: Vec<String>,
}

/// The keys an extended delivery maps, as read before its transaction: the incident each
/// maps to, `None` when absent.
#[derive(Debug, Default)]
struct Snapshot {
    open: BTreeMap<String, Option<String>>,
    signals: BTreeMap<String, Option<String>>,
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
    /// Read every key an extended delivery maps, then decide (see the store's docs).
    Decide,
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
    /// Done: the correlation, the incident after it, whether the delivery escalated it.
    Done(Correlation, Box<Incident>, bool),
    Then(Next),
    /// Lost to a concurrent writer: back off, then `Next`.
    Contended(Next),
}

impl Step {
    /// For an extended delivery, every way on after a failed write starts from the keys again:
    /// what it read before is stale.
    fn or_decide(self, extended: bool) -> Step {
        match self {
            Step::Then(_) if extended => Step::Then(Next::Decide),
            Step::Contended(_) if extended => Step::Contended(Next::Decide),
            other => other,
        }
    }
}

impl Incident {
    /// The incident a delivery opens.
    fn opened(d: &Delivery<'_>, incident_id: &str) -> Incident {
        let mut opened = Incident {
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
            account: d.event.account.clone(),
            region: Some(d.event.region.clone()),
            related_resources: Vec::new(),
            finding_count: 1,
            occurrences: 1,
            last_seen: d.last_seen,
            decision: None,
            records: Vec::new(),
            last_error: None,
            review: None,
            revision: 0,
            version: 1,
            updated_at: d.detected_at,
            write_token: Some(d.token.clone()),
        };
        opened.add_related(d);
        opened
    }

    /// The delivery's resources added to the incident's related ones (its own resource and
    /// those it has already left out), while it is open and up to [`MAX_RELATED_RESOURCES`].
    fn add_related(&mut self, d: &Delivery<'_>) {
        if !self.summary.status.is_open() {
            return;
        }
        let own = std::iter::once(RelatedResource {
            account: d.event.account.clone(),
            region: Some(d.event.region.clone()),
            resource: d.event.resource.clone(),
            tags: d.event.resource_tags.clone(),
        });
        let mut known: BTreeSet<String> = self
            .related_resources
            .iter()
            .map(RelatedResource::key)
            .collect();
        known.insert(self.summary.resource_key.clone());
        for r in own.chain(d.event.related_resources.iter().cloned()) {
            if self.related_resources.len() >= MAX_RELATED_RESOURCES {
                break;
            }
            if known.insert(r.key()) {
                self.related_resources.push(r);
            }
        }
    }

    /// The resource keys the incident records (its own and its related resources').
    fn resource_keys(&self) -> BTreeSet<String> {
        std::iter::once(self.summary.resource_key.clone())
            .chain(self.related_resources.iter().map(RelatedResource::key))
            .collect()
    }

    /// Folds one delivery in: last seen, first seen, severity raised if higher, one more
    /// occurrence. A finding more severe than an open incident also starts a new revision:
    /// the incident is triaged again (its playbook may change). Returns whether it did.
    fn absorb(&mut self, d: &Delivery<'_>) -> bool {
        self.last_seen = self.last_seen.max(d.last_seen);
        if let Some(f) = d.event.first_seen {
            let first = self.summary.timeline.first_seen.map_or(f, |x| x.min(f));
            self.summary.timeline.first_seen = Some(first);
        }
        let severity = d.event.severity_label();
        let escalates = severity > self.summary.severity && self.summary.status.is_open();
        self.summary.severity = self.summary.severity.max(severity);
        self.occurrences += 1;
        if escalates {
            self.revision += 1;
        }
        if d.extended() {
            self.add_related(d);
        }
        escalates
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
    /// Whether the delivery maps more than its own key and resource (an attack sequence).
    fn extended(&self) -> bool {
        self.resource_keys.len() > 1 || !self.signal_keys.is_empty()
    }

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
        self.open_item(&self.resource_key, incident_id)
    }

    /// `open#<resource_key>` → `incident_id`.
    fn open_item(&self, resource_key: &str, incident_id: &str) -> Result<Item, StoreError> {
        Ok(Item::from([
            (attr::KEY.to_owned(), s(format!("open#{resource_key}"))),
            (attr::INCIDENT_ID.to_owned(), s(incident_id)),
            (attr::RESOURCE_KEY.to_owned(), s(resource_key)),
            (attr::OPENED_AT.to_owned(), s(stamp(self.detected_at)?)),
        ]))
    }

    /// `finding#S` → `incident_id` for a signal finding of the delivery, not delivered yet:
    /// its first delivery attaches to the incident.
    fn signal_item(&self, signal_key: &str, incident_id: &str) -> Result<Item, StoreError> {
        let finding_id = signal_key.rsplit(':').next().unwrap_or(signal_key);
        Ok(Item::from([
            (attr::KEY.to_owned(), s(format!("finding#{signal_key}"))),
            (attr::INCIDENT_ID.to_owned(), s(incident_id)),
            (attr::FINDING_ID.to_owned(), s(finding_id)),
            (attr::COUNT.to_owned(), n(0)),
            (attr::DELIVERIES.to_owned(), n(0)),
            (attr::LAST_SEEN.to_owned(), s(stamp(self.last_seen)?)),
            (
                attr::MAPPED_BY.to_owned(),
                s(self.event.finding_key.clone()),
            ),
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

impl IncidentStore {
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
        let mut resource_keys = vec![resource_key.clone()];
        for r in &event.related_resources {
            let key = r.key();
            // Another account's resource is recorded, never correlated: its findings are that
            // account's.
            if r.account == event.account
                && resource_keys.len() < MAX_RESOURCES
                && !resource_keys.contains(&key)
            {
                resource_keys.push(key);
            }
        }
        let mut signal_keys: Vec<String> = Vec::new();
        for k in &event.signal_keys {
            if !k.is_empty()
                && *k != event.finding_key
                && signal_keys.len() < MAX_SIGNAL_KEYS
                && !signal_keys.contains(k)
            {
                signal_keys.push(k.clone());
            }
        }
        let d = Delivery {
            event,
            detected_at,
            finding_key: format!("finding#{}", event.finding_key),
            open_key: format!("open#{resource_key}"),
            resource_key,
            last_seen: event.last_seen.unwrap_or(detected_at),
            token: write_token(),
            resource_keys,
            signal_keys,
        };
        let extended = d.extended();
        let mut attempts = Attempts::new(&self.clients, INGEST_ATTEMPTS);
        let mut next = if extended { Next::Decide } else { Next::Open };
        let mut seen: Option<Snapshot> = None;
        while attempts.take() {
            let step = match next {
                Next::Decide => {
                    let (read, then) = self.read_keys(&d).await?;
                    seen = Some(read);
                    Step::Then(then)
                }
                Next::Open => self.try_open(&d, seen.as_ref()).await?.or_decide(extended),
                Next::Repeat { key, incident } => self
                    .try_repeat(&d, &key, incident, seen.as_ref())
                    .await?
                    .or_decide(extended),
                Next::Attach {
                    incident_id,
                    incident,
                } => self
                    .try_attach(&d, &incident_id, incident, seen.as_ref())
                    .await?
                    .or_decide(extended),
            };
            next = match step {
                Step::Done(correlation, incident, escalated) => {
                    let history_count = self
                        .count_history(
                            &incident.summary.resource_key,
                            &incident.summary.incident_id,
                            incident.summary.timeline.detected_at,
                        )
                        .await?;
                    return Ok(Ingested {
                        correlation,
                        revision: incident.revision,
                        resource: incident.resource,
                        incident: incident.summary,
                        history_count,
                        escalated,
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
    async fn try_open(
        &self,
        d: &Delivery<'_>,
        seen: Option<&Snapshot>,
    ) -> Result<Step, StoreError> {
        let id = incident_id(&d.event.finding_key);
        let incident = Incident::opened(d, &id);
        let mut items = vec![
            put_new(&self.names.keys, d.finding_key_item(&id)?, attr::KEY)?,
            put_new(&self.names.keys, d.open_key_item(&id)?, attr::KEY)?,
            put_new(
                &self.names.incidents,
                incident.to_item()?,
                attr::INCIDENT_ID,
            )?,
        ];
        items.extend(self.extension(d, &incident, seen, Some(&d.resource_key))?);
        let reasons = match self.transact(items).await {
            Ok(()) => {
                return Ok(Step::Done(
                    Correlation::New { incident_id: id },
                    Box::new(incident),
                    false,
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
                let revised = incident.revision > 0;
                return Ok(Step::Done(
                    d.landed_as(&parsed),
                    Box::new(incident),
                    revised,
                ));
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
    ///
    /// A key an attack sequence mapped before its finding was delivered (`deliveries` 0): this
    /// is the finding's first delivery, which attaches it to the sequence's incident.
    async fn try_repeat(
        &self,
        d: &Delivery<'_>,
        key_item: &Item,
        incident: Option<Incident>,
        seen: Option<&Snapshot>,
    ) -> Result<Step, StoreError> {
        let key = FindingKey::from_item(key_item)?;
        if key.write_token.as_deref() == Some(d.token.as_str()) {
            let incident = self.get_required(&key.incident_id).await?;
            let revised = incident.revision > 0;
            return Ok(Step::Done(d.landed_as(&key), Box::new(incident), revised));
        }
        let current = match incident {
            Some(i) => i,
            None => self.get_mapped(&key.incident_id, &d.finding_key).await?,
        };
        let mut next = current.next_version(&d.token, d.detected_at);
        let escalated = next.absorb(d);
        let first_delivery = key.deliveries == 0;
        if first_delivery {
            next.finding_count += 1;
            if next.summary.finding_ids.len() < MAX_FINDING_IDS
                && !next.summary.finding_ids.contains(&d.event.finding_id)
            {
                next.summary.finding_ids.push(d.event.finding_id.clone());
            }
        }

        let mut ke = Expr::new();
        ke.set(attr::COUNT, n(key.count.max(d.event.count)))
            .set(attr::LAST_SEEN, s(stamp(key.last_seen.max(d.last_seen))?))
            .set(attr::DELIVERIES, n(key.deliveries + 1))
            .set(attr::WRITE_TOKEN, s(d.token.clone()))
            .require_eq(attr::DELIVERIES, n(key.deliveries))
            .require_eq(attr::INCIDENT_ID, s(key.incident_id.clone()));
        let mut items = vec![
            update_in_tx(&self.names.keys, key_of(attr::KEY, &d.finding_key), &ke)?,
            update_in_tx(
                &self.names.incidents,
                key_of(attr::INCIDENT_ID, &key.incident_id),
                &current.update_to(&next)?,
            )?,
        ];
        items.extend(self.extension(d, &next, seen, None)?);
        let again = |incident| Next::Repeat {
            key: key_item.clone(),
            incident,
        };
        let reasons = match self.transact(items).await {
            Ok(()) => {
                let incident_id = key.incident_id;
                let correlation = if first_delivery {
                    Correlation::Attach { incident_id }
                } else {
                    Correlation::Repeat { incident_id }
                };
                return Ok(Step::Done(correlation, Box::new(next), escalated));
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
        seen: Option<&Snapshot>,
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
        let escalated = next.absorb(d);
        next.finding_count += 1;
        if next.summary.finding_ids.len() < MAX_FINDING_IDS {
            next.summary.finding_ids.push(d.event.finding_id.clone());
        }
        let mut items = vec![
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
        items.extend(self.extension(d, &next, seen, None)?);
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
                    escalated,
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

    /// Reads every key an extended delivery maps (strongly consistent) and decides: its own
    /// key known → repeat; an `open#` of one of its resources, in order → attach to that
    /// incident; else open.
    async fn read_keys(&self, d: &Delivery<'_>) -> Result<(Snapshot, Next), StoreError> {
        let mapped = |item: Option<Item>, what: &str| -> Result<Option<String>, StoreError> {
            item.map(|i| {
                Reader::new(&i, what)
                    .s(attr::INCIDENT_ID)
                    .map(str::to_owned)
            })
            .transpose()
        };
        let own = self.get_key(&d.finding_key).await?;
        let opens = futures_util::future::try_join_all(
            d.resource_keys
                .iter()
                .map(|k| self.get_key_owned(format!("open#{k}"))),
        )
        .await?;
        let signals = futures_util::future::try_join_all(
            d.signal_keys
                .iter()
                .map(|k| self.get_key_owned(format!("finding#{k}"))),
        )
        .await?;
        let mut seen = Snapshot::default();
        let mut attach_to = None;
        for (k, item) in d.resource_keys.iter().zip(opens) {
            let to = mapped(item, "open key")?;
            if attach_to.is_none() {
                attach_to.clone_from(&to);
            }
            seen.open.insert(k.clone(), to);
        }
        for (k, item) in d.signal_keys.iter().zip(signals) {
            seen.signals.insert(k.clone(), mapped(item, "finding key")?);
        }
        let next = match (own, attach_to) {
            (Some(key), _) => Next::Repeat {
                key,
                incident: None,
            },
            (None, Some(incident_id)) => Next::Attach {
                incident_id,
                incident: None,
            },
            (None, None) => Next::Open,
        };
        Ok((seen, next))
    }

    /// The puts that map an extended delivery's other keys to `incident` (as it will be
    /// written), each only if it does not exist: `open#` of every resource the incident
    /// records that was absent when read (not `written`, the one the step itself writes), and `finding#`
    /// of every signal finding absent when read. None for a plain delivery, or onto a closed
    /// incident.
    fn extension(
        &self,
        d: &Delivery<'_>,
        incident: &Incident,
        seen: Option<&Snapshot>,
        written: Option<&str>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let Some(seen) = seen else {
            return Ok(Vec::new());
        };
        if !incident.summary.status.is_open() {
            return Ok(Vec::new());
        }
        let id = &incident.summary.incident_id;
        let recorded = incident.resource_keys();
        let mut items = Vec::new();
        for k in &d.resource_keys {
            let absent = matches!(seen.open.get(k), Some(None));
            if absent && Some(k.as_str()) != written && recorded.contains(k) {
                items.push(put_new(&self.names.keys, d.open_item(k, id)?, attr::KEY)?);
            }
        }
        for k in &d.signal_keys {
            if matches!(seen.signals.get(k), Some(None)) {
                items.push(put_new(&self.names.keys, d.signal_item(k, id)?, attr::KEY)?);
            }
        }
        Ok(items)
    }

    async fn get_key_owned(&self, key: String) -> Result<Option<Item>, StoreError> {
        self.get_key(&key).await
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
}
