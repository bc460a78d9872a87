//! GuardDuty attack sequences (Extended Threat Detection) delivered to the real `ir-ingest` on
//! the local cloud: one incident holding every resource the sequence names, its signal findings
//! attached when they arrive on their own, a finding on any of its resources attached; a
//! sequence arriving after one of its signals joins that signal's incident. And, on the store:
//! racing deliveries of one sequence make one incident, and resolving it frees every resource.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ir_aws::Clients;
use ir_aws::store::{IncidentPatch, IncidentStore, TableNames, create_tables};
use ir_core::correlate::{Correlation, incident_id};
use ir_core::incident::Status;
use ir_core::{IngestOutput, SecurityEvent};
use ir_tests::TestResult;
use ir_tests::offline::{Offline, Settings};
use ir_tests::{cloud, serialized_clients, unique_name};
use time::macros::datetime;

const SEQUENCE: &str = "guardduty-attack-sequence-iam-compromised-credentials.json";
/// Two of the sequence's `FINDING` signals, as GuardDuty delivers them on their own.
const TOR_SIGNAL: &str = "guardduty-tor-ip-caller-sequence-signal.json";
const RECON_SIGNAL: &str = "guardduty-recon-malicious-ip-caller.json";
/// A finding on the sequence's bucket, and one on its instance; neither is a signal of it.
const ON_THE_BUCKET: &str = "guardduty-s3-exfiltration.json";
const ON_THE_INSTANCE: &str = "guardduty-cryptocurrency-bitcointool-dns.json";

const INSTANCE: &str = "111122223333/ec2-instance/i-0a1b2c3d4e5f60001";
const USER: &str = "111122223333/iam-user/ci-deployer";
const BUCKET: &str = "111122223333/s3-bucket/acme-customer-exports";

fn sample(file: &str) -> Vec<u8> {
    std::fs::read(ir_tests::repo_root().join("events").join(file)).unwrap()
}

fn event(file: &str) -> SecurityEvent {
    ir_core::normalize(&sample(file)).unwrap().events.remove(0)
}

/// Delivers a sample to the real `ir-ingest`; its one incident's (id, correlation, events).
async fn deliver(off: &Offline, file: &str) -> (String, Correlation, Vec<SecurityEvent>) {
    let answer = off.invoke("ir-ingest", &sample(file)).await.unwrap();
    assert_eq!(answer.error, None, "{file}: {}", answer.body);
    let mut out: IngestOutput = serde_json::from_str(&answer.body.to_string()).unwrap();
    assert_eq!(out.incidents.len(), 1, "{file}: {}", answer.body);
    let one = out.incidents.remove(0);
    assert_eq!(one.correlations.len(), 1, "{file}");
    (one.incident_id, one.correlations[0].clone(), one.events)
}

/// A keys-table item, strongly consistent.
async fn key_item(
    clients: &Clients,
    names: &TableNames,
    key: &str,
) -> Option<HashMap<String, AttributeValue>> {
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

/// The incident a key maps to, and its `deliveries` when it is a finding key.
async fn mapped(clients: &Clients, names: &TableNames, key: &str) -> (Option<String>, Option<u64>) {
    let Some(item) = key_item(clients, names, key).await else {
        return (None, None);
    };
    let s = |a: &str| match item.get(a) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        Some(AttributeValue::N(v)) => Some(v.clone()),
        _ => None,
    };
    (s("incidentId"), s("deliveries").map(|d| d.parse().unwrap()))
}

async fn incident_count(clients: &Clients, names: &TableNames) -> i32 {
    clients
        .dynamodb()
        .scan()
        .table_name(&names.incidents)
        .send()
        .await
        .unwrap()
        .count()
}

fn related_keys(i: &ir_aws::store::Incident) -> Vec<String> {
    i.related_resources.iter().map(|r| r.key()).collect()
}

#[tokio::test]
async fn a_sequence_is_one_incident_its_signals_and_resources_attach() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let (c, n) = (&off.clients, &off.names);
    let seq = event(SEQUENCE);
    let (tor, recon) = (event(TOR_SIGNAL), event(RECON_SIGNAL));

    // The sequence: one new incident, on the instance, holding the user and the bucket.
    let (id, correlation, events) = deliver(&off, SEQUENCE).await;
    assert_eq!(id, incident_id(&seq.finding_key));
    assert!(
        matches!(correlation, Correlation::New { .. }),
        "{correlation:?}"
    );
    assert_eq!(events[0].resource_key(), INSTANCE);
    let incident = off.incident(&id).await?.unwrap();
    assert_eq!(incident.summary.resource_key, INSTANCE);
    assert_eq!(related_keys(&incident), [USER, BUCKET]);
    for r in [INSTANCE, USER, BUCKET] {
        assert_eq!(
            mapped(c, n, &format!("open#{r}")).await.0.as_deref(),
            Some(id.as_str()),
            "{r}"
        );
    }
    // Its signal findings are mapped to it, not delivered yet.
    for s in [&tor, &recon] {
        assert_eq!(
            mapped(c, n, &format!("finding#{}", s.finding_key)).await,
            (Some(id.clone()), Some(0)),
            "{}",
            s.finding_id
        );
    }

    // A signal on its own: attached to the sequence's incident (its first delivery), counted.
    let (to, correlation, _) = deliver(&off, TOR_SIGNAL).await;
    assert_eq!(
        (to.as_str(), &correlation),
        (
            id.as_str(),
            &Correlation::Attach {
                incident_id: id.clone()
            }
        )
    );
    assert_eq!(
        mapped(c, n, &format!("finding#{}", tor.finding_key))
            .await
            .1,
        Some(1)
    );
    // A finding on the bucket, which the sequence named: attached.
    let (to, correlation, events) = deliver(&off, ON_THE_BUCKET).await;
    assert_eq!(
        (to.as_str(), &correlation),
        (
            id.as_str(),
            &Correlation::Attach {
                incident_id: id.clone()
            }
        )
    );
    // Triaged (were it to escalate) on the incident's instance, the bucket a related resource.
    assert_eq!(events[0].resource_key(), INSTANCE);
    assert!(
        events[0]
            .related_resources
            .iter()
            .any(|r| r.key() == BUCKET)
    );
    // The other signal, twice: attached, then a repeat.
    let (_, first, _) = deliver(&off, RECON_SIGNAL).await;
    let (_, again, _) = deliver(&off, RECON_SIGNAL).await;
    assert_eq!(
        first,
        Correlation::Attach {
            incident_id: id.clone()
        }
    );
    assert_eq!(
        again,
        Correlation::Repeat {
            incident_id: id.clone()
        }
    );
    // GuardDuty publishing the sequence again: a repeat.
    let (_, again, _) = deliver(&off, SEQUENCE).await;
    assert_eq!(
        again,
        Correlation::Repeat {
            incident_id: id.clone()
        }
    );

    assert_eq!(
        incident_count(c, n).await,
        1,
        "one incident for seven deliveries"
    );
    let incident = off.incident(&id).await?.unwrap();
    assert_eq!(
        incident.finding_count, 4,
        "the sequence, two signals, the bucket's finding"
    );
    assert_eq!(incident.occurrences, 6);
    for f in [&seq.finding_id, &tor.finding_id, &recon.finding_id] {
        assert!(incident.summary.finding_ids.contains(f), "{f}");
    }
    assert_eq!(related_keys(&incident), [USER, BUCKET]);

    // The triage decision plans each resource by its kind; the playbook runs on the instance.
    let triaged = off
        .wait_for_status(
            &id,
            &[Status::Containment, Status::Queued],
            Duration::from_secs(120),
        )
        .await?;
    let d = triaged.decision.expect("a decision");
    assert_eq!(d.playbook.id, "immediate-isolation");
    assert!(d.playbook.steps.iter().any(|s| s.id == "isolate-instance"));
    let plans: Vec<(&str, Vec<&str>)> = d
        .resource_plans
        .iter()
        .map(|p| {
            (
                p.resource_key.as_str(),
                p.steps.iter().map(|s| s.id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        [
            (
                USER,
                vec![
                    "collect-evidence",
                    "revoke-credentials",
                    "disable-access-keys",
                    "deny-principal",
                    "notify-channel"
                ]
            ),
            (BUCKET, vec!["collect-evidence", "notify-channel"]),
        ]
    );

    // What a responder is shown: every resource, the steps that run and those only planned.
    let show = off.ir_as_responder(&["incidents", "show", &id]).await?;
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        text.contains("Resources (3): the playbook runs on the first"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "runs ec2-instance i-0a1b2c3d4e5f60001 [{INSTANCE}]: collect-evidence"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "planned iam-user ci-deployer [{USER}]: collect-evidence, revoke-credentials (approval), disable-access-keys (approval)"
        )),
        "{text}"
    );
    let full = off
        .ir_as_responder(&["incidents", "show", &id, "--json"])
        .await?;
    let full: serde_json::Value = serde_json::from_slice(&full.stdout)?;
    let shown: Vec<(&str, &str)> = full["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resourceKey"].as_str().unwrap(),
                r["plan"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [(INSTANCE, "runs"), (USER, "planned"), (BUCKET, "planned")]
    );
    // And in the report's scope (the incident update's), as Slack and Jira get it.
    let scope: Vec<&str> = full["report"]["update"]["scope"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        scope.contains(&"Also in scope: s3-bucket acme-customer-exports (account 111122223333): planned, not run: collect-evidence, notify-channel"),
        "{scope:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_sequence_after_its_signal_joins_the_signals_incident() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let (c, n) = (&off.clients, &off.names);
    let recon = event(RECON_SIGNAL);

    // The signal first: an incident on the user.
    let (id, correlation, _) = deliver(&off, TOR_SIGNAL).await;
    assert!(matches!(correlation, Correlation::New { .. }));
    let opened = off.incident(&id).await?.unwrap();
    assert_eq!(opened.summary.resource_key, USER);
    assert_eq!(opened.summary.severity, ir_core::Severity::Medium);

    // The sequence: attached to it (through the user), which it escalates to critical; the
    // incident keeps its resource and records the sequence's others.
    let (to, correlation, events) = deliver(&off, SEQUENCE).await;
    assert_eq!(
        (to.as_str(), &correlation),
        (
            id.as_str(),
            &Correlation::Attach {
                incident_id: id.clone()
            }
        )
    );
    let incident = off.incident(&id).await?.unwrap();
    assert_eq!(incident.summary.resource_key, USER);
    assert_eq!(incident.summary.severity, ir_core::Severity::Critical);
    assert_eq!(incident.revision, 1, "escalated: triaged again");
    assert_eq!(related_keys(&incident), [INSTANCE, BUCKET]);
    for r in [USER, INSTANCE, BUCKET] {
        assert_eq!(
            mapped(c, n, &format!("open#{r}")).await.0.as_deref(),
            Some(id.as_str()),
            "{r}"
        );
    }
    assert_eq!(
        mapped(c, n, &format!("finding#{}", recon.finding_key)).await,
        (Some(id.clone()), Some(0))
    );
    // The revision is triaged on the incident's own resource, the user; the instance and the
    // bucket are planned with it.
    assert_eq!(events[0].resource_key(), USER);
    let keys: Vec<String> = events[0]
        .related_resources
        .iter()
        .map(|r| r.key())
        .collect();
    assert_eq!(keys, [INSTANCE, BUCKET]);

    // A finding on the instance the sequence named: attached, no new incident.
    let (to, correlation, _) = deliver(&off, ON_THE_INSTANCE).await;
    assert_eq!(
        (to.as_str(), &correlation),
        (
            id.as_str(),
            &Correlation::Attach {
                incident_id: id.clone()
            }
        )
    );
    assert_eq!(incident_count(c, n).await, 1);

    // The revision's decision: the user's steps run, the instance's are planned.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let d = loop {
        let i = off.incident(&id).await?.unwrap();
        if let Some(d) = i.decision.filter(|d| d.revision == 1) {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no decision for revision 1: {:?}",
            i.summary
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(d.playbook.steps.iter().any(|s| s.id == "deny-principal"));
    assert!(!d.playbook.steps.iter().any(|s| s.id == "isolate-instance"));
    let instance = d
        .resource_plans
        .iter()
        .find(|p| p.resource_key == INSTANCE)
        .unwrap();
    assert!(instance.steps.iter().any(|s| s.id == "isolate-instance"));
    Ok(())
}

/// Four fresh tables on the shared emulator, one request at a time (see `incident_store`).
async fn store() -> (Clients, TableNames, IncidentStore) {
    let clients = serialized_clients(cloud().await).await;
    let names = TableNames::with_prefix(&unique_name("ir"));
    create_tables(&clients, &names).await.unwrap();
    (
        clients.clone(),
        names.clone(),
        IncidentStore::new(clients, names),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deliveries_of_a_sequence_make_one_incident() -> TestResult {
    let (clients, names, store) = store().await;
    let seq = event(SEQUENCE);
    let id = incident_id(&seq.finding_key);
    let at = datetime!(2026-11-20 08:05:16 UTC);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, seq) = (store.clone(), seq.clone());
            tokio::spawn(async move { store.ingest(&seq, at).await })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        let c = t.await??.correlation;
        assert_eq!(c.incident_id(), id);
        if matches!(c, Correlation::New { .. }) {
            new += 1;
        } else {
            assert!(matches!(c, Correlation::Repeat { .. }), "{c:?}");
        }
    }
    assert_eq!(new, 1);
    assert_eq!(incident_count(&clients, &names).await, 1);
    let incident = store.get(&id).await?.unwrap();
    assert_eq!(incident.occurrences, 8);
    assert_eq!(related_keys(&incident), [USER, BUCKET]);
    for r in [INSTANCE, USER, BUCKET] {
        assert_eq!(
            mapped(&clients, &names, &format!("open#{r}"))
                .await
                .0
                .as_deref(),
            Some(id.as_str())
        );
    }
    for k in &seq.signal_keys {
        assert_eq!(
            mapped(&clients, &names, &format!("finding#{k}")).await,
            (Some(id.clone()), Some(0))
        );
    }
    Ok(())
}

#[tokio::test]
async fn resolving_a_sequence_frees_every_resource_it_named() -> TestResult {
    let (clients, names, store) = store().await;
    let seq = event(SEQUENCE);
    let at = datetime!(2026-11-20 08:05:16 UTC);
    let id = store
        .ingest(&seq, at)
        .await?
        .correlation
        .incident_id()
        .to_owned();
    for r in [INSTANCE, USER, BUCKET] {
        assert_eq!(
            mapped(&clients, &names, &format!("open#{r}"))
                .await
                .0
                .as_deref(),
            Some(id.as_str()),
            "{r}"
        );
    }
    store
        .transition(
            &id,
            Status::Triage,
            Status::Resolved,
            at,
            IncidentPatch::default(),
        )
        .await?;
    for r in [INSTANCE, USER, BUCKET] {
        assert_eq!(
            mapped(&clients, &names, &format!("open#{r}")).await.0,
            None,
            "{r}"
        );
    }
    // A later finding on the bucket opens an incident of its own.
    let on_bucket = event(ON_THE_BUCKET);
    let ingested = store.ingest(&on_bucket, at).await?;
    assert_eq!(
        ingested.correlation,
        Correlation::New {
            incident_id: incident_id(&on_bucket.finding_key)
        }
    );
    Ok(())
}
