//! Stopping and draining, in one place: the stop grace while the main child still
//! runs, then SIGTERM to the rest, SIGKILL after the grace, and the exit status.

use super::{Flow, Supervisor};
use crate::core::phase::Exit;
use crate::core::phase::{Drain, Phase, FINAL_REAP};
use crate::sys::kernel;
use crate::sys::reap::Reaped;
use log::{error, info, warn};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Instant;

impl Supervisor {
    /// Asked to stop, the main child still running: SIGKILL to everything once the stop
    /// grace is over, and give up on the child if even that does not end it.
    pub(super) fn stopping(&mut self, now: Instant, since: Instant, killed: bool) -> Flow {
        let grace = self.config.stop_grace;
        if !killed && now >= since + grace {
            warn!(event = "stop_timeout", grace_ms = grace.as_millis() as u64; "child did not exit within the stop grace, sending SIGKILL to everything");
            self.kill_everything(Signal::SIGKILL);
            self.phase = Phase::Stopping {
                since,
                killed: true,
            };
        } else if killed && now >= since + grace + FINAL_REAP {
            // The child survives SIGKILL (stuck in the kernel): never wait forever.
            error!(event = "stuck", pid = self.main; "child {} survives SIGKILL; exiting without it", self.main);
            self.phase = self
                .phase
                .main_exited(Exit::Signal(libc::SIGKILL), now, grace);
        }
        Flow::Continue
    }

    /// After the main child exited: SIGTERM the rest, SIGKILL after the grace, until
    /// everything is gone (or given up on).
    pub(super) fn drain(&mut self, now: Instant, exit: Exit, stage: Drain) -> Flow {
        let next = match stage {
            Drain::Begin { grace_end, killed } => {
                // After the stop grace everything already had SIGKILL: only reaping is left.
                let signal = if killed {
                    Signal::SIGKILL
                } else {
                    Signal::SIGTERM
                };
                let left = self.kill_everything(signal);
                if left > 0 && !killed {
                    info!(event = "drain", processes = left; "sent SIGTERM to {left} remaining processes");
                }
                self.phase = Phase::Draining {
                    exit,
                    stage: Drain::Term { kill_at: grace_end },
                };
                // The state file shows the child gone, so `health` fails during the drain.
                self.publish(now);
                return match self.reap(now) {
                    Reaped::NoChildren => Flow::Done,
                    Reaped::ChildrenLeft => Flow::Continue,
                };
            }
            Drain::Term { kill_at } if now >= kill_at => {
                let left = self.kill_everything(Signal::SIGKILL);
                warn!(event = "shutdown_kill", processes = left; "stop grace over, sent SIGKILL to {left} remaining processes");
                Drain::Killed {
                    give_up_at: now + FINAL_REAP,
                }
            }
            Drain::Killed { give_up_at } if now >= give_up_at => {
                error!(event = "stuck"; "processes survive SIGKILL; exiting without them");
                return Flow::Done;
            }
            Drain::Killed { .. } => {
                self.kill_everything(Signal::SIGKILL);
                stage
            }
            Drain::Term { .. } => stage,
        };
        self.phase = Phase::Draining { exit, stage: next };
        Flow::Continue
    }

    /// Signal every descendant; returns how many were alive.
    pub(super) fn kill_everything(&mut self, signal: Signal) -> usize {
        let snapshot = self.scanner.scan();
        let live: Vec<_> = snapshot.procs.iter().filter(|p| !p.is_zombie()).collect();
        if self.me == 1 {
            // As PID 1 every process in the namespace is ours: one kill(-1) reaches them
            // all, including ones forked while we speak (PID 1 itself is excluded by
            // the kernel). ESRCH: nothing left, which is the point.
            let _ = kill(Pid::from_raw(-1), signal);
        } else {
            for p in &live {
                kernel::send(p.id(), &[signal as i32]);
            }
        }
        if signal == Signal::SIGTERM {
            for p in &live {
                kernel::send(p.id(), &[libc::SIGCONT]);
            }
        }
        live.len()
    }

    pub(super) fn finish(mut self) -> i32 {
        super::report::signal_lines(self.signal_log.flush());
        let exit = self.phase.exit().unwrap_or(Exit::Signal(libc::SIGKILL));
        // As tini: a death by signal N is 128+N first, and that too can be remapped
        // (`-e 143` for a child that ends on SIGTERM).
        let status = match exit.status() {
            code if self.config.expect_zero.contains(&code) => 0,
            code => code,
        };
        let c = &self.counters;
        info!(event = "shutdown", status = status, zombies_reaped = c.zombies_reaped,
            terminated = c.terminated_duplicate + c.terminated_orphan + c.terminated_cap + c.terminated_memory,
            escalations = c.escalations, peak_procs = c.peak_procs;
            "exiting with status {status}");
        crate::surface::statefile::remove(self.publisher.path());
        status
    }
}
