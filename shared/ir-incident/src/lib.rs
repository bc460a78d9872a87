//! The incident's use cases, over the stores of `ir-aws` and the actions of `ir-actions`.
//!
//! Intake (a delivered finding stored, correlated and sent to triage), the recorder (the
//! incident record and its audit chain as the state machines go), the approval gate and the one
//! decision path (the CLI and the Function URL), notifications, an operator's release, and the
//! report an operator reads.
//!
//! Invariants: knows no Lambda runtime or event shape (functions call in through `ir-lambda`);
//! every rule it applies is `ir-core`'s; every record it writes to the audit chain is an
//! `ir_core::audit` event.

pub mod announce;
pub mod approval;
pub mod audit_writer;
pub mod clocks;
pub mod intake;
pub mod listing;
pub mod notify;
pub mod outlets;
pub mod recorder;
pub mod release;
pub mod report;
pub mod retry;
pub mod review;
pub mod slack_decision;
