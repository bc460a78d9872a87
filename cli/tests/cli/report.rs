//! `ir report` against the local cloud: an incident recorded through the suite's own code,
//! printed as text, as JSON (`--json` and `--format json` alike), as Markdown, and written as
//! HTML with `--out` (never over an existing file without `--force`; a bad path is exit 2); its
//! audit chain edited: printed again, exit 1; an unknown incident: exit 3 with one line.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use ir_aws::store::IncidentStore;
use ir_core::action::{ActionReport, Change, ChangeStatus, Outcome};
use ir_core::config::Mode;
use ir_core::orchestration::RecordRequest;
use ir_incident::recorder::{Recorder, RecorderSettings};
use ir_tests::unique_name;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::local_cloud::{Env, stderr, stdout};

/// The command against the local cloud: an incident triaged, isolated (the recorder's
/// record of a report) and contained, printed; then its chain edited: printed again, exit 1;
/// an unknown incident: exit 2 with one line.
#[tokio::test]
async fn prints_a_recorded_incident_and_fails_on_a_broken_chain() {
    let ir_tests::Stores {
        cloud,
        clients,
        names,
        bucket,
    } = ir_tests::stores("cli-report").await;
    let text = include_str!("../../../events/guardduty-cryptocurrency-bitcointool-dns.json")
        .replace(
            "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1",
            &ir_tests::sha256_hex(unique_name("finding").as_bytes())[..32],
        );
    let event = ir_core::normalize(text.as_bytes())
        .unwrap()
        .events
        .remove(0);
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let ingested = IncidentStore::new(clients.clone(), names.clone())
        .ingest(&event, t0)
        .await
        .unwrap();
    let id = ingested.incident.incident_id.clone();
    let engine = ir_core::Engine::embedded().unwrap();
    let events = vec![event];
    let mut decision = engine
        .decide(&id, &events, &engine.enrich(&events, 5), t0)
        .unwrap();
    decision.playbook.mode = Mode::Enforce;
    for s in &mut decision.playbook.steps {
        s.mode = Mode::Enforce;
    }
    let recorder = Recorder::new(
        clients.clone(),
        names.clone(),
        RecorderSettings {
            evidence_bucket: bucket.clone(),
            evidence: ir_core::config::EvidenceConfig {
                retention_days: 1,
                ..Default::default()
            },
            slots: ir_incident::recorder::SlotSettings::default(),
        },
    );
    let steps: Vec<String> = decision
        .playbook
        .steps
        .iter()
        .map(|s| s.id.clone())
        .collect();
    recorder
        .record_at(
            RecordRequest::Triaged {
                incident_id: id.clone(),
                events,
                decision,
                detected_at: t0,
                revision: 0,
            },
            t0 + Duration::milliseconds(400),
        )
        .await
        .unwrap();
    let report = ActionReport {
        incident_id: id.clone(),
        step_id: "isolate-instance".into(),
        action: "ir-isolate-instance".into(),
        mode: Mode::Enforce,
        outcome: Outcome::Applied,
        changes: vec![Change {
            target: "eni-0abc".into(),
            attribute: "security-groups".into(),
            before: json!(["sg-0app", "sg-0ssh"]),
            after: json!(["sg-0isolation"]),
            status: ChangeStatus::Applied,
        }],
        record: None,
        artifacts: None,
        notes: vec![],
        aws_calls: 12,
    };
    recorder
        .record_at(
            RecordRequest::StepResult {
                incident_id: id.clone(),
                step_id: "isolate-instance".into(),
                report,
            },
            t0 + Duration::seconds(3),
        )
        .await
        .unwrap();
    recorder
        .record_at(
            RecordRequest::PlaybookFinished {
                incident_id: id.clone(),
                playbook_id: "immediate-isolation".into(),
                execution_name: None,
            },
            t0 + Duration::milliseconds(3100),
        )
        .await
        .unwrap();

    let env = Env::new(cloud, &names, &bucket);
    let out = env.ir(&["report", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "Incident {id} CONTAINED  severity critical  playbook immediate-isolation\n"
        )),
        "{text}"
    );
    assert!(text.contains("  contained +3.1s"), "{text}");
    assert!(text.contains(" MTTC 3.1s\n"), "{text}");
    assert!(
        text.contains(
            "    eni-0abc: security-groups [sg-0app, sg-0ssh] -> [sg-0isolation] (applied)\n"
        ),
        "{text}"
    );
    for step in steps.iter().filter(|s| *s != "isolate-instance") {
        assert!(text.contains(&format!("  {step} ")), "{step}: {text}");
    }
    assert!(text.contains("Audit: 3 records, head "), "{text}");
    assert!(
        // Entered containment (triaged), left it (contained).
        text.ends_with(", 2 anchors verified, all anchored\n"),
        "{text}"
    );

    let out = env.ir(&["report", &id, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incidentId"], json!(id));
    assert_eq!(v["audit"]["verification"]["records"], json!(3));
    assert_eq!(v["update"]["status"], json!("Contained"));
    let out = env.ir(&["report", &id, "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), v);

    formats(&env, &id).await;

    // Record 0 (triaged) edited: the whole report still printed, then exit 1.
    clients
        .dynamodb()
        .update_item()
        .table_name(&names.audit)
        .key("incidentId", AttributeValue::S(id.clone()))
        .key("seq", AttributeValue::N("0".into()))
        .update_expression("SET #d = :d")
        .expression_attribute_names("#d", "detail")
        .expression_attribute_values(":d", AttributeValue::S("{\"severity\":\"low\"}".into()))
        .send()
        .await
        .unwrap();
    let out = env.ir(&["report", &id]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("record 0 does not match its hash (edited)"),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("eni-0abc: security-groups"), "{text}");
    assert!(text.contains("Audit: NOT VERIFIED: "), "{text}");

    // Not found: exit 3 (README, "Exit codes").
    let unknown = ir_tests::incident_id();
    let out = env.ir(&["report", &unknown]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!("ir: no incident {unknown} in table {}\n", names.incidents)
    );
}

/// `--format md`, `--format html --out FILE` (and `--force`), and what is refused before
/// anything is read: an existing file, a missing directory, `--json` with another format.
async fn formats(env: &Env, id: &str) {
    let out = env.ir(&["report", id, "--format", "md"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = stdout(&out);
    assert!(
        md.starts_with(&format!(
            "## Incident Update: {id}\n**Status:** Contained  \n**Severity:** Critical  \n**Time detected:** "
        )),
        "{md}"
    );
    for part in [
        "### Summary\n",
        "### Scope\n",
        "### Actions Taken\n",
        "### Next Steps\n",
        "### Timeline\n",
        "| eni-0abc | security-groups | \\[sg-0app, sg-0ssh\\] | \\[sg-0isolation\\] | applied |",
        "## Post-Incident Review\nReview not held yet.\n",
    ] {
        assert!(md.contains(part), "{part}: {md}");
    }

    let dir = std::env::temp_dir().join(unique_name("ir-report-out"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.html");
    let path = file.to_str().unwrap();
    let out = env
        .ir(&["report", id, "--format", "html", "--out", path])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("report of {id} (html) written to {path} (")),
        "{}",
        stdout(&out)
    );
    let page = std::fs::read_to_string(&file).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("id=\"timeline\""), "{page}");
    assert!(page.contains("class=\"mark mark-contained\""), "{page}");

    // Not over the file without --force (exit 2, the file as it was); with it, replaced.
    std::fs::write(&file, "mine").unwrap();
    let out = env
        .ir(&["report", id, "--format", "html", "--out", path])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the file exists (--force replaces it)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    let out = env
        .ir(&["report", id, "--format", "md", "--out", path, "--force"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("## Incident Update: ")
    );

    // A directory that does not exist, a directory as the file, --json with another format,
    // --force without --out: exit 2.
    let missing = dir.join("no-such-dir").join("r.html");
    for args in [
        vec![
            "report",
            id,
            "--format",
            "html",
            "--out",
            missing.to_str().unwrap(),
        ],
        vec!["report", id, "--out", dir.to_str().unwrap()],
        vec!["report", id, "--json", "--format", "md"],
        vec!["report", id, "--force"],
    ] {
        let out = env.ir(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
