//! `ir resolve` as a user runs it: what `ir` refuses itself, before it asks AWS anything. The
//! resolution itself (who may, when, what it keeps) runs end to end in tests/tests/it/e2e.rs.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use ir_aws::store::TableNames;
use ir_tests::{cloud, unique_name};

use crate::local_cloud::{Env, stderr};

#[tokio::test]
async fn a_resolution_without_a_reason_or_an_incident_id_is_refused_before_any_call() {
    let cloud = cloud().await;
    let names = TableNames::with_prefix(&unique_name("cli"));
    // Nothing may reach this endpoint: a connection would wait in the listener's backlog.
    let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", endpoint.local_addr().unwrap());
    let env = Env::new(cloud, &names, "unused").with_endpoint(&url);
    let id = "inc-0123456789abcdef0123";
    for (args, says) in [
        (vec!["resolve", id], "--reason"),
        (vec!["resolve", id, "--reason", "   "], "--reason"),
        (vec!["resolve", "INC-42", "--reason", "rebuilt"], "INC-42"),
    ] {
        let out = env.ir(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    endpoint.set_nonblocking(true).unwrap();
    let accepted = endpoint.accept();
    assert!(
        accepted
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "ir connected to its endpoint: {accepted:?}"
    );
}
