//! `mcpinit status` and `mcpinit health`: read back the state file a running mcpinit
//! keeps (see `state`), check that its writer is alive, and show it to the operator:
//! a small ps/pstree grouped by unit, or the document itself with `--json`, or a
//! one-line verdict for HEALTHCHECK and exec probes. Everything here runs in the same
//! static binary, so it works in BusyBox and distroless images alike.

use crate::jsonread::{self, Value};
use crate::state::{Counters, FALLBACK, PRIMARY};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The state is rewritten at least every 10 s (heartbeat); three missed beats mean the
/// writer is stuck. A scan interval longer than that stretches the limit with it, since
/// the loop may sleep that long between two writes.
const STALE_AFTER_MS: u64 = 30_000;
/// Commands are cut here in the human view; `--json` has them whole.
const COMMAND_WIDTH: usize = 100;
/// Deeper rows are shown as roots of their own: a hostile file cannot make the tree
/// recurse (or indent) without bound.
const TREE_DEPTH: usize = 16;

pub fn status(json: bool, state_file: Option<PathBuf>) -> i32 {
    let found = match load(state_file) {
        Ok(found) => found,
        Err(reason) => {
            eprintln!("mcpinit status: {reason}");
            return 1;
        }
    };
    if json {
        print!("{}", found.text);
    } else {
        print!(
            "{}",
            render(&found.state, &found.path, crate::state::unix_ms())
        );
    }
    0
}

pub fn health(state_file: Option<PathBuf>) -> i32 {
    let verdict = load(state_file).and_then(|found| verdict(&found.state, crate::state::unix_ms()));
    match verdict {
        Ok(summary) => {
            println!("healthy: {summary}");
            0
        }
        Err(reason) => {
            println!("unhealthy: {reason}");
            1
        }
    }
}

/// The state file as read and decoded, with where it was found.
struct Found {
    path: PathBuf,
    text: String,
    state: State,
}

/// Read the state file (the given one, else /run then /tmp), decode it, and make sure
/// the mcpinit that wrote it still runs: a stale file must not pass for a live one.
fn load(state_file: Option<PathBuf>) -> Result<Found, String> {
    let candidates = match state_file {
        Some(path) => vec![path],
        None => vec![PathBuf::from(PRIMARY), PathBuf::from(FALLBACK)],
    };
    let (path, text) = read_first(&candidates)?;
    let document = jsonread::parse(&text).map_err(|e| {
        format!(
            "state file {} is corrupt ({e}); is it written by mcpinit?",
            path.display()
        )
    })?;
    let state = State::decode(&document)
        .map_err(|e| format!("state file {} is not mcpinit's: {e}", path.display()))?;
    check_running(state.pid, &path)?;
    Ok(Found { path, text, state })
}

fn read_first(candidates: &[PathBuf]) -> Result<(PathBuf, String), String> {
    for path in candidates {
        match std::fs::read_to_string(path) {
            Ok(text) => return Ok((path.clone(), text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    let names: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "no running mcpinit found (no state file at {}); run this inside mcpinit's container, \
         with the same MCPINIT_STATE_FILE",
        names.join(" or ")
    ))
}

/// The writer must be alive and be mcpinit. `docker exec` shares mcpinit's PID
/// namespace, so the pid in the file is valid here. The executable link needs ptrace
/// rights (root without CAP_SYS_PTRACE, or another user, lacks them), so `comm`, which
/// anyone may read, is the fallback.
fn check_running(pid: i32, path: &Path) -> Result<(), String> {
    let stale = |why: String| {
        format!(
            "no running mcpinit: {why} (stale state file {})",
            path.display()
        )
    };
    match crate::proctree::stat_of(pid) {
        Some(stat) if stat.state != b'Z' && stat.state != b'X' => {}
        _ => return Err(stale(format!("pid {pid} is gone"))),
    }
    if same_executable(pid) {
        return Ok(());
    }
    let comm = read_comm(&format!("/proc/{pid}/comm"));
    if !comm.is_empty() && (comm == "mcpinit" || comm == read_comm("/proc/self/comm")) {
        Ok(())
    } else {
        Err(stale(format!("pid {pid} is '{comm}', not mcpinit")))
    }
}

fn same_executable(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(format!("/proc/{pid}/exe")),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn read_comm(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|c| c.trim_end().to_string())
        .unwrap_or_default()
}

/// Health: fresh, still governing, within the thresholds. Ok carries the summary line.
pub fn verdict(state: &State, now_ms: u64) -> Result<String, String> {
    let age = now_ms.saturating_sub(state.updated_unix_ms);
    let limit = STALE_AFTER_MS.max(state.settings.scan_interval_ms.saturating_mul(3));
    if age > limit {
        return Err(format!(
            "state is {} old (limit {}): mcpinit (pid {}) stopped updating it",
            duration(age),
            duration(limit),
            state.pid
        ));
    }
    if state.main_pid.is_none() {
        return Err("the main child has exited; mcpinit is shutting down".into());
    }
    let s = &state.settings;
    if s.max_procs > 0 && state.live > s.max_procs {
        return Err(format!(
            "{} live processes, over MCPINIT_MAX_PROCS={}{}",
            state.live,
            s.max_procs,
            if s.dry_run { " (dry run)" } else { "" }
        ));
    }
    if s.max_memory > 0 && state.rss > s.max_memory {
        return Err(format!(
            "rss {}, over MCPINIT_MAX_MEMORY={}{}",
            size(state.rss),
            size(s.max_memory),
            if s.dry_run { " (dry run)" } else { "" }
        ));
    }
    Ok(format!(
        "{} live processes (cap {}), rss {}, state {} old",
        state.live,
        cap(s.max_procs, |n| n.to_string()),
        size(state.rss),
        duration(age)
    ))
}

/// The state document, decoded. Field names follow `state::render`.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub pid: i32,
    pub version: String,
    pub started_unix_ms: u64,
    pub updated_unix_ms: u64,
    /// When the processes listed were seen (the heartbeat rewrites without a new scan).
    pub snapshot_unix_ms: Option<u64>,
    /// None once the main child has exited.
    pub main_pid: Option<i32>,
    pub settings: Settings,
    pub pids_max: Option<u64>,
    pub memory_max: Option<u64>,
    pub counters: Counters,
    pub live: u64,
    pub rss: u64,
    pub processes: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub max_procs: u64,
    pub max_memory: u64,
    pub dedupe: String,
    pub dedupe_keep: u64,
    pub dedupe_settle_ms: u64,
    pub orphans: String,
    pub kill_grace_ms: u64,
    pub stop_grace_ms: u64,
    pub scan_interval_ms: u64,
    pub dry_run: bool,
}

/// One process of the last snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub state: String,
    pub age_ms: u64,
    pub rss: u64,
    pub cmdline: String,
    /// main, server, orphan or other.
    pub role: String,
    /// `main`, `pgid:N` or `subtree:N`: rows with the same unit are terminated together.
    pub unit: String,
    pub key: Option<String>,
    pub duplicate: bool,
    pub terminating: bool,
}

/// Typed access to one object of the document; errors name the field's path. Values are
/// only type-checked: arithmetic on them saturates, so absurd numbers print absurdly
/// instead of overflowing.
struct Fields<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: &str) -> Result<Fields<'a>, String> {
        match value {
            Value::Object(_) => Ok(Fields {
                value,
                path: path.to_string(),
            }),
            _ => Err(format!("'{path}' is not an object")),
        }
    }

    fn get<T>(&self, name: &str, cast: impl Fn(&'a Value) -> Option<T>) -> Result<T, String> {
        self.value.get(name).and_then(cast).ok_or_else(|| {
            format!(
                "field '{}{name}' is missing or of the wrong type",
                self.path
            )
        })
    }

    fn u64(&self, name: &str) -> Result<u64, String> {
        self.get(name, Value::as_u64)
    }

    fn i32(&self, name: &str) -> Result<i32, String> {
        self.get(name, as_i32)
    }

    fn str(&self, name: &str) -> Result<String, String> {
        self.get(name, |v| v.as_str().map(String::from))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        self.get(name, Value::as_bool)
    }

    /// A value that may be null; `cast` must accept the non-null form.
    fn nullable<T>(
        &self,
        name: &str,
        cast: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, String> {
        self.get(name, |v| {
            if v.is_null() {
                Some(None)
            } else {
                cast(v).map(Some)
            }
        })
    }

    fn object(&self, name: &str) -> Result<Fields<'a>, String> {
        let value = self.get(name, Some)?;
        Fields::of(value, &format!("{}{name}.", self.path))
    }
}

/// Pids are i32 in the kernel; a larger number is not a pid.
fn as_i32(value: &Value) -> Option<i32> {
    value.as_i64().and_then(|n| i32::try_from(n).ok())
}

impl State {
    pub fn decode(document: &Value) -> Result<State, String> {
        let doc = Fields::of(document, "")?;
        let cgroup = doc.object("cgroup")?;
        Ok(State {
            pid: doc.i32("pid")?,
            version: doc.str("version")?,
            started_unix_ms: doc.u64("started_unix_ms")?,
            updated_unix_ms: doc.u64("updated_unix_ms")?,
            snapshot_unix_ms: doc.nullable("snapshot_unix_ms", Value::as_u64)?,
            main_pid: doc.nullable("main_pid", as_i32)?,
            settings: Settings::decode(&doc.object("settings")?)?,
            pids_max: cgroup.nullable("pids_max", Value::as_u64)?,
            memory_max: cgroup.nullable("memory_max", Value::as_u64)?,
            counters: decode_counters(&doc.object("counters")?)?,
            live: doc.u64("live")?,
            rss: doc.u64("rss")?,
            processes: doc
                .get("processes", Value::as_array)?
                .iter()
                .enumerate()
                .map(|(i, p)| Row::decode(&Fields::of(p, &format!("processes[{i}]."))?))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Settings {
    fn decode(s: &Fields) -> Result<Settings, String> {
        Ok(Settings {
            max_procs: s.u64("max_procs")?,
            max_memory: s.u64("max_memory")?,
            dedupe: s.str("dedupe")?,
            dedupe_keep: s.u64("dedupe_keep")?,
            dedupe_settle_ms: s.u64("dedupe_settle_ms")?,
            orphans: s.str("orphans")?,
            kill_grace_ms: s.u64("kill_grace_ms")?,
            stop_grace_ms: s.u64("stop_grace_ms")?,
            scan_interval_ms: s.u64("scan_interval_ms")?,
            dry_run: s.bool("dry_run")?,
        })
    }
}

fn decode_counters(c: &Fields) -> Result<Counters, String> {
    let terminated = c.object("terminated")?;
    Ok(Counters {
        zombies_reaped: c.u64("zombies_reaped")?,
        signals_forwarded: c.u64("signals_forwarded")?,
        terminated_duplicate: terminated.u64("duplicate")?,
        terminated_orphan: terminated.u64("orphan")?,
        terminated_cap: terminated.u64("cap")?,
        terminated_memory: terminated.u64("memory")?,
        escalations: c.u64("escalations")?,
        peak_procs: c.u64("peak_procs")? as usize,
        peak_rss: c.u64("peak_rss")?,
    })
}

impl Row {
    fn decode(p: &Fields) -> Result<Row, String> {
        Ok(Row {
            pid: p.i32("pid")?,
            ppid: p.i32("ppid")?,
            pgid: p.i32("pgid")?,
            state: p.str("state")?,
            age_ms: p.u64("age_ms")?,
            rss: p.u64("rss")?,
            cmdline: p.str("cmdline")?,
            role: p.str("role")?,
            unit: p.str("unit")?,
            key: p.nullable("key", |v| v.as_str().map(String::from))?,
            duplicate: p.bool("duplicate")?,
            terminating: p.bool("terminating")?,
        })
    }
}

/// The rows of one unit, top first (as the state file lists them).
struct UnitRows<'a> {
    rows: Vec<&'a Row>,
}

impl UnitRows<'_> {
    fn top(&self) -> &Row {
        self.rows[0]
    }

    /// Main first, then servers grouped by key, then orphans, then the rest; oldest
    /// first within each, so the duplicates of one key sit together.
    fn order(&self) -> (u8, Option<&str>, std::cmp::Reverse<u64>) {
        let top = self.top();
        let rank = match top.role.as_str() {
            "main" => 0,
            "server" => 1,
            "orphan" => 2,
            _ => 3,
        };
        (rank, top.key.as_deref(), std::cmp::Reverse(top.age_ms))
    }
}

fn group_units(rows: &[Row]) -> Vec<UnitRows<'_>> {
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
        unit_heading(&mut out, unit, state.settings.dry_run);
        unit_tree(&mut out, &unit.rows, since);
    }
    out
}

fn header(out: &mut String, state: &State, path: &Path, now_ms: u64) {
    let (s, c) = (&state.settings, &state.counters);
    let _ = writeln!(
        out,
        "mcpinit {} (pid {}), up {}, state written {} ago to {}",
        state.version,
        state.pid,
        duration(now_ms.saturating_sub(state.started_unix_ms)),
        duration(now_ms.saturating_sub(state.updated_unix_ms)),
        path.display()
    );
    let health = match verdict(state, now_ms) {
        Ok(_) => "ok".to_string(),
        Err(reason) => format!("UNHEALTHY: {reason}"),
    };
    let _ = writeln!(out, "health     {health}");
    let _ = writeln!(
        out,
        "live       {} processes (max {}, peak {}), rss {} (max {}, peak {}){}",
        state.live,
        cap(s.max_procs, |n| n.to_string()),
        c.peak_procs,
        size(state.rss),
        cap(s.max_memory, size),
        size(c.peak_rss),
        if s.dry_run {
            ", DRY RUN: nothing is terminated"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "settings   dedupe {} keep {} settle {}, orphans {}, kill grace {}, stop grace {}, scan {}",
        s.dedupe,
        s.dedupe_keep,
        setting(s.dedupe_settle_ms),
        s.orphans,
        setting(s.kill_grace_ms),
        setting(s.stop_grace_ms),
        setting(s.scan_interval_ms)
    );
    let _ = writeln!(
        out,
        "cgroup     pids.max {}, memory.max {}",
        state.pids_max.map_or("none".into(), |n| n.to_string()),
        state.memory_max.map_or("none".into(), size)
    );
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
         escalations {}, zombies reaped {}, signals forwarded {}",
        c.terminated_duplicate,
        c.terminated_orphan,
        c.terminated_cap,
        c.terminated_memory,
        c.escalations,
        c.zombies_reaped,
        c.signals_forwarded
    );
}

fn summary(out: &mut String, units: &[UnitRows]) {
    let count = |role: &str| units.iter().filter(|u| u.top().role == role).count();
    let mut keys: Vec<&str> = units
        .iter()
        .filter(|u| u.top().role == "server")
        .filter_map(|u| u.top().key.as_deref())
        .collect();
    keys.dedup(); // units are sorted by key, so equal keys are adjacent
    let duplicates = units.iter().filter(|u| u.top().duplicate).count();
    let _ = writeln!(
        out,
        "units      servers {} ({} keys, {duplicates} duplicates), orphans {}, other {}",
        count("server"),
        keys.len(),
        count("orphan"),
        count("other")
    );
}

fn unit_heading(out: &mut String, unit: &UnitRows, dry_run: bool) {
    let top = unit.top();
    let rss = unit
        .rows
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.rss));
    let _ = write!(out, "{}", top.role);
    if let Some(key) = &top.key {
        let _ = write!(out, "  {key}");
    }
    if top.role != "main" {
        let _ = write!(out, "  {}", top.unit.replace(':', " "));
    }
    let n = unit.rows.len();
    let plural = if n == 1 { "" } else { "es" };
    let _ = write!(out, ": {n} process{plural}, {}", size(rss));
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
/// from a file and are not trusted to form a tree, so every row is printed exactly once.
/// `since`: how long ago the snapshot was taken, added to every age.
fn unit_tree(out: &mut String, rows: &[&Row], since: u64) {
    let mut tree = Tree {
        rows,
        since,
        printed: vec![false; rows.len()],
    };
    let is_member = |pid: i32| rows.iter().any(|r| r.pid == pid);
    let roots: Vec<usize> = (0..rows.len())
        .filter(|&i| !is_member(rows[i].ppid))
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
    rows: &'a [&'a Row],
    since: u64,
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
            "{:>7} {:>6} {:>6} {:1} {:>8} {:>8}  {lead}{}",
            row.pid,
            row.ppid,
            row.pgid,
            row.state,
            duration(row.age_ms.saturating_add(self.since)),
            size(row.rss),
            cut(&row.cmdline, COMMAND_WIDTH)
        );
        if next_prefix.chars().count() / 3 >= TREE_DEPTH {
            return;
        }
        let children: Vec<usize> = (0..self.rows.len())
            .filter(|&c| !self.printed[c] && self.rows[c].ppid == row.pid)
            .collect();
        for (n, &child) in children.iter().enumerate() {
            if !self.printed[child] {
                let last = n + 1 == children.len();
                self.branch(out, child, &next_prefix, Some(last));
            }
        }
    }
}

fn cap(value: u64, show: impl Fn(u64) -> String) -> String {
    if value == 0 {
        "off".into()
    } else {
        show(value)
    }
}

fn cut(text: &str, width: usize) -> String {
    match text.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A setting in the syntax it is configured with: `250ms`, `5s`, `2m`.
fn setting(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// `0.3s`, `42s`, `2m05s`, `3h02m`, `4d07h`: short enough for a column.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..10 => format!("{}.{}s", s, ms % 1000 / 100),
        10..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Bytes as `812K`, `48.1M`, `2.35G` (powers of 1024, as ps and top do).
pub fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    match bytes {
        0..MIB => format!("{}K", bytes / 1024),
        MIB..0x4000_0000 => format!("{:.1}M", bytes as f64 / MIB as f64),
        _ => format!("{:.2}G", bytes as f64 / (1u64 << 30) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::testkit::{defaults, p, server, snapshot, MAIN, ME};
    use std::collections::HashSet;

    /// What `state::render` writes for: main, two instances of one server (the older a
    /// duplicate) and an orphan, decoded back.
    fn sample(config: &Config, counters: &Counters) -> State {
        let mut procs = server(20, MAIN, 300, "@x/a");
        procs.extend(server(30, MAIN, 100, "@x/a"));
        procs.push(p(40, ME, 40, 50, "node /srv/leaf.js"));
        let snap = snapshot(procs);
        let units = crate::units::units(&snap, Some(MAIN), &defaults());
        let view = crate::state::View {
            config,
            pid: ME,
            main: Some(MAIN),
            started_unix_ms: 1_000,
            limits: Default::default(),
            snapshot: &snap,
            units: &units,
            terminating: &HashSet::new(),
            counters,
        };
        let text = crate::state::render(&view);
        let mut state = State::decode(&jsonread::parse(&text).unwrap()).unwrap();
        // The testkit's clock is not the machine's boot clock: as if just scanned.
        state.snapshot_unix_ms = Some(state.updated_unix_ms);
        state
    }

    #[test]
    fn decodes_what_state_renders() {
        let counters = Counters {
            terminated_duplicate: 3,
            peak_procs: 17,
            ..Counters::default()
        };
        let state = sample(&Config::default(), &counters);
        assert_eq!((state.pid, state.main_pid, state.live), (ME, Some(MAIN), 8));
        assert_eq!(state.counters, counters);
        assert_eq!(state.settings.max_procs, 128);
        let role = |pid: i32| {
            let row = state.processes.iter().find(|r| r.pid == pid).unwrap();
            (row.role.as_str(), row.duplicate)
        };
        assert_eq!(role(MAIN), ("main", false));
        assert_eq!(role(20), ("server", true));
        assert_eq!(role(32), ("server", false));
        assert_eq!(role(40), ("orphan", false));
    }

    #[test]
    fn human_view_groups_units_as_trees() {
        let state = sample(&Config::default(), &Counters::default());
        let now = state.updated_unix_ms + 500;
        let text = render(&state, Path::new("/run/mcpinit.json"), now);
        assert!(text.contains("health     ok"), "{text}");
        assert!(
            text.contains("units      servers 2 (1 keys, 1 duplicates), orphans 1, other 0"),
            "{text}"
        );
        let older = text.find("pgid 20: 3 processes").expect(&text);
        let newer = text.find("pgid 30: 3 processes").expect(&text);
        assert!(
            older < newer,
            "servers of one key are listed oldest first:\n{text}"
        );
        assert!(text[older..newer].contains("DUPLICATE"), "{text}");
        assert!(
            text.contains("   └─ node /root/.npm/_npx/x/node_modules/.bin/srv"),
            "{text}"
        );
        assert!(text.contains("orphan  pgid 40: 1 process, 1.0M"), "{text}");
        // Ages are aged by the time since the snapshot.
        assert!(text.contains("  5m00s "), "{text}");
    }

    #[test]
    fn health_verdicts() {
        let mut config = Config::default();
        let state = sample(&config, &Counters::default());
        let at = state.updated_unix_ms;
        assert!(verdict(&state, at + 1_000).is_ok());
        let stale = verdict(&state, at + 31_000).unwrap_err();
        assert!(stale.contains("stopped updating"), "{stale}");
        config.max_procs = 5;
        config.dry_run = true;
        let over = verdict(&sample(&config, &Counters::default()), at).unwrap_err();
        assert_eq!(over, "8 live processes, over MCPINIT_MAX_PROCS=5 (dry run)");
        config.max_procs = 0;
        config.max_memory = 4 << 20;
        let over = verdict(&sample(&config, &Counters::default()), at).unwrap_err();
        assert!(
            over.starts_with("rss 8.0M, over MCPINIT_MAX_MEMORY=4.0M"),
            "{over}"
        );
        let mut exited = state.clone();
        exited.main_pid = None;
        assert!(verdict(&exited, at).unwrap_err().contains("shutting down"));
    }

    #[test]
    fn decode_errors_name_the_field() {
        let state =
            r#"{"pid":1,"version":"x","started_unix_ms":1,"updated_unix_ms":"soon","cgroup":{}}"#;
        let err = State::decode(&jsonread::parse(state).unwrap()).unwrap_err();
        assert_eq!(
            err,
            "field 'updated_unix_ms' is missing or of the wrong type"
        );
        let err = State::decode(&jsonread::parse("[1]").unwrap()).unwrap_err();
        assert_eq!(err, "'' is not an object");
    }

    #[test]
    fn parent_cycles_print_every_row_once() {
        let row = |pid, ppid| Row {
            pid,
            ppid,
            pgid: 5,
            state: "S".into(),
            age_ms: 0,
            rss: 0,
            cmdline: format!("cmd{pid}"),
            role: "other".into(),
            unit: "pgid:5".into(),
            key: None,
            duplicate: false,
            terminating: false,
        };
        let rows = [row(5, 6), row(6, 5), row(7, 7)];
        let refs: Vec<&Row> = rows.iter().collect();
        let mut out = String::new();
        unit_tree(&mut out, &refs, 0);
        for pid in [5, 6, 7] {
            assert_eq!(out.matches(&format!("cmd{pid}")).count(), 1, "{out}");
        }
    }

    #[test]
    fn absurd_numbers_render_without_overflow() {
        let mut state = sample(&Config::default(), &Counters::default());
        state.settings.scan_interval_ms = u64::MAX;
        state.counters.terminated_cap = u64::MAX;
        state.counters.terminated_orphan = u64::MAX;
        for row in &mut state.processes {
            (row.age_ms, row.rss) = (u64::MAX, u64::MAX);
        }
        let text = render(&state, Path::new("x"), u64::MAX);
        assert!(text.contains(&format!("terminated {}", u64::MAX)), "{text}");
    }

    #[test]
    fn missing_state_file_is_a_clear_error() {
        let err = load(Some(PathBuf::from("/nonexistent/mcpinit.json")))
            .err()
            .unwrap();
        assert!(
            err.starts_with(
                "no running mcpinit found (no state file at /nonexistent/mcpinit.json)"
            ),
            "{err}"
        );
    }

    #[test]
    fn short_forms() {
        assert_eq!(
            [
                0,
                1_250,
                42_000,
                125_000,
                3 * 3_600_000 + 120_000,
                100 * 3_600_000
            ]
            .map(duration),
            ["0.0s", "1.2s", "42s", "2m05s", "3h02m", "4d04h"]
        );
        assert_eq!(
            [0, 250, 5_000, 120_000].map(setting),
            ["0", "250ms", "5s", "2m"]
        );
        assert_eq!(
            [512 << 10, 48 << 20, 5 << 29].map(size),
            ["512K", "48.0M", "2.50G"]
        );
        assert_eq!(cut("abcdef", 3), "abc…");
    }
}
