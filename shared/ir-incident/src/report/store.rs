//! The report kept with the evidence: when an incident is resolved (`ir release --enforce`,
//! `ir resolve`), its report is built from the records as they stand after the resolution and
//! written as HTML and JSON to the evidence bucket, `incidents/<id>/report/report.html` and
//! `report.json`, through the one writer of Object Lock versions ([`ir_aws::locked`]): SHA-256
//! checksum, the evidence settings' lock mode and an explicit retain-until date, create-only.
//!
//! Invariants: the report is written after the resolution is recorded and never changes it, so
//! a failure here is stated ([`Filed::failure`], with the copies written before it) and leaves
//! the incident resolved; a key that already holds a report is never given a second version
//! (create-only: the report at resolution is the one kept).

use aws_sdk_s3::types::ObjectLockMode;
use ir_core::config::EvidenceConfig;
use ir_core::{ErrorName, Named};
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

use ir_aws::Clients;
use ir_aws::locked::{self, LockedError, LockedObject, PutRefusal};
use ir_aws::sdk::SdkFailure;
use ir_aws::store::TableNames;

use super::{ReportError, build, html};

const PUT_OBJECT: &str = "s3:PutObject";

/// Where the report of `incident_id` is kept, in `format` (`html`, `json`).
pub fn key(incident_id: &str, format: &str) -> String {
    format!("incidents/{incident_id}/report/report.{format}")
}

/// One locked copy of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCopy {
    /// `html` or `json`.
    pub format: String,
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// Lowercase hex SHA-256 of the bytes stored.
    pub sha256: String,
    pub size: u64,
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub lock_mode: String,
    #[serde(with = "time::serde::rfc3339")]
    pub retain_until: OffsetDateTime,
}

impl StoredCopy {
    /// `s3://bucket/key`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Why the report could not be stored (all of it, or the rest after the copies written).
#[derive(Debug, Error)]
pub enum FilingError {
    /// The report could not be built.
    #[error("the report could not be built: {0}")]
    Build(#[from] ReportError),
    /// The evidence settings name no lock the bucket can take.
    #[error("the report cannot be locked: {0}")]
    Configuration(String),
    /// The report could not be encoded as JSON.
    #[error("the report as JSON: {0}")]
    Encode(String),
    /// The key already holds a report (stored before): it is never given a second version.
    #[error("s3://{bucket}/{key} already holds a report: it is kept, not replaced")]
    Exists { bucket: String, key: String },
    /// PutObject failed, or did not give a locked version.
    #[error("s3://{bucket}/{key}: {message}")]
    Put {
        bucket: String,
        key: String,
        name: ErrorName,
        message: String,
    },
}

impl Named for FilingError {
    fn error_name(&self) -> ErrorName {
        match self {
            FilingError::Build(e) => e.error_name(),
            FilingError::Configuration(_) => ErrorName::Configuration,
            FilingError::Encode(_) => ErrorName::Internal,
            FilingError::Exists { .. } => ErrorName::Conflict,
            FilingError::Put { name, .. } => *name,
        }
    }
}

/// A failure to store the report, as the outcome of a resolution carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilingFailure {
    /// The stable error name.
    pub error: ErrorName,
    pub message: String,
}

/// What storing the report did: the copies written, and the failure that stopped it, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filed {
    pub copies: Vec<StoredCopy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FilingFailure>,
}

impl Filed {
    /// Every copy was written.
    pub fn is_complete(&self) -> bool {
        self.failure.is_none()
    }
}

fn lock_mode(evidence: &EvidenceConfig) -> Result<ObjectLockMode, FilingError> {
    if evidence.retention_days == 0 {
        return Err(FilingError::Configuration(
            "evidence.retention_days must be at least 1".into(),
        ));
    }
    match evidence.object_lock_mode.as_str() {
        "COMPLIANCE" => Ok(ObjectLockMode::Compliance),
        "GOVERNANCE" => Ok(ObjectLockMode::Governance),
        other => Err(FilingError::Configuration(format!(
            "evidence.object_lock_mode `{other}` is neither COMPLIANCE nor GOVERNANCE"
        ))),
    }
}

/// Builds the report of `incident_id` and writes it, HTML then JSON, locked, to `bucket` (the
/// evidence bucket, where its audit chain is anchored); `now` is the HTML's generation time.
pub async fn store_report(
    clients: &Clients,
    names: &TableNames,
    bucket: &str,
    evidence: &EvidenceConfig,
    incident_id: &str,
    now: OffsetDateTime,
) -> Filed {
    let mut copies = Vec::new();
    let failure = write(
        clients,
        names,
        bucket,
        evidence,
        incident_id,
        now,
        &mut copies,
    )
    .await
    .err()
    .map(|e| {
        tracing::error!(incident_id, error = %e, written = copies.len(), "the incident report was not stored");
        FilingFailure {
            error: e.error_name(),
            message: e.to_string(),
        }
    });
    for c in &copies {
        tracing::info!(incident_id, key = %c.key, version_id = %c.version_id, "incident report stored, locked");
    }
    Filed { copies, failure }
}

async fn write(
    clients: &Clients,
    names: &TableNames,
    bucket: &str,
    evidence: &EvidenceConfig,
    incident_id: &str,
    now: OffsetDateTime,
    copies: &mut Vec<StoredCopy>,
) -> Result<(), FilingError> {
    let mode = lock_mode(evidence)?;
    let report = build(clients, names, bucket, incident_id).await?;
    let page = html::render(&report, now).into_bytes();
    let mut json =
        serde_json::to_vec_pretty(&report).map_err(|e| FilingError::Encode(e.to_string()))?;
    json.push(b'\n');
    for (format, content_type, bytes) in [
        ("html", "text/html; charset=utf-8", page),
        ("json", "application/json", json),
    ] {
        let key = key(incident_id, format);
        let written = locked::put(
            clients,
            LockedObject {
                bucket,
                key: &key,
                bytes,
                content_type,
                content_encoding: None,
                metadata: vec![("incident-id", incident_id.to_owned())],
                mode: mode.clone(),
                retention_days: evidence.retention_days,
                create_only: true,
            },
        )
        .await
        .map_err(|e| put_error(bucket, &key, e))?;
        let secs = written
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + u64::from(evidence.retention_days) * 86_400;
        let retain_until = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
            .map_err(|e| FilingError::Encode(format!("retain-until date: {e}")))?;
        copies.push(StoredCopy {
            format: format.to_owned(),
            bucket: bucket.to_owned(),
            key,
            version_id: written.version_id,
            sha256: written.sha256,
            size: written.size,
            lock_mode: mode.as_str().to_owned(),
            retain_until,
        });
    }
    Ok(())
}

fn put_error(bucket: &str, key: &str, e: LockedError) -> FilingError {
    let put = |name, message| FilingError::Put {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        name,
        message,
    };
    match e {
        LockedError::Put {
            refusal: PutRefusal::Exists,
            ..
        } => FilingError::Exists {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
        LockedError::Put { refusal, error } => {
            let f = SdkFailure::new(PUT_OBJECT, &error);
            match refusal {
                PutRefusal::NoSuchBucket => {
                    put(ErrorName::Configuration, format!("no such bucket: {f}"))
                }
                PutRefusal::NoObjectLock => put(
                    ErrorName::Configuration,
                    format!("the bucket has no Object Lock configuration: {f}"),
                ),
                PutRefusal::Exists | PutRefusal::Other => put(f.name, f.to_string()),
            }
        }
        LockedError::Checksum { echoed, sent } => put(
            ErrorName::VerificationFailed,
            format!("S3 answered checksum {echoed}, the bytes sent have {sent}"),
        ),
        LockedError::Unversioned => put(
            ErrorName::Configuration,
            "the bucket is not versioned: nothing can be locked there".to_owned(),
        ),
    }
}
