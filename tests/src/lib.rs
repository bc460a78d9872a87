//! Test support for the incident-response suite's integration and end-to-end tests.
//!
//! [`localcloud`] starts a local AWS emulator (moto in server mode, from the project venv made
//! by `scripts/bootstrap-python`) and gives real `aws-sdk-rust` clients pointed at it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ir_tests::HarnessError> {
//! use ir_tests::{LocalCloud, unique_name};
//! let cloud = LocalCloud::shared().await?; // one emulator per test binary
//! let ec2 = aws_sdk_ec2::Client::new(&cloud.sdk_config());
//! let s3 = cloud.s3_client(); // path-style addressing
//! let bucket = unique_name("evidence"); // namespace everything you create
//! # let _ = (ec2, s3, bucket);
//! # Ok(()) }
//! ```
//!
//! The rest is what the test files share:
//!
//! * [`support`]: [`cloud`] (the shared emulator, or a loud failure), [`TestResult`], fresh
//!   [`incident_id`]s.
//! * [`fixtures`]: resources to act on, made and read back with plain SDK clients (EC2
//!   networks and instances, IAM roles, users and keys, Object Lock buckets).
//! * [`actions`] and [`request_log`]: the suite's [`Clients`](ir_aws::Clients) for the emulator,
//!   a [`RequestLog`] of the requests really sent, and the resources, requests and reports of the
//!   actions.
//! * [`relay`]: [`one_at_a_time`], a relay that serializes requests to the emulator for race
//!   tests (moto does not execute concurrent requests atomically), and [`serialized_clients`].
//! * [`fake_lambda`]: [`FakeLambda`], a Lambda Invoke API with canned answers that records every
//!   request, for the emulator's Step Functions engine to call ([`LambdaCloud`]).

pub mod fixtures;
pub mod localcloud;
pub mod support;

pub mod actions;
pub mod burst;
pub mod chat;
pub mod fake_lambda;
pub mod fault;
pub mod matrix;
pub mod member;
pub mod offline;
pub mod relay;
pub mod request_log;

pub use localcloud::{
    ACCESS_KEY_ID, ACCOUNT_ID, BOOTSTRAP_COMMAND, DEFAULT_STARTUP_TIMEOUT, HarnessError,
    LocalCloud, LocalCloudBuilder, REGION, SECRET_ACCESS_KEY, repo_root, unique_name,
};
pub use support::{
    Stores, TestResult, cloud, incident_id, incident_id_from, percent_decode, planned_report,
    sha256_hex, stores,
};

pub use actions::{
    FINDING_ID, change, clients, clients_for, containment_request, ec2_instance, expect_err, holds,
    instance_resource, isolate, recorded_clients, release_report, role_resource, user_resource,
};
pub use fake_lambda::{FakeLambda, Fallback, LambdaCloud, Reply};
pub use relay::{one_at_a_time, serialized_clients};
pub use request_log::{Mark, RequestLog, RequestLogInterceptor, SentRequest};
