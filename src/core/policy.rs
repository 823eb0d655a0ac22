//! The decision core: units + their input + settings + clock -> which units to
//! terminate and why. Dedupe keeps the newest instance(s) of each key (and environment) and every one
//! with input within `dedupe_idle`, and ends the others, idle longest first; the caps
//! take the cheapest losses first (`Rank`), the least recently used first within each.
//! Pure: no /proc, no signals, no time source of its own.

use crate::config::{Config, Orphans};
use crate::core::activity::Use;
use crate::core::units::{Unit, UnitId};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Duplicate,
    Orphan,
    Cap,
    Memory,
}

impl Reason {
    /// In the order of the metrics' `reason` label.
    pub const ALL: [Reason; 4] = [
        Reason::Duplicate,
        Reason::Orphan,
        Reason::Cap,
        Reason::Memory,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
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
    /// For duplicates: the top pid of the newest instance of its key, which is kept.
    pub kept: Option<i32>,
    /// How long the unit had had no input, when its input was looked at.
    pub idle_ms: Option<u64>,
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
    /// Some instance chosen (for any reason but orphan) was ranked by its input: the
    /// caller makes sure that input is fresh before acting.
    pub uses_activity: bool,
    /// When (ms, CLOCK_BOOTTIME) the first instance kept only for its recent input
    /// runs out of it: a decision falls due then even if nothing else changes.
    pub due_ms: Option<u64>,
    /// The instances dedupe ends (idle, beyond the newest), sorted: what `status` marks
    /// DUPLICATE, so that it shows the policy's own choice.
    pub duplicates: Vec<UnitId>,
}

/// What the policy knows of each unit's input, by unit (see `activity`). A keyed unit
/// missing here is taken to be in use: nothing is ended on input not looked at.
pub type Activity = HashMap<UnitId, Use>;

/// Decide. `units` comes from `units::units`, sorted oldest first; `busy` holds the
/// units whose termination is already under way: never chosen again, counted as gone.
pub fn decide(
    units: &[Unit],
    activity: &Activity,
    config: &Config,
    now_ms: u64,
    busy: &HashSet<UnitId>,
) -> Plan {
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
    let look = Look::new(units, activity, config, now_ms, busy);
    // A few processes in their fork-to-exec window are a gateway starting servers, not
    // judged until they exec; more than max(4, cap/16) of them at once are a storm of
    // forks that never exec (issue 27: spared 100 ms each, at 10,000 forks a second).
    let storm = units.iter().filter(|u| u.unborn).count() > jump(config.max_procs);
    let candidates: Vec<&Unit> = units
        .iter()
        .filter(|u| u.id != UnitId::Main && !busy.contains(&u.id) && (!u.unborn || storm))
        .collect();

    let reclaimed = |u: &Unit| match config.orphans {
        Orphans::Servers => u.served,
        Orphans::All => true,
        Orphans::None => false,
    };
    for unit in candidates.iter().filter(|u| u.orphaned && reclaimed(u)) {
        picker.pick(unit, Reason::Orphan, None);
    }
    // Each candidate's rank and recency, once: the sorts below compare them often.
    let ranked: Vec<(&Unit, Rank, u64)> = candidates
        .iter()
        .map(|&u| (u, look.rank(u), look.recency(u)))
        .collect();
    // Dedupe: every instance but the newest and those in use, idle longest first.
    let mut idle: Vec<&(&Unit, Rank, u64)> =
        ranked.iter().filter(|(_, r, _)| *r == Rank::Idle).collect();
    idle.sort_unstable_by_key(|&&(u, _, since)| (since, u.started_ms, u.top));
    let mut duplicates: Vec<UnitId> = idle.iter().map(|(u, _, _)| u.id).collect();
    duplicates.sort_unstable();
    for &&(unit, _, _) in &idle {
        let kept = unit.group().and_then(|g| look.newest.get(&g));
        picker.pick(unit, Reason::Duplicate, kept.copied());
    }

    if config.max_procs > 0 && picker.live - picker.gone > config.max_procs {
        // Cheapest losses first (see `Rank`), least recently used first within a rank.
        let mut order: Vec<_> = ranked.iter().collect();
        order.sort_unstable_by_key(|&&(u, rank, since)| (rank, since, u.started_ms, u.top));
        for &&(unit, _, _) in &order {
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
        // The same ranks as for the cap; within a rank the least recently used server
        // first, and among equals the largest: losing MetaMCP's backend is worse than
        // any of the servers it leaked.
        let mut by_rss: Vec<_> = ranked.iter().collect();
        by_rss.sort_by_key(|&&(u, rank, since)| (rank, since, std::cmp::Reverse(u.rss)));
        for &&(unit, _, _) in &by_rss {
            if main_over_memory || picker.rss - picker.gone_rss <= config.max_memory {
                break;
            }
            picker.pick(unit, Reason::Memory, None);
        }
    }
    let due_ms = ranked
        .iter()
        .filter(|(u, rank, _)| *rank == Rank::InUse && activity.contains_key(&u.id))
        .map(|(u, _, _)| look.idle_since(u).saturating_add(look.idle_ms))
        .min();
    for decision in &mut picker.terminate {
        decision.idle_ms = activity
            .get(&decision.unit)
            .map(|u| now_ms.saturating_sub(u.idle_since_ms()));
    }
    let uses_activity = picker
        .terminate
        .iter()
        .any(|d| d.reason != Reason::Orphan && look.is_instance(d.unit));
    Plan {
        projected: picker.live - picker.gone,
        live: picker.live,
        rss: picker.rss,
        terminate: picker.terminate,
        main_over_memory,
        uses_activity,
        due_ms,
        duplicates,
    }
}

/// What each unit stands to lose, cheapest first: the order in which the caps take
/// them. `Idle` and `InUse` are older instances of a key; `Newest` the `dedupe_keep`
/// newest of each and its spare (the idle instance MetaMCP hands to its next session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// Reparented to mcpinit: nothing tracks it.
    Orphan,
    /// An older instance without input for `dedupe_idle`: a leak.
    Idle,
    /// An older instance with recent input: some session uses it.
    InUse,
    /// A detached group that is no known server (`setsid` and the like): as likely a
    /// server a gateway tracks under a launcher mcpinit does not know as anything else,
    /// so never taken before an instance in use.
    Detached,
    /// The newest instance(s) of a key, and its spare: the newest never seen
    /// reading input.
    Newest,
    /// Subtrees of the main child's own group, such as MetaMCP's backend.
    Application,
}

/// The policy's view of the units: which are instances of a key, which are newest,
/// and how long each has been idle.
struct Look<'a> {
    activity: &'a Activity,
    /// Per group (key and environment), the top pid of its newest instance.
    newest: HashMap<(&'a str, u64), i32>,
    /// Units among the newest `dedupe_keep` of their key.
    kept: HashSet<UnitId>,
    /// Units that are instances of a key (keyed, not orphaned, not being terminated).
    instances: HashSet<UnitId>,
    idle_ms: u64,
    now_ms: u64,
}

/// How long after a new instance of a server appears the one before it is kept (see
/// `Look::new`): a session's first request follows its taking the spare within seconds.
pub const HANDOVER_MS: u64 = 10_000;

impl<'a> Look<'a> {
    fn new(
        units: &'a [Unit],
        activity: &'a Activity,
        config: &Config,
        now_ms: u64,
        busy: &'a HashSet<UnitId>,
    ) -> Look<'a> {
        let mut by_key: HashMap<(&str, u64), Vec<&Unit>> = HashMap::new();
        for unit in instances(units, busy) {
            if let Some(group) = unit.group() {
                by_key.entry(group).or_default().push(unit);
            }
        }
        let mut look = Look {
            activity,
            newest: HashMap::new(),
            kept: HashSet::new(),
            instances: HashSet::new(),
            idle_ms: config.dedupe_idle.as_millis() as u64,
            now_ms,
        };
        for (key, mut list) in by_key {
            list.sort_by_key(|u| std::cmp::Reverse((u.started_ms, u.top)));
            look.newest.insert(key, list[0].top);
            look.kept
                .extend(list.iter().take(config.dedupe_keep.max(1)).map(|u| u.id));
            // The spare: MetaMCP keeps one idle instance per server for its next
            // session, and it is not always the newest (a session that comes while the
            // next spare is starting gets a new instance of its own, younger than that
            // spare, whose first requests may fall in its start-up window and so look
            // like none). So the newest instance never seen reading input besides the
            // newest kept ones is kept too: ending the spare would leave the next
            // session a dead one, while keeping one idle instance too many costs memory.
            let keep = config.dedupe_keep.max(1);
            let spare = list.iter().skip(keep).find(|u| {
                activity
                    .get(&u.id)
                    .is_some_and(|seen| seen.last_input_ms.is_none())
            });
            look.kept.extend(spare.map(|u| u.id));
            // The spare a session has just taken: MetaMCP starts a new spare the moment
            // a session takes the old one, which until the session's first request looks
            // idle since its own start-up. While the newest is that young, the instance
            // right before the kept ones is kept too.
            let newest_age = now_ms.saturating_sub(list[0].started_ms);
            if newest_age < HANDOVER_MS.min(look.idle_ms) {
                look.kept.extend(list.get(keep).map(|u| u.id));
            }
            look.instances.extend(list.iter().map(|u| u.id));
        }
        look
    }

    fn is_instance(&self, id: UnitId) -> bool {
        self.instances.contains(&id)
    }

    /// Idle since (ms): an instance whose input was not looked at counts as just used.
    fn idle_since(&self, unit: &Unit) -> u64 {
        self.activity
            .get(&unit.id)
            .map_or(self.now_ms, Use::idle_since_ms)
    }

    fn in_use(&self, unit: &Unit) -> bool {
        self.idle_ms > 0 && self.now_ms.saturating_sub(self.idle_since(unit)) < self.idle_ms
    }

    fn rank(&self, unit: &Unit) -> Rank {
        if unit.orphaned {
            Rank::Orphan
        } else if self.kept.contains(&unit.id) {
            Rank::Newest
        } else if self.is_instance(unit.id) {
            if self.in_use(unit) {
                Rank::InUse
            } else {
                Rank::Idle
            }
        } else if expendable(unit) {
            Rank::Detached
        } else {
            Rank::Application
        }
    }

    /// Within a rank: instances by their last input (least recent first), the rest by
    /// age alone.
    fn recency(&self, unit: &Unit) -> u64 {
        if self.is_instance(unit.id) {
            self.idle_since(unit)
        } else {
            0
        }
    }
}

/// Instances of a launcher key: keyed units that something still tracks (orphans are
/// not instances) and that are not already being terminated.
fn instances<'a>(units: &'a [Unit], busy: &'a HashSet<UnitId>) -> impl Iterator<Item = &'a Unit> {
    units.iter().filter(move |u| {
        u.key.is_some() && !u.orphaned && u.id != UnitId::Main && !busy.contains(&u.id)
    })
}

/// The units whose input decisions may need: every instance of a key that has more
/// instances than the newest kept ones (an older one may be a leak), and none when
/// input is not looked at. Under a cap the caller adds the rest of the instances.
pub fn watched(units: &[Unit], config: &Config, busy: &HashSet<UnitId>) -> Vec<UnitId> {
    if config.dedupe_idle.is_zero() {
        return Vec::new();
    }
    let mut count: HashMap<(&str, u64), usize> = HashMap::new();
    for unit in instances(units, busy) {
        *count.entry(unit.group().unwrap_or_default()).or_default() += 1;
    }
    let keep = config.dedupe_keep.max(1);
    instances(units, busy)
        .filter(|u| count[&u.group().unwrap_or_default()] > keep)
        .map(|u| u.id)
        .collect()
}

/// Every instance of a key: what the caps rank by input.
pub fn all_instances(units: &[Unit], busy: &HashSet<UnitId>) -> Vec<UnitId> {
    instances(units, busy).map(|u| u.id).collect()
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
                idle_ms: None,
            });
        }
    }
}

/// A jump, not a creep: more than this many processes past the cap at once (or in
/// their fork-to-exec window at once) is a storm. A few servers past it (a new
/// session) are not.
pub fn jump(cap: usize) -> usize {
    (cap / 16).max(4)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

/// Environments one server key is expected to run under at most: one, or two (two
/// accounts of one server). Beyond that the split is more likely a variable that
/// differs by instance (a random token, a session id), which keeps every instance out
/// of dedupe: the operator is warned.
pub const ENV_SPLIT_EXPECTED: usize = 2;

/// The keys whose instances (keyed units something still tracks) run under more than
/// `ENV_SPLIT_EXPECTED` environments, with how many, sorted by key.
pub fn env_splits(units: &[Unit]) -> Vec<(&str, usize)> {
    let mut envs: HashMap<&str, HashSet<u64>> = HashMap::new();
    for unit in units.iter().filter(|u| !u.orphaned && u.id != UnitId::Main) {
        if let Some((key, env)) = unit.group() {
            envs.entry(key).or_default().insert(env);
        }
    }
    let mut split: Vec<(&str, usize)> = envs
        .into_iter()
        .map(|(key, envs)| (key, envs.len()))
        .filter(|&(_, n)| n > ENV_SPLIT_EXPECTED)
        .collect();
    split.sort_unstable();
    split
}
