//! AWS adapters of the incident-response suite.
//!
//! SDK configuration and clients (with a call log), the configuration a deployment names in SSM
//! or S3 fetched at init (`config_source`), classification of SDK errors into the stable error
//! names, the DynamoDB stores (incidents, the audit chain, approvals) and the locked-object
//! writes to S3.
//!
//! Invariants: this crate knows AWS but neither the Lambda runtime nor any Lambda event shape; it
//! holds no business rule (those live in `ir-core`) and no use case (those live in
//! `ir-actions` and `ir-incident`). Endpoints come from the standard AWS configuration chain
//! (`AWS_ENDPOINT_URL`, profiles): nothing here knows whether the cloud is real or local.

pub mod calls;
pub mod clients;
pub mod config_source;
pub mod identity;
pub mod locked;
pub mod member;
pub mod sdk;
pub mod sealed;
pub mod secrets;
pub mod sha256;
pub mod store;

pub use calls::CallLog;
pub use clients::{ClientOptions, Clients, Timeouts};
pub use sdk::{SdkFailure, classify, log_sdk_error};
