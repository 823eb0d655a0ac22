//! When to look at the process tree, and how closely: periodic looks, skipped while
//! provably nothing changed, held back during a mass exit, pulled forward by what may
//! need a decision at once, and coalesced with deadlines a few milliseconds away; most
//! of them incremental, a full read every FULL_READ_INTERVALS. Pure: it is given the
//! clock and answers with instants.

use crate::core::process::Depth;
use std::time::{Duration, Instant};

/// What an unchanged mark proves about the tree since the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// Something forked or exited.
    Changed,
    /// Probably nothing: the count is the host's, which an exit here and a fork
    /// elsewhere leave as it was.
    Probably,
    /// Nothing forked (the cursor stayed) and nothing exited (the container's own
    /// count stayed): no process came, went or changed parent.
    Surely,
}

/// Scans triggered by SIGCHLD or the probe are at least this far apart.
pub const MIN_SCAN_GAP: Duration = Duration::from_millis(20);
/// The first look comes this soon after the start, and each next one at most as far
/// after the last as the start is before it (2, 4, 8 ... ms, up to the interval): a
/// tree grows fastest as it starts (MetaMCP starts its servers at once; a fork storm
/// from the entrypoint), and a look at a few processes costs microseconds.
pub const START_GAP: Duration = Duration::from_millis(2);
/// The shortest gap a growing tree gets, once the next look would find it at the cap:
/// a look at a few hundred processes takes about half of it.
pub const FILL_GAP: Duration = Duration::from_millis(1);
/// Periodic looks skipped in a row at most when the probe only says that probably
/// nothing changed (no cgroup task count to prove it): a look still happens at least
/// every (1 + this) scan intervals.
pub const MAX_QUIET_SCANS: u32 = 4;
/// A sweep (`Depth::Sweep`), at least every this many scan intervals: the safety net
/// under incremental looks, for what they cannot see (an exec late in a process's life,
/// a zombie its parent keeps, a pid space wrapped within one look). At the default 1 s
/// that is every minute, and each sweep reads half the stats and an eighth of the
/// command lines: at 5,000 processes a whole read took 36 ms here and one with every
/// command line 74 ms, 0.06-0.12 % of a core in the minute that held it (issue 27).
pub const FULL_READ_INTERVALS: u32 = 60;
/// A probe or scan falling due this soon is done now: deadlines that drift a few
/// milliseconds apart then share one wake-up instead of costing two. A scan is taken
/// at most a quarter of its gap early.
pub const COALESCE: Duration = Duration::from_millis(10);
/// A periodic look waits while zombies keep coming (a mass exit): until this long after
/// the last reap, and never more than MAX_QUIET_SCANS intervals in all.
pub const REAP_PAUSE: Duration = Duration::from_millis(50);
/// While a termination is in flight, its unit is followed this closely.
pub const ESCALATION_SCAN: Duration = Duration::from_millis(100);
/// The longest the loop ever sleeps, whatever is (not) due.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);

pub struct Schedule {
    interval: Duration,
    started: Instant,
    next_scan: Instant,
    /// The next scan was pulled forward by something that may need a decision at once
    /// (a burst, a death that may orphan a unit, a kill deadline), not just the clock.
    urgent: bool,
    /// When the periodic scan fell due, and the last time a zombie was reaped.
    periodic_due: Instant,
    last_reaped: Option<Instant>,
    quiet_scans: u32,
    /// Something we must look at happened since the last scan: a reap, a probe jump.
    changed: bool,
    /// A decision may fall due by then without anything forking or exiting (a
    /// duplicate's settle time, input going quiet, a young process's exec): the first
    /// periodic look at or after it is never skipped.
    decide_at: Option<Instant>,
    /// When the last full read was taken.
    last_full: Instant,
    /// The last look: when, and the live descendants it counted.
    last_look: (Instant, usize),
    /// How early the next look may be taken to share a wake-up: COALESCE, less when
    /// the gap is short (a look due in 2 ms taken now would find nothing new), never
    /// in a storm.
    coalesce: Duration,
}

/// What the last scan found, for when to look next.
#[derive(Debug, Clone, Copy, Default)]
pub struct Found {
    /// More live processes than the cap, busy units counted as gone.
    pub over_cap: bool,
    /// In a fork storm (brake::Brake::next_look): the gap to the next look.
    pub storm: Option<Duration>,
    /// A termination is in flight.
    pub following: bool,
    /// When a decision may fall due without a fork or an exit showing it.
    pub decide_at: Option<Instant>,
    /// Live descendants counted (None: a blind look counted nothing), and how many
    /// more the cap allows with the busy units counted as gone (None: no cap).
    pub live: Option<usize>,
    pub headroom: Option<usize>,
}

impl Schedule {
    /// The first scan comes shortly after the start, once the child has had a moment.
    pub fn new(now: Instant, interval: Duration) -> Schedule {
        Schedule {
            interval,
            started: now,
            next_scan: now + START_GAP,
            urgent: false,
            periodic_due: now + START_GAP,
            last_reaped: None,
            quiet_scans: 0,
            changed: true,
            decide_at: None,
            last_full: now,
            last_look: (now, 0),
            coalesce: Duration::ZERO,
        }
    }

    pub fn next_deadline(&self) -> Instant {
        self.next_scan
    }

    /// Zombies were reaped at `now` (`others`: any besides the main child). `follow`:
    /// a death may orphan a unit or end one being terminated, so look soon, but not
    /// once per SIGCHLD. Nothing else decides on a death, so a storm of exits with
    /// orphans kept costs no scans at all.
    pub fn reaped(&mut self, now: Instant, others: bool, follow: bool) {
        self.changed = true;
        if others {
            self.last_reaped = Some(now);
        }
        if follow {
            self.next_scan = self.next_scan.min(now + MIN_SCAN_GAP);
            self.urgent = true;
        }
    }

    /// Something needs a decision now: a fork burst (`changed`), or a kill grace that
    /// ran out (the scan after it sends the SIGKILL).
    pub fn scan_now(&mut self, now: Instant, changed: bool) {
        self.changed |= changed;
        self.next_scan = now;
        self.urgent = true;
    }

    /// Whether to look at `now`, and how closely. A periodic look is held during a mass
    /// exit, and skipped when the loop's own state and `quiet` (the rest of the world:
    /// no termination to follow, no memory cap, the probe's mark as before; asked only
    /// when it matters, since it costs a read) say nothing a look could act on changed.
    pub fn due(&mut self, now: Instant, quiet: impl FnOnce() -> Quiet) -> Option<Depth> {
        if now >= self.next_scan && !self.urgent {
            self.hold_during_mass_exit(now);
        }
        if now + self.coalesce < self.next_scan {
            return None;
        }
        let full = now + COALESCE >= self.last_full + self.interval * FULL_READ_INTERVALS;
        let deciding = self.decide_at.is_some_and(|at| now + COALESCE >= at);
        if !full && !self.changed && !deciding {
            let skip = match quiet() {
                Quiet::Surely => true,
                Quiet::Probably => self.quiet_scans < MAX_QUIET_SCANS,
                Quiet::Changed => false,
            };
            if skip {
                self.quiet_scans += 1;
                self.next_scan = now + self.interval;
                self.coalesce = COALESCE.min(self.interval / 4);
                self.periodic_due = self.next_scan;
                return None;
            }
        }
        self.quiet_scans = 0;
        Some(if full {
            Depth::Sweep
        } else {
            Depth::Incremental
        })
    }

    /// A periodic scan in the middle of a mass exit reads thousands of dying processes
    /// and takes a core from their exits, to decide on a tree that is gone a moment
    /// later: while zombies keep coming it waits, so that a full scan still happens at
    /// least every 1 + MAX_QUIET_SCANS intervals.
    fn hold_during_mass_exit(&mut self, now: Instant) {
        if let Some(at) = self.last_reaped {
            let pause = at + REAP_PAUSE;
            let limit = self.periodic_due + self.interval * MAX_QUIET_SCANS;
            if now < pause && pause < limit {
                self.next_scan = pause;
            }
        }
    }

    /// A look of `depth` ran at `now` and found `found`.
    pub fn scanned(&mut self, now: Instant, depth: Depth, found: Found) {
        if depth != Depth::Incremental {
            self.last_full = now;
        }
        // Over the cap, something keeps forking (the busy units are already counted as
        // gone): look again at the shortest gap, or a storm gains a probe interval's
        // worth of forks per beat.
        let gap = if let Some(gap) = found.storm {
            gap
        } else if found.over_cap {
            MIN_SCAN_GAP
        } else if found.following {
            self.interval.min(ESCALATION_SCAN)
        } else {
            self.interval
        };
        let ramp = now.saturating_duration_since(self.started).max(START_GAP);
        let mut gap = gap.min(ramp);
        // At the rate since the last look the tree reaches the cap before the next: a
        // storm's first wave is met at the cap, not a doubled gap past it.
        let fill = self.fill_time(now, found).filter(|&fill| fill <= gap);
        if let (Some(fill), None) = (fill, found.storm) {
            gap = fill.clamp(FILL_GAP, START_GAP);
        }
        if let Some(live) = found.live {
            self.last_look = (now, live);
        }
        self.next_scan = now + gap;
        self.coalesce = if found.storm.is_some() {
            Duration::ZERO // the brake's gaps are timed to its holds
        } else {
            COALESCE.min(gap / 4)
        };
        self.periodic_due = self.next_scan;
        self.urgent = false;
        self.changed = false;
        self.decide_at = found.decide_at;
    }
}

impl Schedule {
    /// How soon the tree, growing as it did since the last look, fills the headroom
    /// the cap leaves; None when it does not grow or there is no cap.
    fn fill_time(&self, now: Instant, found: Found) -> Option<Duration> {
        let (then, before) = self.last_look;
        let grown = found.live?.checked_sub(before).filter(|&g| g > 0)?;
        let since = now.saturating_duration_since(then).as_nanos();
        let nanos = found.headroom? as u128 * since / grown as u128;
        Some(Duration::from_nanos(nanos.min(u64::MAX as u128) as u64))
    }
}

/// The loop's next wake-up: the earliest of the parts' deadlines, never in the past and
/// never more than LONGEST_WAIT away.
pub fn earliest(now: Instant, deadlines: impl IntoIterator<Item = Option<Instant>>) -> Instant {
    deadlines
        .into_iter()
        .flatten()
        .fold(now + LONGEST_WAIT, Instant::min)
        .max(now)
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
