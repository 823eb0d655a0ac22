//! The event loop, the only place that waits: one `sigtimedwait` bounded by the next
//! deadline (scan, probe, escalation, stop grace), then whatever is due.

use crate::cgroup::{self, Cgroup, Limits};
use crate::config::{Config, Orphans};
use crate::policy::{self, Reason};
use crate::proctree::{Scanner, Snapshot};
use crate::reap::{self, Exit, Reaped};
use crate::signals::Waited;
use crate::statefile::{self, Counters};
use crate::terminate::Terminations;
use crate::units::{self, Unit, UnitId};
use crate::values::signal_name;
use log::{error, info, warn};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod report;
mod shutdown;

use report::join;

/// How often the cheap fork-burst probe runs while a cap is set. 200 ms answers a burst
/// well inside 250 ms at the median, while an idle container wakes about 6 times a
/// second: each wake-up costs ~90 us on a small VM, and at 100 ms the wake-ups alone
/// put the idle cost over 0.1 % of a core (docs/benchmarks.md).
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Scans triggered by SIGCHLD or the probe are at least this far apart.
const MIN_SCAN_GAP: Duration = Duration::from_millis(20);
/// Periodic scans skipped in a row at most when provably nothing changed: a full scan
/// still happens at least every (1 + this) scan intervals.
const MAX_QUIET_SCANS: u32 = 4;
/// A probe or scan falling due this soon is done now: deadlines that drift a few
/// milliseconds apart then share one wake-up instead of costing two.
const COALESCE: Duration = Duration::from_millis(10);
/// A periodic scan waits while zombies keep coming (a mass exit): until this long after
/// the last reap, and never more than MAX_QUIET_SCANS intervals in all, the same bound as
/// for skipped scans.
const REAP_PAUSE: Duration = Duration::from_millis(50);
/// While a termination is in flight, its unit is followed this closely.
const ESCALATION_SCAN: Duration = Duration::from_millis(100);
/// State file rewrites: at most this often, and at least this often as a heartbeat.
const STATE_MIN_GAP: Duration = Duration::from_millis(250);
const STATE_HEARTBEAT: Duration = Duration::from_secs(10);
/// After SIGKILL on shutdown, how long to wait for the kernel to finish before exiting.
const FINAL_REAP: Duration = Duration::from_secs(2);

pub struct Supervisor {
    config: Config,
    me: i32,
    main: i32,
    main_exit: Option<Exit>,
    waited: Waited,
    scanner: Scanner,
    terminations: Terminations,
    counters: Counters,
    limits: Limits,
    /// The container's own task count (`pids.current`, kept open), when its cgroup has
    /// one: the fork-burst probe.
    pids_current: Option<std::fs::File>,
    /// Something we must look at happened since the last scan: a reap, a probe jump.
    changed: bool,
    /// A duplicate waits for its settle time: the next periodic scan is never skipped.
    waiting: bool,
    quiet_scans: u32,
    started_unix_ms: u64,
    state_path: PathBuf,
    state_written: Option<Instant>,
    state_dirty: bool,
    /// The last scan, its units and the plan's duplicates: what the state file shows.
    last: (Snapshot, Vec<Unit>, Vec<UnitId>),
    /// What the state file last showed, minus RSS and ages (those ride the heartbeat).
    last_fingerprint: u64,
    next_scan: Instant,
    /// The next scan was pulled forward by something that may need a decision at once
    /// (a burst, a death that may orphan a unit, a kill deadline), not just the clock.
    urgent: bool,
    /// When the periodic scan fell due, and the last time a zombie was reaped.
    periodic_due: Instant,
    last_reaped: Option<Instant>,
    next_probe: Instant,
    probe_baseline: u64,
    /// Live descendants at the last scan.
    last_live: usize,
    near_cap_warned: bool,
    main_memory_warned: bool,
    /// When mcpinit was asked to stop (SIGTERM/SIGINT): the stop grace runs from here.
    stop_requested: Option<Instant>,
    /// The stop grace ran out and everything got SIGKILL.
    stop_killed: bool,
    /// Shutdown after the main child exited: (SIGKILL deadline, SIGKILL sent).
    drain: Option<(Instant, bool)>,
}

impl Supervisor {
    pub fn new(config: Config, me: i32, main: i32, waited: Waited, cgroup: Cgroup) -> Supervisor {
        let now = Instant::now();
        let state_path = statefile::choose_path(&config);
        Supervisor {
            me,
            main,
            main_exit: None,
            waited,
            scanner: Scanner::new(me),
            terminations: Terminations::default(),
            counters: Counters::default(),
            limits: cgroup.limits,
            started_unix_ms: statefile::unix_ms(),
            state_path,
            state_written: None,
            state_dirty: true,
            last: (Snapshot::default(), Vec::new(), Vec::new()),
            last_fingerprint: 0,
            next_scan: now + MIN_SCAN_GAP,
            urgent: false,
            periodic_due: now + MIN_SCAN_GAP,
            last_reaped: None,
            next_probe: now + PROBE_INTERVAL,
            probe_baseline: 0,
            last_live: 0,
            near_cap_warned: false,
            main_memory_warned: false,
            stop_requested: None,
            stop_killed: false,
            drain: None,
            pids_current: cgroup
                .pids_current
                .and_then(|p| std::fs::File::open(p).ok()),
            changed: true,
            waiting: false,
            quiet_scans: 0,
            config,
        }
    }

    /// Run until the main child and everything else is gone; returns the exit status.
    pub fn run(mut self) -> i32 {
        loop {
            let now = Instant::now();
            let wait = self.next_deadline(now).saturating_duration_since(now);
            if let Some(received) = self.waited.wait(wait) {
                if received.signal == libc::SIGCHLD {
                    if let Reaped::NoChildren = self.reap() {
                        if self.main_exit.is_some() {
                            break;
                        }
                    }
                } else if received.sender != self.me {
                    // A signal we caused ourselves (SIGPIPE from a closed stdout) is not
                    // the operator's, so it is not forwarded.
                    self.forward(received.signal);
                }
            }
            if self.main_exit.is_some() {
                if self.shutdown_step(Instant::now()) {
                    break;
                }
            } else {
                self.govern(Instant::now());
            }
        }
        self.finish()
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let mut deadline = now + Duration::from_secs(60);
        if let Some((kill_at, killed)) = self.drain {
            // Nothing but reaping matters now; poll gently for stubborn leftovers.
            return deadline.min(if killed {
                now + Duration::from_millis(50)
            } else {
                kill_at
            });
        }
        if let Some(at) = self.stop_requested {
            // Stopping: no scans, probes or state writes any more (govern() does none),
            // so only the stop grace and the final reap after it can be due.
            let extra = if self.stop_killed {
                FINAL_REAP
            } else {
                Duration::ZERO
            };
            return deadline.min(at + self.config.stop_grace + extra).max(now);
        }
        deadline = deadline.min(self.next_scan);
        if self.config.max_procs > 0 {
            deadline = deadline.min(self.next_probe);
        }
        if let Some(at) = self.terminations.next_deadline() {
            deadline = deadline.min(at);
        }
        if let Some(at) = self.state_written {
            let gap = if self.state_dirty {
                STATE_MIN_GAP
            } else {
                STATE_HEARTBEAT
            };
            deadline = deadline.min(at + gap);
        }
        deadline.max(now)
    }

    fn reap(&mut self) -> Reaped {
        let (main, warn_on_reap) = (self.main, self.config.warn_on_reap);
        let mut main_exit = None;
        let mut reaped = 0;
        let outcome = reap::reap(|pid, exit| {
            if pid == main {
                main_exit = Some(exit);
            } else {
                reaped += 1;
                let level = if warn_on_reap {
                    log::Level::Warn
                } else {
                    log::Level::Debug
                };
                log::log!(level, event = "reaped", pid = pid, status = exit.status(); "reaped zombie {pid}");
            }
        });
        self.counters.zombies_reaped += reaped;
        self.changed = true;
        if reaped > 0 {
            self.last_reaped = Some(Instant::now());
        }
        if let Some(exit) = main_exit {
            let how = match exit {
                Exit::Code(code) => format!("exited with {code}"),
                Exit::Signal(sig) => format!("killed by {}", signal_name(sig)),
            };
            info!(event = "child_exit", pid = main, status = exit.status(); "child {main} {how}");
            self.main_exit = Some(exit);
        }
        // A death may have orphaned a unit, or ended one being terminated: look soon,
        // but not once per SIGCHLD. Nothing else decides on a death, so a storm of
        // exits with orphans kept costs no scans at all.
        if self.config.orphans == Orphans::Term || self.terminations.in_flight() {
            let soon = Instant::now() + MIN_SCAN_GAP;
            self.next_scan = self.next_scan.min(soon);
            self.urgent = true;
        }
        outcome
    }

    fn forward(&mut self, signal: i32) {
        if self.main_exit.is_some() {
            return;
        }
        let target = if self.config.kill_group {
            -self.main
        } else {
            self.main
        };
        // SAFETY: the main child is ours and unreaped, so its pid cannot be reused.
        unsafe { libc::kill(target, signal) };
        self.counters.signals_forwarded += 1;
        self.state_dirty = true;
        let name = signal_name(signal);
        info!(event = "signal", signal = name.as_str(), pid = target; "forwarded {name} to {}", if target < 0 { "process group" } else { "child" });
        if matches!(signal, libc::SIGTERM | libc::SIGINT) && self.stop_requested.is_none() {
            self.stop_requested = Some(Instant::now());
        }
    }

    /// While the main child runs: watch the tree and act on it.
    fn govern(&mut self, now: Instant) {
        if let Some(at) = self.stop_requested {
            if now >= at + self.config.stop_grace && !self.stop_killed {
                warn!(event = "stop_timeout", grace_ms = self.config.stop_grace.as_millis() as u64; "child did not exit within the stop grace, sending SIGKILL to everything");
                self.kill_everything(libc::SIGKILL);
                self.stop_killed = true;
            } else if self.stop_killed && now >= at + self.config.stop_grace + FINAL_REAP {
                // The child survives SIGKILL (stuck in the kernel): never wait forever.
                error!(event = "stuck", pid = self.main; "child {} survives SIGKILL; exiting without it", self.main);
                self.main_exit = Some(Exit::Signal(libc::SIGKILL));
            }
            // Stopping: no new decisions, only reaping until the child is gone.
            return;
        }
        let mut count = None;
        if self.config.max_procs > 0 && now + COALESCE >= self.next_probe {
            self.next_probe = now + PROBE_INTERVAL;
            // A burst, or any growth that may carry the count over the cap: the probe's
            // count includes threads, so it only ever errs towards one scan too many.
            let cap = self.config.max_procs as u64;
            let grown = self.probed(&mut count).saturating_sub(self.probe_baseline);
            if grown > (cap / 16).max(4) || self.last_live as u64 + grown > cap {
                self.changed = true;
                self.next_scan = now;
                self.urgent = true;
            }
        }
        if self
            .terminations
            .next_deadline()
            .is_some_and(|at| now >= at)
        {
            // A kill grace ran out: the scan after it sends the SIGKILL.
            self.next_scan = now;
            self.urgent = true;
        }
        if now >= self.next_scan && !self.urgent {
            self.hold_during_mass_exit(now);
        }
        if now + COALESCE >= self.next_scan {
            let quiet = self.quiet_scans < MAX_QUIET_SCANS
                && self.quiet()
                && self.probed(&mut count) == self.probe_baseline;
            if quiet {
                self.quiet_scans += 1;
                self.next_scan = now + self.config.scan_interval;
                self.periodic_due = self.next_scan;
            } else {
                self.quiet_scans = 0;
                let baseline = self.probed(&mut count);
                self.scan(now, baseline);
            }
        }
        self.write_state_if_due(now);
    }

    /// A periodic scan in the middle of a mass exit reads thousands of dying processes
    /// and takes a core from their exits, to decide on a tree that is gone a moment
    /// later: while zombies keep coming it waits, so that a full scan still happens at
    /// least every 1 + MAX_QUIET_SCANS intervals.
    fn hold_during_mass_exit(&mut self, now: Instant) {
        if let Some(at) = self.last_reaped {
            let pause = at + REAP_PAUSE;
            let limit = self.periodic_due + self.config.scan_interval * MAX_QUIET_SCANS;
            if now < pause && pause < limit {
                self.next_scan = pause;
            }
        }
    }

    /// Nothing a scan could act on can have changed since the last one, as far as the
    /// loop's own state tells: no reap, no termination to follow, no duplicate waiting
    /// to settle, and no memory cap (RSS moves without any of these). With the task
    /// count unchanged too, it is the idle container's case.
    fn quiet(&self) -> bool {
        !self.changed
            && !self.waiting
            && !self.terminations.in_flight()
            && self.config.max_memory == 0
    }

    /// The probe's count, read at most once per wake-up: the probe, the quiet check and
    /// a scan's baseline often fall on the same one.
    fn probed(&self, count: &mut Option<u64>) -> u64 {
        *count.get_or_insert_with(|| self.probe())
    }

    /// Scan, with `baseline` the probe's count taken just before.
    fn scan(&mut self, now: Instant, baseline: u64) {
        self.probe_baseline = baseline;
        let snapshot = self.scanner.scan();
        let main = (self.main_exit.is_none()).then_some(self.main);
        let units = units::units(&snapshot, main, &self.config.dedupe);
        for event in self.terminations.refresh(&snapshot, now) {
            self.log_escalation(event);
        }
        let plan = policy::decide(
            &units,
            &self.config,
            snapshot.now_ms,
            &self.terminations.busy(),
        );
        self.last_live = plan.projected;
        self.waiting = plan.waiting;
        self.changed = false;
        self.counters.peak_procs = self.counters.peak_procs.max(plan.live);
        self.counters.peak_rss = self.counters.peak_rss.max(plan.rss);
        self.watch_thresholds(&plan, &units);
        for decision in &plan.terminate {
            if let Some(unit) = units.iter().find(|u| u.id == decision.unit) {
                self.terminate(unit, &snapshot, decision, now);
            }
        }
        // Over the cap, something keeps forking (the busy units are already counted as
        // gone): look again at the shortest gap, or a storm gains a probe interval's
        // worth of forks per beat.
        let over_cap = self.config.max_procs > 0 && plan.live > self.config.max_procs;
        let interval = if over_cap {
            MIN_SCAN_GAP
        } else if self.terminations.in_flight() {
            self.config.scan_interval.min(ESCALATION_SCAN)
        } else {
            self.config.scan_interval
        };
        self.next_scan = now + interval;
        self.periodic_due = self.next_scan;
        self.urgent = false;
        // The count was just taken: the probe's period starts again here, which also
        // lets a periodic scan share a wake-up with every few probes (each wake-up of
        // an idle container is most of what it costs).
        self.next_probe = now + PROBE_INTERVAL;
        let fingerprint = self.fingerprint(&snapshot);
        if fingerprint != self.last_fingerprint {
            self.last_fingerprint = fingerprint;
            self.state_dirty = true;
        }
        self.last = (snapshot, units, plan.duplicates);
        self.write_state_if_due(now);
    }

    /// A cheap count that grows with a fork burst: the cgroup's task count when there
    /// is one (a container), else the host's process count from the link count of /proc.
    fn probe(&self) -> u64 {
        self.pids_current
            .as_ref()
            .and_then(cgroup::current)
            .unwrap_or_else(proc_count)
    }

    fn terminate(
        &mut self,
        unit: &Unit,
        snapshot: &Snapshot,
        decision: &policy::Decision,
        now: Instant,
    ) {
        let pids = join(&unit.pids);
        let key = unit.key.as_deref().unwrap_or("");
        let reason = decision.reason.as_str();
        let pgid = unit.pgid().unwrap_or(0);
        let dry = self.config.dry_run;
        let verb = if dry {
            "would terminate"
        } else {
            "terminating"
        };
        let top = unit.top;
        match decision.kept {
            Some(kept) => {
                info!(event = "terminate", reason = reason, key = key, pids = pids.as_str(),
                pgid = pgid, top = top, kept = kept, dry_run = dry;
                "{verb} {reason} unit {top} (keeping newer {kept})")
            }
            None => info!(event = "terminate", reason = reason, key = key, pids = pids.as_str(),
                pgid = pgid, top = top, dry_run = dry;
                "{verb} {reason} unit {top}"),
        }
        if !dry {
            match decision.reason {
                Reason::Duplicate => self.counters.terminated_duplicate += 1,
                Reason::Orphan => self.counters.terminated_orphan += 1,
                Reason::Cap => self.counters.terminated_cap += 1,
                Reason::Memory => self.counters.terminated_memory += 1,
            }
        }
        self.terminations.start(
            unit,
            snapshot,
            decision.reason,
            self.config.kill_grace,
            dry,
            now,
        );
    }
}

/// Processes on the system, from the link count of /proc: one syscall, no directory
/// read. It counts the whole host, beyond our namespace, so it is only the fallback
/// trigger for a real scan where no cgroup task count is to be had, never a measurement.
fn proc_count() -> u64 {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid path and out-pointer.
    if unsafe { libc::stat(c"/proc".as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: stat succeeded.
    unsafe { st.assume_init() }.st_nlink
}
