//! `ir` against the local cloud: the emulator shared by this test binary
//! ([`ir_tests::LocalCloud::shared`]; every test names what it creates with `unique_name`), and
//! the binary run with the environment a deployment gives an operator: the standard AWS
//! variables pointed at the emulator, path-style S3, and the suite's table and bucket names.

#![allow(clippy::unwrap_used)]

use std::process::{Output, Stdio};

use ir_aws::store::TableNames;
use ir_tests::{ACCESS_KEY_ID, LocalCloud, REGION, SECRET_ACCESS_KEY};

/// What `ir` is run with: the emulator's endpoint (or any other), credentials, and the suite's
/// names.
#[derive(Debug, Clone)]
pub struct Env {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub names: TableNames,
    pub bucket: String,
}

impl Env {
    /// `cloud` with its static test credentials.
    pub fn new(cloud: &LocalCloud, names: &TableNames, bucket: &str) -> Env {
        Env {
            endpoint: cloud.endpoint_url().to_owned(),
            access_key_id: ACCESS_KEY_ID.to_owned(),
            secret_access_key: SECRET_ACCESS_KEY.to_owned(),
            names: names.clone(),
            bucket: bucket.to_owned(),
        }
    }

    /// The same with these credentials.
    #[allow(dead_code)] // the other test modules may log in as a user of their own
    pub fn with_key(self, access_key_id: &str, secret_access_key: &str) -> Env {
        Env {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            ..self
        }
    }

    /// The same with another endpoint (nothing else is reached).
    pub fn with_endpoint(self, endpoint: &str) -> Env {
        Env {
            endpoint: endpoint.to_owned(),
            ..self
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("IR_S3_FORCE_PATH_STYLE", "true".to_owned()),
            ("IR_INCIDENTS_TABLE", self.names.incidents.clone()),
            ("IR_KEYS_TABLE", self.names.keys.clone()),
            ("IR_AUDIT_TABLE", self.names.audit.clone()),
            ("IR_APPROVALS_TABLE", self.names.approvals.clone()),
            ("IR_EVIDENCE_BUCKET", self.bucket.clone()),
        ]
    }

    /// `ir <args>` with this environment and nothing else (no profile, no variable of the test
    /// process).
    pub async fn ir(&self, args: &[&str]) -> Output {
        self.ir_with(&[], args).await
    }

    /// `ir <args>` with this environment and `extra` variables.
    pub async fn ir_with(&self, extra: &[(&str, &str)], args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ir"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars())
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}
