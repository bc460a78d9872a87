//! ir-record's code ([`ir_incident::recorder::Recorder`]): a playbook followed from triage to
//! containment, dry runs, and failures, each recorded once on the incident and in the audit
//! chain.

use aws_sdk_s3::types::ObjectLockMode;
use ir_core::Named;
use ir_core::config::Mode;
use ir_core::incident::Status;
use ir_core::orchestration::{RecordRequest, StateError};
use ir_incident::recorder::RecordOutput;
use ir_tests::TestResult;
use serde_json::json;

use super::{fixture, isolation_report, recorded, stored_and_triaged, triaged};

#[tokio::test]
async fn the_recorder_follows_an_enforced_playbook_to_containment_and_anchors_it() -> TestResult {
    let f = fixture().await;
    let (input, decision) = triaged(Mode::Enforce);
    let id = input.incident_id.clone();
    f.incidents()
        .ingest(&input.events[0], input.detected_at)
        .await?;
    let recorder = f.recorder();
    let triage = RecordRequest::Triaged {
        incident_id: id.clone(),
        events: input.events.clone(),
        decision: decision.clone(),
        detected_at: input.detected_at,
        revision: 0,
    };

    // triaged → the playbook input; the incident in containment; the decision audited.
    let mark = f.mark();
    let RecordOutput::Playbook(playbook) = recorder.record(triage.clone()).await? else {
        panic!("triaged answers with the playbook input");
    };
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:Query",      // the chain: earlier revisions
            "DynamoDB:GetItem",    // record the decision: read
            "DynamoDB:UpdateItem", // ... write
            "DynamoDB:GetItem",    // a playbook slot: read
            "DynamoDB:PutItem",    // ... taken (version condition)
            "DynamoDB:GetItem",    // triage → containment: read
            "DynamoDB:UpdateItem", // ... write
            "DynamoDB:Query",      // the chain: recorded already?
            "DynamoDB:Query",      // audit head
            "DynamoDB:PutItem",    // audit `triaged`
            "DynamoDB:Query",      // the head anchored: read
            "S3:PutObject",        // ... written, locked
            "S3:HeadObject",       // ... read back
        ]
    );
    assert_eq!(playbook.incident_id, id);
    assert_eq!(playbook.mode, Mode::Enforce);
    assert_eq!(playbook.decision, decision);
    assert_eq!(playbook.finding_id, input.events[0].finding_id);
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Containment);
    assert!(incident.summary.timeline.triaged_at.is_some());
    assert_eq!(
        incident.summary.playbook.as_deref(),
        Some("immediate-isolation")
    );
    assert_eq!(incident.decision.as_ref(), Some(&decision));
    let chain = f.chain(&id).await;
    let t = chain.last().unwrap();
    assert_eq!(
        (t.action.as_str(), t.actor.as_str()),
        ("triaged", "ir-record")
    );
    assert_eq!(t.detail["severity"], "critical");
    assert_eq!(t.detail["playbook"], "immediate-isolation");
    assert_eq!(t.detail["mode"], "enforce");
    assert_eq!(t.detail["score"]["score"], json!(decision.score.score));
    assert_eq!(
        t.detail["gates"],
        json!(
            decision
                .approval_gates()
                .map(|s| s.id.clone())
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(
        t.detail["steps"].as_array().unwrap().len(),
        decision.playbook.steps.len()
    );
    assert_eq!(t.detail["sla"]["target"], "immediate");

    // A retried triaged: the same answer, nothing written.
    let mark = f.mark();
    let RecordOutput::Playbook(again) = recorder.record(triage).await? else {
        panic!()
    };
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:Query", // the chain: earlier revisions
            "DynamoDB:GetItem",
            "DynamoDB:GetItem", // its slot, held already: nothing written
            "DynamoDB:Query",
            "DynamoDB:Query", // the head anchored again
            "S3:PutObject",   // If-None-Match: * refuses it
            "S3:GetObject"    // the anchor already there: the same head
        ]
    );
    assert_eq!(again.decision, decision);
    assert_eq!(f.chain(&id).await.len(), chain.len());

    // The isolation step's result: its record kept for release, every change audited.
    let report = isolation_report(&id, Mode::Enforce);
    let step = RecordRequest::StepResult {
        incident_id: id.clone(),
        step_id: "isolate-instance".into(),
        report: report.clone(),
    };
    let mark = f.mark();
    let r = recorded(recorder.record(step.clone()).await?);
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",
            "DynamoDB:UpdateItem", // the containment record
            "DynamoDB:Query",
            "DynamoDB:Query",
            "DynamoDB:PutItem" // audit `action:ir-isolate-instance`
        ]
    );
    assert!(r.appended);
    assert_eq!(r.action, "action:ir-isolate-instance");
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.records, [report.record.clone().unwrap()]);
    let chain = f.chain(&id).await;
    let a = chain.last().unwrap();
    assert_eq!(a.detail["step"], "isolate-instance");
    assert_eq!(a.detail["outcome"], "applied");
    assert_eq!(a.detail["mode"], "enforce");
    assert_eq!(a.detail["changes"][0]["before"], json!(["sg-0app"]));
    assert_eq!(a.detail["changes"][0]["after"], json!(["sg-0isolation"]));
    assert_eq!(
        a.detail["changes"][1]["attribute"],
        "disable-api-termination"
    );

    // Step Functions retries the recorder (its answer was lost): nothing twice.
    let mark = f.mark();
    let retried = recorded(recorder.record(step).await?);
    assert!(!retried.appended);
    assert_eq!((retried.seq, &retried.hash), (r.seq, &r.hash));
    assert_eq!(
        f.calls(mark),
        ["DynamoDB:GetItem", "DynamoDB:Query"],
        "the record is already there: no write"
    );
    assert_eq!(f.chain(&id).await.len(), chain.len());
    assert_eq!(f.incidents().get(&id).await?.unwrap().records.len(), 1);

    // Another gate was rejected: the incident says so, the chain too.
    let refused = recorded(
        recorder
            .record(RecordRequest::StepNotApproved {
                incident_id: id.clone(),
                step_id: "revoke-credentials".into(),
                error: StateError {
                    error: "Rejected".into(),
                    cause: "the role is shared with the batch fleet".into(),
                },
            })
            .await?,
    );
    assert_eq!(refused.action, "step-not-approved");
    let incident = f.incidents().get(&id).await?.unwrap();
    let last_error = incident.last_error.unwrap();
    assert_eq!(last_error.step, "revoke-credentials");
    assert_eq!(
        last_error.message,
        "Rejected: the role is shared with the batch fleet"
    );

    // The playbook ends: contained (a destructive step applied in enforce), the head anchored.
    let finish = RecordRequest::PlaybookFinished {
        incident_id: id.clone(),
        playbook_id: "immediate-isolation".into(),
        execution_name: None,
    };
    let mark = f.mark();
    let done = recorded(recorder.record(finish.clone()).await?);
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",    // the incident (decision)
            "DynamoDB:Query",      // the chain (steps run)
            "DynamoDB:GetItem",    // containment → contained: read
            "DynamoDB:UpdateItem", // ... write
            "DynamoDB:Query",      // audit head
            "DynamoDB:PutItem",    // audit `playbook-finished`
            "DynamoDB:Query",      // anchor: the head
            "S3:PutObject",        // the locked anchor
            "S3:HeadObject",       // read back: locked
        ]
    );
    assert_eq!(done.status, Status::Contained);
    let anchor = done.anchor.clone().unwrap();
    assert_eq!((anchor.seq, &anchor.hash), (done.seq, &done.hash));
    assert_eq!(anchor.reason, "left-containment");
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Contained);
    let contained_at = incident.summary.timeline.contained_at.unwrap();
    assert!(incident.summary.timeline.mttc().is_some());
    let chain = f.chain(&id).await;
    let p = chain.last().unwrap();
    assert_eq!(p.action, "playbook-finished");
    assert_eq!(p.detail["contained"], true);
    assert_eq!(p.detail["destructiveApplied"], json!(["isolate-instance"]));
    assert_eq!(p.detail["notApplied"], json!(["revoke-credentials"]));
    assert_eq!(
        p.detail["mttcSeconds"],
        json!((contained_at - incident.summary.timeline.detected_at).whole_seconds())
    );
    // The anchor is a locked object version in the evidence bucket.
    let key = format!(
        "incidents/{id}/audit/anchor-{}-left-containment.json",
        anchor.seq
    );
    let head = f
        .clients
        .s3()
        .head_object()
        .bucket(&f.bucket)
        .key(&key)
        .send()
        .await?;
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let verified = f.audit().verify(&id, &f.bucket).await?;
    assert_eq!(verified.records, chain.len());
    assert_eq!(verified.head, done.hash);
    // Entered containment (triaged), left it (contained).
    assert_eq!(verified.anchors_checked, 2);
    assert_eq!(verified.unanchored, 0);

    // Retried: no second record, the same anchor (found, not written again).
    let mark = f.mark();
    let again = recorded(recorder.record(finish).await?);
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:GetItem",
            "DynamoDB:Query",
            "DynamoDB:Query",
            "S3:PutObject", // If-None-Match: * refuses it
            "S3:GetObject"  // the anchor already there: the same head
        ]
    );
    assert!(!again.appended);
    assert_eq!(again.anchor, Some(anchor));
    assert_eq!(f.chain(&id).await.len(), chain.len());
    assert_eq!(f.audit().verify(&id, &f.bucket).await?.anchors_checked, 2);
    Ok(())
}

#[tokio::test]
async fn a_dry_run_playbook_contains_nothing_and_says_so() -> TestResult {
    let f = fixture().await;
    let (input, _) = stored_and_triaged(&f, Mode::DryRun).await;
    let id = input.incident_id;
    let recorder = f.recorder();
    let planned = recorded(
        recorder
            .record(RecordRequest::StepResult {
                incident_id: id.clone(),
                step_id: "isolate-instance".into(),
                report: isolation_report(&id, Mode::DryRun),
            })
            .await?,
    );
    assert_eq!(planned.status, Status::Containment);
    assert!(f.incidents().get(&id).await?.unwrap().records.is_empty());
    let done = recorded(
        recorder
            .record(RecordRequest::PlaybookFinished {
                incident_id: id.clone(),
                playbook_id: "immediate-isolation".into(),
                execution_name: None,
            })
            .await?,
    );
    assert_eq!(done.status, Status::Containment);
    // Anchored in dry-run too: the chain of an incident nothing contained is evidence as well.
    let anchor = done.anchor.clone().unwrap();
    assert_eq!(
        (anchor.seq, anchor.reason.as_str()),
        (done.seq, "playbook-finished")
    );
    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Containment);
    assert!(incident.summary.timeline.contained_at.is_none());
    let last = f.chain(&id).await.pop().unwrap();
    assert_eq!(last.detail["contained"], false);
    assert!(
        last.detail["why"].as_str().unwrap().starts_with("dry-run"),
        "{}",
        last.detail
    );
    assert_eq!(last.detail["plannedOnly"], json!(["isolate-instance"]));
    let verified = f.audit().verify(&id, &f.bucket).await?;
    assert_eq!(
        verified.anchors_checked, 2,
        "entered containment, playbook finished"
    );
    assert_eq!((verified.unanchored, verified.unanchored_from), (0, None));
    // A playbook the incident was not routed to is refused.
    let wrong = recorder
        .record(RecordRequest::PlaybookFinished {
            incident_id: id.clone(),
            playbook_id: "queue-for-review".into(),
            execution_name: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&wrong),
        ir_core::ErrorName::InvalidInput
    );
    Ok(())
}

#[tokio::test]
async fn failures_are_shown_on_the_incident_and_recorded_once() -> TestResult {
    let f = fixture().await;
    let (input, _) = triaged(Mode::DryRun);
    let id = input.incident_id.clone();
    f.incidents()
        .ingest(&input.events[0], input.detected_at)
        .await?;
    let recorder = f.recorder();
    let failed = RecordRequest::TriageFailed {
        incident_id: id.clone(),
        error: StateError {
            error: "Lambda.Unknown".into(),
            cause: "x".repeat(10_000),
        },
        revision: None,
    };
    let first = recorded(recorder.record(failed.clone()).await?);
    assert_eq!(first.action, "triage-failed");
    assert_eq!(first.status, Status::Triage);
    let again = recorded(recorder.record(failed).await?);
    assert!(!again.appended);
    let incident = f.incidents().get(&id).await?.unwrap();
    let e = incident.last_error.unwrap();
    assert_eq!(e.step, "triage");
    assert!(e.message.starts_with("Lambda.Unknown: xxx"));
    assert!(e.message.contains("more bytes cut"), "a 10 kB cause is cut");
    let chain = f.chain(&id).await;
    assert_eq!(
        chain.iter().filter(|r| r.action == "triage-failed").count(),
        1
    );

    // A report for another step, and a request for an incident that does not exist.
    let mismatch = recorder
        .record(RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "snapshot-volumes".into(),
            report: isolation_report(&id, Mode::DryRun),
        })
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&mismatch),
        ir_core::ErrorName::InvalidInput
    );
    let other = ir_tests::incident_id();
    let missing = recorder
        .record(RecordRequest::StepFailed {
            incident_id: other,
            step_id: "isolate-instance".into(),
            error: StateError {
                error: "Retryable".into(),
                cause: String::new(),
            },
        })
        .await
        .unwrap_err();
    assert_eq!(
        ir_core::Named::error_name(&missing),
        ir_core::ErrorName::NotFound
    );
    Ok(())
}

/// The revision in a triage request is the caller's word: the recorder holds it against the
/// incident's own record. A revision the incident never had is refused; one a later finding
/// superseded records nothing and starts nothing, even when it arrives last.
#[tokio::test]
async fn a_triage_is_recorded_only_for_the_incidents_current_revision() -> TestResult {
    let f = fixture().await;
    let (input, decision) = triaged(Mode::Enforce);
    let id = input.incident_id.clone();
    let store = f.incidents();
    store.ingest(&input.events[0], input.detected_at).await?;
    let recorder = f.recorder();
    let request = |revision: u32| RecordRequest::Triaged {
        incident_id: id.clone(),
        events: input.events.clone(),
        decision: decision.clone(),
        detected_at: input.detected_at,
        revision,
    };

    // A forged revision: refused, nothing recorded.
    let forged = recorder.record(request(3)).await.unwrap_err();
    assert_eq!(
        forged.error_name(),
        ir_core::ErrorName::InvalidInput,
        "{forged}"
    );
    assert!(forged.to_string().contains("no revision 3"), "{forged}");
    assert!(store.get(&id).await?.unwrap().decision.is_none());

    // A more severe finding on the resource makes revision 1.
    let mut worse = input.events[0].clone();
    worse.finding_id = "f-critical".into();
    worse.finding_key = format!("{}-critical", worse.finding_key);
    worse.severity.label = ir_core::Severity::Critical;
    let ingested = store.ingest(&worse, input.detected_at).await?;
    assert_eq!((ingested.revision, ingested.escalated), (1, true));

    // Revision 0's triage, arriving now: superseded, nothing recorded or started.
    let RecordOutput::Playbook(stale) = recorder.record(request(0)).await? else {
        panic!("triaged answers with the playbook input");
    };
    assert!(!stale.start);
    assert!(
        stale
            .not_started
            .as_deref()
            .unwrap_or("")
            .starts_with("superseded"),
        "{:?}",
        stale.not_started
    );
    let incident = store.get(&id).await?.unwrap();
    assert!(incident.decision.is_none());
    assert_eq!(incident.summary.status, Status::Triage);

    // Revision 1's: recorded and started, under its own execution name.
    let RecordOutput::Playbook(current) = recorder.record(request(1)).await? else {
        panic!("triaged answers with the playbook input");
    };
    assert!(current.start);
    assert_eq!(current.execution_name, format!("{id}-r1"));
    let incident = store.get(&id).await?.unwrap();
    assert_eq!(incident.decision.as_ref().map(|d| d.revision), Some(1));
    assert_eq!(incident.summary.status, Status::Containment);

    // Revision 0 once more (a late retry): still superseded; the decision stays revision 1's.
    let RecordOutput::Playbook(late) = recorder.record(request(0)).await? else {
        panic!("triaged answers with the playbook input");
    };
    assert!(!late.start);
    let incident = store.get(&id).await?.unwrap();
    assert_eq!(incident.decision.as_ref().map(|d| d.revision), Some(1));
    let audited: Vec<_> = f
        .chain(&id)
        .await
        .into_iter()
        .filter(|r| r.action == "triaged")
        .map(|r| {
            (
                r.detail["revision"].as_u64().unwrap_or(0),
                r.detail.get("notStarted").is_some(),
            )
        })
        .collect();
    assert_eq!(audited, [(0, true), (1, false), (0, true)]);
    Ok(())
}
