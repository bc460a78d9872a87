//! Credentials of the services the suite talks to outside AWS (Slack, Jira), read from Secrets
//! Manager once at a function's init.
//!
//! A secret is a JSON object in the secret's `SecretString`. Its value is never logged, never in
//! an error: an error names the secret's ARN and what was wrong with its shape, not its content.

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::Clients;
use crate::sdk::SdkFailure;

/// Why a secret could not be read.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("reading secret {arn}: {failure}")]
    Aws { arn: String, failure: SdkFailure },
    #[error("secret {arn} has no SecretString (a binary secret is not supported)")]
    NotAString { arn: String },
    /// The JSON's shape (field names and what is missing) without its values.
    #[error("secret {arn} is not the JSON object expected: {why}")]
    Shape { arn: String, why: String },
}

/// The secret `arn`'s `SecretString`, parsed as `T`.
///
/// # Errors
/// [`SecretError`]; a parse error says where the shape was wrong (serde names fields and types,
/// not values).
pub async fn read_json<T: DeserializeOwned>(
    clients: &Clients,
    arn: &str,
) -> Result<T, SecretError> {
    let out = clients
        .secretsmanager()
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Aws {
            arn: arn.to_owned(),
            failure: SdkFailure::new("secretsmanager:GetSecretValue", &e),
        })?;
    let text = out.secret_string().ok_or_else(|| SecretError::NotAString {
        arn: arn.to_owned(),
    })?;
    serde_json::from_str(text).map_err(|e| {
        // serde_json's message for a bad value quotes the value (`invalid type: string "…"`):
        // only the messages that name a field are kept whole.
        let message = e.to_string();
        let why = if message.starts_with("missing field") || message.starts_with("unknown field") {
            message
        } else {
            format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        };
        SecretError::Shape {
            arn: arn.to_owned(),
            why,
        }
    })
}
