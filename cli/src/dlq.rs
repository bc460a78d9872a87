//! `ir dlq list|redrive`: the ingest dead-letter queue, read and drained back into `ir-ingest`.
//!
//! Two producers share the queue (`IngestDeadLetterQueue`): the findings rules, when EventBridge
//! could not deliver an event to `ir-ingest`, and `ir-ingest`'s asynchronous-invocation
//! `OnFailure` destination, when the function failed every attempt. Each message is read by
//! [`ir_core::dead_letter::parse`]; a message of neither shape is `unrecognized`: listed, never
//! redriven, never deleted.
//!
//! `ir dlq list [--queue-url URL] [--max N] [--show-event] [--json]` receives up to N messages
//! (each held for at most [`LIST_HOLD_SECONDS`] while the listing reads on), then makes every
//! one visible again at once (`ChangeMessageVisibility` to 0): listing leaves the queue as it
//! was, except for each message's receive count. A message another reader holds at that moment is
//! not seen.
//!
//! `ir dlq redrive [--queue-url URL] [--function NAME] (--all | --message-id ID ...) [--json]`
//! reads the queue the same way, makes every message it will not redrive visible again, then for
//! each selected message invokes the ingest function synchronously (`RequestResponse`) with the
//! original event, verbatim. Only when the invocation succeeded is the message deleted; a failure
//! leaves it in the queue (visible again) and reports the function's error name. A redrive is
//! safe to repeat: ingest recognises a finding it already has and records a repeat, never a
//! second incident.
//!
//! On a terminal, without `--json`, a redrive shows a progress bar on stderr (one step per
//! message invoked), cleared when it ends.
//!
//! Permissions: `sqs:ReceiveMessage`, `sqs:ChangeMessageVisibility` (list, redrive),
//! `sqs:DeleteMessage` and `lambda:InvokeFunction` on the ingest function (redrive).
//!
//! Exit 0: listed; every selected message redriven (and deleted). Exit 1: a redrive failed, or a
//! message named is unrecognized (both stay in the queue); the queue could not be read. Exit 2:
//! bad usage (neither or both of `--all` and `--message-id`, no queue URL). Exit 3: a message id
//! that is not in the queue (then nothing is redriven), or no such queue.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName};
use comfy_table::{Table, presets};
use ir_aws::Clients;
use ir_aws::sdk::SdkFailure;
use ir_core::IngestOutput;
use ir_core::correlate::Correlation;
use ir_core::dead_letter::{self, DeadLetter, Origin};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::CliError;

/// The environment `ir dlq` reads.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_DLQ_URL          the ingest dead-letter queue's URL (stack output IngestDeadLetterQueueUrl);
                      --queue-url overrides it
  IR_INGEST_FUNCTION  the ingest function's name or ARN `ir dlq redrive` invokes (stack output
                      IngestFunctionArn; default: ir-ingest); --function overrides it
",
    aws_env_help!()
);

/// How long a listed message stays hidden at most, should `ir` stop before making it visible.
pub const LIST_HOLD_SECONDS: i32 = 30;
/// How long a message stays hidden while `ir dlq redrive` reads the queue.
const SCAN_HOLD_SECONDS: i32 = 60;
/// How long a message stays hidden while it is redriven: longer than the ingest function's
/// timeout (120 s in template.yaml).
const INVOKE_HOLD_SECONDS: i32 = 180;
/// Long polling: SQS answers from all of its servers (short polling samples some, and may answer
/// "empty" for a queue of a few messages). An answer with messages comes at once.
const WAIT_SECONDS: i32 = 1;
/// The most messages one command reads.
pub const MAX_MESSAGES: u32 = 1000;
/// The default function: the binary's name (a deployment names it `<stack>-ir-ingest`).
const DEFAULT_FUNCTION: &str = "ir-ingest";

/// `ir dlq`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List the dead letters: message id, when it was dead-lettered, who gave up (the rule, or
    /// the function after its retries), the error, the event's source and detail-type, its
    /// finding ids. Messages are made visible again right after reading.
    #[command(after_help = ENV_HELP)]
    List(ListArgs),
    /// Send dead letters back to the ingest function (synchronously, the original event
    /// verbatim); a message is deleted only when the function succeeded. Repeating is safe:
    /// ingest records a finding it already has as a repeat.
    #[command(after_help = ENV_HELP)]
    Redrive(RedriveArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// The queue (default: IR_DLQ_URL).
    #[arg(long, value_name = "URL")]
    queue_url: Option<String>,
    /// Read at most N messages.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_MESSAGES)))]
    max: u32,
    /// Also print each message's event (the body, for an unrecognized message).
    #[arg(long)]
    show_event: bool,
    /// Print one JSON array, events included.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all", "message_id"])))]
struct RedriveArgs {
    /// The queue (default: IR_DLQ_URL).
    #[arg(long, value_name = "URL")]
    queue_url: Option<String>,
    /// The function to invoke (default: IR_INGEST_FUNCTION, else ir-ingest).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// Every recognized message (unrecognized ones are kept and listed).
    #[arg(long)]
    all: bool,
    /// These messages only (as `ir dlq list` shows them).
    #[arg(long = "message-id", value_name = "ID", num_args = 1..)]
    message_id: Vec<String>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `ir dlq …`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    match &args.command {
        Sub::List(a) => {
            let url = queue_url(a.queue_url.as_ref())?;
            crate::aws::with_clients(async |clients| list(&clients, &url, a, out).await)
        }
        Sub::Redrive(a) => {
            let url = queue_url(a.queue_url.as_ref())?;
            let function = match &a.function {
                Some(f) => f.clone(),
                None => ir_env::optional("IR_INGEST_FUNCTION")
                    .map_err(|e| CliError::Invalid(e.to_string()))?
                    .unwrap_or_else(|| DEFAULT_FUNCTION.to_owned()),
            };
            if a.message_id.iter().any(|id| id.trim().is_empty()) {
                return Err(CliError::Invalid("--message-id: an empty id".to_owned()));
            }
            crate::aws::with_clients(async |clients| {
                redrive(&clients, &url, &function, a, out).await
            })
        }
    }
}

fn queue_url(given: Option<&String>) -> Result<String, CliError> {
    match given {
        Some(u) if !u.trim().is_empty() => Ok(u.trim().to_owned()),
        Some(_) => Err(CliError::Invalid("--queue-url: empty".to_owned())),
        None => ir_env::optional("IR_DLQ_URL")
            .map_err(|e| CliError::Invalid(e.to_string()))?
            .ok_or_else(|| {
                CliError::Invalid(
                    "no queue: give --queue-url or set IR_DLQ_URL (stack output \
                     IngestDeadLetterQueueUrl)"
                        .to_owned(),
                )
            }),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the queue.

/// One message as received.
#[derive(Debug, Clone)]
struct Received {
    message_id: String,
    receipt: String,
    sent_at: Option<OffsetDateTime>,
    receive_count: Option<u32>,
    body: String,
    attributes: BTreeMap<String, String>,
}

impl Received {
    fn parse(&self) -> Result<DeadLetter, dead_letter::Unrecognized> {
        dead_letter::parse(&self.body, &self.attributes)
    }
}

fn sqs_error<E>(operation: &'static str, url: &str, e: &aws_sdk_sqs::error::SdkError<E>) -> CliError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = SdkFailure::new(operation, e);
    let missing = failure
        .code
        .as_deref()
        .is_some_and(|c| c.contains("NonExistentQueue") || c.contains("QueueDoesNotExist"));
    if missing {
        CliError::NotFound(format!(
            "no queue {url} ({operation}: {})",
            e.message().unwrap_or("the queue does not exist")
        ))
    } else {
        CliError::named(failure.name, format!("queue {url}: {failure}"))
    }
}

/// Receives up to `limit` messages, each hidden for `hold` seconds, until the queue has no
/// message not seen yet.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    limit: usize,
    hold: i32,
) -> Result<Vec<Received>, CliError> {
    let mut messages: Vec<Received> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    while messages.len() < limit {
        let want = (limit - messages.len()).min(10);
        let answer = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(want).unwrap_or(10))
            .visibility_timeout(hold)
            .wait_time_seconds(WAIT_SECONDS)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                // What was read so far is made visible again; the receive error is the one to
                // report (those not released reappear when their hold ends).
                let _ = release(sqs, url, &messages.iter().collect::<Vec<_>>()).await;
                return Err(sqs_error("sqs:ReceiveMessage", url, &e));
            }
        };
        let mut new = 0;
        for m in answer.messages() {
            let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                continue;
            };
            if let Some(&i) = index.get(id) {
                // Seen before (its hold ran out): the newest receipt is the one that counts.
                if let Some(seen) = messages.get_mut(i) {
                    receipt.clone_into(&mut seen.receipt);
                }
                continue;
            }
            new += 1;
            let system = m.attributes();
            let system = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name));
            let attributes = m
                .message_attributes()
                .into_iter()
                .flatten()
                .filter(|(_, v)| {
                    v.data_type().starts_with("String") || v.data_type().starts_with("Number")
                })
                .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
                .collect();
            index.insert(id.to_owned(), messages.len());
            messages.push(Received {
                message_id: id.to_owned(),
                receipt: receipt.to_owned(),
                sent_at: system(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|ms| ms.parse::<i128>().ok())
                    .and_then(|ms| {
                        OffsetDateTime::from_unix_timestamp_nanos(ms.saturating_mul(1_000_000)).ok()
                    }),
                receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|n| n.parse().ok()),
                body: m.body().unwrap_or_default().to_owned(),
                attributes,
            });
        }
        if new == 0 {
            break;
        }
    }
    Ok(messages)
}

/// Makes `messages` visible again at once. Returns the ids SQS did not release (they become
/// visible when their hold runs out).
async fn release(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[&Received],
) -> Result<Vec<String>, CliError> {
    let mut kept = Vec::new();
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| CliError::Failed(format!("sqs:ChangeMessageVisibilityBatch: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let answer = sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error("sqs:ChangeMessageVisibilityBatch", url, &e))?;
        for failed in answer.failed() {
            if let Some(m) = failed.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                kept.push(m.message_id.clone());
            }
        }
    }
    Ok(kept)
}

fn released_or_error(kept: &[String]) -> Result<(), CliError> {
    if kept.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} message(s) could not be made visible again ({}); they reappear when their hold ends, within {SCAN_HOLD_SECONDS} s",
            kept.len(),
            kept.join(", ")
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// `ir dlq list`.

/// One message of `ir dlq list --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    message_id: &'a str,
    #[serde(with = "time::serde::rfc3339::option")]
    sent_at: Option<OffsetDateTime>,
    receive_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter: Option<&'a DeadLetter>,
    /// Why the message is not a dead letter; its body follows, as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    unrecognized: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
}

async fn list(
    clients: &Clients,
    url: &str,
    args: &ListArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let sqs = aws_sdk_sqs::Client::new(clients.sdk_config());
    let limit = usize::try_from(args.max).unwrap_or(usize::MAX);
    let messages = receive(&sqs, url, limit, LIST_HOLD_SECONDS).await?;
    let kept = release(&sqs, url, &messages.iter().collect::<Vec<_>>()).await?;
    let parsed: Vec<_> = messages.iter().map(|m| (m, m.parse())).collect();
    let write = crate::release::write_error;
    if args.json {
        let listed: Vec<Listed<'_>> = parsed
            .iter()
            .map(|(m, p)| Listed {
                message_id: &m.message_id,
                sent_at: m.sent_at,
                receive_count: m.receive_count,
                dead_letter: p.as_ref().ok(),
                unrecognized: p.as_ref().err().map(|u| u.reason.as_str()),
                body: p.is_err().then_some(m.body.as_str()),
            })
            .collect();
        let text = serde_json::to_string(&listed)
            .map_err(|e| CliError::Failed(format!("the listing: {e}")))?;
        writeln!(out, "{text}").map_err(write)?;
        return released_or_error(&kept);
    }
    let recognized = parsed.iter().filter(|(_, p)| p.is_ok()).count();
    writeln!(
        out,
        "{url}: {} message(s), {recognized} dead letter(s), {} unrecognized{}",
        messages.len(),
        messages.len() - recognized,
        if messages.len() >= limit {
            format!(" (stopped at --max {limit})")
        } else {
            String::new()
        }
    )
    .map_err(write)?;
    if !messages.is_empty() {
        let mut table = Table::new();
        table.load_style(presets::NOTHING).set_header([
            "MESSAGE ID",
            "SENT",
            "ORIGIN",
            "ERROR",
            "EVENT",
            "FINDINGS",
        ]);
        for (m, p) in &parsed {
            let sent = m.sent_at.map(time_text).unwrap_or_default();
            match p {
                Ok(d) => table.add_row([
                    m.message_id.clone(),
                    sent,
                    origin_text(&d.origin),
                    error_text(d.error_name.as_deref(), d.error_message.as_deref()),
                    event_text(d),
                    printable(&d.finding_ids.join(", ")),
                ]),
                Err(u) => table.add_row([
                    m.message_id.clone(),
                    sent,
                    "unrecognized (kept)".to_owned(),
                    printable(&u.reason),
                    String::new(),
                    String::new(),
                ]),
            };
        }
        write_table(&table, out).map_err(write)?;
    }
    if args.show_event {
        for (m, p) in &parsed {
            match p {
                Ok(d) => {
                    let pretty = serde_json::from_str::<Value>(d.event.get())
                        .and_then(|v| serde_json::to_string_pretty(&v))
                        .unwrap_or_else(|_| d.event.get().to_owned());
                    writeln!(out, "\nevent of {}:\n{pretty}", m.message_id).map_err(write)?;
                }
                Err(_) => {
                    writeln!(out, "\nbody of {}:\n{}", m.message_id, printable(&m.body))
                        .map_err(write)?;
                }
            }
        }
    }
    released_or_error(&kept)
}

/// A table as aligned text, without trailing blanks.
fn write_table(table: &Table, out: &mut impl Write) -> std::io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn time_text(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Text from the queue for a terminal: control characters (escape sequences) escaped.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// At most `max` characters of `s`, printable.
fn clip(s: &str, max: usize) -> String {
    let s = printable(s);
    if s.chars().count() <= max {
        s
    } else {
        let mut clipped: String = s.chars().take(max.saturating_sub(1)).collect();
        clipped.push('…');
        clipped
    }
}

fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::EventbridgeRule {
            exhausted_retry_condition,
            retry_attempts,
            ..
        } => {
            let mut why = Vec::new();
            if let Some(c) = exhausted_retry_condition {
                why.push(c.clone());
            }
            if let Some(n) = retry_attempts {
                why.push(format!("{n} retries"));
            }
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join(", "))
            };
            printable(&format!("rule {}{why}", origin.name()))
        }
        Origin::LambdaDestination {
            condition,
            attempts,
            ..
        } => {
            let attempts = attempts
                .map(|n| format!(", {n} attempts"))
                .unwrap_or_default();
            printable(&format!(
                "function {} ({condition}{attempts})",
                origin.name()
            ))
        }
    }
}

fn error_text(name: Option<&str>, message: Option<&str>) -> String {
    match (name, message) {
        (Some(n), Some(m)) => clip(&format!("{n}: {m}"), 80),
        (Some(n), None) => printable(n),
        (None, Some(m)) => clip(m, 80),
        (None, None) => "-".to_owned(),
    }
}

fn event_text(d: &DeadLetter) -> String {
    match (&d.source, &d.detail_type) {
        (Some(s), Some(t)) => printable(&format!("{s} / {t}")),
        (Some(s), None) => printable(s),
        (None, Some(t)) => printable(t),
        (None, None) => "-".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// `ir dlq redrive`.

/// What became of one selected message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    /// The function succeeded (and the message was deleted, unless `deleted` says otherwise).
    Redriven,
    /// The function failed, or could not be invoked: the message stays in the queue.
    Failed,
    /// Not a dead letter: never redriven, kept.
    Unrecognized,
}

/// An incident the redriven event went to, and how (`new`, `repeat`, `attach`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Ingested {
    incident_id: String,
    correlations: Vec<&'static str>,
}

/// One selected message's redrive.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Redriven {
    message_id: String,
    outcome: Outcome,
    deleted: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    finding_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    incidents: Vec<Ingested>,
    /// Findings ingest skipped on purpose (finding id: reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

impl Redriven {
    fn new(m: &Received, outcome: Outcome) -> Redriven {
        Redriven {
            message_id: m.message_id.clone(),
            outcome,
            deleted: false,
            finding_ids: Vec::new(),
            incidents: Vec::new(),
            skipped: Vec::new(),
            error_name: None,
            error_message: None,
        }
    }

    fn failed(mut self, name: impl Into<String>, message: impl Into<String>) -> Redriven {
        self.outcome = Outcome::Failed;
        self.error_name = Some(name.into());
        self.error_message = Some(message.into());
        self
    }

    /// Done: redriven and gone from the queue.
    fn done(&self) -> bool {
        self.outcome == Outcome::Redriven && self.deleted
    }
}

/// `ir dlq redrive --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RedriveReport<'a> {
    ok: bool,
    queue_url: &'a str,
    function: &'a str,
    /// The queue held more than one command reads ([`MAX_MESSAGES`]): run it again for the rest.
    more: bool,
    messages: &'a [Redriven],
}

async fn redrive(
    clients: &Clients,
    url: &str,
    function: &str,
    args: &RedriveArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let sqs = aws_sdk_sqs::Client::new(clients.sdk_config());
    let lambda = aws_sdk_lambda::Client::new(clients.sdk_config());
    let limit = usize::try_from(MAX_MESSAGES).unwrap_or(usize::MAX);
    let messages = receive(&sqs, url, limit, SCAN_HOLD_SECONDS).await?;
    let more = messages.len() >= limit;

    // Selection: every message, or the ones named (all of them must be there).
    let selected: Vec<&Received> = if args.all {
        messages.iter().collect()
    } else {
        let missing: Vec<&str> = args
            .message_id
            .iter()
            .map(String::as_str)
            .filter(|id| !messages.iter().any(|m| m.message_id == *id))
            .collect();
        if !missing.is_empty() {
            let kept = release(&sqs, url, &messages.iter().collect::<Vec<_>>()).await?;
            released_or_error(&kept)?;
            return Err(CliError::NotFound(format!(
                "no message {} in {url} ({} message(s) read; nothing redriven; a message another \
                 reader holds is not visible until its hold ends)",
                missing.join(", "),
                messages.len()
            )));
        }
        let mut named: Vec<&Received> = Vec::new();
        for id in &args.message_id {
            if let Some(m) = messages.iter().find(|m| &m.message_id == id)
                && !named.iter().any(|n| n.message_id == m.message_id)
            {
                named.push(m);
            }
        }
        named
    };

    // What will not be invoked is visible again at once: the messages not selected, and the
    // unrecognized ones.
    let parsed: Vec<(&Received, Result<DeadLetter, _>)> =
        selected.iter().map(|m| (*m, m.parse())).collect();
    let idle: Vec<&Received> = messages
        .iter()
        .filter(|m| {
            parsed
                .iter()
                .all(|(s, p)| s.message_id != m.message_id || p.is_err())
        })
        .collect();
    let kept = release(&sqs, url, &idle).await?;

    let progress = crate::release::Progress::bar(
        crate::release::Progress::shown(args.json),
        u64::try_from(parsed.len()).unwrap_or(u64::MAX),
        format!("redriving into {function}"),
    );
    let mut results: Vec<Redriven> = Vec::new();
    for (m, p) in &parsed {
        progress.say(m.message_id.clone());
        results.push(match p {
            Err(u) => Redriven {
                error_message: Some(u.reason.clone()),
                ..Redriven::new(m, Outcome::Unrecognized)
            },
            Ok(d) => redrive_one(&sqs, &lambda, url, function, m, d).await,
        });
        progress.done_one();
    }
    drop(progress);

    let not_done = results
        .iter()
        .filter(|r| match r.outcome {
            // --all redrives what can be redriven; a message named must be redriven.
            Outcome::Unrecognized => !args.all,
            Outcome::Redriven | Outcome::Failed => !r.done(),
        })
        .count();
    let write = crate::release::write_error;
    if args.json {
        let report = RedriveReport {
            ok: not_done == 0,
            queue_url: url,
            function,
            more,
            messages: &results,
        };
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::Failed(format!("the outcome: {e}")))?;
        writeln!(out, "{text}").map_err(write)?;
    } else {
        render(&results, url, function, out).map_err(write)?;
        if more {
            writeln!(
                out,
                "the queue holds more than the {MAX_MESSAGES} messages read: run it again for the rest"
            )
            .map_err(write)?;
        }
    }
    if not_done > 0 {
        return Err(CliError::Failed(format!(
            "{not_done} of {} selected message(s) not redriven: they stay in the queue",
            results.len()
        )));
    }
    released_or_error(&kept)
}

/// One message: held for the invocation, the function invoked with the event, then deleted
/// (success) or made visible again (failure).
async fn redrive_one(
    sqs: &aws_sdk_sqs::Client,
    lambda: &aws_sdk_lambda::Client,
    url: &str,
    function: &str,
    m: &Received,
    d: &DeadLetter,
) -> Redriven {
    let mut result = Redriven::new(m, Outcome::Redriven);
    result.finding_ids.clone_from(&d.finding_ids);
    if let Err(e) = sqs
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(&m.receipt)
        .visibility_timeout(INVOKE_HOLD_SECONDS)
        .send()
        .await
    {
        let f = SdkFailure::new("sqs:ChangeMessageVisibility", &e);
        return result.failed(f.name.as_str(), f.to_string());
    }
    match invoke(lambda, function, &d.event).await {
        Ok(answer) => {
            if let Ok(output) = serde_json::from_slice::<IngestOutput>(&answer) {
                result.incidents = ingested(&output);
                result.skipped = output
                    .skipped
                    .iter()
                    .map(|s| format!("{}: {}", s.finding_id, s.reason))
                    .collect();
            }
            match sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(&m.receipt)
                .send()
                .await
            {
                Ok(_) => result.deleted = true,
                Err(e) => {
                    // Ingested, still in the queue: a second redrive is a repeat.
                    let f = SdkFailure::new("sqs:DeleteMessage", &e);
                    result.error_name = Some(f.name.as_str().to_owned());
                    result.error_message = Some(format!("redriven but not deleted: {f}"));
                }
            }
        }
        Err((name, message)) => {
            result = result.failed(name, message);
            let visible = sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(&m.receipt)
                .visibility_timeout(0)
                .send()
                .await;
            if let Err(e) = visible {
                let f = SdkFailure::new("sqs:ChangeMessageVisibility", &e);
                if let Some(msg) = &mut result.error_message {
                    msg.push_str(&format!(
                        " (the message is visible again after {INVOKE_HOLD_SECONDS} s: {f})"
                    ));
                }
            }
        }
    }
    result
}

/// The incidents of ingest's answer, with how each finding was correlated.
fn ingested(output: &IngestOutput) -> Vec<Ingested> {
    output
        .incidents
        .iter()
        .map(|i| Ingested {
            incident_id: i.incident_id.clone(),
            correlations: i
                .correlations
                .iter()
                .map(|c| match c {
                    Correlation::New { .. } => "new",
                    Correlation::Repeat { .. } => "repeat",
                    Correlation::Attach { .. } => "attach",
                })
                .collect(),
        })
        .collect()
}

/// Invokes `function` synchronously with `event`; its answer, or its error's name and message.
async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    event: &RawValue,
) -> Result<Vec<u8>, (String, String)> {
    let invoked = lambda
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
        .payload(Blob::new(event.get().as_bytes()))
        .send()
        .await;
    match invoked {
        Ok(answer) => {
            let body = answer.payload().map(Blob::as_ref).unwrap_or_default();
            match answer.function_error() {
                None => Ok(body.to_vec()),
                Some(kind) => Err(function_error(body).unwrap_or_else(|| {
                    (kind.to_owned(), clip(&String::from_utf8_lossy(body), 300))
                })),
            }
        }
        Err(e) => {
            // A function error answered with an error status (as the local Invoke API of
            // `cargo lambda` does) is still the function's error.
            let from_body = e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .and_then(function_error);
            Err(from_body.unwrap_or_else(|| {
                let f = SdkFailure::new("lambda:Invoke", &e);
                (
                    f.code.clone().unwrap_or_else(|| f.name.as_str().to_owned()),
                    format!("invoking {function}: {f}"),
                )
            }))
        }
    }
}

/// A Lambda function error document (`errorType`, `errorMessage`): its name and message.
fn function_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let name = v.get("errorType")?.as_str()?.to_owned();
    let message = v
        .get("errorMessage")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((name, message))
}

fn render(
    results: &[Redriven],
    url: &str,
    function: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if results.is_empty() {
        return writeln!(out, "{url}: no message to redrive");
    }
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(["OUTCOME", "MESSAGE ID", "FINDINGS", "RESULT"]);
    for r in results {
        let (outcome, detail) = match r.outcome {
            Outcome::Redriven => {
                let incidents = r
                    .incidents
                    .iter()
                    .map(|i| format!("{} ({})", i.incident_id, i.correlations.join(", ")))
                    .collect::<Vec<_>>();
                let mut detail = if incidents.is_empty() {
                    "ingested".to_owned()
                } else {
                    format!("-> {}", incidents.join(", "))
                };
                if !r.skipped.is_empty() {
                    detail.push_str(&format!("; {} finding(s) skipped", r.skipped.len()));
                }
                if r.deleted {
                    detail.push_str("; deleted");
                } else {
                    detail.push_str(&format!(
                        "; NOT deleted: {}",
                        r.error_message.as_deref().unwrap_or("?")
                    ));
                }
                ("redriven", detail)
            }
            Outcome::Failed => (
                "failed",
                format!(
                    "{}; kept in the queue",
                    error_text(r.error_name.as_deref(), r.error_message.as_deref())
                ),
            ),
            Outcome::Unrecognized => (
                "kept",
                format!(
                    "unrecognized: {}",
                    clip(r.error_message.as_deref().unwrap_or_default(), 80)
                ),
            ),
        };
        table.add_row([
            outcome.to_owned(),
            r.message_id.clone(),
            printable(&r.finding_ids.join(", ")),
            printable(&detail),
        ]);
    }
    write_table(&table, out)?;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    writeln!(
        out,
        "{} redriven to {function} ({} deleted), {} failed (kept in the queue), {} unrecognized (kept)",
        count(Outcome::Redriven),
        results.iter().filter(|r| r.done()).count(),
        count(Outcome::Failed),
        count(Outcome::Unrecognized)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_error_document_gives_its_name_and_message() {
        assert_eq!(
            function_error(br#"{"errorType":"InvalidInput","errorMessage":"unsupported event source `aws.s3`"}"#),
            Some((
                "InvalidInput".to_owned(),
                "unsupported event source `aws.s3`".to_owned()
            ))
        );
        assert_eq!(
            function_error(br#"{"errorType":"Retryable"}"#),
            Some(("Retryable".to_owned(), String::new()))
        );
        for not_one in [
            &b"{}"[..],
            b"[]",
            b"Internal Server Error",
            b"",
            b"{\"errorType\": 3}",
        ] {
            assert_eq!(function_error(not_one), None);
        }
    }

    #[test]
    fn text_from_the_queue_cannot_drive_the_terminal() {
        assert_eq!(printable("a\u{1b}[31mred\u{7}"), "a\\u{1b}[31mred\\u{7}");
        assert_eq!(printable("plain — text"), "plain — text");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }

    #[test]
    fn origins_read_as_who_gave_up_and_why() {
        let rule = Origin::EventbridgeRule {
            rule_arn: "arn:aws:events:us-east-1:111122223333:rule/ir-GuardDutyFindingsRule-X"
                .into(),
            target_arn: None,
            exhausted_retry_condition: Some("MaximumRetryAttempts".into()),
            retry_attempts: Some(185),
        };
        assert_eq!(
            origin_text(&rule),
            "rule ir-GuardDutyFindingsRule-X (MaximumRetryAttempts, 185 retries)"
        );
        let function = Origin::LambdaDestination {
            function_arn: "arn:aws:lambda:us-east-1:111122223333:function:ir-ir-ingest".into(),
            request_id: "r".into(),
            condition: "RetriesExhausted".into(),
            attempts: Some(3),
        };
        assert_eq!(
            origin_text(&function),
            "function ir-ir-ingest (RetriesExhausted, 3 attempts)"
        );
        assert_eq!(error_text(None, None), "-");
        assert_eq!(
            error_text(Some("InvalidInput"), Some("bad")),
            "InvalidInput: bad"
        );
    }
}
