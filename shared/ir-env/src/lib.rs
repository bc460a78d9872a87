//! The functions' environment, read once at init into a typed value.
//!
//! The configuration's source and its checks are in [`source`]: a function gets its
//! configuration from `ir_aws::config_source` (which fetches an SSM parameter or an S3 object
//! with the SDK this crate does not link), or, in a process that reads only local sources, from
//! [`config`].

pub mod source;

use std::path::PathBuf;

use ir_core::Engine;
use ir_core::action::PrincipalKind;
use ir_core::config::{Config, DEFAULT_ASSETS_YAML, DEFAULT_THREAT_INTEL, Protection};
use ir_core::enrich::{AssetRegistry, ThreatIntel};
use thiserror::Error;

pub use source::{ConfigSource, Overlay, config_from_source, config_from_text};

/// Configuration problems found at init. A function that cannot init fails once, at start, with
/// this message; it never panics in an invocation.
#[derive(Error)]
pub enum InitError {
    #[error("environment variable {name}: {message}")]
    Var { name: &'static str, message: String },
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The configuration from `origin` (`ssm:/ir/config`, `s3://bucket/key`, `file:/path`,
    /// `embedded`; with the overlay variables applied, if any) is refused.
    #[error("config {origin}: {message}")]
    Config { origin: String, message: String },
    /// A deployment overlay variable (`IR_APPROVERS_<ROLE>`, `IR_PLAYBOOK_MODE_<PLAYBOOK>`) is
    /// refused.
    #[error("environment variable {variable}: {message}")]
    Overlay { variable: String, message: String },
    /// The configuration needs state machines other than the ones deployed with this build.
    #[error(
        "config {origin} needs state machines other than the deployed ones ({differences}): \
         make it config/incident-response.yaml, run `ir playbooks render`, commit, and redeploy"
    )]
    StateMachines { origin: String, differences: String },
}

/// The message itself: a `main` that fails init prints its error's `Debug`, and what an operator
/// reads there is what went wrong and where.
impl std::fmt::Debug for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
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

/// The triage engine: `config` (loaded at init, see [`source`]), and the embedded asset registry
/// and intel list, each replaceable by a file named in `IR_ASSETS_FILE`, `IR_THREAT_INTEL_FILE`.
pub fn engine(config: Config) -> Result<Engine, InitError> {
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

/// The configuration of a local source: the file named in `IR_CONFIG_FILE`, else the embedded
/// one, with the deployment's overlay (`IR_APPROVERS_*`, `IR_PLAYBOOK_MODE_*`), held to the schema
/// and checked for meaning ([`source::config_from_source`]). A source in SSM or S3 is refused
/// here: the functions fetch it with `ir_aws::config_source`.
pub fn config() -> Result<Config, InitError> {
    source::local_config(&ConfigSource::from_env()?, &Overlay::from_env()?)
}

/// The variable naming the suite's own roles: their ARNs, comma-separated.
pub const SUITE_PRINCIPALS_VAR: &str = "IR_SUITE_PRINCIPALS";

/// What the principal actions refuse to touch: the config's `protection.principals`, and the
/// suite's own roles from `IR_SUITE_PRINCIPALS` (required: a deployment always names them, and
/// a function that did not know them could contain the suite itself).
pub fn protection(config: &Config) -> Result<Protection, InitError> {
    let mut protection = config.protection.clone();
    protection.suite_principals = suite_principals()?;
    Ok(protection)
}

/// `IR_SUITE_PRINCIPALS`: one or more IAM role ARNs, comma-separated.
pub fn suite_principals() -> Result<Vec<String>, InitError> {
    parse_suite_principals(&required(SUITE_PRINCIPALS_VAR)?).map_err(|message| InitError::Var {
        name: SUITE_PRINCIPALS_VAR,
        message,
    })
}

fn parse_suite_principals(raw: &str) -> Result<Vec<String>, String> {
    let arns: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if arns.is_empty() {
        return Err("names no role ARN".to_owned());
    }
    for arn in &arns {
        let is_role = arn.starts_with("arn:")
            && arn.split(':').nth(2) == Some("iam")
            && ir_core::approval::principal(arn).is_some_and(|p| p.kind == PrincipalKind::Role);
        if !is_role {
            return Err(format!("`{arn}` is not an IAM role ARN"));
        }
    }
    Ok(arns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_principals_are_role_arns() {
        assert_eq!(
            parse_suite_principals(
                " arn:aws:iam::111122223333:role/ir-suite/a ,arn:aws:iam::111122223333:role/b,"
            )
            .ok(),
            Some(vec![
                "arn:aws:iam::111122223333:role/ir-suite/a".to_owned(),
                "arn:aws:iam::111122223333:role/b".to_owned()
            ])
        );
        for bad in [
            "",
            " , ",
            "ir-isolate",
            "arn:aws:iam::111122223333:user/u",
            "arn:aws:sts::111122223333:assumed-role/r/s",
            "arn:aws:iam::111122223333:role/a,nope",
        ] {
            assert!(parse_suite_principals(bad).is_err(), "{bad:?}");
        }
    }
}
