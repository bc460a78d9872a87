//! Incidents by resource and by status (the table's indexes).

use aws_sdk_dynamodb::types::Select;
use ir_core::incident::{IncidentSummary, Status};
use time::OffsetDateTime;

use super::{Incident, IncidentStore, attr};
use crate::store::expr::Expr;
use crate::store::item::s;
use crate::store::schema::{BY_RESOURCE, BY_STATUS};
use crate::store::{StoreError, stamp};

const QUERY: &str = "dynamodb:Query";

impl IncidentStore {
    /// Every incident ever opened on the resource, oldest first (`by-resource` index: eventually
    /// consistent, so an incident opened a moment ago may be missing).
    pub async fn history(&self, resource_key: &str) -> Result<Vec<IncidentSummary>, StoreError> {
        Ok(self
            .query_index(BY_RESOURCE, attr::RESOURCE_KEY, resource_key)
            .await?
            .into_iter()
            .map(|i| i.summary)
            .collect())
    }

    /// Every incident in a status, oldest first (`by-status` index: eventually consistent).
    pub async fn by_status(&self, status: Status) -> Result<Vec<IncidentSummary>, StoreError> {
        Ok(self
            .in_status(status)
            .await?
            .into_iter()
            .map(|i| i.summary)
            .collect())
    }

    /// Every incident in a status, whole (the index projects every attribute), oldest first
    /// (`by-status` index: eventually consistent).
    pub async fn in_status(&self, status: Status) -> Result<Vec<Incident>, StoreError> {
        self.query_index(BY_STATUS, attr::STATUS, status.as_str())
            .await
    }

    async fn query_index(
        &self,
        index: &str,
        key_attr: &str,
        value: &str,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut e = Expr::new();
        let k = e.name(key_attr);
        let v = e.value(s(value));
        let mut out = Vec::new();
        let mut pages = self
            .clients
            .dynamodb()
            .query()
            .table_name(&self.names.incidents)
            .index_name(index)
            .key_condition_expression(format!("{k} = {v}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(QUERY, &e))?;
            for item in page.items() {
                out.push(Incident::from_item(item)?);
            }
        }
        Ok(out)
    }

    /// Incidents on the resource detected no later than `detected_at`, other than `incident_id`.
    pub(super) async fn count_history(
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
        let mut pages = self
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
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(QUERY, &e))?;
            total = total.saturating_add(u32::try_from(page.count).unwrap_or(0));
        }
        Ok(total)
    }
}
