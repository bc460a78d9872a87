//! An incident as a DynamoDB item, and the update from one version to the next.

use aws_sdk_dynamodb::types::AttributeValue;
use ir_core::incident::{IncidentSummary, Timeline};
use time::OffsetDateTime;

use super::{Incident, attr};
use crate::store::expr::Expr;
use crate::store::item::{Item, Reader, json_text, list_s, n, s};
use crate::store::{StoreError, stamp};

impl Incident {
    pub(super) fn from_item(item: &Item) -> Result<Incident, StoreError> {
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
            account: match r.opt_s(attr::ACCOUNT)? {
                Some(a) => a.to_owned(),
                None => r
                    .s(attr::RESOURCE_KEY)?
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            },
            region: r.opt_s(attr::REGION)?.map(str::to_owned),
            related_resources: r.opt_json(attr::RELATED_RESOURCES)?.unwrap_or_default(),
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
            review: r.opt_json(attr::REVIEW)?,
            revision: r
                .opt_u64(attr::REVISION)?
                .map(u32::try_from)
                .transpose()
                .map_err(|e| StoreError::Corrupt {
                    what: what.clone(),
                    why: format!("attribute `{}`: {e}", attr::REVISION),
                })?
                .unwrap_or(0),
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
            (
                attr::RELATED_RESOURCES,
                (!self.related_resources.is_empty())
                    .then(|| json_text("related resources", &self.related_resources))
                    .transpose()?
                    .map(s),
            ),
            (attr::FIRST_SEEN, opt_time(t.first_seen)?),
            (attr::TRIAGED_AT, opt_time(t.triaged_at)?),
            (attr::CONTAINED_AT, opt_time(t.contained_at)?),
            (attr::RESOLVED_AT, opt_time(t.resolved_at)?),
            (attr::LAST_SEEN, Some(s(stamp(self.last_seen)?))),
            (attr::OCCURRENCES, Some(n(self.occurrences))),
            (
                attr::REVISION,
                (self.revision > 0).then(|| n(self.revision)),
            ),
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
            (
                attr::REVIEW,
                self.review
                    .as_ref()
                    .map(|r| json_text("review", r))
                    .transpose()?
                    .map(s),
            ),
        ])
    }

    /// The whole item (for the creating put).
    pub(super) fn to_item(&self) -> Result<Item, StoreError> {
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
        item.insert(attr::ACCOUNT.into(), s(self.account.clone()));
        if let Some(region) = &self.region {
            item.insert(attr::REGION.into(), s(region.clone()));
        }
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
    pub(super) fn differs(&self, other: &Incident) -> Result<bool, StoreError> {
        Ok(self.mutable_attributes()? != other.mutable_attributes()?)
    }

    /// The update from `self` (as stored, at `self.version`) to `next`: every changed attribute,
    /// the next version, the write token and time; conditional on the version read.
    pub(super) fn update_to(&self, next: &Incident) -> Result<Expr, StoreError> {
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

    /// The next version, written by `token` at `at`.
    pub(super) fn next_version(&self, token: &str, at: OffsetDateTime) -> Incident {
        let mut next = self.clone();
        next.version = self.version + 1;
        next.updated_at = at;
        next.write_token = Some(token.to_owned());
        next
    }

    pub(super) fn written_by(&self, token: &str) -> bool {
        self.write_token.as_deref() == Some(token)
    }
}
