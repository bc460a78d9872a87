//! The resource's description at collection time, as JSON.
//!
//! The SDK types have no serde, so every description is built by hand from the fields an
//! investigator needs: identifiers, network placement, security-group rules (protocols, ports,
//! CIDRs, referenced groups), attached volumes, IAM policies with their documents, tags, states
//! and times. Output is deterministic: JSON object keys are sorted (serde_json's map is ordered),
//! and lists whose order carries no meaning are sorted.
//!
//! A resource that no longer exists is described as absent (`"found": false` with the error
//! code) rather than failing the collection: the finding and the CloudTrail logs of the window
//! are still worth keeping, and the absence itself is a fact about the incident at collection
//! time. Any other failure (access denied, throttling) fails the collection before anything is
//! written, so that a retry produces complete evidence.

mod ec2;
mod iam;
mod s3;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use ir_core::Resource;
use serde_json::{Map, Value, json};

use crate::ActionError;
use ir_aws::Clients;

/// A description: the document, and whether the resource was found.
#[derive(Debug, Clone)]
pub struct Description {
    /// Kind-specific content (`instance`, `networkInterfaces`, `role`, `bucket`, ...), or the
    /// reason the resource was not found.
    pub body: Map<String, Value>,
    pub found: bool,
}

/// Describes the resource; `None` for kinds the suite does not describe.
pub async fn describe(
    clients: &Clients,
    resource: &Resource,
) -> Result<Option<Description>, ActionError> {
    let described = match resource {
        Resource::Ec2Instance(r) => ec2::ec2_instance(clients, &r.instance_id).await?,
        Resource::IamRole(r) => iam::iam_role(clients, &r.role_name).await?,
        Resource::IamUser(r) => iam::iam_user(clients, &r.user_name).await?,
        Resource::S3Bucket(r) => s3::s3_bucket(clients, &r.bucket_name).await?,
        Resource::EksCluster(_) | Resource::Other(_) => return Ok(None),
    };
    Ok(Some(described))
}

// ---------------------------------------------------------------------------------------------
// helpers

/// The error code of an SDK error when it is one of `codes` (an expected absence, not logged as
/// a failure).
fn absence<E: ProvideErrorMetadata>(err: &E, matches: impl Fn(&str) -> bool) -> Option<String> {
    err.code().filter(|c| matches(c)).map(str::to_owned)
}

fn not_found(code: String, message: Option<&str>) -> Description {
    let mut body = Map::new();
    body.insert("notFound".into(), json!({"code": code, "message": message}));
    Description { body, found: false }
}

/// `{"present": false, "code": ...}`: a sub-resource that does not exist (no bucket policy).
fn missing(code: String) -> Value {
    json!({"present": false, "code": code})
}

fn time(t: Option<&DateTime>) -> Value {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
        .map_or(Value::Null, Value::String)
}

fn s(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |v| Value::String(v.to_owned()))
}

fn sorted(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by_cached_key(Value::to_string);
    items.dedup();
    items
}

/// IAM returns policy documents URL-encoded (RFC 3986); the description stores them as JSON.
pub fn policy_json(document: &str) -> Value {
    let decoded = percent_decode(document);
    serde_json::from_str(&decoded)
        .or_else(|_| serde_json::from_str(document))
        .unwrap_or(Value::String(decoded))
}

/// Percent-decoding (no `+` → space: IAM encodes spaces as `%20`; a `%` not followed by two
/// hex digits is kept). Invalid UTF-8 after decoding leaves the input as it was.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_or_else(|_| s.to_owned(), std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_are_url_decoded() {
        let doc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGet%2A%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Aa%20b%25%22%7D%5D%7D";
        assert_eq!(
            policy_json(doc),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::a b%"}]})
        );
        // Already-decoded JSON stays as is; a stray `%` is kept.
        assert_eq!(policy_json(r#"{"a":"50%"}"#), json!({"a": "50%"}));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(percent_decode("%FF"), "%FF");
    }
}
