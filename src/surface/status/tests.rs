use super::render::{cut, setting, unit_tree};
use super::*;
use crate::config::Config;
use crate::core::testkit::{defaults, p, server, snapshot, MAIN, ME};
use crate::surface::statefile::{Counters, Role, Row};
use std::collections::HashSet;

/// What `statefile::write` writes for: main, two instances of one server (the older a
/// duplicate) and an orphan, decoded back.
/// The policy's plan for `units`, written as the state document and read back as
/// `status` reads it.
fn written_and_read(
    snap: &crate::core::process::Snapshot,
    units: &[crate::core::units::Unit],
    config: &Config,
    counters: &Counters,
    activity: &crate::core::policy::Activity,
) -> State {
    let plan = crate::core::policy::decide(units, activity, config, snap.now_ms, &HashSet::new());
    let view = crate::surface::statefile::View {
        config,
        pid: ME,
        main: Some(MAIN),
        started_unix_ms: 1_000,
        limits: Default::default(),
        snapshot: snap,
        units,
        duplicates: &plan.duplicates,
        terminating: &Default::default(),
        counters,
        activity,
        blind: None,
    };
    let text = serde_json::to_string(&view.document(crate::surface::statefile::unix_ms())).unwrap();
    let mut state = decode(&text).unwrap();
    // The testkit's clock is not the machine's boot clock: as if just scanned.
    state.snapshot_unix_ms = Some(state.updated_unix_ms);
    state
}

fn sample(config: &Config, counters: &Counters) -> State {
    let mut procs = server(20, MAIN, 900, "@x/a");
    procs.extend(server(30, MAIN, 100, "@x/a"));
    procs.push(p(40, ME, 40, 50, "node /srv/leaf.js"));
    let snap = snapshot(procs);
    let units = crate::core::units::units(&snap, Some(MAIN), &defaults());
    // The older instance: idle (input 700 s before the snapshot, over the 10 min
    // MCPINIT_DEDUPE_IDLE), so the policy ends it; the newer: none in 90 s.
    let now = snap.now_ms;
    let activity: crate::core::policy::Activity = [
        (
            crate::core::units::UnitId::Group(20),
            crate::core::activity::Use {
                last_input_ms: Some(now - 700_000),
                watched_since_ms: now - 880_000,
                from: None,
            },
        ),
        (
            crate::core::units::UnitId::Group(30),
            crate::core::activity::Use {
                last_input_ms: None,
                watched_since_ms: now - 90_000,
                from: None,
            },
        ),
    ]
    .into_iter()
    .collect();
    written_and_read(&snap, &units, config, counters, &activity)
}

#[test]
fn decodes_what_state_renders() {
    let counters = Counters {
        terminated_duplicate: 3,
        ended_eof: 2,
        ended_term: 1,
        eof_fallbacks: 1,
        peak_procs: 17,
        ..Counters::default()
    };
    let state = sample(&Config::default(), &counters);
    assert_eq!((state.pid, state.main_pid, state.live), (ME, Some(MAIN), 8));
    assert_eq!(state.counters, counters);
    assert_eq!(state.settings.max_procs, 128);
    let role = |pid: i32| {
        let row = state.processes.iter().find(|r| r.pid == pid).unwrap();
        (row.role, row.duplicate)
    };
    assert_eq!(role(MAIN), (Role::Main, false));
    assert_eq!(role(20), (Role::Server, true));
    assert_eq!(role(32), (Role::Server, false));
    assert_eq!(role(40), (Role::Orphan, false));
    let idle = |pid: i32| {
        let row = state.processes.iter().find(|r| r.pid == pid).unwrap();
        (row.idle_ms, row.input_seen)
    };
    assert_eq!(idle(22), (Some(700_000), true), "every row of the unit");
    assert_eq!(idle(30), (Some(90_000), false));
    assert_eq!(idle(40), (None, false), "not watched");
}

#[test]
fn human_view_groups_units_as_trees() {
    let state = sample(&Config::default(), &Counters::default());
    let now = state.updated_unix_ms + 500;
    let text = render(&state, Path::new("/run/mcpinit.json"), now);
    assert!(text.contains("health     ok"), "{text}");
    assert!(
        text.contains("units      servers 2 (1 keys, 1 duplicates), orphans 1, other 0"),
        "{text}"
    );
    let older = text.find("pgid 20: 3 processes").expect(&text);
    let newer = text.find("pgid 30: 3 processes").expect(&text);
    assert!(
        older < newer,
        "servers of one key are listed oldest first:\n{text}"
    );
    assert!(text[older..newer].contains("DUPLICATE"), "{text}");
    assert!(
        text.contains("   └─ node /root/.npm/_npx/x/node_modules/.bin/srv"),
        "{text}"
    );
    assert!(
        text.contains("orphan  pgid 40: 1 process, 1.0M\n"),
        "{text}"
    );
    assert!(
        text.contains(", last input 11m40s ago  DUPLICATE"),
        "{text}"
    );
    assert!(
        text.contains("pgid 30: 3 processes, 3.0M, no input in 1m30s"),
        "{text}"
    );
    // Ages are aged by the time since the snapshot.
    assert!(text.contains("  15m00s "), "{text}");
}

#[test]
fn health_verdicts() {
    let mut config = Config::default();
    let state = sample(&config, &Counters::default());
    let at = state.updated_unix_ms;
    assert!(verdict(&state, at + 1_000).is_ok());
    let stale = verdict(&state, at + 31_000).unwrap_err();
    assert!(matches!(stale, Unhealthy::Stale { age_ms: 31_000, .. }));
    assert!(stale.to_string().contains("stopped updating"), "{stale}");
    config.max_procs = 5;
    config.dry_run = true;
    let over = verdict(&sample(&config, &Counters::default()), at).unwrap_err();
    assert_eq!(
        over.to_string(),
        "8 live processes, over MCPINIT_MAX_PROCS=5 (dry run)"
    );
    config.max_procs = 0;
    config.max_memory = 4 << 20;
    let over = verdict(&sample(&config, &Counters::default()), at).unwrap_err();
    assert!(
        over.to_string()
            .starts_with("rss 8.0M, over MCPINIT_MAX_MEMORY=4.0M"),
        "{over}"
    );
    let mut exited = state.clone();
    exited.main_pid = None;
    assert_eq!(verdict(&exited, at), Err(Unhealthy::ShuttingDown));
}

#[test]
fn decode_errors_name_the_field() {
    let state = sample(&Config::default(), &Counters::default());
    let text = serde_json::to_string(&state).unwrap();
    assert_eq!(decode(&text).unwrap(), state, "round trip");
    // Server 20 is now the oldest unit, listed first.
    let err = decode(&text.replacen("\"pid\":20,", "\"pid\":\"x\",", 1)).unwrap_err();
    match &err {
        DecodeError::Schema { field, .. } => assert_eq!(field, "processes[0].pid"),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("field 'processes[0].pid': invalid type: string"),
        "{err}"
    );
    let err = decode("[1]").unwrap_err();
    assert!(matches!(err, DecodeError::Schema { .. }), "{err:?}");
    let err = decode(&text[..text.len() / 2]).unwrap_err();
    assert!(matches!(err, DecodeError::Syntax(_)), "{err:?}");
    let err = decode(&format!("{text} x")).unwrap_err();
    assert!(
        matches!(err, DecodeError::Syntax(_)),
        "trailing text: {err:?}"
    );
}

#[test]
fn parent_cycles_print_every_row_once() {
    let row = |pid, ppid| Row {
        pid,
        ppid,
        pgid: 5,
        state: 'S',
        age_ms: 0,
        rss: 0,
        cmdline: format!("cmd{pid}").into(),
        role: Role::Other,
        unit: "pgid:5".into(),
        unit_top: 5,
        key: None,
        env: None,
        idle_ms: None,
        input_seen: false,
        input_from: None,
        duplicate: false,
        terminating: false,
    };
    let rows = [row(5, 6), row(6, 5), row(7, 7)];
    let refs: Vec<&Row> = rows.iter().collect();
    let mut out = String::new();
    unit_tree(&mut out, &refs, 0);
    for pid in [5, 6, 7] {
        assert_eq!(out.matches(&format!("cmd{pid}")).count(), 1, "{out}");
    }
}

#[test]
fn absurd_numbers_render_without_overflow() {
    let mut state = sample(&Config::default(), &Counters::default());
    state.settings.scan_interval_ms = u64::MAX;
    state.counters.terminated_cap = u64::MAX;
    state.counters.terminated_orphan = u64::MAX;
    for row in &mut state.processes {
        (row.age_ms, row.rss) = (u64::MAX, u64::MAX);
    }
    let text = render(&state, Path::new("x"), u64::MAX);
    assert!(text.contains(&format!("terminated {}", u64::MAX)), "{text}");
}

#[test]
fn missing_state_file_is_a_clear_error() {
    let err = load(Some(PathBuf::from("/nonexistent/mcpinit.json")))
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("no running mcpinit found (no state file at /nonexistent/mcpinit.json)"),
        "{err}"
    );
}

#[test]
fn short_forms() {
    assert_eq!(
        [
            0,
            1_250,
            42_000,
            125_000,
            3 * 3_600_000 + 120_000,
            100 * 3_600_000
        ]
        .map(duration),
        ["0.0s", "1.2s", "42s", "2m05s", "3h02m", "4d04h"]
    );
    assert_eq!(
        [0, 250, 5_000, 120_000].map(setting),
        ["0", "250ms", "5s", "2m"]
    );
    assert_eq!(
        [512 << 10, 48 << 20, 5 << 29].map(size),
        ["512K", "48.0M", "2.50G"]
    );
    assert_eq!(cut("abcdef", 3), "abc…");
}

#[test]
fn twins_of_one_key_are_told_apart_by_their_environment() {
    // Two accounts of @x/a (environments 7 and 9), one instance each, and @x/b alone.
    let mut procs = crate::core::testkit::server_with_env(20, MAIN, 300, "@x/a", 7);
    procs.extend(crate::core::testkit::server_with_env(
        30, MAIN, 100, "@x/a", 9,
    ));
    procs.extend(crate::core::testkit::server_with_env(
        50, MAIN, 100, "@x/b", 5,
    ));
    let snap = snapshot(procs);
    let units = crate::core::units::units(&snap, Some(MAIN), &defaults());
    let state = written_and_read(
        &snap,
        &units,
        &Config::default(),
        &Counters::default(),
        &Default::default(),
    );
    let row = |pid: i32| state.processes.iter().find(|r| r.pid == pid).unwrap();
    assert_eq!(row(20).env.as_deref(), Some("00000007"));
    assert_eq!(
        row(32).env.as_deref(),
        Some("00000009"),
        "every row of the unit"
    );
    assert_eq!(row(50).env, None, "a key with one environment names none");
    assert!(
        !row(20).duplicate && !row(30).duplicate,
        "twins are no duplicates"
    );
    let out = render(
        &state,
        Path::new("/run/mcpinit.json"),
        state.updated_unix_ms,
    );
    assert!(out.contains("servers 3 (3 keys, 0 duplicates)"), "{out}");
    assert!(
        out.contains("npm exec @x/a  env 00000007  pgid 20"),
        "{out}"
    );
    assert!(
        out.contains("npm exec @x/a  env 00000009  pgid 30"),
        "{out}"
    );
    assert!(!out.contains("@x/b  env"), "{out}");
}

#[test]
fn an_unreadable_writer_under_hidepid_is_called_hidden_not_gone() {
    assert_eq!(hidden_or_gone(None, false), StaleWhy::Gone);
    assert_eq!(hidden_or_gone(Some("invisible"), true), StaleWhy::Gone);
    let why = hidden_or_gone(Some("invisible"), false);
    assert_eq!(
        why,
        StaleWhy::Hidden {
            hidepid: "invisible"
        }
    );
    let error = LoadError::Stale {
        path: PathBuf::from("/run/mcpinit/state.json"),
        pid: 1,
        why,
    };
    assert_eq!(error.exit_code(), 8);
    let text = error.to_string();
    assert!(
        text.starts_with("cannot see pid 1 in /proc (mounted hidepid=invisible)")
            && text.contains("run this as mcpinit's user")
            && !text.contains("gone"),
        "{text}"
    );
}
