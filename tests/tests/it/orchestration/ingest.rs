//! ir-ingest's code ([`ir_incident::intake::Intake`]): findings stored as incidents and their
//! triage started, once, whatever the concurrency and the repeats.

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::audit::event::actions::TRIAGE_STARTED;
use ir_core::correlate::Correlation;
use ir_core::incident::Status;
use ir_incident::intake::Intake;
use ir_tests::{TestResult, serialized_clients};
use serde_json::json;

use super::{batch, create_machine, env, finished, fixture, sample_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_deliveries_open_one_incident_and_start_one_triage() -> TestResult {
    let mut f = fixture().await;
    // One request at a time (see `ir_tests::relay`: moto's concurrent `TransactWriteItems` and
    // `StartExecution`s are not atomic); concurrent ingests still interleave at every request.
    f.clients = serialized_clients(&env().cloud).await;
    let sfn = &f.clients.sfn();
    let machine = create_machine(
        sfn,
        &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let intake = Intake::new(f.clients.clone(), f.names.clone(), &machine);
    let one = batch(&sample_text(None));
    let id = one.incidents[0].incident_id.clone();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (intake, one) = (intake.clone(), one.clone());
        tasks.spawn(async move { intake.ingest(one).await });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r??);
    }
    let correlations: Vec<&Correlation> = results
        .iter()
        .flat_map(|r| {
            r.output
                .incidents
                .iter()
                .flat_map(|i| i.correlations.iter())
        })
        .collect();
    assert_eq!(correlations.len(), 20);
    assert!(correlations.iter().all(|c| c.incident_id() == id));
    assert_eq!(
        correlations
            .iter()
            .filter(|c| matches!(c, Correlation::New { .. }))
            .count(),
        1
    );
    // Exactly one delivery started the execution; every other one that tried found it.
    let starts: Vec<_> = results.iter().flat_map(|r| r.triage.iter()).collect();
    assert_eq!(starts.iter().filter(|s| s.started).count(), 1, "{starts:?}");
    let arn = &starts.iter().find(|s| s.started).unwrap().execution_arn;
    assert!(starts.iter().all(|s| &s.execution_arn == arn));

    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await?;
    let names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    assert_eq!(names, [id.as_str()]);
    assert_eq!(executions.executions()[0].execution_arn(), arn);
    let (s, _) = finished(sfn, arn).await;
    assert_eq!(s, ExecutionStatus::Succeeded);

    let incident = f.incidents().get(&id).await?.unwrap();
    assert_eq!(incident.occurrences, 20);
    assert_eq!(incident.finding_count, 1);
    assert_eq!(incident.summary.status, Status::Triage);

    let chain = f.chain(&id).await;
    let count = |action: &str| chain.iter().filter(|r| r.action == action).count();
    assert_eq!(count("opened"), 1);
    assert_eq!(count("repeated"), 19);
    // Recorded (racing deliveries may each record it, always the same execution).
    assert!(count(TRIAGE_STARTED) >= 1);
    assert!(
        chain
            .iter()
            .filter(|r| r.action == TRIAGE_STARTED)
            .all(|r| r.detail["executionArn"] == arn.as_str())
    );
    let opened = chain.iter().find(|r| r.action == "opened").unwrap();
    assert_eq!(
        opened.detail["findingId"],
        "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1"
    );
    assert_eq!(opened.detail["severity"], "high");
    assert_eq!(opened.actor, "ir-ingest");
    Ok(())
}

#[tokio::test]
async fn a_repeat_starts_nothing_unless_the_triage_start_was_lost() -> TestResult {
    let f = fixture().await;
    let sfn = &f.clients.sfn();
    let machine = create_machine(
        sfn,
        &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let intake = Intake::new(f.clients.clone(), f.names.clone(), &machine);

    // First delivery: opened, triage started and recorded.
    let mark = f.mark();
    let first = intake.ingest(batch(&sample_text(None))).await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:TransactWriteItems", // open: finding key, open key, incident
            "DynamoDB:Query",              // history count
            "DynamoDB:Query",              // audit head
            "DynamoDB:PutItem",            // audit `opened`
            "DynamoDB:Query",              // the chain: triage recorded?
            "SFN:StartExecution",
            "DynamoDB:Query",   // the chain again, right before recording
            "DynamoDB:Query",   // audit head
            "DynamoDB:PutItem"  // audit `triage-started`
        ]
    );
    let id = first.output.incidents[0].incident_id.clone();
    assert_eq!(first.triage.len(), 1);
    assert!(first.triage[0].started);
    let input = &first.output.incidents[0];
    assert_eq!(input.events.len(), 1);
    assert_eq!(input.history_count, 0);

    // GuardDuty publishes it again: a repeat; triage is recorded, so nothing starts.
    let mark = f.mark();
    let again = intake
        .ingest(batch(&sample_text(None).replacen(
            "\"count\": 1",
            "\"count\": 7",
            1,
        )))
        .await?;
    assert_eq!(
        f.calls(mark),
        [
            "DynamoDB:TransactWriteItems", // open: refused, the finding is known
            "DynamoDB:TransactWriteItems", // repeat: finding key and incident
            "DynamoDB:Query",              // history count
            "DynamoDB:Query",              // audit head
            "DynamoDB:PutItem",            // audit `repeated`
            "DynamoDB:Query",              // the chain: triage recorded, nothing to start
        ]
    );
    assert!(again.triage.is_empty());
    assert!(matches!(
        again.output.incidents[0].correlations[0],
        Correlation::Repeat { .. }
    ));
    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await?;
    assert_eq!(executions.executions().len(), 1);

    // Another finding (on another instance) whose first delivery crashed between the write and
    // the start: the store has it in triage, nothing started. Its redelivery starts the triage
    // (by name) and records it.
    let lost = sample_text(None)
        .replace(
            "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1",
            "0000f4f0e3c1a2b3c4d5e6f7a8b9ffff",
        )
        .replace("i-0a1b2c3d4e5f60001", "i-0ffffffffffff0002");
    let lost_batch = batch(&lost);
    let lost_event2 = lost_batch.incidents[0].events[0].clone();
    assert_ne!(
        lost_event2.resource_key(),
        first.output.incidents[0].events[0].resource_key()
    );
    let crashed = f
        .incidents()
        .ingest(&lost_event2, lost_batch.incidents[0].detected_at)
        .await?;
    let lost_id = crashed.correlation.incident_id().to_owned();
    assert_eq!(crashed.incident.status, Status::Triage);
    let redelivered = intake.ingest(lost_batch).await?;
    assert_eq!(redelivered.triage.len(), 1, "{:?}", redelivered.triage);
    assert_eq!(redelivered.triage[0].incident_id, lost_id);
    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await?;
    let mut names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    names.sort_unstable();
    let mut want = vec![id.as_str(), lost_id.as_str()];
    want.sort_unstable();
    assert_eq!(names, want);
    let chain = f.chain(&lost_id).await;
    assert_eq!(
        chain.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["repeated", TRIAGE_STARTED]
    );
    Ok(())
}

/// A GuardDuty finding delivered to the organization's administrator account: its ARN names the
/// administrator's account and detector, its `accountId` the member's. It is triaged on the
/// member's account, and the mismatch is noted on the incident: in its opening audit record and
/// in every incident update's scope.
#[tokio::test]
async fn a_delegated_administrators_copy_is_triaged_on_the_resources_account_and_noted()
-> TestResult {
    let f = fixture().await;
    let machine = create_machine(
        f.clients.sfn(),
        &json!({"StartAt": "Triage", "States": {"Triage": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let text = std::fs::read_to_string(
        ir_tests::repo_root().join("events/guardduty-delegated-admin-ssh-bruteforce.json"),
    )?;
    let input = batch(&text);
    let event = &input.incidents[0].events[0];
    let (member, id) = (
        event.account.clone(),
        input.incidents[0].incident_id.clone(),
    );
    Intake::new(f.clients.clone(), f.names.clone(), &machine)
        .ingest(input)
        .await?;
    let chain = f.chain(&id).await;
    let opened = chain.iter().find(|r| r.action == "opened").unwrap();
    assert_eq!(opened.detail["account"], member.as_str());
    let notes = opened.detail["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .contains(&format!("not the resource's account {member}"))),
        "{notes:?}"
    );
    let incident = ir_aws::store::IncidentStore::new(f.clients.clone(), f.names.clone())
        .get(&id)
        .await?
        .unwrap();
    assert!(
        incident
            .summary
            .resource_key
            .starts_with(&format!("{member}/"))
    );
    let update = ir_incident::notify::chat_update(&incident, &chain, ir_core::config::Mode::DryRun);
    assert!(
        update
            .scope
            .iter()
            .any(|s| s.starts_with("Note: finding ARN names account")),
        "{:?}",
        update.scope
    );
    Ok(())
}
