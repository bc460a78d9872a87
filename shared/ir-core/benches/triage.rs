//! Parse + correlate + score per finding, over the samples in `events/`.
//!
//! Target: at most 20 µs per finding on one core of the 2-core reference machine.
//! Also: loading the embedded config (YAML parse, schema validation, typed), which every
//! function that reads the config does once at init.
//! Run: `cargo bench -p ir-core --bench triage`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ir_core::{Engine, IngestOutput, normalize};
use time::OffsetDateTime;

fn samples() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(&p).ok()?,
            ))
        })
        .collect();
    out.sort();
    out
}

/// The whole pipeline for one envelope; returns the number of incidents decided.
fn triage(engine: &Engine, bytes: &[u8]) -> usize {
    let Ok(n) = normalize(bytes) else { return 0 };
    let ingest = IngestOutput::from_normalized(n, OffsetDateTime::UNIX_EPOCH);
    let mut decided = 0;
    for i in &ingest.incidents {
        let en = engine.enrich(&i.events, 1);
        if engine
            .decide(&i.incident_id, &i.events, &en, i.detected_at)
            .is_ok()
        {
            decided += 1;
        }
    }
    decided
}

fn bench(c: &mut Criterion) {
    let Ok(engine) = Engine::embedded() else {
        return;
    };
    let samples = samples();
    let findings: u64 = samples
        .iter()
        .filter_map(|(_, b)| normalize(b).ok())
        .map(|n| (n.events.len() + n.skipped.len()) as u64)
        .sum();
    let mut all = c.benchmark_group("triage");
    all.throughput(Throughput::Elements(findings));
    all.bench_function("all-samples", |b| {
        b.iter(|| {
            samples
                .iter()
                .map(|(_, bytes)| triage(&engine, black_box(bytes)))
                .sum::<usize>()
        })
    });
    all.finish();
    let mut each = c.benchmark_group("per-sample");
    for (name, bytes) in &samples {
        let n = normalize(bytes)
            .map(|n| (n.events.len() + n.skipped.len()) as u64)
            .unwrap_or(1);
        each.throughput(Throughput::Elements(n));
        each.bench_function(name.trim_end_matches(".json"), |b| {
            b.iter(|| triage(&engine, black_box(bytes)))
        });
    }
    each.finish();
}

fn config_load(c: &mut Criterion) {
    let yaml = ir_core::config::DEFAULT_CONFIG_YAML;
    c.bench_function("config-load/embedded", |b| {
        b.iter(|| ir_core::Config::from_yaml(black_box(yaml)).is_ok())
    });
}

criterion_group!(benches, bench, config_load);
criterion_main!(benches);
