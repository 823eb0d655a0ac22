//! The effect side of `activity`: read `/proc/PID/io` of the leaves of the units the
//! policy needs to know about, feed the tracker, and hand the policy each unit's use.
//!
//! Only leaves are read: a launcher's counters (`npm exec`, `sh -c`, `uv`) never move
//! with the traffic, while the server at the bottom reads every request. A unit's
//! leaves are its members with no child among the members.

use crate::config::Config;
use crate::core::activity::{self, Tracker, Use};
use crate::core::policy::{self, Activity, Plan};
use crate::core::process::Snapshot;
use crate::core::units::{Unit, UnitId};
use crate::sys::procfs::{push_decimal, read_at};
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The policy with the input it needs, read as recently as it needs it: the
/// instances of keys with surplus instances are looked at every `period`, and when a
/// plan would end an instance by its input, every instance is read afresh and the plan
/// made again, so nothing is ended on a stale look.
pub struct Watcher {
    tracker: Tracker,
    uses: Activity,
    next_sample: Option<Instant>,
    sampled: Option<Instant>,
    due: Option<Instant>,
}

impl Watcher {
    pub fn new(config: &Config) -> Watcher {
        Watcher {
            tracker: Tracker::new(activity::startup_ms(config.dedupe_idle.as_millis() as u64)),
            uses: Activity::new(),
            next_sample: None,
            sampled: None,
            due: None,
        }
    }

    /// What is known of the watched units' input, for the state file.
    pub fn uses(&self) -> &Activity {
        &self.uses
    }

    /// When a decision falls due without any change a probe sees: an instance kept
    /// for its input runs out of it, or the next look at the input.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    pub fn decide(
        &mut self,
        snapshot: &Snapshot,
        units: &[Unit],
        config: &Config,
        busy: &HashSet<UnitId>,
        now: Instant,
    ) -> Plan {
        let watched = policy::watched(units, config, busy);
        let period = period(config.dedupe_idle, config.scan_interval);
        if watched.is_empty() {
            // Nothing to decide by input: forget, and start over when there is.
            self.uses.clear();
            self.tracker.begin(snapshot.now_ms);
            self.tracker.finish();
            self.next_sample = None;
        } else if self.next_sample.is_none_or(|at| now >= at) {
            self.sample(snapshot, units, &watched, now, period);
        }
        let mut plan = policy::decide(units, &self.uses, config, snapshot.now_ms, busy);
        let fresh = self.sampled.is_some_and(|at| now < at + FRESH);
        if plan.uses_activity && !fresh && !config.dedupe_idle.is_zero() {
            let all = policy::all_instances(units, busy);
            self.sample(snapshot, units, &all, now, period);
            plan = policy::decide(units, &self.uses, config, snapshot.now_ms, busy);
        }
        let due = plan
            .due_ms
            .map(|at| now + Duration::from_millis(at.saturating_sub(snapshot.now_ms)));
        self.due = due.into_iter().chain(self.next_sample).min();
        plan
    }

    fn sample(
        &mut self,
        snapshot: &Snapshot,
        units: &[Unit],
        ids: &[UnitId],
        now: Instant,
        period: Duration,
    ) {
        self.uses = sample(&mut self.tracker, snapshot, units, ids);
        self.sampled = Some(now);
        self.next_sample = Some(now + period);
    }
}

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
        let len = read_at(self.proc_dir.as_fd(), path, &mut self.buf).ok()?;
        activity::parse_io(&self.buf[..len])
    }
}
