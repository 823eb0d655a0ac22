//! mcpinit as a library: the pure decision core (`config`, `launcher`, `units`,
//! `policy`) and the thin effect layer around it (`proctree`, `spawn`, `reap`,
//! `closeinput`, `terminate`, `statefile`, `supervisor`). The binary in main.rs only
//! dispatches. Only what main.rs, tests/ and benches/ use is `pub`.

pub mod activity;
pub mod cgroup;
pub mod closeinput;
pub mod config;
pub mod help;
pub mod inject;
pub(crate) mod launcher;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod procmount;
pub mod proctree;
pub(crate) mod reap;
pub mod reserve;
pub mod settings;
pub mod signals;
pub mod spawn;
pub mod statefile;
pub mod status;
pub mod supervisor;
pub(crate) mod terminate;
pub mod units;
pub mod values;
pub mod watch;

/// Hand-built snapshots, shared by the unit tests and benches/core.rs.
#[doc(hidden)]
pub mod testkit;
