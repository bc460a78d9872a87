//! Task tokens sealed at rest: whoever holds a task token can resume its execution, so the
//! approvals table keeps it encrypted under the approval-token key (KMS), with the incident and
//! the step as encryption context. Only the gate's role may encrypt and only the decision role
//! may decrypt (the key policy), so a reader of the table holds nothing it can use.
//!
//! A sealed token is `kms:` + the base64 ciphertext; a token without the prefix is stored as the
//! gate received it (a deployment without the key).

use aws_sdk_kms::primitives::Blob;

use crate::store::TaskToken;
use crate::{Clients, SdkFailure};

/// What a sealed token starts with.
pub const SEALED_PREFIX: &str = "kms:";

fn context(incident_id: &str, step_id: &str) -> std::collections::HashMap<String, String> {
    [
        ("incidentId".to_owned(), incident_id.to_owned()),
        ("stepId".to_owned(), step_id.to_owned()),
    ]
    .into_iter()
    .collect()
}

/// `token` encrypted under `key_id` for this incident and step.
///
/// # Errors
/// KMS refused or failed (classified by its error code).
pub async fn seal(
    clients: &Clients,
    key_id: &str,
    incident_id: &str,
    step_id: &str,
    token: &TaskToken,
) -> Result<TaskToken, SdkFailure> {
    let out = clients
        .kms()
        .encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(token.expose().as_bytes()))
        .set_encryption_context(Some(context(incident_id, step_id)))
        .send()
        .await
        .map_err(|e| SdkFailure::new("kms:Encrypt", &e))?;
    let blob = out.ciphertext_blob().map(Blob::as_ref).unwrap_or_default();
    Ok(TaskToken::new(format!(
        "{SEALED_PREFIX}{}",
        aws_smithy_types::base64::encode(blob)
    )))
}

/// The token `sealed` holds (itself when it is not sealed).
///
/// # Errors
/// The ciphertext is not base64, or KMS refused it (another incident's or step's context, a
/// key this role may not use).
pub async fn open(
    clients: &Clients,
    incident_id: &str,
    step_id: &str,
    sealed: &TaskToken,
) -> Result<TaskToken, SdkFailure> {
    let Some(text) = sealed.expose().strip_prefix(SEALED_PREFIX) else {
        return Ok(sealed.clone());
    };
    let blob = aws_smithy_types::base64::decode(text).map_err(|e| SdkFailure {
        operation: "kms:Decrypt",
        name: ir_core::ErrorName::InvalidInput,
        code: None,
        request_id: None,
        detail: format!("a sealed task token is not base64: {e}"),
    })?;
    let out = clients
        .kms()
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .set_encryption_context(Some(context(incident_id, step_id)))
        .send()
        .await
        .map_err(|e| SdkFailure::new("kms:Decrypt", &e))?;
    let plain = out.plaintext().map(Blob::as_ref).unwrap_or_default();
    Ok(TaskToken::new(String::from_utf8_lossy(plain).into_owned()))
}
