//! Fuzzing on stable Rust: structured mutation of the suite's real samples against every parser
//! that reads input from outside.
//!
//! The seeds are the repository's samples (`events/`, `config/`, the recorded audit chains'
//! action reports) and the function payloads the suite's own pipeline makes from them
//! ([`corpus`]). A case is a seed mutated structurally ([`mutate`]: JSON trees, YAML and text
//! lines, bytes) by a generator seeded from (target, seed, case index) ([`rng`]), so every case
//! is reproducible from those three. Each target ([`targets::TARGETS`]) runs the real parser on
//! the case inside `catch_unwind` and checks what its result must hold ([`runner`]): a panic or
//! a broken property is a crasher, written under `fuzz/crashers/` and replayed by this crate's
//! tests forever after. Inputs are bounded ([`mutate::MAX_INPUT_BYTES`]) and a watchdog ends a
//! run whose case hangs.
//!
//! The binary `ir-fuzz` runs N cases over the targets and threads; `scripts/bench/fuzz` runs
//! ten million.

pub mod corpus;
pub mod mutate;
pub mod parts;
pub mod rng;
pub mod runner;
pub mod targets;
pub mod tree;
