//! mcpinit as a library, in floors that import only downwards:
//!
//! - `config`: the typed configuration, its one settings table, parsing, values;
//! - `core`: the pure decision core (snapshot + configuration + clock → actions);
//! - `sys`: every system call, behind thin functions tested against real processes;
//! - `surface`: what the operator sees (logs, state document, status, health, metrics);
//! - `supervisor`: the event loop, which applies the core's decisions through `sys`.
//!
//! `unsafe` is refused everywhere but `sys` (and `core` forbids it outright). The
//! binary in main.rs only dispatches. Only what main.rs, tests/ and benches/ use is
//! `pub`.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod core;
pub mod supervisor;
pub mod surface;
// The one room allowed `unsafe`: every block in it says why it is sound.
#[allow(unsafe_code)]
pub mod sys;
