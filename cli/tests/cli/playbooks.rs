//! `ir playbooks` as an operator runs it, and the committed state machines: they are exactly
//! what the config renders, every `${…}` is a known substitution, and no ARN, table, bucket or
//! account is written into them.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ir_core::Config;
use ir_core::asl;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ir"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("playbooks")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config_text() -> String {
    std::fs::read_to_string(repo().join("config/incident-response.yaml")).unwrap()
}

/// The default config with `from` replaced by `to`, written to `dir`.
fn changed_config(dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = config_text();
    assert!(text.contains(from), "`{from}` not in the config");
    let path = dir.join("incident-response.yaml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

/// The committed state machine files, by name.
fn committed() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(repo().join("statemachines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(asl::FILE_SUFFIX))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn the_committed_state_machines_are_what_the_config_renders() {
    let config = Config::from_yaml(&config_text()).unwrap();
    let mut rendered: Vec<(String, String)> = asl::render(&config)
        .into_iter()
        .map(|(name, doc)| (name, asl::to_pretty(&doc)))
        .collect();
    rendered.sort();
    let committed = committed();
    assert_eq!(
        committed.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        rendered.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "statemachines/ holds other files than the config renders; run `ir playbooks render`"
    );
    for ((name, on_disk), (_, expected)) in committed.iter().zip(&rendered) {
        assert!(
            on_disk == expected,
            "statemachines/{name} differs from what config/incident-response.yaml renders; run `ir playbooks render`"
        );
    }
    // The same check as the CLI makes it.
    let out = ir(&[
        "playbooks",
        "render",
        "--check",
        "--config",
        "config/incident-response.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
}

#[test]
fn render_check_on_a_changed_config_exits_1_listing_the_files_and_writes_nothing() {
    let dir = scratch("check");
    let config = changed_config(
        &dir,
        "      - role: security_lead\n        timeout: 15m",
        "      - role: security_lead\n        timeout: 15m\n      - role: security_lead\n        timeout: 1h",
    );
    let out_dir = dir.join("statemachines");
    std::fs::create_dir_all(&out_dir).unwrap();
    copy_dir(&repo().join("statemachines"), &out_dir);
    let before = std::fs::read(out_dir.join("playbook-immediate-isolation.asl.json")).unwrap();
    let out = ir(&[
        "playbooks",
        "render",
        "--check",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let listed = stdout(&out);
    assert!(
        listed.contains("differs") && listed.contains("playbook-immediate-isolation.asl.json"),
        "{listed}"
    );
    // Only the playbook whose gates gained a level differs.
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        stderr(&out).contains("ir playbooks render"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(out_dir.join("playbook-immediate-isolation.asl.json")).unwrap(),
        before,
        "--check wrote a file"
    );
}

#[test]
fn render_writes_the_files_and_removes_playbooks_no_longer_configured() {
    let dir = scratch("render");
    let config = changed_config(&dir, "  - id: queue-for-review", "  - id: review-queue");
    let out_dir = dir.join("statemachines");
    std::fs::create_dir_all(&out_dir).unwrap();
    copy_dir(&repo().join("statemachines"), &out_dir);
    let args = |check: bool| {
        let mut a = vec![
            "playbooks",
            "render",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        if check {
            a.push("--check");
        }
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |check: bool| {
        let a = args(check);
        ir(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing"), "{}", stdout(&out));
    assert!(stdout(&out).contains("stale"), "{}", stdout(&out));

    let out = run(false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("wrote") && said.contains("playbook-review-queue.asl.json"),
        "{said}"
    );
    assert!(
        said.contains("removed") && said.contains("playbook-queue-for-review.asl.json"),
        "{said}"
    );
    assert!(
        said.contains("unchanged") && said.contains("playbook-investigate-and-notify.asl.json"),
        "{said}"
    );
    assert!(!out_dir.join("playbook-queue-for-review.asl.json").exists());
    assert!(
        out_dir.join("README.md").exists(),
        "other files are left alone"
    );
    let triage = std::fs::read_to_string(out_dir.join("triage.asl.json")).unwrap();
    assert!(triage.contains("${PlaybookReviewQueueStateMachine}"));
    assert!(!triage.contains("QueueForReview"));

    let out = run(true);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn validate_shows_each_playbook_on_the_default_config() {
    let out = ir(&["playbooks", "validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    for needle in [
        "playbook immediate-isolation (severity == critical)",
        "playbook investigate-and-notify (severity == high)",
        "playbook queue-for-review (severity <= medium)",
        "escalation (critical): security_engineer 5m -> security_lead 15m",
        "4 approval gate(s), 2 level(s) each",
        "isolate-instance",
        "[approval gate]",
        "${RequestApprovalFunction}",
        "${PlaybookImmediateIsolationStateMachine}",
        "${IsolateInstanceFunction}",
    ] {
        assert!(said.contains(needle), "`{needle}` not in:\n{said}");
    }
}

#[test]
fn validate_on_a_broken_config_exits_2_naming_each_problem() {
    let dir = scratch("broken");
    let config = changed_config(
        &dir,
        "        action: cloud:snapshot_volumes",
        "        action: cloud:snapshot_everything",
    );
    let out = ir(&[
        "playbooks",
        "validate",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("/playbooks/0/steps/1/action"), "{err}");
    assert!(err.contains("unknown action"), "{err}");

    // A gated playbook triggered by a severity nobody is asked about; and a second problem.
    let text = config_text()
        .replacen(
            "trigger: severity == critical",
            "trigger: severity >= medium",
            1,
        )
        .replacen("      severity: 0.4", "      severity: 0.5", 1);
    let path = dir.join("two-problems.yaml");
    std::fs::write(&path, text).unwrap();
    let out = ir(&["playbooks", "validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("ir: ") && l.contains("two-problems.yaml")),
        "{err}"
    );
    assert!(
        err.contains("/playbooks/0/trigger") && err.contains("severity medium"),
        "{err}"
    );
    assert!(err.contains("/triage/scoring/weights"), "{err}");

    // render refuses it the same way and writes nothing.
    let out_dir = dir.join("out");
    let out = ir(&[
        "playbooks",
        "render",
        "--config",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out_dir.exists());
}

#[test]
fn every_placeholder_in_the_files_is_a_substitution() {
    let config = Config::from_yaml(&config_text()).unwrap();
    let substitutions: BTreeSet<String> = asl::substitutions(&config).into_iter().collect();
    let mut used = BTreeSet::new();
    for (name, text) in committed() {
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for p in asl::placeholders(&doc) {
            assert!(
                substitutions.contains(&p),
                "{name}: ${{{p}}} is not in substitutions()"
            );
            used.insert(p);
        }
        // A `${` that is not a well-formed placeholder would go unsubstituted.
        for (i, _) in text.match_indices("${") {
            let rest = &text[i + 2..];
            let end = rest
                .find('}')
                .unwrap_or_else(|| panic!("{name}: unclosed ${{"));
            assert!(
                rest[..end].chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}: malformed placeholder ${{{}}}",
                &rest[..end]
            );
        }
    }
    assert_eq!(
        used, substitutions,
        "substitutions() lists names no file uses"
    );
}

#[test]
fn no_arn_table_bucket_or_account_is_written_into_the_files() {
    for (name, text) in committed() {
        for literal in [
            "arn:aws:lambda",
            "arn:aws:dynamodb",
            "arn:aws:s3",
            "arn:aws:iam",
            "arn:aws:sns",
        ] {
            assert!(!text.contains(literal), "{name} contains {literal}");
        }
        // The only ARNs are the service integrations', which name no region or account.
        for (i, _) in text.match_indices("arn:") {
            assert!(
                text[i..].starts_with("arn:aws:states:::"),
                "{name}: ARN literal at {i}: {}",
                &text[i..(i + 60).min(text.len())]
            );
        }
        // No account id: no run of 12 digits anywhere.
        let digits = text
            .as_bytes()
            .windows(12)
            .any(|w| w.iter().all(u8::is_ascii_digit));
        assert!(
            !digits,
            "{name} contains a 12-digit number (an account id?)"
        );
    }
}
