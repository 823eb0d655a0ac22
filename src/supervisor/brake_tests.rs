//! Who the brake stops, from hand-built trees: the main child forking single-process
//! groups past a cap of 16 (a jump is more than 4 processes).

use super::*;
use crate::core::testkit::{p, snapshot, MAIN, ME};
use crate::core::units;
use crate::sys::fake::Fake;

const CAP: usize = 16;

fn cap_decision(unit: UnitId) -> Decision {
    Decision {
        unit,
        reason: Reason::Cap,
        kept: None,
        idle_ms: None,
    }
}

/// `n` idle processes forked by `parent`, each its own group, from pid `first`.
fn forked(parent: i32, first: i32, n: i32) -> Vec<crate::core::process::Proc> {
    (first..first + n)
        .map(|pid| p(pid, parent, pid, 0, "sleep"))
        .collect()
}

#[test]
fn the_brake_stops_whoever_forked_a_jump_and_nobody_else() {
    // (name, extra processes, units decided for the cap, expected forkers)
    type Case = (
        &'static str,
        Vec<crate::core::process::Proc>,
        Vec<UnitId>,
        Vec<i32>,
    );
    let groups = |r: std::ops::Range<i32>| r.map(UnitId::Group).collect::<Vec<_>>();
    // Three shell loops in the main child's group, each forking `sleep &`: each loop
    // is a subtree unit with its sleeps.
    let loops: Vec<_> = [50, 60, 70]
        .into_iter()
        .flat_map(|lp| {
            let mut unit = vec![p(lp, MAIN, MAIN, 9, "sh")];
            unit.extend((1..=5).map(|i| p(lp + i, lp, MAIN, 9, "sleep")));
            unit
        })
        .collect();
    let cases: Vec<Case> = vec![
        (
            "a jump past the cap: its forker",
            forked(MAIN, 100, 8),
            groups(100..108),
            vec![MAIN],
        ),
        (
            "a creep past the cap (4, not more): nobody",
            forked(MAIN, 100, 4),
            groups(100..104),
            vec![],
        ),
        (
            "orphans forked by nothing of ours any more: not mcpinit",
            forked(ME, 100, 8),
            groups(100..108),
            vec![],
        ),
        (
            "two forkers, each stopped once",
            [
                vec![p(50, MAIN, 50, 9, "a"), p(60, MAIN, 60, 9, "b")],
                forked(50, 100, 4),
                forked(60, 200, 4),
            ]
            .concat(),
            [groups(100..104), groups(200..204)].concat(),
            vec![50, 60],
        ),
        (
            "a forker whose own unit is being ended is stopped all the same",
            [vec![p(50, MAIN, 50, 9, "a")], forked(50, 100, 8)].concat(),
            groups(100..108),
            vec![50],
        ),
        (
            "shell loops in the main child's group: the loops, not the main shell",
            loops.clone(),
            vec![UnitId::Subtree(50), UnitId::Subtree(60)],
            vec![50, 60],
        ),
        (
            "launchers with one child each (npm exec, sh): whoever started them",
            (50..56)
                .flat_map(|l| [p(l, MAIN, l, 9, "npm exec"), p(l + 10, l, l, 9, "sh")])
                .collect(),
            groups(50..56),
            vec![MAIN],
        ),
    ];
    for (name, procs, decided, expected) in cases {
        let snap = snapshot(procs);
        let units = units::units(&snap, Some(MAIN), &[]);
        let decisions: Vec<Decision> = decided.into_iter().map(cap_decision).collect();
        let got: Vec<i32> = forkers(&decisions, &units, &snap, snap.now_ms, ME, CAP)
            .into_iter()
            .map(|f| f.pid)
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn a_dead_forker_and_other_reasons_are_left_alone() {
    let mut procs = vec![p(50, MAIN, 50, 9, "a")];
    procs.extend(forked(50, 200, 8));
    let mut snap = snapshot(procs);
    for proc in snap.procs.iter_mut().filter(|p| p.pid == 50) {
        proc.state = b'Z';
    }
    let units = units::units(&snap, Some(MAIN), &[]);
    let decisions: Vec<Decision> = (200..208).map(UnitId::Group).map(cap_decision).collect();
    assert!(forkers(&decisions, &units, &snap, snap.now_ms, ME, CAP).is_empty());

    let snap = snapshot(forked(MAIN, 100, 8));
    let units = units::units(&snap, Some(MAIN), &[]);
    let duplicates: Vec<Decision> = (100..108)
        .map(|g| Decision {
            reason: Reason::Duplicate,
            ..cap_decision(UnitId::Group(g))
        })
        .collect();
    assert!(
        forkers(&duplicates, &units, &snap, snap.now_ms, ME, CAP).is_empty(),
        "only the cap's jumps brake"
    );
    assert!(
        forkers(&duplicates, &units, &snap, snap.now_ms, ME, 0).is_empty(),
        "no cap, no brake"
    );
}

#[test]
fn a_storm_is_held_longer_each_time_up_to_the_limit() {
    let ms = Duration::from_millis;
    let holds: Vec<Duration> = (1..=10).map(hold).collect();
    assert_eq!(
        holds,
        [2, 4, 8, 16, 32, 64, 100, 100, 100, 100].map(ms),
        "from STORM_GAP, doubled, up to BRAKE_HOLD"
    );
    assert_eq!(hold(u32::MAX), BRAKE_HOLD);
}

#[test]
fn the_look_after_a_hold_comes_soon_and_the_storm_is_followed_while_it_forks() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let brake = |until: Option<u64>, released: Option<u64>, applied: Option<u64>| Brake {
        held: until
            .map(|_| {
                vec![ProcId {
                    pid: MAIN,
                    start: 1,
                }]
            })
            .unwrap_or_default(),
        until: until.map(|m| t0 + ms(m)),
        released: released.map(|m| t0 - ms(m)),
        resumed: Vec::new(),
        last_applied: applied.map(|m| t0 - ms(m)),
        storm: None,
    };
    // (held until, released ago, last brake ago, forked since the last look; gap)
    let cases = [
        ((Some(50), None, Some(50)), false, Some(ms(50) + RESUME_GAP)),
        ((Some(0), None, Some(2)), true, Some(RESUME_GAP)),
        ((None, Some(5), Some(10)), false, Some(STORM_GAP)), // just continued
        ((None, Some(30), Some(40)), true, Some(STORM_GAP)), // forking again
        ((None, Some(30), Some(40)), false, None),           // a burst's forker: quiet
        ((None, Some(5), Some(1500)), true, None),           // the storm is over
        ((None, None, None), true, None),                    // never braked
    ];
    for ((until, released, applied), forked, gap) in cases {
        let b = brake(until, released, applied);
        assert_eq!(
            b.next_look(t0, forked),
            gap,
            "held until {until:?}, released {released:?} ago, braked {applied:?} ago, forked {forked}"
        );
    }
}

#[test]
fn only_a_forker_just_continued_by_the_hold_is_stopped_again_without_a_look() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let gone = ProcId {
        pid: i32::MAX,
        start: 1,
    }; // no such process: nothing is signalled
    let mut kernel = Fake::default();
    let brake = |released_ago: u64| Brake {
        released: Some(t0 - ms(released_ago)),
        resumed: vec![gone],
        ..Brake::default()
    };
    // Long after the hold: the look decides.
    assert!(!brake(RESUME_WATCH.as_millis() as u64).rebrake(&mut kernel, t0));
    // Just after it, but the forker is gone: nothing to stop, and it is not tried twice.
    let mut b = brake(1);
    assert!(!b.rebrake(&mut kernel, t0));
    assert!(b.resumed.is_empty());
    // Continued for good (a signal forwarded, shutdown): never stopped again unseen.
    let mut b = Brake {
        held: vec![gone],
        until: Some(t0 + ms(50)),
        ..Brake::default()
    };
    b.release_for_good(&mut kernel, t0);
    assert!(b.held.is_empty() && b.resumed.is_empty() && b.until.is_none());
    // A plain release remembers whom it continued.
    let mut b = Brake {
        held: vec![gone],
        until: Some(t0),
        ..Brake::default()
    };
    b.release(&mut kernel, t0);
    assert_eq!(b.resumed, vec![gone]);
    assert!(kernel.sent.is_empty());
}

#[test]
fn a_forker_is_stopped_and_continued_unless_someone_else_stopped_it() {
    let snap = snapshot(vec![p(20, MAIN, MAIN, 5, "sh"), p(21, MAIN, MAIN, 5, "sh")]);
    let mut kernel = Fake::of(&snap);
    kernel.procs.get_mut(&21).unwrap().state = b'T';
    let forkers: Vec<ProcId> = [20, 21]
        .iter()
        .map(|&pid| snap.get(pid).unwrap().id())
        .collect();
    let t0 = Instant::now();
    let mut b = Brake::default();
    assert_eq!(b.apply(&mut kernel, &forkers, t0), Some(vec![20]));
    assert_eq!(kernel.signals_to(20), [libc::SIGSTOP]);
    assert!(
        kernel.signals_to(21).is_empty(),
        "not ours to stop or continue"
    );
    b.release(&mut kernel, t0 + hold(1));
    assert_eq!(kernel.signals_to(20), [libc::SIGSTOP, libc::SIGCONT]);
    assert!(kernel.signals_to(21).is_empty());
}

#[test]
fn a_loop_the_cap_leaves_is_stopped_too_when_it_forked_since_the_last_look() {
    let loops: Vec<_> = [(50, 9), (60, 9), (70, 0)]
        .into_iter()
        .flat_map(|(lp, age)| {
            let mut unit = vec![p(lp, MAIN, MAIN, 9, "sh")];
            unit.extend((1..=5).map(|i| p(lp + i, lp, MAIN, age, "sleep")));
            unit
        })
        .collect();
    let snap = snapshot(loops);
    let units = units::units(&snap, Some(MAIN), &[]);
    let decisions = [UnitId::Subtree(50), UnitId::Subtree(60)].map(cap_decision);
    let pids = |since_ms| -> Vec<i32> {
        forkers(&decisions, &units, &snap, since_ms, ME, CAP)
            .into_iter()
            .map(|f| f.pid)
            .collect()
    };
    assert_eq!(pids(snap.now_ms - 500), [50, 60, 70], "70's sleeps are new");
    assert_eq!(
        pids(snap.now_ms + 1000),
        [50, 60],
        "nothing new: the capped loops only"
    );
}

#[test]
fn the_newest_processes_name_their_forkers() {
    // (newest (pid, ppid), forkers)
    type Case<'a> = (&'a [(i32, i32)], &'a [i32]);
    let cases: [Case; 5] = [
        (&[(30, 5), (29, 6), (28, 5), (27, 7), (26, 6)], &[5, 6]),
        (&[(30, 5), (29, 6), (28, 7)], &[]), // one each: nobody
        (&[(30, ME), (29, ME), (28, ME)], &[]), // orphans reparented to mcpinit
        (&[(30, 0), (29, 0)], &[]),          // parents outside the namespace
        (&[(30, 9), (29, 9), (28, 9), (27, 9)], &[9]),
    ];
    for (newest, forkers) in cases {
        assert_eq!(newest_forkers(newest, ME), forkers, "{newest:?}");
    }
}
