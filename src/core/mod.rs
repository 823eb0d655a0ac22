//! The decision core: pure functions of a snapshot, the configuration and a clock,
//! returning what to do. Nothing here touches the kernel, the file system or the clock
//! (`Instant`s come in as arguments), so all of it is tested with tables.

#![forbid(unsafe_code)]

pub mod activity;
pub mod escalation;
pub mod input;
pub(crate) mod launcher;
pub mod lineage;
pub mod phase;
pub mod policy;
pub mod process;
pub mod schedule;
pub mod units;

/// Hand-built snapshots, shared by the unit tests and benches/core.rs.
#[doc(hidden)]
pub mod testkit;
