//! `ir audit verify` against the local cloud: a chain and its anchor verified, the records
//! appended after the anchor reported as the unanchored tail, then a record edited in place and
//! the break named.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use ir_aws::store::AuditLog;

use crate::local_cloud::{Env, stderr, stdout};

#[tokio::test]
async fn verifies_against_the_local_cloud_and_names_a_break() {
    let ir_tests::Stores {
        cloud,
        clients,
        names,
        bucket,
    } = ir_tests::stores("cli-audit").await;
    let id = ir_tests::incident_id();
    let log = AuditLog::new(clients.clone(), names.clone());
    let now = time::OffsetDateTime::now_utc();
    for i in 0..3 {
        let event = ir_core::audit::AuditEvent::other("step", serde_json::json!({"i": i}));
        log.append(&id, "ir-record", &event, now).await.unwrap();
    }
    let evidence = ir_core::config::EvidenceConfig {
        retention_days: 1,
        ..Default::default()
    };
    let anchor = log
        .anchor(&id, "left-containment", &bucket, &evidence, now)
        .await
        .unwrap();
    let env = Env::new(cloud, &names, &bucket);
    let out = env.ir(&["audit", "verify", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "3 records, head {}, 1 anchors verified, all anchored\n",
            anchor.hash
        )
    );

    // Two records appended after the anchor: the unanchored tail, in text and JSON.
    for i in 3..5 {
        let event = ir_core::audit::AuditEvent::other("step", serde_json::json!({"i": i}));
        log.append(&id, "ir-record", &event, now).await.unwrap();
    }
    let head = log.head(&id).await.unwrap().unwrap();
    let out = env.ir(&["audit", "verify", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "5 records, head {}, 1 anchors verified, 2 unanchored (after the last anchor, from seq 3)\n",
            head.hash
        )
    );
    let out = env.ir(&["audit", "verify", &id, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "incidentId": id,
            "records": 5,
            "head": head.hash,
            "anchorsVerified": 1,
            "unanchored": 2,
            "unanchoredFromSeq": 3,
        })
    );

    // Record 1 edited in place: exit 1, the break named.
    clients
        .dynamodb()
        .update_item()
        .table_name(&names.audit)
        .key("incidentId", AttributeValue::S(id.clone()))
        .key("seq", AttributeValue::N("1".into()))
        .update_expression("SET #d = :d")
        .expression_attribute_names("#d", "detail")
        .expression_attribute_values(":d", AttributeValue::S("{\"i\":42}".into()))
        .send()
        .await
        .unwrap();
    let out = env.ir(&["audit", "verify", &id]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("record 1 does not match its hash (edited)"),
        "{}",
        stderr(&out)
    );
    let out = env.ir(&["audit", "verify", "inc-nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
