//! Which server instances are in use: the time of each one's last input, from the read
//! counters of its leaf processes (`/proc/PID/io`). Pure: the counters and the clock
//! come in, the last input instant goes out; the effect layer does the reading.
//!
//! What counts as input. A stdio MCP server reads each request from its fd 0 in one
//! `read` of a few hundred bytes, so `rchar`/`syscr` grow by that on every request, and
//! stay exactly flat while the instance is idle (MetaMCP never pings). Two things grow
//! them without a request:
//! - start-up: a Node leaf reads ~240 kB of modules in its first second (measured:
//!   `node -e` idle, 8 kB → 250 kB, then flat), the launcher's handshake follows, and a
//!   one-off burst of 8-byte eventfd reads comes 10–15 s after start. Growth while the
//!   leaf is younger than `STARTUP_MS` is therefore not input.
//! - later eventfd wake-ups (8 bytes per read) and failed reads (EAGAIN: a syscall, no
//!   bytes): growth is input only when it averages more than `EVENTFD_READ` bytes per
//!   read call. No JSON-RPC message is that short (`{"jsonrpc":"2.0","id":1,
//!   "method":"ping"}` alone is 40 bytes).
//!
//! Ignoring the start-up window cannot make an instance in use look idle for long: what
//! an instance did before some look is unknown, so it counts as idle only from its
//! first look on. `idle_since` is the later of its last input and that first look, and
//! the first look at a leaf falls within its start-up window or later.

use std::collections::HashMap;

/// The bytes of one eventfd read: growth at or below this per read call is not input.
pub const EVENTFD_READ: u64 = 8;
/// Growth while the leaf is younger than this is start-up, not input: module loading
/// and the launcher's handshake, done in the first second or two. (The eventfd burst at
/// 10–15 s is 8 bytes per read, which `EVENTFD_READ` discounts at any age.) Short, since
/// a session's first requests to an instance made for it fall in this window too.
pub const STARTUP_MS: u64 = 5_000;

/// The read and write counters of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    pub rchar: u64,
    pub syscr: u64,
    pub wchar: u64,
    pub syscw: u64,
}

/// The counters from the text of `/proc/PID/io`; None when one is missing.
pub fn parse_io(text: &[u8]) -> Option<Io> {
    let [mut rchar, mut syscr, mut wchar, mut syscw] = [None; 4];
    for line in text.split(|&b| b == b'\n') {
        let field = |name: &[u8]| {
            let rest = line.strip_prefix(name)?.strip_prefix(b": ")?;
            std::str::from_utf8(rest).ok()?.trim().parse::<u64>().ok()
        };
        rchar = rchar.or_else(|| field(b"rchar"));
        syscr = syscr.or_else(|| field(b"syscr"));
        wchar = wchar.or_else(|| field(b"wchar"));
        syscw = syscw.or_else(|| field(b"syscw"));
    }
    Some(Io {
        rchar: rchar?,
        syscr: syscr?,
        wchar: wchar?,
        syscw: syscw?,
    })
}

/// Whether the reads from `before` to `after` can be a request rather than eventfd
/// wake-ups or failed reads. Counters that went down belong to another process (a
/// reused pid): not input, the caller starts over.
pub fn is_input(before: Io, after: Io) -> bool {
    let bytes = after.rchar.saturating_sub(before.rchar);
    let calls = after.syscr.saturating_sub(before.syscr);
    bytes > EVENTFD_READ * calls
}

/// Whether the writes from `before` to `after` can be an answer: more than an eventfd
/// write (8 bytes, libuv's wake-ups) per call. A request gets a response of 50 bytes or
/// more; a server that only polls a file reads without answering.
pub fn is_answer(before: Io, after: Io) -> bool {
    let bytes = after.wchar.saturating_sub(before.wchar);
    let calls = after.syscw.saturating_sub(before.syscw);
    bytes > EVENTFD_READ * calls
}

/// What is known of one unit's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    /// When input was last seen (ms, CLOCK_BOOTTIME); None: none seen since watched.
    pub last_input_ms: Option<u64>,
    /// When mcpinit first read its counters.
    pub watched_since_ms: u64,
    /// The process whose reads were last counted as input (for `status`).
    pub from: Option<i32>,
}

impl Use {
    /// Idle since: the last input, or the first look when none was seen.
    pub fn idle_since_ms(&self) -> u64 {
        self.last_input_ms
            .map_or(self.watched_since_ms, |t| t.max(self.watched_since_ms))
    }

    /// The later of two views, for a unit with several leaves.
    fn merge(self, other: Use) -> Use {
        let later = if other.last_input_ms > self.last_input_ms {
            other
        } else {
            self
        };
        Use {
            last_input_ms: later.last_input_ms,
            watched_since_ms: self.watched_since_ms.max(other.watched_since_ms),
            from: later.from,
        }
    }
}

/// One watched process: identity, counters at the last look, and what they told.
#[derive(Debug, Clone)]
struct Watched {
    start: u64,
    io: Io,
    seen: Use,
    /// When `io` was read.
    read_ms: u64,
    /// The sample at which it was last read: what was not read at the latest is gone.
    round: u64,
    /// It read, but wrote no answer, by the last look: the answer may come by the next.
    unanswered: bool,
}

/// The start-up window for an idle time: `STARTUP_MS`, but never more than a quarter
/// of the idle time. An instance counts as idle only from its first look, so it is
/// kept for the idle time in any case; the window must end early enough within it for
/// the next looks to see the input of an instance in use before it could be ended.
pub fn startup_ms(idle_ms: u64) -> u64 {
    STARTUP_MS.min(idle_ms / 4)
}

/// Counters of the leaves of watched units, kept between looks.
#[derive(Debug)]
pub struct Tracker {
    /// Growth while a leaf is younger than this is start-up (see `startup_ms`).
    startup_ms: u64,
    procs: HashMap<i32, Watched>,
    round: u64,
    /// When the last sample was taken (ms, CLOCK_BOOTTIME).
    pub sampled_ms: Option<u64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(STARTUP_MS)
    }
}

impl Tracker {
    pub fn new(startup_ms: u64) -> Tracker {
        Tracker {
            startup_ms,
            procs: HashMap::new(),
            round: 0,
            sampled_ms: None,
        }
    }

    /// Start a sample at `now_ms`; every `observe` until the next `finish` belongs to it.
    pub fn begin(&mut self, now_ms: u64) {
        self.round += 1;
        self.sampled_ms = Some(now_ms);
    }

    /// The counters of process `pid` (identity `start`, started at `started_ms`) read
    /// at `now_ms`, or None when they could not be read. Returns what is known of it.
    pub fn observe(
        &mut self,
        pid: i32,
        start: u64,
        started_ms: u64,
        io: Option<Io>,
        now_ms: u64,
    ) -> Use {
        let round = self.round;
        let Some(io) = io else {
            // Unreadable (no rights, or gone): nothing can say it is idle, so it
            // counts as just used; the entry is dropped to start over when readable.
            self.procs.remove(&pid);
            return Use {
                last_input_ms: Some(now_ms),
                watched_since_ms: now_ms,
                from: Some(pid),
            };
        };
        let fresh = Watched {
            start,
            io,
            seen: Use {
                last_input_ms: None,
                watched_since_ms: now_ms,
                from: None,
            },
            read_ms: now_ms,
            round,
            unanswered: false,
        };
        let entry = self.procs.entry(pid).or_insert_with(|| fresh.clone());
        let reused = entry.start != start || io.rchar < entry.io.rchar || io.syscr < entry.io.syscr;
        if reused {
            *entry = fresh;
        } else if entry.read_ms.saturating_sub(started_ms) >= self.startup_ms {
            // Only growth since a look taken after start-up: a look during it is a
            // baseline, whatever start-up reads still come after it. Input is a read
            // answered by a write, in this interval or (a request late in the last
            // one) the next: reads alone are a server polling a file.
            let read = is_input(entry.io, io);
            let answered = is_answer(entry.io, io);
            if answered && (read || entry.unanswered) {
                entry.seen.last_input_ms = Some(now_ms);
                entry.seen.from = Some(pid);
            }
            entry.unanswered = read && !answered;
        }
        entry.io = io;
        entry.read_ms = now_ms;
        entry.round = round;
        entry.seen
    }

    /// Forget processes not observed in the current sample: they are gone, or no
    /// longer leaves of a watched unit (a new leaf starts a fresh watch).
    pub fn finish(&mut self) {
        let round = self.round;
        self.procs.retain(|_, w| w.round == round);
    }

    /// What is known of process `pid` (identity `start`), if it is watched.
    pub fn get(&self, pid: i32, start: u64) -> Option<Use> {
        self.procs
            .get(&pid)
            .filter(|w| w.start == start)
            .map(|w| w.seen)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

/// A unit's use from that of its leaves: the latest of each, so any leaf's input
/// counts for the whole instance.
pub fn unit_use(leaves: impl IntoIterator<Item = Use>) -> Option<Use> {
    leaves.into_iter().reduce(Use::merge)
}

/// What a descriptor of a watched process refers to, from its `/proc/PID/fd/N` link:
/// only sockets and pipes can carry a server's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object {
    Socket(u64),
    Pipe(u64),
}

/// The object a `/proc/PID/fd/N` link names (`socket:[INODE]`, `pipe:[INODE]`), if any.
pub fn object(link: &[u8]) -> Option<Object> {
    let inode = |prefix: &[u8]| -> Option<u64> {
        let digits = link.strip_prefix(prefix)?.strip_suffix(b"]")?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    inode(b"socket:[")
        .map(Object::Socket)
        .or_else(|| inode(b"pipe:[").map(Object::Pipe))
}

/// One member of a watched unit as its descriptors were read: the sockets and pipes it
/// holds, by descriptor, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub pid: i32,
    pub held: Vec<(i32, Object)>,
}

/// Whose read counters tell a unit's input (`members` top first), and what that input
/// is. The input is what fd 0 of the highest member with a socket or pipe there names:
/// the gateway's end, which `npm exec`, `sh` and `uv` pass down. Its readers are every
/// member that holds it at any descriptor, whatever the tree's shape: the server below
/// a launcher, a Python server that moved it to fd 6 or 7 (mcp 2.x puts /dev/null at
/// fd 0), a server with a helper child of its own. Launchers hold it too; their own
/// reads are 8-byte eventfd wake-ups, which `is_input` discounts. None when no member
/// has a socket or pipe at fd 0 (stdin from /dev/null or a terminal): the caller falls
/// back to the unit's leaves.
pub fn readers(members: &[Holding]) -> Option<(Object, Vec<i32>)> {
    let input = members
        .iter()
        .find_map(|m| m.held.iter().find(|(fd, _)| *fd == 0).map(|&(_, o)| o))?;
    let pids = members
        .iter()
        .filter(|m| m.held.iter().any(|&(_, o)| o == input))
        .map(|m| m.pid)
        .collect();
    Some((input, pids))
}

#[cfg(test)]
#[path = "activity_tests.rs"]
mod tests;
