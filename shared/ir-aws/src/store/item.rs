//! Reading and writing DynamoDB items: typed accessors that refuse a malformed item instead of
//! guessing.

use std::collections::HashMap;
use std::fmt::Display;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{StoreError, parse_stamp};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute value.
pub(crate) fn n(v: impl Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A list of strings.
pub(crate) fn list_s<I, S>(values: I) -> AttributeValue
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    AttributeValue::L(values.into_iter().map(|v| s(v)).collect())
}

/// Typed reads from one item; every failure names the item and the attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    item: &'a Item,
    what: &'a str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(item: &'a Item, what: &'a str) -> Reader<'a> {
        Reader { item, what }
    }

    fn corrupt(&self, attr: &str, why: impl Display) -> StoreError {
        StoreError::Corrupt {
            what: self.what.to_owned(),
            why: format!("attribute `{attr}`: {why}"),
        }
    }

    pub(crate) fn opt_s(&self, attr: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.corrupt(attr, "not a string")),
        }
    }

    pub(crate) fn s(&self, attr: &str) -> Result<&'a str, StoreError> {
        self.opt_s(attr)?
            .ok_or_else(|| self.corrupt(attr, "missing"))
    }

    pub(crate) fn opt_u64(&self, attr: &str) -> Result<Option<u64>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|e| self.corrupt(attr, format!("`{v}`: {e}"))),
            Some(_) => Err(self.corrupt(attr, "not a number")),
        }
    }

    pub(crate) fn u64(&self, attr: &str) -> Result<u64, StoreError> {
        self.opt_u64(attr)?
            .ok_or_else(|| self.corrupt(attr, "missing"))
    }

    pub(crate) fn i64(&self, attr: &str) -> Result<i64, StoreError> {
        match self.item.get(attr) {
            Some(AttributeValue::N(v)) => v
                .parse::<i64>()
                .map_err(|e| self.corrupt(attr, format!("`{v}`: {e}"))),
            Some(_) => Err(self.corrupt(attr, "not a number")),
            None => Err(self.corrupt(attr, "missing")),
        }
    }

    pub(crate) fn list_s(&self, attr: &str) -> Result<Vec<String>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::L(items)) => items
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.clone()),
                    _ => Err(self.corrupt(attr, "a list element is not a string")),
                })
                .collect(),
            Some(_) => Err(self.corrupt(attr, "not a list")),
        }
    }

    pub(crate) fn opt_time(&self, attr: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.opt_s(attr)?
            .map(|v| parse_stamp(v).map_err(|e| self.corrupt(attr, e)))
            .transpose()
    }

    pub(crate) fn time(&self, attr: &str) -> Result<OffsetDateTime, StoreError> {
        self.opt_time(attr)?
            .ok_or_else(|| self.corrupt(attr, "missing"))
    }

    /// A string attribute holding JSON.
    pub(crate) fn opt_json<T: DeserializeOwned>(
        &self,
        attr: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_s(attr)?
            .map(|v| serde_json::from_str(v).map_err(|e| self.corrupt(attr, e)))
            .transpose()
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, attr: &str) -> Result<T, StoreError> {
        self.opt_json(attr)?
            .ok_or_else(|| self.corrupt(attr, "missing"))
    }

    /// A parsed string attribute (`Status`, `Severity`).
    pub(crate) fn parsed<T>(&self, attr: &str) -> Result<T, StoreError>
    where
        T: std::str::FromStr,
        T::Err: Display,
    {
        let v = self.s(attr)?;
        v.parse::<T>().map_err(|e| self.corrupt(attr, e))
    }
}

/// JSON text of a value, for a string attribute.
pub(crate) fn json_text<T: serde::Serialize>(what: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::InvalidInput(format!("{what}: {e}")))
}
