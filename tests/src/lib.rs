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

pub mod localcloud;

pub use localcloud::{
    ACCESS_KEY_ID, ACCOUNT_ID, BOOTSTRAP_COMMAND, DEFAULT_STARTUP_TIMEOUT, HarnessError,
    LocalCloud, LocalCloudBuilder, REGION, SECRET_ACCESS_KEY, repo_root, unique_name,
};
