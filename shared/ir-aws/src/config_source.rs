//! The configuration a function runs with, read once at init from where the deployment says:
//! an SSM parameter (`IR_CONFIG_SSM_PARAMETER`, String or SecureString, read with decryption),
//! an S3 object (`IR_CONFIG_S3_URI`), a file (`IR_CONFIG_FILE`), else the embedded default
//! (`ir_env::ConfigSource`).
//!
//! This module only fetches; every check is `ir_env::source::config_from_source`'s: the overlay
//! of the deployment's parameters, the schema (errors name their path), meaning, and, for a
//! config in SSM or S3, the deployed state machines. A source that cannot be read or a config
//! that is refused fails init with an error naming the origin (`ssm:/ir/config`). The one log
//! line says where the config came from and the SHA-256 of its text, never what it holds.

use ir_core::config::{Config, DEFAULT_CONFIG_YAML};
use ir_env::source::{self, MAX_CONFIG_BYTES};
use ir_env::{ConfigSource, InitError, Overlay};

use crate::Clients;
use crate::sdk::SdkFailure;
use crate::sha256::{hex, sha256};

/// The configuration of this process: the source and overlay its environment names, fetched
/// with `clients` when the source is in SSM or S3.
pub async fn load(clients: &Clients) -> Result<Config, InitError> {
    load_from(clients, &ConfigSource::from_env()?, &Overlay::from_env()?).await
}

/// As [`load`], for a function that calls no other AWS API: SDK clients are built only when the
/// source is in SSM or S3.
pub async fn load_without_clients() -> Result<Config, InitError> {
    let (source, overlay) = (ConfigSource::from_env()?, Overlay::from_env()?);
    if source.is_remote() {
        load_from(&Clients::from_env().await, &source, &overlay).await
    } else {
        loaded(&source, None, &overlay)
    }
}

/// The configuration from `source` with `overlay` applied, checked.
pub async fn load_from(
    clients: &Clients,
    source: &ConfigSource,
    overlay: &Overlay,
) -> Result<Config, InitError> {
    let text = if source.is_remote() {
        Some(fetch(clients, source).await?)
    } else {
        None
    };
    loaded(source, text, overlay)
}

fn loaded(
    source: &ConfigSource,
    fetched: Option<String>,
    overlay: &Overlay,
) -> Result<Config, InitError> {
    let text = match (source, fetched) {
        (_, Some(text)) => Some(text),
        (ConfigSource::File(path), None) => Some(source::read_file(path)?),
        _ => None,
    };
    let config = source::config_from_source(source, text.as_deref(), overlay)?;
    let digest = hex(&sha256(
        text.as_deref().unwrap_or(DEFAULT_CONFIG_YAML).as_bytes(),
    ));
    tracing::info!(origin = %source, sha256 = %digest, "config loaded");
    Ok(config)
}

/// The text of a config in SSM or S3, as stored. A local source has nothing to fetch.
pub async fn fetch(clients: &Clients, source: &ConfigSource) -> Result<String, InitError> {
    let origin = source.to_string();
    let refuse = |message: String| InitError::Config {
        origin: origin.clone(),
        message,
    };
    match source {
        ConfigSource::SsmParameter(name) => {
            let out = clients
                .ssm()
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| refuse(SdkFailure::new("ssm:GetParameter", &e).to_string()))?;
            let value = out
                .parameter()
                .and_then(|p| p.value())
                .ok_or_else(|| refuse("the parameter has no value".to_owned()))?;
            Ok(value.to_owned())
        }
        ConfigSource::S3Object { bucket, key } => {
            let out = clients
                .s3()
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| refuse(SdkFailure::new("s3:GetObject", &e).to_string()))?;
            if out
                .content_length()
                .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_CONFIG_BYTES))
            {
                return Err(refuse(format!(
                    "the object is larger than {MAX_CONFIG_BYTES} bytes"
                )));
            }
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| refuse(format!("reading the object: {e}")))?
                .into_bytes();
            String::from_utf8(bytes.to_vec())
                .map_err(|_| refuse("the object is not UTF-8 text".to_owned()))
        }
        local => Err(refuse(format!("{local} is not fetched from AWS"))),
    }
}
