use super::*;
use crate::testkit::*;
use crate::units::units;
use std::time::Duration;

fn config() -> Config {
    Config {
        dedupe_settle: Duration::from_secs(30),
        ..Config::default()
    }
}

fn plan(procs: Vec<crate::proctree::Proc>, config: &Config) -> Plan {
    plan_busy(procs, config, &[])
}

fn plan_busy(procs: Vec<crate::proctree::Proc>, config: &Config, busy: &[UnitId]) -> Plan {
    let snap = snapshot(procs);
    let units = units(&snap, Some(MAIN), &config.dedupe);
    decide(&units, config, snap.now_ms, &busy.iter().copied().collect())
}

fn chosen(plan: &Plan) -> Vec<(UnitId, Reason, Option<i32>)> {
    plan.terminate
        .iter()
        .map(|d| (d.unit, d.reason, d.kept))
        .collect()
}

/// MetaMCP backend (pid 20, child of main) with instances of `@x/a` of the given ages.
fn backend_with(ages: &[u64]) -> Vec<crate::proctree::Proc> {
    let mut procs = vec![p(20, MAIN, MAIN, 500, "node backend.js")];
    for (i, &age) in ages.iter().enumerate() {
        procs.extend(server(100 + 10 * i as i32, 20, age, "@x/a"));
    }
    procs
}

#[test]
fn duplicates_culled_to_the_newest_once_settled() {
    let plan = plan(backend_with(&[400, 300, 200, 100]), &config());
    let dup = |pgid| (UnitId::Group(pgid), Reason::Duplicate, Some(130));
    assert_eq!(chosen(&plan), [dup(100), dup(110), dup(120)]);
    assert_eq!((plan.live, plan.projected), (1 + 1 + 12, 1 + 1 + 3));
}

#[test]
fn keep_two() {
    let config = Config {
        dedupe_keep: 2,
        ..config()
    };
    let plan = plan(backend_with(&[400, 300, 200, 100]), &config);
    let dup = |pgid| (UnitId::Group(pgid), Reason::Duplicate, Some(130));
    assert_eq!(chosen(&plan), [dup(100), dup(110)]);
}

#[test]
fn nothing_culled_before_the_newest_settles() {
    let plan = plan(backend_with(&[400, 29]), &config());
    assert_eq!(chosen(&plan), []);
    assert!(plan.settling, "a decision is due once the newest settles");
    let plan = super::tests::plan(backend_with(&[400, 30]), &config());
    assert_eq!(chosen(&plan).len(), 1);
    assert!(!plan.settling);
}

#[test]
fn different_servers_and_the_main_child_are_untouched() {
    let mut procs = backend_with(&[400]);
    procs.extend(server(200, 20, 300, "@x/b"));
    procs.extend(server(300, 20, 200, "@x/a /other-dir"));
    assert_eq!(chosen(&plan(procs, &config())), []);
}

#[test]
fn dedupe_off() {
    let config = Config {
        dedupe: vec![],
        ..config()
    };
    assert_eq!(chosen(&plan(backend_with(&[400, 300, 200]), &config)), []);
}

#[test]
fn orphans_terminated_or_kept() {
    let mut procs = backend_with(&[400]);
    procs.push(p(
        300,
        ME,
        298,
        90,
        "node /root/.npm/_npx/x/node_modules/.bin/srv",
    ));
    assert_eq!(
        chosen(&plan(procs.clone(), &config())),
        [(UnitId::Group(298), Reason::Orphan, None)]
    );
    let keep = Config {
        orphans: Orphans::Keep,
        ..config()
    };
    assert_eq!(chosen(&plan(procs, &keep)), []);
}

#[test]
fn an_orphaned_instance_is_not_kept_in_place_of_a_tracked_one() {
    let mut procs = backend_with(&[400]);
    let mut orphan = server(300, ME, 100, "@x/a");
    orphan.truncate(1);
    procs.extend(orphan);
    let keep = Config {
        orphans: Orphans::Keep,
        ..config()
    };
    assert_eq!(
        chosen(&plan(procs, &keep)),
        [],
        "the orphan is newer but tracked one stays"
    );
}

#[test]
fn cap_order_duplicates_orphans_oldest_servers_then_others() {
    // main + backend + 3 units of "sleep" subtrees + 3 instances of a, one orphan.
    let mut procs = backend_with(&[400, 300, 20]); // 20s: not settled, still a cap victim
    procs.extend((0..3).map(|i| p(50 + i, MAIN, MAIN, 700 - i as u64, "sleep 1000")));
    procs.push(p(400, ME, 399, 90, "node leaf.js"));
    let config = Config {
        max_procs: 6,
        ..config()
    };
    // live: 1 main + 1 backend + 9 + 3 + 1 = 15; over the cap by 9.
    let plan = plan(procs, &config);
    assert_eq!(
        chosen(&plan),
        [
            (UnitId::Group(399), Reason::Orphan, None),
            (UnitId::Group(100), Reason::Cap, None),
            (UnitId::Group(110), Reason::Cap, None),
            (UnitId::Group(120), Reason::Cap, None),
        ]
    );
    assert_eq!(
        plan.projected, 5,
        "whole units go, so the count may land below the cap"
    );
}

#[test]
fn cap_stops_at_the_cap_and_never_takes_main() {
    let procs: Vec<_> = (0..60)
        .map(|i| p(100 + i, MAIN, MAIN, 1000 - i as u64, "sleep 1000"))
        .collect();
    let config = Config {
        max_procs: 20,
        ..config()
    };
    let plan = plan(procs, &config);
    assert_eq!(plan.live, 61);
    assert_eq!(plan.projected, 20);
    assert_eq!(plan.terminate.len(), 41);
    assert_eq!(plan.terminate[0].unit, UnitId::Subtree(100), "oldest first");
    assert!(plan.terminate.iter().all(|d| d.unit != UnitId::Main));

    let zero = Config {
        max_procs: 0,
        ..config
    };
    let procs: Vec<_> = (0..60)
        .map(|i| p(100 + i, MAIN, MAIN, 10, "sleep 1000"))
        .collect();
    assert_eq!(chosen(&super::tests::plan(procs, &zero)), []);
}

#[test]
fn cap_spares_the_application_while_a_detached_group_can_go() {
    // The backend (pid 20, in the entrypoint's group) is older than two unkeyed
    // detached groups (`setsid sleep`), which go first; it goes only when they are not
    // enough.
    let mut procs = vec![p(20, MAIN, MAIN, 500, "node backend.js")];
    procs.push(p(60, 20, 60, 100, "sleep 1000"));
    procs.push(p(70, 20, 70, 50, "sleep 1000"));
    let config = Config {
        max_procs: 2,
        ..config()
    };
    // live: main + backend + 2 = 4; over the cap by 2.
    let plan = plan(procs.clone(), &config);
    assert_eq!(
        chosen(&plan),
        [
            (UnitId::Group(60), Reason::Cap, None),
            (UnitId::Group(70), Reason::Cap, None)
        ]
    );
    let tight = Config {
        max_procs: 1,
        ..config
    };
    let plan = super::tests::plan(procs, &tight);
    assert_eq!(plan.terminate.last().unwrap().unit, UnitId::Subtree(20));
}

#[test]
fn busy_units_count_as_gone_and_are_not_chosen_again() {
    let procs: Vec<_> = (0..30)
        .map(|i| p(100 + i, MAIN, MAIN, 1000 - i as u64, "sleep 1000"))
        .collect();
    let config = Config {
        max_procs: 20,
        ..config()
    };
    let busy: Vec<UnitId> = (100..108).map(UnitId::Subtree).collect();
    let plan = plan_busy(procs, &config, &busy);
    let units: Vec<_> = plan.terminate.iter().map(|d| d.unit).collect();
    assert_eq!(
        units,
        [
            UnitId::Subtree(108),
            UnitId::Subtree(109),
            UnitId::Subtree(110)
        ]
    );
    assert_eq!(plan.projected, 20);
}

#[test]
fn memory_cap_takes_the_hog_only() {
    let mut procs = backend_with(&[400]);
    procs.extend(server(200, 20, 300, "@x/hog"));
    procs[5].rss = 300 << 20; // the hog's leaf
    let config = Config {
        max_memory: 100 << 20,
        ..config()
    };
    let plan = plan(procs, &config);
    assert_eq!(chosen(&plan), [(UnitId::Group(200), Reason::Memory, None)]);
    assert!(!plan.main_over_memory);
}

#[test]
fn main_child_over_memory_alone_is_reported_not_killed() {
    let mut snap = snapshot(backend_with(&[400]));
    assert_eq!(snap.procs[0].pid, MAIN);
    snap.procs[0].rss = 500 << 20;
    let config = Config {
        max_memory: 100 << 20,
        ..config()
    };
    let units = units(&snap, Some(MAIN), &config.dedupe);
    let plan = decide(&units, &config, snap.now_ms, &HashSet::new());
    assert!(plan.main_over_memory);
    assert_eq!(chosen(&plan), []);
}

#[test]
fn memory_cap_spares_the_application_while_a_server_can_go() {
    // The backend (a subtree of the entrypoint's group) is the largest unit, but a
    // server instance is taken first; the backend only when nothing else is left.
    let mut procs = backend_with(&[400]);
    procs[0].rss = 600 << 20; // node backend
    procs[3].rss = 200 << 20; // the server's leaf
    let config = Config {
        max_memory: 700 << 20,
        ..config()
    };
    let plan = plan(procs.clone(), &config);
    assert_eq!(chosen(&plan), [(UnitId::Group(100), Reason::Memory, None)]);

    let tight = Config {
        max_memory: 100 << 20,
        ..config
    };
    let plan = super::tests::plan(procs, &tight);
    assert_eq!(
        chosen(&plan),
        [
            (UnitId::Group(100), Reason::Memory, None),
            (UnitId::Subtree(20), Reason::Memory, None)
        ]
    );
}
