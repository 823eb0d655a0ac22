//! A kernel for tests: processes are a table the test writes, signals are recorded,
//! and a signal that ends a process (TERM, KILL) removes it unless the test made it
//! immune. Inputs close when the test says they can.

use super::kernel::{Kernel, NotEnded};
use crate::core::input::Fallback;
use crate::core::process::{ProcId, Stat};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Fake {
    /// The processes that exist, by pid.
    pub procs: BTreeMap<i32, Stat>,
    /// Every signal that reached a process: (pid, signal); a group's as (-pgid, signal).
    pub sent: Vec<(i32, i32)>,
    /// What closing an input answers; `None`: the top member's pid.
    pub close: Option<Fallback>,
    /// Inputs closed, by the pid the socket was shut down in.
    pub closed: Vec<i32>,
    /// Pids that ignore SIGTERM.
    pub ignore_term: Vec<i32>,
    /// What the exit step answers; `None`: every member exits 0.
    pub exit: Option<NotEnded>,
    /// Pids made to exit by the exit step.
    pub exited: Vec<i32>,
}

impl Fake {
    pub fn with(procs: &[(i32, Stat)]) -> Fake {
        Fake {
            procs: procs.iter().copied().collect(),
            ..Fake::default()
        }
    }

    /// The signals `pid` got, in order.
    pub fn signals_to(&self, pid: i32) -> Vec<i32> {
        self.sent
            .iter()
            .filter(|&&(p, _)| p == pid)
            .map(|&(_, s)| s)
            .collect()
    }

    fn deliver(&mut self, pid: i32, signal: i32) {
        let ends = signal == libc::SIGKILL
            || (signal == libc::SIGTERM && !self.ignore_term.contains(&pid));
        if ends {
            self.procs.remove(&pid);
        }
    }

    fn is(&self, who: ProcId) -> bool {
        self.procs
            .get(&who.pid)
            .is_some_and(|s| s.start == who.start && !s.is_zombie())
    }
}

impl Kernel for Fake {
    fn stat(&mut self, pid: i32) -> Option<Stat> {
        self.procs.get(&pid).copied()
    }

    fn send(&mut self, who: ProcId, signals: &[i32]) -> bool {
        if !self.is(who) {
            return false;
        }
        for &signal in signals {
            self.sent.push((who.pid, signal));
            self.deliver(who.pid, signal);
        }
        true
    }

    fn send_group(&mut self, pgid: i32, proof: &[ProcId], signals: &[i32]) -> bool {
        let in_group = |f: &Fake, w: &ProcId| f.is(*w) && f.procs[&w.pid].pgid == pgid;
        if !proof.iter().any(|w| in_group(self, w)) {
            return false;
        }
        let members: Vec<i32> = (self.procs.iter())
            .filter(|(_, s)| s.pgid == pgid)
            .map(|(&pid, _)| pid)
            .collect();
        for &signal in signals {
            self.sent.push((-pgid, signal));
            for &pid in &members {
                self.deliver(pid, signal);
            }
        }
        true
    }

    fn close_input(&mut self, members: &[ProcId], _outside: &[i32]) -> Result<i32, Fallback> {
        if let Some(why) = &self.close {
            return Err(why.clone());
        }
        let top = members.first().map_or(0, |m| m.pid);
        self.closed.push(top);
        Ok(top)
    }

    fn end_cleanly(&mut self, members: &[ProcId]) -> Result<i32, NotEnded> {
        if let Some(why) = &self.exit {
            return Err(why.clone());
        }
        // The top, as exit_order puts it first.
        let top = members.first().map_or(0, |m| m.pid);
        for m in members {
            self.procs.remove(&m.pid);
        }
        self.exited.push(top);
        Ok(top)
    }
}

impl Fake {
    /// Every live process of `snapshot`, as the kernel would show it.
    pub fn of(snapshot: &crate::core::process::Snapshot) -> Fake {
        let procs = snapshot.procs.iter().map(|p| {
            let stat = Stat {
                ppid: p.ppid,
                pgid: p.pgid,
                sid: p.pgid,
                state: p.state,
                start: p.start,
                rss_pages: 0,
                threads: p.threads,
                exec_hash: 0,
            };
            (p.pid, stat)
        });
        Fake {
            procs: procs.collect(),
            ..Fake::default()
        }
    }
}
