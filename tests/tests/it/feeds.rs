//! The three shapes one GuardDuty finding arrives in — direct, as Security Hub's ASFF and as its
//! OCSF (`Findings Imported V2`) — delivered to the real `ir-ingest` on the local cloud: one
//! incident, the two Security Hub copies skipped as duplicates naming it.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use ir_tests::TestResult;
use ir_tests::offline::{Offline, Settings};
use serde_json::Value;

#[tokio::test]
async fn a_guardduty_finding_direct_as_asff_and_as_ocsf_makes_one_incident() -> TestResult {
    let off = Offline::start(Settings {
        enforce: Vec::new(),
        ..Settings::default()
    })
    .await?;
    let deliver = async |file: &str| -> Value {
        let text = std::fs::read(ir_tests::repo_root().join("events").join(file)).unwrap();
        let answer = off.invoke("ir-ingest", &text).await.unwrap();
        assert_eq!(answer.error, None, "{file}: {}", answer.body);
        answer.body
    };
    let direct = deliver("guardduty-cryptocurrency-bitcointool-dns.json").await;
    let id = direct["incidents"][0]["incidentId"]
        .as_str()
        .unwrap_or_else(|| panic!("{direct}"))
        .to_owned();
    for copy in [
        "securityhub-guardduty-duplicate.json",
        "securityhub-ocsf-guardduty-bitcoin.json",
    ] {
        let answer = deliver(copy).await;
        assert_eq!(
            answer["incidents"],
            Value::Array(vec![]),
            "{copy}: {answer}"
        );
        assert_eq!(
            answer["skipped"][0]["incidentId"],
            id.as_str(),
            "{copy}: {answer}"
        );
    }
    let scanned = off
        .clients
        .dynamodb()
        .scan()
        .table_name(&off.names.incidents)
        .send()
        .await?;
    assert_eq!(scanned.count(), 1, "one incident for three deliveries");
    assert!(off.incident(&id).await?.is_some());
    Ok(())
}
