use super::*;
use crate::core::testkit::*;

fn ids(units: &[Unit]) -> Vec<UnitId> {
    let mut ids: Vec<_> = units.iter().map(|u| u.id).collect();
    ids.sort();
    ids
}

#[test]
fn each_detached_server_is_one_group_unit_with_a_key() {
    let mut procs = vec![p(20, MAIN, MAIN, 500, "node backend.js")];
    procs.extend(server(100, 20, 60, "@x/a"));
    procs.extend(server(200, 20, 30, "@x/b"));
    let units = units(&snapshot(procs), Some(MAIN), &defaults());
    assert_eq!(
        ids(&units),
        [
            UnitId::Main,
            UnitId::Group(100),
            UnitId::Group(200),
            UnitId::Subtree(20)
        ]
    );
    let a = units.iter().find(|u| u.id == UnitId::Group(100)).unwrap();
    assert_eq!(a.pids, [100, 101, 102]);
    assert_eq!(a.top, 100);
    assert_eq!(a.key.as_deref(), Some("npm exec @x/a"));
    assert!(!a.orphaned);
    assert_eq!(a.rss, 3 << 20);
    let backend = units.iter().find(|u| u.id == UnitId::Subtree(20)).unwrap();
    assert_eq!(backend.key, None);
}

#[test]
fn shared_group_splits_into_subtrees_under_main() {
    // `sh -c 'sleep 100 & sleep 100 & wait'`: every sleep is in the main child's group.
    let procs = vec![
        p(11, MAIN, MAIN, 5, "sleep 100"),
        p(12, MAIN, MAIN, 4, "sh -c x"),
        p(13, 12, MAIN, 4, "sleep 100"),
    ];
    let units = units(&snapshot(procs), Some(MAIN), &defaults());
    assert_eq!(
        ids(&units),
        [UnitId::Main, UnitId::Subtree(11), UnitId::Subtree(12)]
    );
    let sub = units.iter().find(|u| u.id == UnitId::Subtree(12)).unwrap();
    assert_eq!(sub.pids, [12, 13]);
}

#[test]
fn orphans_are_units_whose_top_was_reparented_to_mcpinit() {
    // The npm exec leader and sh died; the leaf survives in the old group, ppid = mcpinit.
    let procs = vec![
        p(
            300,
            ME,
            298,
            90,
            "node /root/.npm/_npx/x/node_modules/.bin/srv",
        ),
        p(11, ME, MAIN, 5, "sleep 100"),
    ];
    let units = units(&snapshot(procs), Some(MAIN), &defaults());
    let leaf = units.iter().find(|u| u.id == UnitId::Group(298)).unwrap();
    assert!(leaf.orphaned);
    assert_eq!((leaf.top, leaf.key.as_deref()), (300, None));
    assert!(
        units
            .iter()
            .find(|u| u.id == UnitId::Subtree(11))
            .unwrap()
            .orphaned
    );
    assert!(
        !units
            .iter()
            .find(|u| u.id == UnitId::Main)
            .unwrap()
            .orphaned
    );
}

#[test]
fn zombies_are_not_members_and_leaderless_groups_keep_their_oldest_top() {
    let mut procs = server(100, MAIN, 60, "@x/a");
    procs[0].state = b'Z';
    procs[2].started_ms -= 1000; // the leaf is older than sh
    let units = units(&snapshot(procs), Some(MAIN), &defaults());
    let unit = units.iter().find(|u| u.id == UnitId::Group(100)).unwrap();
    assert_eq!(unit.pids, [101, 102]);
    assert_eq!(
        unit.top, 101,
        "sh's parent (the zombie leader) is outside the live unit"
    );
}

#[test]
fn without_a_live_main_child_nothing_is_shared() {
    let procs = vec![p(11, ME, MAIN, 5, "sleep 100")];
    let mut snap = snapshot(procs);
    snap.procs.retain(|p| p.pid != MAIN);
    let units = units(&snap, None, &defaults());
    assert_eq!(ids(&units), [UnitId::Group(MAIN)]);
}

#[test]
fn a_group_whose_leader_is_outside_the_namespace_goes_by_subtree() {
    // pgid 0: two unrelated orphans of a `docker exec` session whose shell (the
    // leader) lives outside our PID namespace; they must not merge into one unit.
    let procs = vec![
        p(30, ME, 0, 5, "sleep 999"),
        p(31, ME, 0, 4, "sh -c y"),
        p(32, 31, 0, 4, "sleep 998"),
    ];
    let units = units(&snapshot(procs), Some(MAIN), &defaults());
    assert_eq!(
        ids(&units),
        [UnitId::Main, UnitId::Subtree(30), UnitId::Subtree(31)]
    );
    let sub = units.iter().find(|u| u.id == UnitId::Subtree(31)).unwrap();
    assert_eq!(sub.pids, [31, 32]);
    assert!(sub.orphaned);
}

#[test]
fn only_groups_wholly_ours_may_be_signalled_as_a_group() {
    let mut snap = snapshot(Vec::new());
    snap.shared_groups = vec![7];
    assert!(snap.group_is_ours(100));
    assert!(!snap.group_is_ours(7));
    assert!(!snap.group_is_ours(1));
    assert!(!snap.group_is_ours(0));
}

#[test]
fn a_keyed_unit_carries_its_tops_environment_and_others_none() {
    let mut procs = vec![p(20, MAIN, MAIN, 500, "node backend.js")];
    procs.extend(server_with_env(100, 20, 60, "@x/a", 7));
    procs.extend(server_with_env(200, 20, 30, "@x/a", 9));
    let mut plain = p(300, 20, 300, 10, "sleep 100");
    plain.env_hash = 5; // not a launcher: its environment says nothing
    procs.push(plain);
    let units = units(&snapshot(procs), Some(MAIN), &defaults());
    let group = |id| units.iter().find(|u| u.id == id).unwrap().group();
    assert_eq!(group(UnitId::Group(100)), Some(("npm exec @x/a", 7)));
    assert_eq!(group(UnitId::Group(200)), Some(("npm exec @x/a", 9)));
    assert_eq!(group(UnitId::Group(300)), None);
    let plain = units.iter().find(|u| u.id == UnitId::Group(300)).unwrap();
    assert_eq!(plain.env, 0);
}
