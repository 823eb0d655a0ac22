//! The health verdict: fresh, still governing, within the thresholds.

use super::render::cap;
use super::{duration, size, State};

/// The state is rewritten at least every 10 s (heartbeat); three missed beats mean the
/// writer is stuck. A scan interval longer than that stretches the limit with it, since
/// the loop may sleep that long between two writes.
const STALE_AFTER_MS: u64 = 30_000;

/// Health: fresh, still governing, within the thresholds. Ok carries the summary line.
pub fn verdict(state: &State, now_ms: u64) -> Result<String, String> {
    let age = now_ms.saturating_sub(state.updated_unix_ms);
    let limit = STALE_AFTER_MS.max(state.settings.scan_interval_ms.saturating_mul(3));
    if age > limit {
        return Err(format!(
            "state is {} old (limit {}): mcpinit (pid {}) stopped updating it",
            duration(age),
            duration(limit),
            state.pid
        ));
    }
    if state.main_pid.is_none() {
        return Err("the main child has exited; mcpinit is shutting down".into());
    }
    let s = &state.settings;
    if s.max_procs > 0 && state.live > s.max_procs {
        return Err(format!(
            "{} live processes, over MCPINIT_MAX_PROCS={}{}",
            state.live,
            s.max_procs,
            if s.dry_run { " (dry run)" } else { "" }
        ));
    }
    if s.max_memory > 0 && state.rss > s.max_memory {
        return Err(format!(
            "rss {}, over MCPINIT_MAX_MEMORY={}{}",
            size(state.rss),
            size(s.max_memory),
            if s.dry_run { " (dry run)" } else { "" }
        ));
    }
    Ok(format!(
        "{} live processes (cap {}), rss {}, state {} old",
        state.live,
        cap(s.max_procs, |n| n.to_string()),
        size(state.rss),
        duration(age)
    ))
}
