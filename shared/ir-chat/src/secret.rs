//! A value that must never be printed.

use std::fmt;

/// A credential: a bot token, an incoming-webhook URL, a signing secret, an API token.
///
/// `Debug` prints `Secret(<redacted>)`; there is no `Display` and no `Serialize`, so a secret
/// only leaves through [`Secret::expose`], at the one place it is put on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, to put in a header or a URL. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (an unset variable, usually).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("xoxb-123-456-abcdef");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("xoxb"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(s.expose(), "xoxb-123-456-abcdef");
        assert!(Secret::new("  ").is_empty());
    }
}
