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
//!
//! ## A finding naming several resources and findings (a GuardDuty attack sequence)
//!
//! Its resources (`R`, then the related `R2…`, of its own account) and its signal findings
//! (`S1…`) are read first (`GetItem`, strongly consistent): its own key known → **Repeat**; an
//! `open#` of any of its resources, in order → **Attach** to that incident; none → **New**. The
//! transaction of that decision also puts, each only if it does not exist, `open#Ri` → the
//! incident for every resource the incident records and no other incident holds, and
//! `finding#Si` → the incident (no delivery yet: `deliveries` 0) for every signal finding not
//! mapped yet; the incident item records the related resources. A signal finding delivered
//! later is that key's first delivery: it **attaches** to the incident (counted, its id
//! listed), as any later finding on one of the resources does. Any cancellation reads the keys
//! again. At most 32 resources and 64 signals: the largest transaction is 98 items of
//! DynamoDB's 100. A resource another open incident holds stays that incident's (incidents are
//! never merged); resolving an incident deletes the `open#` of each of its resources that maps
//! to it.
//!
//! The store is split by concern: `record` maps an incident to its item and back, `ingest`
//! is the correlation transaction above, `transitions` the optimistic updates of an incident's
//! life (status transitions, decision, records, last error), `queries` the index queries, and
//! `tx` runs a transaction and sorts its cancellation reasons.

mod ingest;
mod queries;
mod record;
mod transitions;
mod tx;

use ir_core::action::ContainmentRecord;
use ir_core::contracts::Decision;
use ir_core::correlate::Correlation;
use ir_core::event::RelatedResource;
use ir_core::incident::IncidentSummary;
use ir_core::review::Review;
use ir_core::{Resource, Severity};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Clients;
use crate::store::StoreError;
use crate::store::item::{Item, s};
use crate::store::schema::TableNames;

/// The finding ids kept on the incident item (an item is at most 400 KB); `findingCount`
/// counts them all, and the keys table maps every finding to its incident.
pub const MAX_FINDING_IDS: usize = 1000;

/// The other resources kept on the incident item (those of every attack sequence correlated
/// to it); one more is recorded but neither kept nor mapped to the incident.
pub const MAX_RELATED_RESOURCES: usize = 64;

const GET: &str = "dynamodb:GetItem";

/// Attribute names of the incidents and keys tables.
mod attr {
    pub const INCIDENT_ID: &str = "incidentId";
    pub const STATUS: &str = "status";
    pub const SEVERITY: &str = "severity";
    pub const PLAYBOOK: &str = "playbook";
    pub const RESOURCE_KEY: &str = "resourceKey";
    pub const RESOURCE: &str = "resource";
    pub const ACCOUNT: &str = "account";
    pub const REGION: &str = "region";
    pub const RELATED_RESOURCES: &str = "relatedResources";
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
    pub const REVIEW: &str = "review";
    pub const VERSION: &str = "version";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const WRITE_TOKEN: &str = "writeToken";
    pub const REVISION: &str = "revision";
    // keys table
    pub const KEY: &str = "key";
    pub const FINDING_ID: &str = "findingId";
    pub const COUNT: &str = "count";
    pub const DELIVERIES: &str = "deliveries";
    pub const FIRST_DELIVERED_AT: &str = "firstDeliveredAt";
    pub const OPENED_AT: &str = "openedAt";
    pub const MAPPED_BY: &str = "mappedBy";
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
    /// The resource as the opening finding described it: the one the playbook acts on.
    pub resource: Resource,
    /// The resource's account, as the opening finding named it (`accountId`): where every
    /// action of the incident acts. Items written before it was stored: the resource key's.
    pub account: String,
    /// The resource's region, as the opening finding named it; `None` on items written before
    /// it was stored (their actions acted in the functions' own region).
    pub region: Option<String>,
    /// The other resources the incident's findings name (attack sequences'), each mapped to
    /// the incident (`open#`) while it is open, so that a finding on any of them attaches;
    /// at most [`MAX_RELATED_RESOURCES`]. Absent on items written before: none.
    pub related_resources: Vec<RelatedResource>,
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
    /// The post-incident review, once opened (after resolution).
    pub review: Option<Review>,
    /// The triage revision: 0 when opened, one more every time a later finding raised the
    /// severity of the open incident (which is then triaged again). Absent on items written
    /// before revisions: 0.
    pub revision: u32,
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
    /// The incident's resource (the playbook's): the finding's own, or another when it was
    /// attached through one of the incident's related resources.
    pub resource: Resource,
    /// Earlier incidents on the same resource (this one excluded).
    pub history_count: u32,
    /// The incident's triage revision after the delivery.
    pub revision: u32,
    /// The delivery raised the severity of the open incident and so its revision; also `true`
    /// when a retried delivery whose write had landed cannot tell (the incident has been
    /// revised), so that the caller checks the revision's triage was started.
    pub escalated: bool,
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

fn key_of(name: &str, value: &str) -> Item {
    Item::from([(name.to_owned(), s(value))])
}

impl IncidentStore {
    /// A store on these clients and tables.
    pub fn new(clients: Clients, names: TableNames) -> IncidentStore {
        IncidentStore { clients, names }
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
}
