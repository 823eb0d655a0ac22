//! The effect side of `activity`: read `/proc/PID/io` of the leaves of the units the
//! policy needs to know about, feed the tracker, and hand the policy each unit's use.
//!
//! Only leaves are read: a launcher's counters (`npm exec`, `sh -c`, `uv`) never move
//! with the traffic, while the server at the bottom reads every request. A unit's
//! leaves are its members with no child among the members.

use crate::activity::{self, Tracker, Use};
use crate::policy::Activity;
use crate::proctree::{push_decimal, read_at, Snapshot};
use crate::units::{Unit, UnitId};
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Between two samples while nothing is about to be decided: a tenth of the idle time
/// (a last input is then known at most that late, which only errs towards keeping),
/// never more often than the tree is scanned, and at least once a minute.
pub fn period(idle: Duration, scan_interval: Duration) -> Duration {
    (idle / 10).clamp(scan_interval, Duration::from_secs(60).max(scan_interval))
}

/// A sample younger than this is fresh enough to act on.
pub const FRESH: Duration = Duration::from_secs(1);

/// Read the leaves of `ids` (units of `units`, seen in `snapshot`) into `tracker`, and
/// return what is known of each of them. Processes of other units are forgotten.
pub fn sample(
    tracker: &mut Tracker,
    snapshot: &Snapshot,
    units: &[Unit],
    ids: &[UnitId],
) -> Activity {
    let now_ms = snapshot.now_ms;
    let wanted: HashSet<UnitId> = ids.iter().copied().collect();
    let mut reader = Reader::new();
    let mut out = Activity::with_capacity(ids.len());
    tracker.begin(now_ms);
    for unit in units.iter().filter(|u| wanted.contains(&u.id)) {
        let seen = leaves(unit, snapshot).into_iter().map(|pid| {
            let proc = snapshot.get(pid);
            let (start, started_ms) = proc.map_or((0, 0), |p| (p.start, p.started_ms));
            let io = reader.as_mut().and_then(|r| r.read(pid));
            tracker.observe(pid, start, started_ms, io, now_ms)
        });
        if let Some(unit_use) = activity::unit_use(seen.collect::<Vec<Use>>()) {
            out.insert(unit.id, unit_use);
        }
    }
    tracker.finish();
    out
}

/// Members of `unit` that have no child among its members.
pub fn leaves(unit: &Unit, snapshot: &Snapshot) -> Vec<i32> {
    let parents: HashSet<i32> = unit
        .pids
        .iter()
        .filter_map(|&pid| snapshot.get(pid).map(|p| p.ppid))
        .collect();
    unit.pids
        .iter()
        .copied()
        .filter(|pid| !parents.contains(pid))
        .collect()
}

/// `/proc/PID/io`, read relative to one open /proc with one reused buffer.
struct Reader {
    proc_dir: File,
    buf: Vec<u8>,
    path: Vec<u8>,
}

impl Reader {
    fn new() -> Option<Reader> {
        Some(Reader {
            proc_dir: File::open("/proc").ok()?,
            buf: vec![0; 256],
            path: Vec::with_capacity(24),
        })
    }

    /// None when unreadable: gone, or no ptrace rights over it (another user).
    fn read(&mut self, pid: i32) -> Option<activity::Io> {
        self.path.clear();
        push_decimal(&mut self.path, pid.unsigned_abs());
        self.path.extend_from_slice(b"/io\0");
        let path = std::ffi::CStr::from_bytes_with_nul(&self.path).ok()?;
        let len = read_at(self.proc_dir.as_raw_fd(), path, &mut self.buf)?;
        activity::parse_io(&self.buf[..len])
    }
}
