//! The incident store against the local cloud: real aws-sdk-rust calls over HTTP to moto.
//!
//! Every test creates its own four tables (`create_tables`, names from `unique_name`) and its
//! own findings and resources; state is read back with plain SDK calls (`GetItem`, `Scan`),
//! not only through the store.
//!
//! The race tests reach the emulator through [`ir_tests::one_at_a_time`]: DynamoDB executes every
//! request atomically, moto 5.2.5 does not. It serves requests on threads without a lock, and a
//! cancelled `TransactWriteItems` restores a deep copy of each whole table taken when it
//! started — erasing the writes other requests made and were acknowledged for meanwhile (in
//! one direct run, 14 of 20 acknowledged repeats survived; a lost opening write can even let a
//! second `New` through). The relay restores per-request atomicity and nothing else: the
//! concurrent ingests still interleave at every request boundary, which is where their races
//! (read, then conditional write) are.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use ir_aws::Clients;
use ir_aws::store::{IncidentPatch, IncidentStore, StoreError, TableNames, create_tables};
use ir_core::correlate::{Correlation, incident_id};
use ir_core::event::Source;
use ir_core::incident::Status;
use ir_core::severity::{FindingSeverity, SeverityScale};
use ir_core::{ErrorName, Named, SecurityEvent, Severity};
use ir_tests::{TestResult, clients, cloud, instance_resource, serialized_clients, unique_name};
use serde_json::value::RawValue;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const DETECTED: OffsetDateTime = datetime!(2026-11-20 10:05:00 UTC);
const FIRST_SEEN: OffsetDateTime = datetime!(2026-11-20 10:00:00 UTC);

/// Clients on the emulator and four fresh tables.
async fn setup() -> (Clients, TableNames, IncidentStore) {
    setup_with(clients(cloud().await)).await
}

/// The same, with every request through [`ir_tests::one_at_a_time`].
async fn setup_serialized() -> (Clients, TableNames, IncidentStore) {
    setup_with(serialized_clients(cloud().await).await).await
}

/// Four fresh tables, and the store on them with `clients`.
async fn setup_with(clients: Clients) -> (Clients, TableNames, IncidentStore) {
    let names = TableNames::with_prefix(&unique_name("ir"));
    create_tables(&clients, &names).await.unwrap();
    let store = IncidentStore::new(clients.clone(), names.clone());
    (clients, names, store)
}

fn guardduty_value(s: Severity) -> f64 {
    match s {
        Severity::Low => 2.0,
        Severity::Medium => 5.0,
        Severity::High => 8.0,
        Severity::Critical => 9.5,
    }
}

/// A GuardDuty finding `finding` on instance `instance`.
fn finding(finding: &str, instance: &str, severity: Severity, count: u64) -> SecurityEvent {
    SecurityEvent {
        finding_id: finding.to_owned(),
        finding_key: format!("guardduty:{ACCOUNT}:{REGION}:{finding}"),
        source: Source::Guardduty,
        product: "GuardDuty".into(),
        finding_type: "UnauthorizedAccess:EC2/SSHBruteForce".into(),
        severity: FindingSeverity {
            label: severity,
            value: Some(guardduty_value(severity)),
            scale: SeverityScale::GuardDuty,
        },
        title: "SSH brute force".into(),
        account: ACCOUNT.into(),
        region: REGION.into(),
        resource: instance_resource(instance),
        resource_tags: BTreeMap::new(),
        first_seen: Some(FIRST_SEEN),
        last_seen: Some(FIRST_SEEN + Duration::minutes(2)),
        updated_at: None,
        count,
        indicators: Vec::new(),
        sample: false,
        related_resources: Vec::new(),
        signal_keys: Vec::new(),
        notes: Vec::new(),
        raw: RawValue::from_string("{}".into()).unwrap(),
    }
}

/// Every item of a table (plain SDK).
async fn scan(
    clients: &Clients,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let out = clients
        .dynamodb()
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(out.last_evaluated_key.is_none(), "scan of {table} paged");
    out.items.unwrap_or_default()
}

async fn key_item(
    clients: &Clients,
    names: &TableNames,
    key: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    clients
        .dynamodb()
        .get_item()
        .table_name(&names.keys)
        .key("key", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn num(item: &std::collections::HashMap<String, AttributeValue>, attr: &str) -> u64 {
    item.get(attr).unwrap().as_n().unwrap().parse().unwrap()
}

fn str_attr<'a>(
    item: &'a std::collections::HashMap<String, AttributeValue>,
    attr: &str,
) -> &'a str {
    item.get(attr).unwrap().as_s().unwrap()
}

/// The operations since `mark` (`Service:Operation`).
fn ops(clients: &Clients, mark: usize) -> Vec<String> {
    clients.calls().since(mark)
}

#[tokio::test]
async fn first_finding_opens_an_incident_in_triage() -> TestResult {
    let (clients, names, store) = setup().await;
    let f = finding(&unique_name("f"), &unique_name("i"), Severity::High, 1);
    let id = incident_id(&f.finding_key);

    let mark = clients.calls().count();
    let ingested = store.ingest(&f, DETECTED).await?;
    assert_eq!(
        ops(&clients, mark),
        ["DynamoDB:TransactWriteItems", "DynamoDB:Query"]
    );

    assert_eq!(
        ingested.correlation,
        Correlation::New {
            incident_id: id.clone()
        }
    );
    assert_eq!(ingested.history_count, 0);
    assert_eq!(ingested.incident.status, Status::Triage);
    assert_eq!(ingested.incident.timeline.detected_at, DETECTED);
    assert_eq!(ingested.incident.timeline.first_seen, Some(FIRST_SEEN));
    assert_eq!(
        ingested.incident.finding_ids,
        std::slice::from_ref(&f.finding_id)
    );

    // Read back: the incident through the store and the raw items.
    let stored = store.get(&id).await?.unwrap();
    assert_eq!(stored.summary, ingested.incident);
    assert_eq!(stored.summary.severity, Severity::High);
    assert_eq!(stored.resource, f.resource);
    assert_eq!(
        (stored.finding_count, stored.occurrences, stored.version),
        (1, 1, 1)
    );
    let raw = scan(&clients, &names.incidents).await;
    assert_eq!(raw.len(), 1);
    assert_eq!(str_attr(&raw[0], "status"), "triage");
    assert_eq!(
        str_attr(&raw[0], "detectedAt"),
        "2026-11-20T10:05:00.000000000Z"
    );
    assert_eq!(str_attr(&raw[0], "resourceKey"), f.resource_key());

    let fk = key_item(&clients, &names, &format!("finding#{}", f.finding_key))
        .await
        .unwrap();
    assert_eq!(str_attr(&fk, "incidentId"), id);
    assert_eq!((num(&fk, "count"), num(&fk, "deliveries")), (1, 1));
    let open = key_item(&clients, &names, &format!("open#{}", f.resource_key()))
        .await
        .unwrap();
    assert_eq!(str_attr(&open, "incidentId"), id);
    Ok(())
}

#[tokio::test]
async fn the_same_finding_again_is_a_repeat_that_updates_counts() -> TestResult {
    let (clients, names, store) = setup().await;
    let name = unique_name("f");
    let instance = unique_name("i");
    let first = finding(&name, &instance, Severity::Medium, 1);
    let id = incident_id(&first.finding_key);
    store.ingest(&first, DETECTED).await?;

    // GuardDuty re-publishes the same finding id with a larger count and a later last-seen.
    let mut again = finding(&name, &instance, Severity::Medium, 7);
    again.last_seen = Some(FIRST_SEEN + Duration::minutes(30));
    let mark = clients.calls().count();
    let ingested = store
        .ingest(&again, DETECTED + Duration::minutes(15))
        .await?;
    // The open attempt is cancelled; its cancellation carries both the finding key and the
    // incident, so the repeat needs no read.
    assert_eq!(
        ops(&clients, mark),
        [
            "DynamoDB:TransactWriteItems",
            "DynamoDB:TransactWriteItems",
            "DynamoDB:Query"
        ]
    );
    assert_eq!(
        ingested.correlation,
        Correlation::Repeat {
            incident_id: id.clone()
        }
    );
    assert_eq!(ingested.incident.finding_ids, std::slice::from_ref(&name));

    let stored = store.get(&id).await?.unwrap();
    assert_eq!(
        (stored.finding_count, stored.occurrences, stored.version),
        (1, 2, 2)
    );
    assert_eq!(stored.last_seen, FIRST_SEEN + Duration::minutes(30));
    assert_eq!(
        stored.summary.timeline.detected_at, DETECTED,
        "detectedAt is the first delivery's"
    );
    let fk = key_item(&clients, &names, &format!("finding#{}", first.finding_key))
        .await
        .unwrap();
    assert_eq!((num(&fk, "count"), num(&fk, "deliveries")), (7, 2));
    assert_eq!(str_attr(&fk, "lastSeen"), "2026-11-20T10:30:00.000000000Z");

    // An older re-delivery never lowers the count.
    let stale = finding(&name, &instance, Severity::Medium, 3);
    store
        .ingest(&stale, DETECTED + Duration::minutes(16))
        .await?;
    let fk = key_item(&clients, &names, &format!("finding#{}", first.finding_key))
        .await
        .unwrap();
    assert_eq!((num(&fk, "count"), num(&fk, "deliveries")), (7, 3));

    assert_eq!(
        scan(&clients, &names.incidents).await.len(),
        1,
        "no second incident"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_deliveries_of_one_finding_open_exactly_one_incident() -> TestResult {
    let (clients, names, store) = setup_serialized().await;
    let f = finding(&unique_name("f"), &unique_name("i"), Severity::High, 1);
    let id = incident_id(&f.finding_key);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let f = f.clone();
            tokio::spawn(async move { store.ingest(&f, DETECTED).await })
        })
        .collect();
    let mut new = 0;
    let mut repeat = 0;
    for t in tasks {
        match t.await??.correlation {
            Correlation::New { incident_id } => {
                assert_eq!(incident_id, id);
                new += 1;
            }
            Correlation::Repeat { incident_id } => {
                assert_eq!(incident_id, id);
                repeat += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((new, repeat), (1, 19));

    let incidents = scan(&clients, &names.incidents).await;
    assert_eq!(incidents.len(), 1, "exactly one incident");
    assert_eq!(num(&incidents[0], "occurrences"), 20);
    assert_eq!(num(&incidents[0], "findingCount"), 1);
    assert_eq!(num(&incidents[0], "version"), 20, "one write per delivery");
    let keys = scan(&clients, &names.keys).await;
    let finding_keys: Vec<_> = keys
        .iter()
        .filter(|k| str_attr(k, "key").starts_with("finding#"))
        .collect();
    assert_eq!(finding_keys.len(), 1, "exactly one finding key");
    assert_eq!(num(finding_keys[0], "deliveries"), 20);
    assert_eq!(keys.len(), 2, "the finding key and the open key");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_different_findings_on_one_resource_open_one_incident() -> TestResult {
    let (clients, names, store) = setup_serialized().await;
    let instance = unique_name("i");
    let findings: Vec<SecurityEvent> = (0..10)
        .map(|_| finding(&unique_name("f"), &instance, Severity::Medium, 1))
        .collect();

    let tasks: Vec<_> = findings
        .iter()
        .cloned()
        .map(|f| {
            let store = store.clone();
            tokio::spawn(async move { store.ingest(&f, DETECTED).await })
        })
        .collect();
    let mut opened = Vec::new();
    let mut attached = Vec::new();
    for t in tasks {
        match t.await??.correlation {
            Correlation::New { incident_id } => opened.push(incident_id),
            Correlation::Attach { incident_id } => attached.push(incident_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(attached.len(), 9);
    assert!(attached.iter().all(|a| *a == opened[0]));

    let incidents = scan(&clients, &names.incidents).await;
    assert_eq!(incidents.len(), 1, "one incident for the resource");
    let stored = store.get(&opened[0]).await?.unwrap();
    assert_eq!(stored.finding_count, 10);
    let ids: BTreeSet<&String> = stored.summary.finding_ids.iter().collect();
    let want: BTreeSet<&String> = findings.iter().map(|f| &f.finding_id).collect();
    assert_eq!(ids, want, "every finding listed once");
    assert_eq!(stored.summary.finding_ids.len(), 10);
    let keys = scan(&clients, &names.keys).await;
    assert_eq!(keys.len(), 11, "ten finding keys and one open key");
    assert!(
        keys.iter()
            .all(|k| str_attr(k, "incidentId") == opened[0].as_str())
    );
    Ok(())
}

#[tokio::test]
async fn attaching_raises_the_severity_and_never_lowers_it() -> TestResult {
    let (clients, _names, store) = setup().await;
    let instance = unique_name("i");
    let first = finding(&unique_name("f"), &instance, Severity::Medium, 1);
    let id = incident_id(&first.finding_key);
    let opened = store.ingest(&first, DETECTED).await?;
    assert_eq!((opened.revision, opened.escalated), (0, false));

    let higher = finding(&unique_name("f"), &instance, Severity::Critical, 1);
    let mark = clients.calls().count();
    let ingested = store
        .ingest(&higher, DETECTED + Duration::minutes(1))
        .await?;
    assert_eq!(
        ops(&clients, mark),
        [
            "DynamoDB:TransactWriteItems",
            "DynamoDB:GetItem",
            "DynamoDB:TransactWriteItems",
            "DynamoDB:Query"
        ]
    );
    assert_eq!(
        ingested.correlation,
        Correlation::Attach {
            incident_id: id.clone()
        }
    );
    assert_eq!(ingested.incident.severity, Severity::Critical);
    // Raising an open incident's severity is a new revision, to be triaged again.
    assert_eq!((ingested.revision, ingested.escalated), (1, true));
    let stored = store.get(&id).await?.unwrap();
    assert_eq!(stored.summary.severity, Severity::Critical);
    assert_eq!(stored.revision, 1);

    let lower = finding(&unique_name("f"), &instance, Severity::Low, 1);
    let ingested = store
        .ingest(&lower, DETECTED + Duration::minutes(2))
        .await?;
    assert_eq!(
        ingested.correlation,
        Correlation::Attach {
            incident_id: id.clone()
        }
    );
    assert_eq!((ingested.revision, ingested.escalated), (1, false));
    // The same critical finding again: a repeat at the incident's severity revises nothing.
    let again = store
        .ingest(&higher, DETECTED + Duration::minutes(3))
        .await?;
    assert!(matches!(again.correlation, Correlation::Repeat { .. }));
    assert_eq!((again.revision, again.escalated), (1, false));
    let stored = store.get(&id).await?.unwrap();
    assert_eq!(stored.revision, 1);
    assert_eq!(
        stored.summary.severity,
        Severity::Critical,
        "a lower finding does not lower it"
    );
    assert_eq!(stored.finding_count, 3);
    assert_eq!(
        stored.summary.finding_ids,
        [first.finding_id, higher.finding_id, lower.finding_id]
    );
    Ok(())
}

#[tokio::test]
async fn transitions_set_the_timeline_and_refuse_illegal_or_stale_moves() -> TestResult {
    let (clients, _names, store) = setup().await;
    let f = finding(&unique_name("f"), &unique_name("i"), Severity::High, 1);
    let id = incident_id(&f.finding_key);
    store.ingest(&f, DETECTED).await?;

    let started = DETECTED + Duration::seconds(40);
    let mark = clients.calls().count();
    let moved = store
        .transition(
            &id,
            Status::Triage,
            Status::Containment,
            started,
            IncidentPatch {
                playbook: Some("contain-instance".into()),
                ..IncidentPatch::default()
            },
        )
        .await?;
    assert_eq!(
        ops(&clients, mark),
        ["DynamoDB:GetItem", "DynamoDB:UpdateItem"]
    );
    assert_eq!(moved.summary.status, Status::Containment);
    assert_eq!(moved.summary.playbook.as_deref(), Some("contain-instance"));
    assert_eq!(moved.version, 2);

    // Illegal: refused before any call.
    let mark = clients.calls().count();
    let err = store
        .transition(
            &id,
            Status::Containment,
            Status::Postmortem,
            started,
            IncidentPatch::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    assert!(ops(&clients, mark).is_empty());

    let contained = DETECTED + Duration::minutes(4);
    let done = store
        .transition(
            &id,
            Status::Containment,
            Status::Contained,
            contained,
            IncidentPatch::default(),
        )
        .await?;
    assert_eq!(done.summary.timeline.contained_at, Some(contained));
    let read = store.get(&id).await?.unwrap();
    assert_eq!(read.summary.status, Status::Contained);
    assert_eq!(
        read.summary.timeline.mttc(),
        Some(Duration::minutes(4)),
        "MTTC derivable"
    );
    assert_eq!(read.summary.timeline.mttd(), Some(Duration::minutes(5)));

    // Stale `from`: the incident is no longer in containment.
    let err = store
        .transition(
            &id,
            Status::Containment,
            Status::Triage,
            contained,
            IncidentPatch::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(err.error_name(), ErrorName::Conflict);
    let after = store.get(&id).await?.unwrap();
    assert_eq!(
        (after.summary.status, after.version),
        (Status::Contained, 3),
        "unchanged"
    );

    // Unknown incident.
    let err = store
        .transition(
            &incident_id("nope"),
            Status::Triage,
            Status::Containment,
            contained,
            IncidentPatch::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound);
    Ok(())
}

#[tokio::test]
async fn after_resolution_a_new_finding_opens_a_new_incident_with_history() -> TestResult {
    let (clients, names, store) = setup().await;
    let instance = unique_name("i");
    let first = finding(&unique_name("f"), &instance, Severity::High, 1);
    let first_id = incident_id(&first.finding_key);
    store.ingest(&first, DETECTED).await?;

    let resolved_at = DETECTED + Duration::hours(2);
    let mark = clients.calls().count();
    let resolved = store
        .transition(
            &first_id,
            Status::Triage,
            Status::Resolved,
            resolved_at,
            IncidentPatch::default(),
        )
        .await?;
    // The status and the open key change in one transaction.
    assert_eq!(
        ops(&clients, mark),
        ["DynamoDB:GetItem", "DynamoDB:TransactWriteItems"]
    );
    assert_eq!(resolved.summary.timeline.resolved_at, Some(resolved_at));
    assert!(
        key_item(&clients, &names, &format!("open#{}", first.resource_key()))
            .await
            .is_none(),
        "the resource has no open incident"
    );
    assert!(
        key_item(&clients, &names, &format!("finding#{}", first.finding_key))
            .await
            .is_some(),
        "finding keys are kept"
    );

    let second = finding(&unique_name("f"), &instance, Severity::Medium, 1);
    let ingested = store.ingest(&second, DETECTED + Duration::days(1)).await?;
    let second_id = incident_id(&second.finding_key);
    assert_ne!(second_id, first_id);
    assert_eq!(
        ingested.correlation,
        Correlation::New {
            incident_id: second_id.clone()
        }
    );
    assert_eq!(ingested.history_count, 1);

    // The first finding again, now more severe: a repeat on a resolved incident, which is not
    // revised (nothing is triaged again on a closed incident).
    let mut worse = first.clone();
    worse.severity.label = Severity::Critical;
    let repeat = store.ingest(&worse, DETECTED + Duration::days(2)).await?;
    assert_eq!(
        repeat.correlation,
        Correlation::Repeat {
            incident_id: first_id.clone()
        }
    );
    assert_eq!((repeat.revision, repeat.escalated), (0, false));
    assert_eq!(store.get(&first_id).await?.unwrap().revision, 0);

    let history = store.history(&first.resource_key()).await?;
    assert_eq!(
        history
            .iter()
            .map(|h| h.incident_id.as_str())
            .collect::<Vec<_>>(),
        [first_id.as_str(), second_id.as_str()],
        "oldest first"
    );
    let resolved_list = store.by_status(Status::Resolved).await?;
    assert_eq!(resolved_list.len(), 1);
    assert_eq!(resolved_list[0].incident_id, first_id);
    let triage = store.by_status(Status::Triage).await?;
    assert_eq!(triage.len(), 1);
    assert_eq!(triage[0].incident_id, second_id);

    // The old finding again is a repeat of the resolved incident: it opens nothing.
    let again = store.ingest(&first, DETECTED + Duration::days(2)).await?;
    assert_eq!(
        again.correlation,
        Correlation::Repeat {
            incident_id: first_id.clone()
        }
    );
    assert_eq!(again.incident.status, Status::Resolved);
    assert_eq!(scan(&clients, &names.incidents).await.len(), 2);

    // Postmortem after resolution keeps resolvedAt.
    let pm = store
        .transition(
            &first_id,
            Status::Resolved,
            Status::Postmortem,
            resolved_at + Duration::days(3),
            IncidentPatch::default(),
        )
        .await?;
    assert_eq!(pm.summary.timeline.resolved_at, Some(resolved_at));
    Ok(())
}

#[tokio::test]
async fn decisions_records_and_errors_are_kept_and_idempotent() -> TestResult {
    let (clients, _names, store) = setup().await;
    let f = finding(&unique_name("f"), &unique_name("i"), Severity::Medium, 1);
    let id = incident_id(&f.finding_key);
    store.ingest(&f, DETECTED).await?;

    let engine = ir_core::Engine::embedded()?;
    let events = vec![f.clone()];
    let enrichment = engine.enrich(&events, 0);
    let decision = engine.decide(&id, &events, &enrichment, DETECTED)?;
    let triaged = DETECTED + Duration::seconds(3);
    let mark = clients.calls().count();
    let stored = store.record_decision(&id, &decision, triaged).await?;
    assert_eq!(
        ops(&clients, mark),
        ["DynamoDB:GetItem", "DynamoDB:UpdateItem"]
    );
    assert_eq!(stored.summary.timeline.triaged_at, Some(triaged));
    assert_eq!(
        stored.summary.playbook.as_deref(),
        Some(decision.playbook.id.as_str())
    );
    assert!(stored.summary.severity >= decision.severity);
    let read = store.get(&id).await?.unwrap();
    assert_eq!(
        read.decision.as_ref(),
        Some(&decision),
        "the decision round-trips"
    );

    // The same decision again writes nothing (one read, no update).
    let mark = clients.calls().count();
    let same = store
        .record_decision(&id, &decision, triaged + Duration::minutes(1))
        .await?;
    assert_eq!(ops(&clients, mark), ["DynamoDB:GetItem"]);
    assert_eq!(same.version, read.version);
    assert_eq!(same.summary.timeline.triaged_at, Some(triaged));

    let record = ir_core::action::ContainmentRecord::AccessKeys(ir_core::action::AccessKeyRecord {
        user_name: "mallory".into(),
        deactivated: vec!["AKIAEXAMPLE".into()],
    });
    store
        .add_records(&id, std::slice::from_ref(&record))
        .await?;
    let again = store
        .add_records(&id, std::slice::from_ref(&record))
        .await?;
    assert_eq!(again.records, [record]);

    let failed = store
        .record_error(&id, "isolate", "Retryable: throttled")
        .await?;
    assert_eq!(
        failed.last_error.as_ref().map(|e| e.step.as_str()),
        Some("isolate")
    );
    let cleared = store
        .transition(
            &id,
            Status::Triage,
            Status::Containment,
            triaged,
            IncidentPatch {
                clear_error: true,
                ..IncidentPatch::default()
            },
        )
        .await?;
    assert!(cleared.last_error.is_none());

    let wrong = engine.decide(&incident_id("other"), &events, &enrichment, DETECTED)?;
    let err = store
        .record_decision(&id, &wrong, triaged)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    Ok(())
}
