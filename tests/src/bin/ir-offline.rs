//! `ir-offline`: the whole suite on this machine, no AWS account.
//!
//! `ir-offline demo`: starts the local cloud ([`ir_tests::offline`]), provisions it, feeds the
//! bundled GuardDuty finding to `ir-ingest`, waits at each approval gate and approves with
//! `ir approve` as two on-call engineers (alice, then bob: a critical step needs two people),
//! with Slack (a local server speaking its Web API) receiving every update as it happens; then
//! prints what Slack received, the incident (`ir report`), verifies its audit chain
//! (`ir audit verify`), plans its release (`ir release`, dry-run), lists the incidents and writes
//! the report as one HTML page (`ir report --format html --out`), printing where to open it.
//!
//! `ir-offline bench [--runs N]`: the same path with the responders approving as soon as asked;
//! prints, per run and as medians, the wall time from the finding's delivery to the instance
//! contained and the number of state transitions of the executions.

// A terminal program: what it prints is its output (the functions' telemetry goes to their logs).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::HistoryEventType;
use futures_util::StreamExt;
use ir_core::incident::Status;
use ir_tests::offline::{FINDING_FILE, Offline, OfflineError, PLAYBOOK, Settings};
use time::OffsetDateTime;

const GATES: [&str; 2] = ["revoke-credentials", "isolate-instance"];
const WAIT: Duration = Duration::from_secs(120);

type Result<T> = std::result::Result<T, OfflineError>;

fn fail(what: impl std::fmt::Display) -> OfflineError {
    OfflineError(what.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") | None => demo().await,
        Some("bench") => {
            let runs = match args.get(1).map(String::as_str) {
                Some("--runs") => args.get(2).and_then(|n| n.parse().ok()),
                None => Some(5),
                Some(_) => None,
            };
            match runs {
                Some(n) if n > 0 => bench(n).await,
                _ => Err(fail("usage: ir-offline bench [--runs N]")),
            }
        }
        Some("faults") => {
            let (jobs, only) = match args.get(1).map(String::as_str) {
                Some("--jobs") => (
                    args.get(2).and_then(|n| n.parse::<usize>().ok()),
                    args.get(3),
                ),
                _ => (Some(1), args.get(1)),
            };
            match jobs {
                Some(j) if j > 0 => faults(j, only.map(String::as_str)).await,
                _ => Err(fail(
                    "usage: ir-offline faults [--jobs N] [FUNCTION|OPERATION|kill]",
                )),
            }
        }
        Some(other) => Err(fail(format!(
            "unknown command {other:?}; usage: ir-offline demo | ir-offline bench [--runs N] | ir-offline faults [--jobs N] [FUNCTION|OPERATION|kill]"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ir-offline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The fault matrix ([`ir_tests::matrix`]): a clean run lists the calls of every action of the
/// playbook; then, per function and call (or only the rows `only` picks, see [`picked`]), each
/// fault on every attempt, and for a call that changes something a throttle, a lost answer and
/// a slow answer on the first attempt only; then the function's process killed after k of its n mutations, for
/// each k. `jobs` cells run at once, each on its own local cloud. One line per cell, in order;
/// exit 1 if any cell is a lie.
async fn faults(jobs: usize, only: Option<&str>) -> Result<()> {
    use ir_tests::fault::{Fault, FaultRule, Target, is_mutation};
    let baseline = ir_tests::matrix::cell(None).await?;
    let calls: usize = baseline.seen.values().map(Vec::len).sum();
    println!(
        "baseline: {} ({calls} calls, {:.1} s)",
        baseline.outcome, baseline.seconds
    );
    // The rows: each function's distinct operations, in the order it first called them, then
    // one row per k of its n mutations (killed after k).
    let mut rows: Vec<(String, Option<FaultRule>, String)> = Vec::new();
    for function in ir_tests::matrix::ACTIONS {
        let seen = baseline.seen.get(function).cloned().unwrap_or_default();
        println!("{function}: {}", seen.join(", "));
        let mut operations: Vec<&String> = Vec::new();
        for op in &seen {
            if !operations.contains(&op) {
                operations.push(op);
            }
        }
        for op in operations {
            let mut plans: Vec<(Fault, Option<u32>)> =
                Fault::ALL.iter().map(|f| (*f, None)).collect();
            // Once only matters where a repeat can differ from the first: a change.
            if is_mutation(op) {
                plans.extend([
                    (Fault::Throttle, Some(1)),
                    (Fault::LostAfterApply, Some(1)),
                    (Fault::Slow, Some(1)),
                ]);
            }
            for (fault, times) in plans {
                let when = if times.is_some() { "first" } else { "every" };
                if !picked(only, &[function, op, fault.as_str(), when]) {
                    continue;
                }
                rows.push((
                    function.to_owned(),
                    Some(FaultRule::at(op, fault, times)),
                    format!("{op:<32} {:<18} {when}", fault.as_str()),
                ));
            }
        }
        let mutations = seen.iter().filter(|op| is_mutation(op)).count();
        let mutations = u32::try_from(mutations).unwrap_or(u32::MAX);
        if picked(only, &[function, "kill"]) {
            for k in 0..=mutations {
                // Killed as it sends mutation k+1 (k applied), or after the last one applied.
                let (target, fault) = if k < mutations {
                    (Target::Mutation(k + 1), Fault::Killed)
                } else {
                    (Target::Mutation(k), Fault::KilledAfterApply)
                };
                if k == 0 && mutations == 0 {
                    continue;
                }
                rows.push((
                    function.to_owned(),
                    Some(FaultRule {
                        target,
                        fault,
                        times: Some(1),
                    }),
                    format!(
                        "{:<32} {:<18} first",
                        format!("after {k} of {mutations} mutations"),
                        "killed"
                    ),
                ));
            }
        }
    }
    println!("{} cells", rows.len());
    println!(
        "{:<22} {:<32} {:<18} {:<6} {:>4} {:>6}  outcome",
        "function", "call", "fault", "when", "hits", "secs"
    );
    let mut lies = 0;
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    let started = Instant::now();
    let mut cells =
        futures_util::stream::iter(rows.into_iter().map(|(function, rule, label)| async move {
            let cell = ir_tests::matrix::cell(rule.map(|r| (function.as_str(), r))).await;
            (function, label, cell)
        }))
        .buffered(jobs);
    while let Some((function, label, cell)) = cells.next().await {
        // A cell that could not be driven is not an outcome: said, counted, and the matrix
        // goes on.
        let cell = match cell {
            Ok(c) => c,
            Err(e) => {
                *outcomes.entry("ERROR".to_owned()).or_default() += 1;
                println!("{function:<22} {label}    -      -  ERROR: {e}");
                continue;
            }
        };
        if cell.outcome.starts_with("LIE") {
            lies += 1;
        }
        let kind = cell.outcome.split(" (").next().unwrap_or_default();
        let kind = kind.split(" at ").next().unwrap_or_default().to_owned();
        *outcomes.entry(kind).or_default() += 1;
        println!(
            "{function:<22} {label} {:>4} {:>6.1}  {}",
            cell.injected
                .max(u32::try_from(cell.kills).unwrap_or(u32::MAX)),
            cell.seconds,
            cell.outcome
        );
    }
    println!(
        "outcomes: {} ({:.0} s, {jobs} at a time)",
        outcomes
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );
    if lies > 0 {
        return Err(fail(format!("{lies} cell(s) end in a lie")));
    }
    Ok(())
}

/// Whether a row named by `names` is one `only` picks: one of its `,`-separated choices, each
/// of whose `:`-separated parts is one of the names (`ir-isolate-instance:CreateTags:slow:first`,
/// `CreateTags`, `ir-notify,ir-isolate-instance:kill`).
fn picked(only: Option<&str>, names: &[&str]) -> bool {
    only.is_none_or(|o| {
        o.split(',')
            .any(|choice| choice.split(':').all(|part| names.contains(&part)))
    })
}

/// One pass of the story; what it measured.
struct Run {
    incident: String,
    delivered_to_contained: Duration,
    transitions: usize,
    triage_transitions: usize,
}

/// Delivers the finding, approves every gate as soon as it is asked (printing the CLI's answer
/// when `show`), and waits for the playbook to end with the incident contained.
async fn story(off: &Offline, show: bool) -> Result<Run> {
    let now = OffsetDateTime::now_utc();
    let history = off.seed_history(3, now).await?;
    if show {
        println!(
            "  history: {} earlier incidents on it, resolved ({})",
            history.len(),
            history.join(", ")
        );
    }
    let finding_id = format!("{:032x}", u128::from(std::process::id()) << 64 | 0xd4b6);
    // Published and received now; the activity began five minutes earlier.
    let envelope = off.victim.finding(
        &finding_id,
        OffsetDateTime::now_utc(),
        time::Duration::minutes(5),
    )?;
    if show {
        println!("\n== The finding: {FINDING_FILE}, about the victim, delivered to ir-ingest");
    }
    let delivered_at = OffsetDateTime::now_utc();
    let answer = off.invoke("ir-ingest", &envelope).await?;
    if let Some(error) = &answer.error {
        return Err(fail(format!("ir-ingest failed: {error}: {}", answer.body)));
    }
    let incident = ir_core::correlate::incident_id(&format!(
        "guardduty:{}:{}:{finding_id}",
        ir_tests::ACCOUNT_ID,
        ir_tests::REGION
    ));
    if show {
        for i in answer.body["incidents"].as_array().into_iter().flatten() {
            println!(
                "  -> incident {} ({}), {} earlier incidents on the resource; triage started",
                i["incidentId"].as_str().unwrap_or_default(),
                i["correlations"][0]["kind"].as_str().unwrap_or_default(),
                i["historyCount"]
            );
        }
    }
    for step in GATES {
        let asked = off.wait_for_approval(&incident, step, 0, WAIT).await?;
        if show {
            println!(
                "\n== Approval gate: {incident} step {step} (level {}, asked by {}): two different people must approve",
                asked.level, asked.requester
            );
        }
        // The default config asks two people for a critical step: two engineers on call.
        for who in [&off.people.alice, &off.people.bob] {
            let args = [
                "approve",
                incident.as_str(),
                "--step",
                step,
                "--reason",
                "confirmed with the owner",
            ];
            if show {
                println!("  $ ir {}    # as {}", args.join(" "), who.arn);
            }
            let out = off.ir_as(who, &args).await?;
            if show {
                print_output(&out);
            }
            if !out.status.success() {
                return Err(fail(format!("ir approve failed ({})", out.status)));
            }
        }
    }
    let playbook = off.execution_arn(off.playbook_arn(PLAYBOOK), &incident);
    let status = off.wait_for_execution(&playbook, WAIT).await?;
    if status != aws_sdk_sfn::types::ExecutionStatus::Succeeded {
        return Err(fail(format!("the playbook execution ended {status:?}")));
    }
    let contained_at = wait_contained(off, &incident).await?;
    let delivered_to_contained = Duration::try_from(contained_at - delivered_at)
        .map_err(|e| fail(format!("containedAt before the delivery: {e}")))?;
    let triage = off.execution_arn(off.triage_arn(), &incident);
    let triage_transitions = transitions(off, &triage).await?;
    let transitions = triage_transitions + transitions(off, &playbook).await?;
    Ok(Run {
        incident,
        delivered_to_contained,
        transitions,
        triage_transitions,
    })
}

/// Waits until the incident is contained; returns when it was (`containedAt`, the recorder's
/// clock: this machine's).
async fn wait_contained(off: &Offline, incident: &str) -> Result<OffsetDateTime> {
    let started = Instant::now();
    loop {
        let stored = off.incident(incident).await?;
        let contained_at = stored
            .as_ref()
            .and_then(|i| i.summary.timeline.contained_at);
        match stored.as_ref().map(|i| i.summary.status) {
            Some(Status::Contained) if contained_at.is_some() => {
                return contained_at.ok_or_else(|| fail("containedAt"));
            }
            Some(Status::Triage | Status::Containment | Status::Contained) | None
                if started.elapsed() < WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => {
                return Err(fail(format!(
                    "{incident} is {other:?}, not contained; function logs in {}",
                    off.run_dir.display()
                )));
            }
        }
    }
}

/// The states an execution entered.
async fn transitions(off: &Offline, execution: &str) -> Result<usize> {
    let mut count = 0;
    let mut token = None;
    loop {
        let page = off
            .clients
            .sfn()
            .get_execution_history()
            .execution_arn(execution)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| fail(format!("GetExecutionHistory {execution}: {e:?}")))?;
        count += page
            .events()
            .iter()
            .filter(|e| {
                matches!(
                    e.r#type(),
                    HistoryEventType::ChoiceStateEntered
                        | HistoryEventType::FailStateEntered
                        | HistoryEventType::PassStateEntered
                        | HistoryEventType::SucceedStateEntered
                        | HistoryEventType::TaskStateEntered
                        | HistoryEventType::WaitStateEntered
                        | HistoryEventType::ParallelStateEntered
                        | HistoryEventType::MapStateEntered
                )
            })
            .count();
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(count);
        }
    }
}

fn print_output(out: &std::process::Output) {
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("  {line}");
    }
}

async fn demo() -> Result<()> {
    println!("== Local cloud (no AWS account)");
    let started = Instant::now();
    let off = Offline::start(Settings {
        slack: true,
        ..Settings::default()
    })
    .await?;
    println!(
        "  emulator  {} (moto; Step Functions executing statemachines/*.asl.json)",
        off.cloud.endpoint_url()
    );
    println!(
        "  lambda    {} (cargo lambda watch; every function binary, 4 x ir-ingest)",
        off.lambda_endpoint()
    );
    println!(
        "  tables    {}, {}, {}, {}",
        off.names.incidents, off.names.keys, off.names.audit, off.names.approvals
    );
    println!("  evidence  s3://{} (Object Lock COMPLIANCE)", off.bucket);
    println!(
        "  config    {} (playbook {PLAYBOOK} in enforce mode; approver {})",
        off.config_file.display(),
        off.responder.arn
    );
    println!("  logs      {}", off.run_dir.display());
    if let Some(slack) = &off.slack {
        println!(
            "  slack     {} (a local server speaking Slack's Web API; ir-announce reads the audit stream)",
            slack.server.slack_api_url()
        );
    }
    println!("  ready in  {:.1} s", started.elapsed().as_secs_f64());

    let v = &off.victim;
    println!(
        "\n== The victim: {} (web-prod-1, critical in the asset registry)",
        v.instance_id
    );
    for (eni, groups) in &v.interfaces {
        println!("  {eni}: security groups {}", groups.join(", "));
    }
    println!(
        "  instance profile {} -> role {} (inline policy app-data)",
        v.profile, v.role
    );

    let run = story(&off, true).await?;

    if let Some(slack) = &off.slack {
        println!("\n== In Slack, as it happened");
        print_slack(&slack.server);
    }

    println!("\n== The incident");
    let report = off.ir_as_responder(&["report", &run.incident]).await?;
    print_output(&report);
    println!("\n== The audit chain");
    println!("  $ ir audit verify {}", run.incident);
    let verified = off
        .ir_as_responder(&["audit", "verify", &run.incident])
        .await?;
    print_output(&verified);
    println!("\n== Releasing it later (dry-run: the plan; nothing changes)");
    println!("  $ ir release {}", run.incident);
    let release = off.ir_as_responder(&["release", &run.incident]).await?;
    print_output(&release);
    println!("\n== The open incidents");
    println!("  $ ir incidents list");
    let listed = off.ir_as_responder(&["incidents", "list"]).await?;
    print_output(&listed);
    println!("\n== The report, for people (one self-contained page with its SVG timeline)");
    let html = off.run_dir.join(format!("report-{}.html", run.incident));
    let html_arg = html.display().to_string();
    println!(
        "  $ ir report {} --format html --out {html_arg}",
        run.incident
    );
    let written = off
        .ir_as_responder(&[
            "report",
            &run.incident,
            "--format",
            "html",
            "--out",
            &html_arg,
        ])
        .await?;
    print_output(&written);
    println!("  open file://{html_arg}");
    println!(
        "\n== Finding in -> contained: {:.2} s, {} state transitions (triage {}, playbook {})",
        run.delivered_to_contained.as_secs_f64(),
        run.transitions,
        run.triage_transitions,
        run.transitions - run.triage_transitions
    );
    if !report.status.success()
        || !verified.status.success()
        || !release.status.success()
        || !listed.status.success()
        || !written.status.success()
        || !html.is_file()
    {
        return Err(fail(
            "the report, the audit verification, the release plan or the HTML report failed (see above)",
        ));
    }
    Ok(())
}

/// Each message Slack received: its channel, what happened, and whether a decision replaced it.
fn print_slack(server: &ir_chat::fake::FakeServer) {
    let updated: std::collections::BTreeMap<String, u32> = server
        .slack_messages()
        .into_iter()
        .map(|m| (m.ts, m.updates))
        .collect();
    let posts = server.requests_to(ir_chat::fake::SLACK_POST_PATH);
    let messages = server.slack_messages();
    for (post, message) in posts.iter().filter_map(|p| p.body.as_ref()).zip(&messages) {
        let channel = post["channel"].as_str().unwrap_or_default();
        let headline = post["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .trim_matches('*');
        // No headline: the playbook's own slack:post_message step (ir-notify).
        let headline = if headline.starts_with("*Status") || headline.is_empty() {
            "Incident update (the playbook's notify-channel step)"
        } else {
            headline
        };
        let decided = match updated.get(&message.ts) {
            Some(n) if *n > 0 => "  (buttons replaced: decided)",
            _ => "",
        };
        println!("  {channel:<18} {headline}{decided}");
    }
}

async fn bench(runs: usize) -> Result<()> {
    let mut times = Vec::new();
    let mut transitions = Vec::new();
    for i in 1..=runs {
        let off = Offline::start(Settings::default()).await?;
        let run = story(&off, false).await?;
        println!(
            "run {i}: finding in -> contained {:.3} s, {} state transitions ({})",
            run.delivered_to_contained.as_secs_f64(),
            run.transitions,
            run.incident
        );
        times.push(run.delivered_to_contained);
        transitions.push(run.transitions);
    }
    times.sort();
    transitions.sort_unstable();
    let median = times[times.len() / 2];
    println!(
        "median over {runs} runs: {:.3} s (min {:.3} s, max {:.3} s), {} state transitions",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        transitions[transitions.len() / 2]
    );
    Ok(())
}
