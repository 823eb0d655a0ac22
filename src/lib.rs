//! mcpinit as a library: the pure decision core (`config`, `launcher`, `units`,
//! `policy`) and the thin effect layer around it (`proctree`, `spawn`, `reap`,
//! `terminate`, `state`, `supervisor`). The binary in main.rs only dispatches.

pub mod cgroup;
pub mod config;
pub(crate) mod json;
pub mod jsonread;
pub(crate) mod launcher;
pub mod logging;
pub mod output;
pub mod policy;
pub mod proctree;
pub(crate) mod reap;
pub mod signals;
pub mod spawn;
pub(crate) mod state;
pub mod status;
pub mod supervisor;
pub(crate) mod terminate;
pub mod units;
pub(crate) mod values;

/// Hand-built snapshots, shared by the unit tests and benches/core.rs.
#[doc(hidden)]
pub mod testkit;
