//! Where a function's configuration comes from, and what it must pass before anything uses it.
//!
//! The deployment names at most one source ([`ConfigSource::from_env`]): an SSM parameter
//! (`IR_CONFIG_SSM_PARAMETER`), an S3 object (`IR_CONFIG_S3_URI`), a file (`IR_CONFIG_FILE`), or
//! none, and then the embedded default is used. This crate reads files only; fetching from SSM or
//! S3 needs the SDK and is `ir_aws::config_source`'s, which hands the text back here.
//!
//! Whatever the source ([`config_from_source`]), the overlay of the deployment's parameters
//! ([`Overlay`]: `IR_APPROVERS_<ROLE>`, `IR_PLAYBOOK_MODE_<PLAYBOOK>`) is applied over the text,
//! and the result is held to the schema and checked for meaning (errors name their path).
//!
//! A config in SSM or S3 ([`config_from_text`]) can be changed without a deploy, so it must also
//! need the deployed state machines ([`state_machine_differences`]): the committed
//! `statemachines/`, rendered from the embedded config this binary was built with. One whose
//! playbooks, triggers, steps, gates or escalation levels differ is refused, since the deployed
//! state machines would not run it. A file ships with the build as the state machines do (the
//! test harnesses serve a function with a file of their own playbooks), and is not held to them.

use std::fmt;
use std::path::PathBuf;

use ir_core::asl;
use ir_core::config::{Config, DEFAULT_CONFIG_YAML, Mode};
use serde_json::Value;

use crate::{InitError, optional};

/// The SSM parameter (name or ARN; String or SecureString) holding the configuration.
pub const SSM_PARAMETER_VAR: &str = "IR_CONFIG_SSM_PARAMETER";
/// The S3 object holding the configuration, `s3://bucket/key`.
pub const S3_URI_VAR: &str = "IR_CONFIG_S3_URI";
/// A file holding the configuration.
pub const FILE_VAR: &str = "IR_CONFIG_FILE";
/// `IR_APPROVERS_<ROLE>`: the identities holding an escalation role, comma-separated ARNs,
/// replacing the role's `identities`.
pub const APPROVERS_PREFIX: &str = "IR_APPROVERS_";
/// `IR_PLAYBOOK_MODE_<PLAYBOOK>`: `dry-run` or `enforce`, replacing the playbook's `mode`.
pub const PLAYBOOK_MODE_PREFIX: &str = "IR_PLAYBOOK_MODE_";

/// The largest configuration text a source may hold (SSM's advanced tier holds 8 KB).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The configuration compiled into the binary (`config/incident-response.yaml`).
    Embedded,
    /// A file (`IR_CONFIG_FILE`).
    File(PathBuf),
    /// An SSM parameter, by name or ARN (`IR_CONFIG_SSM_PARAMETER`).
    SsmParameter(String),
    /// An S3 object (`IR_CONFIG_S3_URI`).
    S3Object { bucket: String, key: String },
}

impl fmt::Display for ConfigSource {
    /// The origin as errors and logs name it: `embedded`, `file:/path`, `ssm:/ir/config`,
    /// `s3://bucket/key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Embedded => f.write_str("embedded"),
            ConfigSource::File(p) => write!(f, "file:{}", p.display()),
            ConfigSource::SsmParameter(name) => write!(f, "ssm:{name}"),
            ConfigSource::S3Object { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl ConfigSource {
    /// The source the environment names: at most one of `IR_CONFIG_SSM_PARAMETER`,
    /// `IR_CONFIG_S3_URI`, `IR_CONFIG_FILE` (set but empty counts as unset); none is the
    /// embedded default. Two at once is refused: which one wins would be a guess.
    pub fn from_env() -> Result<ConfigSource, InitError> {
        ConfigSource::parse(
            optional(SSM_PARAMETER_VAR)?,
            optional(S3_URI_VAR)?,
            optional(FILE_VAR)?,
        )
    }

    fn parse(
        ssm: Option<String>,
        s3: Option<String>,
        file: Option<String>,
    ) -> Result<ConfigSource, InitError> {
        let set: Vec<&str> = [
            (SSM_PARAMETER_VAR, &ssm),
            (S3_URI_VAR, &s3),
            (FILE_VAR, &file),
        ]
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| *n)
        .collect();
        if set.len() > 1 {
            return Err(InitError::Var {
                name: set[0],
                message: format!(
                    "the config comes from one source, and {} are all set",
                    set.join(", ")
                ),
            });
        }
        if let Some(name) = ssm {
            let name = name.trim().to_owned();
            check_parameter_name(&name).map_err(|message| InitError::Var {
                name: SSM_PARAMETER_VAR,
                message,
            })?;
            return Ok(ConfigSource::SsmParameter(name));
        }
        if let Some(uri) = s3 {
            let (bucket, key) = parse_s3_uri(uri.trim()).map_err(|message| InitError::Var {
                name: S3_URI_VAR,
                message,
            })?;
            return Ok(ConfigSource::S3Object { bucket, key });
        }
        Ok(file.map_or(ConfigSource::Embedded, |p| {
            ConfigSource::File(PathBuf::from(p))
        }))
    }

    /// Whether the text must be fetched from AWS (SSM or S3) rather than read here.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            ConfigSource::SsmParameter(_) | ConfigSource::S3Object { .. }
        )
    }
}

/// An SSM parameter name (`/ir/config`, `ir-config`) or its ARN.
fn check_parameter_name(name: &str) -> Result<(), String> {
    if let Some(rest) = name.strip_prefix("arn:") {
        let fields: Vec<&str> = rest.splitn(5, ':').collect();
        let ok = fields.len() == 5
            && fields[0].starts_with("aws")
            && fields[1] == "ssm"
            && fields[4].starts_with("parameter/")
            && fields[4].len() > "parameter/".len();
        return if ok {
            Ok(())
        } else {
            Err(format!("`{name}` is not an SSM parameter ARN"))
        };
    }
    let ok = !name.is_empty()
        && name.len() <= 2048
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an SSM parameter name (letters, digits, _ . - /) or ARN"
        ))
    }
}

/// `s3://bucket/key` → (bucket, key).
fn parse_s3_uri(uri: &str) -> Result<(String, String), String> {
    let refuse = || format!("`{uri}` is not an S3 object URI (s3://bucket/key)");
    let rest = uri.strip_prefix("s3://").ok_or_else(refuse)?;
    let (bucket, key) = rest.split_once('/').ok_or_else(refuse)?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok || key.is_empty() {
        return Err(refuse());
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

/// `security_engineer` → `SECURITY_ENGINEER`, `immediate-isolation` → `IMMEDIATE_ISOLATION`.
pub fn variable_suffix(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The overlay variable of an escalation role: `IR_APPROVERS_SECURITY_ENGINEER`.
pub fn approvers_variable(role: &str) -> String {
    format!("{APPROVERS_PREFIX}{}", variable_suffix(role))
}

/// The overlay variable of a playbook's mode: `IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION`.
pub fn playbook_mode_variable(playbook_id: &str) -> String {
    format!("{PLAYBOOK_MODE_PREFIX}{}", variable_suffix(playbook_id))
}

/// The deployment's parameters applied over whatever configuration was loaded: who holds each
/// escalation role (`IR_APPROVERS_<ROLE>`) and each playbook's mode
/// (`IR_PLAYBOOK_MODE_<PLAYBOOK>`). A variable set but empty changes nothing; one that names no
/// role or playbook of the loaded config, or holds a value that is not an identity ARN or a
/// mode, fails init with the variable's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// (variable, identities), in variable order.
    approvers: Vec<(String, Vec<String>)>,
    /// (variable, mode), in variable order.
    modes: Vec<(String, Mode)>,
}

impl Overlay {
    /// The overlay variables of this process's environment.
    pub fn from_env() -> Result<Overlay, InitError> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with(APPROVERS_PREFIX) || name.starts_with(PLAYBOOK_MODE_PREFIX)) {
                continue;
            }
            let value = value.into_string().map_err(|_| InitError::Overlay {
                variable: name.to_owned(),
                message: "is not valid Unicode".to_owned(),
            })?;
            vars.push((name.to_owned(), value));
        }
        Overlay::from_vars(vars)
    }

    /// The overlay of these `(name, value)` pairs; other names are ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Overlay, InitError> {
        let mut overlay = Overlay::default();
        let mut vars: Vec<(String, String)> = vars.into_iter().collect();
        vars.sort();
        for (name, value) in vars {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let refuse = |message: String| InitError::Overlay {
                variable: name.clone(),
                message,
            };
            if name.starts_with(APPROVERS_PREFIX) {
                let arns: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
                if arns.is_empty() {
                    return Err(refuse("names no identity ARN".to_owned()));
                }
                for arn in &arns {
                    if ir_core::approval::principal(arn).is_none() {
                        return Err(refuse(format!(
                            "`{arn}` is not an IAM role, IAM user or assumed-role session ARN"
                        )));
                    }
                }
                overlay.approvers.push((name, arns));
            } else if name.starts_with(PLAYBOOK_MODE_PREFIX) {
                let mode = match value {
                    "dry-run" => Mode::DryRun,
                    "enforce" => Mode::Enforce,
                    other => {
                        return Err(refuse(format!("`{other}` is neither dry-run nor enforce")));
                    }
                };
                overlay.modes.push((name, mode));
            }
        }
        Ok(overlay)
    }

    /// Whether no variable changes anything.
    pub fn is_empty(&self) -> bool {
        self.approvers.is_empty() && self.modes.is_empty()
    }

    /// The variables that change something, sorted.
    pub fn variables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .approvers
            .iter()
            .map(|(v, _)| v.as_str())
            .chain(self.modes.iter().map(|(v, _)| v.as_str()))
            .collect();
        out.sort_unstable();
        out
    }

    /// Applies the overlay to a parsed configuration document.
    fn apply(&self, doc: &mut Value) -> Result<(), InitError> {
        for (variable, identities) in &self.approvers {
            let suffix = &variable[APPROVERS_PREFIX.len()..];
            let roles = doc
                .pointer_mut("/notifications/approver_roles")
                .and_then(Value::as_array_mut);
            let target = only_one(variable, suffix, roles, "role", "escalation role", || {
                format!("notifications.approver_roles (its roles give {APPROVERS_PREFIX}<ROLE>)")
            })?;
            target.insert(
                "identities".to_owned(),
                Value::Array(identities.iter().cloned().map(Value::String).collect()),
            );
        }
        for (variable, mode) in &self.modes {
            let suffix = &variable[PLAYBOOK_MODE_PREFIX.len()..];
            let playbooks = doc.pointer_mut("/playbooks").and_then(Value::as_array_mut);
            let target = only_one(variable, suffix, playbooks, "id", "playbook", || {
                format!("playbooks (its playbooks give {PLAYBOOK_MODE_PREFIX}<PLAYBOOK>)")
            })?;
            target.insert("mode".to_owned(), Value::String(mode.as_str().to_owned()));
        }
        Ok(())
    }
}

/// The one entry of `list` whose `field`, as a variable suffix, is `suffix`.
fn only_one<'a>(
    variable: &str,
    suffix: &str,
    list: Option<&'a mut Vec<Value>>,
    field: &str,
    what: &str,
    where_: impl Fn() -> String,
) -> Result<&'a mut serde_json::Map<String, Value>, InitError> {
    let mut found: Vec<&'a mut serde_json::Map<String, Value>> = list
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
        .filter(|entry| {
            entry
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|id| variable_suffix(id) == suffix)
        })
        .collect();
    match found.len() {
        1 => found.pop().ok_or_else(|| InitError::Overlay {
            variable: variable.to_owned(),
            message: format!("names no {what}"),
        }),
        0 => Err(InitError::Overlay {
            variable: variable.to_owned(),
            message: format!("names no {what} of the config's {}", where_()),
        }),
        n => Err(InitError::Overlay {
            variable: variable.to_owned(),
            message: format!("names {n} {what}s of the config (their ids differ only in - or _)"),
        }),
    }
}

/// The configuration of a deployment read from SSM or S3: `text` from `origin` (as
/// [`ConfigSource`] displays it), with `overlay` applied, held to the schema, checked for
/// meaning, and refused unless the state machines it needs are the deployed ones. Every error
/// names the origin; a schema or meaning error names its path.
pub fn config_from_text(text: &str, origin: &str, overlay: &Overlay) -> Result<Config, InitError> {
    let config = checked(text, origin, overlay)?;
    fits_the_deployed_state_machines(&config, &overlaid(origin, overlay))?;
    Ok(config)
}

/// The configuration of `source` with `overlay` applied, from `text` as read from it (`None`
/// for the embedded one): held to the schema and checked for meaning, and, from SSM or S3, to
/// the deployed state machines ([`config_from_text`]).
pub fn config_from_source(
    source: &ConfigSource,
    text: Option<&str>,
    overlay: &Overlay,
) -> Result<Config, InitError> {
    let origin = source.to_string();
    match (source, text) {
        (ConfigSource::Embedded, _) => embedded_config(overlay),
        (ConfigSource::File(_), Some(text)) => checked(text, &origin, overlay),
        (_, Some(text)) => config_from_text(text, &origin, overlay),
        (_, None) => Err(InitError::Config {
            origin,
            message: "nothing was read from it".to_owned(),
        }),
    }
}

/// `text` with `overlay` applied, held to the schema and checked for meaning.
fn checked(text: &str, origin: &str, overlay: &Overlay) -> Result<Config, InitError> {
    let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| InitError::Config {
        origin: origin.to_owned(),
        message: format!("config is not valid YAML: {e}"),
    })?;
    overlay.apply(&mut doc)?;
    Config::from_value(doc).map_err(|e| InitError::Config {
        origin: overlaid(origin, overlay),
        message: e.to_string(),
    })
}

/// The embedded configuration with `overlay` applied. Without an overlay this is
/// [`Config::embedded`] (its schema pass and render were done at build time and by the tests that
/// compare it with `statemachines/`); with one, the overlaid document is checked as any other.
pub fn embedded_config(overlay: &Overlay) -> Result<Config, InitError> {
    if overlay.is_empty() {
        return Config::embedded().map_err(|e| InitError::Config {
            origin: ConfigSource::Embedded.to_string(),
            message: e.to_string(),
        });
    }
    config_from_text(
        DEFAULT_CONFIG_YAML,
        &ConfigSource::Embedded.to_string(),
        overlay,
    )
}

fn overlaid(origin: &str, overlay: &Overlay) -> String {
    if overlay.is_empty() {
        origin.to_owned()
    } else {
        format!("{origin} (overlaid by {})", overlay.variables().join(", "))
    }
}

/// The text of a config file.
pub fn read_file(path: &std::path::Path) -> Result<String, InitError> {
    std::fs::read_to_string(path).map_err(|e| InitError::File {
        what: "config",
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The configuration of a local source (the embedded one or a file), with the environment's
/// overlay. A remote source is fetched by `ir_aws::config_source`, not here.
pub fn local_config(source: &ConfigSource, overlay: &Overlay) -> Result<Config, InitError> {
    match source {
        ConfigSource::Embedded => embedded_config(overlay),
        ConfigSource::File(path) => config_from_source(source, Some(&read_file(path)?), overlay),
        remote => Err(InitError::Config {
            origin: remote.to_string(),
            message: "a config in SSM or S3 is fetched at init with the AWS SDK \
                      (ir_aws::config_source), and this process reads only local ones"
                .to_owned(),
        }),
    }
}

fn fits_the_deployed_state_machines(config: &Config, origin: &str) -> Result<(), InitError> {
    // The deployed state machines are the committed `statemachines/`, rendered from the embedded
    // config this binary was built with (a test holds them equal).
    let deployed = Config::embedded().map_err(|e| InitError::Config {
        origin: ConfigSource::Embedded.to_string(),
        message: e.to_string(),
    })?;
    let differences = state_machine_differences(&deployed, config);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(InitError::StateMachines {
            origin: origin.to_owned(),
            differences: differences.join("; "),
        })
    }
}

/// How the state machines `loaded` needs differ from those `deployed` renders (the triage and
/// playbook definitions before substitution); empty when they are the same. Said in the
/// config's terms (playbooks, steps, gates, escalation levels) where it can, else as the first
/// paths where the definitions differ.
pub fn state_machine_differences(deployed: &Config, loaded: &Config) -> Vec<String> {
    let have = asl::render(deployed);
    let want = asl::render(loaded);
    if have == want {
        return Vec::new();
    }
    let reasons = config_differences(deployed, loaded);
    if !reasons.is_empty() {
        return reasons;
    }
    let mut out = Vec::new();
    for (file, definition) in &want {
        match have.iter().find(|(f, _)| f == file) {
            None => out.push(format!("{file} is not deployed")),
            Some((_, deployed)) => {
                let mut paths = Vec::new();
                json_differences(deployed, definition, &mut String::new(), &mut paths);
                if !paths.is_empty() {
                    out.push(format!("{file} differs at {}", paths.join(", ")));
                }
            }
        }
    }
    for (file, _) in &have {
        if !want.iter().any(|(f, _)| f == file) {
            out.push(format!(
                "{file} is deployed and this config has no such playbook"
            ));
        }
    }
    out
}

/// The differences in playbooks, triggers, steps, gates and escalation levels.
fn config_differences(deployed: &Config, loaded: &Config) -> Vec<String> {
    let ids = |c: &Config| -> Vec<String> { c.playbooks.iter().map(|p| p.id.clone()).collect() };
    let (have, want) = (ids(deployed), ids(loaded));
    let mut out = Vec::new();
    for id in &want {
        if !have.contains(id) {
            out.push(format!("playbook `{id}` is not deployed"));
        }
    }
    for id in &have {
        if !want.contains(id) {
            out.push(format!("deployed playbook `{id}` is not in this config"));
        }
    }
    let common = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|id| have.contains(id) && want.contains(id))
            .cloned()
            .collect()
    };
    if common(&have) != common(&want) {
        out.push(format!(
            "playbook order {} instead of {}",
            common(&want).join(", "),
            common(&have).join(", ")
        ));
    }
    for p in &loaded.playbooks {
        let Some(d) = deployed.playbooks.iter().find(|d| d.id == p.id) else {
            continue;
        };
        if p.trigger.to_string() != d.trigger.to_string() {
            out.push(format!(
                "playbook `{}`: trigger `{}` instead of `{}`",
                p.id, p.trigger, d.trigger
            ));
        }
        let steps = |pb: &ir_core::config::PlaybookConfig| -> Vec<String> {
            pb.steps
                .iter()
                .map(|s| {
                    format!(
                        "{} ({}{})",
                        s.id,
                        s.action,
                        if s.requires_approval { ", gated" } else { "" }
                    )
                })
                .collect()
        };
        if steps(p) != steps(d) {
            out.push(format!(
                "playbook `{}`: steps [{}] instead of [{}]",
                p.id,
                steps(p).join(", "),
                steps(d).join(", ")
            ));
        }
        let (levels, deployed_levels) = (
            asl::escalation_levels(loaded, p),
            asl::escalation_levels(deployed, d),
        );
        let gated = p.steps.iter().any(|s| s.requires_approval);
        if gated && levels != deployed_levels {
            out.push(format!(
                "playbook `{}`: {levels} escalation levels instead of {deployed_levels}",
                p.id
            ));
        }
    }
    out
}

/// Up to three JSON pointers where `a` and `b` differ.
fn json_differences(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    const MAX: usize = 3;
    if out.len() >= MAX || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let len = path.len();
                path.push('/');
                path.push_str(k);
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => json_differences(v, w, path, out),
                    _ if out.len() < MAX => out.push(path.clone()),
                    _ => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                json_differences(v, w, path, out);
                path.truncate(len);
            }
        }
        _ => out.push(if path.is_empty() {
            "/".to_owned()
        } else {
            path.clone()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn overlay(pairs: &[(&str, &str)]) -> Overlay {
        Overlay::from_vars(vars(pairs)).unwrap()
    }

    fn with(from: &str, to: &str) -> String {
        assert!(
            DEFAULT_CONFIG_YAML.contains(from),
            "fixture text `{from}` not in the default config"
        );
        DEFAULT_CONFIG_YAML.replacen(from, to, 1)
    }

    fn refusal(text: &str, overlay: &Overlay) -> String {
        config_from_text(text, "ssm:/ir/config", overlay)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn one_source_at_most() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            ConfigSource::parse(None, None, None).unwrap(),
            ConfigSource::Embedded
        );
        assert_eq!(
            ConfigSource::parse(s("/ir/config"), None, None).unwrap(),
            ConfigSource::SsmParameter("/ir/config".into())
        );
        assert_eq!(
            ConfigSource::parse(
                s("arn:aws:ssm:eu-west-1:111122223333:parameter/ir/config"),
                None,
                None
            )
            .unwrap()
            .to_string(),
            "ssm:arn:aws:ssm:eu-west-1:111122223333:parameter/ir/config"
        );
        let s3 =
            ConfigSource::parse(None, s("s3://acme-ir-config/suite/config.yaml"), None).unwrap();
        assert_eq!(
            s3,
            ConfigSource::S3Object {
                bucket: "acme-ir-config".into(),
                key: "suite/config.yaml".into()
            }
        );
        assert!(s3.is_remote());
        assert_eq!(s3.to_string(), "s3://acme-ir-config/suite/config.yaml");
        let file = ConfigSource::parse(None, None, s("/opt/ir.yaml")).unwrap();
        assert_eq!(file.to_string(), "file:/opt/ir.yaml");
        assert!(!file.is_remote());

        let both = ConfigSource::parse(s("/ir/config"), None, s("/opt/ir.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("IR_CONFIG_SSM_PARAMETER") && both.contains("IR_CONFIG_FILE"),
            "{both}"
        );
        for bad in ["ir config", "/ir/config?x", "arn:aws:s3:::bucket/key"] {
            let e = ConfigSource::parse(s(bad), None, None)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("environment variable IR_CONFIG_SSM_PARAMETER"),
                "{e}"
            );
        }
        for bad in [
            "acme/config.yaml",
            "s3://acme",
            "s3://acme/",
            "s3://Acme_X/k",
        ] {
            let e = ConfigSource::parse(None, s(bad), None)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("environment variable IR_CONFIG_S3_URI"),
                "{e}"
            );
        }
    }

    #[test]
    fn variable_names_follow_the_ids() {
        assert_eq!(
            approvers_variable("security_engineer"),
            "IR_APPROVERS_SECURITY_ENGINEER"
        );
        assert_eq!(
            playbook_mode_variable("immediate-isolation"),
            "IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION"
        );
    }

    #[test]
    fn the_embedded_config_without_overlay_is_the_embedded_config() {
        let c = embedded_config(&Overlay::default()).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::to_value(Config::embedded().unwrap()).unwrap()
        );
        // Its own text from a remote source passes every check.
        let c =
            config_from_text(DEFAULT_CONFIG_YAML, "ssm:/ir/config", &Overlay::default()).unwrap();
        assert_eq!(c.playbooks.len(), 3);
    }

    #[test]
    fn the_overlay_replaces_approvers_and_modes() {
        let o = overlay(&[
            (
                "IR_APPROVERS_SECURITY_ENGINEER",
                " arn:aws:iam::444455556666:role/Responders, arn:aws:sts::444455556666:assumed-role/Oncall/carol ",
            ),
            ("IR_APPROVERS_SECURITY_LEAD", ""),
            ("IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION", "enforce"),
            ("IR_PLAYBOOK_MODE_QUEUE_FOR_REVIEW", "dry-run"),
            ("IR_SOMETHING_ELSE", "ignored"),
        ]);
        assert_eq!(
            o.variables(),
            [
                "IR_APPROVERS_SECURITY_ENGINEER",
                "IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION",
                "IR_PLAYBOOK_MODE_QUEUE_FOR_REVIEW"
            ]
        );
        let c = embedded_config(&o).unwrap();
        let roles = &c.notifications.approver_roles;
        assert_eq!(
            roles[0].identities,
            [
                "arn:aws:iam::444455556666:role/Responders",
                "arn:aws:sts::444455556666:assumed-role/Oncall/carol"
            ]
        );
        // Empty: the loaded config's own.
        assert_eq!(
            roles[1].identities,
            ["arn:aws:iam::111122223333:role/SecurityLead"]
        );
        let mode = |id: &str| c.playbooks.iter().find(|p| p.id == id).unwrap().mode;
        assert_eq!(mode("immediate-isolation"), Some(Mode::Enforce));
        assert_eq!(mode("queue-for-review"), Some(Mode::DryRun));
        assert_eq!(mode("investigate-and-notify"), None);

        // The overlay wins over a loaded config's own mode.
        let enforced = with(
            "  - id: queue-for-review\n",
            "  - id: queue-for-review\n    mode: enforce\n",
        );
        let c = config_from_text(&enforced, "s3://b-1/k", &o).unwrap();
        assert_eq!(
            c.playbooks
                .iter()
                .find(|p| p.id == "queue-for-review")
                .unwrap()
                .mode,
            Some(Mode::DryRun)
        );
    }

    #[test]
    fn a_bad_overlay_value_fails_with_the_variables_name() {
        for (name, value, says) in [
            (
                "IR_APPROVERS_SECURITY_LEAD",
                "arn:aws:iam::111122223333:group/Security",
                "is not an IAM role, IAM user or assumed-role session ARN",
            ),
            (
                "IR_APPROVERS_SECURITY_LEAD",
                "SecurityLead",
                "is not an IAM",
            ),
            (
                "IR_APPROVERS_SECURITY_LEAD",
                "arn:aws:iam::111122223333:role/A,arn:aws:iam::111122223333:root",
                "arn:aws:iam::111122223333:root",
            ),
            ("IR_APPROVERS_SECURITY_LEAD", " , ", "names no identity ARN"),
            (
                "IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION",
                "Enforce",
                "neither dry-run nor enforce",
            ),
        ] {
            let e = Overlay::from_vars(vars(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("environment variable {name}: ")) && e.contains(says),
                "{name}={value}: {e}"
            );
        }
        // A variable naming no role or playbook of the loaded config.
        for (name, value) in [
            (
                "IR_APPROVERS_INCIDENT_COMMANDER",
                "arn:aws:iam::111122223333:role/IC",
            ),
            ("IR_PLAYBOOK_MODE_ISOLATE_EVERYTHING", "enforce"),
        ] {
            let e = embedded_config(&overlay(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("environment variable {name}: names no ")),
                "{e}"
            );
        }
    }

    #[test]
    fn an_overlay_is_checked_for_meaning_with_the_config() {
        // Enforce mode for a playbook with an ungated destructive step: refused at its path,
        // and the origin says the overlay was applied.
        let ungated = with(
            "      - id: isolate-instance\n        action: cloud:security_group_deny_all\n        requires_approval: true",
            "      - id: isolate-instance\n        action: cloud:security_group_deny_all",
        );
        // The step's gate is also what its state machine has: refused either way, but first
        // for its meaning.
        let e = refusal(
            &ungated,
            &overlay(&[("IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION", "enforce")]),
        );
        assert!(
            e.contains("/playbooks/0/steps/5/requires_approval")
                && e.contains("ssm:/ir/config (overlaid by IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION)"),
            "{e}"
        );
    }

    #[test]
    fn schema_and_meaning_errors_name_the_origin_and_the_path() {
        let e = refusal(
            &with("      severity: 0.4", "      severity: 1.4"),
            &Overlay::default(),
        );
        assert!(
            e.starts_with("config ssm:/ir/config: ")
                && e.contains("/triage/scoring/weights/severity"),
            "{e}"
        );
        let e = refusal("orchestrator: [unclosed", &Overlay::default());
        assert!(
            e.starts_with("config ssm:/ir/config: config is not valid YAML"),
            "{e}"
        );
    }

    #[test]
    fn approvers_modes_and_timeouts_keep_the_state_machines() {
        let deployed = Config::embedded().unwrap();
        let changed = with(
            "        - arn:aws:iam::111122223333:role/SecurityEngineer\n",
            "        - arn:aws:sts::444455556666:assumed-role/Oncall/carol\n        - arn:aws:iam::444455556666:user/dave\n",
        )
        .replacen("        timeout: 5m\n", "        timeout: 2m\n", 1)
        .replacen("        timeout: 15m\n", "        timeout: 1h\n", 1)
        .replacen("on_escalation_exhausted: reject", "on_escalation_exhausted: approve", 1)
        .replacen("    critical: 2\n", "    critical: 3\n", 1)
        .replacen("  dry_run_default: true", "  dry_run_default: false", 1)
        .replacen(
            "  - id: queue-for-review\n",
            "  - id: queue-for-review\n    mode: dry-run\n",
            1,
        )
        .replacen("        channel: \"#ir-critical\"", "        channel: \"#sec-war-room\"", 1);
        let loaded = config_from_text(
            &changed,
            "ssm:/ir/config",
            &overlay(&[("IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION", "enforce")]),
        )
        .unwrap();
        assert_eq!(
            state_machine_differences(&deployed, &loaded),
            Vec::<String>::new()
        );
        assert_eq!(
            loaded.notifications.approver_roles[0].identities.len(),
            2,
            "the change took"
        );
        assert_eq!(
            loaded.escalation(ir_core::Severity::Critical)[0]
                .timeout
                .as_secs(),
            120
        );
    }

    #[test]
    fn a_config_needing_other_state_machines_is_refused_and_says_why() {
        let said = |text: &str| {
            let e = refusal(text, &Overlay::default());
            assert!(
                e.starts_with(
                    "config ssm:/ir/config needs state machines other than the deployed ones ("
                ) && e
                    .ends_with("): make it config/incident-response.yaml, run `ir playbooks render`, commit, and redeploy"),
                "{e}"
            );
            e
        };
        // A step's gate removed (dry-run: meaning allows it).
        let e = said(&with(
            "      - id: revoke-credentials\n        action: cloud:revoke_session\n        requires_approval: true\n",
            "      - id: revoke-credentials\n        action: cloud:revoke_session\n",
        ));
        assert!(
            e.contains("playbook `immediate-isolation`: steps [")
                && e.contains("revoke-credentials (cloud:revoke_session)"),
            "{e}"
        );
        // A step added.
        let e = said(&with(
            "      - id: create-ticket\n        action: jira:create_issue\n        project: SEC\n        priority: Low\n",
            "      - id: create-ticket\n        action: jira:create_issue\n        project: SEC\n        priority: Low\n      - id: snapshot-volumes\n        action: cloud:snapshot_volumes\n",
        ));
        assert!(e.contains("playbook `queue-for-review`: steps"), "{e}");
        // A third escalation level for critical: the gates' levels.
        let e = said(&with(
            "      - role: security_lead\n        timeout: 15m\n",
            "      - role: security_lead\n        timeout: 15m\n      - role: security_lead\n        timeout: 1h\n",
        ));
        assert!(
            e.contains("playbook `immediate-isolation`: 3 escalation levels instead of 2"),
            "{e}"
        );
        // A playbook renamed: one not deployed, one deployed and gone.
        let e = said(&DEFAULT_CONFIG_YAML.replace("queue-for-review", "review-queue"));
        assert!(
            e.contains("playbook `review-queue` is not deployed")
                && e.contains("deployed playbook `queue-for-review` is not in this config"),
            "{e}"
        );
        // A trigger changed (the triage names it).
        let e = said(&with(
            "trigger: severity == high",
            "trigger: severity >= high",
        ));
        assert!(e.contains("trigger"), "{e}");
    }

    #[test]
    fn only_a_config_from_ssm_or_s3_is_held_to_the_deployed_state_machines() {
        // A third escalation level for critical gates: other state machines.
        let three = with(
            "      - role: security_lead\n        timeout: 15m\n",
            "      - role: security_lead\n        timeout: 15m\n      - role: security_lead\n        timeout: 1h\n",
        );
        let o = Overlay::default();
        for remote in [
            ConfigSource::SsmParameter("/ir/config".into()),
            ConfigSource::S3Object {
                bucket: "acme-ir".into(),
                key: "config.yaml".into(),
            },
        ] {
            let e = config_from_source(&remote, Some(&three), &o)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "config {remote} needs state machines other than the deployed ones"
                )),
                "{e}"
            );
        }
        // A file ships with the build, as the state machines do: schema and meaning only.
        let file = ConfigSource::File("/opt/ir.yaml".into());
        let c = config_from_source(&file, Some(&three), &o).unwrap();
        assert_eq!(c.escalation(ir_core::Severity::Critical).len(), 3);
        let e = config_from_source(&file, Some("orchestrator: [unclosed"), &o)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config file:/opt/ir.yaml: config is not valid YAML"),
            "{e}"
        );
        // The embedded one is what the state machines were rendered from.
        let c = config_from_source(&ConfigSource::Embedded, None, &o).unwrap();
        assert_eq!(c.escalation(ir_core::Severity::Critical).len(), 2);
        // A remote source with nothing read from it is an error, not the embedded default.
        let e = config_from_source(&ConfigSource::SsmParameter("/ir/config".into()), None, &o)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config ssm:/ir/config: "), "{e}");
    }

    #[test]
    fn json_differences_name_the_first_paths() {
        let a = serde_json::json!({"States": {"A": {"Next": "B"}, "B": {}}, "x": [1, 2]});
        let b = serde_json::json!({"States": {"A": {"Next": "C"}, "C": {}}, "x": [1, 3]});
        let mut out = Vec::new();
        json_differences(&a, &b, &mut String::new(), &mut out);
        assert_eq!(out, ["/States/A/Next", "/States/B", "/States/C"]);
    }
}
