//! Escalation carried out through the kernel seam, against the fake: deadlines,
//! refusals, dry runs, and processes that vanish or are reused between look and act.

use super::*;
use crate::core::testkit::{p, snapshot, MAIN};
use crate::core::units::units;
use crate::sys::fake::Fake;
use libc::{SIGCONT, SIGKILL, SIGTERM};

const EOF_GRACE: Duration = Duration::from_secs(3);
const KILL_GRACE: Duration = Duration::from_secs(5);
const GRACES: Graces = Graces {
    eof: EOF_GRACE,
    exit: None,
    kill: KILL_GRACE,
    tracked: false,
};
/// A server a gateway tracks: the exit step comes before any signal.
const WITH_EXIT: Graces = Graces {
    exit: Some(EOF_GRACE),
    tracked: true,
    ..GRACES
};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// A server in its own group 40 (npm exec -> sh -> node), and an orphan subtree 30 -> 31
/// in the main child's group.
fn tree() -> Snapshot {
    snapshot(vec![
        p(30, 1, MAIN, 50, "sleep 100"),
        p(31, 30, MAIN, 50, "sleep 100"),
        p(40, MAIN, 40, 50, "npm exec @x/a"),
        p(41, 40, 40, 50, "sh -c a"),
        p(42, 41, 40, 50, "node a"),
    ])
}

fn unit(snap: &Snapshot, id: UnitId) -> Unit {
    let all = units(snap, Some(MAIN), &["npm exec".into()]);
    all.into_iter().find(|u| u.id == id).expect("the unit")
}

/// Begin ending the server (group 40) of `snap` now.
fn begin(
    kernel: &mut Fake,
    snap: &Snapshot,
    reason: Reason,
    graces: Graces,
) -> (Terminations, Begun, Instant) {
    let mut t = Terminations::default();
    let t0 = Instant::now();
    let server = unit(snap, UnitId::Group(40));
    let begun = t.start(kernel, &server, snap, reason, graces, false, t0);
    (t, begun, t0)
}

/// The server gone, and a helper it left in its group, reparented to mcpinit.
fn helper_left(snap: &Snapshot) -> Snapshot {
    let mut helper = without(snap, &[40, 41, 42]);
    helper.procs.push(p(43, 1, 40, 1, "helper"));
    helper.procs.sort_by_key(|p| p.pid);
    helper
}

fn without(snap: &Snapshot, pids: &[i32]) -> Snapshot {
    let mut less = snap.clone();
    less.procs.retain(|p| !pids.contains(&p.pid));
    less
}

#[test]
fn a_closed_input_is_given_the_eof_grace_then_term_then_kill() {
    let snap = tree();
    let mut kernel = Fake::of(&snap);
    kernel.ignore_term = vec![40, 41, 42];
    let (mut t, begun, t0) = begin(&mut kernel, &snap, Reason::Duplicate, GRACES);
    assert_eq!(begun, Begun::InputClosed(40));
    assert!(
        kernel.sent.is_empty(),
        "nothing is signalled while EOF may end it"
    );
    assert_eq!(t.next_deadline(), Some(t0 + EOF_GRACE));

    // (seconds after the start, the signals the group has had by then, the event)
    let table: &[(u64, &[i32], Option<&str>)] = &[
        (1, &[], None),
        (3, &[SIGTERM, SIGCONT], Some("termed")),
        (4, &[SIGTERM, SIGCONT], None),
        (8, &[SIGTERM, SIGCONT, SIGKILL], Some("killed")),
    ];
    for &(at, signals, event) in table {
        let events = t.refresh(&mut kernel, &snap, t0 + s(at));
        assert_eq!(kernel.signals_to(-40), signals, "at {at} s");
        let got = events.first().map(|e| match e {
            Event::Termed { .. } => "termed",
            Event::Killed { .. } => "killed",
            Event::Gone { .. } => "gone",
            Event::Stuck { .. } => "stuck",
            Event::Exited { .. } => "exited",
            Event::ExitRefused { .. } => "exit refused",
            Event::Spared { .. } => "spared",
        });
        assert_eq!(got, event, "at {at} s");
    }
    let events = t.refresh(&mut kernel, &without(&snap, &[40, 41, 42]), t0 + s(9));
    assert!(matches!(
        events[..],
        [Event::Gone {
            ended: Ended::Kill,
            ..
        }]
    ));
    assert!(!t.in_flight());
}

#[test]
fn a_unit_gone_within_the_eof_grace_ended_at_eof_unsignalled() {
    let snap = tree();
    let mut kernel = Fake::of(&snap);
    let (mut t, _, t0) = begin(&mut kernel, &snap, Reason::Duplicate, GRACES);
    let events = t.refresh(&mut kernel, &without(&snap, &[40, 41, 42]), t0 + s(1));
    assert!(matches!(
        events[..],
        [Event::Gone {
            ended: Ended::Eof,
            ..
        }]
    ));
    assert!(kernel.sent.is_empty());
}

#[test]
fn an_input_that_cannot_be_closed_falls_back_to_sigterm_at_once() {
    let refusals = [
        Fallback::Refused {
            pid: 40,
            seccomp: true,
        },
        Fallback::NoSyscall,
        Fallback::Gone { pid: 40 },
    ];
    for why in refusals {
        let snap = tree();
        let server = unit(&snap, UnitId::Group(40));
        let mut kernel = Fake::of(&snap);
        kernel.close = Some(why.clone());
        let mut t = Terminations::default();
        let t0 = Instant::now();
        let begun = t.start(&mut kernel, &server, &snap, Reason::Cap, GRACES, false, t0);
        assert_eq!(begun, Begun::Fallback(why.clone()));
        assert_eq!(kernel.signals_to(-40), [SIGTERM, SIGCONT], "{why:?}");
        assert_eq!(t.next_deadline(), Some(t0 + KILL_GRACE), "{why:?}");
    }
}

#[test]
fn a_member_gone_or_reused_between_look_and_act_is_never_signalled() {
    let snap = tree();
    let orphan = unit(&snap, UnitId::Subtree(30));
    let mut kernel = Fake::of(&snap);
    // 30 exited after the look; 31's pid was taken by another process.
    kernel.procs.remove(&30);
    kernel.procs.get_mut(&31).unwrap().start += 1;
    let mut t = Terminations::default();
    let zero = Graces {
        eof: Duration::ZERO,
        exit: None,
        kill: KILL_GRACE,
        tracked: false,
    };
    let begun = t.start(
        &mut kernel,
        &orphan,
        &snap,
        Reason::Orphan,
        zero,
        false,
        Instant::now(),
    );
    assert_eq!(begun, Begun::Signalled);
    assert!(kernel.sent.is_empty(), "{:?}", kernel.sent);
}

#[test]
fn members_forked_after_the_sigterm_get_it_too() {
    let snap = tree();
    let orphan = unit(&snap, UnitId::Subtree(30));
    let mut kernel = Fake::of(&snap);
    kernel.ignore_term = vec![30, 31, 32];
    let mut t = Terminations::default();
    let t0 = Instant::now();
    let zero = Graces {
        eof: Duration::ZERO,
        exit: None,
        kill: KILL_GRACE,
        tracked: false,
    };
    t.start(&mut kernel, &orphan, &snap, Reason::Orphan, zero, false, t0);
    assert_eq!(kernel.signals_to(30), [SIGTERM, SIGCONT]);
    let mut grown = snap.clone();
    grown.procs.push(p(32, 31, MAIN, 0, "sleep 1"));
    grown.procs.sort_by_key(|p| p.pid);
    kernel.procs = Fake::of(&grown).procs;
    t.refresh(&mut kernel, &grown, t0 + s(1));
    assert_eq!(kernel.signals_to(32), [SIGTERM, SIGCONT]);
    assert_eq!(kernel.signals_to(30), [SIGTERM, SIGCONT], "not twice");
}

#[test]
fn a_dry_run_follows_the_unit_and_never_signals() {
    let snap = tree();
    let server = unit(&snap, UnitId::Group(40));
    let mut kernel = Fake::of(&snap);
    let mut t = Terminations::default();
    let t0 = Instant::now();
    let begun = t.start(
        &mut kernel,
        &server,
        &snap,
        Reason::Duplicate,
        GRACES,
        true,
        t0,
    );
    assert_eq!(begun, Begun::Signalled);
    assert!(t.busy().contains(&UnitId::Group(40)));
    assert!(!t.in_flight());
    assert_eq!(t.next_deadline(), None);
    assert!(t.refresh(&mut kernel, &snap, t0 + s(60)).is_empty());
    assert!(kernel.sent.is_empty() && kernel.closed.is_empty());
    t.refresh(&mut kernel, &without(&snap, &[40, 41, 42]), t0 + s(61));
    assert!(t.busy().is_empty(), "a unit gone is no longer followed");
}

#[test]
fn a_server_that_ignores_eof_is_made_to_exit_before_any_signal() {
    let snap = tree();
    let mut kernel = Fake::of(&snap);
    let (mut t, _, t0) = begin(&mut kernel, &snap, Reason::Duplicate, WITH_EXIT);
    assert!(t.refresh(&mut kernel, &snap, t0 + s(1)).is_empty());
    let events = t.refresh(&mut kernel, &snap, t0 + EOF_GRACE);
    assert_eq!(
        events,
        [Event::Exited {
            id: UnitId::Group(40),
            pid: 40
        }]
    );
    assert_eq!(t.next_deadline(), Some(t0 + EOF_GRACE * 2));
    let events = t.refresh(&mut kernel, &without(&snap, &[40, 41, 42]), t0 + s(4));
    assert!(matches!(
        events[..],
        [Event::Gone {
            ended: Ended::Exit,
            ..
        }]
    ));
    assert!(
        kernel.sent.is_empty(),
        "no signal ever reached it: {:?}",
        kernel.sent
    );
}

#[test]
fn what_survives_the_exit_step_gets_sigterm_after_its_grace() {
    let snap = tree();
    let mut kernel = Fake::of(&snap);
    let (mut t, _, t0) = begin(&mut kernel, &snap, Reason::Duplicate, WITH_EXIT);
    t.refresh(&mut kernel, &snap, t0 + EOF_GRACE);
    // A helper the server left behind is still in the group.
    let helper = helper_left(&snap);
    kernel.procs = Fake::of(&helper).procs;
    assert!(t.refresh(&mut kernel, &helper, t0 + s(4)).is_empty());
    let events = t.refresh(&mut kernel, &helper, t0 + EOF_GRACE * 2);
    assert!(matches!(events[..], [Event::Termed { .. }]));
    assert_eq!(kernel.signals_to(-40), [SIGTERM, SIGCONT]);
}

#[test]
fn an_exit_step_that_cannot_be_taken_falls_back_to_sigterm_at_once() {
    let snap = tree();
    let mut kernel = Fake::of(&snap);
    let why = NotEnded {
        cause: "not_in_syscall",
        why: "busy".into(),
    };
    kernel.exit = Some(why.clone());
    let (mut t, _, t0) = begin(&mut kernel, &snap, Reason::Cap, WITH_EXIT);
    let events = t.refresh(&mut kernel, &snap, t0 + EOF_GRACE);
    // A cap may signal a tracked instance as the last resort: said as a crash.
    assert_eq!(
        events,
        [
            Event::ExitRefused {
                id: UnitId::Group(40),
                why
            },
            Event::Termed {
                id: UnitId::Group(40),
                crash: true,
                pgid: 40,
                pids: vec![40, 41, 42]
            }
        ]
    );
    assert_eq!(kernel.signals_to(-40), [SIGTERM, SIGCONT]);
    assert_eq!(t.next_deadline(), Some(t0 + EOF_GRACE + KILL_GRACE));
}

#[test]
fn without_an_input_to_close_a_tracked_server_is_made_to_exit_at_once() {
    let snap = tree();
    let server = unit(&snap, UnitId::Group(40));
    let mut kernel = Fake::of(&snap);
    kernel.close = Some(Fallback::NotSocket(crate::core::input::Input::Pipe));
    let (t, begun, t0) = begin(&mut kernel, &snap, Reason::Duplicate, WITH_EXIT);
    assert!(matches!(begun, Begun::Exited { pid: 40, .. }), "{begun:?}");
    assert!(kernel.sent.is_empty());
    assert_eq!(t.next_deadline(), Some(t0 + EOF_GRACE));
    // Without the exit step (an orphan, or --exit-step off): SIGTERM at once.
    let mut kernel = Fake::of(&snap);
    kernel.close = Some(Fallback::NoSyscall);
    let mut t = Terminations::default();
    t.start(&mut kernel, &server, &snap, Reason::Cap, GRACES, false, t0);
    assert!(kernel.exited.is_empty());
    assert_eq!(kernel.signals_to(-40), [SIGTERM, SIGCONT]);
}

#[test]
fn a_tracked_duplicate_with_no_clean_end_is_left_alone_and_said_once() {
    let snap = tree();
    let server = unit(&snap, UnitId::Group(40));
    let t0 = Instant::now();
    // No input route and no exit step: never started, never signalled.
    let mut kernel = Fake::of(&snap);
    kernel.close = Some(Fallback::NoRoute);
    kernel.exit = Some(NotEnded {
        cause: "no_route",
        why: "ptrace refused".into(),
    });
    let mut t = Terminations::default();
    let begun = t.start(
        &mut kernel,
        &server,
        &snap,
        Reason::Duplicate,
        WITH_EXIT,
        false,
        t0,
    );
    assert_eq!(begun, Begun::Spared(Fallback::NoRoute));
    assert!(t.spared(&server, &snap) && !t.in_flight());
    t.refresh(&mut kernel, &snap, t0 + s(60));
    assert!(kernel.sent.is_empty());
    assert!(t.spared(&server, &snap), "still remembered while it lives");
    t.refresh(&mut kernel, &without(&snap, &[40, 41, 42]), t0 + s(61));
    assert!(!t.spared(&server, &snap), "forgotten once gone");

    // Input closed, EOF ignored, the exit step refused: left alone too.
    let mut kernel = Fake::of(&snap);
    kernel.exit = Some(NotEnded {
        cause: "traced",
        why: "a debugger".into(),
    });
    let mut t = Terminations::default();
    t.start(
        &mut kernel,
        &server,
        &snap,
        Reason::Duplicate,
        WITH_EXIT,
        false,
        t0,
    );
    let events = t.refresh(&mut kernel, &snap, t0 + EOF_GRACE);
    assert!(matches!(
        events[..],
        [Event::ExitRefused { .. }, Event::Spared { .. }]
    ));
    assert!(kernel.sent.is_empty() && !t.in_flight());
}

#[test]
fn a_cap_may_signal_a_tracked_instance_and_says_it_is_a_crash() {
    let snap = tree();
    let server = unit(&snap, UnitId::Group(40));
    let mut kernel = Fake::of(&snap);
    kernel.ignore_term = vec![40, 41, 42];
    let mut t = Terminations::default();
    let t0 = Instant::now();
    let no_exit = Graces {
        exit: None,
        ..WITH_EXIT
    };
    t.start(&mut kernel, &server, &snap, Reason::Cap, no_exit, false, t0);
    let events = t.refresh(&mut kernel, &snap, t0 + EOF_GRACE);
    assert!(matches!(events[..], [Event::Termed { crash: true, .. }]));
    // After the exit step what is left is orphaned: no crash.
    let mut kernel = Fake::of(&snap);
    kernel.exited.clear();
    let mut t = Terminations::default();
    t.start(
        &mut kernel,
        &server,
        &snap,
        Reason::Duplicate,
        WITH_EXIT,
        false,
        t0,
    );
    t.refresh(&mut kernel, &snap, t0 + EOF_GRACE);
    let helper = helper_left(&snap);
    kernel.procs = Fake::of(&helper).procs;
    let events = t.refresh(&mut kernel, &helper, t0 + EOF_GRACE * 2);
    assert!(matches!(events[..], [Event::Termed { crash: false, .. }]));
}

#[test]
fn without_a_stdio_channel_a_tracked_duplicate_may_get_sigterm() {
    use crate::core::input::Input;
    // (what closing the input answered, whether the duplicate is left alone)
    let table = [
        (Fallback::NotSocket(Input::Other("/dev/null".into())), false),
        (Fallback::NotSocket(Input::Closed), false),
        (Fallback::NotStdio { pid: 40 }, false),
        (Fallback::NotSocket(Input::Pipe), true),
        (Fallback::NoRoute, true),
        (Fallback::SharedOutside { pid: 40, holder: 7 }, true),
    ];
    for (why, spared) in table {
        let snap = tree();
        let mut kernel = Fake::of(&snap);
        kernel.close = Some(why.clone());
        kernel.exit = Some(NotEnded {
            cause: "no_route",
            why: "ptrace refused".into(),
        });
        let (_, begun, _) = begin(&mut kernel, &snap, Reason::Duplicate, WITH_EXIT);
        assert_eq!(matches!(begun, Begun::Spared(_)), spared, "{why:?}");
        assert_eq!(kernel.sent.is_empty(), spared, "{why:?}");
    }
}

#[test]
fn without_a_stdio_channel_a_tracked_server_gets_sigterm_at_once_not_the_exit_step() {
    use crate::core::input::Input;
    let snap = tree();
    let mut kernel = Fake::of(&snap);
    kernel.close = Some(Fallback::NotSocket(Input::Other("/dev/null".into())));
    kernel.ignore_term = vec![40, 41, 42];
    let (mut t, begun, t0) = begin(&mut kernel, &snap, Reason::Cap, WITH_EXIT);
    assert!(matches!(begun, Begun::Fallback(_)), "{begun:?}");
    assert!(kernel.exited.is_empty(), "no exit step");
    assert_eq!(kernel.signals_to(-40), [SIGTERM, SIGCONT]);
    let events = t.refresh(&mut kernel, &snap, t0 + KILL_GRACE);
    assert!(matches!(events[..], [Event::Killed { .. }]), "{events:?}");
}
