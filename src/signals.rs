//! Signal mask and dispositions: blocked first thing in mcpinit, restored in the child.
//! Signals are taken synchronously from a `signalfd` the event loop polls beside its
//! sockets (catatonit's shape), so there are no handlers at all.

use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};

/// What mcpinit inherited, so the child can get exactly that back. SIGPIPE is kept too:
/// std's `Command` resets it to the default in the child before our pre-exec hook runs,
/// which would silently undo a parent's SIG_IGN.
#[derive(Clone, Copy)]
pub struct Inherited {
    mask: libc::sigset_t,
    ttin: libc::sigaction,
    ttou: libc::sigaction,
    pipe: libc::sigaction,
    chld: libc::sigaction,
}

/// The set mcpinit waits on (every signal), blocked by `block_all`.
pub struct Waited(libc::sigset_t);

/// Block every signal and ignore SIGTTIN/SIGTTOU: once the child owns the terminal,
/// mcpinit is a background process and must not be stopped by it. SIGCHLD gets its
/// default disposition, whatever was inherited.
///
/// The fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT) are
/// blocked too: a real fault is forced through by the kernel, which unblocks it and
/// applies the default action (and `abort` unblocks SIGABRT itself), so blocking only
/// changes what happens to one sent with kill(1): it is forwarded like any other,
/// instead of killing mcpinit (or, as PID 1, being dropped).
pub fn block_all() -> (Inherited, Waited) {
    // SAFETY: plain libc calls on local, initialised sigset/sigaction values.
    unsafe {
        let mut set = empty_set();
        libc::sigfillset(&mut set);
        let mut mask = empty_set();
        libc::sigprocmask(libc::SIG_SETMASK, &set, &mut mask);
        let ignore = libc::sigaction {
            sa_sigaction: libc::SIG_IGN,
            ..MaybeUninit::zeroed().assume_init()
        };
        let mut ttin = MaybeUninit::zeroed().assume_init();
        let mut ttou = MaybeUninit::zeroed().assume_init();
        libc::sigaction(libc::SIGTTIN, &ignore, &mut ttin);
        libc::sigaction(libc::SIGTTOU, &ignore, &mut ttou);
        let mut pipe = MaybeUninit::zeroed().assume_init();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut pipe);
        // An inherited SIG_IGN for SIGCHLD makes the kernel reap our children itself:
        // we would never learn the main child's status and wait for it forever.
        let default = libc::sigaction {
            sa_sigaction: libc::SIG_DFL,
            ..MaybeUninit::zeroed().assume_init()
        };
        let mut chld = MaybeUninit::zeroed().assume_init();
        libc::sigaction(libc::SIGCHLD, &default, &mut chld);
        (
            Inherited {
                mask,
                ttin,
                ttou,
                pipe,
                chld,
            },
            Waited(set),
        )
    }
}

impl Inherited {
    /// In the forked child, before exec: async-signal-safe calls only.
    pub fn restore(&self) -> std::io::Result<()> {
        // SAFETY: restores values captured by `block_all`; all these calls are async-signal-safe.
        let failed = unsafe {
            libc::sigaction(libc::SIGTTIN, &self.ttin, std::ptr::null_mut()) != 0
                || libc::sigaction(libc::SIGTTOU, &self.ttou, std::ptr::null_mut()) != 0
                || libc::sigaction(libc::SIGPIPE, &self.pipe, std::ptr::null_mut()) != 0
                || libc::sigaction(libc::SIGCHLD, &self.chld, std::ptr::null_mut()) != 0
                || libc::sigprocmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut()) != 0
        };
        if failed {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A signal taken from the pending set: its number and who sent it.
pub struct Received {
    pub signal: i32,
    pub sender: libc::pid_t,
}

/// The blocked signals as a file descriptor: readable while one is pending.
/// Non-blocking and close-on-exec, so the child inherits neither it nor a changed mask.
pub struct Signals(SignalFd);

impl Waited {
    /// The descriptor the loop polls. Reading it takes the signal from the pending set
    /// just as `sigtimedwait` did; the mask is untouched.
    pub fn open(&self) -> std::io::Result<Signals> {
        // SAFETY: the set was filled by sigfillset in `block_all`.
        let set = unsafe { SigSet::from_sigset_t_unchecked(self.0) };
        SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map(Signals)
            .map_err(std::io::Error::from)
    }
}

impl Signals {
    /// The next pending signal, if any; never blocks.
    pub fn take(&self) -> Option<Received> {
        // Err (EINTR cannot happen with every signal blocked) reads as "none pending":
        // the fd stays readable, so the next poll returns at once and we try again.
        let info = self.0.read_signal().ok().flatten()?;
        Some(Received {
            signal: info.ssi_signo as i32,
            sender: info.ssi_pid as libc::pid_t,
        })
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn empty_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        libc::sigemptyset(&mut set);
        set
    }
}
