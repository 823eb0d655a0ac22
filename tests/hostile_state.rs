//! Whatever sits at the state path may be hostile or unlucky (issue 12.6-12.8): the
//! writer must not destroy it, and the reader must neither hang, nor eat memory, nor be
//! fooled by the file's contents. Each test here failed on the code before the fix.
//! Uses nothing but std and the harness, so that it runs unchanged against any build.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Run `cmd` (which bounds itself with `timeout -s KILL`); None if it had to be killed.
fn run_bounded(mut cmd: Command) -> Option<Output> {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    (out.status.signal() != Some(libc::SIGKILL)).then_some(out)
}

/// `mcpinit ARGS` on this host (nothing spawned), address space capped at 512 MiB so
/// that a reader without limits fails instead of taking the machine's memory.
fn here(args: &[&str]) -> Option<Output> {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", "20", "sh", "-c"])
        .arg("ulimit -v 524288; exec \"$0\" \"$@\"")
        .arg(mcpinit())
        .args(args)
        .env_remove("MCPINIT_STATE_FILE");
    run_bounded(cmd)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- 12.6: the writer leaves alone what is not its own file ----

/// mcpinit with `--state-file path` runs a short child; what was at `path` must be
/// there, untouched, afterwards, and the refusal logged once.
fn governs_without_touching(path: &Path) -> String {
    let mut run = Run::start(
        &["--state-file", path.to_str().unwrap(), "--", "sleep", "1.5"],
        &[],
    );
    let status = run.wait(LONG);
    assert_eq!(status, Some(0), "{}{}", run.stdout(), run.stderr());
    let stdout = run.stdout();
    assert_eq!(
        stdout.matches("cannot write the state file").count(),
        1,
        "warned once:\n{stdout}"
    );
    stdout
}

#[test]
fn a_symlink_at_the_state_path_is_neither_replaced_nor_removed() {
    let dir = temp_dir("symlink-state");
    let (link, target) = (dir.join("state.json"), dir.join("target"));
    fs::write(&target, "precious").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    governs_without_touching(&link);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), target);
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_fifo_at_the_state_path_stays_a_fifo() {
    let dir = temp_dir("fifo-state");
    let fifo = dir.join("state.json");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    governs_without_touching(&fifo);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_device_at_the_state_path_stays_a_device() {
    let dir = temp_dir("device-state");
    let device = dir.join("full");
    let c_path = std::ffi::CString::new(device.to_str().unwrap()).unwrap();
    // /dev/full's numbers, as in the issue. Needs CAP_MKNOD: skipped without it.
    // SAFETY: valid NUL-terminated path.
    let made = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 7)) };
    if made != 0 {
        eprintln!("skipped: mknod needs root");
        return;
    }
    let stdout = governs_without_touching(&device);
    assert!(stdout.contains("character device"), "{stdout}");
    let meta = fs::symlink_metadata(&device).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), libc::makedev(1, 7));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn another_users_file_at_the_state_path_is_left_alone() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let dir = temp_dir("foreign-state");
    let file = dir.join("state.json");
    fs::write(&file, "someone else's").unwrap();
    std::os::unix::fs::chown(&file, Some(12345), Some(12345)).unwrap();
    let stdout = governs_without_touching(&file);
    assert!(stdout.contains("belongs to uid 12345"), "{stdout}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "someone else's");
    let _ = fs::remove_dir_all(dir);
}

// ---- 12.7: the reader has limits ----

#[test]
fn health_on_a_fifo_answers_at_once() {
    let dir = temp_dir("fifo-read");
    let fifo = dir.join("state.json");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let out = here(&["health", "--state-file", fifo.to_str().unwrap()]).expect("health hangs");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("is a FIFO, not a regular file"),
        "{}",
        text(&out)
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn health_on_dev_zero_refuses_without_reading() {
    let out = here(&["health", "--state-file", "/dev/zero"]).expect("health hangs");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("is a character device"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_state_file_over_the_cap_is_refused_unread() {
    let dir = temp_dir("huge-read");
    let file = dir.join("state.json");
    // Sparse: 1 GiB that costs no disk.
    fs::File::create(&file).unwrap().set_len(1 << 30).unwrap();
    let start = Instant::now();
    let out = here(&["health", "--state-file", file.to_str().unwrap()]).expect("health hangs");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("over the 64 MiB"), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(10));
    let _ = fs::remove_dir_all(dir);
}

// ---- documents with a live writer: crafted files read inside a running mcpinit ----

/// A state document claiming to be written by `pid` at `updated`, with `rows` process
/// rows, all with the same pid and a parent that is not listed: each row is a root, and
/// finding that out was a scan of every row per row before the fix.
fn document(pid: i32, updated: u64, scan_interval_ms: u64, rows: usize) -> String {
    let row = r#"{"pid":7,"ppid":8,"pgid":7,"state":"S","age_ms":1,"rss":1,"cmdline":"x","role":"other","unit":"pgid:7","unit_top":7,"key":null,"idle_ms":null,"input_seen":false,"duplicate":false,"terminating":false}"#;
    let mut processes = String::with_capacity(rows * (row.len() + 1));
    for i in 0..rows {
        if i > 0 {
            processes.push(',');
        }
        processes.push_str(row);
    }
    format!(
        r#"{{"pid":{pid},"version":"0.1.0","started_unix_ms":1,"updated_unix_ms":{updated},"snapshot_unix_ms":null,"main_pid":7,
"settings":{{"max_procs":0,"max_memory":0,"dedupe":"off","dedupe_keep":1,"dedupe_idle_ms":600000,
"orphans":"term","kill_grace_ms":5000,"eof_grace_ms":3000,"stop_grace_ms":8000,"scan_interval_ms":{scan_interval_ms},"dry_run":false}},
"cgroup":{{"pids_max":null,"memory_max":null}},"counters":{{"zombies_reaped":0,"signals_forwarded":0,
"terminated":{{"duplicate":0,"orphan":0,"cap":0,"memory":0}},"escalations":0,"peak_procs":1,"peak_rss":0}},
"live":1,"rss":0,"processes":[{processes}]}}"#
    )
}

/// A live mcpinit (PID 1 of its namespace) to vouch for crafted files claiming pid 1.
fn live_mcpinit() -> Run {
    let run = Run::start(&["--", "sleep", "60"], &[]);
    let written = run.dir().join("state.json");
    assert!(
        wait_until(LONG, || written.exists().then_some(())).is_some(),
        "mcpinit never wrote its state: {}",
        run.stderr()
    );
    run
}

/// `mcpinit ARGS` inside the run's namespaces, killed after 30 s (`inside_program`).
fn inside_bounded(run: &Run, args: &[&str]) -> Option<Output> {
    run_bounded(inside_program(run, mcpinit(), args))
}

#[test]
fn text_status_is_linear_in_rows_with_repeated_pids() {
    let run = live_mcpinit();
    let file = run.dir().join("crafted.json");
    for rows in [20_000, 200_000] {
        fs::write(&file, document(1, unix_ms(), 1000, rows)).unwrap();
        let out = inside_bounded(&run, &["status", "--state-file", file.to_str().unwrap()])
            .unwrap_or_else(|| panic!("status of {rows} rows did not finish in 30 s"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let view = String::from_utf8_lossy(&out.stdout);
        let printed = view.lines().filter(|l| l.ends_with(" x")).count();
        assert!(printed == rows, "{printed} of {rows} rows printed");
    }
}

fn health_of(run: &Run, document: &str) -> (Option<i32>, String) {
    let file = run.dir().join("crafted.json");
    fs::write(&file, document).unwrap();
    // Left as by an mcpinit that stopped at `updated`: its heartbeat is a new
    // modification time, so a file untouched since is that old.
    let updated: Option<u64> = serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .and_then(|doc| doc["updated_unix_ms"].as_u64());
    if let Some(ms) = updated.filter(|&ms| ms < unix_ms()) {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
        let crafted = fs::File::options().write(true).open(&file).unwrap();
        crafted.set_modified(at).unwrap();
    }
    let out = inside_bounded(run, &["health", "--state-file", file.to_str().unwrap()])
        .expect("health hangs");
    (out.status.code(), text(&out))
}

// ---- 12.8: health is not fooled by the file ----

#[test]
fn health_is_not_fooled_by_the_file() {
    let run = live_mcpinit();
    let now = unix_ms();
    let (code, out) = health_of(&run, &document(1, now, 1000, 1));
    assert_eq!(code, Some(0), "the crafted file itself is healthy: {out}");

    let (code, out) = health_of(&run, &document(1, u64::MAX, 1000, 1));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("in the future"), "{out}");
    let (code, out) = health_of(&run, &document(1, now + 3_600_000, 1000, 1));
    assert!(code == Some(1) && out.contains("in the future"), "{out}");

    // An hour old: the heartbeat is 10 s whatever the scan interval, so a huge interval
    // (in range or not) must not keep it fresh.
    let (code, out) = health_of(&run, &document(1, now - 3_600_000, u64::MAX, 1));
    assert!(code == Some(1) && out.contains("old"), "{out}");
    let (code, out) = health_of(&run, &document(1, now - 3_600_000, 3_600_000, 1));
    assert!(code == Some(1) && out.contains("stopped updating"), "{out}");
    // Written an hour ago, but its heartbeat touched it just now: fresh.
    let file = run.dir().join("touched.json");
    fs::write(&file, document(1, now - 3_600_000, 1000, 1)).unwrap();
    let out = inside_bounded(&run, &["health", "--state-file", file.to_str().unwrap()])
        .expect("health hangs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (code, out) = health_of(&run, &document(1, now, u64::MAX, 1));
    assert!(code == Some(1) && out.contains("scan_interval_ms"), "{out}");

    if is_root() {
        let file = run.dir().join("planted.json");
        fs::write(&file, document(1, now, 1000, 1)).unwrap();
        std::os::unix::fs::chown(&file, Some(12345), Some(12345)).unwrap();
        let out =
            inside_bounded(&run, &["health", "--state-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(out.status.code(), Some(9), "{}", text(&out));
        assert!(
            text(&out).contains("belongs to uid 12345"),
            "{}",
            text(&out)
        );
    }
}
