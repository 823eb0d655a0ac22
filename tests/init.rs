//! mcpinit as an init: exit statuses, signal forwarding, reaping, shutdown, inheritance.
//! Every test runs mcpinit as PID 1 of its own PID namespace (tests/common).

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

fn exit_of(args: &[&str], env: &[(&str, &str)]) -> i32 {
    let mut run = Run::start(args, env);
    run.wait(LONG).expect("mcpinit did not exit")
}

#[test]
fn exit_statuses() {
    assert_eq!(exit_of(&["true"], &[]), 0);
    assert_eq!(exit_of(&["--", "sh", "-c", "exit 7"], &[]), 7);
    assert_eq!(
        exit_of(&["sh", "-c", "kill -USR1 $$"], &[]),
        128 + libc::SIGUSR1
    );
    assert_eq!(exit_of(&["/no/such/program"], &[]), 127);
    assert_eq!(exit_of(&["no-such-program-on-path"], &[]), 127);
    assert_eq!(exit_of(&["/etc/passwd"], &[]), 126);
    assert_eq!(exit_of(&["--no-such-option", "true"], &[]), 2);
    assert_eq!(exit_of(&[], &[]), 2);
    // tini's -e: the expected code becomes 0, others pass through; signals are not codes.
    assert_eq!(exit_of(&["-e", "3", "sh", "-c", "exit 3"], &[]), 0);
    assert_eq!(exit_of(&["-e", "3", "-e4", "sh", "-c", "exit 5"], &[]), 5);
    // tini's meaning: a death by SIGTERM is 143, and -e 143 maps it to 0.
    assert_eq!(exit_of(&["-e", "143", "sh", "-c", "kill $$"], &[]), 0);
    assert_eq!(exit_of(&["-e", "143", "sh", "-c", "kill -9 $$"], &[]), 137);
    // A real-time signal too: a wait wrapper that cannot name it must not lose it.
    assert_eq!(exit_of(&["sh", "-c", "kill -40 $$"], &[]), 168);
}

#[test]
fn command_not_found_is_explained_on_stderr() {
    let mut run = Run::start(&["no-such-program-on-path"], &[]);
    assert_eq!(run.wait(LONG), Some(127));
    assert!(
        run.stderr()
            .contains("cannot run 'no-such-program-on-path'"),
        "{}",
        run.stderr()
    );
}

/// A child that records every signal it traps in `file`, after writing `ready`.
fn trapping_child(file: &str, signals: &[&str]) -> String {
    let traps: String = signals
        .iter()
        .map(|s| format!("trap 'echo {s} >> {file}' {s}; "))
        .collect();
    format!("{traps} echo ready >> {file}; while :; do sleep 0.05; done")
}

fn wait_for_file(path: &str, needle: &str) -> bool {
    wait_until(LONG, || {
        fs::read_to_string(path).ok().filter(|t| t.contains(needle))
    })
    .is_some()
}

#[test]
fn every_catchable_signal_is_forwarded_to_the_child() {
    let dir = temp_dir("fwd");
    let file = dir.join("got").display().to_string();
    let names = [
        "HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "CONT", "ALRM", "PIPE", "URG", "TERM",
        // Fault signals too, when someone sends them with kill(1).
        "TRAP", "ABRT", "BUS", "FPE", "ILL", "SEGV", "SYS",
    ];
    let script = trapping_child(&file, &names);
    // SIGINT and SIGTERM start the stop grace; on a loaded machine the 18 round trips
    // can take longer than the default 8 s, and the grace's SIGKILL would end the test.
    let run = Run::start(&["--stop-grace", "120s", "--", "sh", "-c", &script], &[]);
    assert!(wait_for_file(&file, "ready"), "child never got ready");
    for name in names {
        let number = sig(name);
        run.signal(number);
        assert!(wait_for_file(&file, name), "{name} did not reach the child");
    }
    assert!(
        run.stdout().contains("forwarded SIGUSR1 to child"),
        "{}",
        run.stdout()
    );
}

fn sig(name: &str) -> i32 {
    match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        "CONT" => libc::SIGCONT,
        "ALRM" => libc::SIGALRM,
        "PIPE" => libc::SIGPIPE,
        "URG" => libc::SIGURG,
        "TERM" => libc::SIGTERM,
        "TRAP" => libc::SIGTRAP,
        "ABRT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "ILL" => libc::SIGILL,
        "SEGV" => libc::SIGSEGV,
        "SYS" => libc::SIGSYS,
        _ => unreachable!(),
    }
}

#[test]
fn dash_g_reaches_the_whole_process_group() {
    for (flags, grandchild_gets_it) in [(&["-g"][..], true), (&[][..], false)] {
        let dir = temp_dir("group");
        let f = dir.join("got").display().to_string();
        let inner = format!(
            "trap 'echo grandchild >> {f}' USR1; echo ready2 >> {f}; while :; do sleep 0.05; done"
        );
        let script = format!(
            "sh -c \"{inner}\" & trap 'echo child >> {f}' USR1; echo ready >> {f}; while :; do sleep 0.05; done"
        );
        let mut args = flags.to_vec();
        args.extend(["sh", "-c", &script]);
        let run = Run::start(&args, &[]);
        assert!(wait_for_file(&f, "ready\n") && wait_for_file(&f, "ready2"));
        run.signal(libc::SIGUSR1);
        assert!(wait_for_file(&f, "child"), "child missed USR1 ({flags:?})");
        // The grandchild's trap runs once its `sleep 0.05` is over: waited for when it
        // must come, given half a second when it must not.
        if grandchild_gets_it {
            assert!(wait_for_file(&f, "grandchild"), "grandchild missed USR1");
        } else {
            std::thread::sleep(Duration::from_millis(500));
            let got = fs::read_to_string(&f).unwrap();
            assert!(!got.contains("grandchild"), "{flags:?}: {got}");
        }
    }
}

/// The `zombies_reaped=N` figure of mcpinit's shutdown line.
fn reaped_count(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.contains("exiting with status"))
        .unwrap_or("");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("zombies_reaped="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// 1,000 orphans (each `sleep` loses its parent subshell at once) must all be reaped.
const ORPHAN_STORM: &str =
    "i=0; while [ $i -lt 1000 ]; do (sleep 0.2 &); i=$((i+1)); done; sleep 1";

#[test]
fn a_thousand_orphans_are_reaped_as_pid_1() {
    let mut run = Run::start(&["sh", "-c", ORPHAN_STORM], &[("MCPINIT_ORPHANS", "keep")]);
    assert_eq!(run.wait(Duration::from_secs(90)), Some(0));
    assert!(reaped_count(&run.stdout()) >= 1000, "{}", run.stdout());
}

#[test]
fn a_thousand_orphans_are_reaped_as_subreaper() {
    // PID 1 of the namespace is a shell; mcpinit runs under it and must adopt the orphans
    // itself, or the shell would collect them and the count would stay at zero.
    let script = format!(
        "MCPINIT_ORPHANS=keep {} -- sh -c '{ORPHAN_STORM}'; echo mcpinit-exit=$?",
        mcpinit()
    );
    let mut run = Run::start_with("sh", &["-c", &script], &[]);
    assert_eq!(run.wait(Duration::from_secs(90)), Some(0));
    let out = run.stdout();
    assert!(out.contains("(subreaper)"), "{out}");
    assert!(out.contains("mcpinit-exit=0"), "{out}");
    assert!(reaped_count(&out) >= 1000, "{out}");
}

#[test]
fn leftovers_get_sigterm_before_mcpinit_exits() {
    let dir = temp_dir("leftover");
    let f = dir.join("got").display().to_string();
    let leftover = format!(
        "trap 'echo got-term >> {f}; exit 0' TERM; echo ready >> {f}; while :; do sleep 0.05; done"
    );
    let script = format!(
        "sh -c \"{leftover}\" & while ! grep -q ready {f} 2>/dev/null; do sleep 0.05; done; exit 0"
    );
    let mut run = Run::start(&["sh", "-c", &script], &[]);
    assert_eq!(run.wait(LONG), Some(0));
    assert!(
        fs::read_to_string(&f).unwrap().contains("got-term"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_sigterm_ignoring_leftover_is_killed_after_the_stop_grace() {
    // The leftover ignores SIGTERM from birth: the trap is set before the fork (and
    // reset after it), or the SIGTERM could come before a trap of its own.
    let script =
        "trap '' TERM; sh -c 'while :; do sleep 0.05; done' & trap - TERM; sleep 0.3; exit 0";
    let started = Instant::now();
    let mut run = Run::start(&["sh", "-c", script], &[("MCPINIT_STOP_GRACE", "1s")]);
    assert_eq!(run.wait(LONG), Some(0));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    let out = run.stdout();
    assert!(out.contains("stop grace over, sent SIGKILL"), "{out}");
}

#[test]
fn sigterm_with_a_stubborn_child_ends_in_the_stop_grace_with_137() {
    let dir = temp_dir("stubborn");
    let f = dir.join("ready").display().to_string();
    let script = format!("trap '' TERM; echo ready > {f}; while :; do sleep 0.05; done");
    let mut run = Run::start(&["sh", "-c", &script], &[("MCPINIT_STOP_GRACE", "2s")]);
    assert!(wait_for_file(&f, "ready"));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(LONG), Some(137));
    let elapsed = sent.elapsed();
    // Bounds are loose (a busy machine), but the 8 s default grace would fail them.
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(7),
        "{elapsed:?}"
    );
    assert!(
        run.stdout().contains("did not exit within the stop grace"),
        "{}",
        run.stdout()
    );
}

/// A main child stopped by someone else gets SIGCONT after the forwarded SIGTERM, so it
/// dies of SIGTERM (143) at once rather than of SIGKILL (137) at the stop grace.
#[test]
fn a_stopped_child_is_continued_after_sigterm_and_exits_143() {
    let mut run = Run::start(&["sleep", "1000"], &[("MCPINIT_STOP_GRACE", "20s")]);
    let child = wait_until(LONG, || {
        run.processes()
            .into_iter()
            .find(|(_, c)| c.starts_with("sleep 1000"))
            .map(|(pid, _)| pid)
    })
    .expect("the child");
    // SAFETY: plain kill(2) of a process of the test's own namespace.
    unsafe { libc::kill(child, libc::SIGSTOP) };
    assert!(wait_until(LONG, || (proc_state(child) == Some('T')).then_some(())).is_some());
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(LONG), Some(143), "{}", run.stdout());
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "{:?}",
        sent.elapsed()
    );
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn a_child_that_handles_sigterm_stops_gracefully() {
    let dir = temp_dir("graceful");
    let f = dir.join("ready").display().to_string();
    let script = format!("trap 'exit 0' TERM; echo ready > {f}; while :; do sleep 0.05; done");
    let mut run = Run::start(&["sh", "-c", &script], &[]);
    assert!(wait_for_file(&f, "ready"));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(LONG), Some(0));
}

/// Waiting out a child that takes its time to stop is a sleep, not a spin: the stop
/// grace is the only deadline left once a stop is under way.
#[test]
fn waiting_for_a_slow_stop_costs_no_cpu() {
    let dir = temp_dir("slowstop");
    let f = dir.join("ready").display().to_string();
    let script =
        format!("trap 'sleep 3; exit 0' TERM; echo ready > {f}; while :; do sleep 0.05; done");
    let mut run = Run::start(&["sh", "-c", &script], &[]);
    assert!(wait_for_file(&f, "ready"));
    let init = run.init_pid();
    let before = cpu_ticks(init);
    run.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(init) - before;
    // A spinning loop uses nearly all of the 2 s (about 200 ticks); a sleeping one ~0.
    assert!(
        used < 40,
        "mcpinit used {used} ticks of CPU in 2 s of stop grace"
    );
    assert_eq!(run.wait(LONG), Some(0));
}

#[test]
fn the_child_inherits_the_mask_and_ignored_set_mcpinit_was_given() {
    // PID 1 is python: it blocks USR2 and HUP, ignores USR1 and (python's own default)
    // PIPE, records its own SigBlk and SigIgn, then execs mcpinit, whose child (grep
    // itself: a shell would reset the mask) prints the same two lines. SIGPIPE matters:
    // std's Command resets it to the default in the child unless mcpinit restores it.
    let dir = temp_dir("mask");
    let parent = dir.join("parent").display().to_string();
    let program = format!(
        r#"
import os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2, signal.SIGHUP])
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
status = open('/proc/self/status').read().splitlines()
open('{parent}', 'w').write('\n'.join(l for l in status if l.startswith(('SigBlk', 'SigIgn'))))
os.execv('{mcpinit}', ['mcpinit', 'grep', '-E', '^(SigBlk|SigIgn)', '/proc/self/status'])
"#,
        mcpinit = mcpinit()
    );
    let mut run = Run::start_with(&python(), &["-c", &program], &[]);
    assert_eq!(run.wait(LONG), Some(0), "{}", run.stderr());
    let parent = fs::read_to_string(parent).unwrap();
    let out = run.stdout();
    let child: Vec<&str> = out.lines().filter(|l| l.starts_with("Sig")).collect();
    assert!(
        parent.contains("SigBlk:\t0000000000000801"),
        "test setup: {parent}"
    );
    // USR1 (bit 9) and PIPE (bit 12) ignored.
    let ignored = parent.lines().find(|l| l.starts_with("SigIgn")).unwrap();
    let bits = u64::from_str_radix(ignored.split('\t').nth(1).unwrap().trim(), 16).unwrap();
    assert_eq!(bits & 0x1200, 0x1200, "test setup: {parent}");
    assert_eq!(parent.trim(), child.join("\n"));
}

/// A parent that ignores SIGCHLD (the kernel then reaps children by itself) must not
/// leave mcpinit waiting forever for a status it can never collect; the child still
/// inherits the SIG_IGN.
#[test]
fn an_inherited_sigchld_ignore_is_not_a_hang() {
    let program = format!(
        r#"
import os, signal
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execv('{mcpinit}', ['mcpinit', 'grep', 'SigIgn', '/proc/self/status'])
"#,
        mcpinit = mcpinit()
    );
    let mut run = Run::start_with(&python(), &["-c", &program], &[]);
    assert_eq!(
        run.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        run.stderr()
    );
    let ignored = run.stdout();
    let line = ignored.lines().find(|l| l.starts_with("SigIgn")).unwrap();
    let bits = u64::from_str_radix(line.split('\t').nth(1).unwrap().trim(), 16).unwrap();
    assert_ne!(bits & (1 << (libc::SIGCHLD - 1)), 0, "{line}");
}

/// Every invalid value of every variable and option: exit 2, one line naming it, and
/// nothing spawned (the command would create a marker file).
#[test]
fn invalid_settings_are_refused_before_anything_runs() {
    let dir = temp_dir("refuse");
    let marker = dir.join("spawned").display().to_string();
    let variables = [
        ("MCPINIT_MAX_PROCS", "lots"),
        ("MCPINIT_MAX_MEMORY", "12q"),
        ("MCPINIT_DEDUPE", ",,"),
        ("MCPINIT_DEDUPE_KEEP", "0"),
        ("MCPINIT_DEDUPE_IDLE", "soon"),
        ("MCPINIT_ORPHANS", "kill"),
        ("MCPINIT_KILL_GRACE", "-1s"),
        ("MCPINIT_STOP_GRACE", "8 seconds"),
        ("MCPINIT_SCAN_INTERVAL", "0"),
        ("MCPINIT_DRY_RUN", "maybe"),
        ("MCPINIT_LOG", "chatty"),
        ("MCPINIT_LOG_FORMAT", "yaml"),
        ("TINI_VERBOSITY", "loud"),
    ];
    for (var, value) in variables {
        let mut run = Run::start(&["touch", &marker], &[(var, value)]);
        assert_eq!(run.wait(LONG), Some(2), "{var}={value}");
        let err = run.stderr();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(var) && err.contains(value) && err.contains("expected"),
            "{err}"
        );
    }
    let options: [&[&str]; 14] = [
        &["--max-procs", "lots"],
        &["--max-memory", "12q"],
        &["--dedupe", ",,"],
        &["--dedupe-keep", "0"],
        &["--dedupe-idle", "soon"],
        &["--orphans", "kill"],
        &["--kill-grace", "-1s"],
        &["--stop-grace=8 seconds"],
        &["--scan-interval", "0"],
        &["--log", "chatty"],
        &["--log-format", "yaml"],
        &["-e", "300"],
        &["-p", "SIGNOPE"],
        &["--frobnicate"],
    ];
    for option in options {
        let mut args = option.to_vec();
        args.extend(["touch", &marker]);
        let mut run = Run::start(&args, &[]);
        assert_eq!(run.wait(LONG), Some(2), "{option:?}");
        let name = option[0].split('=').next().unwrap();
        assert!(run.stderr().contains(name), "{option:?}: {}", run.stderr());
    }
    // Bytes that are not UTF-8 are a bad value too, not an unset variable.
    let refused = in_namespace(mcpinit(), &["touch", &marker])
        .env(
            "MCPINIT_MAX_PROCS",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff"),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("MCPINIT_MAX_PROCS"), "{err}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a refused run spawned its command"
    );
}

#[test]
fn ctrl_c_on_a_terminal_reaches_the_child() {
    // A pseudo-terminal as in `docker run -it`: ^C makes the kernel send SIGINT to the
    // terminal's foreground group, which must be the child's, and mcpinit must not be
    // stopped by SIGTTOU while handing the terminal over.
    let dir = temp_dir("tty");
    let f = dir.join("got").display().to_string();
    let script = format!(
        "trap 'echo INT >> {f}; exit 5' INT; echo ready >> {f}; while :; do sleep 0.05; done"
    );
    let program = format!(
        r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid: os.set_blocking(fd, False)
if pid == 0:
    os.execv('{mcpinit}', ['mcpinit', 'sh', '-c', sys.argv[1]])
deadline = time.time() + 20
while time.time() < deadline and 'ready' not in (open('{f}').read() if os.path.exists('{f}') else ''):
    time.sleep(0.05)
os.write(fd, b'\x03')
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    try:
        os.read(fd, 4096)
    except OSError:
        pass
    time.sleep(0.02)
sys.exit(99)
"#,
        mcpinit = mcpinit()
    );
    let mut run = Run::start_with(&python(), &["-c", &program, &script], &[]);
    assert_eq!(run.wait(LONG), Some(5), "{}", run.stderr());
    assert!(fs::read_to_string(&f).unwrap().contains("INT"));
}
