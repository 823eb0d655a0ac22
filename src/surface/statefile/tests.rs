use super::*;
use crate::config::Config;
use crate::core::policy::Reason;
use crate::core::process::Snapshot;
use crate::core::testkit::{defaults, server, snapshot, MAIN, ME};
use crate::core::units::Unit;
use crate::core::units::UnitId;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

/// A snapshot of the main child and `servers` MetaMCP-style instances of one server.
fn servers(servers: i32) -> (Snapshot, Vec<Unit>) {
    let mut procs = Vec::new();
    for i in 0..servers {
        procs.extend(server(100 + 10 * i, MAIN, 500 - i as u64, "@x/a"));
    }
    let snap = snapshot(procs);
    let units = crate::core::units::units(&snap, Some(MAIN), &defaults());
    (snap, units)
}

/// The view the loop would publish after deciding on `snapshot` with `terminating` in
/// flight.
fn with_view_busy<T>(
    config: &Config,
    (snapshot, units): &(Snapshot, Vec<Unit>),
    terminating: &HashMap<UnitId, Reason>,
    f: impl FnOnce(&View) -> T,
) -> T {
    let counters = Counters::default();
    let busy = terminating.keys().copied().collect();
    // Every server last read input at the start of the clock, 1,000 s ago: idle, and
    // none is the spare (which is never seen reading).
    let activity: crate::core::policy::Activity = units
        .iter()
        .filter(|u| u.key.is_some())
        .map(|u| {
            let idle = crate::core::activity::Use {
                last_input_ms: Some(0),
                watched_since_ms: 0,
                from: None,
            };
            (u.id, idle)
        })
        .collect();
    let plan = crate::core::policy::decide(units, &activity, config, snapshot.now_ms, &busy);
    f(&View {
        config,
        pid: ME,
        main: Some(MAIN),
        started_unix_ms: 1,
        limits: Default::default(),
        snapshot,
        units,
        duplicates: &plan.duplicates,
        terminating,
        activity: &activity,
        blind: None,
        counters: &counters,
    })
}

fn with_view<T>(config: &Config, tree: &(Snapshot, Vec<Unit>), f: impl FnOnce(&View) -> T) -> T {
    with_view_busy(config, tree, &HashMap::new(), f)
}

/// (top pid, duplicate, terminating) of each unit's top row in the document.
fn marks(view: &View) -> Vec<(i32, bool, bool)> {
    let text = serde_json::to_string(&view.document(1)).unwrap();
    let state = crate::surface::status::decode(&text).unwrap();
    state
        .processes
        .iter()
        .filter(|r| r.pid == r.unit_top && r.pid != MAIN)
        .map(|r| (r.pid, r.duplicate, r.terminating))
        .collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcpinit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_heartbeat_touches_the_file_without_rewriting_it() {
    let dir = temp_dir("touch");
    let path = dir.join("mcpinit.json");
    let config = Config::default();
    let file = with_view(&config, &servers(1), |view| write(&path, view)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    file.set_modified(hour_ago).unwrap();
    touch(&file).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "not rewritten"
    );
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let age = modified.elapsed().unwrap_or_default();
    assert!(
        age < std::time::Duration::from_secs(60),
        "touched: {age:?} old"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn write_replaces_the_file_and_leaves_no_temporary_behind() {
    let dir = temp_dir("state");
    let path = dir.join("mcpinit.json");
    // A symlink where an old, predictable temporary name would have gone.
    std::os::unix::fs::symlink(dir.join("victim"), path.with_extension("tmp.1")).unwrap();
    let config = Config::default();
    with_view(&config, &servers(1), |view| write(&path, view)).unwrap();
    with_view(&config, &servers(2), |view| write(&path, view)).unwrap();
    let state = crate::surface::status::decode(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(state.processes.len(), 7, "the second write");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o022, 0, "not writable by others: {mode:o}");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!dir.join("victim").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn long_command_lines_are_cut_in_the_file() {
    let (mut snap, _) = servers(1);
    let long = format!("npm exec @x/a {}", "é".repeat(10_000));
    snap.procs[1].cmdline = long.as_str().into();
    let units = crate::core::units::units(&snap, Some(MAIN), &defaults());
    let text = with_view(&Config::default(), &(snap, units), |view| {
        serde_json::to_string(&view.document(1)).unwrap()
    });
    let state = crate::surface::status::decode(&text).unwrap();
    let cmdline = &state.processes[1].cmdline;
    assert!(cmdline.len() <= CMDLINE_MAX && cmdline.len() > CMDLINE_MAX - 2);
    assert!(long.starts_with(cmdline.as_ref()));
}

/// Issue 11.2: the marks are the policy's. Three instances of one server, the newest
/// already being terminated (for the cap): to the policy it is no instance, so the
/// middle one is the newest kept and only the oldest is surplus. The old recomputation
/// in state.rs ignored busy units and marked the middle one DUPLICATE too.
#[test]
fn duplicate_marks_follow_the_plan_not_a_recount() {
    let tree = servers(3); // 100 oldest, 120 newest
    let config = Config::default();
    let busy = HashMap::from([(UnitId::Group(120), Reason::Cap)]);
    let got = with_view_busy(&config, &tree, &busy, marks);
    assert_eq!(
        got,
        [(100, true, false), (110, false, false), (120, false, true)]
    );
    // A dry-run duplicate stays marked while it "would be" terminated.
    let busy = HashMap::from([(UnitId::Group(100), Reason::Duplicate)]);
    let got = with_view_busy(&config, &tree, &busy, marks);
    assert_eq!(
        got,
        [(100, true, true), (110, true, false), (120, false, false)]
    );
}

/// Bytes the document for `tree` takes, counted as it streams (nothing kept).
fn document_size(tree: &(Snapshot, Vec<Unit>)) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    with_view(&Config::default(), tree, |view| {
        serde_json::to_writer(&mut count, &view.document(1)).unwrap()
    });
    count.0
}

/// 10,000 processes as MetaMCP leaks them (3,333 `npm exec` -> `sh` -> `node` trees),
/// with `cmdline` replacing every command line when given.
fn metamcp_at_10_000(cmdline: Option<&str>) -> (Snapshot, Vec<Unit>) {
    // One shared copy for all (units still copy each key).
    let shared: Option<std::rc::Rc<str>> = cmdline.map(Into::into);
    let mut procs = Vec::new();
    for i in 0..3_333 {
        let mut instance = server(
            100 + 10 * i,
            MAIN,
            500,
            "@modelcontextprotocol/server-everything",
        );
        instance[2].cmdline =
            "node /root/.npm/_npx/a4b9c3d2e1f0a9b8/node_modules/.bin/mcp-server-everything".into();
        if let Some(text) = &shared {
            for p in &mut instance {
                p.cmdline = text.clone();
            }
        }
        procs.extend(instance);
    }
    let snap = snapshot(procs);
    let units = crate::core::units::units(&snap, Some(MAIN), &defaults());
    (snap, units)
}

/// The reader's cap (status::READ_LIMIT) must stay well above a real state file at
/// 10,000 processes, and above the worst a hostile tree can make the writer write.
/// The figures in docs/status-and-health.md come from here:
/// `cargo test --lib state_file_at_10_000 -- --nocapture`.
#[test]
fn state_file_at_10_000_processes_fits_the_reader_cap() {
    let real = document_size(&metamcp_at_10_000(None));
    // Every command line escape characters well past the cut (8,000 of them take
    // 48,000 bytes of JSON), behind a launcher name, so that the key is as long as it
    // can be too.
    let hostile = format!("npm exec {}", "\u{1b}".repeat(8_000));
    let worst = document_size(&metamcp_at_10_000(Some(&hostile)));
    eprintln!(
        "state file at 10,001 processes: {real} bytes as MetaMCP leaks them, {worst} at worst"
    );
    assert!(real * 10 < crate::surface::status::READ_LIMIT, "{real}");
    assert!(worst < crate::surface::status::READ_LIMIT, "{worst}");
}
