//! The live state for `mcpinit status` / `health`: one JSON document, replaced
//! atomically (write a temporary file, rename over) so a reader never sees half of it.

mod document;
mod view;

pub use document::{Blindness, Cgroup, Counters, Document, Role, Row, Settings, State};
pub use view::{cut, role, Rows, View, CMDLINE_MAX, KEY_MAX};

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
    let writable = nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        "/run",
        nix::unistd::AccessFlags::W_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok();
    PathBuf::from(if writable { PRIMARY } else { FALLBACK })
}

/// Why the state file was not written.
#[derive(Debug)]
pub enum WriteError {
    /// Something other than a regular file is at the path (a device, a symlink, a FIFO,
    /// a directory): not ours to replace. `/dev/full` must stay a device.
    NotAFile {
        kind: &'static str,
    },
    /// A regular file of another user: planted, or someone else's; left alone.
    NotOurs {
        owner: u32,
        me: u32,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            WriteError::NotAFile { kind } => {
                write!(f, "it is {kind}, not a regular file; leaving it alone")
            }
            WriteError::NotOurs { owner, me } => write!(
                f,
                "it belongs to uid {owner}, not to mcpinit's uid {me}; leaving it alone"
            ),
            WriteError::Io(e) => e.fmt(f),
        }
    }
}

impl WriteError {
    /// The errno of a failed system call, if that is what it was.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            WriteError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> WriteError {
        WriteError::Io(e)
    }
}

/// What a file other than a regular one is, for messages that refuse it.
pub(crate) fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else {
        "a block device"
    }
}

/// Whether `path` is ours to replace or remove: nothing there, or a regular file of our
/// effective uid (what a previous write of ours leaves). Checked before every rename:
/// between the check and the rename only someone who may write the directory can swap
/// the path, and in a sticky /tmp nobody may rename over another user's file.
fn ours(path: &Path) -> Result<bool, WriteError> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        let me = nix::unistd::geteuid().as_raw();
        return if meta.uid() == me {
            Ok(true)
        } else {
            Err(WriteError::NotOurs {
                owner: meta.uid(),
                me,
            })
        };
    } else {
        kind_of(&kind)
    };
    Err(WriteError::NotAFile { kind: what })
}

/// Remove the state file at exit, if it is ours (see `ours`): never a device, a
/// symlink or another user's file that happened to be at the path.
pub fn remove(path: &Path) {
    if let Ok(true) = ours(path) {
        let _ = std::fs::remove_file(path);
    }
}

/// Replace `path` with the document for `view` atomically, if the path is absent or a
/// regular file of ours; anything else is left alone (`WriteError::NotAFile`,
/// `NotOurs`). The temporary file is created
/// new (`O_EXCL | O_NOFOLLOW`) under a name nobody can guess in advance: in a shared /tmp
/// a planted symlink must not make a root mcpinit write through it. The document is
/// streamed into it through a bounded buffer, never built whole in memory. Returns the
/// file written, now at `path`, for the heartbeat (`touch`).
pub fn write(path: &Path, view: &View) -> Result<std::fs::File, WriteError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    ours(path)?;
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
            out.into_inner().map_err(|e| e.into_error())
        })
        .and_then(|file| std::fs::rename(&tmp, path).map(|()| file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// The heartbeat without a rewrite: the file written last gets a new modification
/// time, which `status` and `health` read as the time of the latest update. One
/// system call on the descriptor, so it touches our own file even if the path was
/// swapped since, and it costs the same at 10 processes as at 10,000.
pub fn touch(file: &std::fs::File) -> Result<(), WriteError> {
    use nix::sys::stat::futimens;
    use nix::sys::time::TimeSpec;
    futimens(file, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW)
        .map_err(|e| WriteError::Io(std::io::Error::from(e)))
}

/// Nanoseconds of the monotonic clock: a different temporary name at every write.
fn unique() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        (ts.tv_sec() as u64).wrapping_mul(1_000_000_000) ^ ts.tv_nsec() as u64
    })
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
