//! S3 buckets: policy, public access block, versioning, encryption and tags.

use aws_sdk_s3::error::ProvideErrorMetadata;
use ir_core::{ErrorName, Named};
use serde_json::{Map, Value, json};

use super::super::join::{BoxFuture, join_all};
use super::{Description, absence, missing, not_found, s};
use crate::ActionError;
use ir_aws::Clients;

/// Bucket policy, public access block, versioning, default encryption and tagging, concurrently.
/// Each may be absent (its own error code): absence is recorded, not a failure (see
/// [`absent_or`] for other errors). A bucket that does not exist (`NoSuchBucket` from any of
/// them) is described as not found.
pub(super) async fn s3_bucket(clients: &Clients, bucket: &str) -> Result<Description, ActionError> {
    let s3 = &clients.s3();
    let policy = async {
        match s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => Ok(out.policy().map_or(Value::Null, |p| {
                serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.to_owned()))
            })),
            Err(e) => absent_or("s3:GetBucketPolicy", e, "NoSuchBucketPolicy"),
        }
    };
    let public_access = async {
        match s3.get_public_access_block().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .public_access_block_configuration()
                .map_or(Value::Null, |c| {
                    json!({
                        "blockPublicAcls": c.block_public_acls(),
                        "ignorePublicAcls": c.ignore_public_acls(),
                        "blockPublicPolicy": c.block_public_policy(),
                        "restrictPublicBuckets": c.restrict_public_buckets(),
                    })
                })),
            Err(e) => absent_or(
                "s3:GetPublicAccessBlock",
                e,
                "NoSuchPublicAccessBlockConfiguration",
            ),
        }
    };
    let versioning = async {
        match s3.get_bucket_versioning().bucket(bucket).send().await {
            // No status: versioning was never enabled on the bucket.
            Ok(out) => Ok(
                json!({"status": s(out.status().map(|v| v.as_str())), "mfaDelete": s(out.mfa_delete().map(|v| v.as_str()))}),
            ),
            Err(e) => absent_or("s3:GetBucketVersioning", e, ""),
        }
    };
    let encryption = async {
        match s3.get_bucket_encryption().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .map_or(Value::Null, |c| {
                    Value::Array(
                        c.rules()
                            .iter()
                            .map(|r| {
                                let d = r.apply_server_side_encryption_by_default();
                                json!({
                                    "sseAlgorithm": s(d.map(|d| d.sse_algorithm().as_str())),
                                    "kmsMasterKeyId": s(d.and_then(|d| d.kms_master_key_id())),
                                    "bucketKeyEnabled": r.bucket_key_enabled(),
                                })
                            })
                            .collect(),
                    )
                })),
            Err(e) => absent_or(
                "s3:GetBucketEncryption",
                e,
                "ServerSideEncryptionConfigurationNotFoundError",
            ),
        }
    };
    let tagging = async {
        match s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => Ok(Value::Object(
                out.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), Value::String(t.value().to_owned())))
                    .collect(),
            )),
            Err(e) => absent_or("s3:GetBucketTagging", e, "NoSuchTagSet"),
        }
    };
    let parts: Vec<BoxFuture<'_, Result<Value, ActionError>>> = vec![
        Box::pin(policy),
        Box::pin(public_access),
        Box::pin(versioning),
        Box::pin(encryption),
        Box::pin(tagging),
    ];
    let results = join_all(parts).await;
    let mut values = Vec::with_capacity(results.len());
    for r in results {
        values.push(r?);
    }
    if let Some(gone) = values.iter().find(|v| v["code"] == "NoSuchBucket") {
        let code = gone["code"].as_str().unwrap_or("NoSuchBucket").to_owned();
        return Ok(not_found(code, Some("the bucket does not exist")));
    }
    let mut values = values.into_iter();
    let mut body = Map::new();
    let bucket_json = json!({
        "bucketName": bucket,
        "policy": values.next(),
        "publicAccessBlock": values.next(),
        "versioning": values.next(),
        "encryption": values.next(),
        "tagging": values.next(),
    });
    body.insert("bucket".into(), bucket_json);
    Ok(Description { body, found: true })
}

/// A missing sub-resource (`absent_code`) or a missing bucket is recorded as absent. Any other
/// failure except a retryable one is recorded as a read error rather than failing the
/// collection: a bucket policy is controlled by whoever controls the bucket, and an attacker who
/// denies everyone else must not be able to stop the finding and the logs from being kept (the
/// denial is itself evidence). Throttling and 5xx fail, so that the retry gets the full picture.
fn absent_or<E>(
    op: &'static str,
    e: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    absent_code: &str,
) -> Result<Value, ActionError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(code) = absence(&e, |c| {
        c == "NoSuchBucket" || (!absent_code.is_empty() && c == absent_code)
    }) {
        return Ok(missing(code));
    }
    let err = ActionError::sdk(op, e);
    match err.error_name() {
        ErrorName::Retryable => Err(err),
        name => Ok(json!({"readError": {"name": name.as_str(), "detail": err.to_string()}})),
    }
}
