//! What a look at /proc yields, as plain values: processes, their stat fields, the
//! snapshot of mcpinit's descendants, how deep a look reads and when it was blind.
//! Parsing is here too (a stat line is text in, fields out); reading is in sys::procfs.

use nix::errno::Errno;
use std::rc::Rc;
/// A process as mcpinit knows it: its pid and its start time (clock ticks since boot).
/// A pid alone may be reused; the pair names one process for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// Start time in clock ticks since boot: with the pid, the process's identity.
    pub start: u64,
    /// Start time in milliseconds since boot, for ages.
    pub started_ms: u64,
    pub state: u8,
    pub rss: u64,
    /// Its threads: what the kernel's pids limit counts (a node process has about 11).
    pub threads: u32,
    /// Arguments joined by spaces (npm's title form is already one string).
    pub cmdline: Rc<str>,
    /// Hash of the environment it was started with (`/proc/PID/environ`, its first
    /// `ENVIRON_MAX` bytes), read only for a launcher's command line, else 0 (also when
    /// it may not be read): two servers run by one command line with different
    /// environments (two accounts of one server) are different servers.
    pub env_hash: u64,
}

impl Proc {
    pub fn id(&self) -> ProcId {
        ProcId {
            pid: self.pid,
            start: self.start,
        }
    }

    pub fn is_zombie(&self) -> bool {
        is_dead(self.state)
    }
}

/// A process in state Z (zombie) or X (being torn down) has exited: it only waits to be
/// reaped, and is neither counted nor signalled.
fn is_dead(state: u8) -> bool {
    state == b'Z' || state == b'X'
}

/// pgid 0 means the group's leader is outside our PID namespace, and 1 is the group of
/// the namespace's init: neither is a process group of ours to signal or to unit by.
pub fn foreign_pgid(pgid: i32) -> bool {
    pgid <= 1
}

/// mcpinit's descendants at one moment, sorted by pid.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub me: i32,
    /// CLOCK_BOOTTIME in milliseconds when the scan started (same clock as `started_ms`).
    pub now_ms: u64,
    pub procs: Vec<Proc>,
    /// Process groups that also hold live processes outside mcpinit's tree (mcpinit's
    /// own group among them), sorted: a `docker exec` session's shell, say. Such a
    /// group is never signalled as a whole.
    pub shared_groups: Vec<i32>,
}

impl Snapshot {
    /// Signalling `-pgid` would reach only processes of ours: a group of our namespace
    /// with no member outside our tree.
    pub fn group_is_ours(&self, pgid: i32) -> bool {
        !foreign_pgid(pgid) && self.shared_groups.binary_search(&pgid).is_err()
    }

    /// The live processes' threads: what the kernel's pids limit (`pids.max`) counts.
    pub fn tasks(&self) -> u64 {
        let live = self.procs.iter().filter(|p| !p.is_zombie());
        live.map(|p| u64::from(p.threads.max(1))).sum()
    }

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
    pub threads: u32,
    /// Hash of `comm` and of where the arguments live (`arg_start`, `arg_end`): a new
    /// title changes the first, an exec (a new stack) the second, and either way the
    /// cached cmdline is read again.
    pub exec_hash: u64,
}

impl Stat {
    pub fn is_zombie(&self) -> bool {
        is_dead(self.state)
    }
}

/// The kernel writes at most this many bytes of `comm` into stat (15 for a user
/// process, up to 63 for a kernel worker).
const COMM_MAX: usize = 64;

/// Parse /proc/PID/stat. `comm` may hold spaces and parentheses, so it ends at the last
/// ')' of the line. Nothing after `comm` can hold a ')', so that is also the last one
/// within `COMM_MAX` of the '(' — looked for there first, which spares a walk back over
/// the whole line, and over the whole line only if that does not parse.
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let last_paren = |within: &[u8]| within.iter().rposition(|&b| b == b')');
    let near = last_paren(&text[..text.len().min(open + 2 + COMM_MAX)]);
    if let Some(stat) = near.and_then(|close| parse_fields(text, open, close)) {
        return Some(stat);
    }
    let close = last_paren(text)?;
    if Some(close) == near {
        return None;
    }
    parse_fields(text, open, close)
}

/// The fields of a stat line whose `comm` is between `open` and `close`.
fn parse_fields(text: &[u8], open: usize, close: usize) -> Option<Stat> {
    let comm = text.get(open + 1..close)?;
    let mut fields = text.get(close + 2..)?.split(|&b| b == b' ');
    let state = *fields.next()?.first()?;
    let mut number = |skip: usize| -> Option<i64> { decimal(fields.nth(skip)?) };
    let ppid = number(0)? as i32;
    let pgid = number(0)? as i32;
    let sid = number(0)? as i32;
    let threads = number(13)?.clamp(0, u32::MAX as i64) as u32; // field 20
    let start = number(1)? as u64; // field 22
    let rss_pages = number(1)?.max(0) as u64; // field 24

    // Fields 48 and 49, absent before Linux 3.5 and 0 where we may not look: then the
    // comm alone has to tell.
    let args = [number(23).unwrap_or(0), number(0).unwrap_or(0)];
    let fnv = |h: u64, b: u8| (h ^ b as u64).wrapping_mul(0x100000001b3);
    let exec_hash = comm
        .iter()
        .copied()
        .chain(args.iter().flat_map(|a| a.to_le_bytes()))
        .fold(0xcbf29ce484222325u64, fnv);
    Some(Stat {
        ppid,
        pgid,
        sid,
        state,
        start,
        rss_pages,
        threads,
        exec_hash,
    })
}

/// A decimal field of /proc/PID/stat, possibly negative; None if it is anything else.
fn decimal(field: &[u8]) -> Option<i64> {
    let (sign, digits) = match field.split_first()? {
        (b'-', rest) => (-1, rest),
        _ => (1, field),
    };
    if digits.is_empty() {
        return None;
    }
    digits
        .iter()
        .try_fold(0i64, |n, &b| {
            let digit = (b as char).to_digit(10)? as i64;
            n.checked_mul(10)?.checked_add(digit)
        })
        .map(|n| sign * n)
}

/// How much of /proc a look reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every process's stat: exact, whatever happened since the last look.
    Full,
    /// Only what can have changed without a fork or an exit showing: new pids, the
    /// children of gone ones, young processes; the rest comes from the last look.
    Incremental,
    /// The periodic safety net: an incremental look that also reads again the stat of
    /// one slice of the processes, and the command line of another, for what changes
    /// unseen (an exec late in a process's life, a zombie its parent keeps, a pid space
    /// wrapped within one look, a title set in place); slice by slice, every process
    /// is read again within a few sweeps (`sys::procfs`).
    Sweep,
}

/// A look that could not see every process: it ran out of a resource, so its snapshot
/// is incomplete and must not be read as "nothing is running".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blind {
    pub errno: Errno,
    /// Processes whose stat could not be read for lack of the resource (0 when /proc
    /// itself could not be listed).
    pub unread: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_comm() {
        let line = b"42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 11 0 123456 1000 250 18446744073709551615\n";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.ppid, s.pgid, s.sid, s.state), (1, 42, 42, b'S'));
        assert_eq!((s.start, s.rss_pages, s.threads), (123456, 250, 11));
    }

    #[test]
    fn an_exec_keeping_the_comm_still_changes_the_identity() {
        // The same process (pid, start time, comm) before and after exec: only the
        // addresses of its arguments (fields 48 and 49) differ.
        let line = |args: &str| {
            format!(
                "9 (node) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 3 1 1 1 1 1 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 {args} 0 0 0\n"
            )
        };
        let before = parse_stat(line("140720000000000 140720000000100").as_bytes()).unwrap();
        let after = parse_stat(line("140730000000000 140730000000020").as_bytes()).unwrap();
        assert_eq!((before.start, after.start), (500, 500));
        assert_ne!(before.exec_hash, after.exec_hash);
        let again = parse_stat(line("140720000000000 140720000000100").as_bytes()).unwrap();
        assert_eq!(before.exec_hash, again.exec_hash);
    }

    #[test]
    fn stat_with_comm_longer_than_the_kernel_writes() {
        // Not produced by today's kernels: the near search finds the ')' inside the
        // name, what follows does not parse, and the whole line is searched.
        let comm = format!("x) {}", "w".repeat(70));
        let line = format!("7 ({comm}) S 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 3 1\n");
        let s = parse_stat(line.as_bytes()).unwrap();
        assert_eq!((s.ppid, s.state, s.start, s.rss_pages), (2, b'S', 99, 3));
    }

    #[test]
    fn stat_numbers_are_plain_decimals() {
        assert_eq!(decimal(b"-1"), Some(-1));
        assert_eq!(decimal(b"4194304"), Some(4194304));
        assert_eq!(decimal(b"12a"), None);
        assert_eq!(decimal(b"-"), None);
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"18446744073709551615"), None);
    }

    #[test]
    fn stat_truncated_is_none() {
        assert!(parse_stat(b"42 (sh) S 1 42").is_none());
        assert!(parse_stat(b"").is_none());
        assert!(parse_stat(b"42 sh S").is_none());
    }
}
