//! The functions' environment, read once at init into a typed value.

use std::path::PathBuf;

use ir_core::Engine;
use ir_core::config::{Config, DEFAULT_ASSETS_YAML, DEFAULT_CONFIG_YAML, DEFAULT_THREAT_INTEL};
use ir_core::enrich::{AssetRegistry, ThreatIntel};
use thiserror::Error;

/// Configuration problems found at init. A function that cannot init fails once, at start, with
/// this message; it never panics in an invocation.
#[derive(Debug, Error)]
pub enum InitError {
    #[error("environment variable {name}: {message}")]
    Var { name: &'static str, message: String },
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// An optional variable; set but empty counts as unset.
pub fn optional(name: &'static str) -> Result<Option<String>, InitError> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(InitError::Var {
            name,
            message: e.to_string(),
        }),
    }
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, InitError> {
    optional(name)?.ok_or(InitError::Var {
        name,
        message: "not set".to_owned(),
    })
}

fn file_or(
    name: &'static str,
    what: &'static str,
    default: &'static str,
) -> Result<(String, Option<PathBuf>), InitError> {
    match optional(name)? {
        None => Ok((default.to_owned(), None)),
        Some(p) => {
            let path = PathBuf::from(p);
            let text = std::fs::read_to_string(&path).map_err(|e| InitError::File {
                what,
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((text, Some(path)))
        }
    }
}

/// The triage engine: the embedded configuration, registry and intel list, each replaceable by a
/// file named in `IR_CONFIG_FILE`, `IR_ASSETS_FILE`, `IR_THREAT_INTEL_FILE`.
pub fn engine() -> Result<Engine, InitError> {
    let config = config()?;
    let (assets, path) = file_or("IR_ASSETS_FILE", "asset registry", DEFAULT_ASSETS_YAML)?;
    let registry = AssetRegistry::from_yaml(&assets).map_err(|e| InitError::File {
        what: "asset registry",
        path: path.unwrap_or_else(|| "(embedded)".into()),
        message: e.to_string(),
    })?;
    let (intel, path) = file_or("IR_THREAT_INTEL_FILE", "threat intel", DEFAULT_THREAT_INTEL)?;
    let intel = ThreatIntel::parse(&intel).map_err(|e| InitError::File {
        what: "threat intel",
        path: path.unwrap_or_else(|| "(embedded)".into()),
        message: e.to_string(),
    })?;
    Ok(Engine::new(config, registry, intel))
}

/// The configuration alone: the embedded one, or the file named in `IR_CONFIG_FILE`.
pub fn config() -> Result<Config, InitError> {
    let (text, path) = file_or("IR_CONFIG_FILE", "config", DEFAULT_CONFIG_YAML)?;
    // A file is validated against the schema; the embedded text was, when it was built in.
    let parsed = match &path {
        Some(_) => Config::from_yaml(&text),
        None => Config::embedded(),
    };
    parsed.map_err(|e| InitError::File {
        what: "config",
        path: path.unwrap_or_else(|| "(embedded)".into()),
        message: e.to_string(),
    })
}
