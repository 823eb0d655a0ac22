//! The fork-burst probe: a cheap task count read every PROBE_INTERVAL while a cap is
//! set, so a burst is answered by a look long before the periodic one. With the pid
//! allocation cursor beside it, it is also what says a periodic look can be skipped.

use crate::core::schedule::{Quiet, COALESCE};
use crate::sys::cgroup;
use std::time::{Duration, Instant};

/// How often the cheap fork-burst probe runs while a cap is set and the tree moves.
/// A burst lands at any point of the period, so the probe alone takes half of it at the
/// median: 100 ms answers one in about 70 ms (docs/benchmarks.md), and it costs only
/// while the tree moves (below).
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// After this long with the mark unchanged (nothing forked or exited), the probe runs
/// only every IDLE_PROBE_INTERVAL. Each wake-up costs 75-90 us of CPU on this
/// machine, most of it the kernel's (a bare C loop of the same three system calls
/// costs as much), so at 200 ms an idle container would pay 0.04 % of a core for wake-ups
/// alone, over the 0.03 % target (docs/benchmarks.md). The price: a burst after a
/// quiet spell is answered within IDLE_PROBE_INTERVAL instead of PROBE_INTERVAL.
pub(super) const QUIET_BEFORE_BACKOFF: Duration = Duration::from_secs(10);
pub(super) const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// For FORK_WATCH after anything forked, the probe runs every FORKING_PROBE_INTERVAL:
/// storms start where something has just started (an entrypoint, a session), and a
/// shell loop forks 2,000-3,000 processes a second here, so at 100 ms the first look
/// came with 250-400 already forked against a cap of 100 (issue 27). The price: 40
/// wake-ups a second for those 2 s, ~4 ms of CPU here.
pub(super) const FORKING_PROBE_INTERVAL: Duration = Duration::from_millis(25);
pub(super) const FORK_WATCH: Duration = Duration::from_secs(2);

pub(super) struct Probe {
    /// The cap on live descendants; 0: no cap, and no timed probing.
    cap: u64,
    /// The container's own task count (`pids.current`, kept open), when its cgroup has
    /// one.
    pids_current: Option<std::fs::File>,
    next: Instant,
    /// The last mark read, when it last differed from the one before, and when its
    /// pid cursor last moved (something forked).
    last: Mark,
    changed_at: Instant,
    forked_at: Option<Instant>,
    /// /proc/loadavg, kept open, for the pid allocation cursor.
    loadavg: Option<std::fs::File>,
    /// The mark when the last look was taken, and the live descendants that look
    /// projected (the busy units counted as gone).
    baseline: Mark,
    last_projected: usize,
}

/// What the probe reads: the task count, and the last pid the kernel handed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Mark {
    pub tasks: u64,
    pub last_pid: Option<i32>,
}

/// The probe's mark, read at most once per wake-up: the probe, the quiet check and a
/// look's baseline often fall on the same one.
#[derive(Default)]
pub(super) struct Reading(Option<Mark>);

impl Reading {
    /// The mark, if one was read.
    pub(super) fn taken(&self) -> Option<Mark> {
        self.0
    }
}

impl Probe {
    pub(super) fn new(cap: usize, pids_current: Option<std::fs::File>, now: Instant) -> Probe {
        Probe {
            cap: cap as u64,
            pids_current,
            loadavg: std::fs::File::open("/proc/loadavg").ok(),
            next: now + PROBE_INTERVAL,
            last: Mark::default(),
            changed_at: now,
            forked_at: None,
            baseline: Mark::default(),
            last_projected: 0,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        (self.cap > 0).then_some(self.next)
    }

    /// The timed probe is due at `now` (coalesced): its period starts again.
    pub(super) fn due(&mut self, now: Instant) -> bool {
        if self.cap == 0 || now + COALESCE < self.next {
            return false;
        }
        self.next = now + self.period(now);
        true
    }

    /// The probe's period at `now`: shortest right after a fork, short while the tree
    /// moves, long once it rests.
    fn period(&self, now: Instant) -> Duration {
        let since = |at: Instant| now.saturating_duration_since(at);
        if self.forked_at.is_some_and(|at| since(at) < FORK_WATCH) {
            FORKING_PROBE_INTERVAL
        } else if since(self.changed_at) >= QUIET_BEFORE_BACKOFF {
            IDLE_PROBE_INTERVAL
        } else {
            PROBE_INTERVAL
        }
    }

    /// A mark was read at `now` (by the probe, a skipped look or a look's baseline): a
    /// change brings the short period back at once; otherwise the next probe is a
    /// period after this read, which spares a second wake-up for the same answer.
    pub(super) fn observe(&mut self, now: Instant, mark: Mark) {
        if mark != self.last {
            // The first mark read is no fork: it is where the count starts.
            if mark.last_pid != self.last.last_pid && self.last != Mark::default() {
                self.forked_at = Some(now);
            }
            self.last = mark;
            self.changed_at = now;
            self.next = self.next.min(now + self.period(now));
        } else {
            self.next = self.next.max(now + self.period(now));
        }
    }

    /// A burst, or any growth that may carry the count over the cap: the probe's count
    /// includes threads, so it only ever errs towards one scan too many.
    pub(super) fn burst(&self, mark: Mark) -> bool {
        self.jumped(mark) || self.projected(mark) > self.cap
    }

    /// A jump that carries the count past the cap: the storm brake's cue, before a look.
    pub(super) fn storm(&self, mark: Mark) -> bool {
        self.jumped(mark) && self.projected(mark) > self.cap
    }

    /// Whether `pid` was handed out after the last look, the cursor now at `cursor`.
    pub(super) fn new_since_look(&self, pid: i32, cursor: i32) -> bool {
        crate::sys::procfs::handed_out(self.baseline.last_pid, Some(cursor), pid)
    }

    /// The live descendants the last look counted, plus the tasks since (threads too).
    pub(super) fn projected(&self, mark: Mark) -> u64 {
        self.last_projected as u64 + mark.tasks.saturating_sub(self.baseline.tasks)
    }

    /// Growth since the last look of more than the brake's jump.
    pub(super) fn jumped(&self, mark: Mark) -> bool {
        let grown = mark.tasks.saturating_sub(self.baseline.tasks);
        self.cap > 0 && grown > super::brake::jump(self.cap as usize) as u64
    }

    /// What `mark`, against the one at the last look, proves.
    pub(super) fn quiet(&self, mark: Mark) -> Quiet {
        if mark != self.baseline {
            Quiet::Changed
        } else if self.pids_current.is_some() && mark.last_pid.is_some() {
            Quiet::Surely
        } else {
            Quiet::Probably
        }
    }

    /// Whether anything was forked between the last look and `mark` (unknown without
    /// the pid cursor: then yes).
    pub(super) fn forked(&self, mark: Mark) -> bool {
        mark.last_pid.is_none() || mark.last_pid != self.baseline.last_pid
    }

    /// A look was taken at `now` with `baseline` the mark read just before. The
    /// probe's period starts again here, which also lets a periodic scan share a
    /// wake-up with every few probes (each wake-up of an idle container is most of what
    /// it costs).
    pub(super) fn rebase(&mut self, now: Instant, baseline: Mark, projected: usize) {
        self.baseline = baseline;
        self.last_projected = projected;
        self.next = now + self.period(now);
    }

    pub(super) fn read(&self, reading: &mut Reading) -> Mark {
        *reading.0.get_or_insert_with(|| Mark {
            tasks: self.count(),
            last_pid: self.loadavg.as_ref().and_then(crate::sys::procfs::last_pid),
        })
    }

    /// A cheap count that grows with a fork burst: the cgroup's task count when there
    /// is one (a container), else the host's process count from the link count of /proc.
    fn count(&self) -> u64 {
        self.pids_current
            .as_ref()
            .and_then(cgroup::current)
            .unwrap_or_else(proc_count)
    }
}

/// Processes on the system, from the link count of /proc: one syscall, no directory
/// read. It counts the whole host, beyond our namespace, so it is only the fallback
/// trigger for a real scan where no cgroup task count is to be had, never a measurement.
/// `nlink_t` is u64 on x86_64 but u32 on aarch64: the conversion is real there.
#[allow(clippy::useless_conversion)]
fn proc_count() -> u64 {
    nix::sys::stat::stat(c"/proc").map_or(0, |st| st.st_nlink.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_growth_past_a_sixteenth_of_the_cap_or_past_the_cap() {
        let t0 = Instant::now();
        // (cap, baseline, projected at the last scan, count now, burst)
        let cases = [
            (128, 100, 10, 100, false),
            (128, 100, 10, 108, false), // 8 = 128/16: not more than it
            (128, 100, 10, 109, true),
            (16, 50, 5, 54, false), // the floor of 4
            (16, 50, 5, 55, true),
            (16, 50, 14, 53, true),  // 14 + 3 > 16
            (16, 50, 14, 40, false), // shrinking is never a burst
        ];
        for (cap, baseline, projected, count, burst) in cases {
            let mut probe = Probe::new(cap, None, t0);
            let mark = |tasks| Mark {
                tasks,
                last_pid: Some(7),
            };
            probe.rebase(t0, mark(baseline), projected);
            assert_eq!(
                probe.burst(mark(count)),
                burst,
                "cap {cap} base {baseline} projected {projected} count {count}"
            );
            let quiet = if count == baseline {
                Quiet::Probably // no cgroup count: the host's proves nothing
            } else {
                Quiet::Changed
            };
            assert_eq!(probe.quiet(mark(count)), quiet);
        }
    }

    #[test]
    fn without_a_cap_the_probe_never_falls_due() {
        let t0 = Instant::now();
        let mut probe = Probe::new(0, None, t0);
        assert_eq!(probe.next_deadline(), None);
        assert!(!probe.due(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn the_probe_coalesces_and_restarts_its_period() {
        let t0 = Instant::now();
        let mut probe = Probe::new(10, None, t0);
        assert!(!probe.due(t0 + PROBE_INTERVAL - COALESCE - Duration::from_millis(1)));
        let at = t0 + PROBE_INTERVAL - COALESCE;
        assert!(probe.due(at), "a probe due within COALESCE is done now");
        assert_eq!(probe.next_deadline(), Some(at + PROBE_INTERVAL));
        probe.rebase(at + Duration::from_millis(50), Mark::default(), 0);
        assert_eq!(
            probe.next_deadline(),
            Some(at + Duration::from_millis(50) + PROBE_INTERVAL)
        );
    }

    #[test]
    fn the_probe_slows_down_once_the_tree_rests_and_speeds_up_on_a_change() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let mut probe = Probe::new(10, None, t0);
        let calm = Mark {
            tasks: 5,
            last_pid: Some(40),
        };
        probe.observe(t0, calm);
        let mut at = t0;
        while at < s(9.5) {
            at = probe.next_deadline().unwrap();
            assert!(probe.due(at));
            probe.observe(at, calm);
        }
        assert_eq!(
            probe.next_deadline(),
            Some(at + PROBE_INTERVAL),
            "still moving"
        );
        at = s(10.1);
        assert!(probe.due(at));
        probe.observe(at, calm);
        assert_eq!(
            probe.next_deadline(),
            Some(at + IDLE_PROBE_INTERVAL),
            "resting"
        );
        // A skipped look read the same mark in between: no second wake-up for it.
        probe.observe(at + Duration::from_millis(300), calm);
        let later = at + Duration::from_millis(300) + IDLE_PROBE_INTERVAL;
        assert_eq!(probe.next_deadline(), Some(later));
        let exited = Mark { tasks: 4, ..calm };
        probe.observe(at + Duration::from_millis(350), exited);
        assert_eq!(
            probe.next_deadline(),
            Some(at + Duration::from_millis(350) + PROBE_INTERVAL),
            "an exit brings the short period back"
        );
        let forked = Mark {
            last_pid: Some(41),
            ..exited
        };
        let fork_at = at + Duration::from_millis(400);
        probe.observe(fork_at, forked);
        assert_eq!(
            probe.next_deadline(),
            Some(fork_at + FORKING_PROBE_INTERVAL),
            "a fork brings the shortest period"
        );
        at = fork_at + FORK_WATCH;
        assert!(probe.due(at));
        assert_eq!(
            probe.next_deadline(),
            Some(at + PROBE_INTERVAL),
            "FORK_WATCH without a fork: the short period"
        );
    }

    #[test]
    fn a_reading_is_taken_once() {
        let probe = Probe::new(10, None, Instant::now());
        let mut reading = Reading::default();
        let first = probe.read(&mut reading);
        assert!(first.last_pid.is_some(), "/proc/loadavg is readable");
        let later = Mark {
            tasks: first.tasks + 1000,
            ..first
        };
        reading.0 = Some(later);
        assert_eq!(probe.read(&mut reading), later, "the cached mark is reused");
    }

    #[test]
    fn only_the_containers_count_and_the_cursor_together_prove_quiet() {
        let t0 = Instant::now();
        let count = std::fs::File::open("/proc/self/stat").unwrap(); // any open file
        let mut probe = Probe::new(10, Some(count), t0);
        let base = Mark {
            tasks: 5,
            last_pid: Some(900),
        };
        probe.rebase(t0, base, 5);
        assert_eq!(probe.quiet(base), Quiet::Surely);
        let forked = Mark {
            last_pid: Some(901),
            ..base
        };
        assert_eq!(probe.quiet(forked), Quiet::Changed, "a fork and an exit");
        let exited = Mark { tasks: 4, ..base };
        assert_eq!(probe.quiet(exited), Quiet::Changed);
        let blind = Mark {
            last_pid: None,
            ..base
        };
        probe.rebase(t0, blind, 5);
        assert_eq!(probe.quiet(blind), Quiet::Probably, "no cursor, no proof");
    }
}
