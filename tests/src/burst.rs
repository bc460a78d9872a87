//! A burst of findings through the real `ir-ingest`, counted exactly.
//!
//! [`deliveries`] makes `distinct` GuardDuty findings from the bundled sample ([`FINDING_FILE`]),
//! each with its own finding id (32 hex digits) and its own instance (`i-` + 17 hex digits), so
//! that each opens an incident of its own instead of attaching to another's. Each is published
//! `repeats` times, as GuardDuty re-publishes a finding it keeps seeing: the same finding id
//! (what ingest's correlation calls a repeat: the same `guardduty:<account>:<region>:<id>`
//! key), a new envelope id, `service.count` = k and `updatedAt` k seconds on for the k-th
//! publication. The whole list is shuffled with a seeded [`Xoshiro256PlusPlus`] (the same seed,
//! the same order, on any machine).
//!
//! [`run`] delivers them to the suite's `ir-ingest` processes ([`Offline`], started with
//! [`Settings::ingest_instances`] = the concurrency) from `concurrency` clients at once, each
//! taking the next delivery as soon as its previous one is answered, then counts what the suite
//! kept: the incidents table (a paginated scan, then each incident read as the store reads it,
//! its `occurrences` held to `repeats`), the triage state machine's executions (paginated
//! `ListExecutions`, names held to the incident ids), and every invocation's answer: an error
//! answer is what Lambda retries and, after its retries, sends to the ingest dead-letter queue
//! (`EventInvokeConfig.OnFailure` in `template.yaml`). The offline suite invokes `ir-ingest`
//! synchronously through cargo lambda and provisions no dead-letter queue, so no error answer
//! stands for no dead letter.
//!
//! [`record_executions_only`]: the emulator's Step Functions then records each `StartExecution`
//! (name, input, one execution per name, `ExecutionAlreadyExists` for a second start with other
//! input) without running the state machine. A thousand triage executions run for real on moto,
//! which handles one request at a time, would run enrichment, scoring, the recorder and the
//! playbooks against instances that do not exist, and the measurement would be theirs, not
//! ingest's. Turned off on that run's own emulator only, after [`Offline::start`] and before the
//! burst; every report says whether executions ran.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ir_aws::store::IncidentStore;
use ir_aws::store::schema::INCIDENTS;
use ir_core::IngestOutput;
use ir_core::correlate::{self, Correlation};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::localcloud::{ACCOUNT_ID, REGION};
use crate::offline::{FINDING_FILE, Invocation, Offline, OfflineError, Settings, invoke_at};
use crate::repo_root;

type Result<T> = std::result::Result<T, OfflineError>;

fn fail(what: impl std::fmt::Display) -> OfflineError {
    OfflineError(format!("burst: {what}"))
}

/// The function the burst is delivered to.
pub const INGEST: &str = "ir-ingest";

/// Concurrent clients (and `ir-ingest` processes) unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// The sample's identities the burst replaces (see `events/README.md`).
const SAMPLE_ACCOUNT: &str = "111122223333";
const SAMPLE_FINDING_ID: &str = "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1";
const SAMPLE_INSTANCE: &str = "i-0a1b2c3d4e5f60001";

/// How a burst is made and delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Distinct findings, each on its own instance: the incidents expected.
    pub distinct: usize,
    /// Publications of each finding: the occurrences expected on each incident.
    pub repeats: u32,
    /// Clients delivering at once, and `ir-ingest` processes polling.
    pub concurrency: usize,
    /// The shuffle's seed (and part of every finding id).
    pub seed: u64,
}

impl Shape {
    /// Deliveries in all: `distinct × repeats`.
    pub fn deliveries(&self) -> usize {
        self.distinct
            .saturating_mul(usize::try_from(self.repeats).unwrap_or(usize::MAX))
    }

    /// The offline suite for this burst: `concurrency` `ir-ingest` processes, every playbook in
    /// dry-run (the default configuration).
    pub fn settings(&self) -> Settings {
        Settings {
            enforce: Vec::new(),
            ingest_instances: self.concurrency,
            ..Settings::default()
        }
    }
}

/// The `i`-th distinct finding's id: 32 hex digits, the seed's 16 then the index's.
pub fn finding_id(seed: u64, i: usize) -> String {
    format!("{seed:016x}{:016x}", i as u64)
}

/// The `i`-th distinct finding's instance: `i-` + 17 hex digits.
pub fn instance_id(i: usize) -> String {
    format!("i-0b{:015x}", i as u64)
}

/// The incident a finding of the emulated account opens (`inc-` + 20 hex digits of its key).
pub fn incident_for(finding_id: &str) -> String {
    correlate::incident_id(&format!("guardduty:{ACCOUNT_ID}:{REGION}:{finding_id}"))
}

/// One delivery of the burst.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub finding_id: String,
    /// The instance the finding is about.
    pub instance_id: String,
    /// The incident the finding must open or repeat on.
    pub incident_id: String,
    /// Which publication of the finding this is, 1-based (its `service.count`).
    pub publication: u32,
    /// The EventBridge envelope, as the rule delivers it.
    pub envelope: Vec<u8>,
}

/// Every delivery of the burst, shuffled by `shape.seed`; the findings' activity is dated
/// around `now`.
///
/// # Errors
/// The bundled sample is missing or not the envelope it should be.
pub fn deliveries(shape: &Shape, now: OffsetDateTime) -> Result<Vec<Delivery>> {
    let path = repo_root().join(FINDING_FILE);
    let sample = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
    for needle in [SAMPLE_ACCOUNT, SAMPLE_FINDING_ID, SAMPLE_INSTANCE] {
        if !sample.contains(needle) {
            return Err(fail(format!("{FINDING_FILE} does not name {needle}")));
        }
    }
    let at = |t: OffsetDateTime| {
        t.format(&Rfc3339)
            .map_err(|e| fail(format!("formatting {t}: {e}")))
    };
    let created = now - time::Duration::minutes(2);
    let first_seen = now - time::Duration::minutes(5);
    let mut out = Vec::with_capacity(shape.deliveries());
    for i in 0..shape.distinct {
        let finding_id = finding_id(shape.seed, i);
        let incident_id = incident_for(&finding_id);
        let instance_id = instance_id(i);
        let text = sample
            .replace(SAMPLE_ACCOUNT, ACCOUNT_ID)
            .replace(SAMPLE_FINDING_ID, &finding_id)
            .replace(SAMPLE_INSTANCE, &instance_id);
        let finding: Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("parsing {FINDING_FILE}: {e}")))?;
        for k in 1..=shape.repeats {
            let later = time::Duration::seconds(i64::from(k));
            let mut envelope = finding.clone();
            envelope["id"] = json!(envelope_id(shape.seed, i, k));
            envelope["time"] = json!(at(created + later + time::Duration::seconds(3))?);
            let detail = &mut envelope["detail"];
            detail["createdAt"] = json!(at(created)?);
            detail["updatedAt"] = json!(at(created + later)?);
            detail["service"]["count"] = json!(k);
            detail["service"]["eventFirstSeen"] = json!(at(first_seen)?);
            detail["service"]["eventLastSeen"] = json!(at(first_seen + later)?);
            out.push(Delivery {
                finding_id: finding_id.clone(),
                instance_id: instance_id.clone(),
                incident_id: incident_id.clone(),
                publication: k,
                envelope: serde_json::to_vec(&envelope)
                    .map_err(|e| fail(format!("writing an envelope: {e}")))?,
            });
        }
    }
    out.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(shape.seed));
    Ok(out)
}

/// An EventBridge event id (a UUID's shape), one per publication.
fn envelope_id(seed: u64, i: usize, k: u32) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        seed & 0xffff_ffff,
        k & 0xffff,
        (i >> 12) & 0xfff,
        i & 0xfff,
        i as u64
    )
}

/// One delivery's answer.
#[derive(Debug)]
pub struct Answered {
    /// Its index in the delivered list.
    pub index: usize,
    /// From sending the invocation to reading its whole answer.
    pub latency: Duration,
    /// From the start of the burst to this answer.
    pub at: Duration,
    /// The answer, or why there was none.
    pub answer: Result<Invocation>,
}

/// Delivers `deliveries` to `function` on the Lambda Invoke API at `endpoint` from
/// `concurrency` clients, each taking the next delivery once its previous one is answered, and
/// counts each answer in `answered` as it comes (for a progress report). Returns every answer,
/// in delivery order.
pub async fn deliver(
    endpoint: &str,
    function: &str,
    deliveries: &Arc<Vec<Delivery>>,
    concurrency: usize,
    answered: &Arc<AtomicUsize>,
) -> Vec<Answered> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, deliveries) = (Arc::clone(&next), Arc::clone(deliveries));
        let count = Arc::clone(answered);
        let (endpoint, function) = (endpoint.to_owned(), function.to_owned());
        clients.spawn(async move {
            let mut answered = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = deliveries.get(index) else {
                    break;
                };
                let sent = Instant::now();
                let answer = invoke_at(&endpoint, &function, &d.envelope).await;
                answered.push(Answered {
                    index,
                    latency: sent.elapsed(),
                    at: started.elapsed(),
                    answer,
                });
                count.fetch_add(1, Ordering::Relaxed);
            }
            answered
        });
    }
    let mut all = Vec::with_capacity(deliveries.len());
    while let Some(joined) = clients.join_next().await {
        // A client that panicked leaves its deliveries unanswered: [`Answers::answered`] is
        // then short of the deliveries, which [`Report::problems`] says.
        if let Ok(answered) = joined {
            all.extend(answered);
        }
    }
    all.sort_by_key(|a| a.index);
    all
}

/// What the invocations answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// Deliveries with an answer (connection and HTTP included).
    pub answered: usize,
    /// Successful answers.
    pub ok: usize,
    /// Failed deliveries by error name: the function's (`errorType`), or `transport` when no
    /// answer came back. Each is one Lambda would retry and then dead-letter.
    pub errors: BTreeMap<String, usize>,
    /// Correlations the successful answers report.
    pub new: usize,
    pub repeat: usize,
    pub attach: usize,
    /// Correlations naming another incident than the delivery's finding opens.
    pub misrouted: usize,
    /// Successful answers that are not ingest's output.
    pub unreadable: usize,
    /// Invocation latency: median, 95th percentile, slowest.
    pub p50: Duration,
    pub p95: Duration,
    pub max: Duration,
    /// Answers per second over each tenth of the answers, in the order they came: how the rate
    /// moved as the tables filled.
    pub tenths: Vec<f64>,
}

impl Answers {
    /// Tallies `answered` (answers to `deliveries`).
    pub fn tally(deliveries: &[Delivery], answered: &[Answered]) -> Answers {
        let mut a = Answers {
            answered: answered.len(),
            ..Answers::default()
        };
        for one in answered {
            let invocation = match &one.answer {
                Ok(i) => i,
                Err(_) => {
                    *a.errors.entry("transport".to_owned()).or_default() += 1;
                    continue;
                }
            };
            if let Some(name) = &invocation.error {
                *a.errors.entry(name.clone()).or_default() += 1;
                continue;
            }
            if invocation.status != 200 {
                *a.errors
                    .entry(format!("http-{}", invocation.status))
                    .or_default() += 1;
                continue;
            }
            let Ok(output) = serde_json::from_value::<IngestOutput>(invocation.body.clone()) else {
                a.unreadable += 1;
                continue;
            };
            a.ok += 1;
            let expected = deliveries.get(one.index).map(|d| d.incident_id.as_str());
            for c in output.incidents.iter().flat_map(|i| &i.correlations) {
                match c {
                    Correlation::New { .. } => a.new += 1,
                    Correlation::Repeat { .. } => a.repeat += 1,
                    Correlation::Attach { .. } => a.attach += 1,
                }
                if Some(c.incident_id()) != expected {
                    a.misrouted += 1;
                }
            }
        }
        let mut latencies: Vec<Duration> = answered.iter().map(|x| x.latency).collect();
        latencies.sort_unstable();
        let at = |q: usize| {
            let i = (latencies.len() * q / 100).min(latencies.len().saturating_sub(1));
            latencies.get(i).copied().unwrap_or_default()
        };
        a.p50 = at(50);
        a.p95 = at(95);
        a.max = latencies.last().copied().unwrap_or_default();
        a.tenths = tenths(answered);
        a
    }

    /// Failed deliveries in all.
    pub fn failed(&self) -> usize {
        self.errors.values().sum()
    }
}

/// Answers per second over each tenth of `answered`, by when they came.
fn tenths(answered: &[Answered]) -> Vec<f64> {
    let mut at: Vec<Duration> = answered.iter().map(|a| a.at).collect();
    at.sort_unstable();
    let n = at.len();
    if n < 10 {
        return Vec::new();
    }
    let mut rates = Vec::with_capacity(10);
    let mut from = Duration::ZERO;
    let mut done = 0;
    for k in 1..=10 {
        let upto = n * k / 10;
        let Some(until) = at.get(upto - 1).copied() else {
            break;
        };
        let secs = until.saturating_sub(from).as_secs_f64();
        rates.push(if secs > 0.0 {
            (upto - done) as f64 / secs
        } else {
            0.0
        });
        (from, done) = (until, upto);
    }
    rates
}

/// What the suite kept, read back after the burst.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// Items in the incidents table.
    pub incidents: usize,
    /// Expected incidents (one per distinct finding) not in the table.
    pub missing_incidents: Vec<String>,
    /// Incidents in the table no finding of the burst opens.
    pub unexpected_incidents: Vec<String>,
    /// Incidents whose `occurrences` is not `repeats`, with what it is.
    pub occurrences_off: Vec<(String, u64)>,
    /// Incidents whose `finding_count` is not 1, with what it is.
    pub findings_off: Vec<(String, u64)>,
    /// Incidents by status.
    pub statuses: BTreeMap<String, usize>,
    /// Executions of the triage state machine.
    pub executions: usize,
    /// Executions by status (RUNNING when only recorded).
    pub execution_statuses: BTreeMap<String, usize>,
    /// Expected incidents with no triage execution named after them.
    pub missing_executions: Vec<String>,
    /// Triage executions named after no incident of the burst.
    pub unexpected_executions: Vec<String>,
}

/// Reads back what `off` kept of a burst whose findings open `expected` incidents, each
/// delivered `repeats` times.
///
/// # Errors
/// A scan, a read or a listing failed.
pub async fn kept(off: &Offline, expected: &BTreeSet<String>, repeats: u32) -> Result<Kept> {
    let mut k = Kept::default();

    // Every item of the incidents table, by its key (paginated scan).
    let key = INCIDENTS.partition_key.name;
    let mut pages = off
        .clients
        .dynamodb()
        .scan()
        .table_name(&off.names.incidents)
        .projection_expression("#k")
        .expression_attribute_names("#k", key)
        .into_paginator()
        .items()
        .send();
    let mut ids = BTreeSet::new();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| fail(format!("scanning {}: {e:?}", off.names.incidents)))?;
        let id = item
            .get(key)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| fail(format!("an incident item without {key}")))?;
        ids.insert(id.clone());
        k.incidents += 1;
    }
    k.missing_incidents = expected.difference(&ids).cloned().collect();
    k.unexpected_incidents = ids.difference(expected).cloned().collect();

    // Each incident as the store reads it.
    let store = IncidentStore::new(off.clients.clone(), off.names.clone());
    let mut reads = futures_util::stream::iter(ids.iter().cloned())
        .map(|id| {
            let store = store.clone();
            async move { (store.get(&id).await, id) }
        })
        .buffer_unordered(8);
    while let Some((read, id)) = reads.next().await {
        let incident = read
            .map_err(|e| fail(format!("reading incident {id}: {e}")))?
            .ok_or_else(|| fail(format!("incident {id} scanned but not found")))?;
        if incident.occurrences != u64::from(repeats) {
            k.occurrences_off.push((id.clone(), incident.occurrences));
        }
        if incident.finding_count != 1 {
            k.findings_off.push((id.clone(), incident.finding_count));
        }
        *k.statuses
            .entry(incident.summary.status.as_str().to_owned())
            .or_default() += 1;
    }
    k.occurrences_off.sort();
    k.findings_off.sort();

    // Every execution of the triage state machine (paginated ListExecutions).
    let mut executions = off
        .clients
        .sfn()
        .list_executions()
        .state_machine_arn(off.triage_arn())
        .into_paginator()
        .items()
        .send();
    let mut names = BTreeSet::new();
    while let Some(e) = executions.next().await {
        let e = e.map_err(|e| fail(format!("listing the triage executions: {e:?}")))?;
        names.insert(e.name().to_owned());
        *k.execution_statuses
            .entry(e.status().as_str().to_owned())
            .or_default() += 1;
        k.executions += 1;
    }
    k.missing_executions = expected.difference(&names).cloned().collect();
    k.unexpected_executions = names.difference(expected).cloned().collect();
    Ok(k)
}

/// A burst run and what it came to.
#[derive(Debug, Clone)]
pub struct Report {
    pub shape: Shape,
    /// Deliveries made.
    pub deliveries: usize,
    /// From the first delivery sent to the last answer read.
    pub wall: Duration,
    /// Reading back what the suite kept.
    pub counting: Duration,
    /// Whether the triage executions ran (false: recorded only, see
    /// [`record_executions_only`]).
    pub executions_ran: bool,
    pub answers: Answers,
    pub kept: Kept,
}

impl Report {
    /// Deliveries per second of wall time.
    pub fn findings_per_second(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.deliveries as f64 / secs
        } else {
            0.0
        }
    }

    /// Every count that is not exact, said; empty when the burst made exactly one incident and
    /// one triage execution per distinct finding, each incident counting every delivery of its
    /// finding, and every delivery was answered without an error.
    pub fn problems(&self) -> Vec<String> {
        let s = &self.shape;
        let (a, k) = (&self.answers, &self.kept);
        let repeats = usize::try_from(s.repeats).unwrap_or(usize::MAX);
        let mut p = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                p.push(what);
            }
        };
        check(
            a.answered == self.deliveries,
            format!("{} of {} deliveries answered", a.answered, self.deliveries),
        );
        check(
            a.failed() == 0,
            format!(
                "{} deliveries failed (each one Lambda would retry, then dead-letter): {:?}",
                a.failed(),
                a.errors
            ),
        );
        check(
            a.unreadable == 0,
            format!("{} answers are not ingest's output", a.unreadable),
        );
        check(
            a.new == s.distinct,
            format!(
                "{} deliveries opened an incident, expected {}",
                a.new, s.distinct
            ),
        );
        check(
            a.repeat == s.distinct * repeats.saturating_sub(1),
            format!(
                "{} deliveries were repeats, expected {}",
                a.repeat,
                s.distinct * repeats.saturating_sub(1)
            ),
        );
        check(a.attach == 0, format!("{} deliveries attached", a.attach));
        check(
            a.misrouted == 0,
            format!("{} correlations name another incident", a.misrouted),
        );
        check(
            k.incidents == s.distinct,
            format!("{} incidents, expected {}", k.incidents, s.distinct),
        );
        check(
            k.missing_incidents.is_empty() && k.unexpected_incidents.is_empty(),
            format!(
                "incidents missing: {:?}; unexpected: {:?}",
                first(&k.missing_incidents),
                first(&k.unexpected_incidents)
            ),
        );
        check(
            k.occurrences_off.is_empty(),
            format!(
                "{} incidents without {} occurrences, e.g. {:?}",
                k.occurrences_off.len(),
                s.repeats,
                first(&k.occurrences_off)
            ),
        );
        check(
            k.findings_off.is_empty(),
            format!(
                "{} incidents with other than one finding, e.g. {:?}",
                k.findings_off.len(),
                first(&k.findings_off)
            ),
        );
        check(
            k.executions == s.distinct,
            format!(
                "{} triage executions, expected {}",
                k.executions, s.distinct
            ),
        );
        check(
            k.missing_executions.is_empty() && k.unexpected_executions.is_empty(),
            format!(
                "triage executions missing: {:?}; not named after an incident: {:?}",
                first(&k.missing_executions),
                first(&k.unexpected_executions)
            ),
        );
        p
    }

    /// The report as one JSON document.
    pub fn json(&self) -> Value {
        let (a, k) = (&self.answers, &self.kept);
        json!({
            "distinct": self.shape.distinct,
            "repeats": self.shape.repeats,
            "concurrency": self.shape.concurrency,
            "seed": self.shape.seed,
            "deliveries": self.deliveries,
            "wallSeconds": round3(self.wall.as_secs_f64()),
            "findingsPerSecond": round3(self.findings_per_second()),
            "countingSeconds": round3(self.counting.as_secs_f64()),
            "executionsRan": self.executions_ran,
            "latencySeconds": {
                "p50": round3(a.p50.as_secs_f64()),
                "p95": round3(a.p95.as_secs_f64()),
                "max": round3(a.max.as_secs_f64()),
            },
            "findingsPerSecondByTenth": a.tenths.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
            "answers": {
                "answered": a.answered,
                "ok": a.ok,
                "errors": a.errors,
                "new": a.new,
                "repeat": a.repeat,
                "attach": a.attach,
                "misrouted": a.misrouted,
                "unreadable": a.unreadable,
            },
            "incidents": k.incidents,
            "incidentStatuses": k.statuses,
            "incidentsWithOtherOccurrences": k.occurrences_off.len(),
            "triageExecutions": k.executions,
            "executionStatuses": k.execution_statuses,
            "deadLetterQueue": "not provisioned offline: failed deliveries counted from the answers",
            "failedDeliveries": a.failed(),
            "exact": self.problems().is_empty(),
        })
    }
}

fn first<T>(v: &[T]) -> Option<&T> {
    v.first()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Runs a burst on `off` (started with [`Shape::settings`]): executions recorded only, the
/// deliveries made, delivered and timed, then what the suite kept counted.
///
/// # Errors
/// The sample, the emulator's configuration or the read-back failed. Inexact counts are not
/// errors: see [`Report::problems`].
pub async fn run(off: &Offline, shape: Shape) -> Result<Report> {
    run_counting(off, shape, &Arc::new(AtomicUsize::new(0))).await
}

/// [`run`], counting the answers in `answered` as they come.
///
/// # Errors
/// As [`run`].
pub async fn run_counting(
    off: &Offline,
    shape: Shape,
    answered: &Arc<AtomicUsize>,
) -> Result<Report> {
    record_executions_only(off).await?;
    let deliveries = Arc::new(deliveries(&shape, OffsetDateTime::now_utc())?);
    let expected: BTreeSet<String> = deliveries.iter().map(|d| d.incident_id.clone()).collect();
    if expected.len() != shape.distinct {
        return Err(fail(format!(
            "{} distinct findings make {} incident ids",
            shape.distinct,
            expected.len()
        )));
    }
    let started = Instant::now();
    let answered = deliver(
        &off.lambda_endpoint(),
        INGEST,
        &deliveries,
        shape.concurrency,
        answered,
    )
    .await;
    let wall = started.elapsed();
    let answers = Answers::tally(&deliveries, &answered);
    let counting = Instant::now();
    let kept = kept(off, &expected, shape.repeats).await?;
    Ok(Report {
        shape,
        deliveries: deliveries.len(),
        wall,
        counting: counting.elapsed(),
        executions_ran: false,
        answers,
        kept,
    })
}

/// Turns Step Functions execution off on `off`'s emulator: from now on `StartExecution` records
/// an execution (RUNNING, never run) instead of running the state machine. The emulator keeps
/// the two modes' state machines apart, so the triage state machine is created again, with its
/// definition, role and name (hence its ARN, the one `ir-ingest` starts), on the recording side.
///
/// # Errors
/// The emulator refused the configuration, or the triage state machine could not be created
/// again under the same ARN.
pub async fn record_executions_only(off: &Offline) -> Result<()> {
    let sfn = off.clients.sfn();
    let triage = off.triage_arn();
    let described = sfn
        .describe_state_machine()
        .state_machine_arn(triage)
        .send()
        .await
        .map_err(|e| fail(format!("describing {triage}: {e:?}")))?;
    post_json(
        off.cloud.endpoint_url(),
        "/moto-api/config",
        &json!({"stepfunctions": {"execute_state_machine": false}}),
    )
    .await?;
    // The recording side starts empty: the triage state machine still found means the switch
    // did not take (the emulator's answer does not echo the Step Functions setting).
    match sfn
        .describe_state_machine()
        .state_machine_arn(triage)
        .send()
        .await
    {
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_state_machine_does_not_exist()) => {}
        Ok(_) => {
            return Err(fail(
                "the emulator still executes state machines after the configuration change",
            ));
        }
        Err(e) => return Err(fail(format!("describing {triage}: {e:?}"))),
    }
    let created = sfn
        .create_state_machine()
        .name(described.name())
        .definition(described.definition())
        .role_arn(described.role_arn())
        .send()
        .await
        .map_err(|e| fail(format!("creating {} again: {e:?}", described.name())))?;
    if created.state_machine_arn() != triage {
        return Err(fail(format!(
            "the triage state machine came back as {}, not {triage}",
            created.state_machine_arn()
        )));
    }
    Ok(())
}

/// `POST <endpoint><path>` with a JSON body; the answer's JSON body.
async fn post_json(endpoint: &str, path: &str, body: &Value) -> Result<Value> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| fail(format!("connecting to {addr}: {e}")))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .await
        .map_err(|e| fail(format!("POST {path}: {e}")))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| fail(format!("reading the answer to POST {path}: {e}")))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, answer) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail(format!("POST {path}: not an HTTP answer")))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        return Err(fail(format!("POST {path}: {head}")));
    }
    serde_json::from_str(answer).map_err(|e| fail(format!("POST {path} answered {answer:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            distinct: 30,
            repeats: 4,
            concurrency: 8,
            seed: 7,
        }
    }

    #[test]
    fn the_rate_is_taken_per_tenth_of_the_answers_in_the_order_they_came() {
        // Twenty answers: the first ten one a second, the last ten two a second.
        let answered: Vec<Answered> = (0..20u64)
            .map(|i| Answered {
                index: usize::try_from(19 - i).unwrap(),
                latency: Duration::ZERO,
                at: if i < 10 {
                    Duration::from_secs(i + 1)
                } else {
                    Duration::from_millis(10_000 + 500 * (i - 9))
                },
                answer: Err(fail("not sent")),
            })
            .collect();
        let rates = tenths(&answered);
        assert_eq!(rates.len(), 10);
        for r in &rates[..5] {
            assert!((r - 1.0).abs() < 1e-9, "{rates:?}");
        }
        for r in &rates[5..] {
            assert!((r - 2.0).abs() < 1e-9, "{rates:?}");
        }
        assert!(tenths(&answered[..9]).is_empty());
    }

    #[test]
    fn ids_have_guardduty_and_ec2_shapes_and_are_distinct() {
        let ids: BTreeSet<String> = (0..1000).map(|i| finding_id(7, i)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let instances: BTreeSet<String> = (0..1000).map(instance_id).collect();
        assert_eq!(instances.len(), 1000);
        assert!(instances.iter().all(|i| {
            i.len() == 19 && i.starts_with("i-") && i[2..].bytes().all(|b| b.is_ascii_hexdigit())
        }));
    }

    #[test]
    fn each_finding_is_published_repeats_times_shuffled_the_same_way_by_the_same_seed() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let a = deliveries(&shape(), now).unwrap();
        assert_eq!(a.len(), 120);
        let mut per_finding: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for d in &a {
            per_finding
                .entry(&d.finding_id)
                .or_default()
                .push(d.publication);
        }
        assert_eq!(per_finding.len(), 30);
        for publications in per_finding.values() {
            let mut p = publications.clone();
            p.sort_unstable();
            assert_eq!(p, vec![1, 2, 3, 4]);
        }
        let order = |ds: &[Delivery]| {
            ds.iter()
                .map(|d| (d.finding_id.clone(), d.publication))
                .collect::<Vec<_>>()
        };
        let b = deliveries(&shape(), now).unwrap();
        assert_eq!(order(&a), order(&b));
        let other = deliveries(&Shape { seed: 8, ..shape() }, now).unwrap();
        let unshuffled: Vec<(String, u32)> = (0..30)
            .flat_map(|i| (1..=4).map(move |k| (finding_id(7, i), k)))
            .collect();
        assert_ne!(order(&a), unshuffled);
        assert_ne!(
            order(&a).iter().map(|(_, k)| *k).collect::<Vec<_>>(),
            order(&other).iter().map(|(_, k)| *k).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_publication_normalizes_to_its_finding_on_its_instance_as_a_repeat_would() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let all = deliveries(&shape(), now).unwrap();
        let d = all.iter().find(|d| d.publication == 3).unwrap();
        let normalized = ir_core::normalize(&d.envelope).unwrap();
        let event = &normalized.events[0];
        assert_eq!(event.finding_id, d.finding_id);
        assert_eq!(
            event.finding_key,
            format!("guardduty:{ACCOUNT_ID}:{REGION}:{}", d.finding_id)
        );
        assert_eq!(correlate::incident_id(&event.finding_key), d.incident_id);
        assert_eq!(event.count, 3);
        assert_eq!(event.resource.id(), d.instance_id);
        let instances: BTreeSet<&str> = all.iter().map(|x| x.instance_id.as_str()).collect();
        assert_eq!(instances.len(), 30, "one instance per distinct finding");
        let raw = String::from_utf8(d.envelope.clone()).unwrap();
        for sample in [SAMPLE_ACCOUNT, SAMPLE_FINDING_ID, SAMPLE_INSTANCE] {
            assert!(!raw.contains(sample), "{sample} left in the envelope");
        }
    }
}
