//! /proc -> Snapshot: every descendant of mcpinit with what the policy needs.
//! A process that vanishes or cannot be read mid-scan is skipped: it is either gone
//! (its parent or we reap it) or will be seen on the next scan.

use crate::core::process::{parse_stat, Blind, Depth, Proc, ProcId, Snapshot, Stat};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;
use nix::time::{clock_gettime, ClockId};
use nix::unistd::{getpgrp, sysconf, SysconfVar};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

/// Reads /proc repeatedly, re-reading only what can have changed since the last look.
///
/// A read costs one `openat`, one `read` and one `close` per process (plus a directory
/// listing): paths are resolved against an open /proc, and a short read is the whole
/// file (procfs produces each of these files in one go), so there is no size probe and
/// no second read for end-of-file. That is the floor for a /proc reader, and the
/// kernel's own work dominates it (see docs/benchmarks.md), so an incremental look
/// skips the read itself wherever the last one still holds:
///
/// - a pid the kernel has not handed out since the last look (the allocation cursor,
///   the last field of /proc/loadavg, has not passed it) is the same process;
/// - whose parent is still listed, and which is not among our own children unless it
///   was before (an orphan is reparented to us, even while its old parent is a zombie
///   that still shows in the listing);
/// - and which is older than `YOUNG_MS`, past the exec and setsid that follow a fork.
///
/// An exec or a new title late in a process's life, a zombie its parent does not reap,
/// and a pid space wrapped within one look are seen by the next full read.
pub struct Scanner {
    me: i32,
    /// mcpinit's own process group, which is shared with whoever started it.
    my_pgid: i32,
    ticks_per_sec: u64,
    page_size: u64,
    buf: Vec<u8>,
    /// `PID/FILE` and its NUL, relative to the open /proc.
    path: Vec<u8>,
    /// The last look's processes, ours and not, sorted by pid. Read into a new vector
    /// and dropped before the snapshot is built: at 10,000 processes a spare kept for
    /// reuse would hold 800 kB for good.
    known: Vec<Known>,
    /// The listing's buffer, and our own children's: small, and kept.
    pids: Vec<i32>,
    children: Vec<i32>,
    /// `ME/task/ME/children`, relative to /proc.
    children_file: String,
    /// Pids the next look reads whatever it could take over: the members of units a
    /// termination follows.
    dirty: Vec<i32>,
    /// The pid allocation cursor read before the last look's listing.
    cursor: Option<i32>,
    /// /proc/loadavg, kept open: the cursor is read before every listing.
    loadavg: Option<File>,
    /// /proc, opened once and kept: when file descriptors run out, the listing that
    /// tells which processes exist still works.
    proc_dir: Option<Dir>,
    /// Sweeps and full reads done: which slice the next one reads again.
    sweeps: u64,
    /// Processes the last look took from the one before without reading them.
    reused: usize,
    /// The launcher patterns: a process whose command line has a key gets its
    /// environment hashed.
    launchers: Vec<String>,
    blind: Option<Blind>,
}

/// One process as last read: its stat and, for ours, its command line.
#[derive(Clone)]
struct Known {
    pid: i32,
    stat: Stat,
    /// The command line and environment hash, once read (never for others).
    cmdline: Option<(Rc<str>, u64)>,
    /// Its stat was read by the last look, not taken over from the one before.
    fresh: bool,
    /// When its stat was read (ms, CLOCK_BOOTTIME).
    read_ms: u64,
}

/// A process younger than this may still exec, set its title or leave its parent's
/// group (`npm exec` -> `sh -c` -> `node` does all three within a second): it is read
/// again on every look at least YOUNG_REREAD_MS after the last read of it.
pub const YOUNG_MS: u64 = 2000;
/// Looks come at least 20 ms apart, but every 2 ms while the storm brake works: there a
/// storm's hundreds of young processes would be read again 500 times a second, most of
/// what such a look costs. What a young process does is seen within this much instead,
/// and a decision to end one is confirmed on a fresh read anyway (`confirm`).
pub const YOUNG_REREAD_MS: u64 = 20;

/// A sweep reads again the stat of one in this many processes (by pid), so each is
/// read again within this many sweeps (two minutes at the defaults).
const STAT_SLICES: u64 = 2;
/// And the command line of one in this many: a process that rewrites its argv in place
/// (setproctitle) keeps its comm and its argument area, which is all the cache can see,
/// so its new title shows within this many sweeps (eight minutes at the defaults).
const CMDLINE_SLICES: u64 = 8;

/// At most this much of an environment is read and hashed: environments can be large,
/// and what tells two accounts of one server apart (a token, a URL) rarely comes last.
pub const ENVIRON_MAX: usize = 64 * 1024;

/// Reading failed for want of a resource (descriptors, memory), not because the
/// process is gone.
fn starved(errno: Errno) -> bool {
    matches!(errno, Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM)
}

impl Scanner {
    pub fn new(me: i32) -> Scanner {
        let sysconf = |var, otherwise| match sysconf(var) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => otherwise,
        };
        Scanner {
            me,
            my_pgid: getpgrp().as_raw(),
            ticks_per_sec: sysconf(SysconfVar::CLK_TCK, 100),
            page_size: sysconf(SysconfVar::PAGE_SIZE, 4096),
            buf: vec![0; 1024],
            path: Vec::with_capacity(32),
            known: Vec::new(),
            pids: Vec::new(),
            children: Vec::new(),
            children_file: format!("task/{me}/children"),
            dirty: Vec::new(),
            cursor: None,
            loadavg: File::open("/proc/loadavg").ok(),
            proc_dir: open_proc().ok(),
            sweeps: 0,
            reused: 0,
            launchers: Vec::new(),
            blind: None,
        }
    }

    /// Hash the environment of processes whose command line matches `patterns`
    /// (launcher patterns, as `launcher::key` takes them).
    pub fn with_launchers(mut self, patterns: &[String]) -> Scanner {
        self.launchers = patterns.to_vec();
        self
    }

    /// Why the last look's snapshot is incomplete, if it is.
    pub fn blind(&self) -> Option<Blind> {
        self.blind
    }

    /// How many processes the last look took from the one before without reading them.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// Have the next look read these pids' stat, whatever it could take over.
    pub fn reread(&mut self, pids: impl IntoIterator<Item = i32>) {
        self.dirty.extend(pids);
    }

    /// Read `pids`' stat again now: whether each is as the last look has it (the same
    /// process, parent, group, state and program). A decision to end a unit is taken
    /// on this, not on what an incremental look took over unread.
    pub fn confirm(&mut self, pids: &[i32]) -> bool {
        let proc_dir = self.proc_dir.take();
        let proc_fd = proc_dir.as_ref().map(|d| d.as_fd());
        let mut holds = true;
        for &pid in pids {
            let Ok(i) = self.known.binary_search_by_key(&pid, |k| k.pid) else {
                continue; // gone since: nothing to confirm, nothing will be signalled
            };
            if self.known[i].fresh {
                continue; // read by this very look
            }
            let was = self.known[i].stat;
            let now = self.read(proc_fd, pid, "stat").ok().and_then(parse_stat);
            // Running or sleeping is no matter to a decision; having exited is.
            let same = |s: &Stat| {
                (s.start, s.ppid, s.pgid, s.is_zombie(), s.exec_hash)
                    == (
                        was.start,
                        was.ppid,
                        was.pgid,
                        was.is_zombie(),
                        was.exec_hash,
                    )
            };
            if !now.as_ref().is_some_and(same) {
                holds = false;
                break;
            }
        }
        self.proc_dir = proc_dir;
        holds
    }

    /// A full read: every process's stat.
    pub fn scan(&mut self) -> Snapshot {
        self.look(Depth::Full)
    }

    pub fn look(&mut self, depth: Depth) -> Snapshot {
        let now_ms = boottime_ms();
        self.blind = None;
        self.reused = 0;
        let empty = Snapshot {
            me: self.me,
            now_ms,
            ..Snapshot::default()
        };
        if !crate::sys::reserve::ready() {
            // The allocator spent its reserve and cannot take it back: memory is
            // short, and a look is the step that grows with the population.
            self.blind = Some(Blind {
                errno: Errno::ENOMEM,
                unread: 0,
            });
            return empty;
        }
        if self.proc_dir.is_none() {
            match open_proc() {
                Ok(dir) => self.proc_dir = Some(dir),
                Err(errno) => self.blind = Some(Blind { errno, unread: 0 }),
            }
        }
        let mut proc_dir = self.proc_dir.take();
        let result = self.read_tree(proc_dir.as_mut(), now_ms, depth);
        self.proc_dir = proc_dir;
        match result {
            Ok(snapshot) => snapshot,
            Err(errno) => {
                // Out of memory: an empty, blind snapshot, on which nothing is decided;
                // reaping goes on, and the next look reads everything again.
                self.blind = Some(Blind { errno, unread: 0 });
                self.known.clear();
                empty
            }
        }
    }

    /// One look, every allocation that grows with the population made fallibly: at
    /// 5,000 processes a look holds about a megabyte, and under a memory limit a failed
    /// allocation must cost the look, not PID 1.
    fn read_tree(
        &mut self,
        mut proc_dir: Option<&mut Dir>,
        now_ms: u64,
        depth: Depth,
    ) -> Result<Snapshot, Errno> {
        // The cursor before the listing: whatever is forked after it is either listed
        // now, and read as new, or handed out past it, and read next time.
        let cursor = self.loadavg.as_ref().and_then(last_pid);
        let before = std::mem::replace(&mut self.cursor, cursor);
        let full = depth == Depth::Full || before.is_none() || cursor.is_none();
        let sweep = full || depth == Depth::Sweep;
        let turn = self.sweeps;
        // This sweep's slice of the stats (all of them on a full read).
        let swept = |pid: i32| full || (sweep && pid as u64 % STAT_SLICES == turn % STAT_SLICES);
        let mut pids = std::mem::take(&mut self.pids);
        pids.clear();
        if let Some(dir) = proc_dir.as_deref_mut() {
            for entry in dir.iter() {
                match entry {
                    Ok(entry) => {
                        if let Some(pid) = pid_name(entry.file_name().to_bytes()) {
                            push(&mut pids, pid)?;
                        }
                    }
                    Err(errno) => {
                        self.blind = Some(Blind { errno, unread: 0 });
                        break;
                    }
                }
            }
        }
        // procfs lists pids in ascending order, so this finds nothing to do.
        pids.sort_unstable();
        let proc_fd = proc_dir.as_ref().map(|d| d.as_fd());
        let Ok(mut all) = reserved(pids.len()) else {
            self.pids = pids;
            return Err(Errno::ENOMEM);
        };
        let known = std::mem::take(&mut self.known);
        let young_start = now_ms.saturating_sub(YOUNG_MS) * self.ticks_per_sec / 1000;
        // A parent outside the namespace (0) cannot go; any other must still be listed,
        // and as the same process, or the child was reparented. Without our children's
        // list, a child of a zombie not yet reaped goes unseen until the next full read.
        let ours = !full && self.read_children(proc_fd);
        let children = std::mem::take(&mut self.children);
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        let me = self.me;
        let parent_stays = |pid: i32, ppid: i32| {
            let listed = ppid <= 0
                || (pids.binary_search(&ppid).is_ok() && !handed_out(before, cursor, ppid));
            listed && (ppid == me || !ours || children.binary_search(&pid).is_err())
        };
        let (mut unread, mut starved_by, mut k) = (0, None, 0);
        for &pid in &pids {
            if pid == self.me {
                continue;
            }
            while known.get(k).is_some_and(|c| c.pid < pid) {
                k += 1;
            }
            let cached = known.get(k).filter(|c| c.pid == pid);
            if let Some(c) = cached {
                // Another's young process is read on every look: it may setsid or
                // setpgid, and its group decides whether a killpg is safe.
                let settled = !swept(pid)
                    && (c.stat.start < young_start
                        || (c.cmdline.is_some()
                            && now_ms.saturating_sub(c.read_ms) < YOUNG_REREAD_MS))
                    && dirty.binary_search(&pid).is_err()
                    && !handed_out(before, cursor, pid)
                    && parent_stays(pid, c.stat.ppid);
                if settled {
                    all.push(Known {
                        fresh: false,
                        ..c.clone()
                    });
                    self.reused += 1;
                    continue;
                }
            }
            match self.read(proc_fd, pid, "stat") {
                Ok(text) => {
                    if let Some(stat) = parse_stat(text) {
                        // The command line holds while the identity does.
                        let cmdline = cached
                            .filter(|c| {
                                c.stat.start == stat.start && c.stat.exec_hash == stat.exec_hash
                            })
                            .and_then(|c| c.cmdline.clone());
                        all.push(Known {
                            pid,
                            stat,
                            cmdline,
                            fresh: true,
                            read_ms: now_ms,
                        });
                    }
                }
                Err(errno) if starved(errno) => {
                    unread += 1;
                    starved_by = Some(errno);
                }
                Err(_) => {}
            }
        }
        self.pids = pids;
        self.children = children;
        dirty.clear();
        self.dirty = dirty;
        drop(known);
        if let Some(errno) = starved_by {
            self.blind.get_or_insert(Blind { errno, unread });
        }
        let refresh = sweep.then_some(turn % CMDLINE_SLICES);
        if sweep {
            self.sweeps += 1;
        }
        let result = self.snapshot(&mut all, proc_fd, now_ms, refresh);
        // An incomplete look is no base for the next one: only a whole listing tells
        // which processes are gone.
        if self.blind.is_none() && result.is_ok() {
            self.known = all;
        }
        result
    }

    /// The snapshot of our descendants among `all`, reading the command lines it lacks.
    fn snapshot(
        &mut self,
        all: &mut [Known],
        proc_fd: Option<BorrowedFd>,
        now_ms: u64,
        refresh: Option<u64>,
    ) -> Result<Snapshot, Errno> {
        let keep = descendants(self.me, all, |k| (k.pid, k.stat.ppid))?;
        let ours = keep.iter().filter(|&&k| k).count();
        let mut procs = reserved(ours)?;
        let mut shared_groups = reserved(16)?;
        push(&mut shared_groups, self.my_pgid)?;
        for (known, ours) in all.iter_mut().zip(keep) {
            let stat = known.stat;
            if !ours {
                if !stat.is_zombie() {
                    push(&mut shared_groups, stat.pgid)?;
                }
                continue;
            }
            let stale = refresh.is_some_and(|slice| known.pid as u64 % CMDLINE_SLICES == slice);
            let (cmdline, env_hash) = match &known.cmdline {
                Some((text, env)) if !stale && !text.is_empty() => (text.clone(), *env),
                _ => {
                    let read = self.cmdline(proc_fd, known.pid);
                    known.cmdline = Some(read.clone());
                    read
                }
            };
            procs.push(Proc {
                pid: known.pid,
                ppid: stat.ppid,
                pgid: stat.pgid,
                start: stat.start,
                started_ms: stat.start * 1000 / self.ticks_per_sec,
                state: stat.state,
                rss: stat.rss_pages * self.page_size,
                threads: stat.threads,
                cmdline,
                env_hash,
            });
        }
        shared_groups.sort_unstable();
        shared_groups.dedup();
        Ok(Snapshot {
            me: self.me,
            now_ms,
            procs,
            shared_groups,
        })
    }

    /// Our own children, from `ME/task/ME/children`, sorted into `self.children`;
    /// false when the kernel has no such file or it cannot be read.
    fn read_children(&mut self, proc_fd: Option<BorrowedFd>) -> bool {
        let mut children = std::mem::take(&mut self.children);
        children.clear();
        let file = std::mem::take(&mut self.children_file);
        let read = self.read(proc_fd, self.me, &file).map(|text| {
            let pids = text.split(u8::is_ascii_whitespace).filter_map(pid_name);
            children.extend(pids);
        });
        self.children_file = file;
        children.sort_unstable();
        self.children = children;
        read.is_ok()
    }

    /// The command line and environment hash of `pid`, read now.
    fn cmdline(&mut self, proc_fd: Option<BorrowedFd>, pid: i32) -> (Rc<str>, u64) {
        let text = self
            .read(proc_fd, pid, "cmdline")
            .map(join_args)
            .unwrap_or_default();
        let launcher = !self.launchers.is_empty()
            && crate::core::launcher::key(&text, &self.launchers).is_some();
        let env_hash = if launcher {
            self.env_hash(proc_fd, pid)
        } else {
            0
        };
        if self.buf.len() > 4096 {
            // A huge command line or environment once must not keep its buffer for good.
            self.buf = vec![0; 1024];
        }
        (Rc::from(text), env_hash)
    }

    /// Hash of the first `ENVIRON_MAX` bytes of /proc/PID/environ; 0 when it cannot be
    /// read (gone, or not ours to look at): such servers are told apart by their
    /// command line alone, as before.
    fn env_hash(&mut self, proc_fd: Option<BorrowedFd>, pid: i32) -> u64 {
        let Some(proc_fd) = proc_fd else { return 0 };
        self.path.clear();
        push_decimal(&mut self.path, pid.unsigned_abs());
        self.path.extend_from_slice(b"/environ\0");
        let Ok(path) = std::ffi::CStr::from_bytes_with_nul(&self.path) else {
            return 0;
        };
        match read_capped(proc_fd, path, &mut self.buf, ENVIRON_MAX) {
            Ok(len) if len > 0 => hash_bytes(&self.buf[..len]),
            _ => 0,
        }
    }

    /// /proc/PID/FILE, read into the scanner's buffer.
    fn read(&mut self, proc_fd: Option<BorrowedFd>, pid: i32, file: &str) -> Result<&[u8], Errno> {
        let proc_fd = proc_fd.ok_or(Errno::EBADF)?;
        self.path.clear();
        push_decimal(&mut self.path, pid.unsigned_abs());
        self.path.push(b'/');
        self.path.extend_from_slice(file.as_bytes());
        self.path.push(0);
        let path = std::ffi::CStr::from_bytes_with_nul(&self.path).map_err(|_| Errno::EINVAL)?;
        let len = read_at(proc_fd, path, &mut self.buf)?;
        Ok(&self.buf[..len])
    }
}

/// `n` in decimal: the pid part of a path, without the formatting machinery, which
/// costs more than the rest of the path's handling together.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let start = out.len();
    loop {
        out.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out[start..].reverse();
}

/// Read a whole procfs file, `path` relative to `dir` (or absolute), into `buf` (grown
/// when too small); returns the length. procfs hands over the whole file on the first
/// read when the buffer is large enough, so a short read is the end of it.
pub(crate) fn read_at(
    dir: BorrowedFd,
    path: &std::ffi::CStr,
    buf: &mut Vec<u8>,
) -> Result<usize, Errno> {
    let fd = openat(dir, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut file = File::from(fd);
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len().max(512) * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Ok(len),
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    return Ok(len);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }
}

/// Read at most `cap` bytes of a file into `buf` (grown up to `cap`); returns the
/// length. Unlike `read_at` it reads to the end: environ may come a page per read.
fn read_capped(
    dir: BorrowedFd,
    path: &std::ffi::CStr,
    buf: &mut Vec<u8>,
    cap: usize,
) -> Result<usize, Errno> {
    let fd = openat(dir, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut file = File::from(fd);
    let mut len = 0;
    while len < cap {
        if len == buf.len() {
            let want = (buf.len().max(512) * 2).min(cap);
            buf.try_reserve(want - buf.len())
                .map_err(|_| Errno::ENOMEM)?;
            buf.resize(want, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }
    Ok(len)
}

/// FNV-1a, never 0 (0 means "not read").
fn hash_bytes(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    h.max(1)
}

fn open_proc() -> Result<Dir, Errno> {
    Dir::open(
        "/proc",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A /proc entry's name as a pid: plain decimal digits only.
fn pid_name(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name)
        .ok()?
        .parse()
        .ok()
        .filter(|&pid| pid > 0)
}

/// NUL-separated (and NUL-padded) arguments as one space-separated string.
fn join_args(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for arg in raw.split(|&b| b == 0).filter(|a| !a.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&String::from_utf8_lossy(arg));
    }
    out
}

/// A vector with room for `n`, or ENOMEM.
fn reserved<T>(n: usize) -> Result<Vec<T>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Errno::ENOMEM)?;
    Ok(v)
}

/// `v.push(x)`, growing fallibly.
fn push<T>(v: &mut Vec<T>, x: T) -> Result<(), Errno> {
    if v.len() == v.capacity() {
        v.try_reserve(v.len().max(16)).map_err(|_| Errno::ENOMEM)?;
    }
    v.push(x);
    Ok(())
}

/// Which entries of `all` have a parent chain reaching `root`; `link` gives an entry's
/// (pid, ppid).
fn descendants<T>(
    root: i32,
    all: &[T],
    link: impl Fn(&T) -> (i32, i32),
) -> Result<Vec<bool>, Errno> {
    let ppid = |i: usize| link(&all[i]).1;
    // Entries ordered by parent, so the children of a process are one contiguous run.
    let mut by_parent: Vec<usize> = reserved(all.len())?;
    by_parent.extend(0..all.len());
    by_parent.sort_unstable_by_key(|&i| ppid(i));
    let mut keep = reserved(all.len())?;
    keep.resize(all.len(), false);
    let mut stack = reserved(64)?;
    stack.push(root);
    while let Some(parent) = stack.pop() {
        let first = by_parent.partition_point(|&i| ppid(i) < parent);
        for &i in by_parent[first..]
            .iter()
            .take_while(|&&i| ppid(i) == parent)
        {
            // Each entry is taken once, so a /proc race can never make this loop.
            if !keep[i] {
                keep[i] = true;
                push(&mut stack, link(&all[i]).0)?;
            }
        }
    }
    Ok(keep)
}

/// The last pid the kernel handed out in our PID namespace: the last field of
/// /proc/loadavg. It moves on every fork and every new thread, and never otherwise.
pub fn last_pid(loadavg: &File) -> Option<i32> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = loadavg.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_ascii_whitespace().last()?.parse().ok()
}

/// The newest processes: among the pids handed out last (`cursor` and down, at most
/// `4 * n` looked at), up to `n` that are live processes, not threads, as (pid, ppid).
/// What the storm brake reads before a look has: who is forking right now.
pub fn newest(cursor: i32, n: usize) -> Vec<(i32, i32)> {
    let mut out = Vec::with_capacity(n);
    let mut pid = cursor;
    for _ in 0..n.saturating_mul(4) {
        if out.len() >= n || pid <= 1 {
            break;
        }
        if let Some(ppid) = live_process_parent(pid) {
            out.push((pid, ppid));
        }
        pid -= 1;
    }
    out
}

/// The parent of `pid` when `pid` is a live process (not a zombie, not a thread's id),
/// from the first lines of its status: Name (16 bytes at most, escaped), Umask, State,
/// Tgid, Ngid, Pid, PPid, well within 512 bytes.
fn live_process_parent(pid: i32) -> Option<i32> {
    let mut buf = [0u8; 512];
    let text = std::str::from_utf8(read_proc_file(pid, "status", &mut buf)?).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let zombie = field("State:")?.starts_with('Z');
    let tgid: i32 = field("Tgid:")?.parse().ok()?;
    let ppid: i32 = field("PPid:")?.parse().ok()?;
    (!zombie && tgid == pid).then_some(ppid)
}

/// One read of `/proc/PID/FILE` into `buf`, on the stack (procfs makes such a file in
/// one go): what fits of it.
fn read_proc_file<'a>(pid: i32, file: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    use std::io::Write;
    let mut path = [0u8; 48];
    let mut cursor = &mut path[..];
    write!(cursor, "/proc/{pid}/{file}\0").ok()?;
    let path = std::ffi::CStr::from_bytes_until_nul(&path).ok()?;
    let fd = openat(
        AT_FDCWD,
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let len = nix::unistd::read(&fd, buf).ok()?;
    Some(&buf[..len])
}

/// Whether the kernel may have handed `pid` out while its cursor moved from `before`
/// to `now`. It hands pids out cyclically, so those are the ones past `before` up to
/// `now`, across the wrap when `now` is behind. Unknown cursors: any pid may be new.
pub(crate) fn handed_out(before: Option<i32>, now: Option<i32>, pid: i32) -> bool {
    match (before, now) {
        (Some(before), Some(now)) if before <= now => before < pid && pid <= now,
        (Some(before), Some(now)) => pid > before || pid <= now,
        _ => true,
    }
}

/// CLOCK_BOOTTIME in milliseconds: the clock /proc start times are measured on.
pub fn boottime_ms() -> u64 {
    // Fails only for a clock the kernel lacks (BOOTTIME is there since 2.6.39).
    clock_gettime(ClockId::CLOCK_BOOTTIME).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000
    })
}

/// `who` still runs: the same process (its start time), not a zombie.
pub fn is_alive(who: ProcId) -> bool {
    stat_of(who.pid).is_some_and(|s| s.start == who.start && !s.is_zombie())
}

/// Read one process's stat, for identity checks right before a signal. On the stack:
/// a storm signals thousands of processes a second.
pub fn stat_of(pid: i32) -> Option<Stat> {
    // The fields we need come well within the first 2 KiB whatever the rest holds.
    let mut buf = [0u8; 2048];
    parse_stat(read_proc_file(pid, "stat", &mut buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_title_and_argv_forms() {
        assert_eq!(join_args(b"npm exec @x/y\0\0\0\0\0\0"), "npm exec @x/y");
        assert_eq!(
            join_args(b"node\0/usr/bin/npx\0-y\0@x/y\0"),
            "node /usr/bin/npx -y @x/y"
        );
        assert_eq!(join_args(b""), "");
    }

    #[test]
    fn environ_is_read_up_to_the_cap_and_hashed() {
        let proc_dir = open_proc().unwrap();
        let path = c"self/environ";
        let mut buf = vec![0; 8];
        let whole = read_capped(proc_dir.as_fd(), path, &mut buf, ENVIRON_MAX).unwrap();
        let expected = std::fs::read("/proc/self/environ").unwrap();
        assert_eq!(&buf[..whole], &expected[..whole.min(ENVIRON_MAX)]);
        let mut small = Vec::new();
        let len = read_capped(proc_dir.as_fd(), path, &mut small, 16).unwrap();
        assert_eq!(len, 16.min(whole));
        assert!(small.len() <= 16, "the buffer grew past the cap");
        assert_ne!(hash_bytes(b"TOKEN=a\0"), hash_bytes(b"TOKEN=b\0"));
        assert_ne!(hash_bytes(b""), 0, "0 is kept for unread");
        assert_eq!(
            read_capped(proc_dir.as_fd(), c"999999999/environ", &mut small, 16),
            Err(Errno::ENOENT)
        );
    }

    #[test]
    fn the_cursor_tells_which_pids_may_be_new() {
        // (cursor before, cursor now, pid, may be new)
        let cases = [
            (Some(100), Some(100), 100, false), // nothing forked
            (Some(100), Some(100), 50, false),
            (Some(100), Some(120), 101, true),
            (Some(100), Some(120), 120, true),
            (Some(100), Some(120), 121, false),
            (Some(100), Some(120), 100, false),
            (Some(30000), Some(310), 30001, true), // wrapped past pid_max
            (Some(30000), Some(310), 305, true),
            (Some(30000), Some(310), 311, false),
            (Some(30000), Some(310), 29999, false),
            (None, Some(5), 3, true), // no cursor: anything may be new
            (Some(5), None, 3, true),
        ];
        for (before, now, pid, new) in cases {
            assert_eq!(
                handed_out(before, now, pid),
                new,
                "{before:?} -> {now:?}: {pid}"
            );
        }
    }

    #[test]
    fn loadavg_ends_with_the_last_pid() {
        let loadavg = File::open("/proc/loadavg").unwrap();
        let before = last_pid(&loadavg).expect("the cursor is readable");
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let after = last_pid(&loadavg).unwrap();
        let _ = child.wait_with_output();
        assert!(
            handed_out(Some(before), Some(after), pid),
            "{before} -> {after}: {pid}"
        );
    }

    #[test]
    fn the_newest_processes_are_read_with_their_parents_and_threads_left_out() {
        let loadavg = File::open("/proc/loadavg").unwrap();
        let mut children: Vec<std::process::Child> = (0..3)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("5")
                    .spawn()
                    .unwrap()
            })
            .collect();
        // A thread of ours, newer than the children: its id is no process.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || rx.recv().ok());
        let cursor = last_pid(&loadavg).unwrap();
        let newest = newest(cursor, 256);
        let me = std::process::id() as i32;
        for child in &children {
            let pid = child.id() as i32;
            assert!(newest.contains(&(pid, me)), "{pid} in {newest:?}");
        }
        assert!(newest
            .iter()
            .all(|&(pid, ppid)| live_process_parent(pid) == Some(ppid)));
        tx.send(()).unwrap();
        thread.join().unwrap();
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A process with parent `ppid`, the only field descendants() reads.
    fn stat(ppid: i32) -> Stat {
        Stat {
            ppid,
            pgid: 0,
            sid: 0,
            state: b'S',
            start: 0,
            rss_pages: 0,
            threads: 1,
            exec_hash: 0,
        }
    }

    #[test]
    fn descendants_follow_parent_links_only() {
        let all = [(2, stat(1)), (3, stat(2)), (4, stat(9)), (5, stat(3))];
        let keep = descendants(1, &all, |&(pid, s)| (pid, s.ppid)).unwrap();
        let found: Vec<_> = all
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(p, _)| p.0)
            .collect();
        assert_eq!(found, [2, 3, 5]);
    }

    #[test]
    fn descendants_end_on_a_racy_parent_cycle() {
        // A pid listed twice across a reparenting: 2 -> 3 -> 2 again.
        let all = [(2, stat(1)), (3, stat(2)), (2, stat(3))];
        assert_eq!(
            descendants(1, &all, |&(pid, s)| (pid, s.ppid)).unwrap(),
            [true, true, true]
        );
    }
}
