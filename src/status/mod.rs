//! `mcpinit status` and `mcpinit health`: read back the state file a running mcpinit
//! keeps (see `state`), check that its writer is alive, and show it to the operator:
//! a small ps/pstree grouped by unit, or the document itself with `--json`, or a
//! one-line verdict for HEALTHCHECK and exec probes. Everything here runs in the same
//! static binary, so it works in BusyBox and distroless images alike.

mod decode;
mod health;
mod render;
#[cfg(test)]
mod tests;

pub use decode::{Row, Settings, State};
pub use health::verdict;
pub use render::{duration, render, size};

use crate::jsonread;
use crate::output;
use crate::state::{FALLBACK, PRIMARY};
use std::path::{Path, PathBuf};

pub fn status(json: bool, state_file: Option<PathBuf>) -> i32 {
    let found = match load(state_file) {
        Ok(found) => found,
        Err(reason) => {
            output::err(&format!("mcpinit status: {reason}\n"));
            return 1;
        }
    };
    if json {
        output::out(&found.text);
    } else {
        output::out(&render(&found.state, &found.path, crate::state::unix_ms()));
    }
    0
}

pub fn health(state_file: Option<PathBuf>) -> i32 {
    let verdict = load(state_file).and_then(|found| verdict(&found.state, crate::state::unix_ms()));
    match verdict {
        Ok(summary) => {
            output::out(&format!("healthy: {summary}\n"));
            0
        }
        Err(reason) => {
            output::out(&format!("unhealthy: {reason}\n"));
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
        Some(stat) if !stat.is_zombie() => {}
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
