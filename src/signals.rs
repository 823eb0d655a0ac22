//! Signal mask and dispositions: blocked first thing in mcpinit, restored in the child.
//! Signals are taken synchronously from a `signalfd` the event loop polls beside its
//! sockets (catatonit's shape), so there are no handlers at all.
//! Also their names, as `-p` reads them and logs show them.

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

/// A signal by number (`15`), name (`SIGTERM`) or short name (`TERM`), any case.
pub fn number(text: &str) -> Option<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(number) = realtime_number(short) {
        return Some(number);
    }
    NAMES
        .iter()
        .find(|(name, _)| *name == short)
        .map(|&(_, number)| number)
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (the SIG prefix already gone), inside the
/// real-time range. The range is read at run time: glibc keeps two signals for its
/// threads (SIGRTMIN is 34) and musl three (35), so a fixed number would be wrong on one.
fn realtime_number(short: &str) -> Option<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let number = if let Some(rest) = short.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            None if rest.is_empty() => min,
            None => return None,
            Some(offset) => min.checked_add(offset.parse::<i32>().ok()?)?,
        }
    } else if let Some(rest) = short.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            None if rest.is_empty() => max,
            None => return None,
            Some(offset) => max.checked_sub(offset.parse::<i32>().ok()?)?,
        }
    } else {
        return None;
    };
    (min..=max).contains(&number).then_some(number)
}

/// The conventional name of a signal, for logs. Real-time signals are named from
/// SIGRTMIN up, as `kill -l` does for the lower half; SIGRTMAX itself keeps its name.
pub fn name(number: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|&&(_, n)| n == number) {
        return format!("SIG{name}");
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    match number {
        n if n == min => "SIGRTMIN".to_string(),
        n if n == max => "SIGRTMAX".to_string(),
        n if n > min && n < max => format!("SIGRTMIN+{}", n - min),
        n => format!("SIG{n}"),
    }
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("TERM"), Some(libc::SIGTERM));
        assert_eq!(number("sigkill"), Some(libc::SIGKILL));
        assert_eq!(number("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(number("9"), Some(9));
        assert_eq!(number("0"), None);
        assert_eq!(number("NOPE"), None);
        assert_eq!(number("999"), None);
        assert_eq!(name(libc::SIGWINCH), "SIGWINCH");
        assert_eq!(name(0), "SIG0");
        for &(_, n) in NAMES {
            assert_eq!(number(&name(n)), Some(n));
        }
    }

    #[test]
    fn realtime_names_follow_the_runtime_sigrtmin() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(name(min), "SIGRTMIN");
        assert_eq!(name(min + 1), "SIGRTMIN+1");
        assert_eq!(name(max - 1), format!("SIGRTMIN+{}", max - 1 - min));
        assert_eq!(name(max), "SIGRTMAX");
        // The ones libc keeps for itself, below SIGRTMIN, have no name.
        assert_eq!(name(min - 1), format!("SIG{}", min - 1));
        let table: &[(&str, Option<i32>)] = &[
            ("SIGRTMIN", Some(min)),
            ("rtmin", Some(min)),
            ("SIGRTMIN+1", Some(min + 1)),
            ("RTMIN+1", Some(min + 1)),
            ("rtmin+0", Some(min)),
            ("SIGRTMAX", Some(max)),
            ("RTMAX-1", Some(max - 1)),
            ("RTMIN+", None),
            ("RTMIN1", None),
            ("RTMIN-1", None),
            ("RTMIN+x", None),
            ("RTMIN+-1", None),
            ("RTMAX+1", None),
            ("RTMAX-99", None),
            ("RTMIN+2147483647", None),
        ];
        for &(text, want) in table {
            assert_eq!(number(text), want, "{text}");
        }
        for n in min..=max {
            assert_eq!(number(&name(n)), Some(n), "{}", name(n));
        }
    }
}
