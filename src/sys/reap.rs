//! Reaping: collect every exited child, ours or adopted, without blocking.

use crate::core::phase::Exit;
use crate::sys::inject;

/// Outcome of one pass over the exited children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// More children are alive.
    ChildrenLeft,
    /// No child left at all: nothing of ours runs.
    NoChildren,
}

/// Reap every child that has exited, calling `each(pid, exit)` for each one.
/// Bounded: each iteration consumes one zombie, and there are finitely many.
///
/// libc, not nix: nix's `waitpid` decodes the status into its `Signal`, which has no
/// real-time signals, so a child killed by SIGRTMIN+n would come back as EINVAL after
/// the kernel had already reaped it: its status lost, the main child's exit unknown.
pub fn reap(mut each: impl FnMut(libc::pid_t, Exit)) -> Reaped {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Reaped::ChildrenLeft,
            -1 => {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Reaped::NoChildren;
            }
            // Stopped/continued children are not reported without WUNTRACED/WCONTINUED.
            // A tracer's wait(-1) also returns its tracees' stops: one of a call the
            // ptrace route left to finish later is taken by it, never read as an exit.
            pid if libc::WIFSTOPPED(status) => {
                inject::claim(pid, status);
            }
            pid => {
                inject::claim(pid, status);
                each(pid, exit_from_wait(status))
            }
        }
    }
}

/// The `Exit` a wait status says.
fn exit_from_wait(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}
