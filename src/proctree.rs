//! /proc -> Snapshot: every descendant of mcpinit with what the policy needs.
//! A process that vanishes or cannot be read mid-scan is skipped: it is either gone
//! (its parent or we reap it) or will be seen on the next scan.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Start time in clock ticks since boot: with the pid, the process's identity.
    pub start: u64,
    /// Start time in milliseconds since boot, for ages.
    pub started_ms: u64,
    pub state: u8,
    pub rss: u64,
    /// Arguments joined by spaces (npm's title form is already one string).
    pub cmdline: Rc<str>,
}

impl Proc {
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z' || self.state == b'X'
    }
}

/// mcpinit's descendants at one moment, sorted by pid.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub me: i32,
    /// CLOCK_BOOTTIME in milliseconds when the scan started (same clock as `started_ms`).
    pub now_ms: u64,
    pub procs: Vec<Proc>,
}

impl Snapshot {
    pub fn get(&self, pid: i32) -> Option<&Proc> {
        self.procs
            .binary_search_by_key(&pid, |p| p.pid)
            .ok()
            .map(|i| &self.procs[i])
    }
}

/// Fields of /proc/PID/stat, parsed.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub state: u8,
    pub start: u64,
    pub rss_pages: u64,
    /// Hash of `comm`: a changed comm means an exec or a new title, so cmdline is re-read.
    comm_hash: u64,
}

/// Parse /proc/PID/stat. `comm` may hold spaces and parentheses, so split at the last ')'.
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let comm = text.get(open + 1..close)?;
    let rest = std::str::from_utf8(text.get(close + 2..)?).ok()?;
    let mut fields = rest.split(' ');
    let state = *fields.next()?.as_bytes().first()?;
    let mut number = |skip: usize| -> Option<i64> { fields.nth(skip)?.parse().ok() };
    let ppid = number(0)? as i32;
    let pgid = number(0)? as i32;
    let sid = number(0)? as i32;
    let start = number(15)? as u64; // field 22
    let rss_pages = number(1)?.max(0) as u64; // field 24
    let comm_hash = comm.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    Some(Stat {
        ppid,
        pgid,
        sid,
        state,
        start,
        rss_pages,
        comm_hash,
    })
}

/// Reads /proc repeatedly, re-reading a cmdline only for a new process or a new comm.
pub struct Scanner {
    me: i32,
    ticks_per_sec: u64,
    page_size: u64,
    buf: Vec<u8>,
    path: String,
    cmdlines: HashMap<(i32, u64), (u64, Rc<str>)>,
}

impl Scanner {
    pub fn new(me: i32) -> Scanner {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Scanner {
            me,
            ticks_per_sec: if ticks > 0 { ticks as u64 } else { 100 },
            page_size: if page > 0 { page as u64 } else { 4096 },
            buf: Vec::with_capacity(1024),
            path: String::with_capacity(32),
            cmdlines: HashMap::new(),
        }
    }

    pub fn scan(&mut self) -> Snapshot {
        let now_ms = boottime_ms();
        let mut all: Vec<(i32, Stat)> = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if pid == self.me {
                    continue;
                }
                if let Some(stat) = self.read(pid, "stat").and_then(parse_stat) {
                    all.push((pid, stat));
                }
            }
        }
        let keep = descendants(self.me, &all);
        let mut procs = Vec::with_capacity(keep.len());
        let mut seen = HashMap::with_capacity(keep.len());
        for (pid, stat) in all.into_iter().filter(|(pid, _)| keep.contains(pid)) {
            let cmdline = self.cmdline(pid, &stat);
            seen.insert((pid, stat.start), (stat.comm_hash, cmdline.clone()));
            procs.push(Proc {
                pid,
                ppid: stat.ppid,
                pgid: stat.pgid,
                sid: stat.sid,
                start: stat.start,
                started_ms: stat.start * 1000 / self.ticks_per_sec,
                state: stat.state,
                rss: stat.rss_pages * self.page_size,
                cmdline,
            });
        }
        self.cmdlines = seen;
        procs.sort_unstable_by_key(|p| p.pid);
        Snapshot {
            me: self.me,
            now_ms,
            procs,
        }
    }

    fn cmdline(&mut self, pid: i32, stat: &Stat) -> Rc<str> {
        if let Some((hash, cmdline)) = self.cmdlines.get(&(pid, stat.start)) {
            if *hash == stat.comm_hash && !cmdline.is_empty() {
                return cmdline.clone();
            }
        }
        let text = self.read(pid, "cmdline").map(join_args).unwrap_or_default();
        Rc::from(text)
    }

    fn read(&mut self, pid: i32, file: &str) -> Option<&[u8]> {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/{file}");
        self.buf.clear();
        File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut self.buf))
            .ok()?;
        Some(&self.buf)
    }
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

/// Pids whose parent chain reaches `root`.
fn descendants(root: i32, all: &[(i32, Stat)]) -> std::collections::HashSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::with_capacity(all.len());
    for (pid, stat) in all {
        children.entry(stat.ppid).or_default().push(*pid);
    }
    let mut found = std::collections::HashSet::with_capacity(all.len());
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            // A pid seen twice would be a /proc race; never loop on it.
            if found.insert(child) {
                stack.push(child);
            }
        }
    }
    found
}

/// CLOCK_BOOTTIME in milliseconds: the clock /proc start times are measured on.
pub fn boottime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Read one process's stat, for identity checks right before a signal.
pub fn stat_of(pid: i32) -> Option<Stat> {
    let mut buf = Vec::with_capacity(512);
    File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read_to_end(&mut buf))
        .ok()?;
    parse_stat(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_comm() {
        let line = b"42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 250 18446744073709551615\n";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.ppid, s.pgid, s.sid, s.state), (1, 42, 42, b'S'));
        assert_eq!((s.start, s.rss_pages), (123456, 250));
    }

    #[test]
    fn stat_truncated_is_none() {
        assert!(parse_stat(b"42 (sh) S 1 42").is_none());
        assert!(parse_stat(b"").is_none());
        assert!(parse_stat(b"42 sh S").is_none());
    }

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
    fn descendants_follow_parent_links_only() {
        let stat = |ppid| Stat {
            ppid,
            pgid: 0,
            sid: 0,
            state: b'S',
            start: 0,
            rss_pages: 0,
            comm_hash: 0,
        };
        let all = [(2, stat(1)), (3, stat(2)), (4, stat(9)), (5, stat(3))];
        let mut found: Vec<_> = descendants(1, &all).into_iter().collect();
        found.sort();
        assert_eq!(found, [2, 3, 5]);
    }
}
