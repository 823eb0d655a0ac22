//! The loop's state as a `Document`: the process rows are serialized straight from the
//! snapshot, one at a time, so a write allocates the same few bytes at 10 processes or
//! 10,000 (issue 12.10).

use super::document::{Blindness, Cgroup, Counters, Document, Role, Row, Settings};
use crate::config::{Config, DedupeList};
use crate::core::policy::{Activity, Reason};
use crate::core::process::{Blind, Snapshot};
use crate::core::units::{Unit, UnitId};
use crate::sys::cgroup::Limits;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// A command line is cut in the file to at most this many bytes of JSON (escapes
/// counted), at a character boundary: a process can put 100 KB there, and the file must
/// stay under the reader's cap (status::READ_LIMIT) even at 10,000 processes that all do.
/// `status` shows 100 characters, so nothing visible is lost.
pub const CMDLINE_MAX: usize = 4096;
/// The launcher key (a prefix of the command line) likewise.
pub const KEY_MAX: usize = 1024;

/// Everything the state document is made of.
pub struct View<'a> {
    pub config: &'a Config,
    pub pid: i32,
    pub main: Option<i32>,
    pub started_unix_ms: u64,
    pub limits: Limits,
    pub snapshot: &'a Snapshot,
    pub units: &'a [Unit],
    /// The surplus duplicates of the policy's plan for this snapshot (`Plan::duplicates`).
    pub duplicates: &'a [UnitId],
    /// Units whose termination is under way (in a dry run: would be), and why.
    pub terminating: &'a HashMap<UnitId, Reason>,
    pub counters: &'a Counters,
    /// What is known of the instances' input (only watched units are in it).
    pub activity: &'a Activity,
    /// Why the last scan could not see every process, while it could not.
    pub blind: Option<Blind>,
}

impl<'a> View<'a> {
    /// The document for this view, written at `now_unix_ms`.
    pub fn document(&'a self, now_unix_ms: u64) -> Document<Rows<'a>> {
        Document {
            pid: self.pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix_ms: self.started_unix_ms,
            updated_unix_ms: now_unix_ms,
            snapshot_unix_ms: snapshot_unix_ms(self.snapshot, now_unix_ms),
            main_pid: self.main,
            settings: settings(self.config),
            cgroup: Cgroup {
                pids_max: self.limits.pids_max,
                memory_max: self.limits.memory_max,
            },
            counters: self.counters.clone(),
            live: self.units.iter().map(|u| u.pids.len() as u64).sum(),
            tasks: self.snapshot.tasks(),
            rss: self.units.iter().map(|u| u.rss).sum(),
            blind: self.blind.map(|b| Blindness {
                errno: format!("{:?}", b.errno),
                unread: b.unread as u64,
            }),
            processes: Rows {
                view: self,
                shared: shared_keys(self.units),
            },
        }
    }
}

/// Wall-clock time of the snapshot shown: the heartbeat rewrites the file without a new
/// scan, so `status` needs this to age processes correctly. None before the first scan.
fn snapshot_unix_ms(snapshot: &Snapshot, now_unix_ms: u64) -> Option<u64> {
    (snapshot.now_ms > 0).then(|| {
        let behind = crate::sys::procfs::boottime_ms().saturating_sub(snapshot.now_ms);
        now_unix_ms.saturating_sub(behind)
    })
}

fn settings(c: &Config) -> Settings {
    let routes = crate::sys::close_input::known_routes();
    Settings {
        max_procs: c.max_procs as u64,
        max_memory: c.max_memory,
        dedupe: DedupeList(&c.dedupe).to_string(),
        dedupe_keep: c.dedupe_keep as u64,
        dedupe_idle_ms: c.dedupe_idle.as_millis() as u64,
        orphans: c.orphans.to_string(),
        kill_grace_ms: c.kill_grace.as_millis() as u64,
        stop_grace_ms: c.stop_grace.as_millis() as u64,
        scan_interval_ms: c.scan_interval.as_millis() as u64,
        dry_run: c.dry_run,
        eof_grace_ms: c.eof_grace.as_millis() as u64,
        input_route: routes.map_or("unprobed", |r| r.close.as_str()).into(),
        exit_step: c.exit_step && routes.is_some_and(|r| r.exit),
        route_refused: routes.map_or(String::new(), |r| r.refused.join("; ")),
    }
}

/// Keys that more than one environment runs under: their rows name the environment.
fn shared_keys(units: &[Unit]) -> HashSet<&str> {
    let mut envs: HashMap<&str, u64> = HashMap::new();
    let mut shared = HashSet::new();
    for (key, env) in units.iter().filter_map(Unit::group) {
        if *envs.entry(key).or_insert(env) != env {
            shared.insert(key);
        }
    }
    shared
}

/// The process list, serialized as a JSON array straight from the snapshot.
pub struct Rows<'a> {
    view: &'a View<'a>,
    shared: HashSet<&'a str>,
}

impl View<'_> {
    /// DUPLICATE: what the policy's dedupe ends, and what it is terminating (or, in a
    /// dry run, would terminate) as a duplicate: busy units are no instances to it.
    fn duplicate(&self, id: UnitId) -> bool {
        self.duplicates.binary_search(&id).is_ok()
            || self.terminating.get(&id) == Some(&Reason::Duplicate)
    }
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let view = self.view;
        let mut seq = serializer.serialize_seq(None)?;
        for unit in view.units {
            let (role, name) = match unit.id {
                UnitId::Main => (Role::Main, Cow::Borrowed("main")),
                UnitId::Group(pgid) => (role(unit), Cow::Owned(format!("pgid:{pgid}"))),
                UnitId::Subtree(root) => (role(unit), Cow::Owned(format!("subtree:{root}"))),
            };
            let seen = view.activity.get(&unit.id);
            let idle_ms = seen.map(|u| view.snapshot.now_ms.saturating_sub(u.idle_since_ms()));
            let input_seen = seen.is_some_and(|u| u.last_input_ms.is_some());
            let input_from = seen.and_then(|u| u.from);
            let env = unit
                .key
                .as_deref()
                .filter(|k| self.shared.contains(k))
                .map(|_| format!("{:08x}", unit.env as u32));
            for p in unit.pids.iter().filter_map(|&pid| view.snapshot.get(pid)) {
                seq.serialize_element(&Row {
                    pid: p.pid,
                    ppid: p.ppid,
                    pgid: p.pgid,
                    state: p.state as char,
                    age_ms: view.snapshot.now_ms.saturating_sub(p.started_ms),
                    rss: p.rss,
                    cmdline: Cow::Borrowed(cut(&p.cmdline, CMDLINE_MAX)),
                    role,
                    unit: Cow::Borrowed(&name),
                    unit_top: unit.top,
                    key: unit.key.as_deref().map(|k| Cow::Borrowed(cut(k, KEY_MAX))),
                    env: env.clone(),
                    idle_ms,
                    input_seen,
                    input_from,
                    duplicate: view.duplicate(unit.id),
                    terminating: view.terminating.contains_key(&unit.id),
                })?;
            }
        }
        seq.end()
    }
}

pub fn role(unit: &Unit) -> Role {
    if unit.orphaned {
        Role::Orphan
    } else if unit.key.is_some() {
        Role::Server
    } else {
        Role::Other
    }
}

/// The longest prefix of `text` that takes at most `max` bytes as a JSON string's
/// contents, ending on a character. Control characters count as the six bytes of
/// `\u00XX`, the most serde_json writes for one.
pub fn cut(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += match c {
            '\0'..='\u{1f}' => 6,
            '"' | '\\' => 2,
            c => c.len_utf8(),
        };
        if used > max {
            return &text[..at];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(super::cut("abc", 5), "abc");
        assert_eq!(super::cut("abcdef", 3), "abc");
        assert_eq!(super::cut("aé", 2), "a");
        assert_eq!(super::cut("a\u{1b}b", 6), "a");
        assert_eq!(super::cut("\"\"\"", 4), "\"\"");
    }
}
