//! The fuzz harness as a test: a few hundred cases of every target, and every crasher ever
//! found (`fuzz/crashers/*.case`) replayed as a regression case.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ir_fuzz::runner::{self, Plan, Verdict};
use ir_fuzz::targets::{self, Pool, TARGETS};

fn crashers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crashers")
}

/// Replays one crasher file through the target its name starts with.
fn replay(path: &Path) -> Result<(), String> {
    let name = runner::target_of_file(path).ok_or("no target in the file name")?;
    let target = targets::find(name).ok_or_else(|| format!("no target `{name}`"))?;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    match runner::check(target, &bytes) {
        Verdict::Violation(why) => Err(format!("property broken: {why}")),
        Verdict::Panic(why) => Err(format!("panic: {why}")),
        Verdict::Accepted | Verdict::Refused => Ok(()),
    }
}

#[test]
fn every_target_has_seeds() {
    for t in TARGETS {
        assert!(
            !Pool::of(t).seeds.is_empty(),
            "target {} has no seeds",
            t.name
        );
    }
}

/// The payload seeds are payloads the functions accept: mutation starts from the real shape.
#[test]
fn every_payload_seed_is_accepted() {
    for name in [
        "enrich-payload",
        "score-payload",
        "record-payload",
        "approval-payload",
        "containment-payload",
        "evidence-payload",
        "notify-payload",
    ] {
        let t = targets::find(name).unwrap();
        for seed in Pool::of(t).seeds {
            let verdict = runner::check(t, &seed.bytes);
            assert_eq!(verdict, Verdict::Accepted, "{name} seed from {}", seed.name);
        }
    }
}

#[test]
fn a_case_is_the_same_input_every_time() {
    for t in TARGETS {
        let pool = Pool::of(t);
        for index in [0, 1, 977] {
            let a = runner::input(t, &pool, 42, index).unwrap();
            let b = runner::input(t, &pool, 42, index).unwrap();
            assert_eq!(a, b, "{} case {index}", t.name);
        }
        let differ = (0..20)
            .filter(|i| runner::input(t, &pool, 42, *i).unwrap() != pool.seeds[0].bytes)
            .count();
        assert!(differ > 10, "{}: the cases are mostly the seed", t.name);
    }
}

/// A few hundred cases per target (sixty of the config, whose schema pass is the slowest):
/// no panic, every property holds.
#[test]
fn every_target_holds_on_a_few_hundred_cases() {
    let mut failures = Vec::new();
    for t in TARGETS {
        let plan = Plan {
            targets: vec![t],
            cases: if t.name == "config" { 60 } else { 800 },
            seed: 20_261_120,
            jobs: 2,
            crashers: None,
            timeout: Duration::from_secs(60),
            progress: None,
        };
        let report = runner::run(&plan);
        assert_eq!(report.total, plan.cases, "{}", t.name);
        // The mutations keep some cases readable: the parser's depths are reached.
        let accepted = report.per_target.iter().map(|r| r.accepted).sum::<u64>();
        assert!(accepted > 0, "{}: no case was accepted", t.name);
        failures.extend(report.crashers.into_iter().map(|c| {
            format!(
                "{} seed {} index {}: {:?} (ir-fuzz --target {} --seed {} --index {})",
                c.target, c.seed, c.index, c.verdict, c.target, c.seed, c.index
            )
        }));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every crasher found stays fixed.
#[test]
fn every_crasher_file_is_a_regression_case() {
    let Ok(entries) = std::fs::read_dir(crashers_dir()) else {
        return;
    };
    let mut failed = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().and_then(|e| e.to_str()) != Some("case") {
            continue;
        }
        if let Err(why) = replay(&path) {
            failed.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// GuardDuty `launchTime` -62167219201 (epoch seconds): year -1, which `time` holds and RFC 3339
/// cannot write, so the ingest output did not serialize. Fixed in `ir_core::lenient`
/// (`LenientTime` refuses it); `ir-fuzz --target guardduty --seed 1 --index 37000`.
#[test]
fn crasher_guardduty_launch_time_in_year_minus_one() {
    replay(&crashers_dir().join("guardduty.s1.i37000.case")).unwrap();
}

/// The same `launchTime` through ir-ingest's payload path (`Checked<EventBridgeEvent<_>>`,
/// `normalize_detail`); `ir-fuzz --target ingest-payload --seed 1 --index 94115`.
#[test]
fn crasher_ingest_payload_launch_time_in_year_minus_one() {
    replay(&crashers_dir().join("ingest-payload.s1.i94115.case")).unwrap();
}
