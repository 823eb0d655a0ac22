//! Where mcpinit is in its life: governing the tree, stopping (asked to, the main
//! child still running), or draining (the main child is gone, the rest goes too).
//! Transitions and deadlines are pure; the loop does what each phase asks.

use std::time::{Duration, Instant};

/// How a process ended, as a shell would report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

/// After SIGKILL on shutdown, how long to wait for the kernel to finish before exiting.
pub const FINAL_REAP: Duration = Duration::from_secs(2);
/// While draining after SIGKILL, how often to look for stubborn leftovers.
pub const DRAIN_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The main child runs: scans, probes, decisions, state writes.
    Running,
    /// Asked to stop (SIGTERM/SIGINT forwarded at `since`): no new decisions, only
    /// reaping until the child is gone; `killed` once the stop grace ran out.
    Stopping { since: Instant, killed: bool },
    /// The main child is gone (or given up on): everything else goes too.
    Draining { exit: Exit, stage: Drain },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Nothing signalled yet: SIGTERM (SIGKILL if the stop grace already ran out)
    /// goes to everything, and the grace runs to `grace_end`.
    Begin { grace_end: Instant, killed: bool },
    /// SIGTERM sent; SIGKILL at `kill_at`.
    Term { kill_at: Instant },
    /// SIGKILL sent; exit without the leftovers at `give_up_at`.
    Killed { give_up_at: Instant },
}

impl Phase {
    /// The operator asked to stop: the stop grace starts now (once).
    pub fn stop_asked(self, now: Instant) -> Phase {
        match self {
            Phase::Running => Phase::Stopping {
                since: now,
                killed: false,
            },
            other => other,
        }
    }

    /// The main child exited with `exit`. The grace for the rest is what is left of a
    /// stop grace already running, else a whole one.
    pub fn main_exited(self, exit: Exit, now: Instant, grace: Duration) -> Phase {
        let (grace_end, killed) = match self {
            Phase::Running => (now + grace, false),
            Phase::Stopping { since, killed } => ((since + grace).min(now + grace), killed),
            // Given up on as stuck, and reaped after all: the true status wins.
            Phase::Draining { stage, .. } => return Phase::Draining { exit, stage },
        };
        Phase::Draining {
            exit,
            stage: Drain::Begin { grace_end, killed },
        }
    }

    /// The main child's status, once it is known (or given up on).
    pub fn exit(self) -> Option<Exit> {
        match self {
            Phase::Draining { exit, .. } => Some(exit),
            _ => None,
        }
    }

    /// The main child is still ours to signal and to show.
    pub fn main_alive(self) -> bool {
        !matches!(self, Phase::Draining { .. })
    }

    /// When this phase itself next needs the loop, outside Running (where the parts
    /// answer for themselves).
    pub fn next_deadline(self, now: Instant, stop_grace: Duration) -> Option<Instant> {
        match self {
            Phase::Running => None,
            Phase::Stopping { since, killed } => {
                let extra = if killed { FINAL_REAP } else { Duration::ZERO };
                Some(since + stop_grace + extra)
            }
            Phase::Draining { stage, .. } => Some(match stage {
                Drain::Begin { .. } => now,
                Drain::Term { kill_at } => kill_at,
                // Nothing but reaping matters now; poll gently for stubborn leftovers.
                Drain::Killed { .. } => now + DRAIN_POLL,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_stop_starts_the_grace_once() {
        let t0 = Instant::now();
        let stopping = Phase::Running.stop_asked(t0);
        assert_eq!(
            stopping,
            Phase::Stopping {
                since: t0,
                killed: false
            }
        );
        assert_eq!(
            stopping.stop_asked(t0 + S),
            stopping,
            "a second SIGTERM does not restart it"
        );
        let draining = Phase::Running.main_exited(Exit::Code(0), t0, S);
        assert_eq!(draining.stop_asked(t0 + S), draining);
    }

    #[test]
    fn the_drain_inherits_what_is_left_of_a_stop_grace() {
        let t0 = Instant::now();
        let grace = 8 * S;
        let cases = [
            // (phase before, exit at, grace end, SIGKILL already sent)
            (Phase::Running, t0 + S, t0 + S + grace, false),
            (
                Phase::Stopping {
                    since: t0,
                    killed: false,
                },
                t0 + 3 * S,
                t0 + grace,
                false,
            ),
            (
                Phase::Stopping {
                    since: t0,
                    killed: true,
                },
                t0 + 9 * S,
                t0 + grace,
                true,
            ),
        ];
        for (before, at, grace_end, killed) in cases {
            let after = before.main_exited(Exit::Code(3), at, grace);
            assert_eq!(
                after,
                Phase::Draining {
                    exit: Exit::Code(3),
                    stage: Drain::Begin { grace_end, killed }
                },
                "from {before:?}"
            );
            assert_eq!(after.exit(), Some(Exit::Code(3)));
            assert!(!after.main_alive());
        }
    }

    #[test]
    fn a_late_reap_of_a_stuck_child_keeps_the_drain_going() {
        let t0 = Instant::now();
        let stage = Drain::Killed { give_up_at: t0 + S };
        let stuck = Phase::Draining {
            exit: Exit::Signal(libc::SIGKILL),
            stage,
        };
        let reaped = stuck.main_exited(Exit::Code(0), t0, S);
        assert_eq!(
            reaped,
            Phase::Draining {
                exit: Exit::Code(0),
                stage
            }
        );
    }

    #[test]
    fn each_phase_names_its_own_deadline() {
        let t0 = Instant::now();
        let grace = 8 * S;
        let exit = Exit::Code(0);
        let cases = [
            (Phase::Running, None),
            (
                Phase::Stopping {
                    since: t0,
                    killed: false,
                },
                Some(t0 + grace),
            ),
            (
                Phase::Stopping {
                    since: t0,
                    killed: true,
                },
                Some(t0 + grace + FINAL_REAP),
            ),
            (
                Phase::Draining {
                    exit,
                    stage: Drain::Begin {
                        grace_end: t0 + grace,
                        killed: false,
                    },
                },
                Some(t0),
            ),
            (
                Phase::Draining {
                    exit,
                    stage: Drain::Term {
                        kill_at: t0 + grace,
                    },
                },
                Some(t0 + grace),
            ),
            (
                Phase::Draining {
                    exit,
                    stage: Drain::Killed {
                        give_up_at: t0 + grace,
                    },
                },
                Some(t0 + DRAIN_POLL),
            ),
        ];
        for (phase, deadline) in cases {
            assert_eq!(phase.next_deadline(t0, grace), deadline, "{phase:?}");
        }
    }
}
