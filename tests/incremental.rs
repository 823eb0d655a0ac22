//! The incremental look against the full read, on the same churning tree: processes
//! that come and go, orphans reparented once settled, new groups, execs. The test
//! re-runs itself as PID 1 of its own namespace, under a timeout (tests/common), so
//! every process it starts is its own descendant and dies with it.
//!
//! No test harness (Cargo.toml): the look runs on the main thread, as in mcpinit,
//! which has no other, so the orphans reparented to this PID 1 are that thread's
//! children, where the scanner looks for them.

mod common;

use common::*;
use mcpinit::core::process::{Depth, Proc, Snapshot};
use mcpinit::sys::procfs::{Scanner, YOUNG_MS};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const INSIDE: &str = "INCREMENTAL_TEST_INSIDE";

/// The shapes of process a MetaMCP container churns through, one spawned every 50 ms.
const SHAPES: &[&str] = &[
    // A long-lived one outliving its parent: reparented to us once settled.
    "sleep 30 & sleep 3",
    // Its own group.
    "exec setsid sleep 4",
    // An exec while young (well inside YOUNG_MS even on a loaded machine: an exec
    // later than that is the full read's to see).
    "sleep 0.2; exec sleep 4",
    // Orphaned at birth.
    "sleep 2.5 & exit 0",
    // Short-lived.
    "exec sleep 0.3",
];

fn main() {
    const NAME: &str = "an_incremental_look_sees_what_a_full_read_sees";
    if std::env::var_os(INSIDE).is_some() {
        a_unit_about_to_be_touched_is_read_again();
        return an_incremental_look_sees_what_a_full_read_sees();
    }
    // `cargo test -- FILTER` and `--list` as a harness would take them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = in_namespace(exe.to_str().unwrap(), &[])
        .env(INSIDE, "1")
        .output()
        .expect("timeout/unshare must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{NAME}, inside its namespace:\n{text}"
    );
    assert!(
        text.contains("compared"),
        "{NAME} did not run inside:\n{text}"
    );
    print!("test {NAME} ... ok\n{text}");
}

fn an_incremental_look_sees_what_a_full_read_sees() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    assert_eq!(me, 1, "runs as PID 1 of its namespace");
    let mut incremental = Scanner::new(me);
    let (mut compared, mut reused, mut settled_orphans) = (0, 0, 0);
    let mut mismatches = Vec::new();
    let started = Instant::now();
    let mut spawned = 0;
    while started.elapsed() < Duration::from_secs(10) {
        for _ in 0..2 {
            let shape = SHAPES[spawned % SHAPES.len()];
            spawned += 1;
            // Reaped by reap_all(), by pid, not through the handle.
            let child = Command::new("sh")
                .args(["-c", shape])
                .stdin(Stdio::null())
                .spawn()
                .expect("sh");
            drop(child);
        }
        sleep(Duration::from_millis(100));
        // Every other round, our dead children wait as zombies, still listed: the
        // settled orphans of one are reparented to us all the same.
        if spawned % 4 == 0 {
            reap_all();
        }
        // Incremental between two full reads: whatever both agree on had settled
        // before the look, and the look must agree too.
        let before = Scanner::new(me).scan();
        let look = incremental.look(Depth::Incremental);
        reused += incremental.reused();
        let after = Scanner::new(me).scan();
        assert!(incremental.blind().is_none());
        let seen = by_pid(&look);
        for p in stable(&before, &after) {
            compared += 1;
            match seen.get(&p.pid) {
                Some(q) if same(p, q) => {
                    let age = look.now_ms.saturating_sub(q.started_ms);
                    if q.ppid == me && q.cmdline.as_ref() == "sleep 30" && age > YOUNG_MS + 1000 {
                        settled_orphans += 1;
                    }
                }
                other => mismatches.push(format!("full {p:?}\n  incremental {other:?}")),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} differ, first:\n{}",
        mismatches.len(),
        mismatches[0]
    );
    assert!(compared > 1000, "only {compared} processes compared");
    assert!(
        reused > compared / 4,
        "only {reused} of {compared} taken over unread"
    );
    assert!(settled_orphans > 0, "no settled orphan was seen reparented");
    println!("compared {compared}, reused {reused}, settled orphans {settled_orphans}");
}

/// What the loop asks of the scanner around a decision: a settled process is taken
/// over unread, unless asked for again (`reread`), and `confirm` reads it now.
fn a_unit_about_to_be_touched_is_read_again() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut child = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = child.id() as i32;
    sleep(Duration::from_millis(YOUNG_MS + 200));
    let mut scanner = Scanner::new(me);
    scanner.scan();
    scanner.look(Depth::Incremental);
    assert_eq!(scanner.reused(), 1, "a settled process is taken over");
    scanner.reread([pid]);
    scanner.look(Depth::Incremental);
    assert_eq!(scanner.reused(), 0, "a process asked for is read again");
    scanner.look(Depth::Incremental);
    assert_eq!(scanner.reused(), 1, "once");
    assert!(scanner.confirm(&[pid]), "nothing changed");
    // Two sweeps read every settled process again once between them (by pid halves).
    scanner.look(Depth::Sweep);
    let first = scanner.reused();
    scanner.look(Depth::Sweep);
    assert_eq!(
        first + scanner.reused(),
        1,
        "read again by one of two sweeps"
    );
    scanner.look(Depth::Incremental);
    assert_eq!(scanner.reused(), 1, "taken over again");
    // Stopped: no matter to a decision (the storm brake stops forkers itself).
    // SAFETY: our own unreaped child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let state = |want: char| {
        wait_until(Duration::from_secs(10), || {
            proc_state(pid).filter(|&s| s == want)
        })
        .is_some()
    };
    assert!(state('T'), "stopped");
    assert!(scanner.confirm(&[pid]), "a stop changes no decision");
    // Exited (a zombie, unreaped): that is seen.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(state('Z'), "exited");
    assert!(!scanner.confirm(&[pid]), "an exit is seen");
    let _ = child.kill();
    let _ = child.wait();
    println!("reread and confirm: ok");
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Processes both full reads show alike and alive: settled before the look between them.
fn stable<'a>(before: &'a Snapshot, after: &Snapshot) -> Vec<&'a Proc> {
    let after = by_pid(after);
    before
        .procs
        .iter()
        .filter(|p| !p.is_zombie())
        .filter(|p| {
            after
                .get(&p.pid)
                .is_some_and(|q| same(p, q) && p.state == q.state)
        })
        .collect()
}

/// The fields an incremental look must get right. The state is not among them: a
/// process its parent has not yet reaped shows as a zombie only to a full read.
fn same(a: &Proc, b: &Proc) -> bool {
    (a.start, a.ppid, a.pgid, &a.cmdline, a.is_zombie())
        == (b.start, b.ppid, b.pgid, &b.cmdline, b.is_zombie())
}

fn by_pid(snapshot: &Snapshot) -> HashMap<i32, &Proc> {
    snapshot.procs.iter().map(|p| (p.pid, p)).collect()
}

fn reap_all() {
    // SAFETY: waitpid with a null status pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}
