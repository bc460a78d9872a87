//! `ir` as an operator runs it, in one test binary: the real binary, real files, exit codes,
//! stdout and stderr. A module per command; the commands that read and write the suite's
//! tables and bucket run against the local cloud ([`local_cloud`]).

mod local_cloud;

mod approve;
mod audit;
mod dlq;
mod playbooks;
mod report;
mod resolve;
mod review;
mod simulate;
