//! The storm brake. A look that finds the tree jumped well past the cap stops
//! (SIGSTOP) whatever forked the units it ends, before ending them, and continues it
//! (SIGCONT) a hold later. A forker that forks faster than looks can follow (thousands
//! a second) then gains at most what it forks between two looks, instead of what it
//! forks while mcpinit reads, decides and signals; and one that keeps at it is held
//! twice as long each time, up to BRAKE_HOLD, so that mcpinit is not made to end
//! thousands of units a second, one by one, for as long as the storm lasts.
//!
//! Why SIGSTOP and not the cgroup freezer: the freezer freezes a whole cgroup, and in
//! a container mcpinit lives in the cgroup it governs (docs/benchmarks.md, "Fork storm").

use crate::core::policy::{Decision, Reason};
use crate::core::process::{ProcId, Snapshot};
use crate::core::units::{Unit, UnitId};
use crate::sys::kernel::Kernel;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The first hold of a storm, and the gap between looks while it lasts: a forker
/// forking 10,000 a second gains about 20 processes in 2 ms.
pub(super) const STORM_GAP: Duration = Duration::from_millis(2);
/// From a hold's end to the look after it: what a continued forker forks before the
/// next brake is most of a storm's peak.
pub(super) const RESUME_GAP: Duration = Duration::from_millis(1);
/// Each brake within a storm holds twice as long as the one before, never longer than
/// this: the main child may be the forker, and every session waits on it.
pub(super) const BRAKE_HOLD: Duration = Duration::from_millis(100);
/// After a hold ends, the tree is looked at every STORM_GAP for at least this long: a
/// continued forker may take a few milliseconds to reap and fork again.
pub(super) const RESUME_WATCH: Duration = Duration::from_millis(20);
/// A storm is over once this long passed without a brake: the next one starts again
/// from the shortest hold.
pub(super) const STORM_WATCH: Duration = Duration::from_secs(1);

/// The look ends more than a jump of processes for the cap before the brake acts (the
/// probe's burst too is growth past it): a few servers past it (a new session) are
/// ended without stopping anyone.
pub(super) use crate::core::policy::jump;

/// The processes to stop before `decisions` are carried out, when the units ended for
/// the cap hold more than `jump(cap)` processes: whatever forked those, or anything
/// started since the look before (`since_ms`, a tick early): the cap ends only what it
/// must, newest first, while every forker of a storm is forking. A forker is a live
/// parent of at least two of those processes, none of which is a forker itself: the
/// main child that starts single-process groups, or a shell loop inside the main
/// child's group that forks `sleep &` (not the main shell above the loops, which forked
/// each loop once). It may be a member of a unit being ended: stopped, it forks no more
/// before the SIGTERM that comes with a SIGCONT. Never mcpinit itself (it adopted them:
/// nothing of ours forks them). Whether one is stopped already is the effect's to read
/// (`apply`): the state a look keeps may be from a stop of ours.
/// Pure: (pid, start) pairs, so the effect can tell a reused pid.
pub(super) fn forkers(
    decisions: &[Decision],
    units: &[Unit],
    snapshot: &Snapshot,
    since_ms: u64,
    me: i32,
    cap: usize,
) -> Vec<ProcId> {
    let capped: HashSet<UnitId> = (decisions.iter())
        .filter(|d| d.reason == Reason::Cap)
        .map(|d| d.unit)
        .collect();
    let mut ended: HashSet<i32> = (units.iter())
        .filter(|u| capped.contains(&u.id))
        .flat_map(|u| u.pids.iter().copied())
        .collect();
    if cap == 0 || ended.len() <= jump(cap) {
        return Vec::new();
    }
    ended.extend(
        (snapshot.procs.iter())
            .filter(|p| !p.is_zombie() && p.started_ms + TICK_MS >= since_ms)
            .map(|p| p.pid),
    );
    let edges = (ended.iter()).filter_map(|&pid| snapshot.get(pid).map(|p| (pid, p.ppid)));
    let mut out: Vec<ProcId> = forking_parents(edges, me)
        .into_iter()
        .filter_map(|parent| snapshot.get(parent))
        .filter(|parent| !parent.is_zombie())
        .map(|parent| parent.id())
        .collect();
    out.sort_by_key(|f| f.pid);
    out
}

/// The forkers among `edges` (pid, ppid): parents of at least two of them, none of
/// which is a forker itself, never `me` nor a parent outside the namespace (0).
fn forking_parents(edges: impl Iterator<Item = (i32, i32)>, me: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, ppid) in edges {
        children.entry(ppid).or_default().push(pid);
    }
    let forks = |pid: &i32| children.get(pid).is_some_and(|c| c.len() >= 2);
    let mut out: Vec<i32> = (children.iter())
        .filter(|&(&parent, kids)| forks(&parent) && !kids.iter().any(forks))
        .map(|(&parent, _)| parent)
        .filter(|&parent| parent != me && parent > 0)
        .collect();
    out.sort_unstable();
    out
}

/// The forkers of a jump the probe saw before any look, among the `newest` processes
/// (pid, ppid): `forking_parents`. Pure; whether each is ours is the effect's to check
/// (`Brake::early`).
pub(super) fn newest_forkers(newest: &[(i32, i32)], me: i32) -> Vec<i32> {
    forking_parents(newest.iter().copied(), me)
}

/// How far up a forker's parents are followed to find mcpinit, at most.
const ANCESTRY_MAX: usize = 64;

/// A start time's resolution: /proc gives it in clock ticks (USER_HZ, 100 a second).
const TICK_MS: u64 = 10;

/// The forkers held stopped, and until when.
#[derive(Default)]
pub(super) struct Brake {
    held: Vec<ProcId>,
    until: Option<Instant>,
    /// When the last hold ended, and whom it continued: for RESUME_WATCH they are
    /// stopped again as soon as the count jumps, before a look has read the tree.
    released: Option<Instant>,
    resumed: Vec<ProcId>,
    last_applied: Option<Instant>,
    storm: Option<Storm>,
}

/// A storm, from its first brake to STORM_WATCH after its last: what its log lines say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Storm {
    pub started: Instant,
    pub brakes: u32,
    pub longest_hold: Duration,
}

impl Brake {
    /// Stop `forkers`, each read again first: one that is gone, was reused, or is
    /// already stopped (by someone else: not ours to continue) is left alone. Returns
    /// the pids stopped when this starts a storm, for its log line.
    pub(super) fn apply(
        &mut self,
        kernel: &mut impl Kernel,
        forkers: &[ProcId],
        now: Instant,
    ) -> Option<Vec<i32>> {
        for &who in forkers {
            if self.held.contains(&who) {
                continue;
            }
            let running = (kernel.stat(who.pid))
                .is_some_and(|s| s.start == who.start && !matches!(s.state, b'T' | b't'));
            if running && kernel.send(who, &[libc::SIGSTOP]) {
                self.held.push(who);
            }
        }
        if self.held.is_empty() {
            return None;
        }
        if !self.watching(now) {
            self.storm = None;
        }
        let storm = self.storm.get_or_insert(Storm {
            started: now,
            brakes: 0,
            longest_hold: Duration::ZERO,
        });
        storm.brakes += 1;
        let hold = hold(storm.brakes);
        storm.longest_hold = storm.longest_hold.max(hold);
        self.until.get_or_insert(now + hold);
        self.last_applied = Some(now);
        (storm.brakes == 1).then(|| self.held.iter().map(|f| f.pid).collect())
    }

    /// Stop the forkers of the `newest` processes (`newest_forkers`) before the look
    /// that the probe's jump calls for: under a storm that look takes milliseconds to
    /// tens of them (a core shared with every process the storm makes runnable), and
    /// the storm forks on meanwhile. Only descendants of mcpinit (`me`) are stopped,
    /// each followed up its parents; the look that comes next decides the rest, and
    /// the hold is a storm's first (STORM_GAP) unless one is under way.
    pub(super) fn early(
        &mut self,
        kernel: &mut impl Kernel,
        newest: &[(i32, i32)],
        me: i32,
        now: Instant,
    ) -> Option<Vec<i32>> {
        let mut forkers: Vec<ProcId> = Vec::new();
        for pid in newest_forkers(newest, me) {
            let Some(stat) = kernel.stat(pid) else {
                continue;
            };
            let (mut ppid, mut ours) = (stat.ppid, false);
            for _ in 0..ANCESTRY_MAX {
                if ppid == me {
                    ours = true;
                    break;
                }
                match kernel.stat(ppid) {
                    Some(parent) if ppid > 1 => ppid = parent.ppid,
                    _ => break,
                }
            }
            if ours {
                forkers.push(ProcId {
                    pid,
                    start: stat.start,
                });
            }
        }
        if forkers.is_empty() {
            return None;
        }
        self.apply(kernel, &forkers, now)
    }

    /// Continue every forker held: the hold ran out, or something will not wait for
    /// it (shutdown, a signal to forward: a stopped process would not act on either).
    pub(super) fn release(&mut self, kernel: &mut impl Kernel, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        for &who in &self.held {
            kernel.send(who, &[libc::SIGCONT]);
        }
        self.resumed = std::mem::take(&mut self.held);
        self.until = None;
        self.released = Some(now);
    }

    /// Continue every forker held, not to be stopped again without a look: shutdown
    /// or a signal to forward is why they run.
    pub(super) fn release_for_good(&mut self, kernel: &mut impl Kernel, now: Instant) {
        self.release(kernel, now);
        self.resumed.clear();
    }

    /// The count jumped past the cap's jump again right after a hold ended: stop the
    /// forkers just continued at once (each read again, as in `apply`), rather than
    /// after the look that finds it, which is most of what a storm gains per beat.
    /// True when one was stopped.
    pub(super) fn rebrake(&mut self, kernel: &mut impl Kernel, now: Instant) -> bool {
        if !self.resuming(now) || self.resumed.is_empty() || !self.held.is_empty() {
            return false;
        }
        let forkers = std::mem::take(&mut self.resumed);
        self.apply(kernel, &forkers, now);
        !self.held.is_empty()
    }

    fn resuming(&self, now: Instant) -> bool {
        self.released
            .is_some_and(|at| now.saturating_duration_since(at) < RESUME_WATCH)
    }

    /// The storm, once it is over: STORM_WATCH without a brake, nothing held.
    pub(super) fn over(&mut self, now: Instant) -> Option<Storm> {
        if self.watching(now) || !self.held.is_empty() {
            return None;
        }
        self.storm.take()
    }

    /// The pids held.
    pub(super) fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.held.iter().map(|f| f.pid)
    }

    /// When the hold runs out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.until
    }

    /// How long after a look at `now` to look again, in a storm: RESUME_GAP after the
    /// hold ends (nothing held forks before); then every STORM_GAP for RESUME_WATCH, and
    /// after that for as long as each look finds something `forked` since the one before
    /// (a storm's forker forks again at once); the usual gaps once one finds nothing (a
    /// burst's forker may never fork again, and is not followed every 2 ms for long).
    pub(super) fn next_look(&self, now: Instant, forked: bool) -> Option<Duration> {
        let resuming = self.resuming(now);
        match self.until {
            Some(at) => Some(at.saturating_duration_since(now) + RESUME_GAP),
            None => ((resuming || forked) && self.watching(now)).then_some(STORM_GAP),
        }
    }

    fn watching(&self, now: Instant) -> bool {
        self.last_applied
            .is_some_and(|at| now.saturating_duration_since(at) < STORM_WATCH)
    }
}

/// The hold of a storm's `brakes`-th brake: STORM_GAP, doubled each time, up to
/// BRAKE_HOLD.
pub(super) fn hold(brakes: u32) -> Duration {
    STORM_GAP
        .saturating_mul(1 << brakes.saturating_sub(1).min(16))
        .min(BRAKE_HOLD)
}

#[cfg(test)]
#[path = "brake_tests.rs"]
mod tests;
