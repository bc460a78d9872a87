//! The embedded configuration (`config/incident-response.yaml`, compiled into every binary) is
//! checked against its JSON Schema here, at build time: no binary can be built around a config
//! the schema refuses. Loading the embedded config at run time ([`Config::embedded`]) therefore
//! skips the schema pass, which is most of its cost at a cold start; the typed parse and the
//! checks of meaning still run. A config from a file is always validated against the schema.

// Cargo reads its directives from the build script's standard output.
#![allow(clippy::print_stdout)]

use std::path::Path;

fn main() -> Result<(), String> {
    // Read at run time, not with env!(): the build script's binary is shared by every checkout
    // that builds into the same target directory, and must look at the checkout it runs for.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").map_err(|e| format!("CARGO_MANIFEST_DIR: {e}"))?;
    let dir = Path::new(&manifest_dir).join("../../config");
    let config_path = dir.join("incident-response.yaml");
    let schema_path = dir.join("incident-response.schema.json");
    println!("cargo:rerun-if-changed={}", config_path.display());
    println!("cargo:rerun-if-changed={}", schema_path.display());
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let config: serde_json::Value = serde_yaml_ng::from_str(&read(&config_path)?)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let schema: serde_json::Value = serde_json::from_str(&read(&schema_path)?)
        .map_err(|e| format!("{}: {e}", schema_path.display()))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| format!("{}: {e}", schema_path.display()))?;
    let problems: Vec<String> = validator
        .iter_errors(&config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} does not satisfy {}:\n{}",
            config_path.display(),
            schema_path.display(),
            problems.join("\n")
        ))
    }
}
