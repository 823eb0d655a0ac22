//! The fork-burst probe: a cheap task count read every PROBE_INTERVAL while a cap is
//! set, so a burst is answered by a scan long before the periodic one.

use super::schedule::COALESCE;
use crate::cgroup;
use std::time::{Duration, Instant};

/// How often the cheap fork-burst probe runs while a cap is set. 200 ms answers a burst
/// well inside 250 ms at the median, while an idle container wakes about 6 times a
/// second: each wake-up costs ~90 us on a small VM, and at 100 ms the wake-ups alone
/// put the idle cost over 0.1 % of a core (docs/benchmarks.md).
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(200);

pub(super) struct Probe {
    /// The cap on live descendants; 0: no cap, and no timed probing.
    cap: u64,
    /// The container's own task count (`pids.current`, kept open), when its cgroup has
    /// one.
    pids_current: Option<std::fs::File>,
    next: Instant,
    /// The count when the last scan was taken, and the live descendants that scan
    /// projected (the busy units counted as gone).
    baseline: u64,
    last_projected: usize,
}

/// The probe's count, read at most once per wake-up: the probe, the quiet check and a
/// scan's baseline often fall on the same one.
#[derive(Default)]
pub(super) struct Reading(Option<u64>);

impl Probe {
    pub(super) fn new(cap: usize, pids_current: Option<std::fs::File>, now: Instant) -> Probe {
        Probe {
            cap: cap as u64,
            pids_current,
            next: now + PROBE_INTERVAL,
            baseline: 0,
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
        self.next = now + PROBE_INTERVAL;
        true
    }

    /// A burst, or any growth that may carry the count over the cap: the probe's count
    /// includes threads, so it only ever errs towards one scan too many.
    pub(super) fn burst(&self, count: u64) -> bool {
        let grown = count.saturating_sub(self.baseline);
        grown > (self.cap / 16).max(4) || self.last_projected as u64 + grown > self.cap
    }

    /// The count is as at the last scan.
    pub(super) fn unchanged(&self, count: u64) -> bool {
        count == self.baseline
    }

    /// A scan was taken at `now` with `baseline` the count read just before. The
    /// probe's period starts again here, which also lets a periodic scan share a
    /// wake-up with every few probes (each wake-up of an idle container is most of what
    /// it costs).
    pub(super) fn rebase(&mut self, now: Instant, baseline: u64, projected: usize) {
        self.baseline = baseline;
        self.last_projected = projected;
        self.next = now + PROBE_INTERVAL;
    }

    pub(super) fn read(&self, reading: &mut Reading) -> u64 {
        *reading.0.get_or_insert_with(|| self.count())
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
fn proc_count() -> u64 {
    nix::sys::stat::stat(c"/proc").map_or(0, |st| st.st_nlink)
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
            probe.rebase(t0, baseline, projected);
            assert_eq!(
                probe.burst(count),
                burst,
                "cap {cap} base {baseline} projected {projected} count {count}"
            );
            assert_eq!(probe.unchanged(count), count == baseline);
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
        probe.rebase(at + Duration::from_millis(50), 0, 0);
        assert_eq!(
            probe.next_deadline(),
            Some(at + Duration::from_millis(50) + PROBE_INTERVAL)
        );
    }

    #[test]
    fn a_reading_is_taken_once() {
        let probe = Probe::new(10, None, Instant::now());
        let mut reading = Reading::default();
        let first = probe.read(&mut reading);
        reading.0 = Some(first + 1000);
        assert_eq!(
            probe.read(&mut reading),
            first + 1000,
            "the cached count is reused"
        );
    }
}
