//! The pure core of the incident-response suite.
//!
//! Findings in, decisions out: normalization of GuardDuty and Security Hub findings, correlation
//! into incidents, enrichment, scoring, playbook routing and the contracts between states.
//!
//! Invariants: this crate performs no I/O, depends on no AWS SDK crate and on no Lambda runtime.
//! Everything here is a function of its arguments, so it is tested with plain data.

pub mod accounts;
pub mod action;
pub mod approval;
pub mod arn;
pub mod asff;
pub mod asl;
pub mod audit;
pub mod clocks;
pub mod config;
pub mod contracts;
pub mod correlate;
pub mod dead_letter;
pub mod duration;
pub mod enrich;
pub mod error;
pub mod event;
pub mod evidence;
pub mod guardduty;
pub mod incident;
pub mod lenient;
pub mod normalize;
pub mod ocsf;
pub mod orchestration;
pub mod playbook;
pub mod review;
pub mod score;
pub mod sequence;
pub mod severity;
pub mod sla;
pub mod slots;
pub mod termination;
pub mod triage;

pub use config::Config;
pub use contracts::{EnrichInput, IngestOutput, ScoreInput, TriageInput};
pub use error::{ErrorName, Named, Refusal};
pub use event::{Resource, ResourceKind, SecurityEvent, Skipped, Source};
pub use normalize::{EnvelopeMeta, InputError, Normalized, normalize, normalize_detail};
pub use severity::Severity;
pub use triage::{Decision, Engine};
