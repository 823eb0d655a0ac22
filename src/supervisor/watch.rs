//! The effect side of `activity`: read the counters of the processes that hold the
//! input of the units the policy needs to know about, feed the tracker, and hand the
//! policy each unit's use.
//!
//! A unit's readers are its members holding its input socket (or pipe) at any
//! descriptor (`activity::readers`): the server whatever the tree's shape, with or
//! without a helper child, at fd 0 or, for Python on the mcp 2.x SDK, at fd 6 or 7.
//! When no member has a socket or pipe at fd 0 (stdin from /dev/null), the unit's
//! leaves are read instead: its members with no child among the members.

use crate::config::Config;
use crate::core::activity::{self, Holding, Tracker, Use};
use crate::core::policy::{self, Activity, Plan};
use crate::core::process::{ProcId, Snapshot};
use crate::core::units::{Unit, UnitId};
use crate::sys::holdings::Reader;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The policy with the input it needs, read as recently as it needs it: the
/// instances of keys with surplus instances are looked at every `period`, and when a
/// plan would end an instance by its input, every instance is read afresh and the plan
/// made again, so nothing is ended on a stale look.
pub struct Watcher {
    tracker: Tracker,
    holders: Holders,
    uses: Activity,
    next_sample: Option<Instant>,
    sampled: Option<Instant>,
    due: Option<Instant>,
}

impl Watcher {
    pub fn new(config: &Config) -> Watcher {
        Watcher {
            tracker: Tracker::new(activity::startup_ms(config.dedupe_idle.as_millis() as u64)),
            holders: Holders::default(),
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
        self.uses = sample(&mut self.tracker, &mut self.holders, snapshot, units, ids);
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

/// Who reads each watched unit's input, as found for its members at the time: found
/// again only when the members change. A process can come to hold the socket only by
/// being forked by a holder, which changes the members, so the descriptor links (the
/// bulk of a look's cost) are read once per unit shape, not at every look.
#[derive(Debug, Default)]
pub struct Holders {
    known: HashMap<UnitId, (Vec<ProcId>, Vec<i32>)>,
}

/// Read the readers of `ids` (units of `units`, seen in `snapshot`) into `tracker`, and
/// return what is known of each of them. Processes of other units are forgotten.
pub fn sample(
    tracker: &mut Tracker,
    holders: &mut Holders,
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
        let members: Vec<ProcId> = unit
            .pids
            .iter()
            .filter_map(|&pid| snapshot.get(pid).map(|p| p.id()))
            .collect();
        let readers = match (holders.known.get(&unit.id), reader.as_mut()) {
            (Some((seen, pids)), _) if *seen == members => pids.clone(),
            (_, Some(r)) => {
                let pids = readers(r, unit, snapshot);
                holders.known.insert(unit.id, (members, pids.clone()));
                pids
            }
            (_, None) => leaves(unit, snapshot),
        };
        let seen = readers.into_iter().map(|pid| {
            let proc = snapshot.get(pid);
            let (start, started_ms) = proc.map_or((0, 0), |p| (p.start, p.started_ms));
            let io = reader.as_mut().and_then(|r| r.io(pid));
            tracker.observe(pid, start, started_ms, io, now_ms)
        });
        if let Some(unit_use) = activity::unit_use(seen.collect::<Vec<Use>>()) {
            out.insert(unit.id, unit_use);
        }
    }
    tracker.finish();
    holders.known.retain(|id, _| wanted.contains(id));
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

/// The members of `unit` whose reads are its input: those holding its input, or its
/// leaves when it has none (see the module's comment).
pub fn readers(reader: &mut Reader, unit: &Unit, snapshot: &Snapshot) -> Vec<i32> {
    let members: Vec<Holding> = unit
        .pids
        .iter()
        .map(|&pid| Holding {
            pid,
            held: reader.held(pid),
        })
        .collect();
    match activity::readers(&members) {
        Some((_, pids)) => pids,
        None => leaves(unit, snapshot),
    }
}
