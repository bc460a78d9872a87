//! A burst of findings through the real `ir-ingest` ([`ir_tests::burst`]): forty distinct
//! GuardDuty findings, each on its own instance, each published five times, shuffled, delivered
//! by eight clients at once to eight `ir-ingest` processes. Exactly one incident and one triage
//! execution per finding, every delivery counted on its incident, no delivery failed (what
//! Lambda would retry and then dead-letter). The emulator records the triage executions without
//! running them (`burst::record_executions_only`). `scripts/bench/burst` is the same with a
//! thousand findings published ten times.

// A test stops loudly on anything unexpected.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use ir_core::incident::Status;
use ir_tests::TestResult;
use ir_tests::burst::{self, Shape};
use ir_tests::offline::Offline;

#[tokio::test]
async fn a_shuffled_burst_of_repeated_findings_makes_one_incident_and_one_execution_each()
-> TestResult {
    let shape = Shape {
        distinct: 40,
        repeats: 5,
        concurrency: 8,
        seed: 20_261_120,
    };
    let off = Offline::start(shape.settings()).await?;
    let report = burst::run(&off, shape).await?;
    let (answers, kept) = (&report.answers, &report.kept);

    assert_eq!(report.deliveries, 200);
    assert!(!report.executions_ran);
    assert_eq!(answers.answered, 200);
    assert_eq!(answers.failed(), 0, "{:?}", answers.errors);
    assert_eq!(answers.ok, 200);
    assert_eq!(
        (
            answers.new,
            answers.repeat,
            answers.attach,
            answers.misrouted
        ),
        (40, 160, 0, 0)
    );

    let expected: BTreeSet<String> = (0..40)
        .map(|i| burst::incident_for(&burst::finding_id(shape.seed, i)))
        .collect();
    assert_eq!(kept.incidents, 40);
    assert!(kept.missing_incidents.is_empty(), "{kept:?}");
    assert!(kept.unexpected_incidents.is_empty(), "{kept:?}");
    assert_eq!(kept.occurrences_off, Vec::new(), "each incident counts 5");
    assert_eq!(
        kept.findings_off,
        Vec::new(),
        "each incident has its one finding"
    );
    assert_eq!(
        kept.statuses.get(Status::Triage.as_str()),
        Some(&40),
        "{:?}",
        kept.statuses
    );

    assert_eq!(kept.executions, 40);
    assert!(kept.missing_executions.is_empty(), "{kept:?}");
    assert!(kept.unexpected_executions.is_empty(), "{kept:?}");
    // Read again here, not through the report: the execution names are the incident ids.
    let names: BTreeSet<String> = off
        .clients
        .sfn()
        .list_executions()
        .state_machine_arn(off.triage_arn())
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|e| e.unwrap().name().to_owned())
        .collect();
    assert_eq!(names, expected);

    // Read as the store reads it: five deliveries of one finding.
    for id in expected.iter().take(3) {
        let incident = off.incident(id).await?.expect("the incident");
        assert_eq!(incident.occurrences, 5, "{id}");
        assert_eq!(incident.summary.finding_ids.len(), 1, "{id}");
    }
    assert_eq!(report.problems(), Vec::<String>::new());
    Ok(())
}
