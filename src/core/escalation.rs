//! One termination, as a state machine, in the MCP specification's stdio order: the
//! unit's input closed, SIGTERM to the whole unit after the EOF grace, SIGKILL to what
//! is left after the kill grace. `advance` is given a snapshot and the clock and says
//! what to send; the supervisor sends it (supervisor/terminate.rs).

use crate::core::policy::Reason;
use crate::core::process::{ProcId, Snapshot};
use crate::core::units::UnitId;
use std::time::{Duration, Instant};

/// A unit that survives SIGKILL this long is stuck in the kernel (D state); stop trying.
pub const GIVE_UP_AFTER_KILL: Duration = Duration::from_secs(30);

/// SIGTERM, then SIGCONT so that a stopped member acts on it.
pub const TERM: &[i32] = &[libc::SIGTERM, libc::SIGCONT];
pub const KILL: &[i32] = &[libc::SIGKILL];

/// How a termination ended: the last step taken before the unit was gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its input was closed and it exited within the EOF grace, no signal sent.
    Eof,
    /// It ignored EOF and was made to exit with status 0 (the exit step), no signal sent.
    Exit,
    Term,
    Kill,
}

impl Ended {
    /// In the order of the metrics' `ended` label.
    pub const ALL: [Ended; 4] = [Ended::Eof, Ended::Exit, Ended::Term, Ended::Kill];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Eof => "eof",
            Ended::Exit => "exit",
            Ended::Term => "term",
            Ended::Kill => "kill",
        }
    }
}

/// The graces of a termination. `eof` zero: the input is not closed. `exit`: how long
/// a server told to exit (the exit step) has before SIGTERM; `None`: no exit step.
#[derive(Debug, Clone, Copy)]
pub struct Graces {
    pub eof: Duration,
    pub exit: Option<Duration>,
    pub kill: Duration,
    /// A gateway still tracks the unit (it is not an orphan): a signal death of it is a
    /// crash to a gateway that counts them as MetaMCP does.
    pub tracked: bool,
}

/// Where a termination stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Input closed; the exit step or SIGTERM falls due at `term_at`.
    Eof {
        term_at: Instant,
    },
    /// Told to exit 0 (the exit step); SIGTERM falls due at `term_at`.
    Exit {
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

/// What one step of a termination asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing due.
    Wait,
    /// Send `signals` to `to`; `escalated` when this is the step to SIGTERM or SIGKILL
    /// (the log's line), not a follow-up for members forked since.
    Signal {
        to: Vec<ProcId>,
        signals: &'static [i32],
        escalated: bool,
    },
    /// Make the unit exit with status 0 (the exit step), from the inside; when that
    /// cannot be done the supervisor calls `exit_refused`.
    Exit { to: Vec<ProcId> },
    /// Nothing of the unit is alive: it ended at this stage.
    Gone(Ended),
    /// Still alive `GIVE_UP_AFTER_KILL` after SIGKILL: given up.
    Stuck,
    /// No clean end worked and the unit may not be signalled: left alone.
    Spare,
}

#[derive(Debug)]
pub struct Escalation {
    pub id: UnitId,
    /// For the log only: the unit's process group (a subtree's: its top's).
    pub group: i32,
    pub reason: Reason,
    /// Every member seen so far, top first at the start.
    pub members: Vec<ProcId>,
    pub stage: Stage,
    pub kill_grace: Duration,
    /// The exit step's grace, while the step is still to come; `None` once taken or
    /// when it is not for this unit (an orphan: no gateway tracks it any more).
    pub exit_grace: Option<Duration>,
    /// A gateway tracks it: a signal now is a crash to it. No longer once the exit step
    /// made it exit 0: what is left is orphaned.
    pub tracked: bool,
    pub started: Instant,
}

impl Escalation {
    /// A termination that begins now: at `Eof` when the input was closed, else at
    /// `Term` (the caller sends the first SIGTERM).
    pub fn begin(
        id: UnitId,
        group: i32,
        reason: Reason,
        members: Vec<ProcId>,
        input_closed: bool,
        graces: Graces,
        now: Instant,
    ) -> Escalation {
        // Without a closed input there is no clean end to wait for: SIGTERM at once.
        let stage = if input_closed {
            Stage::Eof {
                term_at: now + graces.eof,
            }
        } else {
            Stage::Term {
                kill_at: now + graces.kill,
            }
        };
        Escalation {
            id,
            group,
            reason,
            members,
            stage,
            kill_grace: graces.kill,
            exit_grace: graces.exit,
            tracked: graces.tracked,
            started: now,
        }
    }

    /// Made to exit 0 at the start, its input not closable (a pipe, /dev/null): what is
    /// left gets SIGTERM after the exit grace, as after an exit step taken later.
    pub fn exited_at_start(&mut self, now: Instant) {
        let grace = self.exit_grace.take().unwrap_or(self.kill_grace);
        self.stage = Stage::Exit {
            term_at: now + grace,
        };
        self.tracked = false;
    }

    /// The exit step could not be taken (no process of the unit could be made to
    /// exit): SIGTERM now.
    pub fn exit_refused(&mut self, now: Instant) -> Step {
        self.sigterm(now)
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.stage {
            Stage::Eof { term_at } | Stage::Exit { term_at } => Some(term_at),
            Stage::Term { kill_at } => Some(kill_at),
            Stage::Killed { .. } => None,
        }
    }

    pub fn ended(&self) -> Ended {
        match self.stage {
            Stage::Eof { .. } => Ended::Eof,
            Stage::Exit { .. } => Ended::Exit,
            Stage::Term { .. } => Ended::Term,
            Stage::Killed { .. } => Ended::Kill,
        }
    }

    pub fn pids(&self) -> Vec<i32> {
        self.members.iter().map(|m| m.pid).collect()
    }

    /// Follow the unit's membership in `snapshot` and move to the next stage when its
    /// deadline has come.
    pub fn advance(&mut self, snapshot: &Snapshot, now: Instant) -> Step {
        let current = self.current_members(snapshot);
        if current.is_empty() {
            return Step::Gone(self.ended());
        }
        let fresh: Vec<ProcId> = current
            .iter()
            .filter(|m| !self.members.contains(m))
            .copied()
            .collect();
        self.members = current;
        let all = || self.members.clone();
        match self.stage {
            // Members forked after the input was closed share it (or were started by
            // something that is about to read EOF): nothing to do until the grace ends.
            Stage::Eof { term_at } if now >= term_at => match self.exit_grace.take() {
                Some(grace) => {
                    self.stage = Stage::Exit {
                        term_at: now + grace,
                    };
                    Step::Exit { to: all() }
                }
                None => self.sigterm(now),
            },
            Stage::Exit { term_at } if now >= term_at => self.sigterm(now),
            Stage::Eof { .. } | Stage::Exit { .. } => Step::Wait,
            Stage::Term { kill_at } if now >= kill_at => {
                self.stage = Stage::Killed { at: now };
                escalate(all(), KILL)
            }
            Stage::Term { .. } if fresh.is_empty() => Step::Wait,
            Stage::Term { .. } => follow_up(fresh, TERM),
            Stage::Killed { at } if now.duration_since(at) > GIVE_UP_AFTER_KILL => Step::Stuck,
            Stage::Killed { .. } => follow_up(all(), KILL),
        }
    }

    fn sigterm(&mut self, now: Instant) -> Step {
        if !may_signal(self.tracked, self.reason) {
            return Step::Spare;
        }
        self.stage = Stage::Term {
            kill_at: now + self.kill_grace,
        };
        escalate(self.members.clone(), TERM)
    }

    /// Live members now: the ones already known, the rest of the process group, and
    /// anything they forked into their own group since.
    pub fn current_members(&self, snapshot: &Snapshot) -> Vec<ProcId> {
        let live = || snapshot.procs.iter().filter(|p| !p.is_zombie());
        let mut current: Vec<(ProcId, i32)> = live()
            .filter(|p| self.members.contains(&p.id()) || UnitId::Group(p.pgid) == self.id)
            .map(|p| (p.id(), p.pgid))
            .collect();
        // Bounded: each pass adds at least one process or stops.
        loop {
            let before = current.len();
            for p in live() {
                let parent_in = current
                    .iter()
                    .any(|&(m, pgid)| m.pid == p.ppid && pgid == p.pgid);
                if parent_in && !current.iter().any(|&(m, _)| m.pid == p.pid) {
                    current.push((p.id(), p.pgid));
                }
            }
            if current.len() == before {
                break;
            }
        }
        current.into_iter().map(|(m, _)| m).collect()
    }
}

/// Whether a unit may be signalled when no clean end worked: not an instance a gateway
/// tracks that dedupe or the idle rule ends. Only the caps, the last resort, may cost a
/// gateway a crash; such an instance is left alone instead.
pub fn may_signal(tracked: bool, reason: Reason) -> bool {
    !tracked || matches!(reason, Reason::Cap | Reason::Memory)
}

fn escalate(to: Vec<ProcId>, signals: &'static [i32]) -> Step {
    Step::Signal {
        to,
        signals,
        escalated: true,
    }
}

fn follow_up(to: Vec<ProcId>, signals: &'static [i32]) -> Step {
    Step::Signal {
        to,
        signals,
        escalated: false,
    }
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
