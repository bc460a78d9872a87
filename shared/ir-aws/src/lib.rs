//! AWS adapters of the incident-response suite.
//!
//! SDK configuration and clients, classification of SDK errors into the stable error names,
//! conversion into Lambda `Diagnostic`s, telemetry, and the functions' environment.
//!
//! Invariants: this crate knows AWS but no Lambda event shape; it holds no business rule (those
//! live in `ir-core`). Endpoints come from the standard AWS configuration chain
//! (`AWS_ENDPOINT_URL`, profiles): nothing here knows whether the cloud is real or local.

pub mod action;
pub mod approval;
pub mod calls;
pub mod clients;
pub mod diagnostic;
pub mod ec2;
pub mod env;
pub mod evidence;
pub mod iam;
pub mod notify;
pub mod payload;
pub mod recorder;
pub mod release;
pub mod report;
pub mod sdk;
pub mod store;
pub mod telemetry;

pub use action::{ActionError, ReportBuilder};
pub use calls::CallLog;
pub use clients::{ClientOptions, Clients};
pub use diagnostic::{diagnostic, logged};
pub use sdk::{SdkFailure, classify, log_sdk_error};
