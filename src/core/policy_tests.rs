use super::*;
use crate::core::lineage::Lineage;
use crate::core::testkit::*;
use crate::core::units::units;
use std::collections::HashSet;
use std::time::Duration;

const IDLE_S: u64 = 600;

fn config() -> Config {
    Config {
        dedupe_idle: Duration::from_secs(IDLE_S),
        ..Config::default()
    }
}

/// Input as the tracker reports it: watched since `watched_s` seconds ago, last input
/// `input_s` seconds ago (None: none seen).
fn seen(watched_s: u64, input_s: Option<u64>) -> Use {
    Use {
        last_input_ms: input_s.map(|s| NOW_MS - s * 1000),
        watched_since_ms: NOW_MS - watched_s * 1000,
        from: None,
    }
}

/// Watched long ago, no input seen at all: idle for good, and never used.
fn idle() -> Use {
    seen(990, None)
}

/// Used once, long ago: a leak.
fn stale() -> Use {
    seen(990, Some(700))
}

fn plan(procs: Vec<crate::core::process::Proc>, config: &Config) -> Plan {
    plan_with(procs, config, &[], &[])
}

fn plan_busy(procs: Vec<crate::core::process::Proc>, config: &Config, busy: &[UnitId]) -> Plan {
    plan_with(procs, config, busy, &[])
}

/// `uses`: (pgid, what is known of its input); units not listed were not looked at.
fn plan_with(
    procs: Vec<crate::core::process::Proc>,
    config: &Config,
    busy: &[UnitId],
    uses: &[(i32, Use)],
) -> Plan {
    let snap = snapshot(procs);
    let units = units(&snap, Some(MAIN), &config.dedupe);
    let activity: Activity = uses.iter().map(|&(g, u)| (UnitId::Group(g), u)).collect();
    decide(
        &units,
        &activity,
        config,
        snap.now_ms,
        &busy.iter().copied().collect(),
    )
}

/// Every instance of `backend_with` idle for good.
fn all_idle(n: usize) -> Vec<(i32, Use)> {
    (0..n).map(|i| (100 + 10 * i as i32, idle())).collect()
}

fn chosen(plan: &Plan) -> Vec<(UnitId, Reason, Option<i32>)> {
    plan.terminate
        .iter()
        .map(|d| (d.unit, d.reason, d.kept))
        .collect()
}

/// MetaMCP backend (pid 20, child of main) with instances of `@x/a` of the given ages.
fn backend_with(ages: &[u64]) -> Vec<crate::core::process::Proc> {
    let mut procs = vec![p(20, MAIN, MAIN, 500, "node backend.js")];
    for (i, &age) in ages.iter().enumerate() {
        procs.extend(server(100 + 10 * i as i32, 20, age, "@x/a"));
    }
    procs
}

#[test]
fn idle_duplicates_are_culled_to_the_newest_idle_longest_first() {
    // Instances 400, 300, 200, 100 s old; 120 last used 900 s ago, 110 990 s ago,
    // 100 950 s ago: culled 110, 100, 120.
    let uses = [
        (100, seen(995, Some(950))),
        (110, seen(995, Some(990))),
        (120, seen(995, Some(900))),
        (130, idle()),
    ];
    let plan = plan_with(backend_with(&[400, 300, 200, 100]), &config(), &[], &uses);
    let dup = |pgid| (UnitId::Group(pgid), Reason::Duplicate, Some(130));
    assert_eq!(chosen(&plan), [dup(110), dup(100), dup(120)]);
    let idle: Vec<_> = plan.terminate.iter().map(|d| d.idle_ms).collect();
    assert_eq!(idle, [Some(990_000), Some(950_000), Some(900_000)]);
    assert_eq!((plan.live, plan.projected), (1 + 1 + 12, 1 + 1 + 3));
    assert!(plan.uses_activity);
}

/// The dedupe rule as a table: per instance (oldest first) what is known of its input,
/// and whether it is ended. The last instance is always the newest.
#[test]
fn dedupe_keeps_the_newest_and_every_instance_in_use() {
    let none = None;
    /// (each instance's input, whether each is ended, what)
    type Row = (Vec<Option<Use>>, &'static [bool], &'static str);
    let table: Vec<Row> = vec![
        (
            vec![Some(stale()), Some(idle())],
            &[true, false],
            "a duplicate used long ago",
        ),
        (
            vec![Some(idle()), Some(idle())],
            &[false, false],
            "never used besides the newest: the spare",
        ),
        (
            vec![Some(seen(990, Some(30))), Some(idle())],
            &[false, false],
            "input 30 s ago: in use",
        ),
        (
            vec![Some(seen(990, Some(IDLE_S - 1))), Some(idle())],
            &[false, false],
            "input just within the idle time",
        ),
        (
            vec![Some(seen(990, Some(IDLE_S))), Some(idle())],
            &[true, false],
            "input exactly the idle time ago",
        ),
        (
            vec![Some(seen(60, None)), Some(idle())],
            &[false, false],
            "watched for a minute only: what it did before is unknown",
        ),
        (
            vec![none, Some(idle())],
            &[false, false],
            "input not looked at",
        ),
        (
            vec![Some(idle()), Some(seen(990, Some(1)))],
            &[false, false],
            "the newest in use: the older one never used is MetaMCP's spare",
        ),
        (
            vec![
                Some(seen(990, Some(900))),
                Some(idle()),
                Some(seen(990, Some(1))),
            ],
            &[true, false, false],
            "used long ago goes; the spare (never used) and the newest stay",
        ),
        (
            vec![Some(idle()), Some(idle()), Some(seen(990, Some(1)))],
            &[true, false, false],
            "two never used: only the newer of them is the spare",
        ),
        (
            vec![Some(seen(990, Some(5))), Some(stale()), Some(idle())],
            &[false, true, false],
            "an older one in use, a younger idle one: the idle one goes",
        ),
    ];
    for (uses, ended, what) in table {
        let ages: Vec<u64> = (0..uses.len() as u64).map(|i| 900 - i * 100).collect();
        let uses: Vec<(i32, Use)> = uses
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.map(|u| (100 + 10 * i as i32, u)))
            .collect();
        let plan = plan_with(backend_with(&ages), &config(), &[], &uses);
        let want: Vec<_> = ended
            .iter()
            .enumerate()
            .filter(|(_, &e)| e)
            .map(|(i, _)| UnitId::Group(100 + 10 * i as i32))
            .collect();
        let got: Vec<_> = plan.terminate.iter().map(|d| d.unit).collect();
        assert_eq!(got, want, "{what}");
        assert!(
            plan.terminate.iter().all(|d| d.reason == Reason::Duplicate),
            "{what}"
        );
    }
}

#[test]
fn the_newest_and_the_spare_are_kept_when_never_used() {
    let plan = plan_with(backend_with(&[400]), &config(), &[], &all_idle(1));
    assert_eq!(chosen(&plan), []);
    let plan = plan_with(backend_with(&[400, 5]), &config(), &[], &all_idle(2));
    assert_eq!(chosen(&plan), [], "the older one may be the spare");
    let plan = plan_with(backend_with(&[400, 300, 5]), &config(), &[], &all_idle(3));
    assert_eq!(
        chosen(&plan),
        [(UnitId::Group(100), Reason::Duplicate, Some(120))]
    );
}

#[test]
fn keep_two_keeps_the_two_newest_whatever_their_input() {
    let config = Config {
        dedupe_keep: 2,
        ..config()
    };
    let plan = plan_with(
        backend_with(&[400, 300, 200, 100]),
        &config,
        &[],
        &(0..4).map(|i| (100 + 10 * i, stale())).collect::<Vec<_>>(),
    );
    let dup = |pgid| (UnitId::Group(pgid), Reason::Duplicate, Some(130));
    assert_eq!(chosen(&plan), [dup(100), dup(110)]);
}

#[test]
fn idle_zero_ignores_input_and_keeps_only_the_newest() {
    let config = Config {
        dedupe_idle: Duration::ZERO,
        ..config()
    };
    let uses = [(100, seen(990, Some(1)))];
    let plan = plan_with(backend_with(&[400, 300]), &config, &[], &uses);
    assert_eq!(
        chosen(&plan),
        [(UnitId::Group(100), Reason::Duplicate, Some(110))]
    );
}

#[test]
fn a_decision_falls_due_when_an_instance_in_use_runs_out_of_input() {
    let uses = [(100, seen(990, Some(30))), (110, seen(990, Some(200)))];
    let plan = plan_with(backend_with(&[900, 800, 100]), &config(), &[], &uses);
    assert_eq!(chosen(&plan), []);
    assert_eq!(plan.due_ms, Some(NOW_MS - 200_000 + IDLE_S * 1000));
    assert!(!plan.uses_activity);
    let plan = plan_with(backend_with(&[900, 100]), &config(), &[], &all_idle(2));
    assert_eq!(plan.due_ms, None, "nothing is kept for its input");
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
fn orphans_ended_by_what_they_were() {
    // 300 is the node of a server whose `npm exec` (298) and `sh` (299) died.
    let mut before = backend_with(&[400]);
    before.extend(server(298, 20, 90, "@x/a"));
    let mut procs = backend_with(&[400]);
    procs.push(p(
        300,
        ME,
        298,
        90,
        "node /root/.npm/_npx/x/node_modules/.bin/srv",
    ));
    // A daemon the entrypoint started with a double fork: never part of a server.
    procs.push(p(500, ME, MAIN, 60, "crond"));
    let plan_after = |config: &Config, seen_before: bool| {
        let mut lineage = Lineage::default();
        if seen_before {
            let snap = snapshot(before.clone());
            let mut u = units(&snap, Some(MAIN), &config.dedupe);
            lineage.remember(&snap, &mut u);
        }
        let snap = snapshot(procs.clone());
        let mut u = units(&snap, Some(MAIN), &config.dedupe);
        lineage.remember(&snap, &mut u);
        chosen(&decide(
            &u,
            &Activity::new(),
            config,
            snap.now_ms,
            &HashSet::new(),
        ))
    };
    let server_orphan = (UnitId::Group(298), Reason::Orphan, None);
    let daemon = (UnitId::Subtree(500), Reason::Orphan, None);
    let all = Config {
        orphans: Orphans::All,
        ..config()
    };
    let none = Config {
        orphans: Orphans::None,
        ..config()
    };
    type Case<'a> = (
        &'a str,
        &'a Config,
        bool,
        Vec<(UnitId, Reason, Option<i32>)>,
    );
    let table: &[Case] = &[
        (
            "servers: the server's orphan, not the daemon",
            &config(),
            true,
            vec![server_orphan],
        ),
        (
            "servers: an orphan never seen in a server lives",
            &config(),
            false,
            vec![],
        ),
        ("all: both", &all, true, vec![server_orphan, daemon]),
        (
            "all: both, whatever was seen",
            &all,
            false,
            vec![server_orphan, daemon],
        ),
        ("none: neither", &none, true, vec![]),
    ];
    for (name, config, seen, want) in table {
        let mut got = plan_after(config, *seen);
        got.sort_by_key(|c| c.0);
        assert_eq!(&got, want, "{name}");
    }
}

#[test]
fn an_orphaned_instance_is_not_kept_in_place_of_a_tracked_one() {
    let mut procs = backend_with(&[400]);
    let mut orphan = server(300, ME, 100, "@x/a");
    orphan.truncate(1);
    procs.extend(orphan);
    let keep = Config {
        orphans: Orphans::None,
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
        orphans: Orphans::All,
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
    let plan = decide(
        &units,
        &Activity::new(),
        &config,
        snap.now_ms,
        &HashSet::new(),
    );
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

#[test]
fn cap_ranks_orphans_idle_in_use_detached_newest_then_the_application() {
    // main, backend (20, app), a: 100 never used, watched since 800 s, 110 in use
    // 10 s ago, 120 in use 100 s ago, 130 never used, watched since 700 s (the spare:
    // the newest never used besides the newest), 140 newest; a detached
    // `setsid sleep` (60) and an orphan (399).
    let mut procs = backend_with(&[900, 800, 700, 600, 100]);
    procs.push(p(60, 20, 60, 950, "sleep 1000"));
    procs.push(p(400, ME, 399, 90, "node leaf.js"));
    let uses = [
        (100, seen(800, None)),
        (110, seen(990, Some(10))),
        (120, seen(990, Some(100))),
        (130, seen(700, None)),
        (140, idle()),
    ];
    let config = Config {
        max_procs: 1,
        dedupe: defaults(),
        orphans: Orphans::All,
        ..config()
    };
    let plan = plan_with(procs, &config, &[], &uses);
    let g = UnitId::Group;
    let got: Vec<_> = plan.terminate.iter().map(|d| (d.unit, d.reason)).collect();
    assert_eq!(
        got,
        [
            (g(399), Reason::Orphan),
            (g(100), Reason::Duplicate),
            (g(120), Reason::Cap),
            (g(110), Reason::Cap),
            (g(60), Reason::Cap),
            (g(140), Reason::Cap),
            (g(130), Reason::Cap),
            (UnitId::Subtree(20), Reason::Cap),
        ]
    );
    assert!(plan.uses_activity);
}

#[test]
fn under_the_cap_the_least_recently_used_goes_first() {
    // Two instances in use beyond the newest; one over the cap: the one used longer
    // ago goes, although it is the younger.
    let uses = [
        (100, seen(990, Some(20))),
        (110, seen(990, Some(300))),
        (120, idle()),
    ];
    let config = Config {
        max_procs: 1 + 1 + 6,
        ..config()
    };
    let plan = plan_with(backend_with(&[900, 800, 100]), &config, &[], &uses);
    assert_eq!(chosen(&plan), [(UnitId::Group(110), Reason::Cap, None)]);
}

#[test]
fn memory_cap_takes_the_least_recently_used_instance_not_the_largest() {
    let mut procs = backend_with(&[900, 800, 100]);
    procs[3].rss = 300 << 20; // 100's leaf: large, but in use
    let uses = [
        (100, seen(990, Some(5))),
        (110, seen(990, Some(400))),
        (120, idle()),
    ];
    let config = Config {
        max_memory: 300 << 20,
        ..config()
    };
    let plan = plan_with(procs, &config, &[], &uses);
    assert_eq!(
        chosen(&plan),
        [
            (UnitId::Group(110), Reason::Memory, None),
            (UnitId::Group(100), Reason::Memory, None)
        ]
    );
}

#[test]
fn watched_are_the_instances_of_keys_with_surplus() {
    let mut procs = backend_with(&[400, 300]);
    procs.extend(server(200, 20, 300, "@x/b"));
    let mut orphan = server(300, ME, 100, "@x/a");
    orphan.truncate(1);
    procs.extend(orphan);
    let snap = snapshot(procs);
    let config = config();
    let units = units(&snap, Some(MAIN), &config.dedupe);
    let busy = HashSet::new();
    let mut got = watched(&units, &config, &busy);
    got.sort();
    assert_eq!(got, [UnitId::Group(100), UnitId::Group(110)]);
    let mut all = all_instances(&units, &busy);
    all.sort();
    assert_eq!(
        all,
        [UnitId::Group(100), UnitId::Group(110), UnitId::Group(200)]
    );
    let off = Config {
        dedupe_idle: Duration::ZERO,
        ..config
    };
    assert_eq!(watched(&units, &off, &busy), []);
}

/// Instances of `@x/a` (pgids 100, 110, …) of the given ages, each started with the
/// environment hashed to its `envs` entry.
fn twins_with(ages: &[u64], envs: &[u64]) -> Vec<crate::core::process::Proc> {
    let mut procs = vec![p(20, MAIN, MAIN, 500, "node backend.js")];
    for (i, (&age, &env)) in ages.iter().zip(envs).enumerate() {
        procs.extend(server_with_env(100 + 10 * i as i32, 20, age, "@x/a", env));
    }
    procs
}

#[test]
fn one_command_line_with_two_environments_is_two_servers() {
    let ages = [400, 300, 200, 100];
    let stale4: Vec<_> = (0..4).map(|i| (100 + 10 * i, stale())).collect();
    // Each environment keeps its own newest: 110 for A, 130 for B.
    let plan = plan_with(twins_with(&ages, &[7, 7, 9, 9]), &config(), &[], &stale4);
    let dup = |pgid, kept| (UnitId::Group(pgid), Reason::Duplicate, Some(kept));
    assert_eq!(chosen(&plan), [dup(100, 110), dup(120, 130)]);
    // Interleaved, as two servers' sessions come: still each its own newest.
    let plan = plan_with(twins_with(&ages, &[7, 9, 7, 9]), &config(), &[], &stale4);
    assert_eq!(chosen(&plan), [dup(100, 120), dup(110, 130)]);
    // One environment: one server, as before.
    let plan = plan_with(twins_with(&ages, &[7, 7, 7, 7]), &config(), &[], &stale4);
    assert_eq!(chosen(&plan), [dup(100, 130), dup(110, 130), dup(120, 130)]);
}

#[test]
fn each_twin_keeps_its_own_spare() {
    // MetaMCP's startup spares are the oldest (100 for A, 110 for B), never used; the
    // first session's instances (120, 130) were used once, long ago.
    let ages = [400, 300, 200, 100];
    let uses = [(100, idle()), (110, idle()), (120, stale()), (130, stale())];
    let plan = plan_with(twins_with(&ages, &[7, 9, 7, 9]), &config(), &[], &uses);
    assert_eq!(chosen(&plan), [], "a twin's spare was ended");
    // Had they one environment, one spare (the newest never used, 110) would do.
    let plan = plan_with(twins_with(&ages, &[7, 7, 7, 7]), &config(), &[], &uses);
    let dup = |pgid| (UnitId::Group(pgid), Reason::Duplicate, Some(130));
    assert_eq!(chosen(&plan), [dup(100), dup(120)]);
}

#[test]
fn a_twin_alone_in_its_environment_is_not_watched() {
    let config = config();
    let snap = snapshot(twins_with(&[400, 300, 200], &[7, 9, 9]));
    let units = units(&snap, Some(MAIN), &config.dedupe);
    let watched = watched(&units, &config, &HashSet::new());
    assert_eq!(watched, [UnitId::Group(110), UnitId::Group(120)]);
}

#[test]
fn a_key_split_beyond_its_expected_environments_is_found() {
    let mut procs = vec![p(20, MAIN, MAIN, 900, "node backend")];
    // @x/a: two accounts, expected; @x/b: a token that differs by instance.
    procs.extend(server_with_env(100, 20, 400, "@x/a", 1));
    procs.extend(server_with_env(110, 20, 300, "@x/a", 2));
    procs.extend(server_with_env(120, 20, 200, "@x/a", 2));
    for (i, env) in [7, 8, 9].into_iter().enumerate() {
        procs.extend(server_with_env(200 + 10 * i as i32, 20, 100, "@x/b", env));
    }
    // an orphan of @x/b under a fourth environment is not an instance.
    procs.extend(server_with_env(300, ME, 100, "@x/b", 10));
    let snap = snapshot(procs);
    let units = units(&snap, Some(MAIN), &defaults());
    assert_eq!(env_splits(&units), [("npm exec @x/b", 3)]);
}

#[test]
fn a_process_between_fork_and_exec_is_not_judged_yet() {
    // The backend (20) just forked 70 into a session of its own; it has not exec'd
    // `npm exec` yet, so it still runs the backend's program. The cap takes the idle
    // instance, never the newborn, whatever its rank would be.
    let mut procs = backend_with(&[900, 800]);
    let mut newborn = p(70, 20, 70, 0, "node backend.js");
    newborn.started_ms = NOW_MS - 5;
    procs.push(newborn.clone());
    let config = Config {
        max_procs: 1,
        dedupe: defaults(),
        ..config()
    };
    let decided = plan(procs.clone(), &config);
    assert!(
        decided
            .terminate
            .iter()
            .all(|d| d.unit != UnitId::Group(70)),
        "{:?}",
        decided.terminate
    );
    // Past the window it is judged as what it is: a detached group.
    newborn.started_ms = NOW_MS - crate::core::units::UNBORN_MS - 1;
    let last = procs.len() - 1;
    procs[last] = newborn;
    let decided = plan(procs, &config);
    assert!(decided
        .terminate
        .iter()
        .any(|d| d.unit == UnitId::Group(70)));
}

#[test]
fn a_storm_of_forks_that_never_exec_is_judged_at_once() {
    // The main child forked lone processes, each its own group, still its own program:
    // (how many, how many the cap of 2 ends; the main child counts as one). Up to 4 at
    // once are spared however far past the cap: a gateway starting servers.
    for (forked, ended) in [(4, 0), (5, 4), (30, 29)] {
        let procs: Vec<_> = ((100..100 + forked).map(|pid| {
            let mut newborn = p(pid, MAIN, pid, 0, "sh ./docker-entrypoint.sh");
            newborn.started_ms = NOW_MS - 5;
            newborn
        }))
        .collect();
        let config = Config {
            max_procs: 2,
            ..config()
        };
        let decided = plan(procs, &config);
        assert_eq!(decided.terminate.len(), ended, "{forked} forked");
    }
}

#[test]
fn the_spare_a_session_just_took_is_kept_while_its_successor_is_young() {
    // 100 and 110 read input long ago; 120 is the spare MetaMCP handed to a new
    // session (its input: only its start-up, 900 s ago); 130 the new spare, started
    // `age` seconds ago. Idle time 30 s.
    let config = Config {
        dedupe_idle: Duration::from_secs(30),
        dedupe: defaults(),
        ..config()
    };
    for (age, handed_over_kept) in [(2, true), (9, true), (11, false), (60, false)] {
        let mut procs = backend_with(&[900, 800, 700]);
        procs.extend(server(130, 20, age, "@x/a"));
        let uses = [
            (100, seen(995, Some(990))),
            (110, seen(995, Some(980))),
            (120, seen(995, Some(695))),
            (130, idle()),
        ];
        let plan = plan_with(procs, &config, &[], &uses);
        let ended: Vec<UnitId> = plan.terminate.iter().map(|d| d.unit).collect();
        assert_eq!(
            !ended.contains(&UnitId::Group(120)),
            handed_over_kept,
            "newest {age} s old: {ended:?}"
        );
        assert!(ended.contains(&UnitId::Group(100)), "{ended:?}");
    }
}
