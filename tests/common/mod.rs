//! Harness for tests that start real processes. Every mcpinit runs as PID 1 of its own
//! PID namespace (`unshare --pid --fork --mount-proc --kill-child`, plus `--user
//! --map-root-user` when not root) under `timeout -s KILL`, so whatever a test starts
//! dies with the namespace, even if the test itself fails or hangs.
#![allow(dead_code)]

use mcpinit::sys::procfs;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The python3 interpreter itself: a version manager's shim (pyenv's is a shell script
/// that forks a dozen processes at every start) would trip the tests' small caps.
pub fn python() -> String {
    std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Hard limit for any one mcpinit run; tests use far shorter bounds of their own.
const HARD_LIMIT_SECS: u32 = 120;

/// The binary under test: cargo's own build, or `MCPINIT_TEST_BIN` when set (the
/// aarch64 binary run through qemu-user by tests/aarch64/run.sh; the variable is one of
/// ours, so `without_our_env` keeps it from the runs themselves).
pub fn mcpinit() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MCPINIT_TEST_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_mcpinit").to_string())
    })
}

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `timeout … unshare … <program> <args>`: a command whose process tree lives and dies
/// in a fresh PID namespace.
pub fn in_namespace(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &HARD_LIMIT_SECS.to_string(), "unshare"]);
    if !is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", program]);
    cmd.args(args);
    without_our_env(&mut cmd);
    cmd
}

/// Tests pick their settings explicitly; the runner's environment must not leak in.
pub fn without_our_env(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("MCPINIT_") || key.starts_with("TINI_") {
            cmd.env_remove(key);
        }
    }
}

/// The first fixture server's launcher command line, as MetaMCP's npm sets it.
pub const SERVER_A: &str = "npm exec @modelcontextprotocol/server-a";

/// A running mcpinit in its namespace, with its stdout and stderr going to files.
pub struct Run {
    child: Child,
    dir: PathBuf,
    pub status: Option<ExitStatus>,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("mcpinit-test-{}-{tag}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

impl Run {
    /// Start `mcpinit ARGS` as PID 1 of a new namespace with `env` set.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::start_with(mcpinit(), args, env)
    }

    /// Start any init (`tini`, …) the same way, for side-by-side checks.
    pub fn start_with(program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let dir = temp_dir("run");
        let mut cmd = in_namespace(program, args);
        cmd.envs(env.iter().copied())
            .env("MCPINIT_STATE_FILE", dir.join("state.json"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout")).unwrap())
            .stderr(fs::File::create(dir.join("stderr")).unwrap());
        let child = cmd.spawn().expect("timeout/unshare must be installed");
        Run {
            child,
            dir,
            status: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Host pid of the namespace's PID 1 (unshare's only child), once it exists.
    pub fn init_pid(&self) -> i32 {
        let unshare = self.unshare_pid();
        wait_until(Duration::from_secs(10), || {
            children(unshare).first().copied()
        })
        .expect("mcpinit did not start in its namespace")
    }

    fn unshare_pid(&self) -> i32 {
        // `timeout` execs nothing: it forks unshare and waits for it.
        let timeout = self.child.id() as i32;
        wait_until(Duration::from_secs(10), || {
            children(timeout).first().copied()
        })
        .expect("unshare did not start")
    }

    /// Send `signal` to mcpinit (PID 1 in the namespace).
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(self.init_pid(), signal) };
    }

    /// Wait for mcpinit to exit, at most `limit`; None if it has not.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        if self.status.is_none() {
            let child = &mut self.child;
            self.status = wait_until(limit, || child.try_wait().ok().flatten());
        }
        self.status.map(|s| s.code().unwrap_or(-1))
    }

    /// Wait until stdout has a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.stdout().contains(needle).then_some(())).is_some()
    }

    /// Every process in the namespace except mcpinit: (host pid, cmdline).
    pub fn processes(&self) -> Vec<(i32, String)> {
        let init = self.init_pid();
        let mut found = Vec::new();
        let mut stack = vec![init];
        while let Some(pid) = stack.pop() {
            for child in children(pid) {
                if !is_zombie(child) {
                    found.push((child, cmdline(child)));
                }
                stack.push(child);
            }
        }
        found
    }

    pub fn count(&self, needle: &str) -> usize {
        self.processes()
            .iter()
            .filter(|(_, c)| c.contains(needle))
            .count()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Killing `timeout` does not reach the namespace; killing its PID 1 ends it all.
        if self.status.is_none() {
            if let Some(&unshare) = children(self.child.id() as i32).first() {
                for init in children(unshare) {
                    // SAFETY: plain kill(2) of our own namespace's init.
                    unsafe { libc::kill(init, libc::SIGKILL) };
                }
                unsafe { libc::kill(unshare, libc::SIGKILL) };
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "--- mcpinit stdout ---\n{}--- stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }
}

/// Poll `probe` every 20 ms until it yields, at most `limit`.
pub fn wait_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Children of `pid`, by scanning every /proc/N/stat (the kernel here has no
/// /proc/N/task/N/children).
pub fn children(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if procfs::stat_of(child).is_some_and(|s| s.ppid == pid) {
            found.push(child);
        }
    }
    found.sort_unstable();
    found
}

pub fn cmdline(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    parts.join(" ")
}

/// Exited, or gone altogether.
pub fn is_zombie(pid: i32) -> bool {
    procfs::stat_of(pid).is_none_or(|s| s.is_zombie())
}

pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

/// CPU time `pid` has used so far (utime + stime), in clock ticks. Read here, not with
/// `core::process::parse_stat`: mcpinit itself never needs these two fields.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rfind(')')
        .map(|i| {
            stat[i + 2..]
                .split(' ')
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    // Fields 14 and 15, counted from the state (field 3) at index 0.
    fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0)
}

/// `program ARGS` inside `run`'s PID and mount namespaces (as `docker exec` runs a
/// command in a container), under a timeout, with no MCPINIT_* from the runner.
/// `program` is a path as seen in there.
pub fn inside_program(run: &Run, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", "30", "nsenter", "-t"])
        .arg(run.init_pid().to_string())
        .args(["-p", "-m"]);
    if !is_root() {
        // The harness maps us to root in a user namespace of our own.
        cmd.args(["-U", "--preserve-credentials"]);
    }
    cmd.arg(program).args(args);
    without_our_env(&mut cmd);
    cmd
}
