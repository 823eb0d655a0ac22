//! Opt-in Prometheus / OpenMetrics metrics (`MCPINIT_METRICS=ADDR:PORT`): the figures a
//! scrape shows (`Figures`, filled by the loop from what it already keeps), their text
//! form (`render`), and a tiny HTTP responder that lives inside the one event loop
//! (`server`): non-blocking sockets, a capped request, a deadline per connection and a
//! bounded number of connections, so that a client can never hold up reaping.

mod render;
mod server;
#[cfg(test)]
mod tests;

pub use render::{escape_label, render, Format};
pub use server::{Outcome, Reply, Route, Server, OUTCOMES};

use std::time::Duration;

/// Why a unit was terminated, in the order of the `reason` label.
pub const REASONS: [&str; 4] = [
    Reason::ALL[0].as_str(),
    Reason::ALL[1].as_str(),
    Reason::ALL[2].as_str(),
    Reason::ALL[3].as_str(),
];

pub use crate::core::escalation::Ended;
use crate::core::policy::Reason;

/// Terminations that ended, by reason (index into `REASONS`) and by how.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EndedCounts([[u64; Ended::ALL.len()]; 4]);

impl EndedCounts {
    pub fn add(&mut self, reason: usize, ended: Ended) {
        if let Some(row) = self.0.get_mut(reason) {
            row[ended.index()] += 1;
        }
    }

    pub fn get(&self, reason: usize, ended: Ended) -> u64 {
        self.0.get(reason).map_or(0, |row| row[ended.index()])
    }
}

/// Upper bounds of the scan-duration buckets, in seconds: a scan of a few processes
/// takes well under a millisecond, one of thousands tens of milliseconds.
pub const SCAN_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A fixed-bucket histogram: one slot per bound of `SCAN_BUCKETS` plus +Inf.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Histogram {
    counts: [u64; SCAN_BUCKETS.len() + 1],
    sum_ns: u128,
}

impl Histogram {
    pub fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let slot = SCAN_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(SCAN_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum_ns += took.as_nanos();
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// (upper bound, observations at or below it), ending with +Inf.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut total = 0;
        SCAN_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts)
            .map(move |(bound, n)| {
                total += n;
                (bound, total)
            })
    }
}

/// Units of the last scan, by role (as `status` shows them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub main: usize,
    pub server: usize,
    pub orphan: usize,
    pub other: usize,
}

/// Everything one scrape shows. Plain numbers, so rendering is tested without a loop.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub version: &'static str,
    pub started_unix_ms: u64,
    /// Terminations begun, by reason (index into `REASONS`).
    pub terminated: [u64; 4],
    pub ended: EndedCounts,
    pub escalations: u64,
    /// Tracked instances ended by a signal (crashes to the gateway), and tracked
    /// instances left alone for want of a clean end.
    pub crashes: u64,
    pub spared: u64,
    /// Server keys running under more environments than expected (warned once each).
    pub env_splits: u64,
    /// How inputs are closed here (`pidfd`, `ptrace`, `none`, `unprobed`).
    pub input_route: &'static str,
    pub zombies_reaped: u64,
    pub signals_forwarded: u64,
    /// Live descendants and their RSS at the last scan.
    pub live: usize,
    pub rss: u64,
    pub peak_procs: usize,
    /// Live descendants' tasks (threads) at the last scan, and the most seen.
    pub tasks: u64,
    pub peak_tasks: u64,
    pub peak_rss: u64,
    pub max_procs: usize,
    pub max_memory: u64,
    pub cgroup_pids_max: Option<u64>,
    pub cgroup_memory_max: Option<u64>,
    pub units: Roles,
    pub terminating: usize,
    /// Live instances per launcher key (any order; `render` sorts and bounds them).
    pub instances: Vec<(String, usize)>,
    pub scans: Histogram,
    /// Requests the endpoint handled, by outcome (index into `OUTCOMES`).
    pub requests: [u64; OUTCOMES.len()],
}
