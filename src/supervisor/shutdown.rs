//! Shutdown after the main child exited: SIGTERM the rest, SIGKILL after the grace,
//! and the exit status.

use super::{Supervisor, FINAL_REAP};
use crate::reap::{Exit, Reaped};
use crate::terminate;
use log::{error, info, warn};
use std::time::Instant;

impl Supervisor {
    /// After the main child exited: SIGTERM the rest, SIGKILL after the grace, and
    /// report whether everything is gone (or given up on).
    pub(super) fn shutdown_step(&mut self, now: Instant) -> bool {
        match self.drain {
            None => {
                let grace_end = match self.stop_requested {
                    Some(at) => (at + self.config.stop_grace).min(now + self.config.stop_grace),
                    None => now + self.config.stop_grace,
                };
                // After the stop grace everything already had SIGKILL: only reaping is left.
                let signal = if self.stop_killed {
                    libc::SIGKILL
                } else {
                    libc::SIGTERM
                };
                let left = self.kill_everything(signal);
                if left > 0 && !self.stop_killed {
                    info!(event = "drain", processes = left; "sent SIGTERM to {left} remaining processes");
                }
                self.drain = Some((grace_end, false));
                // The state file shows the child gone, so `health` fails during the drain.
                self.state_dirty = true;
                self.state_written = None;
                self.write_state_if_due(now);
                matches!(self.reap(), Reaped::NoChildren)
            }
            Some((kill_at, false)) if now >= kill_at => {
                let left = self.kill_everything(libc::SIGKILL);
                warn!(event = "shutdown_kill", processes = left; "stop grace over, sent SIGKILL to {left} remaining processes");
                self.drain = Some((now + FINAL_REAP, true));
                false
            }
            Some((give_up_at, true)) if now >= give_up_at => {
                error!(event = "stuck"; "processes survive SIGKILL; exiting without them");
                true
            }
            Some((_, true)) => {
                self.kill_everything(libc::SIGKILL);
                false
            }
            Some(_) => false,
        }
    }

    /// Signal every descendant; returns how many were alive.
    pub(super) fn kill_everything(&mut self, signal: i32) -> usize {
        let snapshot = self.scanner.scan();
        let live: Vec<_> = snapshot.procs.iter().filter(|p| !p.is_zombie()).collect();
        if self.me == 1 {
            // As PID 1 every process in the namespace is ours: one kill(-1) reaches them
            // all, including ones forked while we speak.
            // SAFETY: plain kill(2); PID 1 itself is excluded by the kernel.
            unsafe { libc::kill(-1, signal) };
        } else {
            for p in &live {
                terminate::send(p.pid, p.start, signal);
            }
        }
        if signal == libc::SIGTERM {
            for p in &live {
                terminate::send(p.pid, p.start, libc::SIGCONT);
            }
        }
        live.len()
    }

    pub(super) fn finish(self) -> i32 {
        let exit = self.main_exit.unwrap_or(Exit::Signal(libc::SIGKILL));
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
        crate::statefile::remove(&self.state_path);
        status
    }
}
