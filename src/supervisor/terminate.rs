//! Terminations in flight, in the MCP specification's stdio order: close the unit's
//! input (closeinput.rs), SIGTERM to the whole unit after the EOF grace, SIGKILL to what
//! is left after the kill grace. Every signal goes to a process proven to be the one
//! seen in /proc (pidfd opened, then its start time checked), so a reused pid is never
//! hit. The table is refreshed after every scan: members forked meanwhile are signalled
//! too, and a unit leaves the table only when nothing of it is alive.

use crate::core::input::Fallback;
use crate::core::policy::Reason;
use crate::core::process::Snapshot;
use crate::core::units::{Unit, UnitId};
use crate::sys::close_input;
use crate::sys::procfs;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A unit that survives SIGKILL this long is stuck in the kernel (D state); stop trying.
const GIVE_UP_AFTER_KILL: Duration = Duration::from_secs(30);

/// How a termination ended: the last step taken before the unit was gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its input was closed and it exited within the EOF grace, no signal sent.
    Eof,
    Term,
    Kill,
}

impl Ended {
    /// In the order of the metrics' `ended` label.
    pub const ALL: [Ended; 3] = [Ended::Eof, Ended::Term, Ended::Kill];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Eof => "eof",
            Ended::Term => "term",
            Ended::Kill => "kill",
        }
    }
}

/// The two graces of a termination. `eof` zero: the input is not closed.
#[derive(Debug, Clone, Copy)]
pub struct Graces {
    pub eof: Duration,
    pub kill: Duration,
}

/// Where a termination stands.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Input closed; SIGTERM falls due at `term_at`.
    Eof {
        term_at: Instant,
    },
    /// SIGTERM sent; SIGKILL falls due at `kill_at`.
    Term {
        kill_at: Instant,
    },
    Killed {
        at: Instant,
    },
}

pub struct Escalation {
    pub id: UnitId,
    /// For the log only: see `Unit::group`.
    group: i32,
    pub reason: Reason,
    /// (pid, start) of every member seen so far.
    members: Vec<(i32, u64)>,
    stage: Stage,
    kill_grace: Duration,
    started: Instant,
    dry_run: bool,
}

/// How a termination began, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Begun {
    /// The input of this pid was shut down.
    InputClosed(i32),
    /// The input could not be closed: SIGTERM at once.
    Fallback(Fallback),
    /// The EOF step is off (`MCPINIT_EOF_GRACE=0`) or this is a dry run.
    Signalled,
}

/// What a refresh did, for the log.
pub enum Event {
    /// The EOF grace ran out: SIGTERM sent.
    Termed {
        id: UnitId,
        /// The unit's process group (a subtree's: its top's), as at the start.
        pgid: i32,
        pids: Vec<i32>,
    },
    Killed {
        id: UnitId,
        pgid: i32,
        pids: Vec<i32>,
    },
    Gone {
        id: UnitId,
        reason: Reason,
        ended: Ended,
        after: Duration,
    },
    Stuck {
        id: UnitId,
        pids: Vec<i32>,
    },
}

#[derive(Default)]
pub struct Terminations {
    list: Vec<Escalation>,
}

impl Terminations {
    pub fn busy(&self) -> HashSet<UnitId> {
        self.list.iter().map(|e| e.id).collect()
    }

    /// The units in the table and why each is being terminated (what `status` shows).
    pub fn reasons(&self) -> HashMap<UnitId, Reason> {
        self.list.iter().map(|e| (e.id, e.reason)).collect()
    }

    /// The pids of every unit in the table, as last seen: what the next look reads
    /// again, however settled they are.
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.list
            .iter()
            .flat_map(|e| e.members.iter().map(|&(pid, _)| pid))
    }

    pub fn in_flight(&self) -> bool {
        self.list.iter().any(|e| !e.dry_run)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.list
            .iter()
            .filter(|e| !e.dry_run)
            .filter_map(|e| match e.stage {
                Stage::Eof { term_at } => Some(term_at),
                Stage::Term { kill_at } => Some(kill_at),
                Stage::Killed { .. } => None,
            })
            .min()
    }

    /// Begin terminating `unit`: close its input, or, when that is off or cannot be
    /// done, SIGTERM (and SIGCONT, so a stopped member acts on it).
    pub fn start(
        &mut self,
        unit: &Unit,
        snapshot: &Snapshot,
        reason: Reason,
        graces: Graces,
        dry_run: bool,
        now: Instant,
    ) -> Begun {
        // unit.pids is top first: the order in which fd 0 is searched for the socket.
        let members: Vec<(i32, u64)> = unit
            .pids
            .iter()
            .filter_map(|&pid| snapshot.get(pid).map(|p| (pid, p.start)))
            .collect();
        let begun = if dry_run || graces.eof.is_zero() {
            Begun::Signalled
        } else {
            match close_input::close_input(&members) {
                Ok(pid) => Begun::InputClosed(pid),
                Err(why) => Begun::Fallback(why),
            }
        };
        let stage = match begun {
            Begun::InputClosed(_) => Stage::Eof {
                term_at: now + graces.eof,
            },
            _ => Stage::Term {
                kill_at: now + graces.kill,
            },
        };
        let escalation = Escalation {
            id: unit.id,
            group: unit.process_group(snapshot),
            reason,
            members,
            stage,
            kill_grace: graces.kill,
            started: now,
            dry_run,
        };
        if !dry_run && matches!(stage, Stage::Term { .. }) {
            escalation.term(snapshot, &escalation.members);
        }
        self.list.push(escalation);
        begun
    }

    /// After a scan: follow each unit's membership, escalate at its deadline, drop
    /// the ones that are gone.
    pub fn refresh(&mut self, snapshot: &Snapshot, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        self.list.retain_mut(|e| {
            let current = e.current_members(snapshot);
            if current.is_empty() {
                if !e.dry_run {
                    events.push(Event::Gone {
                        id: e.id,
                        reason: e.reason,
                        ended: e.ended(),
                        after: now.saturating_duration_since(e.started),
                    });
                }
                return false;
            }
            if e.dry_run {
                e.members = current;
                return true;
            }
            let fresh: Vec<_> = current
                .iter()
                .filter(|m| !e.members.contains(m))
                .copied()
                .collect();
            e.members = current;
            match e.stage {
                // Members forked after the input was closed share it (or were started
                // by something that is about to read EOF): nothing to do until the grace ends.
                Stage::Eof { term_at } if now >= term_at => {
                    e.term(snapshot, &e.members);
                    e.stage = Stage::Term {
                        kill_at: now + e.kill_grace,
                    };
                    events.push(Event::Termed {
                        id: e.id,
                        pgid: e.group,
                        pids: e.pids(),
                    });
                }
                Stage::Eof { .. } => {}
                Stage::Term { kill_at } if now >= kill_at => {
                    e.signal(snapshot, &e.members, &[libc::SIGKILL]);
                    e.stage = Stage::Killed { at: now };
                    events.push(Event::Killed {
                        id: e.id,
                        pgid: e.group,
                        pids: e.pids(),
                    });
                }
                Stage::Term { .. } => e.term(snapshot, &fresh),
                Stage::Killed { at } if now.duration_since(at) > GIVE_UP_AFTER_KILL => {
                    events.push(Event::Stuck {
                        id: e.id,
                        pids: e.pids(),
                    });
                    return false;
                }
                Stage::Killed { .. } => e.signal(snapshot, &e.members, &[libc::SIGKILL]),
            }
            true
        });
        events
    }
}

impl Escalation {
    fn ended(&self) -> Ended {
        match self.stage {
            Stage::Eof { .. } => Ended::Eof,
            Stage::Term { .. } => Ended::Term,
            Stage::Killed { .. } => Ended::Kill,
        }
    }

    /// SIGTERM, then SIGCONT so that a stopped member acts on it.
    fn term(&self, snapshot: &Snapshot, members: &[(i32, u64)]) {
        self.signal(snapshot, members, &[libc::SIGTERM, libc::SIGCONT]);
    }

    fn pids(&self) -> Vec<i32> {
        self.members.iter().map(|&(pid, _)| pid).collect()
    }

    /// Live members now: the ones already known, the rest of the process group, and
    /// anything they forked into their own group since.
    fn current_members(&self, snapshot: &Snapshot) -> Vec<(i32, u64)> {
        let live = || snapshot.procs.iter().filter(|p| !p.is_zombie());
        let mut current: Vec<(i32, u64, i32)> = live()
            .filter(|p| {
                self.members.contains(&(p.pid, p.start)) || UnitId::Group(p.pgid) == self.id
            })
            .map(|p| (p.pid, p.start, p.pgid))
            .collect();
        // Bounded: each pass adds at least one process or stops.
        loop {
            let before = current.len();
            for p in live() {
                let parent_in = current
                    .iter()
                    .any(|&(pid, _, pgid)| pid == p.ppid && pgid == p.pgid);
                if parent_in && !current.iter().any(|&(pid, _, _)| pid == p.pid) {
                    current.push((p.pid, p.start, p.pgid));
                }
            }
            if current.len() == before {
                break;
            }
        }
        current
            .into_iter()
            .map(|(pid, start, _)| (pid, start))
            .collect()
    }

    /// Signal the unit with `signals`, in order: its whole group at once when `snapshot`
    /// shows the group holds nothing but ours, else each member on its own. One check of
    /// who is who covers all of them (a fork storm's units are ended thousands a second).
    fn signal(&self, snapshot: &Snapshot, members: &[(i32, u64)], signals: &[i32]) {
        let group = match self.id {
            UnitId::Group(pgid) if snapshot.group_is_ours(pgid) => Some(pgid),
            _ => None,
        };
        if let Some(pgid) = group {
            // One killpg reaches the whole group atomically, members forked this very
            // moment included; it is safe once one member proves the group still exists.
            if members
                .iter()
                .any(|&(pid, start)| verified(pid, start, Some(pgid)))
            {
                for signal in signals.iter().filter_map(|&s| Signal::try_from(s).ok()) {
                    let _ = signal::killpg(Pid::from_raw(pgid), signal);
                }
            }
            return;
        }
        for &(pid, start) in members {
            send_all(pid, start, signals);
        }
    }
}

/// Signal `pid` only if it is still the process that started at `start`.
pub fn send(pid: i32, start: u64, signal: i32) -> bool {
    send_all(pid, start, &[signal])
}

/// `send` of each of `signals`, in order, on one check: whether all were sent.
fn send_all(pid: i32, start: u64, signals: &[i32]) -> bool {
    let fd = pidfd_open(pid);
    // The open pidfd pins the process: once its start time matches, the signals cannot
    // reach a process that reused the pid. Without pidfd support (kernel < 5.3): check,
    // then signal; the window is tiny.
    if !verified(pid, start, None) {
        return false;
    }
    let mut all = true;
    for &signal in signals {
        all &= match &fd {
            Some(fd) => pidfd_send_signal(fd, signal),
            None => kill(Pid::from_raw(pid), signal),
        };
    }
    all
}

/// nix's kill, for the fixed signals terminations send (nix's `Signal` has no
/// real-time ones, which terminations never use).
fn kill(target: Pid, signal: i32) -> bool {
    Signal::try_from(signal).is_ok_and(|signal| signal::kill(target, signal).is_ok())
}

/// libc: nix has no pidfd calls (nor does std on stable).
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and touches no memory.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    // SAFETY: a non-negative result is a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_send_signal(fd: &OwnedFd, signal: i32) -> bool {
    // SAFETY: `fd` is an open pidfd; a null siginfo asks for kill(2)'s own.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<u8>(),
            0,
        )
    };
    sent == 0
}

/// `pid` still started at `start` (and is in `pgid`, when given).
fn verified(pid: i32, start: u64, pgid: Option<i32>) -> bool {
    procfs::stat_of(pid)
        .is_some_and(|s| s.start == start && pgid.is_none_or(|g| s.pgid == g) && !s.is_zombie())
}

#[cfg(test)]
#[path = "terminate_tests.rs"]
mod tests;
