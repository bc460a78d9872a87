//! The functions' runtime glue: what every `functions/*` main and handler shares.
//!
//! Telemetry (JSON logs), the environment read once at init ([`env`], re-exported from
//! `ir-env`), payloads that keep their raw input when they do not parse ([`payload::Checked`]),
//! the boundary logger, the conversion of any error with a stable name into a Lambda
//! [`lambda_runtime::Diagnostic`], and the runtime loops ([`serve`], [`serve_action`]).
//!
//! Invariants: this is the only shared crate that depends on `lambda_runtime`, and it depends on
//! no `aws-sdk-*` crate (`cargo tree -p ir-lambda` shows none): a function that calls no AWS API
//! (`ir-score`, `ir-enrich`) links no SDK.

pub mod diagnostic;
pub mod payload;
pub mod serve;
pub mod telemetry;

pub use diagnostic::{diagnostic, failure, logged};
pub use ir_env as env;
pub use lambda_runtime::Error;
pub use serve::{perform, serve, serve_action};
