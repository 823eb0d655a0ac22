//! Reading the state file back, with limits: whatever sits at the path may be hostile
//! (a FIFO, /dev/zero, a 100 MB array, a file planted by another user), and `health`
//! runs unattended every 30 s. A regular file only, opened without following a symlink
//! or blocking, at most `READ_LIMIT` bytes, decoded with errors that name the field.

use super::LoadError;
use crate::surface::statefile::State;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest state file read. One at 10,000 processes is 3.0 MB as MetaMCP leaks them,
/// and 53 MB at worst (every command line and key at the writer's cut, all escapes);
/// measured by statefile::tests::state_file_at_10_000_processes_fits_the_reader_cap.
pub const READ_LIMIT: u64 = 64 << 20;

/// The file's bytes, its owner's uid and when it was last modified (Unix ms).
pub(super) struct Contents {
    pub text: String,
    pub owner: u32,
    pub modified_unix_ms: u64,
}

/// Read `path`; Ok(None) when nothing is there.
pub(super) fn read(path: &Path) -> Result<Option<Contents>, LoadError> {
    let unreadable = |error| LoadError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    // Looked at before it is opened: opening a device or a FIFO can have effects of its
    // own (a tape rewinds, a FIFO's writer wakes).
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
        Ok(meta) => regular(path, &meta)?,
    }
    // Swapped in between the look and the open: O_NOFOLLOW refuses a symlink (ELOOP),
    // O_NONBLOCK keeps a FIFO from hanging, and fstat below sees the rest.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => LoadError::NotRegular {
                path: path.to_path_buf(),
                kind: "a symbolic link",
            },
            _ => unreadable(e),
        })?;
    let meta = file.metadata().map_err(unreadable)?;
    regular(path, &meta)?;
    let mut bytes = Vec::with_capacity(meta.len().min(READ_LIMIT) as usize + 1);
    (&mut file)
        .take(READ_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > READ_LIMIT {
        // It grew past the cap after the fstat.
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| LoadError::Corrupt {
        path: path.to_path_buf(),
        error: DecodeError::Syntax("not UTF-8 text".into()),
    })?;
    let modified_unix_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Some(Contents {
        text,
        owner: meta.uid(),
        modified_unix_ms,
    }))
}

fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), LoadError> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        if meta.len() > READ_LIMIT {
            return Err(LoadError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
            });
        }
        return Ok(());
    } else {
        crate::surface::statefile::kind_of(&kind)
    };
    Err(LoadError::NotRegular {
        path: path.to_path_buf(),
        kind: what,
    })
}

/// Why a text is not a state document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON at all (or cut short): not written by mcpinit, or not whole.
    Syntax(String),
    /// JSON, but not this schema: `field` is the path of the offending value
    /// (`processes[3].pid`; `.` for the document itself).
    Schema { field: String, message: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DecodeError::Syntax(message) => f.write_str(message),
            DecodeError::Schema { field, message } => write!(f, "field '{field}': {message}"),
        }
    }
}

/// Decode a state document. Values are only type-checked: arithmetic on them saturates,
/// so absurd numbers print absurdly instead of overflowing. serde_json bounds nesting
/// (128 levels), and skips unknown fields without keeping them.
pub fn decode(text: &str) -> Result<State, DecodeError> {
    use serde_json::error::Category;
    let mut de = serde_json::Deserializer::from_str(text);
    let state: State = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => DecodeError::Schema {
                field,
                message: inner.to_string(),
            },
            Category::Syntax | Category::Eof | Category::Io => {
                DecodeError::Syntax(inner.to_string())
            }
        }
    })?;
    de.end().map_err(|e| DecodeError::Syntax(e.to_string()))?;
    Ok(state)
}
