//! The audit log against the local cloud: real aws-sdk-rust calls over HTTP to moto.
//!
//! Every test creates its own tables (`create_tables`) and its own Object Lock evidence bucket
//! (`ObjectLockEnabledForBucket`, default retention COMPLIANCE 1 day), named with
//! `unique_name`. Tampering is done the way an attacker with table access would: plain SDK
//! calls on the audit table, beside the store.
//!
//! The concurrent-append test reaches the emulator through [`ir_tests::one_at_a_time`]: DynamoDB
//! executes every request atomically, moto 5.2.5 does not (it serves requests on threads without
//! a lock, so two conditional puts can both pass their condition). The relay restores
//! per-request atomicity and nothing else: the appends still interleave at every request
//! boundary (read the head, then put conditionally), which is where their race is.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ChecksumMode;
use ir_aws::Clients;
use ir_aws::store::{AuditLog, StoreError, TableNames, VerifyError, create_tables};
use ir_core::audit::{AuditEvent, AuditRecord, ChainError, GENESIS};
use ir_core::config::EvidenceConfig;
use ir_core::correlate::incident_id;
use ir_core::{ErrorName, Named};
use ir_tests::{TestResult, clients, cloud, fixtures, serialized_clients, unique_name};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

type Item = HashMap<String, AttributeValue>;

const T0: OffsetDateTime = datetime!(2026-11-20 10:05:00.25 UTC);

/// Everything one test uses.
struct Fixture {
    clients: Clients,
    names: TableNames,
    log: AuditLog,
    bucket: String,
    /// Plain clients for reading back and tampering (not counted in the store's call log).
    ddb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

fn evidence() -> EvidenceConfig {
    EvidenceConfig {
        object_lock_mode: "COMPLIANCE".into(),
        retention_days: 1,
        ..EvidenceConfig::default()
    }
}

/// A fixture whose store uses `clients` (on the shared emulator).
async fn setup_with(clients: Clients) -> Fixture {
    let cloud = cloud().await;
    let names = TableNames::with_prefix(&unique_name("ir"));
    create_tables(&clients, &names).await.unwrap();
    let s3 = cloud.s3_client();
    let bucket = fixtures::locked_bucket(&s3, "ir-evidence").await;
    Fixture {
        log: AuditLog::new(clients.clone(), names.clone()),
        clients,
        names,
        bucket,
        ddb: aws_sdk_dynamodb::Client::new(&cloud.sdk_config()),
        s3,
    }
}

async fn setup() -> Fixture {
    setup_with(clients(cloud().await)).await
}

/// Appends record `i` of a test chain: details with floats, nesting and unordered keys.
async fn append(f: &Fixture, id: &str, i: u64) -> AuditRecord {
    f.log
        .append(
            id,
            "ir-score",
            &AuditEvent::other(
                format!("step-{i}"),
                json!({"i": i, "score": 0.1 + 0.2 * i as f64, "z": {"b": [1.0, 1e-7], "a": null}}),
            ),
            T0 + Duration::seconds(i64::try_from(i).unwrap()),
        )
        .await
        .unwrap()
}

/// Five records, anchored after the third and after the fifth.
async fn anchored_chain_of_five(f: &Fixture) -> (String, Vec<AuditRecord>) {
    let id = incident_id(&unique_name("audit"));
    let mut records = Vec::new();
    for i in 0..5 {
        records.push(append(f, &id, i).await);
        if i == 2 {
            f.log
                .anchor(
                    &id,
                    "left-containment",
                    &f.bucket,
                    &evidence(),
                    T0 + Duration::seconds(2),
                )
                .await
                .unwrap();
        }
    }
    f.log
        .anchor(
            &id,
            "resolved",
            &f.bucket,
            &evidence(),
            T0 + Duration::seconds(5),
        )
        .await
        .unwrap();
    (id, records)
}

fn audit_key(id: &str, seq: u64) -> Item {
    HashMap::from([
        ("incidentId".to_owned(), AttributeValue::S(id.to_owned())),
        ("seq".to_owned(), AttributeValue::N(seq.to_string())),
    ])
}

async fn raw_record(f: &Fixture, id: &str, seq: u64) -> Item {
    f.ddb
        .get_item()
        .table_name(&f.names.audit)
        .set_key(Some(audit_key(id, seq)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

async fn put_raw(f: &Fixture, item: Item) {
    f.ddb
        .put_item()
        .table_name(&f.names.audit)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn delete_raw(f: &Fixture, id: &str, seq: u64) {
    f.ddb
        .delete_item()
        .table_name(&f.names.audit)
        .set_key(Some(audit_key(id, seq)))
        .send()
        .await
        .unwrap();
}

fn chain_error(r: Result<ir_core::audit::Verified, VerifyError>) -> ChainError {
    match r {
        Err(VerifyError::Chain { error, .. }) => error,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[tokio::test]
async fn appended_records_verify_against_their_locked_anchors() -> TestResult {
    let f = setup().await;
    let id = incident_id(&unique_name("audit"));

    let mark = f.clients.calls().count();
    let first = append(&f, &id, 0).await;
    // Read the head, put the record conditionally.
    assert_eq!(
        f.clients.calls().since(mark),
        ["DynamoDB:Query", "DynamoDB:PutItem"]
    );
    assert_eq!((first.seq, first.prev_hash.as_str()), (0, GENESIS));
    let mut appended = vec![first];
    for i in 1..3 {
        appended.push(append(&f, &id, i).await);
    }

    let mark = f.clients.calls().count();
    let a3 = f
        .log
        .anchor(&id, "left-containment", &f.bucket, &evidence(), T0)
        .await?;
    assert_eq!(
        f.clients.calls().since(mark),
        ["DynamoDB:Query", "S3:PutObject", "S3:HeadObject"]
    );
    assert_eq!((a3.seq, a3.hash.as_str()), (2, appended[2].hash.as_str()));

    // Anchoring the same head for the same reason again returns the existing anchor.
    let mark = f.clients.calls().count();
    let again = f
        .log
        .anchor(
            &id,
            "left-containment",
            &f.bucket,
            &evidence(),
            T0 + Duration::hours(1),
        )
        .await?;
    assert_eq!(again, a3);
    assert_eq!(
        f.clients.calls().since(mark),
        ["DynamoDB:Query", "S3:PutObject", "S3:GetObject"]
    );

    for i in 3..5 {
        appended.push(append(&f, &id, i).await);
    }
    let a5 = f
        .log
        .anchor(
            &id,
            "resolved",
            &f.bucket,
            &evidence(),
            T0 + Duration::seconds(5),
        )
        .await?;
    assert_eq!(a5.seq, 4);

    let chain = f.log.chain(&id).await?;
    assert_eq!(
        chain, appended,
        "the chain reads back exactly as appended (floats included)"
    );
    assert_eq!(
        chain.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let mark = f.clients.calls().count();
    let verified = f.log.verify(&id, &f.bucket).await?;
    // The chain (one page), the anchor versions, each anchor version read by its id.
    assert_eq!(
        f.clients.calls().since(mark),
        [
            "DynamoDB:Query",
            "S3:ListObjectVersions",
            "S3:GetObject",
            "S3:GetObject"
        ]
    );
    assert_eq!(verified.records, 5);
    assert_eq!(verified.head, appended[4].hash);
    assert_eq!(verified.anchors_checked, 2);
    assert_eq!(
        f.log.anchors(&id, &f.bucket).await?,
        [a3.clone(), a5.clone()]
    );

    // The anchor object: the JSON anchor, its SHA-256 recorded, locked in COMPLIANCE.
    let key = format!("incidents/{id}/audit/anchor-4-resolved.json");
    let head =
        f.s3.head_object()
            .bucket(&f.bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await?;
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now + 86_400 - 120..=now + 86_400 + 5).contains(&until),
        "{until}"
    );
    let body =
        f.s3.get_object()
            .bucket(&f.bucket)
            .key(&key)
            .send()
            .await?
            .body
            .collect()
            .await?
            .into_bytes();
    let stored: ir_core::audit::Anchor = serde_json::from_slice(&body)?;
    assert_eq!(stored, a5);
    let digest = aws_smithy_types::base64::encode(Sha256::digest(&body));
    assert_eq!(head.checksum_sha256(), Some(digest.as_str()));

    // Locked: deleting the version is refused.
    let versions =
        f.s3.list_object_versions()
            .bucket(&f.bucket)
            .prefix(&key)
            .send()
            .await?;
    let version_id = versions.versions()[0].version_id().unwrap().to_owned();
    let refused =
        f.s3.delete_object()
            .bucket(&f.bucket)
            .key(&key)
            .version_id(&version_id)
            .send()
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Some("AccessDenied"), "{refused:?}");

    // A delete without a version id only adds a delete marker: the anchor is still found, and
    // still guards the chain.
    f.s3.delete_object()
        .bucket(&f.bucket)
        .key(&key)
        .send()
        .await?;
    assert!(
        f.s3.get_object()
            .bucket(&f.bucket)
            .key(&key)
            .send()
            .await
            .is_err()
    );
    assert_eq!(f.log.anchors(&id, &f.bucket).await?, [a3, a5]);
    assert_eq!(f.log.verify(&id, &f.bucket).await?.anchors_checked, 2);
    Ok(())
}

#[tokio::test]
async fn an_edited_record_is_named() -> TestResult {
    let f = setup().await;
    let (id, _) = anchored_chain_of_five(&f).await;
    f.ddb
        .update_item()
        .table_name(&f.names.audit)
        .set_key(Some(audit_key(&id, 2)))
        .update_expression("SET detail = :d")
        .expression_attribute_values(":d", AttributeValue::S("{\"i\":2,\"score\":0.0}".into()))
        .send()
        .await?;
    let err = f.log.verify(&id, &f.bucket).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::VerificationFailed);
    assert_eq!(chain_error(Err(err)), ChainError::Tampered { seq: 2 });

    // Not even JSON any more: unreadable, named by seq.
    f.ddb
        .update_item()
        .table_name(&f.names.audit)
        .set_key(Some(audit_key(&id, 3)))
        .update_expression("SET detail = :d")
        .expression_attribute_values(":d", AttributeValue::S("{oops".into()))
        .send()
        .await?;
    match f.log.verify(&id, &f.bucket).await {
        Err(VerifyError::Unreadable { seq: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_deleted_record_is_a_gap() -> TestResult {
    let f = setup().await;
    let (id, _) = anchored_chain_of_five(&f).await;
    delete_raw(&f, &id, 1).await;
    assert_eq!(
        chain_error(f.log.verify(&id, &f.bucket).await),
        ChainError::Gap {
            position: 1,
            expected: 1,
            found: 2
        }
    );
    Ok(())
}

#[tokio::test]
async fn swapped_records_are_detected() -> TestResult {
    let f = setup().await;
    let (id, _) = anchored_chain_of_five(&f).await;
    // Swap the contents of seq 1 and 2 (the keys stay: a reordering of history).
    let one = raw_record(&f, &id, 1).await;
    let two = raw_record(&f, &id, 2).await;
    let moved = |mut item: Item, seq: u64| {
        item.insert("seq".into(), AttributeValue::N(seq.to_string()));
        item
    };
    put_raw(&f, moved(two, 1)).await;
    put_raw(&f, moved(one, 2)).await;
    let error = chain_error(f.log.verify(&id, &f.bucket).await);
    assert_eq!(error, ChainError::Tampered { seq: 1 });
    Ok(())
}

#[tokio::test]
async fn a_truncated_chain_is_caught_by_its_anchor() -> TestResult {
    let f = setup().await;
    let (id, records) = anchored_chain_of_five(&f).await;
    delete_raw(&f, &id, 4).await;
    delete_raw(&f, &id, 3).await;
    // The rest is a valid chain on its own...
    let rest = f.log.chain(&id).await?;
    assert_eq!(rest, records[..3]);
    assert!(ir_core::audit::verify(&id, &rest, &[]).is_ok());
    // ...but not against the anchor of seq 4.
    assert_eq!(
        chain_error(f.log.verify(&id, &f.bucket).await),
        ChainError::AnchorMismatch {
            seq: 4,
            anchored: records[4].hash.clone(),
            found: None
        }
    );
    // Re-appending a forged tail does not satisfy the anchor either.
    append(&f, &id, 3).await;
    f.log
        .append(
            &id,
            "someone",
            &AuditEvent::other("step-4", json!({"i": 4})),
            T0,
        )
        .await?;
    assert!(matches!(
        chain_error(f.log.verify(&id, &f.bucket).await),
        ChainError::AnchorMismatch {
            seq: 4,
            found: Some(_),
            ..
        }
    ));
    // And anchoring the forged head at seq 4 for the same reason is refused.
    let err = f
        .log
        .anchor(&id, "resolved", &f.bucket, &evidence(), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_appends_make_one_gapless_chain() -> TestResult {
    let f = setup_with(serialized_clients(cloud().await).await).await;
    let id = incident_id(&unique_name("audit"));
    let tasks: Vec<_> = (0..10u64)
        .map(|i| {
            let log = f.log.clone();
            let id = id.clone();
            tokio::spawn(async move {
                log.append(
                    &id,
                    &format!("writer-{i}"),
                    &AuditEvent::other("approved", json!({"writer": i})),
                    T0,
                )
                .await
            })
        })
        .collect();
    let mut appended = Vec::new();
    for t in tasks {
        appended.push(t.await??);
    }
    appended.sort_by_key(|r| r.seq);
    assert_eq!(
        appended.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>(),
        "every writer got its own seq"
    );
    let chain = f.log.chain(&id).await?;
    assert_eq!(chain, appended, "no record overwritten");
    let verified = f.log.verify(&id, &f.bucket).await?;
    assert_eq!(verified.records, 10);
    let writers: std::collections::BTreeSet<_> = chain.iter().map(|r| r.actor.clone()).collect();
    assert_eq!(writers.len(), 10);
    Ok(())
}

#[tokio::test]
async fn bad_input_and_missing_chains_are_refused() -> TestResult {
    let f = setup().await;
    let err = f
        .log
        .append(
            "not-an-incident",
            "ir-score",
            &AuditEvent::other("triage", json!({})),
            T0,
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    let id = incident_id(&unique_name("audit"));
    let err = f
        .log
        .anchor(&id, "resolved", &f.bucket, &evidence(), T0)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound, "{err}");
    append(&f, &id, 0).await;
    let err = f
        .log
        .anchor(&id, "../../x", &f.bucket, &evidence(), T0)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    let bad_mode = EvidenceConfig {
        object_lock_mode: "NONE".into(),
        ..evidence()
    };
    let err = f
        .log
        .anchor(&id, "resolved", &f.bucket, &bad_mode, T0)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Configuration);
    // An empty chain does not verify.
    let empty = incident_id(&unique_name("audit"));
    assert_eq!(
        chain_error(f.log.verify(&empty, &f.bucket).await),
        ChainError::Empty
    );
    Ok(())
}
