//! Command line and environment -> one typed `Config`, validated before anything runs.
//! Every refusal is one line naming the variable or option, the value, and what is accepted.

pub use crate::settings::{usage, Config, DedupeList, LogTarget, Orphans, SYNOPSIS};
use crate::settings::{Kind, SETTINGS};
use crate::values;
use std::ffi::OsString;
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
            setting
                .apply(&mut config, &value)
                .map_err(|ok| refuse(setting.var, &value, &ok))?;
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
                _ => {
                    let option = format!("--{name}");
                    let setting = SETTINGS
                        .iter()
                        .find(|s| s.option == option)
                        .ok_or_else(|| usage_error(format!("unknown option '{option}'")))?;
                    let value = match (inline, &setting.kind) {
                        (Some(v), _) => v,
                        // A switch alone turns it on.
                        (None, Kind::Switch(_)) => "1".into(),
                        (None, _) => next_value(&mut rest, &option)?,
                    };
                    if value.is_empty() {
                        return Err(refuse(&option, &value, "a value"));
                    }
                    setting
                        .apply(&mut config, &value)
                        .map_err(|ok| refuse(&option, &value, &ok))?;
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

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
