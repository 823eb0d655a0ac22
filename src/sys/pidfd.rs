//! Process file descriptors: the one way mcpinit pins a process before acting on it.
//! An open pidfd refers to one process for good, so once its start time is checked
//! through /proc, nothing done through the pidfd can reach a process that reused the pid.
//!
//! libc: nix has no pidfd calls (nor does std on stable).
//!
//! # References
//! - pidfd_open(2), pidfd_send_signal(2), pidfd_getfd(2)

use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pidfd for `pid`, non-blocking (a wait on it never blocks the loop).
pub fn open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and touches no memory.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a non-negative result is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Send `signal` to the process `pidfd` refers to.
pub fn send_signal(pidfd: &OwnedFd, signal: i32) -> Result<(), Errno> {
    // SAFETY: `pidfd` is an open pidfd; a null siginfo asks for kill(2)'s own.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<u8>(),
            0,
        )
    };
    if sent == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// A copy of the process's file descriptor `target` (close-on-exec, as the kernel
/// always sets it). Refused (EPERM) without ptrace rights over the process, and by
/// Docker's and containerd's default seccomp profiles without CAP_SYS_PTRACE.
pub fn getfd(pidfd: &OwnedFd, target: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd(pidfd, targetfd, flags) with an open pidfd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a non-negative result is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
