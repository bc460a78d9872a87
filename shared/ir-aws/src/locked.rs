//! Locked, checksummed object versions in an Object Lock bucket: the one writer of evidence
//! objects (collect-evidence) and audit anchors ([`crate::store::AuditLog::anchor`]).
//!
//! Every PutObject carries:
//! - `x-amz-checksum-sha256` with the digest computed here over the exact bytes sent (S3
//!   recomputes it on receipt and refuses the upload with `BadDigest` on a mismatch; it also
//!   satisfies the rule that a PUT with Object Lock parameters must carry `Content-MD5` or an
//!   `x-amz-checksum-*` header). The emulator (moto 5.2.5) neither verifies the header nor
//!   recomputes it — it echoes the value sent — so a different checksum in the answer is refused
//!   here and the tests re-hash every object read back;
//! - `ObjectLockMode` and `ObjectLockRetainUntilDate`, explicitly per object, so the object is
//!   locked even if the bucket's default retention were removed or never set;
//! - `If-None-Match: *` when the write is create-only (a manifest, an anchor): a key that
//!   already has a current version is refused, so two racing writers cannot both publish one.
//!
//! The returned `VersionId` is required: Object Lock protects versions, a delete without a
//! version id only adds a delete marker, so integrity checks must name the version. No version
//! id means an unversioned bucket, where nothing can be locked.
//!
//! Errors say which refusal happened ([`LockedError`]) and keep the SDK error, so each caller
//! words them (and logs them) as its own error type does.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::DateTime;
use thiserror::Error;

use crate::Clients;
use crate::sha256::{hex, sha256};

/// One object version to write.
#[derive(Debug)]
pub struct LockedObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// The exact bytes stored; the checksum is computed over them.
    pub bytes: Vec<u8>,
    pub content_type: &'a str,
    pub content_encoding: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: Vec<(&'static str, String)>,
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: ObjectLockMode,
    /// The version is locked until this many days after it is written.
    pub retention_days: u32,
    /// Create only (`If-None-Match: *`): refuse if the key already has a current version.
    pub create_only: bool,
}

/// A version written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version_id: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
    /// When the write was sent; the retain-until date is `retention_days` after it (whole
    /// seconds).
    pub at: SystemTime,
}

/// Which refusal of PutObject happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutRefusal {
    /// `NoSuchBucket`.
    NoSuchBucket,
    /// Lock parameters sent to a bucket created without Object Lock (AWS: `InvalidRequest`,
    /// "Bucket is missing Object Lock Configuration").
    NoObjectLock,
    /// A create-only write lost: the key already has a version (`PreconditionFailed`,
    /// `ConditionalRequestConflict`).
    Exists,
    /// Anything else (throttling, access denied, …).
    Other,
}

/// Why a locked write did not produce a locked version.
#[derive(Debug, Error)]
pub enum LockedError {
    /// PutObject failed.
    #[error("PutObject failed ({refusal:?}): {error}")]
    Put {
        refusal: PutRefusal,
        error: Box<SdkError<PutObjectError, HttpResponse>>,
    },
    /// S3 answered a checksum other than the one of the bytes sent.
    #[error("S3 answered checksum {echoed}, the bytes sent have {sent}")]
    Checksum { echoed: String, sent: String },
    /// PutObject returned no version id: the bucket is not versioned.
    #[error("PutObject returned no version id")]
    Unversioned,
}

fn refusal(e: &SdkError<PutObjectError, HttpResponse>) -> PutRefusal {
    refusal_of(e.code(), e.message().unwrap_or_default())
}

/// The refusal an error code and message stand for.
fn refusal_of(code: Option<&str>, message: &str) -> PutRefusal {
    match code {
        Some("NoSuchBucket") => PutRefusal::NoSuchBucket,
        Some("InvalidRequest")
            if message.contains("ObjectLock") || message.contains("Object Lock") =>
        {
            PutRefusal::NoObjectLock
        }
        Some("PreconditionFailed" | "ConditionalRequestConflict") => PutRefusal::Exists,
        _ => PutRefusal::Other,
    }
}

/// Writes one locked version; see the module docs.
pub async fn put(clients: &Clients, object: LockedObject<'_>) -> Result<Written, LockedError> {
    let digest = sha256(&object.bytes);
    let checksum = aws_smithy_types::base64::encode(digest);
    let size = object.bytes.len() as u64;
    let at = SystemTime::now();
    let retain_until =
        DateTime::from(at + Duration::from_secs(u64::from(object.retention_days) * 86_400));
    let mut put = clients
        .s3()
        .put_object()
        .bucket(object.bucket)
        .key(object.key)
        .body(ByteStream::from(object.bytes))
        .content_type(object.content_type)
        .set_content_encoding(object.content_encoding)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(&checksum)
        .object_lock_mode(object.mode)
        .object_lock_retain_until_date(DateTime::from_secs(retain_until.secs()));
    for (k, v) in object.metadata {
        put = put.metadata(k, v);
    }
    if object.create_only {
        put = put.if_none_match("*");
    }
    let out = put.send().await.map_err(|error| LockedError::Put {
        refusal: refusal(&error),
        error: Box::new(error),
    })?;
    if let Some(echoed) = out.checksum_sha256()
        && echoed != checksum
    {
        return Err(LockedError::Checksum {
            echoed: echoed.to_owned(),
            sent: checksum,
        });
    }
    match out.version_id() {
        Some(v) if !v.is_empty() && v != "null" => Ok(Written {
            version_id: v.to_owned(),
            sha256: hex(&digest),
            size,
            at,
        }),
        _ => Err(LockedError::Unversioned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_by_code_and_message() {
        let cases = [
            (Some("NoSuchBucket"), "", PutRefusal::NoSuchBucket),
            (
                Some("InvalidRequest"),
                "Bucket is missing Object Lock Configuration",
                PutRefusal::NoObjectLock,
            ),
            (
                Some("InvalidRequest"),
                "Bucket is missing ObjectLockConfiguration",
                PutRefusal::NoObjectLock,
            ),
            (Some("InvalidRequest"), "Something else", PutRefusal::Other),
            (Some("PreconditionFailed"), "", PutRefusal::Exists),
            (Some("ConditionalRequestConflict"), "", PutRefusal::Exists),
            (Some("AccessDenied"), "Object Lock", PutRefusal::Other),
            (None, "", PutRefusal::Other),
        ];
        for (code, message, want) in cases {
            assert_eq!(refusal_of(code, message), want, "{code:?} {message}");
        }
    }
}
