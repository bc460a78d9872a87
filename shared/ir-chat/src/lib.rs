//! The suite's chat and ticketing integrations: Slack (Block Kit rendering of incident updates
//! and approval requests, the Web API and incoming-webhook client, verification and parsing of
//! interaction requests) and Jira Cloud (REST v3 client, Atlassian Document Format).
//!
//! Invariants:
//! - no AWS: secrets (bot token, webhook URL, signing secret, Jira API token) and incident data
//!   are handed in by callers;
//! - no secret in `Debug`, error messages or logs: every secret is a [`Secret`], and transport
//!   errors are described without their URL (an incoming-webhook URL is a credential);
//! - nothing from Slack is trusted beyond its verified signature: an interaction's button value
//!   names what the clicker wants decided, and callers check it against their own records.
//!
//! With the `fake-servers` feature, [`fake`] runs in-process Slack and Jira servers speaking the
//! real request and response shapes, for tests.

pub mod jira;
pub mod retry;
pub mod secret;
pub mod slack;
pub mod update;

#[cfg(feature = "fake-servers")]
pub mod fake;

mod http;

pub use retry::{RetryPolicy, Sleep, TokioSleep};
pub use secret::Secret;
pub use update::{IncidentUpdate, Link};
