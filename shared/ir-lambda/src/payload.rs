//! Function payloads that keep the raw input when they do not parse.
//!
//! The Lambda runtime reports a payload that does not deserialize under its own Rust type name,
//! which no state machine can match, and the input is gone from the function's view. A function
//! that takes `Checked<T>` sees every input: a malformed one becomes its own `InvalidInput` error
//! carrying the parse failure, and the raw input stays available for the report.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A payload of type `T`, or the reason it is not one, with the raw JSON either way.
pub struct Checked<T> {
    pub raw: Box<RawValue>,
    pub value: Result<T, String>,
}

impl<T> fmt::Debug for Checked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("bytes", &self.raw.get().len())
            .field("parsed", &self.value.is_ok())
            .finish()
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.into_inner().to_string()
            } else {
                format!("{path}: {}", e.into_inner())
            }
        });
        Ok(Checked { raw, value })
    }
}

impl<T> Checked<T> {
    /// Builds a checked payload from a value already parsed (tests, local callers).
    pub fn parse(text: &str) -> Result<Checked<T>, serde_json::Error>
    where
        T: DeserializeOwned,
    {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Payload {
        n: u32,
    }

    /// The runtime deserializes with serde_path_to_error over a slice deserializer: do the same.
    fn as_runtime(body: &str) -> Checked<Payload> {
        let jd = &mut serde_json::Deserializer::from_slice(body.as_bytes());
        serde_path_to_error::deserialize(jd).unwrap()
    }

    #[test]
    fn keeps_raw_and_reason() {
        let ok = as_runtime(r#"{"n": 3}"#);
        assert_eq!(ok.value.unwrap(), Payload { n: 3 });
        let bad = as_runtime(r#"{"n": "three"}"#);
        assert_eq!(bad.raw.get(), r#"{"n": "three"}"#);
        let why = bad.value.unwrap_err();
        assert!(why.starts_with("n: invalid type"), "{why}");
    }
}
