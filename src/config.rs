//! Command line and environment -> one typed `Config`, validated before anything runs.
//! Every refusal is one line naming the variable or option, the value, and what is accepted.

use crate::values;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    Term,
    Keep,
}

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
    pub max_procs: usize,
    pub max_memory: u64,
    /// Launcher patterns whose instances are deduped; empty = dedupe off.
    pub dedupe: Vec<String>,
    pub dedupe_keep: usize,
    pub dedupe_settle: Duration,
    pub orphans: Orphans,
    /// Input closed -> SIGTERM grace; zero: the input is not closed first.
    pub eof_grace: Duration,
    pub kill_grace: Duration,
    pub stop_grace: Duration,
    pub scan_interval: Duration,
    pub dry_run: bool,
    /// None: `/run/mcpinit.json`, falling back to `/tmp/mcpinit.json`.
    pub state_file: Option<PathBuf>,
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
            max_procs: 128,
            max_memory: 0,
            dedupe: DEFAULT_DEDUPE.iter().map(|s| s.to_string()).collect(),
            dedupe_keep: 1,
            dedupe_settle: Duration::from_secs(30),
            orphans: Orphans::Term,
            eof_grace: Duration::from_secs(3),
            kill_grace: Duration::from_secs(5),
            stop_grace: Duration::from_secs(8),
            scan_interval: Duration::from_secs(1),
            dry_run: false,
            state_file: None,
        }
    }
}

const DEFAULT_DEDUPE: &[&str] = &["npm exec", "npx", "uvx"];

#[derive(Debug, PartialEq)]
pub enum Invocation {
    Run(Box<Config>),
    Status {
        json: bool,
        state_file: Option<PathBuf>,
    },
    Health {
        state_file: Option<PathBuf>,
    },
    Help,
    Version,
}

/// A refusal: exit status 2, `message` on stderr (with usage when `usage` is set).
#[derive(Debug, PartialEq)]
pub struct UsageError {
    pub message: String,
    pub usage: bool,
}

fn refuse(name: &str, value: &str, accepted: &str) -> UsageError {
    UsageError {
        message: format!("invalid {name} '{value}': expected {accepted}"),
        usage: false,
    }
}

fn usage_error(message: String) -> UsageError {
    UsageError {
        message,
        usage: true,
    }
}

/// One governance setting: its variable, its long option, and how to apply a value.
struct Setting {
    var: &'static str,
    option: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), &'static str>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        var: "MCPINIT_MAX_PROCS",
        option: "--max-procs",
        apply: |c, v| {
            c.max_procs = v
                .trim()
                .parse()
                .map_err(|_| "a whole number (0 = no cap)")?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_MAX_MEMORY",
        option: "--max-memory",
        apply: |c, v| {
            c.max_memory = values::size(v).ok_or(values::SIZE_HELP)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_DEDUPE",
        option: "--dedupe",
        apply: |c, v| {
            c.dedupe = dedupe_patterns(v)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_DEDUPE_KEEP",
        option: "--dedupe-keep",
        apply: |c, v| {
            c.dedupe_keep = match v.trim().parse() {
                Ok(n) if n >= 1 => n,
                _ => return Err("a whole number of at least 1"),
            };
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_DEDUPE_SETTLE",
        option: "--dedupe-settle",
        apply: |c, v| {
            c.dedupe_settle = values::duration(v).ok_or(values::DURATION_HELP)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_ORPHANS",
        option: "--orphans",
        apply: |c, v| {
            c.orphans = match v.trim() {
                "term" => Orphans::Term,
                "keep" => Orphans::Keep,
                _ => return Err("'term' or 'keep'"),
            };
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_EOF_GRACE",
        option: "--eof-grace",
        apply: |c, v| {
            c.eof_grace = values::duration(v).ok_or(values::DURATION_HELP)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_KILL_GRACE",
        option: "--kill-grace",
        apply: |c, v| {
            c.kill_grace = values::duration(v).ok_or(values::DURATION_HELP)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_STOP_GRACE",
        option: "--stop-grace",
        apply: |c, v| {
            c.stop_grace = values::duration(v).ok_or(values::DURATION_HELP)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_SCAN_INTERVAL",
        option: "--scan-interval",
        apply: |c, v| {
            c.scan_interval = match values::duration(v) {
                Some(d) if d >= Duration::from_millis(10) => d,
                _ => return Err("a duration of at least 10ms, such as 500ms, 1s, 2m"),
            };
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_DRY_RUN",
        option: "--dry-run",
        apply: |c, v| {
            c.dry_run = match v.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err("1 or 0 (also true/false, yes/no, on/off)"),
            };
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_LOG",
        option: "--log",
        apply: |c, v| {
            c.log_filter = log_filter(v)?;
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_LOG_FORMAT",
        option: "--log-format",
        apply: |c, v| {
            c.log_json = match v.trim() {
                "text" => false,
                "json" => true,
                _ => return Err("'text' or 'json'"),
            };
            Ok(())
        },
    },
    Setting {
        var: "MCPINIT_STATE_FILE",
        option: "--state-file",
        apply: |c, v| {
            c.state_file = Some(PathBuf::from(v));
            Ok(())
        },
    },
];

fn dedupe_patterns(value: &str) -> Result<Vec<String>, &'static str> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(Vec::new());
    }
    let patterns: Vec<String> = value
        .split(',')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if patterns.iter().any(String::is_empty) {
        return Err("comma-separated launcher patterns such as 'npm exec,npx,uvx', or 'off'");
    }
    Ok(patterns)
}

/// env_logger's filter syntax: `level`, `module=level`, `module`, comma-separated.
/// Only mcpinit's own modules log, so a module that is not one is a typo, refused.
fn log_filter(value: &str) -> Result<String, &'static str> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.iter().any(|k| k.eq_ignore_ascii_case(l.trim()));
    let is_module = |m: &str| m.trim().starts_with("mcpinit");
    let valid = value.split(',').all(|d| match d.split_once('=') {
        Some((module, level)) => is_module(module) && is_level(level),
        None => is_level(d) || is_module(d),
    });
    if valid {
        Ok(value.trim().to_string())
    } else {
        Err("a log filter such as info, debug, or mcpinit=trace")
    }
}

/// tini's verbosity scale (1 = default) as a log level.
fn verbosity_filter(level: i64) -> &'static str {
    match level {
        i64::MIN..=0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Parse `args` (without the program name) and the environment.
pub fn parse(
    args: &[OsString],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, UsageError> {
    match args.first().and_then(|a| a.to_str()) {
        Some("status") => return parse_status(&args[1..], &env),
        Some("health") => return parse_health(&args[1..], &env),
        _ => {}
    }
    let mut config = Config::default();
    // Environment first, options after: an option wins over its variable.
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    for setting in SETTINGS {
        if let Some(value) = env(setting.var) {
            (setting.apply)(&mut config, &value).map_err(|ok| refuse(setting.var, &value, ok))?;
        }
    }
    config.kill_group = env("TINI_KILL_PROCESS_GROUP").is_some();
    let mut verbosity: Option<i64> = None;
    if let Some(value) = env("TINI_VERBOSITY") {
        let level = value
            .trim()
            .parse()
            .map_err(|_| refuse("TINI_VERBOSITY", &value, "a whole number (0 to 3)"))?;
        if env("MCPINIT_LOG").is_none() {
            config.log_filter = verbosity_filter(level).into();
        }
    }

    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else {
            config.command.push(arg.clone());
            break;
        };
        if text == "--" {
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match name {
                "help" => return Ok(Invocation::Help),
                "version" => return Ok(Invocation::Version),
                "dry-run" if inline.is_none() => config.dry_run = true,
                _ => {
                    let option = format!("--{name}");
                    let setting = SETTINGS
                        .iter()
                        .find(|s| s.option == option)
                        .ok_or_else(|| usage_error(format!("unknown option '{option}'")))?;
                    let value = match inline {
                        Some(v) => v,
                        None => next_value(&mut rest, &option)?,
                    };
                    if value.is_empty() {
                        return Err(refuse(&option, &value, "a value"));
                    }
                    (setting.apply)(&mut config, &value)
                        .map_err(|ok| refuse(&option, &value, ok))?;
                }
            }
        } else if text.len() > 1 && text.starts_with('-') {
            let flags = &text[1..];
            for (i, flag) in flags.char_indices() {
                let attached = &flags[i + flag.len_utf8()..];
                let mut value = |name: &str| -> Result<String, UsageError> {
                    if attached.is_empty() {
                        next_value(&mut rest, name)
                    } else {
                        Ok(attached.to_string())
                    }
                };
                match flag {
                    's' => {} // always a subreaper when not PID 1
                    'g' => config.kill_group = true,
                    'w' => config.warn_on_reap = true,
                    'v' => verbosity = Some(verbosity.unwrap_or(1) + 1),
                    'h' => return Ok(Invocation::Help),
                    'V' => return Ok(Invocation::Version),
                    'e' => {
                        let v = value("-e")?;
                        let code = v
                            .parse()
                            .ok()
                            .filter(|c| (0..=255).contains(c))
                            .ok_or_else(|| refuse("-e", &v, "an exit code from 0 to 255"))?;
                        config.expect_zero.push(code);
                        break;
                    }
                    'p' => {
                        let v = value("-p")?;
                        let signal = values::signal(&v).ok_or_else(|| {
                            refuse("-p", &v, "a signal name or number such as SIGKILL or 9")
                        })?;
                        config.parent_death_signal = Some(signal);
                        break;
                    }
                    _ => return Err(usage_error(format!("unknown option '-{flag}'"))),
                }
            }
        } else {
            config.command.push(arg.clone());
            break;
        }
    }
    config.command.extend(rest.cloned());
    if let Some(level) = verbosity {
        config.log_filter = verbosity_filter(level).into();
    }
    if config.command.is_empty() {
        return Err(usage_error("no command given".into()));
    }
    Ok(Invocation::Run(Box::new(config)))
}

fn next_value<'a>(
    rest: &mut impl Iterator<Item = &'a OsString>,
    option: &str,
) -> Result<String, UsageError> {
    match rest.next().map(|v| v.to_str()) {
        Some(Some(v)) => Ok(v.to_string()),
        Some(None) => Err(usage_error(format!("{option}: value is not valid UTF-8"))),
        None => Err(usage_error(format!("{option} needs a value"))),
    }
}

fn state_file_option(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    json_allowed: bool,
    subcommand: &str,
) -> Result<(bool, Option<PathBuf>), UsageError> {
    let mut json = false;
    let mut state_file = env("MCPINIT_STATE_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.to_str().unwrap_or("") {
            "--json" if json_allowed => json = true,
            "--state-file" => state_file = Some(next_value(&mut rest, "--state-file")?.into()),
            other => match other.strip_prefix("--state-file=") {
                Some(v) => state_file = Some(v.into()),
                None => {
                    return Err(usage_error(format!(
                        "unknown argument '{}' for '{subcommand}'",
                        arg.to_string_lossy()
                    )))
                }
            },
        }
    }
    Ok((json, state_file))
}

fn parse_status(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, UsageError> {
    let (json, state_file) = state_file_option(args, env, true, "status")?;
    Ok(Invocation::Status { json, state_file })
}

fn parse_health(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, UsageError> {
    let (_, state_file) = state_file_option(args, env, false, "health")?;
    Ok(Invocation::Health { state_file })
}

pub const USAGE: &str = "\
Usage: mcpinit [OPTIONS] [--] COMMAND [ARGS...]
       mcpinit status [--json] [--state-file PATH]
       mcpinit health [--state-file PATH]

A PID 1 for containers: runs COMMAND, forwards signals, reaps zombies, and
governs the process tree (dedupes npm exec/npx/uvx servers, reclaims orphans,
caps the number and memory of descendants).

tini-compatible options:
  -s            register as child subreaper (always on when not PID 1)
  -g            forward signals to the child's process group
  -e CODE       report child exit code CODE as 0 (repeatable)
  -p SIGNAL     signal to receive when mcpinit's parent dies
  -v            more verbose (repeatable: -vv)
  -w            log each reaped zombie at warning level
  -h, --help    this help;  -V, --version  the version

Governance (each option overrides its variable):
  --max-procs N           MCPINIT_MAX_PROCS       cap on live descendants (128; 0 = off)
  --max-memory SIZE       MCPINIT_MAX_MEMORY      cap on their total RSS (0 = off)
  --dedupe LIST|off       MCPINIT_DEDUPE          launchers deduped (npm exec,npx,uvx)
  --dedupe-keep N         MCPINIT_DEDUPE_KEEP     instances kept per command line (1)
  --dedupe-settle DUR     MCPINIT_DEDUPE_SETTLE   newest must live this long first (30s)
  --orphans term|keep     MCPINIT_ORPHANS         what to do with orphans (term)
  --eof-grace DUR         MCPINIT_EOF_GRACE       input closed -> SIGTERM grace; 0 = no EOF step (3s)
  --kill-grace DUR        MCPINIT_KILL_GRACE      SIGTERM -> SIGKILL grace (5s)
  --stop-grace DUR        MCPINIT_STOP_GRACE      shutdown grace (8s)
  --scan-interval DUR     MCPINIT_SCAN_INTERVAL   longest time between scans (1s)
  --dry-run               MCPINIT_DRY_RUN=1       log decisions, terminate nothing
  --log FILTER            MCPINIT_LOG             info, debug, mcpinit=trace (info)
  --log-format text|json  MCPINIT_LOG_FORMAT      log line format (text)
  --state-file PATH       MCPINIT_STATE_FILE      state for status/health

Exit status: the child's; 128+N if it died of signal N; 127 command not
found; 126 not executable; 2 bad usage or configuration.";

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
