//! Command line and environment -> one typed `Config`, validated before anything runs.
//! Every refusal is one line naming the variable or option, the value, and what is accepted.

pub mod help;
pub mod settings;
pub mod signal_names;
pub mod values;

pub use crate::config::settings::{Config, DedupeList, LogTarget, Orphans};
use crate::config::settings::{Kind, RETIRED, SETTINGS};
use crate::config::signal_names as signals;
pub use help::{usage, SYNOPSIS};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

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

fn refuse(name: &str, value: &OsStr, accepted: &str) -> UsageError {
    UsageError {
        message: format!("invalid {name} {}: expected {accepted}", shown(value)),
        usage: false,
    }
}

fn usage_error(message: String) -> UsageError {
    UsageError {
        message,
        usage: true,
    }
}

fn unknown(what: &str, arg: &[u8]) -> UsageError {
    usage_error(format!("unknown {what} {}", shown(OsStr::from_bytes(arg))))
}

/// Characters of a value shown in a refusal; the rest is summarised by its length.
const SHOWN_CHARS: usize = 64;

/// `value` quoted as one short line: control characters escaped (`\n`, `\u{1b}`),
/// bytes that are not UTF-8 as `\xff`, a long value cut and its length given. A refusal
/// is read on a terminal: it must stay one line and send no escape sequence, whatever
/// was passed.
pub fn shown(value: &OsStr) -> String {
    let bytes = value.as_bytes();
    let mut out = String::from("'");
    let mut chars = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if chars == SHOWN_CHARS {
                return format!("{out}…' ({} bytes)", bytes.len());
            }
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
            chars += 1;
        }
        for byte in chunk.invalid() {
            if chars == SHOWN_CHARS {
                return format!("{out}…' ({} bytes)", bytes.len());
            }
            out.push_str(&format!("\\x{byte:02x}"));
            chars += 1;
        }
    }
    out.push('\'');
    out
}

/// tini's verbosity scale (1 = default) as a log level.
fn verbosity_filter(level: u32) -> &'static str {
    match level {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Parse `args` (without the program name) and the environment.
///
/// Values are bytes until a setting reads them: a value that is not UTF-8 is refused
/// like any other bad value, in every form (`--opt V`, `--opt=V`, `-eV`, a variable),
/// except a state file path, which is kept byte for byte (a Linux path is bytes).
pub fn parse(
    args: &[OsString],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Invocation, UsageError> {
    // An empty variable counts as unset, as compose files often leave them.
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    match args.first().map(|a| a.as_bytes()) {
        Some(b"status") => return parse_status(&args[1..], &env),
        Some(b"health") => return parse_health(&args[1..], &env),
        _ => {}
    }
    let mut config = Config::default();
    // Environment first, options after: an option wins over its variable.
    read_environment(&mut config, &env)?;
    let mut verbosity: Option<u32> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            break;
        }
        let done = if let Some(long) = bytes.strip_prefix(b"--") {
            long_option(&mut config, long, &mut rest)?
        } else if bytes.len() > 1 && bytes[0] == b'-' {
            short_options(&mut config, &mut verbosity, &bytes[1..], &mut rest)?
        } else {
            config.command.push(arg.clone());
            break;
        };
        if let Some(invocation) = done {
            return Ok(invocation);
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

fn read_environment(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(), UsageError> {
    for setting in SETTINGS {
        if let Some(value) = env(setting.var) {
            setting
                .apply(config, &value)
                .map_err(|ok| refuse(setting.var, &value, &ok))?;
        }
    }
    for retired in RETIRED {
        if let Some(value) = env(retired.var) {
            config
                .retired
                .push(retired.warning(&value.to_string_lossy()));
        }
    }
    config.kill_group = env("TINI_KILL_PROCESS_GROUP").is_some();
    if let Some(value) = env("TINI_VERBOSITY") {
        let level = match value.to_str().map(str::trim) {
            Some("0") => 0,
            Some("1") => 1,
            Some("2") => 2,
            Some("3") => 3,
            _ => return Err(refuse("TINI_VERBOSITY", &value, "0, 1, 2 or 3")),
        };
        if env("MCPINIT_LOG").is_none() {
            config.log_filter = verbosity_filter(level).into();
        }
    }
    Ok(())
}

/// `--name`, `--name=value` or `--name value` (`long` is without the dashes). Some
/// invocation when it ends parsing (`--help`).
fn long_option<'a>(
    config: &mut Config,
    long: &[u8],
    rest: &mut impl Iterator<Item = &'a OsString>,
) -> Result<Option<Invocation>, UsageError> {
    let (name, inline) = match long.iter().position(|&b| b == b'=') {
        Some(at) => (&long[..at], Some(OsStr::from_bytes(&long[at + 1..]))),
        None => (long, None),
    };
    let option = format!("--{}", String::from_utf8_lossy(name));
    let ends = match name {
        b"help" => Some(Invocation::Help),
        b"version" => Some(Invocation::Version),
        _ => None,
    };
    if let Some(invocation) = ends {
        return match inline {
            Some(value) => Err(refuse(&option, value, "no value")),
            None => Ok(Some(invocation)),
        };
    }
    if let Some(retired) = RETIRED.iter().find(|r| r.option.as_bytes()[2..] == *name) {
        let value = match inline {
            Some(v) => v,
            None => next_value(rest, &option)?,
        };
        config
            .retired
            .push(retired.warning(&value.to_string_lossy()));
        return Ok(None);
    }
    let setting = SETTINGS
        .iter()
        .find(|s| s.option.as_bytes() == [b"--", name].concat())
        .ok_or_else(|| unknown("option", &[b"--", name].concat()))?;
    let value = match (inline, &setting.kind) {
        (Some(v), _) => v,
        // A switch alone turns it on.
        (None, Kind::Switch(_)) => OsStr::new("1"),
        (None, _) => next_value(rest, &option)?,
    };
    if value.is_empty() {
        return Err(refuse(&option, value, "a value"));
    }
    setting
        .apply(config, value)
        .map_err(|ok| refuse(&option, value, &ok))?;
    Ok(None)
}

/// tini's short options, combined (`-sgvw`) and with attached values (`-e3`).
fn short_options<'a>(
    config: &mut Config,
    verbosity: &mut Option<u32>,
    flags: &[u8],
    rest: &mut impl Iterator<Item = &'a OsString>,
) -> Result<Option<Invocation>, UsageError> {
    for (i, &flag) in flags.iter().enumerate() {
        let attached = OsStr::from_bytes(&flags[i + 1..]);
        let mut value = |name: &str| match attached.is_empty() {
            true => next_value(&mut *rest, name),
            false => Ok(attached),
        };
        match flag {
            b's' => {} // always a subreaper when not PID 1
            b'g' => config.kill_group = true,
            b'w' => config.warn_on_reap = true,
            b'v' => *verbosity = Some(verbosity.unwrap_or(1).saturating_add(1)),
            b'h' => return Ok(Some(Invocation::Help)),
            b'V' => return Ok(Some(Invocation::Version)),
            b'e' => {
                let v = value("-e")?;
                let code = v
                    .to_str()
                    .and_then(|t| t.parse().ok())
                    .filter(|c| (0..=255).contains(c))
                    .ok_or_else(|| refuse("-e", v, "an exit code from 0 to 255"))?;
                config.expect_zero.push(code);
                return Ok(None);
            }
            b'p' => {
                let v = value("-p")?;
                let signal = v.to_str().and_then(signals::number).ok_or_else(|| {
                    refuse("-p", v, "a signal name or number such as SIGKILL or 9")
                })?;
                config.parent_death_signal = Some(signal);
                return Ok(None);
            }
            // Name the flag alone when it is one byte; a non-ASCII one with the rest.
            _ if flag.is_ascii() => return Err(unknown("option", &[b'-', flag])),
            _ => return Err(unknown("option", &[b"-", &flags[i..]].concat())),
        }
    }
    Ok(None)
}

fn next_value<'a>(
    rest: &mut impl Iterator<Item = &'a OsString>,
    option: &str,
) -> Result<&'a OsStr, UsageError> {
    rest.next()
        .map(OsString::as_os_str)
        .ok_or_else(|| usage_error(format!("{option} needs a value")))
}

fn state_file_option(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
    json_allowed: bool,
    subcommand: &str,
) -> Result<(bool, Option<PathBuf>), UsageError> {
    let mut json = false;
    let mut state_file = env("MCPINIT_STATE_FILE").map(PathBuf::from);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = match arg.as_bytes() {
            b"--json" if json_allowed => {
                json = true;
                continue;
            }
            b"--state-file" => next_value(&mut rest, "--state-file")?,
            other => match other.strip_prefix(b"--state-file=") {
                Some(v) => OsStr::from_bytes(v),
                None => return Err(unknown(&format!("argument for '{subcommand}':"), other)),
            },
        };
        if value.is_empty() {
            return Err(refuse("--state-file", value, "a path"));
        }
        state_file = Some(value.into());
    }
    Ok((json, state_file))
}

fn parse_status(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Invocation, UsageError> {
    let (json, state_file) = state_file_option(args, env, true, "status")?;
    Ok(Invocation::Status { json, state_file })
}

fn parse_health(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Invocation, UsageError> {
    let (_, state_file) = state_file_option(args, env, false, "health")?;
    Ok(Invocation::Health { state_file })
}

#[cfg(test)]
mod tests;
