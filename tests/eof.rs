//! Ending a stdio server the MCP way: its input closed first, SIGTERM after the EOF
//! grace, SIGKILL after the kill grace. The parent (tests/fixtures/eof/parent.py) stands
//! in for MetaMCP: it holds the other end of the server's stdin and reports how its own
//! child ended, which is what MetaMCP decides a crash on. It grows the server's unit past
//! `--max-procs` once the server is ready, so the termination starts at a known moment.
//! Every mcpinit runs as PID 1 of its own PID namespace (tests/common).

mod common;

use common::*;
use std::time::Duration;

/// mcpinit `settings` running parent.py `parent` with the server `server` (a shell line).
fn start(settings: &[&str], parent: &[&str], server: &str) -> Run {
    let argv = mcpinit_args(settings, parent, server);
    Run::start(&argv.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// mcpinit's arguments for `start`: `settings -- python parent.py parent -- sh -c server`.
fn mcpinit_args(settings: &[&str], parent: &[&str], server: &str) -> Vec<String> {
    let mut argv: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
    argv.extend(["--".into(), python(), fixture("eof/parent.py")]);
    argv.extend(parent.iter().map(|s| s.to_string()));
    argv.extend(["--", "sh", "-c", server].map(String::from));
    argv
}

/// The EOF grace of the tests that show an end at EOF: far longer than a server takes
/// to exit at EOF on a loaded machine, so that they never see the exit step instead.
const EOF_WAIT: &str = "20s";

fn node_server(flags: &str) -> String {
    // `; exit $?` keeps sh as the middle level (a last simple command may be exec'd).
    format!("node {} {flags}; exit $?", fixture("eof/server.js"))
}

/// The parent's line for `event`, once it is there.
fn parent_line(run: &Run, event: &str, limit: Duration) -> Option<String> {
    let needle = format!("{{\"event\": \"{event}\"");
    wait_until(limit, || {
        run.stdout()
            .lines()
            .find(|l| l.starts_with(&needle))
            .map(String::from)
    })
}

/// pidfd_getfd needs ptrace rights over the server; a sandbox may refuse them. Then the
/// EOF path cannot be tested here, and saying so beats a silent pass.
fn eof_refused(run: &Run, test: &str) -> bool {
    let refused = run.mcpinit_lines("cannot close the input").iter().any(|l| {
        l.contains("cause=seccomp") || l.contains("cause=permission") || l.contains("cause=kernel")
    });
    if refused {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "SKIPPED {test}: this machine refuses pidfd_getfd\n{}",
                run.stdout()
            )
            .as_bytes(),
        );
    }
    refused
}

/// The parent's exit line says SIGTERM: sh died of it, or reported its leaf's (128 + 15).
/// Either is a crash to MetaMCP.
fn by_sigterm(exit: &str) -> bool {
    exit.contains("\"signal\": 15") || exit.contains("\"code\": 143")
}

/// The unit_gone line of the one termination, once mcpinit has logged it.
fn gone_line(run: &Run) -> String {
    wait_until(LONG, || {
        run.mcpinit_lines(" is gone, ended ").into_iter().next()
    })
    .unwrap_or_else(|| panic!("the unit never went: {}", run.stdout()))
}

#[test]
fn a_server_that_exits_at_eof_ends_by_eof_without_any_signal() {
    let mut run = start(
        &["--max-procs", "5", "--eof-grace", EOF_WAIT],
        &["--grow", "4"],
        &node_server(""),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(
        &run,
        "a_server_that_exits_at_eof_ends_by_eof_without_any_signal",
    ) {
        return;
    }
    // Exit status 0 as its parent saw it: what MetaMCP counts as a clean close.
    assert!(exit.contains("\"code\": 0"), "{exit}\n{}", run.stdout());
    assert!(gone_line(&run).contains("ended=eof"), "{}", run.stdout());
    assert!(
        run.mcpinit_lines("sending SIG").is_empty(),
        "{}",
        run.stdout()
    );
    assert!(run.mcpinit_lines("cannot close the input").is_empty());
    assert!(run.mcpinit_lines("cannot be closed here").is_empty());
    assert_eq!(run.wait(LONG), Some(0));
    assert!(
        run.mcpinit_lines("exiting with status 0").len() == 1,
        "{}",
        run.stdout()
    );
}

#[test]
fn without_the_exit_step_a_server_that_ignores_eof_gets_sigterm_after_the_eof_grace() {
    let run = start(
        &[
            "--max-procs",
            "5",
            "--eof-grace",
            "1s",
            "--exit-step",
            "off",
        ],
        &["--grow", "4"],
        &node_server("--ignore-eof"),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(
        &run,
        "without_the_exit_step_a_server_that_ignores_eof_gets_sigterm_after_the_eof_grace",
    ) {
        return;
    }
    assert!(by_sigterm(&exit), "{exit}\n{}", run.stdout());
    assert_eq!(
        run.mcpinit_lines("still alive after the EOF grace, sending SIGTERM")
            .len(),
        1
    );
    assert!(gone_line(&run).contains("ended=term"), "{}", run.stdout());
    assert!(run.mcpinit_lines("sending SIGKILL").is_empty());
}

#[test]
fn without_the_exit_step_a_server_that_ignores_eof_and_sigterm_gets_sigkill() {
    let run = start(
        &[
            "--max-procs",
            "5",
            "--eof-grace",
            "500ms",
            "--kill-grace",
            "1s",
            "--exit-step",
            "off",
        ],
        &["--grow", "4"],
        &node_server("--ignore-eof --ignore-term"),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(
        &run,
        "without_the_exit_step_a_server_that_ignores_eof_and_sigterm_gets_sigkill",
    ) {
        return;
    }
    assert!(
        exit.contains("\"signal\"") || exit.contains("\"code\": 1"),
        "{exit}"
    );
    assert_eq!(
        run.mcpinit_lines("still alive after the EOF grace").len(),
        1
    );
    assert_eq!(
        run.mcpinit_lines("still alive after the kill grace, sending SIGKILL")
            .len(),
        1
    );
    assert!(gone_line(&run).contains("ended=kill"), "{}", run.stdout());
}

/// MetaMCP tracks the server (its parent lives): after the EOF grace the server is made
/// to exit 0 from the inside, so the parent sees a clean exit and no signal is sent.
#[test]
fn a_tracked_server_that_ignores_eof_and_sigterm_is_made_to_exit_zero() {
    let run = start(
        &["--max-procs", "5", "--eof-grace", "500ms"],
        &["--grow", "4"],
        &node_server("--ignore-eof --ignore-term"),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(
        &run,
        "a_tracked_server_that_ignores_eof_and_sigterm_is_made_to_exit_zero",
    ) {
        return;
    }
    assert_made_to_exit_zero(&run, &exit);
}

/// The parent saw its server exit 0, by the exit step, and no signal reached anything
/// it tracked: what outlived the top (the server below it, readers the parent forked
/// into the group) was orphaned by then, and may get SIGTERM and SIGKILL.
fn assert_made_to_exit_zero(run: &Run, exit: &str) {
    assert!(exit.contains("\"code\": 0"), "{exit}\n{}", run.stdout());
    assert_eq!(
        run.mcpinit_lines("exit with status 0").len(),
        1,
        "{}",
        run.stdout()
    );
    gone_line(run);
    assert!(
        run.mcpinit_lines("crash=true").is_empty(),
        "{}",
        run.stdout()
    );
}

/// mcpinit as PID 1 under a seccomp filter that refuses pidfd_getfd, as Docker's and
/// containerd's default profiles do without CAP_SYS_PTRACE.
fn start_without_pidfd_getfd(settings: &[&str], parent: &[&str], server: &str) -> Run {
    let mut argv = vec![fixture("no_pidfd_getfd.py"), mcpinit().to_string()];
    argv.extend(mcpinit_args(settings, parent, server));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    Run::start_with(&python(), &argv, &[])
}

#[test]
fn where_pidfd_getfd_is_refused_the_input_is_closed_through_ptrace() {
    let run = start_without_pidfd_getfd(
        &["--max-procs", "5", "--eof-grace", EOF_WAIT],
        &["--grow", "4"],
        &node_server(""),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    // Said once the routes are probed: by the termination, or 200 ms after the spawn.
    assert!(run.wait_for_log("inputs are closed through", LONG));
    let routes = run.mcpinit_lines("inputs are closed through");
    let routes = routes.first().cloned().unwrap_or_default();
    assert!(routes.contains("close=ptrace"), "{}", run.stdout());
    assert!(routes.contains("exit=on"), "{routes}");
    assert!(routes.contains("under a seccomp filter"), "{routes}");
    assert!(exit.contains("\"code\": 0"), "{exit}\n{}", run.stdout());
    assert!(gone_line(&run).contains("ended=eof"), "{}", run.stdout());
    assert!(
        run.mcpinit_lines("sending SIG").is_empty(),
        "{}",
        run.stdout()
    );
    assert!(run.mcpinit_lines("cannot close the input").is_empty());
}

#[test]
fn where_pidfd_getfd_is_refused_a_server_that_ignores_eof_still_exits_zero() {
    let run = start_without_pidfd_getfd(
        &["--max-procs", "5", "--eof-grace", "500ms"],
        &["--grow", "4"],
        &node_server("--ignore-eof"),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    assert_made_to_exit_zero(&run, &exit);
}

#[test]
fn a_pipe_at_fd0_falls_back_to_sigterm_with_one_line_saying_why() {
    let run = start(
        &["--max-procs", "5", "--exit-step", "off"],
        &["--stdin", "pipe", "--grow", "4"],
        &node_server(""),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    let fallback = run.mcpinit_lines("cannot close the input");
    assert_eq!(fallback.len(), 1, "{}", run.stdout());
    assert!(fallback[0].contains("cause=pipe"), "{}", fallback[0]);
    assert!(
        fallback[0].contains("is a pipe, not a socket"),
        "{}",
        fallback[0]
    );
    // Straight to SIGTERM: no EOF grace waited for.
    assert!(by_sigterm(&exit), "{exit}\n{}", run.stdout());
    assert!(run.mcpinit_lines("after the EOF grace").is_empty());
    assert!(gone_line(&run).contains("ended=term"), "{}", run.stdout());
}

#[test]
fn a_socket_moved_below_the_top_is_found_there() {
    // Like `uv`: the top's fd 0 is not the socket, a process lower in the unit has it.
    let server = format!(
        "exec 3<&0 </dev/null; node {} <&3 3<&-; exit $?",
        fixture("eof/server.js")
    );
    let run = start(
        &["--max-procs", "5", "--eof-grace", EOF_WAIT],
        &["--grow", "4"],
        &server,
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(&run, "a_socket_moved_below_the_top_is_found_there") {
        return;
    }
    assert!(exit.contains("\"code\": 0"), "{exit}\n{}", run.stdout());
    assert!(gone_line(&run).contains("ended=eof"), "{}", run.stdout());
}

#[test]
fn an_eof_grace_of_zero_sends_sigterm_at_once_and_says_nothing_of_input() {
    let run = start(
        &["--max-procs", "5", "--eof-grace", "0"],
        &["--grow", "4"],
        &node_server(""),
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    assert!(by_sigterm(&exit), "{exit}\n{}", run.stdout());
    assert!(run.mcpinit_lines("cannot close the input").is_empty());
    assert!(gone_line(&run).contains("ended=term"), "{}", run.stdout());
}

#[test]
fn the_ended_counters_reach_the_state_file() {
    let run = start(
        &["--max-procs", "5", "--eof-grace", EOF_WAIT],
        &["--grow", "4"],
        &node_server(""),
    );
    parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(&run, "the_ended_counters_reach_the_state_file") {
        return;
    }
    gone_line(&run);
    let state = run.dir().join("state.json");
    let counted = wait_until(Duration::from_secs(10), || {
        let doc = std::fs::read_to_string(&state).ok()?;
        doc.contains("\"ended\":{\"eof\":1,\"exit\":0,\"term\":0,\"kill\":0}")
            .then_some(())
    });
    assert!(
        counted.is_some(),
        "{}",
        std::fs::read_to_string(&state).unwrap_or_default()
    );
}

/// The real server-everything through npx exits 0 at EOF: what makes MetaMCP count no crash.
#[test]
fn real_server_everything_exits_zero_at_eof() {
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
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED real_server_everything_exits_zero_at_eof: @modelcontextprotocol/server-everything \
              is not in the npx cache (scripts/setup.sh caches it when the npm registry is reachable)\n",
        );
        return;
    }
    // npm exec -> sh -> node, and the parent: 4 processes, 8 once grown.
    let python = python();
    let run = Run::start(
        &[
            "--max-procs",
            "6",
            "--eof-grace",
            EOF_WAIT,
            "--",
            &python,
            &fixture("eof/parent.py"),
            "--mcp",
            "--grow",
            "4",
            "--",
            "npx",
            "-y",
            "@modelcontextprotocol/server-everything",
        ],
        &[("npm_config_prefer_offline", "true")],
    );
    // npx starts in 2-5 s on an idle machine; far longer on a loaded one.
    let ready = parent_line(&run, "ready", Duration::from_secs(100))
        .unwrap_or_else(|| panic!("{}", run.stdout()));
    assert!(
        ready.contains("protocolVersion"),
        "no initialize answer: {ready}"
    );
    let exit = parent_line(&run, "exit", LONG).unwrap_or_else(|| panic!("{}", run.stdout()));
    if eof_refused(&run, "real_server_everything_exits_zero_at_eof") {
        return;
    }
    assert!(exit.contains("\"code\": 0"), "{exit}\n{}", run.stdout());
    assert!(gone_line(&run).contains("ended=eof"), "{}", run.stdout());
    assert!(
        run.mcpinit_lines("sending SIG").is_empty(),
        "{}",
        run.stdout()
    );
}
