//! Small helpers every test file needs: the shared emulator, a result type for `?` in tests,
//! fresh incident ids, SHA-256 in hex and percent-decoding.

use sha2::{Digest, Sha256};

use crate::localcloud::{LocalCloud, unique_name};

/// What a test returns to use `?` on any error.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The emulator shared by this test binary ([`LocalCloud::shared`]).
///
/// # Panics
/// With the harness error (which says what to run when the venv or moto is missing) if the
/// emulator cannot start: tests fail loudly, they never skip.
// A test fixture: a cloud that cannot start must stop the test with its reason.
#[allow(clippy::panic)]
pub async fn cloud() -> &'static LocalCloud {
    match LocalCloud::shared().await {
        Ok(cloud) => cloud,
        Err(e) => panic!("{e}"),
    }
}

/// Lowercase hex of the SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A valid incident id (`inc-` + 20 hex digits) derived from `seed`: the same seed, the same id.
#[must_use]
pub fn incident_id_from(seed: &str) -> String {
    let mut hex = sha256_hex(seed.as_bytes());
    hex.truncate(20);
    format!("inc-{hex}")
}

/// A fresh valid incident id, unique to this test process and call.
#[must_use]
pub fn incident_id() -> String {
    incident_id_from(&unique_name("incident"))
}

/// Decodes `%XX` escapes (as in query strings and the policy documents IAM returns); anything
/// else, `+` included, is kept as is, and so is a `%` not followed by two hex digits.
#[must_use]
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The suite's stores on the shared emulator, namespaced for one test: the four tables and an
/// Object Lock evidence bucket, with the suite's clients for them.
#[derive(Debug)]
pub struct Stores {
    pub cloud: &'static LocalCloud,
    pub clients: ir_aws::Clients,
    pub names: ir_aws::store::TableNames,
    pub bucket: String,
}

/// Creates [`Stores`] named after `tag`.
///
/// # Panics
/// If the emulator cannot start or refuses a table or the bucket (a test fixture).
#[allow(clippy::panic)]
pub async fn stores(tag: &str) -> Stores {
    let cloud = cloud().await;
    let clients = crate::actions::clients(cloud);
    let names = ir_aws::store::TableNames::with_prefix(&unique_name(tag));
    if let Err(e) = ir_aws::store::create_tables(&clients, &names).await {
        panic!("creating the tables: {e}");
    }
    let bucket = crate::fixtures::locked_bucket(&cloud.s3_client(), &format!("{tag}-ev")).await;
    Stores {
        cloud,
        clients,
        names,
        bucket,
    }
}

/// A dry-run report with no changes: the plan a gate shows when the action would change nothing
/// (what `Plan_<step>` of a playbook hands `ir-request-approval`).
pub fn planned_report(
    incident_id: &str,
    step_id: &str,
    action: &str,
) -> ir_core::action::ActionReport {
    ir_core::action::ActionReport {
        incident_id: incident_id.to_owned(),
        step_id: step_id.to_owned(),
        action: action.to_owned(),
        mode: ir_core::config::Mode::DryRun,
        outcome: ir_core::action::Outcome::Planned,
        changes: Vec::new(),
        record: None,
        artifacts: None,
        notes: Vec::new(),
        aws_calls: 0,
    }
}
