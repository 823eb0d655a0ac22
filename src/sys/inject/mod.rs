//! A system call made by another process, through ptrace: how mcpinit closes a
//! server's input where `pidfd_getfd` is refused (Docker's and containerd's default
//! seccomp profiles refuse it without CAP_SYS_PTRACE, and allow `ptrace` of a
//! descendant), and how it ends a server that ignores EOF with a clean exit 0.
//!
//! The route, in one routine for every architecture (the architecture is data, in
//! `x86_64.rs` and `aarch64.rs`):
//!
//! 1. open a pidfd and check the start time, so a reused pid is never touched;
//! 2. `PTRACE_SEIZE` (no option that outlives us), `PTRACE_INTERRUPT`, and wait for the
//!    stop, never longer than the budget;
//! 3. save the registers; refuse unless the thread stopped inside a system call, with
//!    the system call instruction where the architecture says;
//! 4. point the thread at that instruction with the call set up, run it to the
//!    syscall-entry stop (`PTRACE_SYSCALL`), make sure the kernel runs our number and
//!    arguments, and single-step over it: the step's SIGTRAP stops the thread in the
//!    kernel's signal code, *before* its restart logic, just as the interrupt did;
//! 5. read the result, restore the saved registers exactly and detach: the kernel then
//!    restarts (or fails with EINTR) the interrupted call as if nothing had happened.
//!
//! `exit_group` does not return: the tracer collects the exit and the real parent then
//! sees it, status 0, a clean exit.
//!
//! Signals that arrive while the thread is ours are held back (a signal delivered with
//! our registers in place would run its handler on them) and sent again, through the
//! pidfd, just before the detach.
//!
//! A thread that does not stop within the budget cannot be detached (the kernel lets a
//! tracer detach only a stopped tracee): it is kept in a list that `settle` looks at
//! again (restoring and detaching it once it stops), so a late stop never leaves a
//! process stopped for good. The caller calls `settle` from its loop.
//!
//! Chosen over a plain `PTRACE_SINGLESTEP` from the interrupt stop: on arm64 a call
//! interrupted with `-ERESTART_RESTARTBLOCK` (nanosleep, poll with a timeout) gets its
//! number register replaced by `restart_syscall` as the thread leaves that stop, so
//! the number is set again where it is final, at syscall entry. The extra stop costs a
//! few microseconds.
//!
//! # References
//! ptrace(2) (man7.org/linux/man-pages/man2/ptrace.2.html), "Group-stop", "PTRACE_EVENT
//! stops", "Syscall-stops"; arch/x86/kernel/signal.c and arch/arm64/kernel/signal.c
//! (where an interrupted call is restarted); reptyr's `ptrace_remote_syscall`.

#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod arch;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod probe;
mod procfs;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tracee;

pub use procfs::{parse_syscall, parse_threads, syscall_of, threads_of, Syscall};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use tracee::{claim, pending, settle};

use std::time::Duration;

/// A system call mcpinit makes another process make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `shutdown(fd, how)`: `how` is `libc::SHUT_RD` to close an input.
    Shutdown { fd: i32, how: i32 },
    /// `exit_group(code)`: the whole process exits with `code`, as if it had called exit.
    ExitGroup { code: i32 },
    /// `getpid()`: harmless, for the self-test.
    Getpid,
}

impl Call {
    /// The word for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Shutdown { .. } => "shutdown",
            Call::ExitGroup { .. } => "exit_group",
            Call::Getpid => "getpid",
        }
    }
}

/// Why a process was refused to a tracer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// EPERM while mcpinit runs under a seccomp filter that may refuse `ptrace`.
    Seccomp,
    /// EPERM with no tracer and no filter: another user, not dumpable, Yama.
    Permission,
    /// The process has a tracer already (a debugger, strace): one at a time.
    Traced { tracer: i32 },
}

/// Why a call was not made. After any of these the process runs on as before: its
/// registers are restored and it is detached (or, after `Timeout`, will be by `settle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// The registers did not behave as this architecture's layout says (a step ended
    /// elsewhere, the probe's getpid returned another pid), or there is no layout for
    /// it: the route must not be used.
    Arch { what: String },
    /// The process exited, or the pid is another process's now.
    Gone { pid: i32 },
    /// `PTRACE_SEIZE` refused (EPERM).
    Refused { pid: i32, cause: Refusal },
    /// The thread did not stop (or the call did not finish) within the budget.
    Timeout { pid: i32, step: &'static str },
    /// The thread was not stopped inside a system call (a busy loop, user code): nothing
    /// was changed.
    NotInSyscall { pid: i32 },
    /// Any other error of a ptrace or wait request.
    Failed {
        pid: i32,
        step: &'static str,
        errno: i32,
    },
}

impl InjectError {
    /// A short word for the log's `cause` field.
    pub fn cause(&self) -> &'static str {
        match self {
            InjectError::Arch { .. } => "arch",
            InjectError::Gone { .. } => "gone",
            InjectError::Refused {
                cause: Refusal::Seccomp,
                ..
            } => "seccomp",
            InjectError::Refused {
                cause: Refusal::Permission,
                ..
            } => "permission",
            InjectError::Refused {
                cause: Refusal::Traced { .. },
                ..
            } => "traced",
            InjectError::Timeout { .. } => "timeout",
            InjectError::NotInSyscall { .. } => "not_in_syscall",
            InjectError::Failed { .. } => "error",
        }
    }

    /// The sentence for the operator: why, and what would make it work.
    pub fn describe(&self) -> String {
        match self {
            InjectError::Arch { what } => format!("ptrace route unusable: {what}"),
            InjectError::Gone { pid } => format!("{pid} changed or exited before it was reached"),
            InjectError::Refused {
                pid,
                cause: Refusal::Seccomp,
            } => format!(
                "ptrace of {pid} refused (EPERM) under a seccomp filter; Docker's and containerd's default profiles allow it on Linux 4.8 or later, a custom profile may not"
            ),
            InjectError::Refused {
                pid,
                cause: Refusal::Permission,
            } => format!(
                "no ptrace rights over {pid} (EPERM): another user, not dumpable, or Yama's ptrace_scope 2 or 3"
            ),
            InjectError::Refused {
                pid,
                cause: Refusal::Traced { tracer },
            } => format!("{pid} is already traced by {tracer} (a debugger or strace)"),
            InjectError::Timeout { pid, step } => {
                format!("{pid} did not {step} in time; it is left to run as it was")
            }
            InjectError::NotInSyscall { pid } => format!(
                "{pid} was not waiting in a system call (busy, or in user code); it was left untouched"
            ),
            InjectError::Failed { pid, step, errno } => format!(
                "ptrace of {pid} failed at {step}: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// Make the process `pid`, started at `start` (`/proc/PID/stat` field 22, as
/// `sys::procfs` reads it), make the system call `call`, within `budget`: its result
/// (a negative errno as the kernel returns it, e.g. -107 for ENOTCONN). For
/// `ExitGroup`, `Ok(0)` once the process has exited (its parent sees the status).
///
/// The thread must be waiting in a system call (`syscall_of` tells beforehand);
/// single-threaded processes blocked in `wait4` (a launcher's `sh`) are the safest.
///
/// What the interrupted call does afterwards is what it does after a stop and SIGCONT
/// (signal(7)): `wait4`, `read`, `pause` restart; a relative sleep resumes with the
/// time left on x86_64 (on arm64 it starts again from its full length); `epoll_wait`
/// and `epoll_pwait` return EINTR, which libuv and Python retry.
///
/// Waits are by pid with `__WALL`: for an `ExitGroup` into mcpinit's own child, this
/// wait is the one that reaps it. A tracer's `waitpid(-1, …)` also returns its
/// tracees' stops: after a `Timeout`, the reap loop must hand statuses to `claim`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn inject(pid: i32, start: u64, call: Call, budget: Duration) -> Result<i64, InjectError> {
    tracee::inject(pid, start, call, budget)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn inject(_pid: i32, _start: u64, _call: Call, _budget: Duration) -> Result<i64, InjectError> {
    Err(InjectError::Arch {
        what: format!("no register layout for {}", std::env::consts::ARCH),
    })
}

/// The whole route tried on a victim mcpinit forks for the purpose: it blocks reading
/// one end of a socketpair; `getpid` must return its pid, and `shutdown(SHUT_RD)` must
/// make a send from the other end fail with EPIPE. A wrong register layout or a kernel
/// that behaves otherwise refuses the route here, once, instead of in a server.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn probe() -> Result<(), InjectError> {
    probe::probe()
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn probe() -> Result<(), InjectError> {
    inject(0, 0, Call::Getpid, Duration::ZERO).map(drop)
}

/// Without a register layout nothing is ever traced.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn settle() -> usize {
    0
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn pending() -> usize {
    0
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn claim(_pid: i32, _status: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_word_and_a_sentence_naming_the_pid() {
        let table = [
            (InjectError::Gone { pid: 7 }, "gone"),
            (
                InjectError::Refused {
                    pid: 7,
                    cause: Refusal::Seccomp,
                },
                "seccomp",
            ),
            (
                InjectError::Refused {
                    pid: 7,
                    cause: Refusal::Permission,
                },
                "permission",
            ),
            (
                InjectError::Refused {
                    pid: 7,
                    cause: Refusal::Traced { tracer: 9 },
                },
                "traced",
            ),
            (
                InjectError::Timeout {
                    pid: 7,
                    step: "stop",
                },
                "timeout",
            ),
            (InjectError::NotInSyscall { pid: 7 }, "not_in_syscall"),
            (
                InjectError::Failed {
                    pid: 7,
                    step: "detach",
                    errno: libc::EIO,
                },
                "error",
            ),
        ];
        for (error, word) in table {
            assert_eq!(error.cause(), word);
            assert!(error.describe().contains('7'), "{}", error.describe());
        }
        let arch = InjectError::Arch {
            what: "no register layout for mips".into(),
        };
        assert_eq!(arch.cause(), "arch");
        assert!(arch.describe().contains("mips"));
    }
}
