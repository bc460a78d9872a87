//! The integration and end-to-end tests, in one test binary: a module per area (each was a test
//! binary of its own), so the AWS SDKs and the suite's crates are linked once.
//!
//! The modules share one process, so what is global is shared on purpose:
//! * the emulator of [`ir_tests::LocalCloud::shared`], started by the first test that needs it;
//!   every test names what it creates with [`ir_tests::unique_name`] (unique in this process)
//!   and looks only at that;
//! * the log: one global `tracing` subscriber, [`captured_log`], installed by the first test
//!   that reads it (a process has only one);
//! * the private emulators a module starts once, in a `static` of its own: `state_machines` and
//!   `orchestration` each route their emulator's Lambda tasks to a fake of their own.
//!
//! The end-to-end tests ([`e2e`]) start a whole offline suite each, as before.

mod captured_log;

mod accounts;
mod approval_store;
mod attack_sequence;
mod audit_log;
mod burst;
mod collect_evidence;
mod config_source;
mod e2e;
mod error_mapping;
mod escalation;
mod failure;
mod faults;
mod feeds;
mod iam_actions;
mod incident_report;
mod incident_store;
mod isolate_instance;
mod localcloud_smoke;
mod orchestration;
mod queue;
mod red_team;
mod release_containment;
mod responder;
mod review;
mod slack_session;
mod snapshot_volumes;
mod state_machines;
mod template;
mod terminate_instance;
