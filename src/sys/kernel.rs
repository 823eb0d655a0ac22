//! The seam between the loop and the kernel for ending units and braking storms: the
//! few calls escalation, input closing and the brake make, as one trait. `Linux` makes
//! them; the test double in fake.rs records them, so the state machines above are
//! table-tested with deadlines, refusals and processes that vanish between look and act.

use crate::core::input::Fallback;
use crate::core::process::{ProcId, Stat};
use crate::sys::{close_input, pidfd, procfs};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

pub trait Kernel {
    /// The stat of `pid` now, if it exists.
    fn stat(&mut self, pid: i32) -> Option<Stat>;

    /// Send `signals`, in order, to `who` if it is still that process (not a zombie);
    /// whether all were sent.
    fn send(&mut self, who: ProcId, signals: &[i32]) -> bool;

    /// Send `signals` to the whole process group `pgid` at once, if one of `proof`
    /// still is the process seen and still in the group.
    fn send_group(&mut self, pgid: i32, proof: &[ProcId], signals: &[i32]) -> bool;

    /// Close the input of the unit whose live members are `members`, top first, unless
    /// one of `outside` holds it too: the pid whose socket was shut down.
    fn close_input(&mut self, members: &[ProcId], outside: &[i32]) -> Result<i32, Fallback>;

    /// Make the unit exit with status 0 from the inside (the exit step): the pid that
    /// was made to call `exit_group(0)`, or why none could be.
    fn end_cleanly(&mut self, members: &[ProcId]) -> Result<i32, NotEnded>;
}

/// Why the exit step could not be taken: a short word for logs and the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEnded {
    pub cause: &'static str,
    pub why: String,
}

/// The real kernel.
pub struct Linux;

impl Kernel for Linux {
    fn stat(&mut self, pid: i32) -> Option<Stat> {
        procfs::stat_of(pid)
    }

    fn send(&mut self, who: ProcId, signals: &[i32]) -> bool {
        send(who, signals)
    }

    fn send_group(&mut self, pgid: i32, proof: &[ProcId], signals: &[i32]) -> bool {
        let alive = |who: &ProcId| {
            procfs::stat_of(who.pid)
                .is_some_and(|s| s.start == who.start && s.pgid == pgid && !s.is_zombie())
        };
        // One killpg reaches the whole group atomically, members forked this very
        // moment included; it is safe once one member proves the group still exists.
        if !proof.iter().any(alive) {
            return false;
        }
        let mut all = true;
        for signal in signals.iter().filter_map(|&s| Signal::try_from(s).ok()) {
            all &= signal::killpg(Pid::from_raw(pgid), signal).is_ok();
        }
        all
    }

    fn close_input(&mut self, members: &[ProcId], outside: &[i32]) -> Result<i32, Fallback> {
        close_input::close_input(members, outside)
    }

    fn end_cleanly(&mut self, members: &[ProcId]) -> Result<i32, NotEnded> {
        close_input::end_cleanly(members)
    }
}

/// Signal `who`, each of `signals` in order, on one check of who it is.
pub fn send(who: ProcId, signals: &[i32]) -> bool {
    let fd = pidfd::open(who.pid).ok();
    // The open pidfd pins the process: once its start time matches, the signals cannot
    // reach a process that reused the pid. Without pidfd support (kernel < 5.3): check,
    // then signal; the window is tiny.
    if !procfs::is_alive(who) {
        return false;
    }
    signals.iter().fold(true, |all, &signal| {
        let sent = match &fd {
            Some(fd) => pidfd::send_signal(fd, signal).is_ok(),
            // nix's `Signal` has no real-time ones, which terminations never send.
            None => Signal::try_from(signal)
                .is_ok_and(|s| signal::kill(Pid::from_raw(who.pid), s).is_ok()),
        };
        sent && all
    })
}
