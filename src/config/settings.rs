//! What mcpinit can be told: the typed `Config`, and the table of its settings, each
//! with its variable, its long option, its value syntax and its help line. The parser
//! (config.rs), `--help` (help.rs) and the docs test all read this one table, so a
//! setting added here is parsed, documented and shown with its default at once.

use crate::config::values;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub command: Vec<OsString>,
    /// `-g`: forwarded signals go to the child's process group.
    pub kill_group: bool,
    /// `-e CODE`: child exit codes reported as 0.
    pub expect_zero: Vec<i32>,
    /// `-p SIGNAL`: signal mcpinit gets when its parent dies.
    pub parent_death_signal: Option<i32>,
    /// `-w`: reaped zombies logged at warning level.
    pub warn_on_reap: bool,
    pub log_filter: String,
    pub log_json: bool,
    pub log_target: LogTarget,
    pub max_procs: usize,
    pub max_memory: u64,
    /// Launcher patterns whose instances are deduped; empty = dedupe off.
    pub dedupe: Vec<String>,
    /// The newest instances of each key kept whatever their input (1: the spare).
    pub dedupe_keep: usize,
    /// An older instance is ended only once it has had no input for this long;
    /// zero: input is not looked at, only the newest `dedupe_keep` are kept.
    pub dedupe_idle: Duration,
    pub orphans: Orphans,
    pub kill_grace: Duration,
    /// How long a termination waits after closing an instance's input before SIGTERM;
    /// zero skips the close-input step.
    pub eof_grace: Duration,
    /// After the EOF grace, make a tracked instance that ignored EOF exit with status 0
    /// from the inside (ptrace) before any signal reaches it.
    pub exit_step: bool,
    pub stop_grace: Duration,
    pub scan_interval: Duration,
    pub dry_run: bool,
    /// None: `/run/mcpinit.json`, falling back to `/tmp/mcpinit.json`.
    pub state_file: Option<PathBuf>,
    /// Where to serve `/metrics` and `/healthz`; None (the default): nowhere.
    pub metrics: Option<SocketAddr>,
    /// Retired settings that were set: one warning each once logging is up.
    pub retired: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            command: Vec::new(),
            kill_group: false,
            expect_zero: Vec::new(),
            parent_death_signal: None,
            warn_on_reap: false,
            log_filter: "info".into(),
            log_json: false,
            log_target: LogTarget::Stdout,
            max_procs: 128,
            max_memory: 0,
            dedupe: DEFAULT_DEDUPE.iter().map(|s| s.to_string()).collect(),
            dedupe_keep: 1,
            dedupe_idle: Duration::from_secs(600),
            orphans: Orphans::Servers,
            kill_grace: Duration::from_secs(5),
            eof_grace: Duration::from_secs(3),
            exit_step: true,
            stop_grace: Duration::from_secs(8),
            scan_interval: Duration::from_secs(1),
            dry_run: false,
            state_file: None,
            metrics: None,
            retired: Vec::new(),
        }
    }
}

pub const DEFAULT_DEDUPE: &[&str] = &["npm exec", "npx", "uvx"];

/// Which orphans (units reparented to mcpinit) are ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    /// Those that were part of a server unit before their launcher died: what leaked.
    /// Any other orphan (a daemon an entrypoint started with a double fork) lives, as
    /// under tini.
    Servers,
    /// Every orphan.
    All,
    /// None: orphans are only reaped.
    None,
}

impl Orphans {
    /// The names shown first; `term` and `keep` are the older names of `all` and `none`.
    const NAMES: &'static [(&'static str, Orphans)] = &[
        ("servers", Orphans::Servers),
        ("all", Orphans::All),
        ("none", Orphans::None),
        ("term", Orphans::All),
        ("keep", Orphans::None),
    ];
}

impl fmt::Display for Orphans {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(name_of(Orphans::NAMES, *self))
    }
}

/// Where log lines go. stdout is what `docker logs` shows, but it is also the child's
/// stdout: an MCP stdio server (`docker run -i`) speaks JSON-RPC there, so it needs
/// stderr, which `docker logs` shows as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Stderr,
}

impl LogTarget {
    const NAMES: &'static [(&'static str, LogTarget)] =
        &[("stdout", LogTarget::Stdout), ("stderr", LogTarget::Stderr)];
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(name_of(LogTarget::NAMES, *self))
    }
}

/// The dedupe list as it is configured: `npm exec,npx,uvx`, or `off` when empty.
pub struct DedupeList<'a>(pub &'a [String]);

impl fmt::Display for DedupeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("off");
        }
        for (i, pattern) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(pattern)?;
        }
        Ok(())
    }
}

fn name_of<T: PartialEq>(names: &[(&'static str, T)], value: T) -> &'static str {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("?", |(name, _)| name)
}

fn set<T>(field: &mut T, value: Option<T>, accepted: &'static str) -> Result<(), &'static str> {
    *field = value.ok_or(accepted)?;
    Ok(())
}

fn choose<T: Copy>(names: &[(&str, T)], text: &str) -> Option<T> {
    names
        .iter()
        .find(|(name, _)| *name == text.trim())
        .map(|&(_, v)| v)
}

/// One governance setting: its variable, its long option, its help line, and the
/// field it sets with the syntax that field takes.
pub struct Setting {
    pub var: &'static str,
    pub option: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

type Field<T> = fn(&mut Config) -> &mut T;

pub enum Kind {
    /// A duration, at least `min`.
    Duration(Field<Duration>, Duration),
    /// A whole number, at least `min`.
    Count(Field<usize>, usize),
    /// A size in bytes; 0 = no cap.
    Size(Field<u64>),
    /// On or off; the option alone turns it on.
    Switch(Field<bool>),
    /// A path, kept byte for byte: on Linux a path is bytes, not text.
    Path(Field<Option<PathBuf>>),
    /// Any other syntax: its metavariable, how it is read, how it is shown.
    Text {
        metavar: &'static str,
        read: fn(&mut Config, &str) -> Result<(), &'static str>,
        show: fn(&Config) -> String,
    },
}

impl Setting {
    const fn new(var: &'static str, option: &'static str, kind: Kind, help: &'static str) -> Self {
        Setting {
            var,
            option,
            help,
            kind,
        }
    }

    const fn duration(
        var: &'static str,
        option: &'static str,
        field: Field<Duration>,
        help: &'static str,
    ) -> Self {
        Setting::new(var, option, Kind::Duration(field, Duration::ZERO), help)
    }

    const fn count(
        var: &'static str,
        option: &'static str,
        field: Field<usize>,
        min: usize,
        help: &'static str,
    ) -> Self {
        Setting::new(var, option, Kind::Count(field, min), help)
    }

    const fn text(
        var: &'static str,
        option: &'static str,
        metavar: &'static str,
        read: fn(&mut Config, &str) -> Result<(), &'static str>,
        show: fn(&Config) -> String,
        help: &'static str,
    ) -> Self {
        Setting::new(
            var,
            option,
            Kind::Text {
                metavar,
                read,
                show,
            },
            help,
        )
    }

    /// How the value is written in `--help`: `N`, `DUR`, `term|keep`.
    pub fn metavar(&self) -> &'static str {
        match self.kind {
            Kind::Duration(..) => "DUR",
            Kind::Count(..) => "N",
            Kind::Size(_) => "SIZE",
            Kind::Switch(_) => "",
            Kind::Path(_) => "PATH",
            Kind::Text { metavar, .. } => metavar,
        }
    }

    /// Set the field from `value`, or say what is accepted.
    pub fn apply(&self, config: &mut Config, value: &OsStr) -> Result<(), String> {
        let text = || value.to_str().ok_or_else(|| String::from("UTF-8 text"));
        match self.kind {
            Kind::Path(field) => *field(config) = Some(PathBuf::from(value)),
            Kind::Duration(field, min) => match values::duration(text()?) {
                Some(d) if d >= min => *field(config) = d,
                _ if min.is_zero() => return Err(values::DURATION_HELP.into()),
                _ => {
                    return Err(format!(
                        "a duration of at least {}, such as 500ms, 1s, 2m",
                        values::duration_text(min)
                    ))
                }
            },
            Kind::Count(field, min) => match text()?.trim().parse() {
                Ok(n) if n >= min => *field(config) = n,
                _ if min == 0 => return Err("a whole number (0 = no cap)".into()),
                _ => return Err(format!("a whole number of at least {min}")),
            },
            Kind::Size(field) => *field(config) = values::size(text()?).ok_or(values::SIZE_HELP)?,
            Kind::Switch(field) => {
                *field(config) = match text()?.trim() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => return Err("1 or 0 (also true/false, yes/no, on/off)".into()),
                }
            }
            Kind::Text { read, .. } => read(config, text()?)?,
        }
        Ok(())
    }

    /// The value in `config`, in the syntax it is configured with.
    pub fn show(&self, config: &Config) -> String {
        // The field accessors take `&mut`; a copy keeps `config` untouched.
        let mut c = config.clone();
        match self.kind {
            Kind::Duration(field, _) => values::duration_text(*field(&mut c)),
            Kind::Count(field, _) => field(&mut c).to_string(),
            Kind::Size(field) => values::size_text(*field(&mut c)),
            Kind::Switch(field) => u8::from(*field(&mut c)).to_string(),
            Kind::Path(field) => field(&mut c)
                .as_ref()
                .map_or("/run/mcpinit.json, else /tmp/mcpinit.json".into(), |p| {
                    p.display().to_string()
                }),
            Kind::Text { show, .. } => show(config),
        }
    }
}

#[rustfmt::skip]
pub static SETTINGS: &[Setting] = &[
    Setting::count("MCPINIT_MAX_PROCS", "--max-procs", |c| &mut c.max_procs, 0,
        "cap on live descendants, mcpinit not counted; 0 = no cap"),
    Setting::new("MCPINIT_MAX_MEMORY", "--max-memory", Kind::Size(|c| &mut c.max_memory),
        "cap on the descendants' total RSS, e.g. 512m, 4g; 0 = no cap"),
    Setting::text("MCPINIT_DEDUPE", "--dedupe", "LIST|off", read_dedupe,
        |c| DedupeList(&c.dedupe).to_string(),
        "comma-separated launcher patterns whose instances are deduped"),
    Setting::count("MCPINIT_DEDUPE_KEEP", "--dedupe-keep", |c| &mut c.dedupe_keep, 1,
        "newest instances kept per command line, whatever their input"),
    Setting::duration("MCPINIT_DEDUPE_IDLE", "--dedupe-idle", |c| &mut c.dedupe_idle,
        "an older instance is ended once it had no input this long; 0 = ignore input"),
    Setting::text("MCPINIT_ORPHANS", "--orphans", "servers|all|none",
        |c, v| set(&mut c.orphans, choose(Orphans::NAMES, v),
            "'servers', 'all' or 'none' ('term' = all, 'keep' = none)"),
        |c| c.orphans.to_string(),
        "orphans ended: a server's (default), all, or none (only reaped)"),
    Setting::duration("MCPINIT_KILL_GRACE", "--kill-grace", |c| &mut c.kill_grace,
        "SIGTERM -> SIGKILL grace when mcpinit terminates a unit"),
    Setting::duration("MCPINIT_EOF_GRACE", "--eof-grace", |c| &mut c.eof_grace,
        "wait after closing an instance's input before SIGTERM; 0 = skip that step"),
    Setting::text("MCPINIT_EXIT_STEP", "--exit-step", "on|off",
        |c, v| set(&mut c.exit_step, choose(&[("on", true), ("off", false)], v), "'on' or 'off'"),
        |c| (if c.exit_step { "on" } else { "off" }).into(),
        "after the EOF grace, make a tracked server exit 0 from the inside, then SIGTERM"),
    Setting::duration("MCPINIT_STOP_GRACE", "--stop-grace", |c| &mut c.stop_grace,
        "shutdown grace before SIGKILL, below Docker's 10s stop timeout"),
    Setting::new("MCPINIT_SCAN_INTERVAL", "--scan-interval",
        Kind::Duration(|c| &mut c.scan_interval, Duration::from_millis(10)),
        "longest time between two looks at the process tree"),
    Setting::new("MCPINIT_DRY_RUN", "--dry-run", Kind::Switch(|c| &mut c.dry_run),
        "log what would be terminated, terminate nothing"),
    Setting::text("MCPINIT_LOG", "--log", "FILTER",
        |c, v| set(&mut c.log_filter, log_filter(v), "a log filter such as info, debug, or mcpinit=trace"),
        |c| c.log_filter.clone(),
        "log filter: info, debug, mcpinit=trace"),
    Setting::text("MCPINIT_LOG_FORMAT", "--log-format", "text|json",
        |c, v| set(&mut c.log_json, choose(&[("text", false), ("json", true)], v), "'text' or 'json'"),
        |c| (if c.log_json { "json" } else { "text" }).into(),
        "log line format: text, or one JSON object per line"),
    Setting::text("MCPINIT_LOG_TARGET", "--log-target", "stdout|stderr",
        |c, v| set(&mut c.log_target, choose(LogTarget::NAMES, v), "'stdout' or 'stderr'"),
        |c| c.log_target.to_string(),
        "log stream; stderr keeps the child's stdout clean (MCP stdio servers)"),
    Setting::new("MCPINIT_STATE_FILE", "--state-file", Kind::Path(|c| &mut c.state_file),
        "where the live state for status and health is kept"),
    Setting::text("MCPINIT_METRICS", "--metrics", "ADDR:PORT|off", read_metrics,
        |c| c.metrics.map_or("off".into(), |a| a.to_string()),
        "serve Prometheus text at /metrics (and /healthz) there"),
];

fn read_metrics(c: &mut Config, value: &str) -> Result<(), &'static str> {
    c.metrics = match value.trim() {
        "off" => None,
        v => Some(values::parse_address(v).ok_or(values::ADDRESS_HELP)?),
    };
    Ok(())
}

fn read_dedupe(c: &mut Config, value: &str) -> Result<(), &'static str> {
    if value.trim().eq_ignore_ascii_case("off") {
        c.dedupe = Vec::new();
        return Ok(());
    }
    let patterns: Vec<String> = value
        .split(',')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if patterns.iter().any(String::is_empty) {
        return Err("comma-separated launcher patterns such as 'npm exec,npx,uvx', or 'off'");
    }
    c.dedupe = patterns;
    Ok(())
}

/// env_logger's filter syntax: `level`, `module=level`, `module`, comma-separated.
/// Only mcpinit's own modules log, so a module that is not one is a typo, refused.
pub fn log_filter(value: &str) -> Option<String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.iter().any(|k| k.eq_ignore_ascii_case(l.trim()));
    let is_module = |m: &str| m.trim().starts_with("mcpinit");
    let valid = value.split(',').all(|d| match d.split_once('=') {
        Some((module, level)) => is_module(module) && is_level(level),
        None => is_level(d) || is_module(d),
    });
    valid.then(|| value.trim().to_string())
}

/// A setting that no longer exists: accepted with any value, ignored, and said so at
/// start, so that an upgrade never stops a container over it.
pub struct Retired {
    pub var: &'static str,
    pub option: &'static str,
    pub why: &'static str,
}

pub static RETIRED: &[Retired] = &[Retired {
    var: "MCPINIT_DEDUPE_SETTLE",
    option: "--dedupe-settle",
    why: "an older instance is now ended only once it has had no input for \
          MCPINIT_DEDUPE_IDLE, and the newest is always kept",
}];

impl Retired {
    /// The warning for this setting set to `value`.
    pub fn warning(&self, value: &str) -> String {
        format!(
            "{} / {} ('{value}') is retired and ignored: {}",
            self.var, self.option, self.why
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variable_and_its_option_share_one_name() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            let stem = s.var.strip_prefix("MCPINIT_").expect(s.var);
            assert_eq!(
                s.option,
                format!("--{}", stem.to_ascii_lowercase().replace('_', "-"))
            );
            assert!(seen.insert(s.var), "{} twice", s.var);
            assert!(!s.help.is_empty(), "{} has no help", s.var);
        }
    }

    #[test]
    fn every_default_reads_back_as_itself() {
        let defaults = Config::default();
        for s in SETTINGS.iter().filter(|s| s.var != "MCPINIT_STATE_FILE") {
            let mut c = Config::default();
            s.apply(&mut c, s.show(&defaults).as_ref()).expect(s.var);
            assert_eq!(c, defaults, "{}", s.var);
        }
    }

    #[test]
    fn shown_values_read_back() {
        let mut c = Config::default();
        for (var, text) in [
            ("MCPINIT_MAX_MEMORY", "512m"),
            ("MCPINIT_DEDUPE", "off"),
            ("MCPINIT_EOF_GRACE", "250ms"),
            ("MCPINIT_DEDUPE_IDLE", "1h"),
            ("MCPINIT_ORPHANS", "none"),
            ("MCPINIT_ORPHANS", "all"),
            ("MCPINIT_DRY_RUN", "1"),
            ("MCPINIT_LOG_FORMAT", "json"),
            ("MCPINIT_LOG_TARGET", "stderr"),
            ("MCPINIT_STATE_FILE", "/x/s.json"),
            ("MCPINIT_METRICS", "127.0.0.1:9464"),
            ("MCPINIT_METRICS", "[::]:9464"),
        ] {
            let s = SETTINGS.iter().find(|s| s.var == var).unwrap();
            s.apply(&mut c, text.as_ref()).unwrap();
            assert_eq!(s.show(&c), text);
        }
    }

    #[test]
    fn help_and_docs_name_every_setting() {
        let help = crate::config::help::usage();
        let docs = include_str!("../../docs/configuration.md");
        let readme = include_str!("../../README.md");
        for s in SETTINGS {
            assert!(help.contains(s.var) && help.contains(s.option), "{}", s.var);
            assert!(
                docs.contains(&format!("`{}", s.option)),
                "{} in docs",
                s.option
            );
            assert!(docs.contains(&format!("`{}", s.var)), "{} in docs", s.var);
            assert!(
                readme.contains(&format!("`{}", s.var)),
                "{} in README",
                s.var
            );
        }
        assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
    }
}
