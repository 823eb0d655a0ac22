//! The scan schedule with made-up instants: every case is a script of events from a
//! scan at t0, each `Due` checked for its answer and the deadline it leaves.

use super::*;
use std::cell::Cell;

const MS: Duration = Duration::from_millis(1);
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
enum Step {
    /// An incremental look ran at this offset and found a decision may fall due at the
    /// second, unseen by any probe.
    Deciding(u64, u64),
    /// Zombies reaped at this offset: (others besides main, follow).
    Reaped(u64, bool, bool),
    /// Scan now: (changed).
    ScanNow(u64, bool),
    /// Asked at this offset with the probe's answer: (the look expected, deadline after).
    Due(u64, Quiet, Option<Depth>, u64),
}
use Step::*;

/// The probe's answers: something changed, probably nothing (the host's count), surely
/// nothing (the container's count and the pid cursor).
const CHANGED: Quiet = Quiet::Changed;
const PROBABLY: Quiet = Quiet::Probably;
const SURELY: Quiet = Quiet::Surely;
/// The schedule's answers: no look, an incremental one, a full read.
const SKIP: Option<Depth> = None;
const INC: Option<Depth> = Some(Depth::Incremental);
const FULL: Option<Depth> = Some(Depth::Sweep);

const IDLE: Found = Found {
    over_cap: false,
    storm: None,
    following: false,
    decide_at: None,
    live: None,
    headroom: None,
};

/// A schedule started long before `t0`: past the first looks' ramp.
fn settled(t0: Instant, interval: Duration) -> Schedule {
    let started = t0.checked_sub(Duration::from_secs(3600)).unwrap_or(t0);
    Schedule::new(started, interval)
}

fn run(name: &str, steps: &[Step]) {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut schedule = settled(t0, INTERVAL);
    schedule.scanned(t0, Depth::Full, IDLE);
    for (i, &step) in steps.iter().enumerate() {
        match step {
            Deciding(ms, when) => {
                let found = Found {
                    decide_at: Some(at(when)),
                    ..IDLE
                };
                schedule.scanned(at(ms), Depth::Incremental, found)
            }
            Reaped(ms, others, follow) => schedule.reaped(at(ms), others, follow),
            ScanNow(ms, changed) => schedule.scan_now(at(ms), changed),
            Due(ms, quiet, look, next) => {
                let asked = Cell::new(false);
                let due = schedule.due(at(ms), || {
                    asked.set(true);
                    quiet
                });
                assert_eq!(due, look, "{name}: step {i} {step:?}");
                assert_eq!(
                    schedule.next_deadline(),
                    at(next),
                    "{name}: deadline after step {i} {step:?}"
                );
                if let Some(depth) = due {
                    schedule.scanned(at(ms), depth, IDLE);
                } else if !asked.get() {
                    continue;
                }
            }
        }
    }
}

#[test]
fn without_proof_an_idle_container_skips_at_most_max_quiet_scans_in_a_row() {
    let mut steps: Vec<Step> = (1..=MAX_QUIET_SCANS as u64)
        .map(|n| Due(n * 1000, PROBABLY, SKIP, (n + 1) * 1000))
        .collect();
    let full = (MAX_QUIET_SCANS as u64 + 1) * 1000;
    steps.push(Due(full, PROBABLY, INC, full));
    // The count of skips starts again after a full scan.
    steps.push(Due(full + 1000, PROBABLY, SKIP, full + 2000));
    run("idle", &steps);
}

#[test]
fn with_proof_an_idle_container_skips_every_look_but_the_full_read() {
    let n = FULL_READ_INTERVALS as u64;
    let mut steps: Vec<Step> = (1..n)
        .map(|k| Due(k * 1000, SURELY, SKIP, (k + 1) * 1000))
        .collect();
    steps.push(Due(n * 1000, SURELY, FULL, n * 1000));
    // The net is counted from the last full read.
    steps.push(Due(n * 1000 + 1000, SURELY, SKIP, n * 1000 + 2000));
    run("proved idle", &steps);
}

#[test]
fn a_busy_container_reads_incrementally_and_in_full_every_full_read_intervals() {
    let n = FULL_READ_INTERVALS as u64;
    let mut steps: Vec<Step> = (1..n)
        .map(|k| Due(k * 1000, CHANGED, INC, k * 1000))
        .collect();
    steps.push(Due(n * 1000, CHANGED, FULL, n * 1000));
    steps.push(Due(n * 1000 + 1000, CHANGED, INC, n * 1000 + 1000));
    run("busy", &steps);
}

#[test]
fn a_decision_falling_due_unseen_is_looked_at_when_it_falls_due() {
    run(
        "deciding",
        &[
            Deciding(0, 2500),
            Due(1000, SURELY, SKIP, 2000),
            Due(2000, SURELY, SKIP, 3000),
            Due(3000, SURELY, INC, 3000),
        ],
    );
}

#[test]
fn a_scan_is_never_skipped_when_something_may_have_changed() {
    let cases: &[(&str, &[Step])] = &[
        ("the world changed", &[Due(1000, CHANGED, INC, 1000)]),
        (
            "a zombie was reaped",
            &[Reaped(400, true, false), Due(1000, PROBABLY, INC, 1000)],
        ),
        (
            "a duplicate settles",
            &[Deciding(0, 1000), Due(1000, SURELY, INC, 1000)],
        ),
        (
            "a burst",
            &[ScanNow(300, true), Due(300, PROBABLY, INC, 300)],
        ),
    ];
    for (name, steps) in cases {
        run(name, steps);
    }
}

#[test]
fn deadlines_a_few_milliseconds_away_share_the_wake_up() {
    let c = COALESCE.as_millis() as u64;
    run("coalesced", &[Due(1000 - c, CHANGED, INC, 1000)]);
    run("too early", &[Due(1000 - c - 1, CHANGED, SKIP, 1000)]);
}

#[test]
fn a_mass_exit_holds_the_periodic_scan_but_not_for_ever() {
    let pause = REAP_PAUSE.as_millis() as u64;
    let limit = (1 + MAX_QUIET_SCANS as u64) * 1000;
    run(
        "held while zombies come",
        &[
            Reaped(990, true, false),
            Due(1000, PROBABLY, SKIP, 990 + pause),
        ],
    );
    run(
        "scans once they stop",
        &[
            Reaped(990, true, false),
            Due(990 + pause, PROBABLY, INC, 1000),
        ],
    );
    run(
        "a reap of the main child alone holds nothing",
        &[Reaped(990, false, false), Due(1000, PROBABLY, INC, 1000)],
    );
    // Reaps keep coming: the hold never reaches past MAX_QUIET_SCANS intervals.
    run(
        "bounded",
        &[
            Reaped(limit - pause, true, false),
            Due(limit - pause, PROBABLY, INC, 1000),
        ],
    );
    run(
        "an urgent scan is not held",
        &[Reaped(995, true, true), Due(1000, PROBABLY, INC, 1000)],
    );
}

#[test]
fn a_death_pulls_the_scan_forward_only_when_it_may_need_a_decision() {
    let gap = MIN_SCAN_GAP.as_millis() as u64;
    run(
        "followed",
        &[
            Reaped(100, true, true),
            Due(100 + gap, PROBABLY, INC, 100 + gap),
        ],
    );
    run(
        "kept orphans",
        &[
            Reaped(100, true, false),
            Due(100 + gap, PROBABLY, SKIP, 1000),
        ],
    );
    // Never pushed back: a death just before a due scan leaves it where it was.
    run(
        "not later",
        &[Reaped(995, true, true), Due(1000, CHANGED, INC, 1000)],
    );
}

#[test]
fn the_gap_after_a_scan_follows_what_it_found() {
    let t0 = Instant::now();
    let cases = [
        (INTERVAL, IDLE, INTERVAL),
        (
            INTERVAL,
            Found {
                over_cap: true,
                following: true,
                ..IDLE
            },
            MIN_SCAN_GAP,
        ),
        (
            INTERVAL,
            Found {
                following: true,
                ..IDLE
            },
            ESCALATION_SCAN,
        ),
        (
            50 * MS,
            Found {
                following: true,
                ..IDLE
            },
            50 * MS,
        ),
        (
            INTERVAL,
            Found {
                over_cap: true,
                storm: Some(7 * MS),
                following: true,
                ..IDLE
            },
            7 * MS,
        ),
    ];
    for (interval, found, gap) in cases {
        let mut schedule = settled(t0, interval);
        schedule.scanned(t0, Depth::Incremental, found);
        assert_eq!(schedule.next_deadline(), t0 + gap, "{interval:?} {found:?}");
    }
}

#[test]
fn the_first_scan_comes_shortly_after_the_start() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(t0, INTERVAL);
    assert_eq!(schedule.next_deadline(), t0 + START_GAP);
    assert_eq!(
        schedule.due(t0 + START_GAP, || SURELY),
        INC,
        "the first look is never skipped"
    );
    // Then each gap at most the age: 2, 4, 8 ... ms, until the interval.
    let mut at = t0 + START_GAP;
    for expected in [2u64, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000] {
        schedule.scanned(at, Depth::Incremental, IDLE);
        let gap = schedule.next_deadline() - at;
        assert_eq!(gap, Duration::from_millis(expected), "at {:?}", at - t0);
        at += gap;
    }
}

#[test]
fn a_tree_that_would_fill_the_cap_before_the_next_look_is_looked_at_by_then() {
    let t0 = Instant::now();
    // (live at the last look, ms before now; live now, headroom now; the gap after)
    let cases = [
        ((100, 1000), (100, Some(400)), INTERVAL),  // no growth
        ((100, 1000), (300, Some(400)), INTERVAL),  // 200 a second: 400 left lasts 2 s
        ((100, 1000), (500, Some(400)), START_GAP), // 400 a second fills 400 in one
        ((100, 10), (104, Some(400)), START_GAP),   // 4 per 10 ms: 400 per second
        ((100, 10), (103, Some(400)), INTERVAL),
        ((100, 2), (140, Some(30)), 1500 * Duration::from_micros(1)), // full in 1.5 ms
        ((100, 10), (150, Some(0)), FILL_GAP), // at the cap and still growing
        ((100, 10), (90, Some(0)), INTERVAL),  // shrinking
        ((100, 10), (500, None), INTERVAL),    // no cap
        ((100, 10), (100, Some(0)), INTERVAL), // full, not growing
    ];
    for ((before, ago), (live, headroom), gap) in cases {
        let mut schedule = settled(t0, INTERVAL);
        let then = t0 - ago * MS;
        let found = Found {
            live: Some(before),
            ..IDLE
        };
        schedule.scanned(then, Depth::Incremental, found);
        let found = Found {
            live: Some(live),
            headroom,
            ..IDLE
        };
        schedule.scanned(t0, Depth::Incremental, found);
        assert_eq!(
            schedule.next_deadline(),
            t0 + gap,
            "{before} {ago} ms ago, now {live} with {headroom:?} left"
        );
    }
    // A blind look counts nothing: the next is measured from the last that did.
    let mut schedule = settled(t0, INTERVAL);
    let found = |live| Found {
        live,
        headroom: Some(400),
        ..IDLE
    };
    schedule.scanned(t0 - 1000 * MS, Depth::Incremental, found(Some(100)));
    schedule.scanned(t0 - 500 * MS, Depth::Incremental, found(None));
    schedule.scanned(t0, Depth::Incremental, found(Some(300)));
    assert_eq!(schedule.next_deadline(), t0 + INTERVAL);
    // A storm's gap is the brake's own.
    let mut schedule = settled(t0, INTERVAL);
    schedule.scanned(t0 - 10 * MS, Depth::Incremental, found(Some(100)));
    let storm = Found {
        storm: Some(50 * MS),
        ..found(Some(200))
    };
    schedule.scanned(t0, Depth::Incremental, storm);
    assert_eq!(schedule.next_deadline(), t0 + 50 * MS);
}

#[test]
fn a_storm_from_the_start_is_met_at_the_cap() {
    // 10 forks a millisecond against a cap of 100: the ramp's looks at 2, 4, 8 ms,
    // then at most START_GAP apart once the next doubled gap would carry it past the
    // cap, and FILL_GAP once at it.
    let t0 = Instant::now();
    let mut schedule = Schedule::new(t0, INTERVAL);
    let mut at = t0 + START_GAP;
    let mut looks = Vec::new();
    while at < t0 + 13 * MS {
        let ms = (at - t0).as_millis() as usize;
        let live = 10 * ms;
        looks.push(ms);
        let found = Found {
            live: Some(live),
            headroom: Some(100usize.saturating_sub(live)),
            ..IDLE
        };
        schedule.scanned(at, Depth::Incremental, found);
        at = schedule.next_deadline();
    }
    assert_eq!(looks, [2, 4, 8, 10, 11, 12]);
}

#[test]
fn the_loop_wakes_at_the_earliest_deadline_never_in_the_past() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let cases = [
        (vec![], t0 + LONGEST_WAIT),
        (vec![None, None], t0 + LONGEST_WAIT),
        (vec![Some(t0 + 3 * s), None, Some(t0 + s)], t0 + s),
        (vec![Some(t0 + 2 * LONGEST_WAIT)], t0 + LONGEST_WAIT),
        (vec![Some(t0 + s)], t0 + s),
    ];
    for (deadlines, expected) in cases {
        assert_eq!(
            earliest(t0 + Duration::ZERO, deadlines.clone()),
            expected,
            "{deadlines:?}"
        );
    }
    let late = t0 + s;
    assert_eq!(
        earliest(late, [Some(t0)]),
        late,
        "a missed deadline is due now"
    );
}

#[test]
fn a_short_gap_is_never_taken_early() {
    let t0 = Instant::now();
    // (what the look found, the gap, how early the next may be taken)
    let cases = [
        (IDLE, INTERVAL, COALESCE),
        (
            Found {
                over_cap: true,
                ..IDLE
            },
            MIN_SCAN_GAP,
            MIN_SCAN_GAP / 4,
        ),
        (
            Found {
                storm: Some(STORM),
                ..IDLE
            },
            STORM,
            Duration::ZERO,
        ),
    ];
    for (found, gap, early) in cases {
        let mut schedule = settled(t0, INTERVAL);
        schedule.scanned(t0, Depth::Incremental, found);
        let just_before = t0 + gap - early - Duration::from_micros(1);
        assert_eq!(schedule.due(just_before, || CHANGED), SKIP, "{found:?}");
        assert!(
            schedule.due(t0 + gap - early, || CHANGED).is_some(),
            "{found:?}"
        );
    }
}

const STORM: Duration = Duration::from_millis(2);

#[test]
fn a_skipped_look_shares_its_wake_up_again() {
    // After a look at a short gap, the periodic looks skipped after it coalesce by
    // COALESCE again, so a probe and a look a few ms apart still wake the loop once.
    let t0 = Instant::now();
    let mut schedule = settled(t0, INTERVAL);
    let over = Found {
        over_cap: true,
        ..IDLE
    };
    schedule.scanned(t0 - INTERVAL * FULL_READ_INTERVALS / 2, Depth::Full, IDLE);
    schedule.scanned(t0, Depth::Incremental, over);
    let skipped = t0 + MIN_SCAN_GAP;
    assert_eq!(schedule.due(skipped, || SURELY), SKIP);
    assert!(schedule
        .due(skipped + INTERVAL - COALESCE, || CHANGED)
        .is_some());
}
