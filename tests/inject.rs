//! The ptrace remote system call (src/inject) against real processes: a launcher `sh`
//! blocked in wait4 over a reader of a socketpair, multithreaded node and python
//! servers, a busy loop, a process traced already, a stopped one. The test re-runs
//! itself as PID 1 of its own PID namespace under a timeout (tests/common), so nothing
//! it starts can outlive it.
//!
//! No test harness (Cargo.toml): the tracer must be the thread that seized (ptrace
//! belongs to a thread), and mcpinit has one; the cases run one after another on the
//! main thread. A victim is acted on only once /proc shows it blocked where it should be.

mod common;

use common::*;
use mcpinit::sys::inject::{self, Call, InjectError, Refusal, Syscall};
use mcpinit::sys::procfs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSIDE: &str = "INJECT_TEST_INSIDE";
/// What the cases test is what happens, not how fast (measured apart): a budget no load
/// on a shared 2-core machine exhausts (100 ms did, at a load average of 40).
const BUDGET: Duration = Duration::from_secs(10);
/// Whatever the load, a victim gets this long to be ready or to finish.
const READY: Duration = Duration::from_secs(20);

type Case = (&'static str, fn());

/// The calls an idle event loop waits in (arm64 has only epoll_pwait).
#[cfg(target_arch = "x86_64")]
const EPOLL: &[i64] = &[libc::SYS_epoll_wait, libc::SYS_epoll_pwait];
#[cfg(not(target_arch = "x86_64"))]
const EPOLL: &[i64] = &[libc::SYS_epoll_pwait];

const CASES: &[Case] = &[
    ("probe_succeeds_and_is_quick", probe_succeeds_and_is_quick),
    (
        "shutdown_in_a_launcher_sh_ends_its_reader_at_eof_without_loss",
        shutdown_in_a_launcher_sh_ends_its_reader_at_eof_without_loss,
    ),
    (
        "shutdown_of_fd_6_works_and_the_launcher_passes_the_code_up",
        shutdown_of_fd_6_works_and_the_launcher_passes_the_code_up,
    ),
    (
        "exit_group_ends_an_idle_node_with_status_0",
        exit_group_ends_an_idle_node_with_status_0,
    ),
    (
        "exit_group_ends_a_python_with_threads_with_status_0",
        exit_group_ends_a_python_with_threads_with_status_0,
    ),
    (
        "a_traced_process_is_refused_and_untouched",
        a_traced_process_is_refused_and_untouched,
    ),
    (
        "a_busy_loop_is_not_in_a_syscall_and_runs_on",
        a_busy_loop_is_not_in_a_syscall_and_runs_on,
    ),
    (
        "an_exited_process_or_a_wrong_start_is_gone",
        an_exited_process_or_a_wrong_start_is_gone,
    ),
    (
        "a_stopped_launcher_takes_the_call_and_stays_stopped",
        a_stopped_launcher_takes_the_call_and_stays_stopped,
    ),
    (
        "interrupted_calls_resume_or_fail_as_documented",
        interrupted_calls_resume_or_fail_as_documented,
    ),
    ("one_call_costs_little", one_call_costs_little),
    (
        "a_signal_pending_during_the_call_is_delivered_afterwards",
        a_signal_pending_during_the_call_is_delivered_afterwards,
    ),
    (
        "a_thread_that_cannot_stop_times_out_and_is_released_later",
        a_thread_that_cannot_stop_times_out_and_is_released_later,
    ),
];

fn main() {
    if std::env::var_os(INSIDE).is_some() {
        // A namespace's inode is reused once it is gone: start clean.
        let _ = std::fs::remove_dir_all(scratch());
        let only: Vec<String> = std::env::var(INSIDE)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty() && *s != "1")
            .map(String::from)
            .collect();
        for (name, case) in CASES {
            if only.is_empty() || only.iter().any(|f| name.contains(f.as_str())) {
                case();
                reap_all();
                println!("test {name} ... ok");
            }
        }
        let _ = std::fs::remove_dir_all(scratch());
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in CASES {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<&str> = CASES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = in_namespace(exe.to_str().unwrap(), &[])
        .env(INSIDE, chosen.join(","))
        .output()
        .expect("timeout/unshare must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inside its namespace:\n{text}");
    for name in &chosen {
        assert!(
            text.contains(&format!("test {name} ... ok")),
            "{name} did not run:\n{text}"
        );
    }
    print!("{text}");
}

// ---- the cases ----

fn probe_succeeds_and_is_quick() {
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = inject::probe();
        times.push(t.elapsed());
        assert_eq!(r, Ok(()), "{}", r.as_ref().unwrap_err().describe());
    }
    times.sort();
    println!(
        "probe: median {:?}, min {:?}, max {:?} (50 runs)",
        times[25], times[0], times[49]
    );
    assert_eq!(inject::pending(), 0);
}

fn shutdown_in_a_launcher_sh_ends_its_reader_at_eof_without_loss() {
    let mut l = Launcher::start(0, 0);
    // Data on its way before the shutdown, and more before the reader could read it:
    // all of it must arrive, then EOF.
    let data = b"first line\nsecond line\n".repeat(50);
    l.ours.write_all(&data).unwrap();
    let before = syscall_of(l.sh.id() as i32);
    let t = Instant::now();
    let r = inject::inject(l.sh_pid(), l.sh_start(), l.shutdown(), BUDGET);
    let took = t.elapsed();
    assert_eq!(r, Ok(0), "{r:?}");
    println!("shutdown in sh: {took:?}");
    let echoed = l.read_all();
    let mut want = data.clone();
    want.extend_from_slice(format!("eof {}\n", data.len()).as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        String::from_utf8_lossy(&want)
    );
    // The sh's wait4 resumed and took its child's status: it exits with it.
    assert_eq!(l.sh_exit(), Exit::Code(0), "sh before: {before:?}");
}

fn shutdown_of_fd_6_works_and_the_launcher_passes_the_code_up() {
    let mut l = Launcher::start(6, 7);
    assert!(
        fd_link(l.sh_pid(), 0).is_some_and(|t| t == "/dev/null"),
        "fd 0 is not the socket here"
    );
    l.ours.write_all(b"hello\n").unwrap();
    let r = inject::inject(l.sh_pid(), l.sh_start(), l.shutdown(), BUDGET);
    assert_eq!(r, Ok(0), "{r:?}");
    assert_eq!(String::from_utf8_lossy(&l.read_all()), "hello\neof 6\n");
    assert_eq!(l.sh_exit(), Exit::Code(7));
}

fn exit_group_ends_an_idle_node_with_status_0() {
    exit_group_ends(
        &["node", "-e", "setInterval(() => {}, 100000)"],
        "node",
        EPOLL,
        3,
    );
}

fn exit_group_ends_a_python_with_threads_with_status_0() {
    let py = python();
    let script = "import threading\n\
        e = threading.Event()\n\
        ts = [threading.Thread(target=e.wait) for _ in range(4)]\n\
        [t.start() for t in ts]\n\
        e.wait()\n";
    // Idle only once all four are started: the main thread waits in futex for each.
    exit_group_ends(&[&py, "-c", script], "python", &[libc::SYS_futex], 5);
}

/// `sh -c 'PROGRAM; exit $?'` whose PROGRAM idles with several threads: exit_group(0)
/// in it, and the sh (its parent) sees 0. Idle: at least `threads` threads, the main
/// one blocked in one of `idle`, twice 20 ms apart.
fn exit_group_ends(program: &[&str], what: &str, idle: &[i64], threads: u32) {
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg("\"$@\"; exit $?")
        .arg("sh")
        .args(program)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let sh_pid = sh.id() as i32;
    let leaf = wait_for(&format!("{what} started"), || {
        children(sh_pid).first().copied()
    });
    let is_idle = || {
        let enough = inject::threads_of(leaf).unwrap_or(0) >= threads;
        enough && matches!(syscall_of(leaf), Some(Syscall::In { nr, .. }) if idle.contains(&nr))
    };
    wait_for(&format!("{what} idle with threads"), || {
        if !is_idle() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
        is_idle().then_some(())
    });
    let threads = inject::threads_of(leaf).unwrap();
    let t = Instant::now();
    let r = inject::inject(leaf, start_of(leaf), Call::ExitGroup { code: 0 }, BUDGET);
    println!(
        "exit_group in {what} ({threads} threads): {:?}",
        t.elapsed()
    );
    assert_eq!(r, Ok(0), "{r:?}");
    assert_eq!(exit_of(&mut sh), Exit::Code(0));
}

fn a_traced_process_is_refused_and_untouched() {
    let mut l = Launcher::start(0, 0);
    let sh = l.sh_pid();
    let mut strace = Command::new("strace")
        .args(["-o", "/dev/null", "-p", &sh.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    let tracer = wait_for("strace attached", || tracer_of(sh).filter(|&t| t != 0));
    assert_eq!(tracer, strace.id() as i32);
    wait_for("sh blocked again under strace", || {
        in_call(sh, libc::SYS_wait4).then_some(())
    });
    let r = inject::inject(sh, l.sh_start(), l.shutdown(), BUDGET);
    let e = r.unwrap_err();
    assert_eq!(
        e,
        InjectError::Refused {
            pid: sh,
            cause: Refusal::Traced { tracer }
        }
    );
    assert_eq!(e.cause(), "traced");
    assert_eq!(tracer_of(sh), Some(tracer), "still strace's alone");
    let _ = strace.kill();
    let _ = strace.wait();
    wait_for("strace gone", || (tracer_of(sh) == Some(0)).then_some(()));
    // Untouched: its reader still answers, then ends when asked.
    l.ours.write_all(b"ping\n").unwrap();
    let mut line = String::new();
    BufReader::new(&l.ours).read_line(&mut line).unwrap();
    assert_eq!(line, "ping\n");
    wait_for("sh blocked", || in_call(sh, libc::SYS_wait4).then_some(()));
    assert_eq!(
        inject::inject(sh, l.sh_start(), l.shutdown(), BUDGET),
        Ok(0)
    );
    assert_eq!(l.sh_exit(), Exit::Code(0));
}

fn a_busy_loop_is_not_in_a_syscall_and_runs_on() {
    let mut busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = busy.id() as i32;
    let start = start_of(pid);
    wait_for("busy", || (cpu_ticks(pid) > 5).then_some(()));
    for _ in 0..20 {
        let r = inject::inject(pid, start, Call::Getpid, BUDGET);
        let e = r.unwrap_err();
        assert_eq!(e, InjectError::NotInSyscall { pid }, "{}", e.describe());
        assert_eq!(e.cause(), "not_in_syscall");
        assert_eq!(tracer_of(pid), Some(0), "detached");
    }
    // Runs on: neither stopped nor traced, and still burning CPU.
    let ticks = cpu_ticks(pid);
    wait_for("still busy", || (cpu_ticks(pid) > ticks + 5).then_some(()));
    assert_eq!(state_of(pid), Some('R'));
    assert_eq!(inject::pending(), 0);
    let _ = busy.kill();
    let _ = busy.wait();
}

fn an_exited_process_or_a_wrong_start_is_gone() {
    // Exited, not yet reaped: a zombie is never touched.
    let mut quick = Command::new("true").spawn().unwrap();
    let pid = quick.id() as i32;
    let start = procfs::stat_of(pid).map(|s| s.start).unwrap_or(0);
    wait_for("zombie", || (state_of(pid) == Some('Z')).then_some(()));
    let e = inject::inject(pid, start, Call::Getpid, BUDGET).unwrap_err();
    assert_eq!(e, InjectError::Gone { pid });
    assert_eq!(e.cause(), "gone");
    // Reaped: no such process.
    quick.wait().unwrap();
    let e = inject::inject(pid, start, Call::Getpid, BUDGET).unwrap_err();
    assert_eq!(e, InjectError::Gone { pid });
    // Alive, but another start time: another process under a reused pid.
    let mut l = Launcher::start(0, 0);
    let sh = l.sh_pid();
    let e = inject::inject(sh, l.sh_start() + 1, l.shutdown(), BUDGET).unwrap_err();
    assert_eq!(e, InjectError::Gone { pid: sh });
    assert_eq!(tracer_of(sh), Some(0));
    l.ours.write_all(b"still\n").unwrap();
    let mut line = String::new();
    BufReader::new(&l.ours).read_line(&mut line).unwrap();
    assert_eq!(line, "still\n", "its input is open");
    assert!(in_call(sh, libc::SYS_wait4));
    drop(l);
}

fn a_stopped_launcher_takes_the_call_and_stays_stopped() {
    let mut l = Launcher::start(0, 0);
    let sh = l.sh_pid();
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(sh, libc::SIGSTOP) };
    wait_for("sh stopped", || (state_of(sh) == Some('T')).then_some(()));
    let r = inject::inject(sh, l.sh_start(), l.shutdown(), BUDGET);
    assert_eq!(r, Ok(0), "{r:?}");
    // The reader ends; the stopped sh cannot collect it and stays stopped.
    assert_eq!(String::from_utf8_lossy(&l.read_all()), "eof 0\n");
    let reader = l.reader;
    wait_for("reader exited", || {
        (state_of(reader) == Some('Z')).then_some(())
    });
    // Detached, it wakes to stop again (the group stop is still in force): 'R' at first.
    wait_for("sh stopped again", || {
        (state_of(sh) == Some('T')).then_some(())
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state_of(sh), Some('T'), "still stopped");
    assert_eq!(tracer_of(sh), Some(0));
    assert!(l.sh.try_wait().unwrap().is_none());
    // Continued, it reaps the reader and exits with its status.
    unsafe { libc::kill(sh, libc::SIGCONT) };
    assert_eq!(l.sh_exit(), Exit::Code(0));
}

/// What an interrupted call does once the thread goes on: read(2) and wait4(2)
/// restart, clock_nanosleep goes on sleeping, epoll_wait(2) fails with EINTR (as after
/// a stop and SIGCONT, signal(7)). Called through ctypes, so no retry hides it.
fn interrupted_calls_resume_or_fail_as_documented() {
    let py = python();
    let cases: &[(&str, &[i64], &str)] = &[
        (
            "import os; r, w = os.pipe(); os.read(r, 1)",
            &[libc::SYS_read],
            "restart",
        ),
        (
            "import ctypes, select, time\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             ep = select.epoll()\n\
             buf = ctypes.create_string_buffer(12)\n\
             n = libc.epoll_wait(ep.fileno(), buf, 1, -1)\n\
             print('epoll_wait', n, ctypes.get_errno(), flush=True)\n\
             time.sleep(100)",
            EPOLL,
            "eintr",
        ),
        (
            "import ctypes, time\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             n = libc.sleep(100)\n\
             print('sleep', n, flush=True)",
            // Restarted through restart_syscall, with the time left.
            &[libc::SYS_clock_nanosleep, libc::SYS_restart_syscall],
            "restart",
        ),
    ];
    for &(script, nrs, expect) in cases {
        let in_one = |pid: i32| nrs.iter().any(|&nr| in_call(pid, nr));
        let nr = nrs[0];
        let mut child = Command::new(&py)
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        wait_for(&format!("blocked in {nr}"), || in_one(pid).then_some(()));
        let r = inject::inject(pid, start_of(pid), Call::Getpid, BUDGET);
        assert_eq!(r, Ok(i64::from(pid)), "{r:?}");
        match expect {
            "restart" => {
                // Back in the same call, never returned.
                wait_for("back in the call", || in_one(pid).then_some(()));
                std::thread::sleep(Duration::from_millis(50));
                assert!(in_one(pid), "left {nr}: {:?}", syscall_of(pid));
            }
            _ => {
                let mut line = String::new();
                BufReader::new(child.stdout.as_mut().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line, format!("epoll_wait -1 {}\n", libc::EINTR));
            }
        }
        println!("after the call, syscall {nr}: {expect}");
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn one_call_costs_little() {
    let mut l = Launcher::start(0, 0);
    let sh = l.sh_pid();
    let start = l.sh_start();
    let n = 200;
    let cpu = self_cpu();
    let t = Instant::now();
    for _ in 0..n {
        // Under load the sh may be caught restarting its wait4 after the call before
        // (in user space for an instant): refused untouched, as documented; tried again.
        let mut answer = Err(InjectError::Gone { pid: sh });
        for _ in 0..10 {
            wait_for("sh blocked", || in_call(sh, libc::SYS_wait4).then_some(()));
            answer = inject::inject(sh, start, Call::Getpid, BUDGET);
            if !matches!(answer, Err(InjectError::NotInSyscall { .. })) {
                break;
            }
        }
        assert_eq!(answer, Ok(i64::from(sh)));
    }
    let wall = t.elapsed() / n;
    let cpu = (self_cpu() - cpu) / n;
    println!("one getpid in sh: wall {wall:?}, tracer CPU {cpu:?} (mean of {n})");
    // The sh is none the worse: its reader ends, it exits 0.
    assert_eq!(inject::inject(sh, start, l.shutdown(), BUDGET), Ok(0));
    assert_eq!(l.sh_exit(), Exit::Code(0));
}

/// A signal that comes while the thread is ours is held (delivered then, its handler
/// would run on our registers) and sent again before the detach: not lost. Made
/// certain by sending it to a stopped process, where it waits until the call resumes
/// the thread, which then reports it first.
fn a_signal_pending_during_the_call_is_delivered_afterwards() {
    let script = "import os, signal\n\
        signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n\
        print('ready', flush=True)\n\
        os.read(0, 1)\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    wait_for("blocked in read", || {
        in_call(pid, libc::SYS_read).then_some(())
    });
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_for("stopped", || (state_of(pid) == Some('T')).then_some(()));
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let usr1 = 1u64 << (libc::SIGUSR1 - 1);
    let pending = || shared_pending(pid) & usr1 != 0;
    assert!(pending(), "SIGUSR1 waits");
    let r = inject::inject(pid, start_of(pid), Call::Getpid, BUDGET);
    assert_eq!(r, Ok(i64::from(pid)));
    assert!(pending(), "SIGUSR1 waits again");
    // Detached, it wakes to stop again (the group stop is still in force): 'R' at first.
    wait_for("stopped again", || {
        (state_of(pid) == Some('T')).then_some(())
    });
    unsafe { libc::kill(pid, libc::SIGCONT) };
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "usr1\n", "the handler ran once continued");
    drop(child.stdin.take());
    assert_eq!(exit_of(&mut child), Exit::Code(0));
}

/// `ShdPnd:` of /proc/PID/status: signals pending for the whole process.
fn shared_pending(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("ShdPnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// A parent waiting for its vfork child to exec sleeps uninterruptibly: the interrupt
/// cannot stop it within the budget, and it cannot be detached before it stops. Once
/// the child execs it stops, and `settle` lets it go, untouched.
fn a_thread_that_cannot_stop_times_out_and_is_released_later() {
    let fifo = scratch().join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // posix_spawn's child (CLONE_VFORK) blocks opening the FIFO before its exec.
    let script = "import os, sys\n\
        pid = os.posix_spawn('/bin/true', ['true'], {}, file_actions=[(os.POSIX_SPAWN_OPEN, 0, sys.argv[1], os.O_RDONLY, 0)])\n\
        print('spawned', flush=True)\n\
        os.waitpid(pid, 0)\n\
        os.read(0, 1)\n";
    let mut child = Command::new(python())
        .args(["-c", script, fifo.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // 'D' alone could be a page read at start-up under load: in clone too.
    let cloning = [libc::SYS_clone, libc::SYS_clone3];
    wait_for("in the vfork wait", || {
        let in_clone = cloning.iter().any(|&nr| in_call(pid, nr));
        (in_clone && state_of(pid) == Some('D')).then_some(())
    });
    let r = inject::inject(pid, start_of(pid), Call::Getpid, Duration::from_millis(50));
    assert_eq!(r, Err(InjectError::Timeout { pid, step: "stop" }));
    assert_eq!(r.unwrap_err().cause(), "timeout");
    assert_eq!(inject::pending(), 1);
    assert_eq!(inject::settle(), 1, "not stopped yet");
    // SAFETY: getpid has no preconditions.
    assert_eq!(tracer_of(pid), Some(unsafe { libc::getpid() }));
    // Let the vfork child exec: the parent goes on, stops for the interrupt, is let go.
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    wait_for("settled", || (inject::settle() == 0).then_some(()));
    drop(writer);
    assert_eq!(tracer_of(pid), Some(0));
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "spawned\n", "it went on as before");
    drop(child.stdin.take());
    assert_eq!(exit_of(&mut child), Exit::Code(0));
}

// ---- victims ----

/// `sh -c 'PYTHON reader.py FD CODE; exit $?'` with one end of a socketpair at its fd 0
/// (FD 0) or moved to 6 (FD 6, /dev/null at 0, as Python's mcp 2.x does): the reader
/// echoes what it reads on the socket until EOF, says `eof N`, exits CODE.
struct Launcher {
    sh: Child,
    reader: i32,
    fd: i32,
    ours: UnixStream,
}

const READER: &str = "import os, sys\n\
fd, code, n = int(sys.argv[1]), int(sys.argv[2]), 0\n\
while True:\n    d = os.read(fd, 65536)\n    if not d:\n        break\n    n += len(d)\n    os.write(fd, d)\n\
os.write(fd, b'eof %d\\n' % n)\n\
sys.exit(code)\n";

impl Launcher {
    fn start(fd: i32, code: i32) -> Launcher {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let script = reader_script();
        let line = if fd == 0 {
            "\"$@\"; exit $?"
        } else {
            "exec 6<&0 0</dev/null; \"$@\"; exit $?"
        };
        let sh = Command::new("sh")
            .arg("-c")
            .arg(line)
            .arg("sh")
            .arg(python())
            .arg(&script)
            .arg(fd.to_string())
            .arg(code.to_string())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .spawn()
            .unwrap();
        let sh_pid = sh.id() as i32;
        let reader = wait_for("reader started", || children(sh_pid).first().copied());
        wait_for("reader reading, sh waiting", || {
            (in_call(reader, libc::SYS_read) && in_call(sh_pid, libc::SYS_wait4)).then_some(())
        });
        Launcher {
            sh,
            reader,
            fd,
            ours,
        }
    }

    fn sh_pid(&self) -> i32 {
        self.sh.id() as i32
    }

    fn sh_start(&self) -> u64 {
        start_of(self.sh_pid())
    }

    fn shutdown(&self) -> Call {
        Call::Shutdown {
            fd: self.fd,
            how: libc::SHUT_RD,
        }
    }

    /// Everything the reader writes, up to its last line, `eof N` (the socket itself
    /// stays open while the sh holds it).
    fn read_all(&mut self) -> Vec<u8> {
        self.ours.set_read_timeout(Some(READY)).unwrap();
        let mut all = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = self
                .ours
                .read(&mut chunk)
                .expect("the reader ended in time");
            all.extend_from_slice(&chunk[..n]);
            let last = all[..all.len().saturating_sub(1)]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if n == 0 || (all.ends_with(b"\n") && all[last..].starts_with(b"eof ")) {
                return all;
            }
        }
    }

    fn sh_exit(&mut self) -> Exit {
        exit_of(&mut self.sh)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.sh.kill();
        let _ = self.sh.wait();
        // SAFETY: plain kill(2); the reader is reparented to us, PID 1, and reaped.
        unsafe { libc::kill(self.reader, libc::SIGKILL) };
    }
}

fn reader_script() -> PathBuf {
    let path = scratch().join("reader.py");
    if !path.exists() {
        std::fs::write(&path, READER).unwrap();
    }
    path
}

/// A directory of this run's own. Not `common::temp_dir`: in here our pid is 1, as in
/// every other copy of this test running at the same time; the namespace's inode is not.
fn scratch() -> PathBuf {
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ns: String = ns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let dir = std::env::temp_dir().join(format!("mcpinit-inject-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- helpers ----

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
}

fn exit_of(child: &mut Child) -> Exit {
    let status = wait_for("exit", || child.try_wait().unwrap());
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(code) => Exit::Code(code),
        None => Exit::Signal(status.signal().unwrap_or(0)),
    }
}

fn wait_for<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    wait_until_fast(READY, probe).unwrap_or_else(|| panic!("timed out waiting: {what}"))
}

/// `common::wait_until` with a 1 ms poll: the cases wait for kernel states that come
/// within microseconds.
fn wait_until_fast<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn syscall_of(pid: i32) -> Option<Syscall> {
    inject::syscall_of(pid)
}

fn in_call(pid: i32, nr: i64) -> bool {
    matches!(syscall_of(pid), Some(Syscall::In { nr: n, .. }) if n == nr)
}

fn start_of(pid: i32) -> u64 {
    procfs::stat_of(pid).expect("alive").start
}

fn state_of(pid: i32) -> Option<char> {
    procfs::stat_of(pid).map(|s| s.state as char)
}

fn tracer_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn fd_link(pid: i32, fd: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Everything that ended under us, PID 1 of the namespace.
fn reap_all() {
    // SAFETY: waitpid with a null status pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG | libc::__WALL) } > 0 {}
}
