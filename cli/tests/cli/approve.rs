//! `ir approve` and `ir reject` as a user runs them: what `ir` refuses itself, before it signs or
//! invokes anything.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::Output;

use ir_aws::store::TableNames;
use ir_tests::{cloud, unique_name};

use crate::local_cloud::{Env, stderr};

/// `ir VERB ID --step STEP --reason "seen it"`.
async fn decide(env: &Env, verb: &str, id: &str, step: &str) -> Output {
    env.ir(&[verb, id, "--step", step, "--reason", "seen it"])
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
    let out = decide(&offline, "approve", "INC-42", "isolate-instance").await;
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
