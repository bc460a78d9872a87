//! `ir playbooks`: playbooks as code. `render` compiles the config into the state machines
//! (`statemachines/*.asl.json`), `validate` checks the config and shows what each playbook does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ir_core::asl;
use ir_core::config::{Config, ConfigError, DEFAULT_CONFIG_YAML, Mode};
use ir_core::playbook;

use crate::{CliError, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Write the state machines of the config (triage and one per playbook) and remove the
    /// files of playbooks no longer in it.
    Render(RenderArgs),
    /// Check the config (schema and meaning) and show each playbook: trigger, steps, gates,
    /// and the substitutions the state machines need.
    Validate(ValidateArgs),
}

#[derive(Debug, clap::Args)]
struct RenderArgs {
    /// The incident-response config (default: the embedded config/incident-response.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the state machine files go.
    #[arg(long, default_value = "statemachines")]
    out: PathBuf,
    /// Write nothing; exit 1 listing the files that differ from what the config renders.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// The incident-response config (default: the embedded config/incident-response.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    match &args.command {
        Sub::Render(a) => render(a, out),
        Sub::Validate(a) => validate(a, out),
    }
}

/// The config and the name it is reported under.
fn load(path: Option<&PathBuf>) -> Result<(Config, String), CliError> {
    let (text, name) = match path {
        Some(p) => {
            let bytes = read_input(p, "config")?;
            let text = String::from_utf8(bytes).map_err(|_| {
                CliError::Invalid(format!("config {} is not UTF-8 text", p.display()))
            })?;
            (text, p.display().to_string())
        }
        None => (
            DEFAULT_CONFIG_YAML.to_owned(),
            "config/incident-response.yaml (embedded)".to_owned(),
        ),
    };
    let config = Config::from_yaml(&text).map_err(|e| invalid(&name, &e))?;
    let clashes = clashes(&config);
    if clashes.is_empty() {
        Ok((config, name))
    } else {
        Err(lines(&name, &clashes))
    }
}

/// One line per problem, each naming the file and the path in it.
fn invalid(name: &str, e: &ConfigError) -> CliError {
    match e {
        ConfigError::Invalid(problems) => lines(
            name,
            &problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ),
        other => CliError::Invalid(format!("{name}: {other}")),
    }
}

fn lines(name: &str, problems: &[String]) -> CliError {
    // main prints `ir: ` before the message; every further line gets the same prefix.
    CliError::Invalid(
        problems
            .iter()
            .map(|p| format!("{name}: {p}"))
            .collect::<Vec<_>>()
            .join("\nir: "),
    )
}

/// Playbook ids whose state machines would share a file name or a substitution.
fn clashes(config: &Config) -> Vec<String> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, p) in config.playbooks.iter().enumerate() {
        let name = asl::state_machine_substitution(&p.id);
        if let Some(other) = seen.insert(name.clone(), &p.id) {
            out.push(format!(
                "/playbooks/{i}/id: playbook `{}` and playbook `{other}` would both be the state machine ${{{name}}}; rename one",
                p.id
            ));
        }
    }
    out
}

fn write_err(e: std::io::Error) -> CliError {
    CliError::Failed(format!("writing output: {e}"))
}

/// The state machine files in `dir` that the renderer owns (`*.asl.json`), by name.
fn existing(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, CliError> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(CliError::Failed(format!("reading {}: {e}", dir.display()))),
    };
    for entry in entries {
        let entry =
            entry.map_err(|e| CliError::Failed(format!("reading {}: {e}", dir.display())))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(asl::FILE_SUFFIX) && entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).map_err(|e| {
                CliError::Failed(format!("reading {}: {e}", entry.path().display()))
            })?;
            out.insert(name, bytes);
        }
    }
    Ok(out)
}

fn render(args: &RenderArgs, out: &mut impl Write) -> Result<(), CliError> {
    let (config, _) = load(args.config.as_ref())?;
    let rendered: BTreeMap<String, String> = asl::render(&config)
        .into_iter()
        .map(|(name, doc)| (name, asl::to_pretty(&doc)))
        .collect();
    let on_disk = existing(&args.out)?;
    // Stale: a playbook file whose playbook is no longer configured. Other *.asl.json files
    // are not the renderer's and are left alone.
    let stale: Vec<&String> = on_disk
        .keys()
        .filter(|n| n.starts_with(asl::PLAYBOOK_FILE_PREFIX) && !rendered.contains_key(*n))
        .collect();
    let shown = |name: &str| args.out.join(name).display().to_string();

    if args.check {
        let mut differ = Vec::new();
        for (name, text) in &rendered {
            match on_disk.get(name) {
                None => differ.push(format!("missing  {}", shown(name))),
                Some(bytes) if bytes != text.as_bytes() => {
                    differ.push(format!("differs  {}", shown(name)));
                }
                Some(_) => {}
            }
        }
        for name in &stale {
            differ.push(format!(
                "stale    {} (its playbook is not in the config)",
                shown(name)
            ));
        }
        if differ.is_empty() {
            writeln!(
                out,
                "{} state machines up to date in {}",
                rendered.len(),
                args.out.display()
            )
            .map_err(write_err)?;
            return Ok(());
        }
        for line in &differ {
            writeln!(out, "{line}").map_err(write_err)?;
        }
        return Err(CliError::Failed(format!(
            "{} state machine file(s) out of date with the config; run `ir playbooks render`",
            differ.len()
        )));
    }

    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::Failed(format!("creating {}: {e}", args.out.display())))?;
    for (name, text) in &rendered {
        if on_disk.get(name).is_some_and(|b| b == text.as_bytes()) {
            writeln!(out, "unchanged {}", shown(name)).map_err(write_err)?;
            continue;
        }
        let path = args.out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
        writeln!(out, "wrote     {}", shown(name)).map_err(write_err)?;
    }
    for name in stale {
        let path = args.out.join(name);
        std::fs::remove_file(&path)
            .map_err(|e| CliError::Failed(format!("removing {}: {e}", path.display())))?;
        writeln!(
            out,
            "removed   {} (its playbook is not in the config)",
            shown(name)
        )
        .map_err(write_err)?;
    }
    Ok(())
}

fn validate(args: &ValidateArgs, out: &mut impl Write) -> Result<(), CliError> {
    let (config, name) = load(args.config.as_ref())?;
    let mut text = String::new();
    let mut line = |s: String| {
        text.push_str(&s);
        text.push('\n');
    };
    line(format!("{name}: valid"));
    for p in &config.playbooks {
        let mode = p.mode.unwrap_or(if config.orchestrator.dry_run_default {
            Mode::DryRun
        } else {
            Mode::Enforce
        });
        let levels = asl::escalation_levels(&config, p);
        line(String::new());
        line(format!(
            "playbook {} ({}), {}, state machine ${{{}}} in {}",
            p.id,
            p.trigger,
            mode.as_str(),
            asl::state_machine_substitution(&p.id),
            asl::playbook_file(&p.id)
        ));
        let gated = p.steps.iter().filter(|s| s.requires_approval).count();
        if gated > 0 {
            for s in asl::severities(p) {
                let chain: Vec<String> = config
                    .escalation(s)
                    .iter()
                    .map(|e| format!("{} {}", e.role, e.timeout))
                    .collect();
                line(format!("  escalation ({s}): {}", chain.join(" -> ")));
            }
            line(format!(
                "  {gated} approval gate(s), {levels} level(s) each; when nobody decides: {}",
                match config.notifications.on_escalation_exhausted {
                    ir_core::config::OnExhausted::Reject => "not approved",
                    ir_core::config::OnExhausted::Approve => "approved",
                }
            ));
        }
        for (i, s) in p.steps.iter().enumerate() {
            let function = playbook::action(&s.action).map_or("?", |a| a.function);
            line(format!(
                "  {}. {:<22} {:<32} {}{}",
                i + 1,
                s.id,
                s.action,
                function,
                if s.requires_approval {
                    "  [approval gate]"
                } else {
                    ""
                }
            ));
        }
    }
    line(String::new());
    let files: Vec<String> = asl::render(&config).into_iter().map(|(n, _)| n).collect();
    line(format!("state machines: {}", files.join(", ")));
    line("substitutions:".to_owned());
    for s in asl::substitutions(&config) {
        line(format!("  ${{{s}}}"));
    }
    out.write_all(text.as_bytes()).map_err(write_err)
}
