//! The state document decoded into types, every error naming the field's path.

use crate::jsonread::Value;
use crate::state::Counters;

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
    // Added with the EOF step: a document from before it reads as none ended that way.
    let ended = |name: &str| {
        c.value
            .get("ended")
            .and_then(|e| e.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Counters {
        zombies_reaped: c.u64("zombies_reaped")?,
        signals_forwarded: c.u64("signals_forwarded")?,
        terminated_duplicate: terminated.u64("duplicate")?,
        terminated_orphan: terminated.u64("orphan")?,
        terminated_cap: terminated.u64("cap")?,
        terminated_memory: terminated.u64("memory")?,
        escalations: c.u64("escalations")?,
        ended_eof: ended("eof"),
        ended_term: ended("term"),
        ended_kill: ended("kill"),
        eof_fallbacks: c
            .value
            .get("eof_fallbacks")
            .and_then(Value::as_u64)
            .unwrap_or(0),
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
