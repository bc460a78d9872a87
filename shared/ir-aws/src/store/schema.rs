//! The four tables, defined once: key schemas, attribute definitions, global secondary indexes
//! and TTL attribute. [`create_tables`] builds them (tests, the local cloud); the SAM template
//! declares the same definitions.
//!
//! | table     | partition key       | sort key         | indexes                                                                 | TTL         |
//! |-----------|---------------------|------------------|-------------------------------------------------------------------------|-------------|
//! | incidents | `incidentId` (S)    |                  | `by-resource` (`resourceKey`, `detectedAt`), `by-status` (`status`, `detectedAt`) |             |
//! | keys      | `key` (S)           |                  |                                                                         |             |
//! | audit     | `incidentId` (S)    | `seq` (N)        | (stream: `KEYS_ONLY`, read by ir-announce)                              |             |
//! | approvals | `incidentId` (S)    | `stepId` (S)     |                                                                         | `expiresAt` |
//!
//! Every table is on-demand (`PAY_PER_REQUEST`); every index projects all attributes, so a
//! history or status listing is one query with no follow-up reads.

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use ir_core::ErrorName;

use super::{StoreError, log_failure};
use crate::{Clients, SdkFailure};
use ir_env::InitError;

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// String.
    S,
    /// Number.
    N,
}

/// A key attribute: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttr {
    pub name: &'static str,
    pub kind: AttrType,
}

/// A global secondary index (projection: all attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
}

/// One table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The suffix of its name (`<prefix>-<suffix>` with [`TableNames::with_prefix`]).
    pub suffix: &'static str,
    /// The environment variable carrying its name in the functions.
    pub env_var: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
    pub indexes: &'static [IndexSpec],
    /// The attribute DynamoDB's TTL deletes expired items by (epoch seconds).
    pub ttl_attribute: Option<&'static str>,
    /// The table's stream view (`KEYS_ONLY`), when something reacts to its writes.
    pub stream: Option<&'static str>,
}

const fn s(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        kind: AttrType::S,
    }
}

const fn n(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        kind: AttrType::N,
    }
}

/// The index of incidents by resource, oldest first: the history enrichment counts.
pub const BY_RESOURCE: &str = "by-resource";
/// The index of incidents by status, oldest first.
pub const BY_STATUS: &str = "by-status";

/// Incidents: one item per incident.
pub const INCIDENTS: TableSpec = TableSpec {
    suffix: "incidents",
    env_var: "IR_INCIDENTS_TABLE",
    partition_key: s("incidentId"),
    sort_key: None,
    indexes: &[
        IndexSpec {
            name: BY_RESOURCE,
            partition_key: s("resourceKey"),
            sort_key: Some(s("detectedAt")),
        },
        IndexSpec {
            name: BY_STATUS,
            partition_key: s("status"),
            sort_key: Some(s("detectedAt")),
        },
    ],
    ttl_attribute: None,
    stream: None,
};

/// Correlation keys: `finding#<finding key>` → incident (forever), `open#<resource key>` → the
/// resource's open incident (deleted when it is resolved), `isolation#<account>:<region>:<instance>`
/// → the incident isolating the instance and its originals (deleted by its release).
pub const KEYS: TableSpec = TableSpec {
    suffix: "keys",
    env_var: "IR_KEYS_TABLE",
    partition_key: s("key"),
    sort_key: None,
    indexes: &[],
    ttl_attribute: None,
    stream: None,
};

/// The audit chain: one item per record.
pub const AUDIT: TableSpec = TableSpec {
    suffix: "audit",
    env_var: "IR_AUDIT_TABLE",
    partition_key: s("incidentId"),
    sort_key: Some(n("seq")),
    indexes: &[],
    ttl_attribute: None,
    // ir-announce reads each new record from the table by these keys (what the stream says
    // beyond them is never trusted).
    stream: Some("KEYS_ONLY"),
};

/// Approval requests: one item per gated step.
pub const APPROVALS: TableSpec = TableSpec {
    suffix: "approvals",
    env_var: "IR_APPROVALS_TABLE",
    partition_key: s("incidentId"),
    sort_key: Some(s("stepId")),
    indexes: &[],
    ttl_attribute: Some("expiresAt"),
    stream: None,
};

/// Every table.
pub const TABLES: [&TableSpec; 4] = [&INCIDENTS, &KEYS, &AUDIT, &APPROVALS];

impl TableSpec {
    /// Every attribute a key or an index uses, once each.
    pub fn attribute_definitions(&self) -> Vec<KeyAttr> {
        let mut out: Vec<KeyAttr> = Vec::new();
        let all = std::iter::once(self.partition_key)
            .chain(self.sort_key)
            .chain(
                self.indexes
                    .iter()
                    .flat_map(|i| std::iter::once(i.partition_key).chain(i.sort_key)),
            );
        for a in all {
            if !out.iter().any(|x| x.name == a.name) {
                out.push(a);
            }
        }
        out
    }
}

/// The names of the four tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub incidents: String,
    pub keys: String,
    pub audit: String,
    pub approvals: String,
}

impl TableNames {
    /// `IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`, `IR_APPROVALS_TABLE` (all required).
    pub fn from_env() -> Result<TableNames, InitError> {
        Ok(TableNames {
            incidents: ir_env::required(INCIDENTS.env_var)?,
            keys: ir_env::required(KEYS.env_var)?,
            audit: ir_env::required(AUDIT.env_var)?,
            approvals: ir_env::required(APPROVALS.env_var)?,
        })
    }

    /// `<prefix>-incidents`, `<prefix>-keys`, `<prefix>-audit`, `<prefix>-approvals`.
    pub fn with_prefix(prefix: &str) -> TableNames {
        TableNames {
            incidents: format!("{prefix}-{}", INCIDENTS.suffix),
            keys: format!("{prefix}-{}", KEYS.suffix),
            audit: format!("{prefix}-{}", AUDIT.suffix),
            approvals: format!("{prefix}-{}", APPROVALS.suffix),
        }
    }

    /// The name of one table.
    pub fn name(&self, spec: &TableSpec) -> &str {
        match spec.suffix {
            "incidents" => &self.incidents,
            "keys" => &self.keys,
            "audit" => &self.audit,
            _ => &self.approvals,
        }
    }
}

/// How long [`create_tables`] waits for a table to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

fn attr_type(k: AttrType) -> ScalarAttributeType {
    match k {
        AttrType::S => ScalarAttributeType::S,
        AttrType::N => ScalarAttributeType::N,
    }
}

fn key_schema(
    operation: &'static str,
    pk: KeyAttr,
    sk: Option<KeyAttr>,
) -> Result<Vec<KeySchemaElement>, StoreError> {
    let mut out = vec![
        KeySchemaElement::builder()
            .attribute_name(pk.name)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| StoreError::build(operation, e))?,
    ];
    if let Some(sk) = sk {
        out.push(
            KeySchemaElement::builder()
                .attribute_name(sk.name)
                .key_type(KeyType::Range)
                .build()
                .map_err(|e| StoreError::build(operation, e))?,
        );
    }
    Ok(out)
}

/// Creates the four tables (on-demand, with their indexes), waits until each is `ACTIVE`, then
/// turns TTL on where the table has a TTL attribute (DynamoDB refuses `UpdateTimeToLive` on a
/// table still `CREATING`). A table that already exists is left as it is (its TTL is still set).
pub async fn create_tables(clients: &Clients, names: &TableNames) -> Result<(), StoreError> {
    const OP: &str = "dynamodb:CreateTable";
    for spec in TABLES {
        let table = names.name(spec);
        let mut create = clients
            .dynamodb()
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(OP, spec.partition_key, spec.sort_key)?));
        for a in spec.attribute_definitions() {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a.name)
                    .attribute_type(attr_type(a.kind))
                    .build()
                    .map_err(|e| StoreError::build(OP, e))?,
            );
        }
        for index in spec.indexes {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(OP, index.partition_key, index.sort_key)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(|e| StoreError::build(OP, e))?,
            );
        }
        if let Some(view) = spec.stream {
            create = create.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(view))
                    .build()
                    .map_err(|e| StoreError::build(OP, e))?,
            );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(StoreError::sdk(OP, &e)),
        }
        clients
            .dynamodb()
            .wait_until_table_exists()
            .table_name(table)
            .wait(ACTIVE_TIMEOUT)
            .await
            .map_err(|e| {
                let failure = SdkFailure {
                    operation: "dynamodb:DescribeTable",
                    name: ErrorName::Retryable,
                    code: None,
                    request_id: None,
                    detail: format!("table {table} did not become ACTIVE: {e}"),
                };
                log_failure(&failure);
                StoreError::Aws(failure)
            })?;
        if let Some(ttl) = spec.ttl_attribute {
            const TTL_OP: &str = "dynamodb:UpdateTimeToLive";
            let set = clients
                .dynamodb()
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build()
                        .map_err(|e| StoreError::build(TTL_OP, e))?,
                )
                .send()
                .await;
            match set {
                Ok(_) => {}
                // Already enabled on an existing table.
                Err(e)
                    if e.code() == Some("ValidationException")
                        && e.message().is_some_and(|m| m.contains("already enabled")) => {}
                Err(e) => return Err(StoreError::sdk(TTL_OP, &e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_attribute_is_defined_once() {
        let defs: Vec<&str> = INCIDENTS
            .attribute_definitions()
            .iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(defs, ["incidentId", "resourceKey", "detectedAt", "status"]);
        assert_eq!(AUDIT.attribute_definitions().len(), 2);
        let names = TableNames::with_prefix("ir-x");
        for spec in TABLES {
            assert_eq!(names.name(spec), format!("ir-x-{}", spec.suffix));
        }
    }
}
