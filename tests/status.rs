//! `mcpinit status` / `health` and the state file behind them, against real runs.
//! mcpinit runs as PID 1 of its own namespace (tests/common); `status` and `health` are
//! run inside that namespace with nsenter, as `docker exec` runs them in a container,
//! because they check that the pid in the state file is a live mcpinit.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The key of server A as the status backend starts it.
fn key_a() -> String {
    format!("{SERVER_A} --port 0")
}

fn state_file(run: &Run) -> PathBuf {
    run.dir().join("state.json")
}

fn inside_command(run: &Run, args: &[&str]) -> Command {
    inside_program(run, mcpinit(), args)
}

fn status_json(run: &Run) -> Option<Value> {
    let file = state_file(run);
    let out = inside(run, &["status", "--json", "--state-file", file.to_str()?]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn rows(state: &Value) -> &[Value] {
    state
        .get("processes")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn field<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(value, |v, name| v.get(name))
        .unwrap_or_else(|| panic!("no {path} in the state"))
}

fn text(value: &Value, path: &str) -> String {
    field(value, path).as_str().unwrap_or_default().to_string()
}

fn number(value: &Value, path: &str) -> u64 {
    field(value, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a count"))
}

fn with_role<'a>(state: &'a Value, role: &str) -> Vec<&'a Value> {
    rows(state)
        .iter()
        .filter(|r| text(r, "role") == role)
        .collect()
}

#[test]
fn status_json_lists_roles_and_counters_after_a_dedupe() {
    let run = with_backend(
        &["--dedupe-idle", "1s", "--orphans", "keep"],
        "--spawn a:4 --orphan b:1 --leaf-read-once 4000 --gap-ms 300",
        &[],
    );
    // Settled: the three older instances culled, one server unit left.
    let state = wait_until(LONG, || {
        let state = status_json(&run)?;
        let servers = with_role(&state, "server");
        let culled = number(&state, "counters.terminated.duplicate") == 3;
        let one_unit = servers.len() == 3
            && servers
                .iter()
                .all(|r| text(r, "unit") == text(servers[0], "unit"));
        (culled && one_unit && with_role(&state, "orphan").len() == 1).then_some(state)
    })
    .unwrap_or_else(|| panic!("never settled: {:?}\n{}", status_json(&run), run.stdout()));

    assert_eq!(number(&state, "pid"), 1, "mcpinit is PID 1");
    let main = with_role(&state, "main");
    assert_eq!(main.len(), 1);
    assert!(text(main[0], "cmdline").contains("backend.js"));
    assert_eq!(number(main[0], "pid"), number(&state, "main_pid"));
    for server in with_role(&state, "server") {
        assert_eq!(text(server, "key"), key_a());
        assert_eq!(field(server, "duplicate").as_bool(), Some(false));
    }
    let orphan = with_role(&state, "orphan")[0];
    assert!(
        text(orphan, "cmdline").contains("leaf.js server-b"),
        "{orphan:?}"
    );
    assert_eq!(number(orphan, "ppid"), 1, "an orphan hangs off mcpinit");
    assert_eq!(number(&state, "live"), 5, "main + one server of 3 + orphan");
    assert!(
        number(&state, "counters.peak_procs") >= 13,
        "four instances of 3 and main were live at once"
    );
    assert!(number(&state, "counters.peak_rss") >= number(&state, "rss"));
    assert_eq!(
        number(&state, "counters.terminated.orphan"),
        0,
        "orphans: keep"
    );
    assert_eq!(number(&state, "settings.dedupe_idle_ms"), 1000);
    // `keep` is the older name of `none`: the state file shows the name in force.
    assert_eq!(text(&state, "settings.orphans"), "none");
}

#[test]
fn human_status_renders_units_as_trees_with_marks() {
    let run = with_backend(
        &["--dry-run", "--dedupe-idle", "1s", "--eof-grace", "1500ms"],
        "--spawn a:2 --leaf-read-once 4000 --gap-ms 200",
        &[],
    );
    let file = state_file(&run);
    let args = ["status", "--state-file", file.to_str().unwrap()];
    // The older instance is marked once the newer one has its title, which may be
    // before the newer one's sh and leaf are up: the view is taken with both whole.
    let view = wait_until(LONG, || {
        let out = inside(&run, &args);
        let view = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success()
            && view.contains("WOULD TERMINATE")
            && view.contains("live       7 processes"))
        .then_some(view)
    })
    .unwrap_or_else(|| {
        panic!(
            "no duplicate marked with both instances whole: {:?}",
            inside(&run, &args)
        )
    });
    println!("{view}");
    for needle in [
        "mcpinit 0.1.0 (pid 1)",
        "health     ok",
        "live       7 processes (max 128,",
        "DRY RUN: nothing is terminated",
        "settings   dedupe npm exec,npx,uvx keep 1 idle 1s, orphans servers, kill grace 5s",
        ", scan 1s, eof grace 1500ms, input route ",
        "counters   terminated 0 (duplicate 0,",
        "units      servers 2 (1 keys, 1 duplicates), orphans 0, other 0",
        "    PID   PPID   PGID S      AGE      RSS  COMMAND",
        "main: 1 process,",
        &format!("server  {}  pgid ", key_a()),
        "  DUPLICATE  WOULD TERMINATE",
        "  └─ sh -c node ",
        "     └─ node ",
    ] {
        assert!(view.contains(needle), "missing {needle:?} in:\n{view}");
    }
    // The duplicate is the older instance, listed first of its key.
    let first = view.find(&format!("server  {}", key_a())).unwrap();
    assert!(
        view[first..].lines().next().unwrap().contains("DUPLICATE"),
        "{view}"
    );
}

fn health(run: &Run) -> (bool, String) {
    let file = state_file(run);
    let out = inside(run, &["health", "--state-file", file.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn health_passes_when_running_within_the_thresholds() {
    let run = with_backend(&[], "--spawn a:1", &[]);
    let verdict = wait_until(LONG, || Some(health(&run)).filter(|(ok, _)| *ok));
    let (_, line) = verdict.unwrap_or_else(|| panic!("never healthy: {:?}", health(&run)));
    assert!(
        line.starts_with("healthy: ") && line.contains("(cap 128)"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
}

#[test]
fn health_fails_when_the_cap_is_exceeded_in_dry_run() {
    let run = with_backend(
        &["--dry-run", "--max-procs", "3"],
        "--spawn a:2 --gap-ms 100",
        &[],
    );
    let verdict = wait_until(LONG, || {
        Some(health(&run)).filter(|(_, line)| line.contains("over"))
    });
    let (ok, line) = verdict.unwrap_or_else(|| panic!("never over the cap: {:?}", health(&run)));
    assert!(!ok, "{line}");
    assert!(
        line.starts_with("unhealthy: ") && line.ends_with("over MCPINIT_MAX_PROCS=3 (dry run)\n"),
        "{line}"
    );
    assert!(
        run.stdout().contains("would terminate cap unit"),
        "{}",
        run.stdout()
    );
}

/// `mcpinit ARGS` on this host, outside any namespace (nothing is spawned).
fn here(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mcpinit())
        .args(args)
        .env_remove("MCPINIT_STATE_FILE")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// A state document as mcpinit writes it, claiming to be written by `pid`.
fn document(pid: i32) -> String {
    format!(
        r#"{{"pid":{pid},"version":"0.1.0","started_unix_ms":1,"updated_unix_ms":2,"snapshot_unix_ms":2,"main_pid":7,
"settings":{{"max_procs":128,"max_memory":0,"dedupe":"npm exec,npx,uvx","dedupe_keep":1,"dedupe_idle_ms":600000,
"orphans":"term","kill_grace_ms":5000,"stop_grace_ms":8000,"scan_interval_ms":1000,"dry_run":false}},
"cgroup":{{"pids_max":null,"memory_max":null}},"counters":{{"zombies_reaped":0,"signals_forwarded":0,
"terminated":{{"duplicate":0,"orphan":0,"cap":0,"memory":0}},"escalations":0,"peak_procs":1,"peak_rss":0}},
"live":1,"rss":0,"processes":[]}}"#
    )
}

/// `status`, `status --json` and `health` all fail on `file` with exit status `status`
/// (docs/status-and-health.md) and one line containing `reason`.
fn check_both_fail(file: &Path, status: i32, reason: &str) {
    let path = file.to_str().unwrap();
    let (code, out, err) = here(&["status", "--state-file", path]);
    assert_eq!(code, status, "status: {out}{err}");
    assert!(
        out.is_empty() && err.contains(reason) && err.lines().count() == 1,
        "status: {err}"
    );
    let (code, _, err) = here(&["status", "--json", "--state-file", path]);
    assert!(
        code == status && err.contains(reason),
        "status --json: {err}"
    );
    let (code, out, _) = here(&["health", "--state-file", path]);
    assert_eq!(code, status, "health: {out}");
    assert!(
        out.starts_with("unhealthy: ") && out.contains(reason) && out.lines().count() == 1,
        "health: {out}"
    );
}

#[test]
fn status_and_health_fail_clearly_when_no_mcpinit_runs() {
    let dir = temp_dir("no-mcpinit");
    let file = dir.join("state.json");
    check_both_fail(&file, 3, "no running mcpinit found (no state file at ");

    // Left behind by an mcpinit that is gone: its pid is dead now.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id() as i32;
    gone.wait().unwrap();
    fs::write(&file, document(dead)).unwrap();
    check_both_fail(&file, 8, &format!("pid {dead} is gone (stale state file"));

    // A live pid that is not an mcpinit (our own test process).
    fs::write(&file, document(std::process::id() as i32)).unwrap();
    check_both_fail(&file, 8, "not mcpinit (stale state file");

    // Cut short, as a writer without the rename would leave it.
    let whole = document(dead);
    fs::write(&file, &whole[..whole.len() / 2]).unwrap();
    check_both_fail(&file, 7, "is corrupt (EOF while parsing");

    fs::write(&file, whole.replace("\"live\":1", "\"live\":\"many\"")).unwrap();
    check_both_fail(
        &file,
        7,
        "is not mcpinit's: field 'live': invalid type: string \"many\", expected u64",
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn state_file_is_never_seen_half_written() {
    // Many tree changes in a few seconds: the state is rewritten up to 4 times a second.
    let run = with_backend(
        &["--max-procs", "0", "--dedupe", "off"],
        "--spawn a:30 --gap-ms 100",
        &[],
    );
    let file = state_file(&run);
    let (mut reads, mut versions) = (0, HashSet::new());
    // Six seconds from the first document on (mcpinit may be slow to start on a loaded
    // machine), while the backend's 30 spawns change the tree.
    let mut end = Instant::now() + LONG;
    while Instant::now() < end && versions.len() < 8 {
        match fs::read_to_string(&file) {
            Ok(text) => {
                if reads == 0 {
                    end = Instant::now() + Duration::from_secs(6);
                }
                let doc: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("read #{reads} is torn ({e}):\n{text}"));
                versions.insert(number(&doc, "updated_unix_ms"));
                reads += 1;
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        versions.len() >= 3,
        "only {} rewrites seen in {reads} reads",
        versions.len()
    );
}

#[test]
fn state_file_falls_back_to_tmp_when_run_is_not_writable() {
    // In the run's own mount namespace: /run read-only, /tmp a directory we can see.
    // The checkout itself may live under /tmp (CI's clone can), which the bind mount
    // hides: the binary runs from a copy in that directory, /tmp/mcpinit in there.
    let tmp = temp_dir("fallback-tmp");
    fs::copy(mcpinit(), tmp.join("mcpinit")).unwrap();
    let script = format!(
        "mount -t tmpfs -o ro tmpfs /run && mount --bind {} /tmp && unset MCPINIT_STATE_FILE && exec /tmp/mcpinit -- sleep 60",
        tmp.display()
    );
    let run = Run::start_with("sh", &["-c", &script], &[]);
    let written = tmp.join("mcpinit.json");
    // The first look's document: the one written at start lists no process yet.
    let doc = wait_until(LONG, || {
        serde_json::from_str::<Value>(&fs::read_to_string(&written).ok()?)
            .ok()
            .filter(|d| d["processes"].as_array().is_some_and(|p| !p.is_empty()))
    })
    .unwrap_or_else(|| panic!("no /tmp/mcpinit.json: {}{}", run.stdout(), run.stderr()));
    assert_eq!(number(&doc, "pid"), 1);
    assert!(
        !run.stdout().contains("cannot write the state file"),
        "{}",
        run.stdout()
    );

    // Without --state-file, status looks at /run/mcpinit.json, then /tmp/mcpinit.json.
    let inside = |args: &[&str]| {
        inside_program(&run, "/tmp/mcpinit", args)
            .output()
            .expect("nsenter must be installed")
    };
    // The first state may be written before the first look has seen the child.
    let seen = wait_until(LONG, || {
        let out = inside(&["status"]);
        let view = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && view.contains("sleep 60")).then_some(view)
    });
    let view = seen.unwrap_or_else(|| {
        let out = inside(&["status"]);
        panic!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(view.contains("to /tmp/mcpinit.json"), "{view}");
    assert!(inside(&["health"]).status.success());
    drop(run);
    let _ = fs::remove_dir_all(tmp);
}

/// A pipe whose reader is already gone: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds; the read end is closed, the write end owned below.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// `mcpinit status | head -1`: the reader leaves early. mcpinit has SIGPIPE blocked,
/// so each write fails with EPIPE, which must end nothing but the output.
#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    let run = with_backend(&[], "--spawn a:2 --gap-ms 100", &[]);
    assert!(
        wait_until(LONG, || health(&run).0.then_some(())).is_some(),
        "never healthy"
    );
    let file = state_file(&run);
    let file = file.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["status", "--state-file", file],
        &["status", "--json", "--state-file", file],
        &["health", "--state-file", file],
        &["--help"],
        &["--version"],
    ];
    for args in commands {
        let out = inside_command(&run, args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "mcpinit {args:?}: {stderr}");
    }
}

#[test]
fn an_argv_rewritten_in_place_is_seen() {
    // setproctitle's way: overwrite the argument area, keeping comm and the area's
    // bounds, which is all a cmdline cache keyed on stat can see.
    let rewrite = "import time\n\
        time.sleep(1.5)\n\
        f = open('/proc/self/stat').read().rsplit(')', 1)[1].split()\n\
        start, end = int(f[45]), int(f[46])\n\
        title = b'npm exec retitled-server'\n\
        with open('/proc/self/mem', 'r+b', buffering=0) as mem:\n\
        \x20   mem.seek(start)\n\
        \x20   mem.write(title + bytes(end - start - len(title)))\n\
        time.sleep(60)\n\
        # padding, so the argument area is longer than the new title";
    let run = Run::start(
        &["--scan-interval", "100ms", "--", &python(), "-c", rewrite],
        &[],
    );
    let file = state_file(&run);
    let seen = wait_until(LONG, || {
        let out = inside(&run, &["status", "--state-file", file.to_str()?]);
        String::from_utf8_lossy(&out.stdout)
            .contains("npm exec retitled-server")
            .then_some(())
    });
    assert!(seen.is_some(), "the new title never reached status");
}
