//! Which processes an escalation still follows, on hand-built snapshots.

use super::*;
use crate::core::testkit::{p, snapshot, MAIN};

fn escalation(id: UnitId, members: &[(i32, u64)]) -> Escalation {
    let members = members
        .iter()
        .map(|&(pid, start)| ProcId { pid, start })
        .collect();
    let graces = Graces {
        eof: Duration::from_secs(3),
        exit: None,
        kill: Duration::from_secs(5),
        tracked: false,
    };
    Escalation::begin(
        id,
        0,
        Reason::Orphan,
        members,
        false,
        graces,
        Instant::now(),
    )
}

fn pids(members: Vec<ProcId>) -> Vec<i32> {
    let mut pids: Vec<i32> = members.into_iter().map(|m| m.pid).collect();
    pids.sort();
    pids
}

fn start_of(snapshot: &Snapshot, pid: i32) -> u64 {
    snapshot.get(pid).map(|p| p.start).expect("in the snapshot")
}

#[test]
fn a_group_unit_follows_its_whole_group_and_what_forks_into_it() {
    let mut zombie = p(43, 40, 40, 5, "node");
    zombie.state = b'Z';
    let snap = snapshot(vec![
        p(40, MAIN, 40, 5, "npm exec @x/a"),
        p(41, 40, 40, 5, "sh -c a"),
        // Joined the group after the SIGTERM: followed all the same.
        p(42, 41, 40, 1, "node a"),
        zombie,
        // Forked into a group of its own: another unit, not this one.
        p(44, 41, 44, 1, "node detached"),
        p(50, MAIN, 50, 5, "npm exec @x/b"),
    ]);
    let e = escalation(UnitId::Group(40), &[(40, start_of(&snap, 40))]);
    assert_eq!(pids(e.current_members(&snap)), vec![40, 41, 42]);
}

#[test]
fn a_subtree_unit_follows_descendants_in_its_group_only() {
    let snap = snapshot(vec![
        p(30, MAIN, MAIN, 5, "sleep 100"),
        p(31, 30, MAIN, 5, "sh"),
        p(32, 31, MAIN, 1, "sh"),
        p(33, 30, 33, 1, "own group"),
        // Same group, not a descendant: the main child's other subtree.
        p(34, MAIN, MAIN, 5, "node backend"),
    ]);
    let e = escalation(UnitId::Subtree(30), &[(30, start_of(&snap, 30))]);
    assert_eq!(pids(e.current_members(&snap)), vec![30, 31, 32]);
}

#[test]
fn a_reused_pid_is_not_a_member() {
    let snap = snapshot(vec![
        p(30, MAIN, MAIN, 5, "someone else"),
        p(31, 30, MAIN, 1, "sh"),
    ]);
    let old_start = start_of(&snap, 30) - 1;
    let e = escalation(UnitId::Subtree(30), &[(30, old_start)]);
    assert!(e.current_members(&snap).is_empty(), "the unit is gone");
}

#[test]
fn members_that_exited_are_gone() {
    let mut zombie = p(30, MAIN, MAIN, 5, "sleep 100");
    zombie.state = b'Z';
    let snap = snapshot(vec![zombie]);
    let e = escalation(UnitId::Subtree(30), &[(30, start_of(&snap, 30))]);
    assert!(e.current_members(&snap).is_empty());
}
