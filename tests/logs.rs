//! Log lines: `MCPINIT_LOG_FORMAT=json` makes every line mcpinit writes one JSON object
//! with stable field names, at every level; text stays the default.
//! Every mcpinit runs as PID 1 of its own PID namespace (tests/common).

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;

/// mcpinit's own lines, parsed; fails on any stdout line that is not a JSON object.
/// The fixture backend prints JSON lines too (`{"server":…}`); those carry no `event`.
fn json_lines(stdout: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(matches!(value, Value::Object(_)), "not an object: {line}");
        if value.get("event").is_some() {
            check_common_fields(&value, line);
            lines.push(value);
        }
    }
    lines
}

fn check_common_fields(value: &Value, line: &str) {
    let text = |name| value.get(name).and_then(Value::as_str);
    let time = text("time").unwrap_or_else(|| panic!("no time: {line}"));
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "time {time}: {line}"
    );
    let level = text("level").unwrap_or_else(|| panic!("no level: {line}"));
    assert!(
        ["error", "warn", "info", "debug", "trace"].contains(&level),
        "{line}"
    );
    assert!(text("event").is_some_and(|e| !e.is_empty()), "{line}");
    assert!(text("msg").is_some(), "{line}");
}

fn event<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l.get("event").and_then(Value::as_str) == Some(name))
        .collect()
}

fn str_of<'a>(line: &'a Value, name: &str) -> &'a str {
    line.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{name} is not a string in {line:?}"))
}

fn num_of(line: &Value, name: &str) -> i64 {
    line.get(name)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{name} is not a number in {line:?}"))
}

#[test]
fn every_json_line_parses_at_every_level() {
    // Debug level; a duplicate whose leaf ignores SIGTERM (terminate, escalate); a memory
    // cap the main child alone exceeds (error); then a stop (signal, drain, shutdown).
    let mut run = with_backend(
        &[
            "--dedupe-idle",
            "500ms",
            "--kill-grace",
            "500ms",
            "--stop-grace",
            "1s",
            "--max-memory",
            "1m",
        ],
        "--spawn a:2 --gap-ms 200 --leaf-ignore-term --leaf-read-once 4000",
        &[("MCPINIT_LOG_FORMAT", "json"), ("MCPINIT_LOG", "debug")],
    );
    assert!(
        run.wait_for_log("\"event\":\"escalate\"", LONG),
        "{}",
        run.stdout()
    );
    run.signal(libc::SIGTERM);
    assert!(run.wait(LONG).is_some(), "mcpinit did not stop");
    assert_eq!(run.stderr(), "", "everything mcpinit says goes to stdout");

    let lines = json_lines(&run.stdout());
    let mut levels: HashMap<&str, usize> = HashMap::new();
    for line in &lines {
        *levels.entry(str_of(line, "level")).or_default() += 1;
    }
    for level in ["error", "warn", "info", "debug"] {
        assert!(
            levels.contains_key(level),
            "no {level} line: {levels:?}\n{}",
            run.stdout()
        );
    }

    let start = event(&lines, "start");
    assert_eq!(start.len(), 1);
    assert_eq!(num_of(start[0], "pid"), 1);
    assert_eq!(num_of(start[0], "max_procs"), 128);
    assert_eq!(str_of(start[0], "dedupe"), "npm exec,npx,uvx");
    assert_eq!(num_of(start[0], "eof_grace_ms"), 3_000);
    assert_eq!(num_of(start[0], "dedupe_idle_ms"), 500);
    assert_eq!(str_of(start[0], "orphans"), "servers");

    let terminate = event(&lines, "terminate");
    let duplicate = terminate
        .iter()
        .find(|l| str_of(l, "reason") == "duplicate")
        .expect("no duplicate terminated");
    assert_eq!(
        str_of(duplicate, "key"),
        "npm exec @modelcontextprotocol/server-a --port 0"
    );
    assert!(num_of(duplicate, "pgid") > 1 && num_of(duplicate, "kept") > num_of(duplicate, "pgid"));
    assert_eq!(
        str_of(duplicate, "pids").split(',').count(),
        3,
        "the whole npm exec tree"
    );
    assert_eq!(str_of(duplicate, "level"), "info");

    assert_eq!(str_of(event(&lines, "escalate")[0], "level"), "warn");
    assert_eq!(
        str_of(event(&lines, "main_over_memory")[0], "level"),
        "error"
    );
    assert_eq!(str_of(event(&lines, "signal")[0], "signal"), "SIGTERM");
    let shutdown = event(&lines, "shutdown");
    assert_eq!(shutdown.len(), 1, "one shutdown summary");
    assert!(
        lines
            .last()
            .is_some_and(|l| str_of(l, "event") == "shutdown"),
        "shutdown is the last line"
    );
    assert!(num_of(shutdown[0], "escalations") >= 1);
}

#[test]
fn text_is_the_default() {
    let mut run = Run::start(&["--", "sh", "-c", "exit 3"], &[]);
    assert_eq!(run.wait(LONG), Some(3));
    let out = run.stdout();
    assert!(out.lines().count() >= 3, "{out}");
    for line in out.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "a JSON line without MCPINIT_LOG_FORMAT: {line}"
        );
        assert!(line.contains(" mcpinit "), "{line}");
    }
    assert!(
        out.contains(" mcpinit INFO  exiting with status 3"),
        "{out}"
    );
}

#[test]
fn json_filter_levels_still_give_whole_lines() {
    // Only warnings and errors at `warn`: the start line (info) is filtered out, and what
    // remains (node alone is over the memory cap: an error) still parses.
    let mut run = Run::start(
        &[
            "--max-memory",
            "1m",
            "--",
            "node",
            "-e",
            "setTimeout(() => {}, 1500)",
        ],
        &[("MCPINIT_LOG_FORMAT", "json"), ("MCPINIT_LOG", "warn")],
    );
    assert_eq!(run.wait(LONG), Some(0));
    let lines = json_lines(&run.stdout());
    assert!(event(&lines, "start").is_empty(), "{}", run.stdout());
    assert_eq!(
        event(&lines, "main_over_memory").len(),
        1,
        "{}",
        run.stdout()
    );
    assert!(
        lines
            .iter()
            .all(|l| matches!(str_of(l, "level"), "warn" | "error")),
        "{}",
        run.stdout()
    );
}

#[test]
fn stderr_target_keeps_the_childs_stdout_clean() {
    // The `docker run -i` MCP stdio server case: the client reads JSON-RPC from stdout,
    // so not one foreign byte may appear there. `cat` stands in for the server.
    use std::io::Write;
    use std::process::Stdio;
    let dir = temp_dir("stdio");
    let mut child = in_namespace(mcpinit(), &["--log-target", "stderr", "--", "cat"])
        .env("MCPINIT_STATE_FILE", dir.join("state.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}\n";
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    drop(stdin); // EOF: cat exits 0, mcpinit with it
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), request);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains(" mcpinit INFO  mcpinit "),
        "start line: {logs}"
    );
    assert!(logs.contains("exiting with status 0"), "{logs}");
}

#[test]
fn stderr_target_by_variable_with_json_lines() {
    let mut run = Run::start(
        &["--", "sh", "-c", "echo data; echo more"],
        &[
            ("MCPINIT_LOG_TARGET", "stderr"),
            ("MCPINIT_LOG_FORMAT", "json"),
        ],
    );
    assert_eq!(run.wait(LONG), Some(0));
    assert_eq!(run.stdout(), "data\nmore\n");
    let err = run.stderr();
    assert!(err.lines().count() >= 3, "{err}");
    assert!(err.lines().all(|l| l.starts_with("{\"time\":")), "{err}");
    assert!(err.contains("\"event\":\"start\""), "{err}");
    assert!(err.contains("\"event\":\"shutdown\""), "{err}");
}

#[test]
fn stdout_stays_the_default_target() {
    let mut run = Run::start(&["--", "sh", "-c", "echo data"], &[]);
    assert_eq!(run.wait(LONG), Some(0));
    let out = run.stdout();
    assert!(
        out.contains("data\n") && out.contains(" mcpinit INFO  "),
        "{out}"
    );
    assert_eq!(run.stderr(), "");
}

#[test]
fn a_subtree_units_lines_name_its_real_process_group() {
    // The orphan stays in the main child's group (sh without job control does not
    // setpgid), so it is a subtree unit; it ignores SIGTERM, so it is escalated too.
    // It ignores it from birth: the subshell ignores it before the fork (a trap after
    // the fork lost the race to mcpinit, which ended the orphan 4 ms after it appeared).
    let script = "( trap '' TERM; sleep 300 & ); exec sleep 300";
    let mut run = Run::start(
        &[
            // Never a server's: only `all` ends it.
            "--orphans",
            "all",
            "--kill-grace",
            "300ms",
            "--stop-grace",
            "1s",
            "--",
            "sh",
            "-c",
            script,
        ],
        &[("MCPINIT_LOG_FORMAT", "json")],
    );
    assert!(
        run.wait_for_log("\"event\":\"escalate\"", LONG),
        "{}",
        run.stdout()
    );
    run.signal(libc::SIGTERM);
    assert!(run.wait(LONG).is_some(), "mcpinit did not stop");
    let lines = json_lines(&run.stdout());
    let main = num_of(event(&lines, "spawn")[0], "pid");
    let terminate = event(&lines, "terminate");
    let orphan = terminate
        .iter()
        .find(|l| str_of(l, "reason") == "orphan")
        .unwrap_or_else(|| panic!("no orphan terminated: {}", run.stdout()));
    assert_eq!(num_of(orphan, "pgid"), main, "{orphan:?}");
    let escalate = event(&lines, "escalate");
    assert_eq!(num_of(escalate[0], "pgid"), main, "{:?}", escalate[0]);
}

#[test]
fn a_signal_flood_is_counted_not_logged_line_by_line() {
    // Real-time signals queue, so every one the main child sends mcpinit (PID 1 of this
    // namespace) arrives and is forwarded back (the child ignores it): the lines must
    // account for exactly that many, in far fewer lines than one each. The child lives
    // on a while after its flood: what arrives once it is gone is not forwarded.
    const FLOOD: i64 = 3_000;
    let rt = libc::SIGRTMIN() + 1;
    let script = format!(
        "trap '' {rt}; i=0; while [ $i -lt {FLOOD} ]; do kill -{rt} 1; i=$((i+1)); done; sleep 5"
    );
    let mut run = Run::start(
        &["--", "sh", "-c", &script],
        &[("MCPINIT_LOG_FORMAT", "json")],
    );
    assert_eq!(run.wait(LONG), Some(0), "{}", run.stdout());
    let lines = json_lines(&run.stdout());
    let of_rt = |name| {
        event(&lines, name)
            .into_iter()
            .filter(|l| str_of(l, "signal") == "SIGRTMIN+1")
            .collect::<Vec<_>>()
    };
    let (first, counts) = (of_rt("signal"), of_rt("signals_coalesced"));
    let repeats: i64 = counts.iter().map(|l| num_of(l, "repeats")).sum();
    assert_eq!(first.len() as i64 + repeats, FLOOD, "{}", run.stdout());
    assert!(
        first.len() + counts.len() < 100,
        "{} lines",
        first.len() + counts.len()
    );
    assert!(!counts.is_empty());
}

/// A deduped instance with a huge command line (50,000 arguments, ~290 kB) writes a
/// terminate line of bounded length: the key is cut as in the state file.
#[test]
fn a_huge_command_line_makes_a_bounded_line() {
    // Forked and exec'd at once by Python: a shell expanding 50,000 words in the child
    // would exec late, after the looks that read a young process's command line.
    let script = "import subprocess, sys, time\n\
        args = [str(i) for i in range(50000)]\n\
        for _ in range(2):\n    \
            subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', *args], start_new_session=True)\n    \
            time.sleep(1)\n\
        time.sleep(1000)\n";
    let python = python();
    let run = Run::start(
        &[
            "--dedupe",
            "python3",
            "--dedupe-idle",
            "0",
            "--",
            &python,
            "-c",
            script,
        ],
        &[],
    );
    assert!(
        run.wait_for_log("terminating duplicate unit", LONG),
        "{}",
        run.stderr()
    );
    let out = run.stdout();
    let longest = out.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a line of {longest} bytes");
}
