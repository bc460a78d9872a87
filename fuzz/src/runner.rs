//! Running cases: each in `catch_unwind`, spread over threads, counted per target; a panic or
//! a broken property is a crasher, reproducible from (target, seed, index) and written to a
//! file; a case that runs too long is reported by a watchdog that ends the process
//! ([`HANG_EXIT`]), its input written like a crasher's.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::targets::run::Parsed;
use crate::targets::{Pool, Target};

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The parser read the input, and what the suite does next with the result ran.
    Accepted,
    /// The parser refused the input with a typed error.
    Refused,
    /// The parser returned, but its result broke a property.
    Violation(String),
    /// The parser (or the generator) panicked, with the message and location.
    Panic(String),
}

impl Verdict {
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Violation(_) | Verdict::Panic(_))
    }
}

thread_local! {
    /// Set while a case runs: the panic hook records the message here instead of printing it.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps quiet inside a case and records what panicked,
/// and leaves every other panic (a test's failed assertion) to the default hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let inside = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        let message = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "(no message)".to_owned());
                        let at = info
                            .location()
                            .map(|l| format!(" at {}:{}", l.file(), l.line()))
                            .unwrap_or_default();
                        *slot = Some(format!("{message}{at}"));
                        true
                    }
                    None => false,
                }
            });
            if !inside {
                default(info);
            }
        }));
    });
}

/// Runs `f` as one case: what it returned, or the message of the panic it raised.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let caught = CAUGHT.with(|c| c.borrow_mut().take()).flatten();
    result.map_err(|_| caught.unwrap_or_else(|| "(no message)".to_owned()))
}

/// The input of case `index` of `target` under `seed`.
pub fn input(target: &Target, pool: &Pool, seed: u64, index: u64) -> Result<Vec<u8>, String> {
    guarded(|| {
        let mut rng = Rng::for_case(target.name, seed, index);
        (target.generate)(&mut rng, pool)
    })
    .map_err(|why| format!("the generator panicked: {why}"))
}

/// Runs a target's parser on one input.
pub fn check(target: &Target, input: &[u8]) -> Verdict {
    match guarded(|| (target.run)(input)) {
        Ok(Ok(Parsed::Accepted)) => Verdict::Accepted,
        Ok(Ok(Parsed::Refused)) => Verdict::Refused,
        Ok(Err(why)) => Verdict::Violation(why),
        Err(why) => Verdict::Panic(why),
    }
}

/// A crasher: what failed, and how to make it again.
#[derive(Debug, Clone)]
pub struct Crasher {
    pub target: &'static str,
    pub seed: u64,
    pub index: u64,
    pub verdict: Verdict,
    /// Where its input was written, if it was.
    pub file: Option<PathBuf>,
}

/// One target's counts.
#[derive(Debug, Default)]
pub struct Tally {
    pub cases: AtomicU64,
    /// Nanoseconds spent in this target's cases, over all threads.
    pub busy_nanos: AtomicU64,
    pub accepted: AtomicU64,
    pub failures: AtomicU64,
}

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<&'static Target>,
    pub cases: u64,
    pub seed: u64,
    pub jobs: usize,
    /// Where crashers are written (`None`: not written).
    pub crashers: Option<PathBuf>,
    /// A case running longer than this stops the run as a hang.
    pub timeout: Duration,
    /// Print the cases done to stderr every this often (`None`: quiet).
    pub progress: Option<Duration>,
}

/// One target's part of a run.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub name: &'static str,
    pub cases: u64,
    /// Thread time spent in its cases.
    pub busy: Duration,
    /// Cases the parser accepted (the rest it refused, or they failed).
    pub accepted: u64,
    pub failures: u64,
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub per_target: Vec<TargetReport>,
    pub total: u64,
    pub wall: Duration,
    pub crashers: Vec<Crasher>,
}

/// The exit code of a run stopped by a case that hung.
pub const HANG_EXIT: i32 = 3;

/// How many cases each target gets: `cases` split by share, at least one each.
pub fn split(targets: &[&'static Target], cases: u64) -> Vec<u64> {
    let total: u64 = targets
        .iter()
        .map(|t| u64::from(t.share))
        .sum::<u64>()
        .max(1);
    let mut out: Vec<u64> = targets
        .iter()
        .map(|t| (cases.saturating_mul(u64::from(t.share)) / total).max(1))
        .collect();
    // The rounding remainder goes to the first target.
    let given: u64 = out.iter().sum();
    if let Some(first) = out.first_mut()
        && given < cases
    {
        *first += cases - given;
    }
    out
}

/// The file a crasher's input is written to: `<target>.s<seed>.i<index>.case`.
pub fn crasher_file(dir: &Path, target: &str, seed: u64, index: u64) -> PathBuf {
    dir.join(format!("{target}.s{seed}.i{index}.case"))
}

/// The target a crasher file belongs to: its name up to the first dot.
pub fn target_of_file(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.split('.').next()
}

const CHUNK: u64 = 512;
/// At most this many crasher files per target (the count goes on).
const MAX_FILES_PER_TARGET: usize = 5;

/// Runs the plan.
pub fn run(plan: &Plan) -> Report {
    let started = Instant::now();
    let pools: Vec<Pool> = plan.targets.iter().map(|t| Pool::of(t)).collect();
    let counts = split(&plan.targets, plan.cases);
    // Work: (target, first index, end) chunks, interleaved so every target progresses.
    let mut chunks: Vec<(usize, u64, u64)> = Vec::new();
    let mut next: Vec<u64> = vec![0; counts.len()];
    loop {
        let mut added = false;
        for (t, n) in counts.iter().enumerate() {
            let Some(from) = next.get_mut(t) else {
                continue;
            };
            if *from < *n {
                let to = (*from + CHUNK).min(*n);
                chunks.push((t, *from, to));
                *from = to;
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    let tallies: Vec<Tally> = plan.targets.iter().map(|_| Tally::default()).collect();
    let cursor = AtomicUsize::new(0);
    let crashers: Mutex<Vec<Crasher>> = Mutex::new(Vec::new());
    let jobs = plan.jobs.max(1);
    // Per worker: when its case started (ms since `started`, 0 = idle), which target, which index.
    let slots: Arc<Vec<(AtomicU64, AtomicUsize, AtomicU64)>> = Arc::new(
        (0..jobs)
            .map(|_| (AtomicU64::new(0), AtomicUsize::new(0), AtomicU64::new(0)))
            .collect(),
    );
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for w in 0..jobs {
            let (chunks, cursor, tallies, crashers, pools, slots) = (
                &chunks,
                &cursor,
                &tallies,
                &crashers,
                &pools,
                Arc::clone(&slots),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("fuzz-{w}"))
                // A main thread's stack: a parser that needs more overflows in production too.
                .stack_size(8 << 20)
                .spawn_scoped(s, move || {
                    loop {
                        let c = cursor.fetch_add(1, Ordering::Relaxed);
                        let Some(&(t, from, to)) = chunks.get(c) else {
                            break;
                        };
                        let (Some(target), Some(pool), Some(tally)) =
                            (plan.targets.get(t), pools.get(t), tallies.get(t))
                        else {
                            break;
                        };
                        let began = Instant::now();
                        for index in from..to {
                            if let Some(slot) = slots.get(w) {
                                slot.1.store(t, Ordering::Relaxed);
                                slot.2.store(index, Ordering::Relaxed);
                                let ms = u64::try_from(started.elapsed().as_millis())
                                    .unwrap_or(u64::MAX);
                                slot.0.store(ms.max(1), Ordering::Relaxed);
                            }
                            let verdict = match input(target, pool, plan.seed, index) {
                                Ok(bytes) => (check(target, &bytes), Some(bytes)),
                                Err(why) => (Verdict::Panic(why), None),
                            };
                            if verdict.0 == Verdict::Accepted {
                                tally.accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            if let (v, bytes) = verdict
                                && v.is_failure()
                            {
                                tally.failures.fetch_add(1, Ordering::Relaxed);
                                let mut all = crashers.lock().unwrap_or_else(|p| p.into_inner());
                                let written =
                                    all.iter().filter(|c| c.target == target.name).count();
                                let file = match (&plan.crashers, bytes) {
                                    (Some(dir), Some(bytes)) if written < MAX_FILES_PER_TARGET => {
                                        let path = crasher_file(dir, target.name, plan.seed, index);
                                        std::fs::create_dir_all(dir)
                                            .and_then(|()| std::fs::write(&path, bytes))
                                            .ok()
                                            .map(|()| path)
                                    }
                                    _ => None,
                                };
                                all.push(Crasher {
                                    target: target.name,
                                    seed: plan.seed,
                                    index,
                                    verdict: v,
                                    file,
                                });
                            }
                        }
                        if let Some(slot) = slots.get(w) {
                            slot.0.store(0, Ordering::Relaxed);
                        }
                        tally.cases.fetch_add(to - from, Ordering::Relaxed);
                        let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        tally.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
                    }
                });
            if spawned.is_err() {
                break;
            }
        }
        // The watchdog: a case past the timeout is a hang; the run stops there.
        let watchdog = s.spawn(|| {
            let limit = u64::try_from(plan.timeout.as_millis()).unwrap_or(u64::MAX);
            let mut said = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if let Some(every) = plan.progress
                    && said.elapsed() >= every
                {
                    said = Instant::now();
                    let n: u64 = tallies
                        .iter()
                        .map(|t| t.cases.load(Ordering::Relaxed))
                        .sum();
                    eprintln!(
                        "ir-fuzz: {n} of {} cases, {:.0} s",
                        plan.cases,
                        started.elapsed().as_secs_f64()
                    );
                }
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                for slot in slots.iter() {
                    let since = slot.0.load(Ordering::Relaxed);
                    if since != 0 && now.saturating_sub(since) > limit {
                        return Some((
                            slot.1.load(Ordering::Relaxed),
                            slot.2.load(Ordering::Relaxed),
                        ));
                    }
                }
                if cursor.load(Ordering::Relaxed) >= chunks.len()
                    && slots.iter().all(|s| s.0.load(Ordering::Relaxed) == 0)
                {
                    return None;
                }
            }
            None
        });
        if let Ok(Some((t, index))) = watchdog.join()
            && let (Some(target), Some(pool)) = (plan.targets.get(t), pools.get(t))
        {
            // The stuck thread cannot be stopped, and the scope would wait for it: say what
            // hung and where its input is, and end the process.
            let file = match (&plan.crashers, input(target, pool, plan.seed, index)) {
                (Some(dir), Ok(bytes)) => {
                    let path = crasher_file(dir, target.name, plan.seed, index);
                    std::fs::create_dir_all(dir)
                        .and_then(|()| std::fs::write(&path, bytes))
                        .ok()
                        .map(|()| path.display().to_string())
                }
                _ => None,
            };
            eprintln!(
                "HANG target={} seed={} index={} ran over {:?}; input: {}",
                target.name,
                plan.seed,
                index,
                plan.timeout,
                file.as_deref().unwrap_or("(not written)")
            );
            std::process::exit(HANG_EXIT);
        }
        done.store(true, Ordering::Relaxed);
    });
    let per_target = plan
        .targets
        .iter()
        .zip(&tallies)
        .map(|(t, tally)| TargetReport {
            name: t.name,
            cases: tally.cases.load(Ordering::Relaxed),
            busy: Duration::from_nanos(tally.busy_nanos.load(Ordering::Relaxed)),
            accepted: tally.accepted.load(Ordering::Relaxed),
            failures: tally.failures.load(Ordering::Relaxed),
        })
        .collect::<Vec<_>>();
    let total = per_target.iter().map(|t| t.cases).sum();
    Report {
        per_target,
        total,
        wall: started.elapsed(),
        crashers: crashers.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}
