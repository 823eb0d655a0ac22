//! Signal mask and dispositions: blocked first thing in mcpinit, restored in the child.
//! Signals are taken synchronously with `sigtimedwait`, so there are no handlers at all.
//! Also their names, as `-p` reads them and logs show them.

use std::mem::MaybeUninit;
use std::time::Duration;

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

/// The set mcpinit waits on.
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

impl Waited {
    /// Wait at most `timeout` for one of the blocked signals.
    pub fn wait(&self, timeout: Duration) -> Option<Received> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: the set is initialised; info is written by the kernel on success.
        let signal = unsafe { libc::sigtimedwait(&self.0, info.as_mut_ptr(), &ts) };
        if signal <= 0 {
            return None; // EAGAIN (timeout) or EINTR
        }
        // SAFETY: sigtimedwait succeeded, so info is filled in.
        let sender = unsafe { info.assume_init().si_pid() };
        Some(Received { signal, sender })
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

/// A signal by number (`15`), name (`SIGTERM`) or short name (`TERM`), any case.
pub fn number(text: &str) -> Option<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES
        .iter()
        .find(|(name, _)| *name == short)
        .map(|&(_, number)| number)
}

/// The conventional name of a signal, for logs.
pub fn name(number: i32) -> String {
    match NAMES.iter().find(|&&(_, n)| n == number) {
        Some((name, _)) => format!("SIG{name}"),
        None => format!("SIG{number}"),
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
        assert_eq!(name(40), "SIG40");
        for &(_, n) in NAMES {
            assert_eq!(number(&name(n)), Some(n));
        }
    }
}
