//! The live state for `mcpinit status` / `health`: one JSON document, replaced
//! atomically (write a temporary file, rename over) so a reader never sees half of it.

mod document;
mod view;

pub use document::{Blindness, Cgroup, Counters, Document, Role, Row, Settings, State};
pub use view::{role, Rows, View, CMDLINE_MAX};

use crate::config::Config;
use std::path::{Path, PathBuf};

pub const PRIMARY: &str = "/run/mcpinit.json";
pub const FALLBACK: &str = "/tmp/mcpinit.json";
/// The temporary file is written through a buffer of this size: a write's memory does
/// not grow with the number of processes (issue 12.10).
const WRITE_BUFFER: usize = 16 * 1024;

/// Where to write: the configured path, else /run when writable, else /tmp.
pub fn choose_path(config: &Config) -> PathBuf {
    if let Some(path) = &config.state_file {
        return path.clone();
    }
    // Whether we may create files in /run, for our effective uid (1001 may not; a
    // read-only /run says EROFS): one system call, nothing created.
    // SAFETY: a valid NUL-terminated path.
    let writable = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c"/run".as_ptr(),
            libc::W_OK,
            libc::AT_EACCESS,
        )
    };
    PathBuf::from(if writable == 0 { PRIMARY } else { FALLBACK })
}

/// Replace `path` with the document for `view` atomically. The temporary file is created
/// new (`O_EXCL | O_NOFOLLOW`) under a name nobody can guess in advance: in a shared /tmp
/// a planted symlink must not make a root mcpinit write through it. The document is
/// streamed into it through a bounded buffer, never built whole in memory.
pub fn write(path: &Path, view: &View) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), unique()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|file| {
            let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            serde_json::to_writer(&mut out, &view.document(unix_ms()))?;
            out.write_all(b"\n")?;
            out.flush()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Nanoseconds of the monotonic clock: a different temporary name at every write.
fn unique() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) ^ ts.tv_nsec as u64
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
