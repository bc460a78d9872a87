//! `ir-burst`: a burst of GuardDuty findings through the real `ir-ingest` on the local cloud,
//! counted exactly ([`ir_tests::burst`]).
//!
//! `ir-burst [--distinct N] [--repeats R] [--concurrency C] [--seed S]` (defaults 1000, 10, 8,
//! 1): N distinct findings, each on its own instance, each published R times, shuffled by S,
//! delivered by C clients at once to C `ir-ingest` processes. The emulator records the triage
//! executions without running them (said in the output). Prints what it does, the wall time and
//! findings per second (overall and over each tenth of the answers), the counts, then one line
//! `RESULT <json>`; progress every 30 s on stderr. Exit 0 when every count is exact, 1 when one
//! is not (each named), 2 on bad usage, 3 when the run could not be made.

// A terminal program: what it prints is its output (the functions' telemetry goes to their logs).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ir_tests::burst::{self, DEFAULT_CONCURRENCY, Report, Shape};
use ir_tests::offline::Offline;

const USAGE: &str =
    "usage: ir-burst [--distinct N] [--repeats R] [--concurrency C] [--seed S] (each at least 1)";

fn parse(args: &[String]) -> Option<Shape> {
    let mut shape = Shape {
        distinct: 1000,
        repeats: 10,
        concurrency: DEFAULT_CONCURRENCY,
        seed: 1,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next()?;
        match flag.as_str() {
            "--distinct" => shape.distinct = value.parse().ok().filter(|n| *n > 0)?,
            "--repeats" => shape.repeats = value.parse().ok().filter(|n| *n > 0)?,
            "--concurrency" => shape.concurrency = value.parse().ok().filter(|n| *n > 0)?,
            "--seed" => shape.seed = value.parse().ok()?,
            _ => return None,
        }
    }
    Some(shape)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let Some(shape) = parse(&args) else {
        eprintln!("ir-burst: {USAGE}");
        return ExitCode::from(2);
    };
    println!(
        "burst: {} distinct findings x {} publications = {} deliveries, shuffled (seed {}), \
         {} concurrent clients, {} ir-ingest processes",
        shape.distinct,
        shape.repeats,
        shape.deliveries(),
        shape.seed,
        shape.concurrency,
        shape.concurrency
    );
    println!("machine: {}", machine());
    let starting = Instant::now();
    let off = match Offline::start(shape.settings()).await {
        Ok(off) => off,
        Err(e) => {
            eprintln!("ir-burst: {e}");
            return ExitCode::from(3);
        }
    };
    println!(
        "local cloud up in {:.1} s (function logs in {})",
        starting.elapsed().as_secs_f64(),
        off.run_dir.display()
    );
    println!(
        "step functions: executions recorded, not run (the emulator's execute_state_machine \
         turned off for this run): StartExecution is what is counted"
    );
    // What the emulator's process said of itself when `scripts/bench/burst` changed it.
    for line in off.cloud.stderr_tail().lines() {
        if let Some(said) = line.strip_prefix("burst: ") {
            println!("emulator: {said}");
        }
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let progress = tokio::spawn(progress(Arc::clone(&answered), shape.deliveries()));
    let report = burst::run_counting(&off, shape, &answered).await;
    progress.abort();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ir-burst: {e}");
            return ExitCode::from(3);
        }
    };
    print_report(&report);
    let problems = report.problems();
    println!("RESULT {}", report.json());
    if problems.is_empty() {
        println!("exact: yes");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("NOT EXACT: {p}");
        }
        ExitCode::FAILURE
    }
}

/// Every 30 seconds on stderr: how many deliveries are answered, and the rate since the last
/// report.
async fn progress(answered: Arc<AtomicUsize>, of: usize) {
    const EVERY: Duration = Duration::from_secs(30);
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    let mut before = 0;
    loop {
        ticks.tick().await;
        let now = answered.load(Ordering::Relaxed);
        eprintln!(
            "ir-burst: {now} of {of} answered after {:.0} s ({:.1}/s over the last {} s)",
            started.elapsed().as_secs_f64(),
            (now - before.min(now)) as f64 / EVERY.as_secs_f64(),
            EVERY.as_secs()
        );
        before = now;
    }
}

fn print_report(r: &Report) {
    let (a, k) = (&r.answers, &r.kept);
    println!(
        "delivered: {} in {:.1} s = {:.1} findings/s (invocation latency p50 {:.3} s, p95 {:.3} s, \
         max {:.3} s)",
        r.deliveries,
        r.wall.as_secs_f64(),
        r.findings_per_second(),
        a.p50.as_secs_f64(),
        a.p95.as_secs_f64(),
        a.max.as_secs_f64()
    );
    let tenths: Vec<String> = a.tenths.iter().map(|t| format!("{t:.1}")).collect();
    println!(
        "findings/s over each tenth of the answers, first to last: {}",
        tenths.join(" ")
    );
    println!(
        "answers: {} answered, {} ok, {} failed {:?}; correlations: {} new, {} repeat, {} attach",
        a.answered,
        a.ok,
        a.failed(),
        a.errors,
        a.new,
        a.repeat,
        a.attach
    );
    println!(
        "incidents: {} (expected {}), {} without {} occurrences, by status {:?}",
        k.incidents,
        r.shape.distinct,
        k.occurrences_off.len(),
        r.shape.repeats,
        k.statuses
    );
    println!(
        "triage executions: {} (expected {}), {} incidents without one, {} not named after an \
         incident, by status {:?}",
        k.executions,
        r.shape.distinct,
        k.missing_executions.len(),
        k.unexpected_executions.len(),
        k.execution_statuses
    );
    println!(
        "dead letters: the local cloud has no dead-letter queue (ir-ingest is invoked \
         synchronously); failed deliveries, which Lambda would retry and then dead-letter: {}",
        a.failed()
    );
    println!("counted in {:.1} s", r.counting.as_secs_f64());
}

/// The cores this process may use and the load average when it started (other work on the
/// machine shares them).
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let parts: Vec<&str> = l.split_whitespace().take(3).collect();
            (parts.len() == 3).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{cores} cores, load average {load}")
}
