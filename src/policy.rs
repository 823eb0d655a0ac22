//! The decision core: units + settings + clock -> which units to terminate and why.
//! Pure: no /proc, no signals, no time source of its own.

use crate::config::{Config, Orphans};
use crate::units::{Unit, UnitId};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Duplicate,
    Orphan,
    Cap,
    Memory,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Duplicate => "duplicate",
            Reason::Orphan => "orphan",
            Reason::Cap => "cap",
            Reason::Memory => "memory",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub unit: UnitId,
    pub reason: Reason,
    /// For duplicates: the top pid of the newest instance, which is kept.
    pub kept: Option<i32>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub terminate: Vec<Decision>,
    /// Live descendants, and what is left once every termination (in flight or new) ends.
    pub live: usize,
    pub projected: usize,
    pub rss: u64,
    /// The main child alone is over the memory cap: not ours to kill.
    pub main_over_memory: bool,
    /// Some duplicate waits for its newest instance to settle: a decision is due later
    /// even if nothing else changes.
    pub waiting: bool,
    /// Every surplus duplicate as counted here (settled or not, busy units excluded),
    /// sorted: what `status` marks DUPLICATE, so that it shows the policy's own choice.
    pub duplicates: Vec<UnitId>,
}

/// Decide. `units` comes from `units::units`, sorted oldest first; `busy` holds the
/// units whose termination is already under way: never chosen again, counted as gone.
pub fn decide(units: &[Unit], config: &Config, now_ms: u64, busy: &HashSet<UnitId>) -> Plan {
    let mut picker = Picker {
        chosen: busy.clone(),
        terminate: Vec::new(),
        live: units.iter().map(|u| u.pids.len()).sum(),
        rss: units.iter().map(|u| u.rss).sum(),
        gone: 0,
        gone_rss: 0,
    };
    for unit in units.iter().filter(|u| busy.contains(&u.id)) {
        picker.gone += unit.pids.len();
        picker.gone_rss += unit.rss;
    }
    let candidates: Vec<&Unit> = units.iter().filter(|u| u.id != UnitId::Main).collect();

    if config.orphans == Orphans::Term {
        for unit in candidates.iter().filter(|u| u.orphaned) {
            picker.pick(unit, Reason::Orphan, None);
        }
    }
    let surplus = duplicates(&candidates, config.dedupe_keep, busy);
    let settle_ms = config.dedupe_settle.as_millis() as u64;
    let mut waiting = false;
    for &(unit, newest) in &surplus {
        if now_ms.saturating_sub(newest.started_ms) >= settle_ms {
            picker.pick(unit, Reason::Duplicate, Some(newest.top));
        } else {
            waiting = true;
        }
    }

    if config.max_procs > 0 {
        // Cheapest losses first: surplus duplicates (settled or not), orphans, the
        // oldest deduped servers, the oldest other detached groups, and only then the
        // subtrees of the main child's own group (MetaMCP's backend and frontend).
        let order = surplus
            .iter()
            .map(|&(unit, _)| unit)
            .chain(candidates.iter().copied().filter(|u| u.orphaned))
            .chain(candidates.iter().copied().filter(|u| u.key.is_some()))
            .chain(candidates.iter().copied().filter(|u| expendable(u)))
            .chain(candidates.iter().copied().filter(|u| !expendable(u)));
        for unit in order {
            if picker.live - picker.gone <= config.max_procs {
                break;
            }
            picker.pick(unit, Reason::Cap, None);
        }
    }

    let mut main_over_memory = false;
    if config.max_memory > 0 && picker.rss > config.max_memory {
        let main_rss = units
            .iter()
            .find(|u| u.id == UnitId::Main)
            .map_or(0, |u| u.rss);
        main_over_memory = main_rss > config.max_memory;
        // Largest first, but the application's own processes only once no server,
        // orphan or detached group is left: losing MetaMCP's backend is worse than any
        // of the servers it leaked.
        let mut by_rss = candidates.clone();
        by_rss.sort_by_key(|u| (!expendable(u), std::cmp::Reverse(u.rss)));
        for unit in by_rss {
            if main_over_memory || picker.rss - picker.gone_rss <= config.max_memory {
                break;
            }
            picker.pick(unit, Reason::Memory, None);
        }
    }
    let mut duplicates: Vec<UnitId> = surplus.iter().map(|(unit, _)| unit.id).collect();
    duplicates.sort_unstable();
    Plan {
        duplicates,
        projected: picker.live - picker.gone,
        live: picker.live,
        rss: picker.rss,
        terminate: picker.terminate,
        main_over_memory,
        waiting,
    }
}

/// Servers (keyed), orphans and detached groups, as opposed to subtrees of the main
/// child's own group, such as MetaMCP's backend and frontend under its entrypoint.
fn expendable(unit: &Unit) -> bool {
    unit.key.is_some() || unit.orphaned || matches!(unit.id, UnitId::Group(_))
}

/// Chooses each unit at most once and keeps count of what the choices take away.
struct Picker {
    chosen: HashSet<UnitId>,
    terminate: Vec<Decision>,
    live: usize,
    rss: u64,
    gone: usize,
    gone_rss: u64,
}

impl Picker {
    fn pick(&mut self, unit: &Unit, reason: Reason, kept: Option<i32>) {
        if self.chosen.insert(unit.id) {
            self.gone += unit.pids.len();
            self.gone_rss += unit.rss;
            self.terminate.push(Decision {
                unit: unit.id,
                reason,
                kept,
            });
        }
    }
}

/// For each launcher key, the instances beyond the newest `keep`, oldest first, each
/// with the newest instance of its key. Orphans are not instances: nothing tracks them.
fn duplicates<'a>(
    candidates: &[&'a Unit],
    keep: usize,
    busy: &HashSet<UnitId>,
) -> Vec<(&'a Unit, &'a Unit)> {
    let mut by_key: HashMap<&str, Vec<&Unit>> = HashMap::new();
    for unit in candidates
        .iter()
        .filter(|u| !u.orphaned && !busy.contains(&u.id))
    {
        if let Some(key) = &unit.key {
            by_key.entry(key).or_default().push(unit);
        }
    }
    let mut surplus = Vec::new();
    for instances in by_key.values_mut() {
        instances.sort_by_key(|u| std::cmp::Reverse((u.started_ms, u.top)));
        let newest = instances[0];
        surplus.extend(instances.iter().skip(keep).map(|old| (*old, newest)));
    }
    surplus.sort_by_key(|(u, _)| (u.started_ms, u.top));
    surplus
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
