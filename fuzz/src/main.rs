//! `ir-fuzz`: runs fuzz cases over the suite's parsers.
//!
//! ```text
//! ir-fuzz [--cases N] [--seed S] [--target NAME|all] [--jobs J] [--timeout SECS]
//!         [--crashers DIR | --no-crashers]
//! ir-fuzz --target NAME --seed S --index I      one case again: its input on stdout, its verdict
//! ir-fuzz --replay FILE [--target NAME]          a crasher file (target from its name)
//! ir-fuzz --list                                 the targets, their shares and seeds
//! ```
//!
//! Prints per target the cases, the thread time they took, cases per second (per thread) and
//! the share of cases the parser accepted (the rest it refused), then the total and the wall
//! time; each crasher as (target, seed, index) with its file.
//! Exit 0 when nothing failed, 1 on any panic or broken property, 2 on a usage error, 3 when
//! a case hung.

// A command-line tool: its output is its interface.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ir_fuzz::runner::{self, Plan, Verdict};
use ir_fuzz::targets::{self, Pool, TARGETS, Target};

#[derive(Debug)]
struct Args {
    cases: u64,
    seed: u64,
    target: String,
    jobs: usize,
    timeout: u64,
    crashers: Option<PathBuf>,
    index: Option<u64>,
    replay: Option<PathBuf>,
    list: bool,
}

const USAGE: &str = "usage: ir-fuzz [--cases N] [--seed S] [--target NAME|all] [--jobs J] \
[--timeout SECS] [--crashers DIR | --no-crashers] | --target NAME --seed S --index I | \
--replay FILE [--target NAME] | --list";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        cases: 100_000,
        seed: 1,
        target: "all".to_owned(),
        jobs: std::thread::available_parallelism().map_or(1, usize::from),
        timeout: 10,
        crashers: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crashers"
        ))),
        index: None,
        replay: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--cases" => a.cases = number(value()?)?,
            "--seed" => a.seed = number(value()?)?,
            "--target" => a.target = value()?,
            "--jobs" => {
                a.jobs = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?;
            }
            "--timeout" => a.timeout = number(value()?)?,
            "--crashers" => a.crashers = Some(PathBuf::from(value()?)),
            "--no-crashers" => a.crashers = None,
            "--index" => a.index = Some(number(value()?)?),
            "--replay" => a.replay = Some(PathBuf::from(value()?)),
            "--list" => a.list = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

fn selected(name: &str) -> Result<Vec<&'static Target>, String> {
    if name == "all" {
        return Ok(TARGETS.iter().collect());
    }
    name.split(',')
        .map(|n| {
            targets::find(n).ok_or_else(|| {
                let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
                format!("no target `{n}` (targets: {})", names.join(", "))
            })
        })
        .collect()
}

fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Accepted => "ok (accepted)".to_owned(),
        Verdict::Refused => "ok (refused with a typed error)".to_owned(),
        Verdict::Violation(why) => format!("property broken: {why}"),
        Verdict::Panic(why) => format!("PANIC: {why}"),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for t in TARGETS {
            let pool = Pool::of(t);
            println!(
                "{:<22} share {:>3}  seeds {:>3}",
                t.name,
                t.share,
                pool.seeds.len()
            );
        }
        return ExitCode::SUCCESS;
    }
    if let Some(file) = &args.replay {
        return replay(file, &args.target);
    }
    let targets = match selected(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(index) = args.index {
        return one_case(&targets, args.seed, index);
    }
    let plan = Plan {
        targets,
        cases: args.cases,
        seed: args.seed,
        jobs: args.jobs,
        crashers: args.crashers,
        timeout: Duration::from_secs(args.timeout),
        progress: Some(Duration::from_secs(60)),
    };
    println!(
        "ir-fuzz: {} cases over {} targets, seed {}, {} threads",
        plan.cases,
        plan.targets.len(),
        plan.seed,
        plan.jobs
    );
    let report = runner::run(&plan);
    println!(
        "{:<22} {:>11} {:>9} {:>9} {:>9} {:>7}",
        "target", "cases", "thread s", "cases/s", "accepted", "failed"
    );
    for t in &report.per_target {
        let secs = t.busy.as_secs_f64();
        let rate = if secs > 0.0 {
            t.cases as f64 / secs
        } else {
            0.0
        };
        let accepted = if t.cases > 0 {
            100.0 * t.accepted as f64 / t.cases as f64
        } else {
            0.0
        };
        println!(
            "{:<22} {:>11} {secs:>9.1} {rate:>9.0} {accepted:>8.1}% {:>7}",
            t.name, t.cases, t.failures
        );
    }
    let wall = report.wall.as_secs_f64();
    println!(
        "total {} cases in {:.1} s wall ({:.0} cases/s), {} crashers",
        report.total,
        wall,
        if wall > 0.0 {
            report.total as f64 / wall
        } else {
            0.0
        },
        report.crashers.len()
    );
    for c in &report.crashers {
        println!(
            "CRASHER target={} seed={} index={} file={}\n  {}",
            c.target,
            c.seed,
            c.index,
            c.file
                .as_ref()
                .map_or_else(|| "(not written)".to_owned(), |p| p.display().to_string()),
            describe(&c.verdict)
        );
    }
    if report.crashers.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One case again: its input on stdout, its verdict on stderr.
fn one_case(targets: &[&'static Target], seed: u64, index: u64) -> ExitCode {
    let [target] = targets else {
        eprintln!("--index needs exactly one --target");
        return ExitCode::from(2);
    };
    let pool = Pool::of(target);
    let bytes = match runner::input(target, &pool, seed, index) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::io::stdout().write_all(&bytes);
    let verdict = runner::check(target, &bytes);
    eprintln!("\n{}", describe(&verdict));
    if verdict.is_failure() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A crasher file through its target.
fn replay(file: &std::path::Path, target: &str) -> ExitCode {
    let name = if target == "all" {
        runner::target_of_file(file).unwrap_or_default()
    } else {
        target
    };
    let Some(t) = targets::find(name) else {
        eprintln!("no target `{name}` for {}", file.display());
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let verdict = runner::check(t, &bytes);
    println!("{} {}: {}", t.name, file.display(), describe(&verdict));
    if verdict.is_failure() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
