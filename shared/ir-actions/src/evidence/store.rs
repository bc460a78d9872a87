//! Writing locked, checksummed object versions to the evidence bucket, through the one locked
//! writer ([`ir_aws::locked`]: SHA-256 checksum over the exact bytes, explicit Object Lock mode
//! and retain-until date per object, version id required, `If-None-Match: *` when create-only),
//! its refusals worded as collect-evidence's errors; and reading objects back.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ObjectLockMode;
use ir_core::ErrorName;

use crate::ActionError;
use ir_aws::locked::{self, LockedError, LockedObject, PutRefusal};
use ir_aws::{Clients, SdkFailure};

pub use ir_aws::locked::Written;

/// Where and how evidence is written.
#[derive(Debug, Clone)]
pub struct LockedBucket<'a> {
    pub clients: &'a Clients,
    pub bucket: &'a str,
    pub mode: ObjectLockMode,
    pub retention_days: u32,
}

/// One object to write.
#[derive(Debug)]
pub struct Upload<'a> {
    pub key: &'a str,
    pub bytes: Vec<u8>,
    pub content_type: &'a str,
    pub content_encoding: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: Vec<(&'static str, String)>,
    /// Create only: refuse (412) if the key already has a current version. Used for the manifest
    /// so two racing runs of one step cannot both publish one.
    pub create_only: bool,
}

impl LockedBucket<'_> {
    /// Writes one locked version; see the module docs.
    pub async fn put(&self, upload: Upload<'_>) -> Result<Written, ActionError> {
        let key = upload.key;
        locked::put(
            self.clients,
            LockedObject {
                bucket: self.bucket,
                key,
                bytes: upload.bytes,
                content_type: upload.content_type,
                content_encoding: upload.content_encoding,
                metadata: upload.metadata,
                mode: self.mode.clone(),
                retention_days: self.retention_days,
                create_only: upload.create_only,
            },
        )
        .await
        .map_err(|e| self.put_error(key, e))
    }

    fn put_error(&self, key: &str, e: LockedError) -> ActionError {
        let (refusal, e) = match e {
            LockedError::Put { refusal, error } => (refusal, error),
            LockedError::Checksum { echoed, sent } => {
                return ActionError::Verification(format!(
                    "s3://{}/{key}: S3 answered checksum {echoed}, the bytes sent have {sent}",
                    self.bucket
                ));
            }
            LockedError::Unversioned => {
                return ActionError::Configuration(format!(
                    "the evidence bucket `{}` is not versioned (PutObject of {key} returned no version id): evidence without versions cannot be locked; \
                     create it with Object Lock enabled",
                    self.bucket
                ));
            }
        };
        let err = ActionError::sdk("s3:PutObject", *e);
        match refusal {
            PutRefusal::NoSuchBucket => ActionError::Configuration(format!(
                "the evidence bucket `{}` does not exist (IR_EVIDENCE_BUCKET): {err}",
                self.bucket
            )),
            PutRefusal::NoObjectLock => ActionError::Configuration(format!(
                "the evidence bucket `{}` has no Object Lock configuration: evidence cannot be locked there: {err}",
                self.bucket
            )),
            // A conditional create lost: the key already has a version (a concurrent run).
            PutRefusal::Exists => match err {
                ActionError::Aws(f) => ActionError::Aws(SdkFailure {
                    name: ErrorName::Conflict,
                    detail: format!("s3://{}/{key} already exists: {}", self.bucket, f.detail),
                    ..f
                }),
                other => other,
            },
            PutRefusal::Other => err,
        }
    }
}

/// A trail object read for copying.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub version_id: Option<String>,
}

/// Reads a whole object, or one version of it (`None` when it no longer exists).
pub async fn fetch(
    clients: &Clients,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<Fetched>, ActionError> {
    let get = clients
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_owned));
    let out = match get.send().await {
        Ok(out) => out,
        Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion")) => return Ok(None),
        Err(e) => return Err(ActionError::sdk("s3:GetObject", e)),
    };
    let content_type = out.content_type().map(str::to_owned);
    let content_encoding = out.content_encoding().map(str::to_owned);
    let version_id = out.version_id().filter(|v| *v != "null").map(str::to_owned);
    let bytes = out.body.collect().await.map_err(|e| {
        let failure = SdkFailure { operation: "s3:GetObject", name: ErrorName::Retryable, code: None, request_id: None, detail: format!("reading s3://{bucket}/{key}: {e}") };
        tracing::error!(operation = failure.operation, error_name = failure.name.as_str(), error = %failure.detail, "AWS call failed");
        ActionError::Aws(failure)
    })?;
    Ok(Some(Fetched {
        bytes: bytes.into_bytes().to_vec(),
        content_type,
        content_encoding,
        version_id,
    }))
}
