//! Building DynamoDB update and condition expressions with placeholders for every attribute
//! name (several of ours — `status`, `key`, `count`, `level` — are reserved words) and value.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// An update expression with its condition, names and values.
#[derive(Debug, Default)]
pub(crate) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
}

impl Expr {
    pub(crate) fn new() -> Expr {
        Expr::default()
    }

    /// The placeholder of an attribute name (`#status`). Our attribute names are alphanumeric.
    pub(crate) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    /// A fresh placeholder for a value (`:v3`).
    pub(crate) fn value(&mut self, v: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    /// `SET attr = value`.
    pub(crate) fn set(&mut self, attr: &str, v: AttributeValue) -> &mut Expr {
        let n = self.name(attr);
        let v = self.value(v);
        self.set.push(format!("{n} = {v}"));
        self
    }

    /// A `SET` clause written out (`#list = list_append(#list, :v0)`), its placeholders made
    /// with [`Expr::name`] and [`Expr::value`].
    pub(crate) fn set_expression(&mut self, clause: String) -> &mut Expr {
        self.set.push(clause);
        self
    }

    /// `REMOVE attr`.
    pub(crate) fn remove(&mut self, attr: &str) -> &mut Expr {
        let n = self.name(attr);
        self.remove.push(n);
        self
    }

    /// A condition clause, joined to the others with `AND`.
    pub(crate) fn condition(&mut self, clause: String) -> &mut Expr {
        self.conditions.push(clause);
        self
    }

    /// `attr = value` as a condition.
    pub(crate) fn require_eq(&mut self, attr: &str, v: AttributeValue) -> &mut Expr {
        let n = self.name(attr);
        let v = self.value(v);
        self.conditions.push(format!("{n} = {v}"));
        self
    }

    /// The update expression (`SET … REMOVE …`).
    pub(crate) fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }

    /// The condition expression, if any.
    pub(crate) fn condition_expression(&self) -> Option<String> {
        match self.conditions.len() {
            0 => None,
            1 => self.conditions.first().cloned(),
            _ => Some(
                self.conditions
                    .iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
        }
    }

    /// The names map (DynamoDB refuses an empty map: `None` then).
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// The values map (DynamoDB refuses an empty map: `None` then).
    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_expressions() {
        let mut e = Expr::new();
        e.set("status", AttributeValue::S("contained".into()))
            .set("occurrences", AttributeValue::N("1".into()))
            .remove("lastError")
            .require_eq("version", AttributeValue::N("3".into()));
        let c = e.name("status");
        let v = e.value(AttributeValue::S("containment".into()));
        e.condition(format!("{c} = {v}"));
        assert_eq!(
            e.update_expression(),
            "SET #status = :v0, #occurrences = :v1 REMOVE #lastError"
        );
        assert_eq!(
            e.condition_expression().unwrap(),
            "(#version = :v2) AND (#status = :v3)"
        );
        assert_eq!(e.names().unwrap().len(), 4);
        assert_eq!(e.values().unwrap().len(), 4);
        assert!(Expr::new().names().is_none() && Expr::new().values().is_none());
    }
}
