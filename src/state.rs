//! The live state for `mcpinit status` / `health`: one JSON document, replaced
//! atomically (write a temporary file, rename over) so a reader never sees half of it.

use crate::cgroup::Limits;
use crate::config::{Config, Orphans};
use crate::json::Object;
use crate::proctree::Snapshot;
use crate::units::{Unit, UnitId};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub const PRIMARY: &str = "/run/mcpinit.json";
pub const FALLBACK: &str = "/tmp/mcpinit.json";

#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
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
    pub ended_term: u64,
    pub ended_kill: u64,
    /// Terminations whose input could not be closed (the `eof_fallback` line).
    pub eof_fallbacks: u64,
    pub peak_procs: usize,
    pub peak_rss: u64,
}

/// Everything the state document is made of.
pub struct View<'a> {
    pub config: &'a Config,
    pub pid: i32,
    pub main: Option<i32>,
    pub started_unix_ms: u64,
    pub limits: Limits,
    pub snapshot: &'a Snapshot,
    pub units: &'a [Unit],
    pub terminating: &'a HashSet<UnitId>,
    pub counters: &'a Counters,
}

/// Where to write: the configured path, else /run when writable, else /tmp.
pub fn choose_path(config: &Config) -> PathBuf {
    if let Some(path) = &config.state_file {
        return path.clone();
    }
    // Whether we may create files in /run, for our effective uid (1001 may not; a
    // read-only /run says EROFS): one system call, nothing created.
    // SAFETY: a valid NUL-terminated path.
    let writable = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c"/run".as_ptr(),
            libc::W_OK,
            libc::AT_EACCESS,
        )
    };
    PathBuf::from(if writable == 0 { PRIMARY } else { FALLBACK })
}

/// Replace `path` with `document` atomically. The temporary file is created new
/// (`O_EXCL | O_NOFOLLOW`) under a name nobody can guess in advance: in a shared /tmp a
/// planted symlink must not make a root mcpinit write through it.
pub fn write(path: &Path, document: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), unique()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut file| file.write_all(document.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Nanoseconds of the monotonic clock: a different temporary name at every write.
fn unique() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) ^ ts.tv_nsec as u64
}

pub fn render(view: &View) -> String {
    let mut out = String::with_capacity(512 + view.snapshot.procs.len() * 160);
    let now_unix_ms = unix_ms();
    let mut doc = Object::new(&mut out);
    doc.num("pid", view.pid)
        .str("version", env!("CARGO_PKG_VERSION"))
        .num("started_unix_ms", view.started_unix_ms)
        .num("updated_unix_ms", now_unix_ms)
        .opt_num(
            "snapshot_unix_ms",
            snapshot_unix_ms(view.snapshot, now_unix_ms),
        )
        .opt_num("main_pid", view.main)
        .raw("settings", &settings(view.config))
        .raw("cgroup", &limits(view.limits))
        .raw("counters", &counters(view.counters))
        .num(
            "live",
            view.units.iter().map(|u| u.pids.len()).sum::<usize>(),
        )
        .num("rss", view.units.iter().map(|u| u.rss).sum::<u64>())
        .raw("processes", &processes(view))
        .end();
    out.push('\n');
    out
}

/// Wall-clock time of the snapshot shown: the heartbeat rewrites the file without a new
/// scan, so `status` needs this to age processes correctly. None before the first scan.
fn snapshot_unix_ms(snapshot: &Snapshot, now_unix_ms: u64) -> Option<u64> {
    (snapshot.now_ms > 0).then(|| {
        let behind = crate::proctree::boottime_ms().saturating_sub(snapshot.now_ms);
        now_unix_ms.saturating_sub(behind)
    })
}

fn settings(c: &Config) -> String {
    let mut out = String::new();
    let dedupe = if c.dedupe.is_empty() {
        "off".to_string()
    } else {
        c.dedupe.join(",")
    };
    Object::new(&mut out)
        .num("max_procs", c.max_procs)
        .num("max_memory", c.max_memory)
        .str("dedupe", &dedupe)
        .num("dedupe_keep", c.dedupe_keep)
        .num("dedupe_settle_ms", c.dedupe_settle.as_millis())
        .str(
            "orphans",
            if c.orphans == Orphans::Term {
                "term"
            } else {
                "keep"
            },
        )
        .num("kill_grace_ms", c.kill_grace.as_millis())
        .num("stop_grace_ms", c.stop_grace.as_millis())
        .num("scan_interval_ms", c.scan_interval.as_millis())
        .bool("dry_run", c.dry_run)
        .end();
    out
}

fn limits(l: Limits) -> String {
    let mut out = String::new();
    Object::new(&mut out)
        .opt_num("pids_max", l.pids_max)
        .opt_num("memory_max", l.memory_max)
        .end();
    out
}

fn counters(c: &Counters) -> String {
    let mut out = String::new();
    let mut terminated = String::new();
    Object::new(&mut terminated)
        .num("duplicate", c.terminated_duplicate)
        .num("orphan", c.terminated_orphan)
        .num("cap", c.terminated_cap)
        .num("memory", c.terminated_memory)
        .end();
    let mut ended = String::new();
    Object::new(&mut ended)
        .num("eof", c.ended_eof)
        .num("term", c.ended_term)
        .num("kill", c.ended_kill)
        .end();
    Object::new(&mut out)
        .num("zombies_reaped", c.zombies_reaped)
        .num("signals_forwarded", c.signals_forwarded)
        .raw("terminated", &terminated)
        .num("escalations", c.escalations)
        .raw("ended", &ended)
        .num("eof_fallbacks", c.eof_fallbacks)
        .num("peak_procs", c.peak_procs)
        .num("peak_rss", c.peak_rss)
        .end();
    out
}

/// Units whose key has newer instances beyond the kept count.
fn duplicates(units: &[Unit], keep: usize) -> HashSet<UnitId> {
    let mut by_key: HashMap<&str, Vec<&Unit>> = HashMap::new();
    for unit in units.iter().filter(|u| !u.orphaned) {
        if let Some(key) = &unit.key {
            by_key.entry(key).or_default().push(unit);
        }
    }
    let mut marked = HashSet::new();
    for instances in by_key.values_mut() {
        instances.sort_by_key(|u| std::cmp::Reverse((u.started_ms, u.top)));
        marked.extend(instances.iter().skip(keep).map(|u| u.id));
    }
    marked
}

fn processes(view: &View) -> String {
    let duplicate = duplicates(view.units, view.config.dedupe_keep);
    let mut out = String::from("[");
    for unit in view.units {
        let (role, unit_name) = match unit.id {
            UnitId::Main => ("main", "main".to_string()),
            UnitId::Group(pgid) => (role(unit), format!("pgid:{pgid}")),
            UnitId::Subtree(root) => (role(unit), format!("subtree:{root}")),
        };
        for &pid in &unit.pids {
            let Some(p) = view.snapshot.get(pid) else {
                continue;
            };
            if out.len() > 1 {
                out.push(',');
            }
            let mut object = Object::new(&mut out);
            object
                .num("pid", p.pid)
                .num("ppid", p.ppid)
                .num("pgid", p.pgid)
                .str("state", &(p.state as char).to_string())
                .num("age_ms", view.snapshot.now_ms.saturating_sub(p.started_ms))
                .num("rss", p.rss)
                .str("cmdline", &p.cmdline)
                .str("role", role)
                .str("unit", &unit_name)
                .num("unit_top", unit.top);
            match &unit.key {
                Some(key) => object.str("key", key),
                None => object.raw("key", "null"),
            };
            object
                .bool("duplicate", duplicate.contains(&unit.id))
                .bool("terminating", view.terminating.contains(&unit.id))
                .end();
        }
    }
    out.push(']');
    out
}

fn role(unit: &Unit) -> &'static str {
    if unit.orphaned {
        "orphan"
    } else if unit.key.is_some() {
        "server"
    } else {
        "other"
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = std::env::temp_dir().join(format!("mcpinit-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mcpinit.json");
        // A symlink where an old, predictable temporary name would have gone.
        std::os::unix::fs::symlink(dir.join("victim"), path.with_extension("tmp.1")).unwrap();
        write(&path, "{\"a\":1}").unwrap();
        write(&path, "{\"a\":2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":2}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o022, 0, "not writable by others: {mode:o}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!dir.join("victim").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
