//! Snapshot -> units: what gets terminated together.
//!
//! A process group is a unit (MetaMCP spawns each server detached, so each `npm exec`
//! tree is its own group). The main child's own group is shared with whatever it starts
//! without a new group, so there each subtree hanging off the main child (or off
//! mcpinit, once orphaned) is a unit instead. The main child is a unit of its own that
//! is never a victim.

use crate::core::launcher;
use crate::core::process::{self, Proc, Snapshot};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitId {
    Main,
    /// A process group, by pgid.
    Group(i32),
    /// A subtree of the main child's group, by its root pid.
    Subtree(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub id: UnitId,
    /// Pids of the live members, top first.
    pub pids: Vec<i32>,
    /// The process whose command line names the unit: the group leader while it lives.
    pub top: i32,
    pub started_ms: u64,
    /// Its top was reparented to mcpinit: whoever started it is gone.
    pub orphaned: bool,
    /// It is, or holds a process that was seen in, a server unit (see `lineage`):
    /// false until the lineage marks it.
    pub served: bool,
    pub key: Option<String>,
    /// Hash of its top's environment, for a keyed unit (else 0): instances are grouped
    /// by key and this, so two servers with one command line but different environments
    /// (two accounts of one server) are not duplicates of each other.
    pub env: u64,
    pub rss: u64,
    /// A lone process still in its fork-to-exec window: a few milliseconds old and
    /// still its parent's program. Not a unit to judge yet: what it will be (an
    /// `npm exec` a gateway tracks, say) shows once it execs.
    pub unborn: bool,
}

impl Unit {
    /// What its instances are grouped by (dedupe): the key and the environment's hash.
    pub fn group(&self) -> Option<(&str, u64)> {
        self.key.as_deref().map(|k| (k, self.env))
    }

    pub fn pgid(&self) -> Option<i32> {
        match self.id {
            UnitId::Group(pgid) => Some(pgid),
            _ => None,
        }
    }

    /// The process group the unit lives in, for logs: its own for a group unit; for a
    /// subtree (or the main child), the group of its top in `snapshot` (0 if gone).
    pub fn process_group(&self, snapshot: &Snapshot) -> i32 {
        self.pgid()
            .or_else(|| snapshot.get(self.top).map(|p| p.pgid))
            .unwrap_or(0)
    }
}

/// Group the live (non-zombie) descendants of `snapshot` into units.
/// `main` is the main child's pid, when it is alive.
pub fn units(snapshot: &Snapshot, main: Option<i32>, patterns: &[String]) -> Vec<Unit> {
    let main_proc = main
        .and_then(|pid| snapshot.get(pid))
        .filter(|p| !p.is_zombie());
    let shared_pgid = main_proc.map(|p| p.pgid);
    let mut members: HashMap<UnitId, Vec<&Proc>> = HashMap::new();
    for proc in snapshot.procs.iter().filter(|p| !p.is_zombie()) {
        let id = if Some(proc.pid) == main {
            UnitId::Main
        } else if Some(proc.pgid) == shared_pgid || process::foreign_pgid(proc.pgid) {
            UnitId::Subtree(subtree_root(snapshot, proc, main).pid)
        } else {
            UnitId::Group(proc.pgid)
        };
        members.entry(id).or_default().push(proc);
    }
    let mut units: Vec<Unit> = members
        .into_iter()
        .map(|(id, procs)| unit(snapshot, id, procs, patterns))
        .collect();
    units.sort_by_key(|u| (u.started_ms, u.top));
    units
}

/// Climb from `proc` while the parent is in the same (shared) group and is not the main
/// child: the highest such ancestor roots the subtree.
fn subtree_root<'a>(snapshot: &'a Snapshot, proc: &'a Proc, main: Option<i32>) -> &'a Proc {
    let mut root = proc;
    // Bounded by the number of processes: a parent link cannot cycle in a real tree,
    // but a snapshot taken across a reparenting might, so never climb further.
    for _ in 0..snapshot.procs.len() {
        match snapshot.get(root.ppid) {
            Some(parent) if Some(parent.pid) != main && parent.pgid == proc.pgid => root = parent,
            _ => break,
        }
    }
    root
}

fn unit(snapshot: &Snapshot, id: UnitId, mut procs: Vec<&Proc>, patterns: &[String]) -> Unit {
    let is_member = |pid: i32| procs.iter().any(|p| p.pid == pid);
    let top = match id {
        UnitId::Group(pgid) => procs
            .iter()
            .find(|p| p.pid == pgid)
            .or_else(|| {
                procs
                    .iter()
                    .filter(|p| !is_member(p.ppid))
                    .min_by_key(|p| (p.start, p.pid))
            })
            .copied(),
        UnitId::Subtree(root) => procs.iter().find(|p| p.pid == root).copied(),
        UnitId::Main => procs.first().copied(),
    }
    .unwrap_or(procs[0]);
    let orphaned = id != UnitId::Main && top.ppid == snapshot.me;
    let key = match id {
        UnitId::Main => None,
        _ => launcher::key(&top.cmdline, patterns),
    };
    let env = if key.is_some() { top.env_hash } else { 0 };
    let rss = procs.iter().map(|p| p.rss).sum();
    let unborn = procs.len() == 1
        && snapshot.now_ms.saturating_sub(top.started_ms) < UNBORN_MS
        && snapshot
            .get(top.ppid)
            .is_some_and(|parent| parent.cmdline == top.cmdline);
    procs.sort_by_key(|p| (p.pid != top.pid, p.start, p.pid));
    Unit {
        id,
        pids: procs.iter().map(|p| p.pid).collect(),
        top: top.pid,
        started_ms: top.started_ms,
        orphaned,
        served: false,
        key,
        env,
        rss,
        unborn,
    }
}

/// How long after its fork a process that still runs its parent's program is taken to
/// be on its way to an exec (MetaMCP's fork, setsid and exec of `npm exec` take a few
/// milliseconds); past it, it is judged as what it is. Short, so that a fork storm that
/// never execs is not spared for long.
pub const UNBORN_MS: u64 = 100;

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
