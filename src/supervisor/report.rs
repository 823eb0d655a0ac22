//! What the operator sees of the loop: threshold warnings, escalation lines, and the
//! state file for `status` and `health`.

use super::{Supervisor, STATE_HEARTBEAT, STATE_MIN_GAP};
use crate::policy;
use crate::proctree::Snapshot;
use crate::statefile;
use crate::terminate::Event;
use crate::units::{Unit, UnitId};
use log::{debug, error, warn};
use std::time::Instant;

impl Supervisor {
    pub(super) fn fingerprint(&self, snapshot: &Snapshot) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for p in &snapshot.procs {
            (p.pid, p.start, p.state, p.ppid, p.pgid, p.cmdline.len()).hash(&mut hasher);
        }
        let mut busy: Vec<_> = self.terminations.busy().into_iter().collect();
        busy.sort();
        busy.hash(&mut hasher);
        self.counters.hash(&mut hasher);
        hasher.finish()
    }

    pub(super) fn watch_thresholds(&mut self, plan: &policy::Plan, units: &[Unit]) {
        let cap = self.config.max_procs;
        if cap > 0 {
            let near = plan.live * 5 > cap * 4;
            if near && !self.near_cap_warned {
                warn!(event = "near_cap", live = plan.live, max_procs = cap; "{} live processes, above 80% of the cap of {cap}", plan.live);
            }
            self.near_cap_warned = near;
        }
        if plan.main_over_memory && !self.main_memory_warned {
            let rss = units
                .iter()
                .find(|u| u.id == UnitId::Main)
                .map_or(0, |u| u.rss);
            error!(event = "main_over_memory", pid = self.main, rss = rss, max_memory = self.config.max_memory; "the main child alone uses {} MiB, over the memory cap; leaving it to the kernel", rss >> 20);
        }
        self.main_memory_warned = plan.main_over_memory;
    }

    pub(super) fn log_escalation(&mut self, event: Event) {
        match event {
            Event::Killed { id, pids } => {
                self.counters.escalations += 1;
                let pgid = match id {
                    UnitId::Group(pgid) => pgid,
                    _ => 0,
                };
                let pids = join(&pids);
                warn!(event = "escalate", unit = unit_name(id).as_str(), pgid = pgid, pids = pids.as_str();
                    "{} still alive after the kill grace, sending SIGKILL", unit_name(id));
            }
            Event::Gone { id, reason } => {
                debug!(event = "unit_gone", unit = unit_name(id).as_str(), reason = reason.as_str(); "{} is gone", unit_name(id));
            }
            Event::Stuck { id, pids } => {
                let pids = join(&pids);
                error!(event = "stuck", unit = unit_name(id).as_str(), pids = pids.as_str(); "{} survives SIGKILL (uninterruptible?); giving up on it", unit_name(id));
            }
        }
    }

    pub(super) fn write_state_if_due(&mut self, now: Instant) {
        let due = match self.state_written {
            None => true,
            Some(at) => {
                (self.state_dirty && now >= at + STATE_MIN_GAP) || now >= at + STATE_HEARTBEAT
            }
        };
        if !due {
            return;
        }
        let (snapshot, units, duplicates) = (&self.last.0, self.last.1.as_slice(), &self.last.2);
        let terminating = self.terminations.reasons();
        let view = statefile::View {
            config: &self.config,
            pid: self.me,
            main: self.main_exit.is_none().then_some(self.main),
            started_unix_ms: self.started_unix_ms,
            limits: self.limits,
            snapshot,
            units,
            duplicates,
            terminating: &terminating,
            counters: &self.counters,
        };
        if let Err(e) = statefile::write(&self.state_path, &view) {
            // Once: the drain after the child's exit forces a write the same way.
            if self.state_written.is_none() && self.main_exit.is_none() {
                warn!(event = "state_error", path = self.state_path.display().to_string().as_str(); "cannot write the state file {}: {e}", self.state_path.display());
            }
        }
        self.state_written = Some(now);
        self.state_dirty = false;
    }
}

fn unit_name(id: UnitId) -> String {
    match id {
        UnitId::Main => "main child".into(),
        UnitId::Group(pgid) => format!("process group {pgid}"),
        UnitId::Subtree(root) => format!("subtree of {root}"),
    }
}

pub(super) fn join(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
