//! The human view: a header with thresholds and counters, then a pstree per unit.
//! Durations and sizes are written by `values`, beside their parsers.

use super::{verdict, State};
use crate::config::values;
pub use crate::config::values::{duration_short as duration, size_short as size};
use crate::surface::statefile::{Counters, Role, Row, Settings};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Commands are cut here in the human view; `--json` has them whole.
const COMMAND_WIDTH: usize = 100;
/// Deeper rows are shown as roots of their own: a hostile file cannot make the tree
/// recurse (or indent) without bound.
const TREE_DEPTH: usize = 16;

/// The rows of one unit, top first (as the state file lists them).
struct UnitRows<'a> {
    rows: Vec<&'a Row<'a>>,
}

impl UnitRows<'_> {
    fn top(&self) -> &Row<'_> {
        self.rows[0]
    }

    /// Main first, then servers grouped by key (and environment), then orphans, then
    /// the rest; oldest first within each, so the duplicates of one server sit together.
    fn order(&self) -> (Role, Option<&str>, Option<&str>, std::cmp::Reverse<u64>) {
        let top = self.top();
        let env = top.env.as_deref();
        (
            top.role,
            top.key.as_deref(),
            env,
            std::cmp::Reverse(top.age_ms),
        )
    }
}

fn group_units<'a>(rows: &'a [Row<'a>]) -> Vec<UnitRows<'a>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut units: Vec<UnitRows> = Vec::new();
    for row in rows {
        let i = *index.entry(&row.unit).or_insert_with(|| {
            units.push(UnitRows { rows: Vec::new() });
            units.len() - 1
        });
        units[i].rows.push(row);
    }
    units.sort_by(|a, b| a.order().cmp(&b.order()));
    units
}

/// The human view: a header with the thresholds and counters, then a tree per unit.
pub fn render(state: &State, path: &Path, now_ms: u64) -> String {
    let mut out = String::new();
    header(&mut out, state, path, now_ms);
    let units = group_units(&state.processes);
    summary(&mut out, &units);
    let seen_ms = state.snapshot_unix_ms.unwrap_or(state.updated_unix_ms);
    let since = now_ms.saturating_sub(seen_ms);
    let _ = writeln!(out, "\n    PID   PPID   PGID S      AGE      RSS  COMMAND");
    for unit in &units {
        unit_heading(&mut out, unit, state.settings.dry_run, since);
        unit_tree(&mut out, &unit.rows, since);
    }
    out
}

fn header(out: &mut String, state: &State, path: &Path, now_ms: u64) {
    let (s, c) = (&state.settings, &state.counters);
    let _ = writeln!(
        out,
        "mcpinit {} (pid {}), up {}, state written {} ago to {}",
        crate::sys::output::printable(&state.version),
        state.pid,
        duration(now_ms.saturating_sub(state.started_unix_ms)),
        duration(now_ms.saturating_sub(state.updated_unix_ms)),
        crate::sys::output::printable(&path.display().to_string())
    );
    let health = match verdict(state, now_ms) {
        Ok(_) => "ok".to_string(),
        Err(reason) => format!("UNHEALTHY: {reason}"),
    };
    let _ = writeln!(out, "health     {health}");
    live_line(out, state);
    settings_line(out, s);
    let _ = writeln!(
        out,
        "cgroup     pids.max {}, memory.max {}",
        state
            .cgroup
            .pids_max
            .map_or("none".into(), |n| n.to_string()),
        state.cgroup.memory_max.map_or("none".into(), size)
    );
    counters_line(out, c);
}

fn live_line(out: &mut String, state: &State) {
    let (s, c) = (&state.settings, &state.counters);
    let _ = writeln!(
        out,
        "live       {} processes (max {}, peak {}), {} tasks (peak {}), rss {} (max {}, peak {}){}",
        state.live,
        cap(s.max_procs, |n| n.to_string()),
        c.peak_procs,
        state.tasks,
        c.peak_tasks,
        size(state.rss),
        cap(s.max_memory, size),
        size(c.peak_rss),
        if s.dry_run {
            ", DRY RUN: nothing is terminated"
        } else {
            ""
        }
    );
}

fn settings_line(out: &mut String, s: &Settings) {
    let _ = writeln!(
        out,
        "settings   dedupe {} keep {} idle {}, orphans {}, kill grace {}, stop grace {}, scan {}, \
         eof grace {}, input route {}, exit step {}{}",
        crate::sys::output::printable(&s.dedupe),
        s.dedupe_keep,
        setting(s.dedupe_idle_ms),
        crate::sys::output::printable(&s.orphans),
        setting(s.kill_grace_ms),
        setting(s.stop_grace_ms),
        setting(s.scan_interval_ms),
        setting(s.eof_grace_ms),
        crate::sys::output::printable(&s.input_route),
        if s.exit_step { "on" } else { "off" },
        if s.route_refused.is_empty() {
            String::new()
        } else {
            format!(" ({})", crate::sys::output::printable(&s.route_refused))
        }
    );
}

fn counters_line(out: &mut String, c: &Counters) {
    let terminated = [
        c.terminated_duplicate,
        c.terminated_orphan,
        c.terminated_cap,
        c.terminated_memory,
    ]
    .into_iter()
    .fold(0u64, u64::saturating_add);
    let _ = writeln!(
        out,
        "counters   terminated {terminated} (duplicate {}, orphan {}, cap {}, memory {}), \
         ended eof {} exit {} term {} kill {} (input not closed {}), \
         crashes a gateway saw {}, left alone {}, keys split by environment {}, \
         escalations {}, zombies reaped {}, signals forwarded {}",
        c.terminated_duplicate,
        c.terminated_orphan,
        c.terminated_cap,
        c.terminated_memory,
        c.ended_eof,
        c.ended_exit,
        c.ended_term,
        c.ended_kill,
        c.eof_fallbacks,
        c.crashes,
        c.spared,
        c.env_splits,
        c.escalations,
        c.zombies_reaped,
        c.signals_forwarded
    );
}

fn summary(out: &mut String, units: &[UnitRows]) {
    let count = |role: Role| units.iter().filter(|u| u.top().role == role).count();
    let mut keys: Vec<(&str, Option<&str>)> = units
        .iter()
        .filter(|u| u.top().role == Role::Server)
        .filter_map(|u| Some((u.top().key.as_deref()?, u.top().env.as_deref())))
        .collect();
    keys.dedup(); // units are sorted by key and environment: equal ones are adjacent
    let duplicates = units.iter().filter(|u| u.top().duplicate).count();
    let _ = writeln!(
        out,
        "units      servers {} ({} keys, {duplicates} duplicates), orphans {}, other {}",
        count(Role::Server),
        keys.len(),
        count(Role::Orphan),
        count(Role::Other)
    );
}

fn unit_heading(out: &mut String, unit: &UnitRows, dry_run: bool, since: u64) {
    let top = unit.top();
    let rss = unit
        .rows
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.rss));
    out.push_str(top.role.as_str());
    if let Some(key) = &top.key {
        let _ = write!(out, "  {}", crate::sys::output::printable(key));
    }
    if let Some(env) = &top.env {
        let _ = write!(out, "  env {}", crate::sys::output::printable(env));
    }
    if top.role != Role::Main {
        let unit = crate::sys::output::printable(&top.unit).replace(':', " ");
        let _ = write!(out, "  {}", cut(&unit, COMMAND_WIDTH));
    }
    let n = unit.rows.len();
    let plural = if n == 1 { "" } else { "es" };
    let _ = write!(out, ": {n} process{plural}, {}", size(rss));
    if let Some(idle) = top.idle_ms {
        let idle = duration(idle.saturating_add(since));
        let _ = if top.input_seen {
            match top.input_from {
                Some(pid) => write!(out, ", last input {idle} ago (read by {pid})"),
                None => write!(out, ", last input {idle} ago"),
            }
        } else {
            write!(out, ", no input in {idle}")
        };
    }
    if top.duplicate {
        out.push_str("  DUPLICATE");
    }
    if top.terminating {
        out.push_str(if dry_run {
            "  WOULD TERMINATE"
        } else {
            "  TERMINATING"
        });
    }
    out.push('\n');
}

/// The unit's processes as a pstree: children under their parent. Parent links come
/// from a file and are not trusted to form a tree (cycles, repeated pids), so every row
/// is printed exactly once, and the work is linear in the rows: each row sits in one
/// parent's list of children, and each list is walked once.
/// `since`: how long ago the snapshot was taken, added to every age.
pub(super) fn unit_tree(out: &mut String, rows: &[&Row], since: u64) {
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        children.entry(row.ppid).or_default().push(i);
    }
    let members: std::collections::HashSet<i32> = rows.iter().map(|r| r.pid).collect();
    let mut tree = Tree {
        rows,
        since,
        children,
        printed: vec![false; rows.len()],
    };
    let roots: Vec<usize> = (0..rows.len())
        .filter(|&i| !members.contains(&rows[i].ppid))
        .collect();
    // Rows in a parent cycle (or cut off by the depth limit) have no root: the second
    // pass prints them as roots of their own.
    for i in roots.into_iter().chain(0..rows.len()) {
        if !tree.printed[i] {
            tree.branch(out, i, "", None);
        }
    }
}

struct Tree<'a> {
    rows: &'a [&'a Row<'a>],
    since: u64,
    /// Rows by parent pid; a list is taken out when its parent is printed.
    children: HashMap<i32, Vec<usize>>,
    printed: Vec<bool>,
}

impl Tree<'_> {
    /// `last` is None for a root, else whether this row is its parent's last child.
    fn branch(&mut self, out: &mut String, i: usize, prefix: &str, last: Option<bool>) {
        self.printed[i] = true;
        let row = self.rows[i];
        let (lead, next_prefix) = match last {
            None => (String::new(), String::new()),
            Some(true) => (format!("{prefix}└─ "), format!("{prefix}   ")),
            Some(false) => (format!("{prefix}├─ "), format!("{prefix}│  ")),
        };
        let _ = writeln!(
            out,
            "{:>7} {:>6} {:>6} {} {:>8} {:>8}  {lead}{}",
            row.pid,
            row.ppid,
            row.pgid,
            crate::sys::output::printable(row.state.encode_utf8(&mut [0; 4])),
            duration(row.age_ms.saturating_add(self.since)),
            size(row.rss),
            cut(&crate::sys::output::printable(&row.cmdline), COMMAND_WIDTH)
        );
        if next_prefix.chars().count() / 3 >= TREE_DEPTH {
            return;
        }
        // Another row with the same pid may come later: it finds the list gone, so no
        // list is walked twice.
        let mut kids = self.children.remove(&row.pid).unwrap_or_default();
        kids.retain(|&c| !self.printed[c]);
        for (n, &child) in kids.iter().enumerate() {
            if !self.printed[child] {
                let last = n + 1 == kids.len();
                self.branch(out, child, &next_prefix, Some(last));
            }
        }
    }
}

pub(super) fn cap(value: u64, show: impl Fn(u64) -> String) -> String {
    if value == 0 {
        "off".into()
    } else {
        show(value)
    }
}

pub(super) fn cut(text: &str, width: usize) -> String {
    match text.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A setting in the syntax it is configured with: `250ms`, `5s`, `2m`.
pub(super) fn setting(ms: u64) -> String {
    values::duration_text(std::time::Duration::from_millis(ms))
}
