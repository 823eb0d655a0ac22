//! The self-test of the route, on a victim mcpinit forks for it: proves at run time, on
//! this architecture and kernel, that the register layout is right and that an
//! interrupted call resumes, before any server is touched.

use super::{inject, syscall_of, Call, InjectError, Syscall};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// For each of the two calls, and for the victim to be ready. The whole probe takes
/// 0.3 to 1 ms here; this bounds it only on a starved machine (at a load average of 40
/// on 2 cores, single steps took up to 180 ms).
const BUDGET: Duration = Duration::from_millis(250);

pub(super) fn probe() -> Result<(), InjectError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| failed(0, "socketpair", e as i32))?;
    // SAFETY: fork has no preconditions; the child below makes only async-signal-safe
    // calls and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        victim(theirs.as_raw_fd(), ours.as_raw_fd());
    }
    if pid < 0 {
        return Err(failed(0, "fork", nix::errno::Errno::last() as i32));
    }
    let fd = theirs.as_raw_fd();
    drop(theirs);
    let result = check(pid, fd, ours.as_raw_fd());
    // SAFETY: kill of our own child, not yet reaped by anyone (mcpinit has one thread,
    // busy here).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    reap(pid);
    result
}

/// The victim: reads its end of the socketpair until EOF, then waits for its SIGKILL,
/// every signal blocked. Only async-signal-safe calls: the parent may have threads.
fn victim(fd: RawFd, other: RawFd) -> ! {
    // SAFETY: sigfillset/sigprocmask/close/read/pause/_exit are async-signal-safe and
    // get valid pointers to locals.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        libc::close(other);
        let mut byte = 0u8;
        loop {
            let n = libc::read(fd, (&mut byte as *mut u8).cast(), 1);
            if n == 0 {
                break;
            }
            if n < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(2);
            }
        }
        loop {
            libc::pause();
        }
    }
}

fn check(pid: i32, fd: RawFd, ours: RawFd) -> Result<(), InjectError> {
    let start = blocked_in_read(pid)?;
    let got = inject(pid, start, Call::Getpid, BUDGET)?;
    if got != i64::from(pid) {
        return Err(InjectError::Arch {
            what: format!("getpid made by {pid} returned {got}"),
        });
    }
    // Its read must have resumed, as if nothing had happened.
    blocked_in_read(pid)?;
    let how = libc::SHUT_RD;
    let got = inject(pid, start, Call::Shutdown { fd, how }, BUDGET)?;
    if got != 0 {
        return Err(InjectError::Arch {
            what: format!("shutdown({fd}, SHUT_RD) made by {pid} returned {got}"),
        });
    }
    // A peer whose read side is shut down refuses data: EPIPE (af_unix.c), while the
    // victim is alive and holds the socket.
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: send of one byte from a live buffer on a socket we own.
    let rc = unsafe { libc::send(ours, b"x".as_ptr().cast(), 1, flags) };
    let errno = nix::errno::Errno::last();
    if rc >= 0 || errno != nix::errno::Errno::EPIPE {
        return Err(InjectError::Arch {
            what: format!("after shutdown(SHUT_RD) in {pid}, a send to it gave {rc} ({errno})"),
        });
    }
    Ok(())
}

/// Wait until the victim blocks in read(2); its start time.
fn blocked_in_read(pid: i32) -> Result<u64, InjectError> {
    let deadline = Instant::now() + BUDGET;
    loop {
        if let Some(Syscall::In { nr, .. }) = syscall_of(pid) {
            if nr == libc::SYS_read {
                return crate::sys::procfs::stat_of(pid)
                    .map(|s| s.start)
                    .ok_or(InjectError::Gone { pid });
            }
        }
        if Instant::now() >= deadline {
            return Err(InjectError::Timeout {
                pid,
                step: "block in read",
            });
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Collect the killed victim, briefly; a victim not yet collected is the loop's to reap.
fn reap(pid: i32) {
    let deadline = Instant::now() + BUDGET;
    loop {
        // SAFETY: waitpid of our own child with a null status pointer.
        let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG | libc::__WALL) };
        if rc != 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn failed(pid: i32, step: &'static str, errno: i32) -> InjectError {
    InjectError::Failed { pid, step, errno }
}
