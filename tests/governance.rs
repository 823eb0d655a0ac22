//! Governance against real process trees: the MetaMCP-shaped fixture (a Node backend
//! spawning detached `npm exec` → `sh -c` → `node` instances) and plain shell storms.
//! Every mcpinit runs as PID 1 of its own PID namespace (tests/common).

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Leaves are `node …/leaf.js server-X`; their `sh -c node …/leaf.js …` parent also
/// names the file, so a leaf is recognised by the command line's start.
const LEAF_A: &str = "node-leaf:a";

/// The namespace pid of the newest instance of `server`, from the backend's own lines.
fn newest(run: &Run, server: &str) -> Option<i32> {
    let out = run.stdout();
    out.lines()
        .filter(|l| l.starts_with('{') && l.contains(&format!("\"server\":\"{server}\"")))
        .filter_map(|l| l.split("\"pid\":").nth(1)?.split(',').next()?.parse().ok())
        .next_back()
}

/// Processes matching `needle`: a `node-leaf:X` needle means the leaves of server X.
fn count(run: &Run, needle: &str) -> usize {
    match needle.strip_prefix("node-leaf:") {
        Some(server) => {
            let leaf = format!("leaf.js server-{server} ");
            run.processes()
                .iter()
                .filter(|(_, c)| c.starts_with("node ") && c.contains(&leaf))
                .count()
        }
        None => run.count(needle),
    }
}

fn settle_until(run: &Run, want: usize, needle: &str) -> bool {
    wait_until(LONG, || (count(run, needle) == want).then_some(())).is_some()
}

fn log_count(run: &Run, needle: &str) -> usize {
    run.stdout().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn four_duplicates_are_culled_to_the_newest_with_their_whole_tree() {
    let run = with_backend(
        &["--dedupe-idle", "1s"],
        "--spawn a:4 --leaf-read-once 4000 --gap-ms 300",
        &[],
    );
    assert!(
        run.wait_for_log("\"seq\":3", LONG),
        "backend never spawned 4 instances"
    );
    assert!(settle_until(&run, 1, SERVER_A), "{}", run.stdout());
    assert!(
        settle_until(&run, 1, LEAF_A),
        "leaves of culled instances survive"
    );
    assert_eq!(
        count(&run, "sh -c node"),
        1,
        "sh of culled instances survive"
    );
    assert_eq!(log_count(&run, "terminating duplicate unit"), 3);
    let newest = newest(&run, "a").unwrap();
    assert!(
        run.stdout().contains(&format!("kept={newest}")),
        "the newest was not kept: {}",
        run.stdout()
    );
    assert_eq!(count(&run, "backend.js"), 1, "the main child must stay");
}

#[test]
fn keep_two_keeps_the_two_newest() {
    let run = with_backend(
        &["--dedupe-idle", "1s"],
        "--spawn a:4 --leaf-read-once 4000 --gap-ms 300",
        &[("MCPINIT_DEDUPE_KEEP", "2")],
    );
    assert!(run.wait_for_log("\"seq\":3", LONG));
    assert!(settle_until(&run, 2, SERVER_A));
    assert!(settle_until(&run, 2, LEAF_A));
    assert!(run.wait_for_log("terminating duplicate", LONG));
    assert_eq!(log_count(&run, "terminating duplicate unit"), 2);
}

#[test]
fn nothing_is_culled_before_it_has_been_idle_for_the_idle_time() {
    // No instance can have been idle for 8 s before 8 s have passed since mcpinit
    // started: until then, nothing may be culled, however slowly the instances came.
    // (A fixed 1.5 s after all three were up could be past 8 s on a loaded machine.)
    let started = Instant::now();
    let run = with_backend(
        &["--dedupe-idle", "8s"],
        "--spawn a:3 --leaf-read-once 4000 --gap-ms 200",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":2", LONG));
    assert!(settle_until(&run, 3, SERVER_A), "{}", run.stdout());
    let idle_time = started + Duration::from_secs(8);
    while Instant::now() + Duration::from_millis(100) < idle_time {
        let out = run.stdout();
        assert!(
            !out.contains("terminating"),
            "culled before the idle time: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        settle_until(&run, 1, SERVER_A),
        "never culled after the idle time"
    );
}

#[test]
fn other_servers_and_the_main_child_are_untouched() {
    let run = with_backend(
        &["--dedupe-idle", "1s"],
        "--spawn a:2 --spawn b:1 --leaf-read-once 4000 --gap-ms 200",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":2", LONG));
    assert!(settle_until(&run, 1, SERVER_A));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&run, "npm exec @modelcontextprotocol/server-b"), 1);
    assert_eq!(count(&run, "node-leaf:b"), 1);
    assert_eq!(count(&run, "backend.js"), 1);
}

#[test]
fn dedupe_off_leaves_duplicates_alone() {
    let run = with_backend(
        &["--dedupe-idle", "0"],
        "--spawn a:3 --gap-ms 100",
        &[("MCPINIT_DEDUPE", "off")],
    );
    assert!(run.wait_for_log("\"seq\":2", LONG));
    // All three up (the last may set its title well after its seq line), then left alone.
    assert!(settle_until(&run, 3, SERVER_A), "{}", run.stdout());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&run, SERVER_A), 3);
    assert!(!run.stdout().contains("terminating"));
}

#[test]
fn every_orphan_is_terminated_with_all() {
    let run = with_backend(&["--orphans", "all"], "--orphan c:1", &[]);
    assert!(
        run.wait_for_log("terminating orphan unit", LONG),
        "{}",
        run.stdout()
    );
    assert!(settle_until(&run, 0, "node-leaf:c"));
}

/// The default: an instance whose `npm exec` was killed leaves `sh` and the server
/// orphaned; mcpinit saw them in the server's unit, so the orphan is reclaimed.
#[test]
fn a_servers_orphan_is_reclaimed_when_its_launcher_dies() {
    let run = with_backend(&[], "--spawn c:1", &[]);
    assert!(run.wait_for_log("\"seq\":0", LONG));
    assert!(settle_until(&run, 1, "node-leaf:c"));
    // Seen in a few looks as a member of its server unit.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!run.stdout().contains("terminating"), "{}", run.stdout());
    let npm = run
        .processes()
        .into_iter()
        .find(|(_, c)| c.starts_with("npm exec @modelcontextprotocol/server-c"))
        .map(|(pid, _)| pid)
        .expect("the instance's npm exec");
    // SAFETY: plain kill(2) of a process of the test's own namespace.
    unsafe { libc::kill(npm, libc::SIGKILL) };
    assert!(
        run.wait_for_log("terminating orphan unit", LONG),
        "{}",
        run.stdout()
    );
    assert!(settle_until(&run, 0, "node-leaf:c"));
}

/// The default: a daemon an entrypoint starts with a double fork (cron, nginx) is an
/// orphan that never was a server's, and lives, as under tini.
#[test]
fn a_daemon_the_entrypoint_started_lives() {
    let run = Run::start(
        &["--", "sh", "-c", "sh -c 'sleep 300 &'; exec sleep 1000"],
        &[],
    );
    assert!(wait_until(LONG, || (run.count("sleep 300") == 1).then_some(())).is_some());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(run.count("sleep 300"), 1, "{}", run.stdout());
    assert!(!run.stdout().contains("terminating"), "{}", run.stdout());
}

#[test]
fn orphans_are_kept_with_keep() {
    let run = with_backend(&["--orphans", "keep"], "--orphan c:1", &[]);
    assert!(run.wait_for_log("\"seq\":0", LONG));
    assert!(settle_until(&run, 1, "node-leaf:c"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&run, "node-leaf:c"), 1);
    assert!(!run.stdout().contains("terminating"));
}

/// A shell that starts `n` sleeping children, each a unit of its own, then waits.
fn sleepers(n: usize) -> String {
    format!("i=0; while [ $i -lt {n} ]; do sleep 1000 & i=$((i+1)); done; wait")
}

#[test]
fn the_cap_brings_sixty_processes_under_twenty() {
    let script = sleepers(60);
    let run = Run::start(&["--max-procs", "20", "--", "sh", "-c", &script], &[]);
    assert!(
        run.wait_for_log("terminating cap unit", LONG),
        "{}",
        run.stdout()
    );
    let settled = wait_until(LONG, || {
        let n = run.processes().len();
        (n <= 20).then_some(n)
    });
    assert!(
        settled.is_some(),
        "still {} processes",
        run.processes().len()
    );
    assert_eq!(run.count("sh -c i=0"), 1, "the main child was a victim");
    assert!(
        run.stdout().contains("above 80% of the cap"),
        "{}",
        run.stdout()
    );
}

#[test]
fn sigterm_ignoring_units_are_killed_after_the_grace() {
    let run = with_backend(
        &["--dedupe-idle", "500ms", "--kill-grace", "1s"],
        "--spawn a:2 --leaf-read-once 4000 --gap-ms 300 --leaf-ignore-term",
        &[],
    );
    assert!(run.wait_for_log("terminating duplicate unit", LONG));
    assert!(
        run.wait_for_log("sending SIGKILL", LONG),
        "{}",
        run.stdout()
    );
    assert!(settle_until(&run, 1, LEAF_A));
}

#[test]
fn a_fork_storm_stays_bounded_and_mcpinit_still_answers_sigterm() {
    // Five seconds of forking as fast as the shell can, against a cap of 50.
    let storm = "end=$(( $(date +%s) + 5 )); while [ $(date +%s) -lt $end ]; do sleep 1000 & sleep 1000 & sleep 1000 & done; echo storm-over; wait";
    let mut run = Run::start(
        &[
            "--max-procs",
            "50",
            "--kill-grace",
            "500ms",
            "--",
            "sh",
            "-c",
            storm,
        ],
        &[],
    );
    let mut peak = 0;
    let over = wait_until(Duration::from_secs(60), || {
        peak = peak.max(run.processes().len());
        run.stdout().contains("storm-over").then_some(())
    });
    assert!(over.is_some(), "the storm never ended");
    // Unbounded, the shell reaches thousands; a governed storm stays near the cap.
    assert!(peak < 600, "peak {peak} processes");
    assert!(
        wait_until(LONG, || (run.processes().len() <= 50).then_some(())).is_some(),
        "not back under the cap: {}",
        run.processes().len()
    );
    run.signal(libc::SIGTERM);
    assert_eq!(
        run.wait(LONG),
        Some(128 + libc::SIGTERM),
        "{}",
        run.stdout()
    );
}

/// The main child forks 60 groups that ignore SIGTERM, far past a cap of 20, and times
/// its own stalls while their kill grace (3 s) runs.
const STALLING_FORKER: &str = r#"
import os, signal, time
conts, stall = 0, 0.0
def on_cont(*_):
    global conts
    conts += 1
signal.signal(signal.SIGCONT, on_cont)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
# Each group ignores SIGTERM from birth (a disposition survives fork): ignored only
# after the fork, a group the cap ends at once would die of SIGTERM before.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
last = time.monotonic()
def tick():
    global last, stall
    now = time.monotonic()
    stall, last = max(stall, now - last), now
for _ in range(60):
    if os.fork() == 0:
        os.setpgid(0, 0)
        time.sleep(1000)
        os._exit(0)
    tick()
signal.signal(signal.SIGTERM, signal.SIG_DFL)
end = time.monotonic() + 5
while time.monotonic() < end:
    time.sleep(0.001)
    tick()
print(f"conts={conts} stall_ms={int(stall * 1000)}", flush=True)
"#;

#[test]
fn a_forker_that_jumps_the_cap_is_stopped_only_briefly() {
    let python = python();
    let mut run = Run::start(
        &[
            "--max-procs",
            "20",
            "--kill-grace",
            "3s",
            "--",
            &python,
            "-c",
            STALLING_FORKER,
        ],
        &[],
    );
    assert_eq!(run.wait(LONG), Some(0), "{}", run.stdout());
    let out = run.stdout();
    let line = out
        .lines()
        .find(|l| l.starts_with("conts="))
        .unwrap_or_default();
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}\n{out}"))
    };
    // Stopped while its units were ended (and continued: SIGCONT reached it), but not
    // for their 3 s kill grace: the brake lets go after 100 ms.
    assert!(
        out.contains("event=storm_brake") || out.contains("fork storm:"),
        "{out}"
    );
    assert!(
        field("conts=") >= 1,
        "the forker was never stopped and continued: {line}"
    );
    assert!(
        field("stall_ms=") < 1500,
        "the forker was held too long: {line}"
    );
    assert!(out.contains("fork storm over"), "{out}");
    assert!(log_count(&run, "terminating cap unit") >= 40, "{out}");
}

#[test]
fn dry_run_logs_and_kills_nothing() {
    let run = with_backend(
        &["--dedupe-idle", "500ms", "--dry-run"],
        "--spawn a:3 --leaf-read-once 4000 --gap-ms 200",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":2", LONG));
    let both = wait_until(LONG, || {
        (log_count(&run, "would terminate duplicate unit") >= 2).then_some(())
    });
    assert!(both.is_some(), "{}", run.stdout());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        log_count(&run, "would terminate duplicate unit"),
        2,
        "logged once per unit"
    );
    // All three whole: a dry run ends nothing (the last leaf may still be starting).
    assert!(settle_until(&run, 3, SERVER_A), "{}", run.stdout());
    assert!(settle_until(&run, 3, LEAF_A), "{}", run.stdout());
}

#[test]
fn the_memory_cap_terminates_only_the_hog() {
    // Node processes here take ~40 MiB each: backend + 2 instances of 3 processes is
    // about 220 MiB; the hog adds 300 MiB. A 400 MiB cap is broken by the hog alone.
    let run = with_backend(
        &["--max-memory", "400m"],
        "--spawn a:1 --spawn b:1 --hog b:300 --gap-ms 100",
        &[],
    );
    assert!(
        run.wait_for_log("terminating memory unit", LONG),
        "{}",
        run.stdout()
    );
    assert!(settle_until(&run, 0, "node-leaf:b"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&run, LEAF_A), 1, "a was not the hog");
    assert_eq!(log_count(&run, "terminating memory unit"), 1);
}

#[test]
fn real_npx_servers_are_deduped() {
    let home = std::env::var("HOME").unwrap_or_default();
    let cached = std::fs::read_dir(format!("{home}/.npm/_npx"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| {
            d.path()
                .join("node_modules/@modelcontextprotocol/server-everything")
                .exists()
        });
    if !cached {
        // Straight to the stderr handle: the test harness captures eprintln! of a
        // passing test, and a skip nobody sees is a pass nobody earned.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED real_npx_servers_are_deduped: @modelcontextprotocol/server-everything is not \
              in the npx cache (scripts/setup.sh caches it when the npm registry is reachable)\n",
        );
        return;
    }
    // Each instance a session of its own with stdin held open, as MetaMCP starts them.
    // None ever reads input: the newest and the spare (the newest never used besides
    // it) stay, the oldest goes.
    let script = "for i in 1 2 3; do sleep 1000 | setsid npx -y @modelcontextprotocol/server-everything & sleep 2; done; wait";
    let run = Run::start(&["--dedupe-idle", "2s", "--", "sh", "-c", script], &[]);
    let top = "npm exec @modelcontextprotocol/server-everything";
    assert!(
        run.wait_for_log("terminating duplicate unit", Duration::from_secs(60)),
        "{}",
        run.stdout()
    );
    assert!(
        wait_until(Duration::from_secs(60), || (log_count(
            &run,
            "terminating duplicate unit"
        ) == 1
            && run.count(top) == 2)
            .then_some(()))
        .is_some(),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_unit_that_keeps_forking_while_terminated_still_ends_up_dead() {
    // A group of its own that ignores SIGTERM and forks a sleeper every 10 ms: over the
    // cap it is chosen, survives SIGTERM, and SIGKILL must catch every member, including
    // the ones forked after the decision.
    // Immune at birth: SIGTERM is ignored before the fork, and so by every member.
    let forker = "while :; do sleep 1000 & sleep 0.01; done";
    let script = format!("trap '' TERM; setsid sh -c \"{forker}\" & trap - TERM; exec sleep 999");
    let run = Run::start(
        &[
            "--max-procs",
            "10",
            "--kill-grace",
            "500ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    assert!(
        run.wait_for_log("terminating cap unit", LONG),
        "{}",
        run.stdout()
    );
    assert!(
        run.wait_for_log("sending SIGKILL", LONG),
        "{}",
        run.stdout()
    );
    let gone = wait_until(LONG, || {
        (run.count("sleep 1000") == 0 && run.count("while :") == 0).then_some(())
    });
    assert!(gone.is_some(), "{:?}", run.processes());
    assert_eq!(
        run.count("setsid sh -c") + run.processes().len(),
        1,
        "only the main child is left"
    );
}

/// A session entering the container from outside (`docker exec`), here with nsenter:
/// its background child is orphaned to mcpinit, inside the session's process group.
/// The orphan is terminated; the session's own shell, not mcpinit's, is left alone,
/// both when the shell leads its group (setsid) and when the leader is outside the
/// namespace (the group reads as 0 inside).
#[test]
fn an_exec_sessions_orphan_is_terminated_but_not_the_session() {
    for setsid in [true, false] {
        let run = Run::start(&["--", "sleep", "1000"], &[("MCPINIT_ORPHANS", "term")]);
        let init = run.init_pid();
        let target = init.to_string();
        let mut argv = vec!["-t", target.as_str(), "-p", "-m"];
        if !is_root() {
            argv.extend(["-U", "--preserve-credentials"]);
        }
        argv.push("--");
        if setsid {
            argv.push("setsid");
        }
        argv.extend(["sh", "-c", "(sleep 999 &); sleep 3; echo survived"]);
        let session = std::process::Command::new("timeout")
            .args(["-s", "KILL", "30", "nsenter"])
            .args(&argv)
            .output()
            .expect("nsenter (util-linux) must be installed");
        let out = String::from_utf8_lossy(&session.stdout);
        assert!(
            session.status.success() && out.contains("survived"),
            "setsid={setsid}: the session was hit: {:?} {out}",
            session.status
        );
        assert!(
            run.wait_for_log("terminating orphan", LONG),
            "setsid={setsid}: the orphan was not terminated"
        );
        assert!(
            wait_until(LONG, || (run.count("sleep 999") == 0).then_some(())).is_some(),
            "setsid={setsid}: the orphan is still alive"
        );
    }
}

/// The namespace pid of instance `seq`, from the backend's own lines.
fn instance(run: &Run, seq: usize) -> Option<i32> {
    let needle = format!("\"seq\":{seq}}}");
    let line = run
        .stdout()
        .lines()
        .find(|l| l.ends_with(&needle))?
        .to_string();
    line.split("\"pid\":")
        .nth(1)?
        .split(',')
        .next()?
        .parse()
        .ok()
}

/// The state file's process rows of the unit led by `pgid`.
fn unit_rows(run: &Run, pgid: i32) -> Vec<String> {
    let state = std::fs::read_to_string(run.dir().join("state.json")).unwrap_or_default();
    state
        .split("},{")
        .filter(|row| row.contains(&format!("\"unit\":\"pgid:{pgid}\"")))
        .map(String::from)
        .collect()
}

#[test]
fn an_instance_receiving_input_is_kept_while_an_idle_duplicate_is_ended() {
    // Three instances of one server: the oldest in use (its leaf reads all the time),
    // the middle one used once and left, the newest used once too. Only the middle one
    // may go, and it must.
    let run = with_backend(
        &["--dedupe-idle", "5s"],
        "--spawn a:3 --leaf-read-once 4000 --gap-ms 300 --busy 0",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":2", LONG), "{}", run.stdout());
    let (busy, idle, newest) = (
        instance(&run, 0).unwrap(),
        instance(&run, 1).unwrap(),
        instance(&run, 2).unwrap(),
    );
    let ended = format!("terminating duplicate unit {idle} (keeping newer {newest}, idle ");
    assert!(run.wait_for_log(&ended, LONG), "{}", run.stdout());
    assert!(settle_until(&run, 2, SERVER_A), "{}", run.stdout());
    // Well past the idle time again: the instance in use and the newest stay.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(log_count(&run, "terminating"), 1, "{}", run.stdout());
    assert_eq!(count(&run, SERVER_A), 2);
    assert_eq!(count(&run, LEAF_A), 2);
    let busy_rows = unit_rows(&run, busy);
    assert!(!busy_rows.is_empty(), "no rows for {busy}");
    assert!(
        busy_rows.iter().all(|r| r.contains("\"input_seen\":true")),
        "the instance in use shows its input: {busy_rows:?}"
    );
    assert!(!unit_rows(&run, newest).is_empty(), "the newest was ended");
    assert_eq!(count(&run, "backend.js"), 1, "the main child must stay");
}

#[test]
fn the_newest_instance_is_kept_however_long_it_idles() {
    let run = with_backend(
        &["--dedupe-idle", "1s"],
        "--spawn a:2 --leaf-read-once 4000 --gap-ms 300",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":1", LONG));
    let (oldest, newest) = (instance(&run, 0).unwrap(), instance(&run, 1).unwrap());
    assert!(
        run.wait_for_log(&format!("terminating duplicate unit {oldest}"), LONG),
        "{}",
        run.stdout()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(log_count(&run, "terminating"), 1, "{}", run.stdout());
    assert_eq!(count(&run, SERVER_A), 1);
    assert!(!unit_rows(&run, newest).is_empty(), "the newest is gone");
}

#[test]
fn the_spare_is_kept_when_a_newer_instance_is_in_use() {
    // MetaMCP's race: a session that comes while the next spare is starting gets an
    // instance of its own, newer than the spare. Four instances: 0 and 1 never used
    // (leaked), 2 never used (the spare, the newest such), 3 the newest, in use.
    let run = with_backend(
        &["--dedupe-idle", "5s"],
        "--spawn a:4 --gap-ms 300 --busy 3",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":3", LONG), "{}", run.stdout());
    let seq: Vec<i32> = (0..4).map(|i| instance(&run, i).unwrap()).collect();
    for &ended in &seq[..2] {
        let line = format!(
            "terminating duplicate unit {ended} (keeping newer {}",
            seq[3]
        );
        assert!(run.wait_for_log(&line, LONG), "{}", run.stdout());
    }
    assert!(settle_until(&run, 2, SERVER_A), "{}", run.stdout());
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(log_count(&run, "terminating"), 2, "{}", run.stdout());
    assert!(!unit_rows(&run, seq[2]).is_empty(), "the spare was ended");
    assert!(!unit_rows(&run, seq[3]).is_empty(), "the newest was ended");
}

#[test]
fn twins_with_one_command_line_and_two_environments_are_two_servers() {
    // Two accounts of one server: one command line, TOKEN=b for the oldest instance,
    // TOKEN=a for the two newer ones. The older TOKEN=a one is a duplicate and must go;
    // the TOKEN=b one is the only instance of its server and must stay, however idle.
    let run = with_backend(
        &["--dedupe-idle", "1s"],
        "--spawn a:3 --leaf-read-once 4000 --gap-ms 300 \
         --env-of 0:TOKEN=b --env-of 1:TOKEN=a --env-of 2:TOKEN=a",
        &[],
    );
    assert!(run.wait_for_log("\"seq\":2", LONG), "{}", run.stdout());
    let seq: Vec<i32> = (0..3).map(|i| instance(&run, i).unwrap()).collect();
    let ended = format!(
        "terminating duplicate unit {} (keeping newer {}",
        seq[1], seq[2]
    );
    assert!(run.wait_for_log(&ended, LONG), "{}", run.stdout());
    assert!(settle_until(&run, 2, SERVER_A), "{}", run.stdout());
    // Well past the idle time and the leaves' one read: the twin stays.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(log_count(&run, "terminating"), 1, "{}", run.stdout());
    assert_eq!(count(&run, SERVER_A), 2);
    assert_eq!(count(&run, LEAF_A), 2);
    let twin = unit_rows(&run, seq[0]);
    assert!(!twin.is_empty(), "the TOKEN=b twin was ended");
    assert!(
        twin.iter().all(|r| r.contains("\"duplicate\":false")),
        "the twin is shown as a duplicate: {twin:?}"
    );
    assert!(
        twin.iter().all(|r| r.contains("\"env\":\"")),
        "the twin's rows do not name its environment: {twin:?}"
    );
    assert!(!unit_rows(&run, seq[2]).is_empty(), "the newest was ended");
}
