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

use crate::core::input::{choose, classify, Fallback, Input};
use crate::core::process::ProcId;
use crate::sys::{pidfd, procfs};
use nix::errno::Errno;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Close the input of the unit whose live members are `members` ((pid, start time),
/// top first): on success the pid whose fd 0 was shut down.
pub fn close_input(members: &[ProcId]) -> Result<i32, Fallback> {
    let inputs: Vec<(i32, Input)> = members
        .iter()
        .map(|&ProcId { pid, .. }| {
            (
                pid,
                classify(fd0_link(&format!("/proc/{pid}/fd/0")).as_deref()),
            )
        })
        .collect();
    let own = own_socket();
    let (pid, inode) = choose(&inputs, own)?;
    let who = members
        .iter()
        .find(|m| m.pid == pid)
        .map_or(ProcId { pid, start: 0 }, |&m| m);
    let copy = copy_fd0(who)?;
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
    let pidfd = match pidfd::open(me) {
        Ok(pidfd) => pidfd,
        Err(Errno::ENOSYS) => return Err(Fallback::NoSyscall),
        Err(_) => return Ok(()),
    };
    match pidfd::getfd(&pidfd, 0) {
        Ok(_copy) => Ok(()),
        Err(Errno::ENOSYS) => Err(Fallback::NoSyscall),
        Err(Errno::EPERM) => Err(Fallback::Refused {
            pid: me,
            seccomp: under_seccomp(),
        }),
        // EBADF: no fd 0 of our own, which says nothing about the servers'.
        Err(_) => Ok(()),
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

/// A copy of fd 0 of `who`, proven to be the process seen: the pidfd pins it, so the
/// check after opening it cannot be fooled by pid reuse.
fn copy_fd0(who: ProcId) -> Result<OwnedFd, Fallback> {
    let pid = who.pid;
    let pidfd = pidfd::open(pid).map_err(|errno| match errno {
        Errno::ENOSYS => Fallback::NoSyscall,
        Errno::ESRCH => Fallback::Gone { pid },
        e => Fallback::Failed {
            pid,
            errno: e as i32,
        },
    })?;
    if !procfs::is_alive(who) {
        return Err(Fallback::Gone { pid });
    }
    pidfd::getfd(&pidfd, 0).map_err(|errno| match errno {
        Errno::ENOSYS => Fallback::NoSyscall,
        Errno::EPERM => Fallback::Refused {
            pid,
            seccomp: under_seccomp(),
        },
        Errno::ESRCH | Errno::EBADF => Fallback::Gone { pid },
        e => Fallback::Failed {
            pid,
            errno: e as i32,
        },
    })
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

/// The exit step: not yet possible on this route.
pub fn end_cleanly(_members: &[ProcId]) -> Result<i32, crate::sys::kernel::NotEnded> {
    Err(crate::sys::kernel::NotEnded {
        cause: "no_route",
        why: "no ptrace route".into(),
    })
}
