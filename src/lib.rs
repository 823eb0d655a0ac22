//! mcpinit as a library: the pure decision core (`config`, `launcher`, `units`,
//! `policy`) and the thin effect layer around it (`proctree`, `spawn`, `reap`,
//! `terminate`, `statefile`, `supervisor`). The binary in main.rs only dispatches.

pub mod activity;
pub mod cgroup;
pub mod config;
pub mod launcher;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod proctree;
pub mod reap;
pub mod settings;
pub mod signals;
pub mod spawn;
pub mod statefile;
pub mod status;
pub mod supervisor;
pub mod terminate;
pub mod units;
pub mod values;
pub mod watch;

#[cfg(test)]
mod testkit;
