//! The state file for `status` and `health`: the only place it is written. Rewritten
//! when what it shows changed (at most every STATE_MIN_GAP), and as a heartbeat: a
//! rewrite when a look was taken since, else a new modification time on the file.

use crate::core::process::Snapshot;
use crate::core::units::UnitId;
use crate::surface::statefile::{self, Counters};
use log::warn;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// State file rewrites: at most this often, and at least this often as a heartbeat.
pub(super) const STATE_MIN_GAP: Duration = Duration::from_millis(250);
pub(super) const STATE_HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct Publisher {
    path: PathBuf,
    written: Option<Instant>,
    dirty: bool,
    /// What the state file last showed, minus RSS and ages (those ride the heartbeat).
    fingerprint: u64,
    warned: bool,
    /// A descriptor held in reserve (/dev/null, opened at start) and given up for a
    /// write that found none left: when mcpinit is out of descriptors, the state file
    /// is what tells the operator, through `health`, that its scans are blind.
    reserve: Option<std::fs::File>,
    /// The file last written, for a heartbeat that shows nothing new; and whether a
    /// look was taken since (its RSS and ages are worth the rewrite).
    file: Option<std::fs::File>,
    looked: bool,
}

fn reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

impl Publisher {
    pub(super) fn new(path: PathBuf) -> Publisher {
        Publisher {
            path,
            written: None,
            dirty: true,
            fingerprint: 0,
            warned: false,
            reserve: reserve(),
            file: None,
            looked: false,
        }
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// When a rewrite falls due; None before the first write (which is due at once).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let gap = if self.dirty {
            STATE_MIN_GAP
        } else {
            STATE_HEARTBEAT
        };
        self.written.map(|at| at + gap)
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.next_deadline().is_none_or(|at| now >= at)
    }

    /// Something the document shows changed.
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// After a look: the document changed if its fingerprint did.
    pub(super) fn observe(&mut self, fingerprint: u64) {
        self.looked = true;
        if fingerprint != self.fingerprint {
            self.fingerprint = fingerprint;
            self.dirty = true;
        }
    }

    /// Write `view` now. A failure is told once: the heartbeat would repeat it every
    /// few seconds, and `status` says the file is missing or stale anyway.
    pub(super) fn write(&mut self, now: Instant, view: &statefile::View) {
        if !self.dirty && !self.looked {
            // Nothing was looked at since: the heartbeat alone, whatever the population
            // (at 5,000 processes a rewrite costs about 8 ms).
            if let Some(file) = &self.file {
                if statefile::touch(file).is_ok() {
                    self.written = Some(now);
                    return;
                }
            }
        }
        self.file = None;
        self.looked = false;
        let mut written = statefile::write(&self.path, view);
        let starved = |e: &statefile::WriteError| {
            matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
        };
        if written.as_ref().is_err_and(starved) && self.reserve.take().is_some() {
            written = statefile::write(&self.path, view);
            self.reserve = reserve();
        }
        match written {
            Ok(file) => self.file = Some(file),
            Err(e) if !self.warned => {
                self.warned = true;
                warn!(event = "state_error", path = self.path.display().to_string().as_str(); "cannot write the state file {}: {e}", self.path.display());
            }
            Err(_) => {}
        }
        self.written = Some(now);
        self.dirty = false;
    }
}

/// What the state file would show, minus RSS and ages.
pub(super) fn fingerprint(snapshot: &Snapshot, busy: &HashSet<UnitId>, counters: &Counters) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for p in &snapshot.procs {
        (p.pid, p.start, p.state, p.ppid, p.pgid, p.cmdline.len()).hash(&mut hasher);
    }
    let mut busy: Vec<_> = busy.iter().collect();
    busy.sort();
    busy.hash(&mut hasher);
    counters.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_follow_the_gap_when_dirty_and_the_heartbeat_when_not() {
        let t0 = Instant::now();
        let mut p = Publisher::new(PathBuf::from("/nonexistent/dir/state.json"));
        assert!(p.due(t0), "the first write is due at once");
        assert_eq!(p.next_deadline(), None);
        p.written = Some(t0);
        p.dirty = false;
        assert_eq!(p.next_deadline(), Some(t0 + STATE_HEARTBEAT));
        assert!(!p.due(t0 + STATE_MIN_GAP));
        p.observe(p.fingerprint);
        assert!(!p.dirty, "the same fingerprint is no change");
        p.observe(p.fingerprint + 1);
        assert_eq!(p.next_deadline(), Some(t0 + STATE_MIN_GAP));
        assert!(p.due(t0 + STATE_MIN_GAP));
    }
}
