//! `ir`, the operator CLI of the incident-response suite.
//!
//! Exit codes: 0 success; 2 invalid input (the event, the config, the registry, the intel list,
//! or the command line), with one line on stderr naming what is wrong; 1 anything else.

/// The end of every AWS-using command's `Environment:` help: the standard AWS chain and the
/// path-style switch. A macro, so that `concat!` can join it to each command's own lines.
macro_rules! aws_env_help {
    () => {
        "  AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...
                      your AWS credentials and endpoint, from the standard configuration chain
  IR_S3_FORCE_PATH_STYLE=true
                      path-style S3 addressing (local S3-compatible endpoints)"
    };
}

mod approvals;
mod approve;
mod audit;
mod aws;
mod dlq;
mod incidents;
mod playbooks;
mod release;
mod report;
mod resolve;
mod retry;
mod review;
mod simulate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ir",
    version,
    about = "Operate the incident-response suite: simulate, approve, release, resolve, report, verify.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Triage an EventBridge event offline and show the decision. Changes nothing.
    Simulate(simulate::Args),
    /// Playbooks as code: render the state machines from the config, or validate the config.
    Playbooks(playbooks::Args),
    /// Approve a gated step as yourself (your AWS credentials; you must hold the escalation role
    /// the request asks, or a higher one). The waiting execution resumes once as many different
    /// people as the step requires approved.
    Approve(approve::Args),
    /// Reject a gated step as yourself; the step does not run.
    Reject(approve::Args),
    /// End an incident's containment as yourself (an approver): plan it (default), or with
    /// --enforce restore exactly what containment changed, resolve the incident and anchor its
    /// audit chain. Evidence is never touched.
    Release(release::Args),
    /// End an incident as yourself (an approver) without undoing anything: containment and
    /// evidence stay as they are (the resource was rebuilt, terminated, or the risk accepted);
    /// the incident is resolved with your reason and its audit chain anchored.
    Resolve(resolve::Args),
    /// Run again, as yourself (an approver), the step a stopped playbook failed at, once its
    /// cause is fixed: a new execution runs it (through its gate: a new approval, which you may
    /// not give yourself) and the steps the stop left unrun.
    Retry(retry::Args),
    /// The incidents: `ir incidents list` (open ones, newest first, with their SLA) and
    /// `ir incidents show INCIDENT` (the report and the approvals waiting on it).
    Incidents(incidents::Args),
    /// What waits for a decision: `ir approvals list [--mine]`, `ir approvals show INCIDENT STEP`
    /// (the plan to approve and its hash).
    Approvals(approvals::Args),
    /// The audit chain: `ir audit verify INCIDENT`.
    Audit(audit::Args),
    /// An incident as recorded: timeline, decision, steps, evidence, verified audit chain.
    Report(report::Args),
    /// The ingest dead-letter queue: `ir dlq list` shows what could not be ingested and why,
    /// `ir dlq redrive` sends it back to the ingest function.
    Dlq(dlq::Args),
    /// The post-incident review of a resolved incident, as yourself (an approver): `open`
    /// (the incident becomes postmortem), `write` its sections, `item add|close` its action
    /// items, `close` it; `show` one, list the `overdue` action items.
    Review(review::Args),
}

/// A failure of a command, with the exit code it maps to (stable; README, "Exit codes"):
/// 0 ok, 1 failure, 2 bad usage or input, 3 not found, 4 refused by policy.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong: exit 2 (as clap's own usage errors).
    #[error("{0}")]
    Invalid(String),
    /// Anything else: exit 1.
    #[error("{0}")]
    Failed(String),
    /// The incident, step or request named does not exist: exit 3.
    #[error("{0}")]
    NotFound(String),
    /// Refused by the suite's rules (not an approver, not at this level, the two-person rule,
    /// already decided, the plan changed, an incident not in a state that allows it): exit 4.
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Invalid(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::Refused(_) => 4,
        }
    }

    /// The error of a failure with a stable name: the name decides the exit code.
    pub fn named(name: ir_core::ErrorName, message: String) -> CliError {
        use ir_core::ErrorName as N;
        match name {
            N::InvalidInput => CliError::Invalid(message),
            N::NotFound => CliError::NotFound(message),
            N::AccessDenied
            | N::Conflict
            | N::Protected
            | N::NotApproved
            | N::PlanChanged
            | N::AccountNotAllowed
            | N::MemberAccessDenied => CliError::Refused(message),
            N::RegionDisabled
            | N::Retryable
            | N::VerificationFailed
            | N::Configuration
            | N::DeliveryFailed
            | N::Internal => CliError::Failed(message),
        }
    }
}

/// How `ir` ends, for every command (`ir --help`).
const EXIT_CODES: &str = "Exit codes: 0 ok; 1 failure (AWS, a store, a chain that does not verify); \
2 bad usage or input; 3 not found (incident, step, request); 4 refused by policy (not an \
approver, not at this level, the two-person rule, already decided, plan changed, an incident \
not in a state that allows it, an account the suite may not act in).";

/// A planned step's marks as the terminal shows them: `safe` or `destructive`, and the gate.
pub fn step_marks(destructive: bool, requires_approval: bool) -> (&'static str, &'static str) {
    let kind = if destructive { "destructive" } else { "safe" };
    let gate = if requires_approval {
        "  [APPROVAL REQUIRED]"
    } else {
        ""
    };
    (kind, gate)
}

/// Reads a file the user named; a missing or unreadable file is invalid input.
pub fn read_input(path: &PathBuf, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Invalid(format!("{what} {}: {e}", path.display())))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(&args, &mut out),
        Command::Playbooks(args) => playbooks::run(&args, &mut out),
        Command::Approve(args) => {
            approve::run(ir_incident::approval::Verdict::Approve, &args, &mut out)
        }
        Command::Reject(args) => {
            approve::run(ir_incident::approval::Verdict::Reject, &args, &mut out)
        }
        Command::Release(args) => release::run(&args, &mut out),
        Command::Resolve(args) => resolve::run(&args, &mut out),
        Command::Retry(args) => retry::run(&args, &mut out),
        Command::Audit(args) => audit::run(&args, &mut out),
        Command::Report(args) => report::run(&args, &mut out),
        Command::Dlq(args) => dlq::run(&args, &mut out),
        Command::Incidents(args) => incidents::run(&args, &mut out),
        Command::Approvals(args) => approvals::run(&args, &mut out),
        Command::Review(args) => review::run(&args, &mut out),
    };
    match result.and_then(|()| {
        out.flush()
            .map_err(|e| CliError::Failed(format!("writing output: {e}")))
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            // Nothing better to do if stderr itself is gone.
            let _ = writeln!(err, "ir: {e}");
            ExitCode::from(e.code())
        }
    }
}
