//! The log of this test binary, captured: every line at DEBUG and above, from every crate (the
//! SDK's included), for the tests that check that a task token never shows in it.
//!
//! One global subscriber, installed by the first test that calls [`capture`]: a process has only
//! one global subscriber, and a thread-scoped one misses callsites that tests on other threads
//! registered first. Every module of the binary shares it, so a check of the log covers what
//! every test logged since. DEBUG and above: at TRACE the SDK's orchestrator
//! (`aws_smithy_runtime`) logs whole response bodies, task tokens included, so a deployed
//! function's log filter must never enable TRACE for it.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, OnceLock};

/// Log lines, captured.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of this whole test binary, capturing from the first call on.
pub fn capture() -> Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
    .clone()
}
