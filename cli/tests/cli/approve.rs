//! `ir approve` and `ir reject` as a user runs them: what `ir` refuses itself, before it signs or
//! invokes anything.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use ir_aws::store::TableNames;
use ir_core::config::DEFAULT_CONFIG_YAML;
use ir_tests::{cloud, unique_name};

use crate::local_cloud::{Env, stderr};

/// The embedded config with `notifications.approvers` set to `approvers` (the two-person rule
/// on, as it is there), written to a file of its own.
fn config_with_approvers(approvers: &[&str]) -> PathBuf {
    let listed = "  approvers:\n    - arn:aws:iam::111122223333:role/SecurityEngineer\n    - arn:aws:iam::111122223333:role/SecurityLead\n";
    assert!(
        DEFAULT_CONFIG_YAML.contains(listed),
        "the embedded approvers"
    );
    assert!(DEFAULT_CONFIG_YAML.contains("  two_person_rule: true\n"));
    let replaced = if approvers.is_empty() {
        "  approvers: []\n".to_owned()
    } else {
        let items: String = approvers.iter().map(|a| format!("    - {a}\n")).collect();
        format!("  approvers:\n{items}")
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("approve");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.yaml", unique_name("config")));
    std::fs::write(&path, DEFAULT_CONFIG_YAML.replace(listed, &replaced)).unwrap();
    path
}

/// `ir VERB ID --step STEP --reason "seen it" --config CONFIG`.
async fn decide(env: &Env, verb: &str, id: &str, step: &str, config: &Path) -> Output {
    let config = config.display().to_string();
    env.ir(&[
        verb, id, "--step", step, "--reason", "seen it", "--config", &config,
    ])
    .await
}

#[tokio::test]
async fn a_malformed_decision_is_refused_before_any_call() {
    // The decision semantics (who may decide, the proof, the two-person rule, the plan hash) are
    // the decision function's: tests/tests/it/red_team/gates.rs and the end-to-end tests run
    // them. Here: `ir` refuses a malformed incident id (exit 2) before it signs or invokes
    // anything (nothing reaches the endpoint: a connection would wait in the listener's
    // backlog).
    let cloud = cloud().await;
    let names = TableNames::with_prefix(&unique_name("cli"));
    let env = Env::new(cloud, &names, "unused");
    let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", endpoint.local_addr().unwrap());
    let offline = env.clone().with_endpoint(&url);
    let listed = config_with_approvers(&["arn:aws:iam::123456789012:user/alice"]);
    let out = decide(&offline, "approve", "INC-42", "isolate-instance", &listed).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    endpoint.set_nonblocking(true).unwrap();
    let accepted = endpoint.accept();
    assert!(
        accepted
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "ir connected to its endpoint: {accepted:?}"
    );
}
