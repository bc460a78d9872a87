//! Writing locked, checksummed object versions to the evidence bucket.
//!
//! Every PutObject carries:
//! - `x-amz-checksum-sha256` with the digest computed here over the exact bytes sent (S3
//!   recomputes it on receipt and refuses the upload with `BadDigest` on a mismatch; it also
//!   satisfies the rule that a PUT with Object Lock parameters must carry `Content-MD5` or an
//!   `x-amz-checksum-*` header). The emulator (moto 5.2.5) neither verifies the header nor
//!   recomputes it — it echoes the value sent — so the tests re-hash every object read back;
//! - `ObjectLockMode` and `ObjectLockRetainUntilDate`, explicitly per object, so the evidence is
//!   locked even if the bucket's default retention were removed or never set;
//! - the returned `VersionId` is recorded: Object Lock protects versions, a delete without a
//!   version id only adds a delete marker, so integrity checks must name the version. No
//!   version id means an unversioned bucket, where nothing can be locked: a configuration
//!   error.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode};
use aws_smithy_types::DateTime;
use ir_core::ErrorName;

use crate::ActionError;
use ir_aws::sha256::{hex, sha256};
use ir_aws::{Clients, SdkFailure};

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

/// A version written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version_id: String,
    pub sha256: String,
    pub size: u64,
    pub at: SystemTime,
}

impl LockedBucket<'_> {
    /// Writes one locked version; see the module docs.
    pub async fn put(&self, upload: Upload<'_>) -> Result<Written, ActionError> {
        let digest = sha256(&upload.bytes);
        let checksum = aws_smithy_types::base64::encode(digest);
        let size = upload.bytes.len() as u64;
        let at = SystemTime::now();
        let retain_until =
            DateTime::from(at + Duration::from_secs(u64::from(self.retention_days) * 86_400));
        let mut put = self
            .clients
            .s3()
            .put_object()
            .bucket(self.bucket)
            .key(upload.key)
            .body(ByteStream::from(upload.bytes))
            .content_type(upload.content_type)
            .set_content_encoding(upload.content_encoding)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&checksum)
            .object_lock_mode(self.mode.clone())
            .object_lock_retain_until_date(DateTime::from_secs(retain_until.secs()));
        for (k, v) in upload.metadata {
            put = put.metadata(k, v);
        }
        if upload.create_only {
            put = put.if_none_match("*");
        }
        let out = put
            .send()
            .await
            .map_err(|e| self.put_error(upload.key, e))?;
        if let Some(echoed) = out.checksum_sha256()
            && echoed != checksum
        {
            return Err(ActionError::Verification(format!(
                "s3://{}/{}: S3 answered checksum {echoed}, the bytes sent have {checksum}",
                self.bucket, upload.key
            )));
        }
        match out.version_id() {
            Some(v) if !v.is_empty() && v != "null" => Ok(Written {
                version_id: v.to_owned(),
                sha256: hex(&digest),
                size,
                at,
            }),
            _ => Err(ActionError::Configuration(format!(
                "the evidence bucket `{}` is not versioned (PutObject of {} returned no version id): evidence without versions cannot be locked; \
                 create it with Object Lock enabled",
                self.bucket, upload.key
            ))),
        }
    }

    fn put_error(
        &self,
        key: &str,
        e: aws_smithy_runtime_api::client::result::SdkError<
            aws_sdk_s3::operation::put_object::PutObjectError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> ActionError {
        let code = e.code().map(str::to_owned);
        let message = e.message().unwrap_or_default().to_owned();
        let err = ActionError::sdk("s3:PutObject", e);
        match code.as_deref() {
            Some("NoSuchBucket") => ActionError::Configuration(format!(
                "the evidence bucket `{}` does not exist (IR_EVIDENCE_BUCKET): {err}",
                self.bucket
            )),
            // AWS: "Bucket is missing Object Lock Configuration" (InvalidRequest) when lock
            // parameters are sent to a bucket created without Object Lock.
            Some("InvalidRequest")
                if message.contains("ObjectLock") || message.contains("Object Lock") =>
            {
                ActionError::Configuration(format!(
                    "the evidence bucket `{}` has no Object Lock configuration: evidence cannot be locked there: {err}",
                    self.bucket
                ))
            }
            // A conditional create lost: the key already has a version (a concurrent run).
            Some("PreconditionFailed") | Some("ConditionalRequestConflict") => match err {
                ActionError::Aws(f) => ActionError::Aws(SdkFailure {
                    name: ErrorName::Conflict,
                    detail: format!("s3://{}/{key} already exists: {}", self.bucket, f.detail),
                    ..f
                }),
                other => other,
            },
            _ => err,
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
