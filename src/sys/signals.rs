//! Signal mask and dispositions: blocked first thing in mcpinit, restored in the child.
//! Signals are taken synchronously from a `signalfd` the event loop polls beside its
//! sockets (catatonit's shape), so there are no handlers at all.

use nix::errno::Errno;
use nix::sys::signal::{
    sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};

/// What mcpinit inherited, so the child can get exactly that back. SIGPIPE is kept too:
/// std's `Command` resets it to the default in the child before our pre-exec hook runs,
/// which would silently undo a parent's SIG_IGN. The dispositions are kept as libc
/// values: nix cannot turn a queried one back into a `SigAction`.
#[derive(Clone, Copy)]
pub struct Inherited {
    mask: SigSet,
    ttin: libc::sigaction,
    ttou: libc::sigaction,
    pipe: libc::sigaction,
    chld: libc::sigaction,
}

/// The set mcpinit waits on (every signal), blocked by `block_all`.
pub struct Waited(SigSet);

/// Block every signal and ignore SIGTTIN/SIGTTOU: once the child owns the terminal,
/// mcpinit is a background process and must not be stopped by it. SIGCHLD gets its
/// default disposition, whatever was inherited.
///
/// The fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT) are
/// blocked too: a real fault is forced through by the kernel, which unblocks it and
/// applies the default action (and `abort` unblocks SIGABRT itself), so blocking only
/// changes what happens to one sent with kill(1): it is forwarded like any other,
/// instead of killing mcpinit (or, as PID 1, being dropped).
///
/// Fails only on arguments the kernel calls invalid, which these are not; the caller
/// still stops rather than run as an init that signals could kill or lose.
pub fn block_all() -> Result<(Inherited, Waited), Errno> {
    // `all` is sigfillset's set: the real-time signals included.
    let set = SigSet::all();
    let mut mask = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&set), Some(&mut mask))?;
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // An inherited SIG_IGN for SIGCHLD makes the kernel reap our children itself: we
    // would never learn the main child's status and wait for it forever.
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN and SIG_DFL install no handler code, and the old actions are
    // only stored, never called, to be reinstalled as they were in the child.
    let (ttin, ttou, chld) = unsafe {
        (
            sigaction(Signal::SIGTTIN, &ignore)?,
            sigaction(Signal::SIGTTOU, &ignore)?,
            sigaction(Signal::SIGCHLD, &default)?,
        )
    };
    let mut pipe = MaybeUninit::<libc::sigaction>::zeroed();
    // libc, not nix: nix's sigaction always installs one, and SIGPIPE's disposition is
    // only read here (a null new action), left as inherited.
    // SAFETY: a null new action and a valid out-pointer; zeroed is a valid sigaction.
    Errno::result(unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), pipe.as_mut_ptr()) })?;
    Ok((
        Inherited {
            mask,
            ttin: ttin.into(),
            ttou: ttou.into(),
            // SAFETY: zero-initialised and, on success, written by the kernel.
            pipe: unsafe { pipe.assume_init() },
            chld: chld.into(),
        },
        Waited(set),
    ))
}

impl Inherited {
    /// In the forked child, before exec: async-signal-safe calls only.
    pub fn restore(&self) -> std::io::Result<()> {
        // libc: the dispositions are the kernel's own values as `block_all` read them,
        // which nix has no way to reinstall.
        // SAFETY: reinstalls actions the kernel handed out, with null old-action
        // pointers; sigaction is async-signal-safe.
        let failed = unsafe {
            libc::sigaction(libc::SIGTTIN, &self.ttin, std::ptr::null_mut()) != 0
                || libc::sigaction(libc::SIGTTOU, &self.ttou, std::ptr::null_mut()) != 0
                || libc::sigaction(libc::SIGPIPE, &self.pipe, std::ptr::null_mut()) != 0
                || libc::sigaction(libc::SIGCHLD, &self.chld, std::ptr::null_mut()) != 0
        };
        if failed {
            return Err(std::io::Error::last_os_error());
        }
        // Last: until here every signal stays blocked in the child too.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.mask), None).map_err(std::io::Error::from)
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
    /// (as `sigtimedwait` would); the mask is untouched.
    pub fn open(&self) -> std::io::Result<Signals> {
        SignalFd::with_flags(&self.0, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
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

/// Send `signal` (any number: real-time ones too, which nix's `Signal` lacks) to
/// `target` as kill(2) reads it (negative: a process group).
pub fn forward(target: i32, signal: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory.
    unsafe { libc::kill(target, signal) };
}

/// `-p`: the signal mcpinit gets when its parent dies. libc, not nix: nix's `Signal`
/// has no real-time signals, and `-p` accepts any signal number.
pub fn set_parent_death_signal(signal: i32) -> std::io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a plain integer and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
