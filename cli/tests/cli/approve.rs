//! `ir approve` and `ir reject` against the local cloud: the identity comes from the credentials
//! (an IAM user made in the emulator, whose key STS maps back to it), the decision goes through
//! the store.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use ir_aws::store::{
    ApprovalRequest, ApprovalStatus, ApprovalStore, TableNames, TaskToken, create_tables,
};
use ir_aws::{ClientOptions, Clients};
use ir_core::config::DEFAULT_CONFIG_YAML;
use ir_tests::{cloud, unique_name};
use time::OffsetDateTime;

use crate::local_cloud::{Env, stderr, stdout};

/// A pending request for `isolate-instance` of `id`, asked by the gate's role.
fn stored_request(id: &str, now: OffsetDateTime) -> ApprovalRequest {
    ApprovalRequest {
        incident_id: id.to_owned(),
        step_id: "isolate-instance".into(),
        task_token: TaskToken::new("token"),
        requester: "arn:aws:sts::123456789012:assumed-role/ir-request-approval/x".into(),
        plan: serde_json::json!({}),
        level: 0,
        requested_at: now,
        expires_at: now + time::Duration::hours(1),
    }
}

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
async fn the_caller_is_who_the_credentials_say() {
    let cloud = cloud().await;
    let admin = Clients::new(&cloud.sdk_config(), ClientOptions::default());
    let user = unique_name("alice");
    admin
        .iam()
        .create_user()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let key = admin
        .iam()
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let creds = aws_sdk_sts::config::Credentials::new(
        key.access_key_id(),
        key.secret_access_key(),
        None,
        None,
        "test",
    );
    let sdk = cloud
        .sdk_config()
        .into_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(creds))
        .build();
    let clients = Clients::new(&sdk, ClientOptions::default());
    let arn = format!("arn:aws:iam::123456789012:user/{user}");

    let names = TableNames::with_prefix(&unique_name("cli"));
    create_tables(&clients, &names).await.unwrap();
    let id = ir_tests::incident_id();
    let now = OffsetDateTime::now_utc();
    ApprovalStore::new(clients.clone(), names.clone())
        .request(&ApprovalRequest {
            // No execution waits on it: Step Functions refuses it.
            task_token: TaskToken::new("not-a-waiting-task"),
            ..stored_request(&id, now)
        })
        .await
        .unwrap();
    // `ir` as that user.
    let env =
        Env::new(cloud, &names, "unused").with_key(key.access_key_id(), key.secret_access_key());
    let nobody = config_with_approvers(&[]);
    let listed = config_with_approvers(&[&arn]);
    // Not listed: refused (exit 1), nothing decided. The caller named is the user the
    // credentials belong to, as STS says.
    let out = decide(&env, "approve", &id, "isolate-instance", &nobody).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("ir: {arn} may not decide approvals")),
        "{}",
        stderr(&out)
    );

    // Listed: decided as that user; Step Functions refuses the token: a plain error.
    let out = decide(&env, "approve", &id, "isolate-instance", &listed).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused by Step Functions (InvalidToken)"),
        "{}",
        stderr(&out)
    );
    // The token is dead, so the decision took no effect: the request reads expired
    // (undecided), and the chain says who tried.
    let store = ApprovalStore::new(clients.clone(), names.clone());
    let stored = store.get(&id, "isolate-instance").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.decided_by),
        (ApprovalStatus::Expired, None)
    );
    let chain = ir_aws::store::AuditLog::new(clients.clone(), names.clone())
        .chain(&id)
        .await
        .unwrap();
    let last = chain.last().unwrap();
    assert_eq!(last.action, "approval-not-delivered");
    assert_eq!(last.detail["approver"], arn.as_str());

    // A step this user's decision reached: the same decision again is nothing to do
    // (exit 0); the opposite one is exit 1.
    store
        .request(&ApprovalRequest {
            step_id: "revoke-credentials".into(),
            task_token: TaskToken::new("delivered-token"),
            ..stored_request(&id, now)
        })
        .await
        .unwrap();
    let first = store
        .decide(&id, "revoke-credentials", true, &arn, "", now)
        .await
        .unwrap();
    assert!(matches!(first, ir_aws::store::Decided::Now { .. }));
    let out = decide(&env, "approve", &id, "revoke-credentials", &listed).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("was already approved by {arn}")),
        "{printed}"
    );
    let out = decide(&env, "reject", &id, "revoke-credentials", &listed).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // A malformed incident id: exit 2, before any call (nothing reaches the endpoint: a
    // connection would wait in the listener's backlog).
    let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", endpoint.local_addr().unwrap());
    let offline = env.clone().with_endpoint(&url);
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
