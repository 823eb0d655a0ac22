//! Closing a server's input: the MCP specification's stdio shutdown, and the only end
//! MetaMCP does not count as a crash (a stdio server reads EOF and exits 0, while any
//! signal death of an instance it tracks wipes the whole server).
//!
//! The server's fd 0 is one end of a Unix socketpair; the backend holds the other.
//! mcpinit takes a copy of it (`pidfd_getfd`), shuts down the copy's read side, which
//! is the socket's, so every process holding it reads EOF, and closes the copy. A
//! launcher may keep the socket at fd 0 while its child moves its own stdin elsewhere
//! (`uv` does, for Python), so the unit's processes are searched top first.
//!
//! When the input cannot be closed, the caller falls back to SIGTERM and logs the
//! `Fallback` said here.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// What a process's fd 0 is, from its `/proc/PID/fd/0` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `socket:[INODE]`.
    Socket(u64),
    Pipe,
    Tty,
    /// Anything else: `/dev/null`, a file.
    Other(String),
    /// No fd 0, or the process is gone.
    Closed,
}

/// Why the input of a unit was not closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `pidfd_open` or `pidfd_getfd` is missing: kernel older than 5.3 / 5.6.
    NoSyscall,
    /// EPERM from `pidfd_getfd`: under a seccomp filter (Docker's default profile allows
    /// it only with CAP_SYS_PTRACE), or no ptrace rights over the process.
    Refused { pid: i32, seccomp: bool },
    /// No process of the unit has a socket at fd 0: what the top's fd 0 is instead.
    NotSocket(Input),
    /// The socket is mcpinit's own fd 0, which the main child shares: shutting it down
    /// would end the main child's input too.
    Shared { pid: i32 },
    /// The process changed or vanished between the look and the copy.
    Gone { pid: i32 },
    /// Any other error of the copy or of shutdown(2).
    Failed { pid: i32, errno: i32 },
}

impl Fallback {
    /// A short word for the log's `cause` field.
    pub fn cause(&self) -> &'static str {
        match self {
            Fallback::NoSyscall => "kernel",
            Fallback::Refused { seccomp: true, .. } => "seccomp",
            Fallback::Refused { .. } => "permission",
            Fallback::NotSocket(Input::Pipe) => "pipe",
            Fallback::NotSocket(Input::Tty) => "tty",
            Fallback::NotSocket(Input::Closed) => "no_input",
            Fallback::NotSocket(_) => "not_socket",
            Fallback::Shared { .. } => "shared",
            Fallback::Gone { .. } => "gone",
            Fallback::Failed { .. } => "error",
        }
    }

    /// The sentence for the operator: why, and what would make it work.
    pub fn describe(&self) -> String {
        match self {
            Fallback::NoSyscall => "the kernel has no pidfd_getfd (Linux 5.6 or later is needed)".into(),
            Fallback::Refused { pid, seccomp: true } => format!(
                "pidfd_getfd on {pid} refused (EPERM) under a seccomp filter; Docker's default profile allows it only with CAP_SYS_PTRACE (cap_add: [SYS_PTRACE])"
            ),
            Fallback::Refused { pid, .. } => {
                format!("no ptrace rights over {pid} for pidfd_getfd (EPERM)")
            }
            Fallback::NotSocket(Input::Pipe) => "its fd 0 is a pipe, not a socket".into(),
            Fallback::NotSocket(Input::Tty) => "its fd 0 is a terminal, which is never shut down".into(),
            Fallback::NotSocket(Input::Closed) => "it has no fd 0".into(),
            Fallback::NotSocket(Input::Other(what)) => format!("its fd 0 is {what}, not a socket"),
            Fallback::NotSocket(Input::Socket(_)) => "its fd 0 is not a socket".into(),
            Fallback::Shared { pid } => {
                format!("the socket at fd 0 of {pid} is mcpinit's own input, shared with the main child")
            }
            Fallback::Gone { pid } => format!("{pid} changed or exited before its input was reached"),
            Fallback::Failed { pid, errno } => format!(
                "closing the input of {pid} failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// Read a `/proc/PID/fd/0` link text.
pub fn classify(link: Option<&str>) -> Input {
    let Some(link) = link else {
        return Input::Closed;
    };
    if let Some(inode) = link
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
    {
        return Input::Socket(inode);
    }
    if link.starts_with("pipe:[") {
        return Input::Pipe;
    }
    let tty = link.starts_with("/dev/pts/")
        || link.starts_with("/dev/tty")
        || link == "/dev/console"
        || link == "/dev/ptmx";
    if tty {
        Input::Tty
    } else {
        Input::Other(link.to_string())
    }
}

/// Which process's fd 0 to shut down: the first (top first) holding a socket that is
/// not `own`, mcpinit's own input. Pure, so the search is table-tested.
pub fn choose(inputs: &[(i32, Input)], own: Option<u64>) -> Result<(i32, u64), Fallback> {
    let mut shared = None;
    for (pid, input) in inputs {
        if let Input::Socket(inode) = *input {
            if Some(inode) == own {
                shared.get_or_insert(*pid);
            } else {
                return Ok((*pid, inode));
            }
        }
    }
    if let Some(pid) = shared {
        return Err(Fallback::Shared { pid });
    }
    let top = inputs.first().map_or(Input::Closed, |(_, i)| i.clone());
    Err(Fallback::NotSocket(top))
}

/// Close the input of the unit whose live members are `members` ((pid, start time),
/// top first): on success the pid whose fd 0 was shut down.
pub fn close_input(members: &[(i32, u64)]) -> Result<i32, Fallback> {
    let inputs: Vec<(i32, Input)> = members
        .iter()
        .map(|&(pid, _)| {
            (
                pid,
                classify(fd0_link(&format!("/proc/{pid}/fd/0")).as_deref()),
            )
        })
        .collect();
    let own = own_socket();
    let (pid, inode) = choose(&inputs, own)?;
    let start = members
        .iter()
        .find(|&&(p, _)| p == pid)
        .map_or(0, |&(_, s)| s);
    let copy = copy_fd0(pid, start)?;
    // fd 0 may have been replaced since the look: only that very socket is shut down,
    // never whatever (a terminal) took its place.
    let file = File::from(copy);
    match file.metadata() {
        Ok(m) if m.file_type().is_socket() && m.ino() == inode => {}
        Ok(_) => return Err(Fallback::Gone { pid }),
        Err(e) => return Err(failed(pid, e.raw_os_error())),
    }
    match nix::sys::socket::shutdown(file.as_raw_fd(), nix::sys::socket::Shutdown::Read) {
        Ok(()) => Ok(pid),
        Err(errno) => Err(Fallback::Failed {
            pid,
            errno: errno as i32,
        }),
    }
}

/// Whether inputs can be closed here at all, asked of mcpinit itself at start: a copy of
/// its own fd 0 needs no ptrace rights, so only a missing syscall or a seccomp filter
/// (Docker's default profile without CAP_SYS_PTRACE) refuses it.
pub fn available() -> Result<(), Fallback> {
    let me = std::process::id() as i32;
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, me, 0) };
    if raw < 0 {
        return match errno() {
            libc::ENOSYS => Err(Fallback::NoSyscall),
            _ => Ok(()),
        };
    }
    // SAFETY: raw is a pidfd just opened and owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    // SAFETY: pidfd_getfd(pidfd, targetfd, flags) with a live pidfd we own.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), 0, 0) };
    if raw >= 0 {
        // SAFETY: raw is a new fd owned by nobody else; dropping it closes it.
        drop(unsafe { OwnedFd::from_raw_fd(raw as RawFd) });
        return Ok(());
    }
    match errno() {
        libc::ENOSYS => Err(Fallback::NoSyscall),
        libc::EPERM => Err(Fallback::Refused {
            pid: me,
            seccomp: under_seccomp(),
        }),
        // EBADF: no fd 0 of our own, which says nothing about the servers'.
        _ => Ok(()),
    }
}

/// mcpinit's own input socket, read once: nothing in mcpinit ever replaces its fd 0,
/// and a storm ends thousands of units a second.
fn own_socket() -> Option<u64> {
    static OWN: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| match classify(fd0_link("/proc/self/fd/0").as_deref()) {
        Input::Socket(inode) => Some(inode),
        _ => None,
    })
}

fn fd0_link(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

fn failed(pid: i32, errno: Option<i32>) -> Fallback {
    Fallback::Failed {
        pid,
        errno: errno.unwrap_or(libc::EIO),
    }
}

/// A copy of fd 0 of `pid`, proven to be the process that started at `start`: the
/// pidfd pins it, so the check after opening it cannot be fooled by pid reuse.
fn copy_fd0(pid: i32, start: u64) -> Result<OwnedFd, Fallback> {
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(match errno() {
            libc::ENOSYS => Fallback::NoSyscall,
            libc::ESRCH => Fallback::Gone { pid },
            e => Fallback::Failed { pid, errno: e },
        });
    }
    // SAFETY: raw is a pidfd just opened and owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let same = crate::proctree::stat_of(pid).is_some_and(|s| s.start == start && !s.is_zombie());
    if !same {
        return Err(Fallback::Gone { pid });
    }
    // SAFETY: pidfd_getfd(pidfd, targetfd, flags) with a live pidfd we own; the result
    // is a new fd (close-on-exec, as the kernel always sets) or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), 0, 0) };
    if raw < 0 {
        return Err(match errno() {
            libc::ENOSYS => Fallback::NoSyscall,
            libc::EPERM => Fallback::Refused {
                pid,
                seccomp: under_seccomp(),
            },
            libc::ESRCH | libc::EBADF => Fallback::Gone { pid },
            e => Fallback::Failed { pid, errno: e },
        });
    }
    // SAFETY: raw is a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// mcpinit runs under a seccomp filter (`Seccomp: 2` in /proc/self/status).
fn under_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    })
}

// The effects (pidfd_getfd, shutdown, the pid-reuse check) are tested against real
// processes in a PID namespace: tests/eof.rs.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_classified() {
        let table = [
            (Some("socket:[12345]"), Input::Socket(12345)),
            (Some("pipe:[77]"), Input::Pipe),
            (Some("/dev/pts/3"), Input::Tty),
            (Some("/dev/tty1"), Input::Tty),
            (Some("/dev/console"), Input::Tty),
            (Some("/dev/null"), Input::Other("/dev/null".into())),
            (Some("socket:[x]"), Input::Other("socket:[x]".into())),
            (
                Some("anon_inode:[eventfd]"),
                Input::Other("anon_inode:[eventfd]".into()),
            ),
            (None, Input::Closed),
        ];
        for (link, want) in table {
            assert_eq!(classify(link), want, "{link:?}");
        }
    }

    #[test]
    fn the_first_socket_top_first_is_chosen() {
        use Input::*;
        type Case<'a> = (
            &'a [(i32, Input)],
            Option<u64>,
            Result<(i32, u64), Fallback>,
        );
        let table: &[Case] = &[
            // npx: every level holds the socket; the top is taken.
            (
                &[(10, Socket(5)), (11, Socket(5)), (12, Socket(5))],
                None,
                Ok((10, 5)),
            ),
            // a launcher whose top moved stdin away: found lower.
            (
                &[(10, Other("/dev/null".into())), (11, Socket(7))],
                None,
                Ok((11, 7)),
            ),
            // mcpinit's own input is never shut down; another socket lower still is.
            (&[(10, Socket(3)), (11, Socket(9))], Some(3), Ok((11, 9))),
            (
                &[(10, Socket(3))],
                Some(3),
                Err(Fallback::Shared { pid: 10 }),
            ),
            (
                &[(10, Pipe), (11, Pipe)],
                None,
                Err(Fallback::NotSocket(Pipe)),
            ),
            (&[(10, Tty)], None, Err(Fallback::NotSocket(Tty))),
            (&[], None, Err(Fallback::NotSocket(Closed))),
        ];
        for (inputs, own, want) in table {
            assert_eq!(&choose(inputs, *own), want, "{inputs:?} own {own:?}");
        }
    }
}
