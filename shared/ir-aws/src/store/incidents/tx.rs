//! One transaction, its failures sorted: cancellation reasons, conflicts, everything else.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use ir_core::ErrorName;

use super::IncidentStore;
use crate::sdk::SdkFailure;
use crate::store::expr::Expr;
use crate::store::item::Item;
use crate::store::{StoreError, log_failure};

pub(super) const TX: &str = "dynamodb:TransactWriteItems";

/// One cancellation reason of a transaction.
#[derive(Debug)]
pub(super) struct Reason {
    pub(super) code: String,
    pub(super) item: Option<Item>,
}

impl Reason {
    pub(super) fn failed_condition(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
}

/// How a transaction failed.
#[derive(Debug)]
pub(super) enum TxError {
    /// Cancelled on conditions or conflicts: the reasons, one per item in order.
    Cancelled(Vec<Reason>),
    /// Cancelled by another transaction writing one of the items.
    Conflict,
    Failed(StoreError),
}

/// A put that only creates.
pub(super) fn put_new(
    table: &str,
    item: Item,
    key_attr: &str,
) -> Result<TransactWriteItem, StoreError> {
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
pub(super) fn update_in_tx(
    table: &str,
    key: Item,
    e: &Expr,
) -> Result<TransactWriteItem, StoreError> {
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
    /// Runs one transaction, sorting its failures: cancellations with their reasons, conflicts
    /// with other transactions, everything else (logged once).
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
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
}
