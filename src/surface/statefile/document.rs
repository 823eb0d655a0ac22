//! The state document's schema, once: the loop serializes it (`statefile::write`) and
//! `status` / `health` deserialize it (`status::load`). Field names are a public
//! interface (docs/status-and-health.md): scripts read them with jq.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The whole document. `P` is the process list: the writer streams it from the loop's
/// snapshot (`view::Rows`), the reader gets a `Vec<Row>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document<P> {
    pub pid: i32,
    pub version: String,
    pub started_unix_ms: u64,
    /// When this file was written.
    pub updated_unix_ms: u64,
    /// When the processes listed were seen (the heartbeat rewrites without a new scan);
    /// None before the first scan.
    pub snapshot_unix_ms: Option<u64>,
    /// None once the main child has exited.
    pub main_pid: Option<i32>,
    pub settings: Settings,
    pub cgroup: Cgroup,
    pub counters: Counters,
    pub live: u64,
    /// Their tasks (threads), as the kernel's pids limit counts them. Absent from files
    /// of earlier versions.
    #[serde(default)]
    pub tasks: u64,
    pub rss: u64,
    /// Set while scans cannot see every process (file descriptors or memory ran out):
    /// `live` is then not to be trusted, and health fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blind: Option<Blindness>,
    pub processes: P,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blindness {
    /// `EMFILE`, `ENFILE` or `ENOMEM`.
    pub errno: String,
    /// Processes whose stat could not be read (0: /proc itself could not be listed).
    pub unread: u64,
}

impl<P> Document<P> {
    /// The same document with another process list: `health` judges the rest alone, so
    /// the metrics endpoint's /healthz needs no rows to give its verdict.
    pub fn with_processes<Q>(self, processes: Q) -> Document<Q> {
        Document {
            pid: self.pid,
            version: self.version,
            started_unix_ms: self.started_unix_ms,
            updated_unix_ms: self.updated_unix_ms,
            snapshot_unix_ms: self.snapshot_unix_ms,
            main_pid: self.main_pid,
            settings: self.settings,
            cgroup: self.cgroup,
            counters: self.counters,
            live: self.live,
            tasks: self.tasks,
            rss: self.rss,
            blind: self.blind,
            processes,
        }
    }
}

/// The document as `status` and `health` read it.
pub type State = Document<Vec<Row<'static>>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub max_procs: u64,
    pub max_memory: u64,
    /// The launcher patterns joined by `,`, or `off`.
    pub dedupe: String,
    pub dedupe_keep: u64,
    pub dedupe_idle_ms: u64,
    /// `term` or `keep`.
    pub orphans: String,
    pub kill_grace_ms: u64,
    pub stop_grace_ms: u64,
    pub scan_interval_ms: u64,
    pub dry_run: bool,
    /// Close input, wait this long, then SIGTERM; 0 = no close-input step. Absent from
    /// files of earlier versions.
    #[serde(default)]
    pub eof_grace_ms: u64,
    /// How inputs are closed here: `pidfd`, `ptrace`, `none`, or `unprobed` (no
    /// termination needed it yet); and whether the exit step can be taken. Absent from
    /// files of earlier versions.
    #[serde(default)]
    pub input_route: String,
    #[serde(default)]
    pub exit_step: bool,
    /// What refused the routes not taken.
    #[serde(default)]
    pub route_refused: String,
}

/// The container's own limits as read at start; None = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cgroup {
    pub pids_max: Option<u64>,
    pub memory_max: Option<u64>,
}

/// What the loop counts as it goes. Flat here (the loop bumps one field at a time);
/// the document nests the terminations by reason, see `CountersDoc`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "CountersDoc", into = "CountersDoc")]
pub struct Counters {
    pub zombies_reaped: u64,
    pub signals_forwarded: u64,
    pub terminated_duplicate: u64,
    pub terminated_orphan: u64,
    pub terminated_cap: u64,
    pub terminated_memory: u64,
    pub escalations: u64,
    /// How terminations ended: the unit gone within the EOF grace, after SIGTERM, after
    /// SIGKILL.
    pub ended_eof: u64,
    /// Made to exit 0 by the exit step after ignoring EOF.
    pub ended_exit: u64,
    pub ended_term: u64,
    pub ended_kill: u64,
    /// Terminations whose input could not be closed (the `eof_fallback` line).
    pub eof_fallbacks: u64,
    /// Instances a gateway still tracked that mcpinit had to signal: each one is a
    /// crash to a gateway that counts signal deaths as MetaMCP does.
    pub crashes: u64,
    /// Instances a gateway tracks that dedupe or the idle rule would have ended but
    /// could not end cleanly, left alone instead.
    pub spared: u64,
    /// Server keys warned of for running under more environments than expected.
    pub env_splits: u64,
    pub peak_procs: usize,
    pub peak_rss: u64,
    /// The most tasks (threads) the descendants had at a look.
    pub peak_tasks: u64,
}

#[derive(Serialize, Deserialize)]
struct CountersDoc {
    zombies_reaped: u64,
    signals_forwarded: u64,
    terminated: Terminated,
    escalations: u64,
    /// Added with the EOF step: a document from before it reads as none ended that way.
    #[serde(default)]
    ended: Ended,
    #[serde(default)]
    eof_fallbacks: u64,
    /// Added with the exit step: an older document reads as none.
    #[serde(default)]
    crashes: u64,
    #[serde(default)]
    spared: u64,
    /// Added with the split warning: an older document reads as none.
    #[serde(default)]
    env_splits: u64,
    peak_procs: usize,
    peak_rss: u64,
    /// Added with task counts: an older document reads as none.
    #[serde(default)]
    peak_tasks: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Ended {
    eof: u64,
    /// Added with the exit step: an older document reads as none ended that way.
    #[serde(default)]
    exit: u64,
    term: u64,
    kill: u64,
}

#[derive(Serialize, Deserialize)]
struct Terminated {
    duplicate: u64,
    orphan: u64,
    cap: u64,
    memory: u64,
}

impl From<CountersDoc> for Counters {
    fn from(d: CountersDoc) -> Counters {
        Counters {
            zombies_reaped: d.zombies_reaped,
            signals_forwarded: d.signals_forwarded,
            terminated_duplicate: d.terminated.duplicate,
            terminated_orphan: d.terminated.orphan,
            terminated_cap: d.terminated.cap,
            terminated_memory: d.terminated.memory,
            escalations: d.escalations,
            ended_eof: d.ended.eof,
            ended_exit: d.ended.exit,
            ended_term: d.ended.term,
            ended_kill: d.ended.kill,
            eof_fallbacks: d.eof_fallbacks,
            crashes: d.crashes,
            spared: d.spared,
            env_splits: d.env_splits,
            peak_procs: d.peak_procs,
            peak_tasks: d.peak_tasks,
            peak_rss: d.peak_rss,
        }
    }
}

impl From<Counters> for CountersDoc {
    fn from(c: Counters) -> CountersDoc {
        CountersDoc {
            zombies_reaped: c.zombies_reaped,
            signals_forwarded: c.signals_forwarded,
            terminated: Terminated {
                duplicate: c.terminated_duplicate,
                orphan: c.terminated_orphan,
                cap: c.terminated_cap,
                memory: c.terminated_memory,
            },
            escalations: c.escalations,
            ended: Ended {
                eof: c.ended_eof,
                exit: c.ended_exit,
                term: c.ended_term,
                kill: c.ended_kill,
            },
            eof_fallbacks: c.eof_fallbacks,
            crashes: c.crashes,
            spared: c.spared,
            env_splits: c.env_splits,
            peak_procs: c.peak_procs,
            peak_tasks: c.peak_tasks,
            peak_rss: c.peak_rss,
        }
    }
}

/// One live descendant. Borrowed when written (the snapshot owns the text), owned
/// when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row<'a> {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// `R`, `S`, `D`, `T`, … as in /proc/PID/stat.
    pub state: char,
    /// At the snapshot.
    pub age_ms: u64,
    pub rss: u64,
    pub cmdline: Cow<'a, str>,
    pub role: Role,
    /// `main`, `pgid:N` or `subtree:N`: rows with the same unit are terminated together.
    pub unit: Cow<'a, str>,
    /// The pid naming the unit.
    pub unit_top: i32,
    pub key: Option<Cow<'a, str>>,
    /// The unit's environment hash, 8 hex digits, only when another server unit has the
    /// same key with another environment (two accounts of one server): what tells them
    /// apart, since instances are grouped by key and environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// How long the unit has had no input at the snapshot; None when its input is not
    /// watched (only keyed server units are).
    pub idle_ms: Option<u64>,
    /// Input was seen since mcpinit began watching the unit.
    pub input_seen: bool,
    /// The process whose reads were the unit's last input seen (a holder of its input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_from: Option<i32>,
    pub duplicate: bool,
    pub terminating: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Main,
    Server,
    Orphan,
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Server => "server",
            Role::Orphan => "orphan",
            Role::Other => "other",
        }
    }
}
