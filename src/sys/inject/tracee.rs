//! One traced process and the one routine that makes it call: a state machine fed one
//! wait status at a time, driven to its end within a budget by `inject`, and, for a
//! tracee that outlived its budget, by `settle` or `claim` later.

use super::{arch, procfs, Call, InjectError, Refusal};
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;
use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// What a wait status says, for a tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `PTRACE_EVENT_STOP`: our interrupt, or a group-stop under ptrace.
    Event,
    /// Signal-delivery-stop: the thread is about to receive `0`.
    Signal(i32),
    /// Syscall-entry or -exit stop (`PTRACE_O_TRACESYSGOOD`).
    Syscall,
    /// A ptrace event we never asked for.
    Other,
    Exited(i32),
    Killed,
}

fn decode(status: i32) -> Stop {
    if libc::WIFEXITED(status) {
        return Stop::Exited(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        return Stop::Killed;
    }
    let sig = libc::WSTOPSIG(status);
    let event = status >> 16;
    if sig == libc::SIGTRAP | 0x80 {
        Stop::Syscall
    } else if event == libc::PTRACE_EVENT_STOP {
        Stop::Event
    } else if event != 0 {
        Stop::Other
    } else {
        Stop::Signal(sig)
    }
}

/// Where the tracee is in the routine.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Interrupted, waiting for it to stop.
    Stopping,
    /// Running into our call at `at`, to its syscall-entry stop.
    Entering { at: u64 },
    /// Stepping over our call at `at`.
    Stepping { at: u64 },
    /// Left its stop without us (SIGKILL): waiting to collect its exit.
    Dying,
}

impl Phase {
    fn step(self) -> &'static str {
        match self {
            Phase::Stopping => "stop",
            Phase::Entering { .. } => "enter the call",
            Phase::Stepping { .. } => "finish the call",
            Phase::Dying => "exit",
        }
    }
}

/// Whether the tracee needs another wait, or the routine is over (detached or exited).
enum Next {
    Wait,
    Done(Result<i64, InjectError>),
}

pub(super) struct Tracee {
    pid: Pid,
    /// Pins the process for `pidfd_send_signal` (None before Linux 5.3: `kill`).
    pidfd: Option<OwnedFd>,
    call: Call,
    phase: Phase,
    /// The registers as they were, once ours are in place.
    saved: Option<arch::Regs>,
    /// Signals held back while it was ours, sent again before the detach.
    held: Vec<i32>,
    /// The caller has gone (budget spent): release it at the first chance instead of
    /// starting the call.
    abandoned: bool,
}

thread_local! {
    /// Tracees that outlived their budget (mcpinit has one thread).
    static LOOSE: RefCell<Vec<Tracee>> = const { RefCell::new(Vec::new()) };
}

pub(super) fn inject(
    pid: i32,
    start: u64,
    call: Call,
    budget: Duration,
) -> Result<i64, InjectError> {
    let deadline = Instant::now() + budget;
    if pid <= 0 {
        return Err(InjectError::Gone { pid });
    }
    let pidfd = open_pidfd(pid)?;
    if !same(pid, start) {
        return Err(InjectError::Gone { pid });
    }
    let target = Pid::from_raw(pid);
    if let Err(errno) = ptrace::seize(target, ptrace::Options::PTRACE_O_TRACESYSGOOD) {
        return Err(match errno {
            Errno::ESRCH => InjectError::Gone { pid },
            Errno::EPERM => InjectError::Refused {
                pid,
                cause: refusal(pid),
            },
            e => InjectError::Failed {
                pid,
                step: "seize",
                errno: e as i32,
            },
        });
    }
    let mut tracee = Tracee {
        pid: target,
        pidfd,
        call,
        phase: Phase::Stopping,
        saved: None,
        held: Vec::new(),
        abandoned: false,
    };
    // Ours now, so its pid cannot be reused under us: one more look closes the window
    // between the first check and the seize. Still untouched, so it is only let go.
    if !same(pid, start) {
        tracee.abandoned = true;
    }
    let wrong = tracee.abandoned.then_some(InjectError::Gone { pid });
    let wrong = match ptrace::interrupt(target) {
        Ok(()) => wrong,
        // Killed between the seize and now: its exit is ours to collect.
        Err(Errno::ESRCH) => {
            tracee.phase = Phase::Dying;
            wrong
        }
        // Cannot happen to a tracee we have just seized; it is let go at its next stop.
        Err(errno) => {
            tracee.abandoned = true;
            Some(InjectError::Failed {
                pid,
                step: "interrupt",
                errno: errno as i32,
            })
        }
    };
    match (tracee.drive(deadline), wrong) {
        (Err(InjectError::Timeout { .. }), _) => {}
        (_, Some(e)) => return Err(e),
        (r, None) => return r,
    }
    // Out of budget: it cannot be detached until it stops, which it will (it is
    // interrupted). `settle` or `claim` finishes the routine then.
    let step = tracee.phase.step();
    tracee.abandoned = true;
    let _ = ptrace::interrupt(target);
    LOOSE.with(|l| l.borrow_mut().push(tracee));
    Err(InjectError::Timeout { pid, step })
}

/// Finish what tracees that outlived their budget still need (release them once they
/// stop, collect their exit): call it from the loop, a few times a second while
/// `pending()` is non-zero. Returns how many are still pending.
pub fn settle() -> usize {
    LOOSE.with(|l| {
        let mut loose = l.borrow_mut();
        loose.retain_mut(|t| loop {
            match t.poll() {
                Ok(Some(stop)) => match t.on_stop(stop) {
                    Next::Wait => continue,
                    Next::Done(r) => {
                        log::debug!(pid = t.pid.as_raw(); "ptrace: a late tracee settled: {r:?}");
                        break false;
                    }
                },
                Ok(None) => break true,
                Err(_) => break false,
            }
        });
        loose.len()
    })
}

/// How many tracees still wait for `settle`.
pub fn pending() -> usize {
    LOOSE.with(|l| l.borrow().len())
}

/// For the reap loop: a `waitpid(-1, …)` status of `pid` that may belong to a tracee
/// of ours (a tracer's wait(-1) returns its tracees' stops and exits too). True if it
/// was ours: a stop must then not be taken for anything else; an exit is still an exit
/// (of a grandchild, or of mcpinit's own child, which is then reaped).
pub fn claim(pid: i32, status: i32) -> bool {
    LOOSE.with(|l| {
        let mut loose = l.borrow_mut();
        let Some(i) = loose.iter().position(|t| t.pid.as_raw() == pid) else {
            return false;
        };
        if let Next::Done(_) = loose[i].on_stop(decode(status)) {
            loose.swap_remove(i);
        }
        true
    })
}

impl Tracee {
    /// Drive the routine until it ends or `deadline` passes.
    fn drive(&mut self, deadline: Instant) -> Result<i64, InjectError> {
        let mut pause = Duration::from_micros(10);
        loop {
            match self.poll()? {
                Some(stop) => {
                    if let Next::Done(r) = self.on_stop(stop) {
                        return r;
                    }
                    pause = Duration::from_micros(10);
                }
                None => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(InjectError::Timeout {
                            pid: self.pid.as_raw(),
                            step: self.phase.step(),
                        });
                    }
                    // Never blocks: a PID 1 must not hang on one process.
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
            }
        }
    }

    /// The next wait status of the tracee, if any.
    fn poll(&self) -> Result<Option<Stop>, InjectError> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out-pointer; __WALL because a tracee is
            // waited for whatever its exit signal.
            let rc = unsafe {
                libc::waitpid(self.pid.as_raw(), &mut status, libc::WNOHANG | libc::__WALL)
            };
            if rc > 0 {
                return Ok(Some(decode(status)));
            }
            if rc == 0 {
                return Ok(None);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                // Not ours any more (someone else collected it).
                Errno::ECHILD => {
                    return Err(InjectError::Gone {
                        pid: self.pid.as_raw(),
                    })
                }
                e => {
                    return Err(InjectError::Failed {
                        pid: self.pid.as_raw(),
                        step: "wait",
                        errno: e as i32,
                    })
                }
            }
        }
    }

    /// One step of the routine, given the stop just reported.
    fn on_stop(&mut self, stop: Stop) -> Next {
        log::trace!(pid = self.pid.as_raw(); "ptrace: {stop:?} in {:?}, held {:?}", self.phase, self.held);
        let pid = self.pid.as_raw();
        match stop {
            Stop::Exited(code) => {
                let exiting = matches!(self.call, Call::ExitGroup { .. });
                let ours = exiting && matches!(self.phase, Phase::Stepping { .. });
                return Next::Done(if ours {
                    Ok(code.into())
                } else {
                    Err(InjectError::Gone { pid })
                });
            }
            Stop::Killed => return Next::Done(Err(InjectError::Gone { pid })),
            Stop::Signal(sig) => {
                let trap = sig == libc::SIGTRAP && matches!(self.phase, Phase::Stepping { .. });
                if !trap {
                    self.held.push(sig);
                }
            }
            Stop::Event | Stop::Syscall | Stop::Other => {}
        }
        let result = match (self.phase, stop) {
            (Phase::Dying, _) => return self.release(Err(InjectError::Gone { pid })),
            (_, _) if self.abandoned && self.saved.is_none() => {
                return self.release(Err(InjectError::Gone { pid }))
            }
            (Phase::Stopping, Stop::Event) => self.begin(),
            (Phase::Stopping, _) => ptrace::cont(self.pid, None).map(|_| None),
            (Phase::Entering { at }, Stop::Syscall) => self.entered(at),
            (Phase::Entering { .. }, _) => ptrace::syscall(self.pid, None).map(|_| None),
            (Phase::Stepping { at }, Stop::Signal(libc::SIGTRAP)) => self.stepped(at),
            (Phase::Stepping { .. }, _) => ptrace::step(self.pid, None).map(|_| None),
        };
        match result {
            Ok(None) => Next::Wait,
            Ok(Some(done)) => self.release(done),
            // Left its stop: only SIGKILL does that to a tracee. Collect the exit.
            Err(Errno::ESRCH) => {
                self.phase = Phase::Dying;
                Next::Wait
            }
            Err(errno) => self.release(Err(InjectError::Failed {
                pid,
                step: self.phase.step(),
                errno: errno as i32,
            })),
        }
    }

    /// Stopped at rest: if inside a system call, set our call up and run into it.
    fn begin(&mut self) -> nix::Result<Option<Result<i64, InjectError>>> {
        let pid = self.pid.as_raw();
        let regs = arch::get(self.pid)?;
        let Some(at) = self.syscall_insn(&regs) else {
            return Ok(Some(Err(InjectError::NotInSyscall { pid })));
        };
        let (nr, args) = numbers(self.call);
        let mut ours = regs;
        arch::set_call(&mut ours, at, nr, args);
        self.saved = Some(regs);
        arch::set(self.pid, &ours)?;
        ptrace::syscall(self.pid, None)?;
        self.phase = Phase::Entering { at };
        Ok(None)
    }

    /// At the entry of our call: make sure the kernel runs ours, and step over it.
    fn entered(&mut self, at: u64) -> nix::Result<Option<Result<i64, InjectError>>> {
        let mut regs = arch::get(self.pid)?;
        if arch::ip(&regs) != at.wrapping_add(arch::INSN_LEN) {
            return Ok(Some(Err(InjectError::Arch {
                what: format!(
                    "a system call was entered at {:#x}, not from the instruction at {at:#x}",
                    arch::ip(&regs)
                ),
            })));
        }
        let (nr, args) = numbers(self.call);
        arch::fix_at_entry(self.pid, &mut regs, nr, args)?;
        ptrace::step(self.pid, None)?;
        self.phase = Phase::Stepping { at };
        Ok(None)
    }

    /// Stepped over our call: its result.
    fn stepped(&mut self, at: u64) -> nix::Result<Option<Result<i64, InjectError>>> {
        let regs = arch::get(self.pid)?;
        if arch::ip(&regs) != at.wrapping_add(arch::INSN_LEN) {
            return Ok(Some(Err(InjectError::Arch {
                what: format!(
                    "the step over the call at {at:#x} ended at {:#x}",
                    arch::ip(&regs)
                ),
            })));
        }
        Ok(Some(Ok(arch::result(&regs))))
    }

    /// Where the system call instruction is that the stopped thread is in, if it is.
    fn syscall_insn(&self, regs: &arch::Regs) -> Option<u64> {
        if !arch::in_syscall(regs) {
            return None;
        }
        arch::candidates(regs)
            .into_iter()
            .find(|&at| peek(self.pid, at, arch::INSN_LEN) == Some(arch::INSN))
    }

    /// Put the registers back, send the held signals again, detach: the thread goes on
    /// as before. Done only from a stop.
    fn release(&mut self, done: Result<i64, InjectError>) -> Next {
        let pid = self.pid.as_raw();
        if let Some(saved) = self.saved {
            match arch::set(self.pid, &saved) {
                Ok(()) => self.saved = None,
                Err(Errno::ESRCH) => {
                    self.phase = Phase::Dying;
                    return Next::Wait;
                }
                // Left as it is, it would run our call again: better killed than that.
                Err(errno) => {
                    let _ = self.signal(libc::SIGKILL);
                    self.phase = Phase::Dying;
                    self.abandoned = true;
                    log::warn!(pid = pid; "ptrace: registers not restored ({errno}); killed");
                    return Next::Wait;
                }
            }
        }
        for sig in std::mem::take(&mut self.held) {
            let _ = self.signal(sig);
        }
        match ptrace::detach(self.pid, None) {
            Ok(()) => Next::Done(done),
            Err(Errno::ESRCH) => {
                self.phase = Phase::Dying;
                Next::Wait
            }
            Err(errno) => Next::Done(Err(InjectError::Failed {
                pid,
                step: "detach",
                errno: errno as i32,
            })),
        }
    }

    /// Send `sig` to the process, through its pidfd when there is one.
    fn signal(&self, sig: i32) -> Result<(), Errno> {
        let rc = match &self.pidfd {
            // SAFETY: pidfd_send_signal(pidfd, sig, NULL, 0) with a pidfd we own.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            // SAFETY: plain kill(2).
            None => unsafe { libc::kill(self.pid.as_raw(), sig) }.into(),
        };
        Errno::result(rc).map(drop)
    }
}

/// The number and the arguments of `call` on this architecture.
fn numbers(call: Call) -> (i64, [u64; 3]) {
    match call {
        Call::Shutdown { fd, how } => (arch::NR_SHUTDOWN, [fd as u64, how as u64, 0]),
        Call::ExitGroup { code } => (arch::NR_EXIT_GROUP, [code as u64, 0, 0]),
        Call::Getpid => (arch::NR_GETPID, [0; 3]),
    }
}

/// `len` bytes of the tracee's memory at `at`, little-endian, read a word at a time on
/// word boundaries (a word read past the end of a mapping would fail).
fn peek(pid: Pid, at: u64, len: u64) -> Option<u64> {
    const WORD: u64 = std::mem::size_of::<libc::c_long>() as u64;
    let mut value = 0u64;
    for i in 0..len {
        let addr = at.checked_add(i)?;
        let base = addr & !(WORD - 1);
        let word = ptrace::read(pid, base as ptrace::AddressType).ok()? as u64;
        let byte = (word >> (8 * (addr - base))) & 0xff;
        value |= byte << (8 * i);
    }
    Some(value)
}

/// The process at `pid` is the one that started at `start`, and has not exited.
fn same(pid: i32, start: u64) -> bool {
    crate::sys::procfs::is_alive(crate::core::process::ProcId { pid, start })
}

/// Why EPERM: a tracer already, a filter, or rights.
fn refusal(pid: i32) -> Refusal {
    match procfs::tracer_of(pid) {
        Some(tracer) if tracer != 0 => Refusal::Traced { tracer },
        _ if procfs::under_seccomp() => Refusal::Seccomp,
        _ => Refusal::Permission,
    }
}

fn open_pidfd(pid: i32) -> Result<Option<OwnedFd>, InjectError> {
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw >= 0 {
        // SAFETY: raw is a pidfd just opened and owned by nobody else.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(raw as RawFd) }));
    }
    match Errno::last() {
        Errno::ESRCH => Err(InjectError::Gone { pid }),
        // Older than Linux 5.3, or a filter that refuses it: kill(2) will do.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_are_decoded() {
        let stopped = |sig: i32, event: i32| (event << 16) | (sig << 8) | 0x7f;
        let table = [
            (0, Stop::Exited(0)),
            (3 << 8, Stop::Exited(3)),
            (libc::SIGKILL, Stop::Killed),
            (stopped(libc::SIGTRAP, libc::PTRACE_EVENT_STOP), Stop::Event),
            (stopped(libc::SIGSTOP, libc::PTRACE_EVENT_STOP), Stop::Event),
            (stopped(libc::SIGTRAP | 0x80, 0), Stop::Syscall),
            (stopped(libc::SIGTRAP, 0), Stop::Signal(libc::SIGTRAP)),
            (stopped(libc::SIGCHLD, 0), Stop::Signal(libc::SIGCHLD)),
            (stopped(34, 0), Stop::Signal(34)),
            (stopped(libc::SIGTRAP, libc::PTRACE_EVENT_EXIT), Stop::Other),
        ];
        for (status, want) in table {
            assert_eq!(decode(status), want, "{status:#x}");
        }
    }

    #[test]
    fn calls_have_their_numbers() {
        assert_eq!(numbers(Call::Getpid).0, libc::SYS_getpid);
        assert_eq!(numbers(Call::ExitGroup { code: 0 }).0, libc::SYS_exit_group);
        let (nr, args) = numbers(Call::Shutdown {
            fd: 6,
            how: libc::SHUT_RD,
        });
        assert_eq!((nr, args), (libc::SYS_shutdown, [6, 0, 0]));
    }
}
