//! Terminations in flight: the escalations (core/escalation.rs) of every unit being
//! ended, carried out through the kernel seam. Every signal goes to a process proven to
//! be the one seen in /proc (pidfd opened, then its start time checked), so a reused
//! pid is never hit. The table is refreshed after every scan: members forked meanwhile
//! are signalled too, and a unit leaves the table only when nothing of it is alive.

use crate::core::escalation::{self, Ended, Escalation, Graces, Step, TERM};
use crate::core::input::Fallback;
use crate::core::policy::Reason;
use crate::core::process::{ProcId, Snapshot};
use crate::core::units::{Unit, UnitId};
use crate::sys::kernel::{Kernel, NotEnded};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How a termination began, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Begun {
    /// The input of this pid was shut down.
    InputClosed(i32),
    /// The input could not be closed: SIGTERM at once.
    Fallback(Fallback),
    /// The EOF step is off (`MCPINIT_EOF_GRACE=0`) or this is a dry run.
    Signalled,
    /// The input could not be closed and the unit may not be signalled: left alone.
    Spared(Fallback),
    /// The input could not be closed; the unit was made to exit 0 at once instead (the
    /// exit step), `pid` being the process made to.
    Exited { why: Fallback, pid: i32 },
}

/// What a refresh did, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The EOF grace ran out: SIGTERM sent.
    Termed {
        id: UnitId,
        /// A gateway still tracked it: a crash to it.
        crash: bool,
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
    /// The EOF grace ran out: the exit step made `pid` exit 0.
    Exited {
        id: UnitId,
        pid: i32,
    },
    /// The EOF grace ran out and the exit step could not be taken: SIGTERM sent, or
    /// nothing when the unit may not be signalled (`Spared` follows).
    ExitRefused {
        id: UnitId,
        why: NotEnded,
    },
    /// No clean end worked and the unit may not be signalled: it is left alone.
    Spared {
        id: UnitId,
        pids: Vec<i32>,
    },
}

#[derive(Default)]
pub struct Terminations {
    list: Vec<Escalation>,
    /// Dry run: units that would be ended, followed so that they are not decided on
    /// again, never signalled.
    watched: Vec<Escalation>,
    /// Units left alone (no clean end, and a signal would be a crash), by their top:
    /// not tried again while it lives.
    spared: Vec<(UnitId, Option<ProcId>)>,
}

impl Terminations {
    fn all(&self) -> impl Iterator<Item = &Escalation> {
        self.list.iter().chain(&self.watched)
    }

    pub fn busy(&self) -> HashSet<UnitId> {
        self.all().map(|e| e.id).collect()
    }

    /// The units in the table and why each is being terminated (what `status` shows).
    pub fn reasons(&self) -> HashMap<UnitId, Reason> {
        self.all().map(|e| (e.id, e.reason)).collect()
    }

    /// The pids of every unit in the table, as last seen: what the next look reads
    /// again, however settled they are.
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.all().flat_map(|e| e.members.iter().map(|m| m.pid))
    }

    /// `unit` was left alone and its top still is the process it was.
    pub fn spared(&self, unit: &Unit, snapshot: &Snapshot) -> bool {
        let top = snapshot.get(unit.top).map(|p| p.id());
        self.spared.iter().any(|&(id, t)| id == unit.id && t == top)
    }

    pub fn in_flight(&self) -> bool {
        !self.list.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.list.iter().filter_map(Escalation::deadline).min()
    }

    /// Begin terminating `unit`: close its input, or, when that is off or cannot be
    /// done, SIGTERM (and SIGCONT, so a stopped member acts on it).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        kernel: &mut impl Kernel,
        unit: &Unit,
        snapshot: &Snapshot,
        reason: Reason,
        graces: Graces,
        dry_run: bool,
        now: Instant,
    ) -> Begun {
        // unit.pids is top first: the order in which fd 0 is searched for the socket.
        let members: Vec<ProcId> = unit
            .pids
            .iter()
            .filter_map(|&pid| snapshot.get(pid).map(|p| p.id()))
            .collect();
        let begun = if dry_run || graces.eof.is_zero() {
            Begun::Signalled
        } else {
            let outside: Vec<i32> = (snapshot.procs.iter())
                .filter(|p| !p.is_zombie() && !unit.pids.contains(&p.pid))
                .map(|p| p.pid)
                .collect();
            match kernel.close_input(&members, &outside) {
                Ok(pid) => Begun::InputClosed(pid),
                Err(why) => Begun::Fallback(why),
            }
        };
        let closed = matches!(begun, Begun::InputClosed(_));
        let group = unit.process_group(snapshot);
        let top = members.first().copied();
        let mut escalation =
            Escalation::begin(unit.id, group, reason, members, closed, graces, now);
        if dry_run {
            self.watched.push(escalation);
            return begun;
        }
        let why = match begun {
            Begun::Fallback(why) => why,
            Begun::Signalled => {
                // The EOF step is off: SIGTERM at once, as before it existed.
                signal(kernel, &escalation, snapshot, &escalation.members, TERM);
                self.list.push(escalation);
                return begun;
            }
            begun => {
                self.list.push(escalation);
                return begun;
            }
        };
        // No input to close on a stdio channel (a pipe, say): a tracked unit is made to
        // exit 0 at once, the clean end left; else SIGTERM, unless that would be a crash
        // that dedupe or the idle rule may not cause. Without a stdio channel
        // (/dev/null) it is no gateway's server, and a signal no gateway's crash:
        // SIGTERM at once, which a fork storm's loops also need.
        if !why.has_stdio_channel() {
            escalation.tracked = false;
        }
        let exited = (graces.exit)
            .filter(|_| escalation.tracked)
            .and_then(|_| kernel.end_cleanly(&escalation.members).ok());
        let begun = match exited {
            Some(pid) => {
                escalation.exited_at_start(now);
                Begun::Exited { why, pid }
            }
            None if !escalation::may_signal(escalation.tracked, reason) => {
                self.spared.push((unit.id, top));
                return Begun::Spared(why);
            }
            None => {
                signal(kernel, &escalation, snapshot, &escalation.members, TERM);
                Begun::Fallback(why)
            }
        };
        self.list.push(escalation);
        begun
    }

    /// After a scan: follow each unit's membership, escalate at its deadline, drop
    /// the ones that are gone.
    pub fn refresh(
        &mut self,
        kernel: &mut impl Kernel,
        snapshot: &Snapshot,
        now: Instant,
    ) -> Vec<Event> {
        self.spared.retain(|&(_, top)| {
            top.is_some_and(|t| snapshot.get(t.pid).is_some_and(|p| p.id() == t))
        });
        self.watched.retain_mut(|e| {
            e.members = e.current_members(snapshot);
            !e.members.is_empty()
        });
        let mut events = Vec::new();
        self.list.retain_mut(|e| {
            let step = e.advance(snapshot, now);
            apply(kernel, e, snapshot, step, now, &mut events)
        });
        events
    }
}

/// Carry out one step of `e`, saying what happened in `events`: whether the unit stays
/// in the table.
fn apply(
    kernel: &mut impl Kernel,
    e: &mut Escalation,
    snapshot: &Snapshot,
    step: Step,
    now: Instant,
    events: &mut Vec<Event>,
) -> bool {
    match step {
        Step::Wait => true,
        Step::Signal {
            to,
            signals,
            escalated,
        } => {
            signal(kernel, e, snapshot, &to, signals);
            if escalated {
                let (id, pgid, pids) = (e.id, e.group, e.pids());
                events.push(if signals == TERM {
                    let crash = e.tracked;
                    Event::Termed {
                        id,
                        crash,
                        pgid,
                        pids,
                    }
                } else {
                    Event::Killed { id, pgid, pids }
                });
            }
            true
        }
        Step::Exit { to } => match kernel.end_cleanly(&to) {
            Ok(pid) => {
                e.tracked = false;
                events.push(Event::Exited { id: e.id, pid });
                true
            }
            Err(why) => {
                events.push(Event::ExitRefused { id: e.id, why });
                // SIGTERM, or left alone: never another exit step.
                let next = e.exit_refused(now);
                apply(kernel, e, snapshot, next, now, events)
            }
        },
        Step::Spare => {
            events.push(spared(e));
            false
        }
        Step::Gone(ended) => {
            events.push(Event::Gone {
                id: e.id,
                reason: e.reason,
                ended,
                after: now.saturating_duration_since(e.started),
            });
            false
        }
        Step::Stuck => {
            events.push(Event::Stuck {
                id: e.id,
                pids: e.pids(),
            });
            false
        }
    }
}

fn spared(e: &Escalation) -> Event {
    Event::Spared {
        id: e.id,
        pids: e.pids(),
    }
}

/// Signal the unit with `signals`, in order: its whole group at once when `snapshot`
/// shows the group holds nothing but ours, else each member on its own. One check of
/// who is who covers all of them (a fork storm's units are ended thousands a second).
fn signal(
    kernel: &mut impl Kernel,
    e: &Escalation,
    snapshot: &Snapshot,
    members: &[ProcId],
    signals: &[i32],
) {
    match e.id {
        UnitId::Group(pgid) if snapshot.group_is_ours(pgid) => {
            kernel.send_group(pgid, members, signals);
        }
        _ => {
            for &who in members {
                kernel.send(who, signals);
            }
        }
    }
}

#[cfg(test)]
#[path = "terminate_tests.rs"]
mod tests;
