//! The health verdict: fresh, still governing, within the thresholds.

use super::render::cap;
use super::{duration, size, State};
use std::fmt;

/// The state is rewritten at least every 10 s (the heartbeat, whatever the scan
/// interval: the loop wakes up for it); three missed beats mean the writer is stuck.
const STALE_AFTER_MS: u64 = 30_000;
/// A file written further ahead of our clock than this was not written by a live
/// mcpinit on this machine (its clock and ours are the same one): treated as unhealthy
/// rather than as "0.0s old" forever.
const FUTURE_SLACK_MS: u64 = 5_000;
/// The scan intervals mcpinit accepts (config: at least 10ms; values: at most ten
/// years). Anything else in the file was not written by mcpinit.
const SCAN_INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=315_360_000_000;

/// Why `health` fails although the file was read and its writer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    Stale {
        age_ms: u64,
        pid: i32,
    },
    FromTheFuture {
        ahead_ms: u64,
        pid: i32,
    },
    BadScanInterval {
        ms: u64,
    },
    ShuttingDown,
    OverCap {
        live: u64,
        max: u64,
        dry_run: bool,
    },
    OverMemory {
        rss: u64,
        max: u64,
        dry_run: bool,
    },
    Blind {
        errno: String,
        unread: u64,
    },
    /// Instances a gateway tracked were ended by a signal: MetaMCP counts each as a
    /// crash and, at MCP_MAX_ATTEMPTS, takes the server's tools away until it is edited.
    Crashes {
        count: u64,
    },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let dry = |dry_run: bool| if dry_run { " (dry run)" } else { "" };
        match *self {
            Unhealthy::Stale { age_ms, pid } => write!(
                f,
                "state is {} old (limit {}): mcpinit (pid {pid}) stopped updating it",
                duration(age_ms),
                duration(STALE_AFTER_MS)
            ),
            Unhealthy::FromTheFuture { ahead_ms, pid } => write!(
                f,
                "state claims to be written {} in the future (pid {pid}): not written by a \
                 live mcpinit on this clock",
                duration(ahead_ms)
            ),
            Unhealthy::BadScanInterval { ms } => write!(
                f,
                "scan_interval_ms {ms} is outside what mcpinit accepts (10ms to 10 years)"
            ),
            Unhealthy::Blind { ref errno, unread } => write!(
                f,
                "scans cannot see every process ({errno}, {unread} unread): the counts are \
                 not to be trusted and nothing is enforced"
            ),
            Unhealthy::Crashes { count } => write!(
                f,
                "{count} instance(s) a gateway tracked had to be ended by a signal, which a \
                 gateway such as MetaMCP counts as a crash (its servers may be in ERROR)"
            ),
            Unhealthy::ShuttingDown => {
                f.write_str("the main child has exited; mcpinit is shutting down")
            }
            Unhealthy::OverCap { live, max, dry_run } => write!(
                f,
                "{live} live processes, over MCPINIT_MAX_PROCS={max}{}",
                dry(dry_run)
            ),
            Unhealthy::OverMemory { rss, max, dry_run } => write!(
                f,
                "rss {}, over MCPINIT_MAX_MEMORY={}{}",
                size(rss),
                size(max),
                dry(dry_run)
            ),
        }
    }
}

/// Health: fresh, still governing, within the thresholds. Ok carries the summary line.
pub fn verdict(state: &State, now_ms: u64) -> Result<String, Unhealthy> {
    let pid = state.pid;
    let ahead_ms = state.updated_unix_ms.saturating_sub(now_ms);
    if ahead_ms > FUTURE_SLACK_MS {
        return Err(Unhealthy::FromTheFuture { ahead_ms, pid });
    }
    let age_ms = now_ms.saturating_sub(state.updated_unix_ms);
    if age_ms > STALE_AFTER_MS {
        return Err(Unhealthy::Stale { age_ms, pid });
    }
    let s = &state.settings;
    if !SCAN_INTERVAL_MS.contains(&s.scan_interval_ms) {
        return Err(Unhealthy::BadScanInterval {
            ms: s.scan_interval_ms,
        });
    }
    if state.main_pid.is_none() {
        return Err(Unhealthy::ShuttingDown);
    }
    if let Some(blind) = &state.blind {
        return Err(Unhealthy::Blind {
            errno: blind.errno.clone(),
            unread: blind.unread,
        });
    }
    if s.max_procs > 0 && state.live > s.max_procs {
        return Err(Unhealthy::OverCap {
            live: state.live,
            max: s.max_procs,
            dry_run: s.dry_run,
        });
    }
    if state.counters.crashes > 0 {
        return Err(Unhealthy::Crashes {
            count: state.counters.crashes,
        });
    }
    if s.max_memory > 0 && state.rss > s.max_memory {
        return Err(Unhealthy::OverMemory {
            rss: state.rss,
            max: s.max_memory,
            dry_run: s.dry_run,
        });
    }
    Ok(format!(
        "{} live processes (cap {}), rss {}, state {} old",
        state.live,
        cap(s.max_procs, |n| n.to_string()),
        size(state.rss),
        duration(age_ms)
    ))
}
