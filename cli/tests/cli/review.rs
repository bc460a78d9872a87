//! `ir review` as a user runs it: what `ir` refuses itself, before it asks AWS anything (exit 2,
//! naming the field). The review itself (who may, when, what it records) runs against the local
//! cloud in tests/tests/it/review.rs.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use ir_aws::store::TableNames;
use ir_tests::{cloud, unique_name};

use crate::local_cloud::{Env, stderr};

#[tokio::test]
async fn malformed_review_input_is_refused_before_any_call() {
    let cloud = cloud().await;
    let names = TableNames::with_prefix(&unique_name("cli"));
    // Nothing may reach this endpoint: a connection would wait in the listener's backlog.
    let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", endpoint.local_addr().unwrap());
    let env = Env::new(cloud, &names, "unused").with_endpoint(&url);
    let id = "inc-0123456789abcdef0123";
    let big = std::env::temp_dir().join(format!("{}.md", unique_name("big")));
    std::fs::write(&big, "x".repeat(70 * 1024)).unwrap();
    let big = format!("@{}", big.display());
    let add = |due: &'static str, jira: Option<&'static str>| {
        let mut a = vec![
            "review",
            "item",
            "add",
            id,
            "--title",
            "Close port 22",
            "--owner",
            "team-web",
            "--due",
            due,
        ];
        if let Some(k) = jira {
            a.extend(["--jira", k]);
        }
        a
    };
    for (args, says) in [
        (vec!["review", "open", "INC-42"], "INC-42"),
        (vec!["review", "open", id, "--date", "2026-5-1"], "date"),
        (vec!["review", "open", id, "--date", "2026-02-30"], "date"),
        (add("next friday", None), "due"),
        (add("2026-05-01T00:00:00Z", None), "due"),
        (add("2026-05-01", Some("sec-42")), "jira"),
        (add("2026-05-01", Some("SEC42")), "jira"),
        (
            vec![
                "review",
                "item",
                "add",
                id,
                "--title",
                " ",
                "--owner",
                "o",
                "--due",
                "2026-05-01",
            ],
            "title",
        ),
        (
            vec![
                "review",
                "item",
                "add",
                id,
                "--title",
                "t",
                "--owner",
                "a\u{1b}[2Jb",
                "--due",
                "2026-05-01",
            ],
            "owner",
        ),
        (vec!["review", "item", "close", id, "1", "--done"], "item"),
        (vec!["review", "item", "close", id, "A01", "--done"], "item"),
        (
            vec!["review", "item", "close", id, "A1", "--dropped"],
            "note",
        ),
        (vec!["review", "item", "close", id, "A1"], "--done"),
        (
            vec!["review", "item", "close", id, "A1", "--done", "--dropped"],
            "--dropped",
        ),
        (vec!["review", "write", id], "--timeline"),
        (vec!["review", "write", id, "--response", "   "], "response"),
        (
            vec!["review", "write", id, "--timeline", "@/no/such/file"],
            "--timeline",
        ),
        (
            vec!["review", "write", id, "--timeline", &big],
            "--timeline",
        ),
        (vec!["review", "close", "inc-nope"], "inc-nope"),
        (vec!["review", "show", "inc-nope"], "inc-nope"),
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
