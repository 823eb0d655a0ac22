//! How forwarded signals are logged: the first of each signal per second is a line of
//! its own, the rest of that second are counted into one line when the second ends.
//! A flood (10,000 SIGUSR1 gave 2,933 lines) would otherwise drown every other line.

use std::time::{Duration, Instant};

/// How long a signal's first line covers its repeats.
pub(super) const WINDOW: Duration = Duration::from_secs(1);

/// A line to write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// The first forward of `signal` in its second.
    Forwarded { signal: i32, target: i32 },
    /// `repeats` more forwards of `signal` in the second that began with its line.
    Coalesced {
        signal: i32,
        target: i32,
        repeats: u64,
    },
}

struct Window {
    signal: i32,
    target: i32,
    until: Instant,
    repeats: u64,
}

/// At most one open window per signal number, so at most ~64 entries.
#[derive(Default)]
pub(super) struct SignalLog {
    windows: Vec<Window>,
}

impl SignalLog {
    /// `signal` was forwarded to `target` at `now`: the lines to write (none while its
    /// second is open; the count of the last second first, when that one had repeats).
    pub(super) fn forwarded(&mut self, signal: i32, target: i32, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        if let Some(i) = self.windows.iter().position(|w| w.signal == signal) {
            let w = &mut self.windows[i];
            if now < w.until && w.target == target {
                w.repeats = w.repeats.saturating_add(1);
                return lines;
            }
            lines.extend(coalesced(&self.windows.swap_remove(i)));
        }
        lines.push(Line::Forwarded { signal, target });
        self.windows.push(Window {
            signal,
            target,
            until: now + WINDOW,
            repeats: 0,
        });
        lines
    }

    /// When a count line falls due: the earliest end of a second that had repeats.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.windows
            .iter()
            .filter(|w| w.repeats > 0)
            .map(|w| w.until)
            .min()
    }

    /// The count lines of the seconds ended by `now`; those windows close.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        self.windows.retain(|w| {
            if now < w.until {
                return true;
            }
            lines.extend(coalesced(w));
            false
        });
        lines
    }

    /// Every count not yet written, at exit: the counts must add up to what was sent.
    pub(super) fn flush(&mut self) -> Vec<Line> {
        self.windows
            .drain(..)
            .filter_map(|w| coalesced(&w))
            .collect()
    }
}

fn coalesced(w: &Window) -> Option<Line> {
    (w.repeats > 0).then_some(Line::Coalesced {
        signal: w.signal,
        target: w.target,
        repeats: w.repeats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const USR1: i32 = libc::SIGUSR1;
    const USR2: i32 = libc::SIGUSR2;

    fn fwd(signal: i32) -> Line {
        Line::Forwarded { signal, target: 7 }
    }

    fn count(signal: i32, repeats: u64) -> Line {
        Line::Coalesced {
            signal,
            target: 7,
            repeats,
        }
    }

    #[test]
    fn the_first_of_each_signal_per_second_is_a_line_the_rest_one_count() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut log = SignalLog::default();
        assert_eq!(log.next_deadline(), None);
        assert_eq!(log.forwarded(USR1, 7, t0), vec![fwd(USR1)]);
        // A lone signal has nothing to count: no deadline.
        assert_eq!(log.next_deadline(), None);
        for n in 1..=500 {
            assert_eq!(log.forwarded(USR1, 7, ms(n)), vec![]);
        }
        // Another signal has its own second.
        assert_eq!(log.forwarded(USR2, 7, ms(600)), vec![fwd(USR2)]);
        assert_eq!(log.forwarded(USR2, 7, ms(700)), vec![]);
        assert_eq!(log.next_deadline(), Some(ms(1000)));
        assert_eq!(log.due(ms(999)), vec![]);
        assert_eq!(log.due(ms(1000)), vec![count(USR1, 500)]);
        assert_eq!(log.next_deadline(), Some(ms(1600)));
        // The next USR2 after its second ended writes the count, then its own line.
        assert_eq!(
            log.forwarded(USR2, 7, ms(1650)),
            vec![count(USR2, 1), fwd(USR2)]
        );
        assert_eq!(log.forwarded(USR2, 7, ms(1700)), vec![]);
        assert_eq!(log.flush(), vec![count(USR2, 1)]);
        assert_eq!(log.next_deadline(), None);
        assert_eq!(log.flush(), vec![]);
    }

    #[test]
    fn a_window_without_repeats_closes_quietly() {
        let t0 = Instant::now();
        let mut log = SignalLog::default();
        log.forwarded(USR1, 7, t0);
        assert_eq!(log.due(t0 + WINDOW), vec![]);
        assert_eq!(log.forwarded(USR1, 7, t0 + WINDOW), vec![fwd(USR1)]);
        assert_eq!(log.flush(), vec![]);
    }

    #[test]
    fn the_lines_account_for_every_forward() {
        let t0 = Instant::now();
        let mut log = SignalLog::default();
        let mut lines = Vec::new();
        for n in 0..3_000u64 {
            let now = t0 + Duration::from_micros(n * 997);
            lines.extend(log.due(now));
            lines.extend(log.forwarded(USR1, 7, now));
        }
        lines.extend(log.flush());
        let total: u64 = lines
            .iter()
            .map(|l| match l {
                Line::Forwarded { .. } => 1,
                Line::Coalesced { repeats, .. } => *repeats,
            })
            .sum();
        assert_eq!(total, 3_000);
        assert!(lines.len() <= 6, "{lines:?}");
    }
}
