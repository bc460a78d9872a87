//! The containment and evidence actions, and the restores that undo them.
//!
//! Each action reads the finding's resource, plans its change, and in enforce mode makes it and
//! reads it back; each returns an `ActionReport` (changes before -> after, the record release
//! needs, artifacts). Dry-run is the default and mutates nothing.
//!
//! Invariants: depends on `ir-core` and `ir-aws` only among the suite's crates; knows no Lambda
//! runtime or event shape (the functions' mains call in through `ir-lambda`); never deletes
//! evidence; never changes a protected principal.

pub mod action;
pub mod ec2;
pub mod evidence;
pub mod guard;
pub mod iam;
pub mod release;

pub use action::{ActionError, ReportBuilder};
