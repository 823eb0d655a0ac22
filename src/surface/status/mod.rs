//! `mcpinit status` and `mcpinit health`: read back the state file a running mcpinit
//! keeps (see `statefile`), check that its writer is alive, and show it to the operator:
//! a small ps/pstree grouped by unit, or the document itself with `--json`, or a
//! one-line verdict for HEALTHCHECK and exec probes. Everything here runs in the same
//! static binary, so it works in BusyBox and distroless images alike.

mod decode;
mod health;
mod render;
#[cfg(test)]
mod tests;

pub use decode::{decode, DecodeError, READ_LIMIT};
pub use health::{verdict, Unhealthy};
pub use render::{duration, render, size};

use crate::surface::statefile::{State, FALLBACK, PRIMARY};
use crate::sys::output;
use std::fmt;
use std::path::{Path, PathBuf};

pub fn status(json: bool, state_file: Option<PathBuf>) -> i32 {
    let found = match load(state_file) {
        Ok(found) => found,
        Err(error) => {
            output::err(&format!("mcpinit status: {error}\n"));
            return error.exit_code();
        }
    };
    if json {
        output::out(&found.text);
    } else {
        output::out(&render(
            &found.state,
            &found.path,
            crate::surface::statefile::unix_ms(),
        ));
    }
    0
}

pub fn health(state_file: Option<PathBuf>) -> i32 {
    let (line, code) = match load(state_file) {
        Err(error) => (format!("unhealthy: {error}"), error.exit_code()),
        Ok(found) => match verdict(&found.state, crate::surface::statefile::unix_ms()) {
            Ok(summary) => (format!("healthy: {summary}"), 0),
            Err(reason) => (format!("unhealthy: {reason}"), UNHEALTHY),
        },
    };
    output::out(&format!("{line}\n"));
    code
}

/// `health`'s exit status when the file was read and its writer runs, but what it says
/// is unhealthy (over a cap, stale, shutting down). 2 is usage, as everywhere in mcpinit
/// (and Docker reserves it); the load errors have one status each from 3 on.
pub const UNHEALTHY: i32 = 1;

/// Why no live state could be had. Each has its own exit status (`exit_code`), for
/// probes that want to tell "not running" from "something wrote garbage".
#[derive(Debug)]
pub enum LoadError {
    /// No file at any of the places looked at.
    NotFound { candidates: Vec<PathBuf> },
    /// It exists but could not be opened or read (permissions, I/O).
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A symlink, device, FIFO, socket or directory: never a file mcpinit writes.
    NotRegular { path: PathBuf, kind: &'static str },
    /// Larger than any real state file (`READ_LIMIT`).
    TooLarge { path: PathBuf, size: u64 },
    /// Not a state document.
    Corrupt { path: PathBuf, error: DecodeError },
    /// The mcpinit that wrote it is gone.
    Stale {
        path: PathBuf,
        pid: i32,
        why: StaleWhy,
    },
    /// Owned by a uid other than the running mcpinit's: planted, not written by it.
    ForeignOwner {
        path: PathBuf,
        pid: i32,
        owner: u32,
        writer: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleWhy {
    Gone,
    /// /proc has no readable entry for it and is mounted with `hidepid`: it may well
    /// run, as a user this one cannot see.
    Hidden {
        hidepid: &'static str,
    },
    /// A live process by another name: the pid was reused.
    NotMcpinit {
        comm: String,
    },
}

impl LoadError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::NotFound { .. } => 3,
            LoadError::Unreadable { .. } => 4,
            LoadError::NotRegular { .. } => 5,
            LoadError::TooLarge { .. } => 6,
            LoadError::Corrupt { .. } => 7,
            LoadError::Stale { .. } => 8,
            LoadError::ForeignOwner { .. } => 9,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let show = |p: &Path| crate::sys::output::printable(&p.display().to_string()).into_owned();
        match self {
            LoadError::NotFound { candidates } => {
                let names: Vec<String> = candidates.iter().map(|p| show(p)).collect();
                write!(
                    f,
                    "no running mcpinit found (no state file at {}); run this inside \
                     mcpinit's container, with the same MCPINIT_STATE_FILE",
                    names.join(" or ")
                )
            }
            LoadError::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", show(path))
            }
            LoadError::NotRegular { path, kind } => write!(
                f,
                "{} is {kind}, not a regular file: not a state file mcpinit writes",
                show(path)
            ),
            LoadError::TooLarge { path, size } => write!(
                f,
                "state file {} is {size} bytes, over the {} a state file can be",
                show(path),
                size_limit()
            ),
            LoadError::Corrupt {
                path,
                error: error @ DecodeError::Syntax(_),
            } => write!(
                f,
                "state file {} is corrupt ({error}); is it written by mcpinit?",
                show(path)
            ),
            LoadError::Corrupt { path, error } => {
                write!(f, "state file {} is not mcpinit's: {error}", show(path))
            }
            LoadError::Stale { path, pid, why } => {
                let why = match why {
                    StaleWhy::Gone => format!("pid {pid} is gone"),
                    StaleWhy::Hidden { hidepid } => {
                        return write!(
                            f,
                            "cannot see pid {pid} in /proc (mounted hidepid={hidepid}): mcpinit \
                             may be running as another user; run this as mcpinit's user (state \
                             file {})",
                            show(path)
                        );
                    }
                    StaleWhy::NotMcpinit { comm } => {
                        format!("pid {pid} is '{}', not mcpinit", output::printable(comm))
                    }
                };
                write!(
                    f,
                    "no running mcpinit: {why} (stale state file {})",
                    show(path)
                )
            }
            LoadError::ForeignOwner {
                path,
                pid,
                owner,
                writer,
            } => write!(
                f,
                "state file {} belongs to uid {owner}, but mcpinit (pid {pid}) runs as uid \
                 {writer}: it did not write this file",
                show(path)
            ),
        }
    }
}

fn size_limit() -> String {
    format!("{} MiB", READ_LIMIT >> 20)
}

/// The state file as read and decoded, with where it was found.
pub struct Found {
    pub path: PathBuf,
    pub text: String,
    pub state: State,
}

/// Read the state file (the given one, else /run then /tmp), decode it, and make sure
/// the mcpinit that wrote it still runs and wrote it: a stale or planted file must not
/// pass for a live one.
pub fn load(state_file: Option<PathBuf>) -> Result<Found, LoadError> {
    let candidates = match state_file {
        Some(path) => vec![path],
        None => vec![PathBuf::from(PRIMARY), PathBuf::from(FALLBACK)],
    };
    let mut found = None;
    for path in &candidates {
        if let Some(contents) = decode::read(path)? {
            found = Some((path.clone(), contents));
            break;
        }
    }
    let Some((path, contents)) = found else {
        return Err(LoadError::NotFound { candidates });
    };
    let mut state = decode(&contents.text).map_err(|error| LoadError::Corrupt {
        path: path.clone(),
        error,
    })?;
    // The heartbeat of a state that did not change is a new modification time, not a
    // rewrite (supervisor/publisher.rs): the later of the two is the last update.
    state.updated_unix_ms = state.updated_unix_ms.max(contents.modified_unix_ms);
    check_running(state.pid).map_err(|why| LoadError::Stale {
        path: path.clone(),
        pid: state.pid,
        why,
    })?;
    if let Some(writer) = effective_uid(state.pid) {
        if writer != contents.owner {
            return Err(LoadError::ForeignOwner {
                path,
                pid: state.pid,
                owner: contents.owner,
                writer,
            });
        }
    }
    Ok(Found {
        path,
        text: contents.text,
        state,
    })
}

/// The writer must be alive and be mcpinit. `docker exec` shares mcpinit's PID
/// namespace, so the pid in the file is valid here. The executable link needs ptrace
/// rights (root without CAP_SYS_PTRACE, or another user, lacks them), so `comm`, which
/// anyone may read, is the fallback.
fn check_running(pid: i32) -> Result<(), StaleWhy> {
    match crate::sys::procfs::stat_of(pid) {
        Some(stat) if !stat.is_zombie() => {}
        Some(_) => return Err(StaleWhy::Gone),
        // Unreadable: gone, or hidden from this user by hidepid.
        None => {
            let root = nix::unistd::geteuid().is_root();
            return Err(hidden_or_gone(crate::sys::procmount::hidepid(), root));
        }
    }
    if same_executable(pid) {
        return Ok(());
    }
    let comm = read_comm(&format!("/proc/{pid}/comm"));
    if !comm.is_empty() && (comm == "mcpinit" || comm == read_comm("/proc/self/comm")) {
        Ok(())
    } else {
        Err(StaleWhy::NotMcpinit { comm })
    }
}

/// Why an unreadable /proc entry is: hidden when /proc is mounted with `hidepid` and
/// the caller is not root (whom hidepid does not hide anything from).
pub(crate) fn hidden_or_gone(hidepid: Option<&'static str>, root: bool) -> StaleWhy {
    match hidepid {
        Some(hidepid) if !root => StaleWhy::Hidden { hidepid },
        _ => StaleWhy::Gone,
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

/// The effective uid `pid` runs as (the `Uid:` line of /proc/PID/status), which is the
/// owner of every file it creates. None when it cannot be read (hidepid): then nothing
/// can be said about the owner.
fn effective_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
