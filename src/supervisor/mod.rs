//! The event loop, the only place that waits. Its parts each own their state and name
//! their next deadline: the phase, the scan schedule, the fork-burst probe, the
//! terminations in flight, the state publisher and, when asked for, the metrics
//! endpoint. One `ppoll` (the signalfd, and the endpoint's sockets) bounded by the
//! earliest of those deadlines, then one `match` on the phase.

use crate::config::{Config, Orphans};
use crate::core::escalation::{Ended, Graces};
use crate::core::lineage::Lineage;
use crate::core::policy::{self, Reason};
use crate::core::process::{Blind, Depth, Snapshot};
use crate::core::units::{self, Unit, UnitId};
use crate::supervisor::terminate::{Begun, Event, Terminations};
use crate::supervisor::watch::Watcher;
use crate::surface::metrics::Server;
use crate::surface::statefile::{self, Counters};
use crate::sys::cgroup::{Cgroup, Limits};
use crate::sys::inject;
use crate::sys::kernel::Linux;
use crate::sys::procfs::{Scanner, YOUNG_MS};
use crate::sys::reap::{self, Reaped};
use crate::sys::signals::{self, Received, Signals};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

mod brake;
mod exposition;
mod probe;
mod publisher;
mod report;
mod shutdown;
mod signal_log;
pub(crate) mod terminate;
pub mod watch;

use crate::core::phase::Phase;
use crate::core::schedule::Quiet;
use crate::core::schedule::{self, Found, Schedule};
use brake::Brake;
use exposition::Tally;
use probe::{Mark, Probe, Reading};
use publisher::Publisher;
use report::Thresholds;
use signal_log::SignalLog;

pub struct Supervisor {
    config: Config,
    me: i32,
    main: i32,
    phase: Phase,
    signals: Signals,
    /// The metrics endpoint, when one was asked for.
    endpoint: Option<Server>,
    /// What only the metrics show: how terminations ended, how long scans took.
    tally: Tally,
    scanner: Scanner,
    schedule: Schedule,
    probe: Probe,
    terminations: Terminations,
    /// Forkers held stopped, for a hold, while the units they jumped the cap with end.
    brake: Brake,
    publisher: Publisher,
    thresholds: Thresholds,
    counters: Counters,
    limits: Limits,
    started_unix_ms: u64,
    /// The last scan, its units and the plan's duplicates: what the state file shows.
    last: LastLook,
    /// When the routes line is due (ROUTES_AFTER); None once said, or never to be.
    routes_at: Option<Instant>,
    /// Why scans cannot see every process, while they cannot.
    blind: Option<Blind>,
    /// The instances' input, and the policy on it.
    watcher: Watcher,
    /// Which forwards get a line of their own, and the counts of the rest.
    signal_log: SignalLog,
    /// The processes seen in server units: which orphans were servers.
    lineage: Lineage,
}

/// Signals taken per wake-up at most (31 standard ones can be pending, real-time ones
/// queue): the rest wait for the next turn, which comes at once.
const SIGNALS_PER_TURN: usize = 64;

/// The last look, its units and the plan's duplicates: what the state file and the
/// metrics show between looks.
#[derive(Default)]
struct LastLook {
    snapshot: Snapshot,
    units: Vec<Unit>,
    duplicates: Vec<UnitId>,
}

/// While a ptrace call waits to be finished, how often the loop looks at it.
const SETTLE_POLL: Duration = Duration::from_millis(10);
/// How long after the spawn the routes are probed and said (at once if a termination
/// needed them first): the probe forks a victim and traces it, which a child that exits at once
/// (`mcpinit -- true`) or a container's start need not wait for.
const ROUTES_AFTER: Duration = Duration::from_millis(200);
/// The newest processes read for their forkers when the probe sees a storm, before the
/// look: a storm's few forkers each have several among them.
const NEWEST_READ: usize = 48;

/// Whether the loop goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

impl Supervisor {
    pub fn new(
        config: Config,
        me: i32,
        main: i32,
        signals: Signals,
        endpoint: Option<Server>,
        cgroup: Cgroup,
    ) -> Supervisor {
        let now = Instant::now();
        let pids_current = cgroup
            .pids_current
            .and_then(|p| std::fs::File::open(p).ok());
        Supervisor {
            me,
            main,
            phase: Phase::Running,
            signals,
            endpoint,
            tally: Tally::default(),
            scanner: Scanner::new(me).with_launchers(&config.dedupe),
            schedule: Schedule::new(now, config.scan_interval),
            probe: Probe::new(config.max_procs, pids_current, now),
            terminations: Terminations::default(),
            brake: Brake::default(),
            publisher: Publisher::new(statefile::choose_path(&config)),
            thresholds: Thresholds::default(),
            counters: Counters::default(),
            limits: cgroup.limits,
            started_unix_ms: statefile::unix_ms(),
            last: LastLook::default(),
            routes_at: (!config.eof_grace.is_zero() && !config.dry_run)
                .then_some(now + ROUTES_AFTER),
            blind: None,
            watcher: Watcher::new(&config),
            signal_log: SignalLog::default(),
            lineage: Lineage::default(),
            config,
        }
    }

    /// Run until the main child and everything else is gone; returns the exit status.
    pub fn run(mut self) -> i32 {
        'turns: loop {
            let now = Instant::now();
            let timeout = self.next_deadline(now).saturating_duration_since(now);
            let (signalled, sockets) = self.wait(timeout);
            // Signals first: a busy endpoint never delays a reap or a forward.
            for _ in 0..if signalled { SIGNALS_PER_TURN } else { 0 } {
                let Some(received) = self.signals.take() else {
                    break;
                };
                if self.on_signal(received, Instant::now()) == Flow::Done {
                    break 'turns;
                }
            }
            self.serve(&sockets, Instant::now());
            // A ptrace call that outlived its budget is finished once its process stops.
            if inject::pending() > 0 {
                inject::settle();
            }
            let now = Instant::now();
            report::signal_lines(self.signal_log.due(now));
            if !matches!(self.phase, Phase::Running) {
                // Shutting down: nothing stays stopped, or it would not act on SIGTERM.
                self.brake.release_for_good(&mut Linux, now);
            }
            let flow = match self.phase {
                Phase::Running => self.govern(now),
                Phase::Stopping { since, killed } => self.stopping(now, since, killed),
                Phase::Draining { exit, stage } => self.drain(now, exit, stage),
            };
            if flow == Flow::Done {
                break;
            }
        }
        self.finish()
    }

    /// Wait at most `timeout` for a signal or, with metrics on, a socket: (a signal is
    /// pending, which of the endpoint's fds are ready, in `Server::interest` order).
    fn wait(&self, timeout: Duration) -> (bool, Vec<bool>) {
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        if let Some(endpoint) = &self.endpoint {
            let interest = endpoint.interest().into_iter();
            fds.extend(interest.map(|(fd, events)| PollFd::new(fd, events)));
        }
        // ppoll, not poll: the deadlines are finer than a millisecond. Every signal is
        // blocked, so nothing interrupts it; on any failure the turn runs as a timeout.
        let _ = ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None);
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        (ready[0], ready[1..].to_vec())
    }

    /// The earliest deadline of the parts that count in this phase.
    fn next_deadline(&self, now: Instant) -> Instant {
        let endpoint = self.endpoint.as_ref().and_then(Server::next_deadline);
        let signal_log = self.signal_log.next_deadline();
        let settle = (inject::pending() > 0).then(|| now + SETTLE_POLL);
        match self.phase {
            Phase::Running => schedule::earliest(
                now,
                [
                    Some(self.schedule.next_deadline()),
                    self.probe.next_deadline(),
                    self.terminations.next_deadline(),
                    self.brake.next_deadline(),
                    self.publisher.next_deadline(),
                    endpoint,
                    signal_log,
                    settle,
                    self.routes_at,
                ],
            ),
            // Stopping or draining: no scans, probes or state writes any more, so only
            // the phase's own grace and polls (and the endpoint's clients) can be due.
            phase => schedule::earliest(
                now,
                [
                    phase.next_deadline(now, self.config.stop_grace),
                    endpoint,
                    signal_log,
                    settle,
                ],
            ),
        }
    }

    fn on_signal(&mut self, received: Received, now: Instant) -> Flow {
        if received.signal == libc::SIGCHLD {
            if self.reap(now) == Reaped::NoChildren && self.phase.exit().is_some() {
                return Flow::Done;
            }
        } else if received.sender != self.me {
            // A signal we caused ourselves (SIGPIPE from a closed stdout) is not the
            // operator's, so it is not forwarded.
            self.forward(received.signal, now);
        }
        Flow::Continue
    }

    /// SIGCHLD: reap everything that exited, then count, log and reschedule.
    fn reap(&mut self, now: Instant) -> Reaped {
        let (main, warn_on_reap) = (self.main, self.config.warn_on_reap);
        let mut main_exit = None;
        let mut others = 0;
        let outcome = reap::reap(|pid, exit| {
            if pid == main {
                main_exit = Some(exit);
            } else {
                others += 1;
                report::reaped(pid, exit, warn_on_reap);
            }
        });
        self.counters.zombies_reaped += others;
        if let Some(exit) = main_exit {
            report::child_exit(main, exit);
            self.phase = self.phase.main_exited(exit, now, self.config.stop_grace);
        }
        let follow = self.config.orphans != Orphans::None || self.terminations.in_flight();
        self.schedule.reaped(now, others > 0, follow);
        outcome
    }

    fn forward(&mut self, signal: i32, now: Instant) {
        if !self.phase.main_alive() {
            return;
        }
        // A held forker (perhaps the main child) acts on the signal only once continued.
        self.brake.release_for_good(&mut Linux, now);
        let target = if self.config.kill_group {
            -self.main
        } else {
            self.main
        };
        // The main child is ours and unreaped, so its pid cannot be reused.
        signals::forward(target, signal);
        self.counters.signals_forwarded += 1;
        self.publisher.mark_dirty();
        report::signal_lines(self.signal_log.forwarded(signal, target, now));
        if matches!(signal, libc::SIGTERM | libc::SIGINT) {
            // A main child stopped by someone else (`kill -STOP`, a debugger) would hold
            // the signal pending until the stop grace's SIGKILL (137): continued, it
            // acts on it (143). SIGCONT to a running process does nothing.
            signals::forward(target, libc::SIGCONT);
            self.phase = self.phase.stop_asked(now);
        }
    }

    /// While the main child runs: watch the tree and act on it.
    fn govern(&mut self, now: Instant) -> Flow {
        // Due, or probed already by a termination that needed them.
        let probed = crate::sys::close_input::known_routes().is_some();
        if self.routes_at.is_some_and(|at| now >= at || probed) {
            self.routes_at = None;
            report::routes(&self.config);
        }
        let mut reading = Reading::default();
        if self.probe.due(now) && self.probe.burst(self.probe.read(&mut reading)) {
            self.schedule.scan_now(now, true);
            self.brake_early(self.probe.read(&mut reading), now);
        }
        if self
            .terminations
            .next_deadline()
            .is_some_and(|at| now >= at)
        {
            // A kill grace ran out: the scan after it sends the SIGKILL.
            self.schedule.scan_now(now, false);
        }
        if self.brake.next_deadline().is_some_and(|at| now >= at) {
            self.brake.release(&mut Linux, now);
        }
        if let Some(storm) = self.brake.over(now) {
            report::storm_over(&storm, now);
        }
        let (probe, terminations) = (&self.probe, &self.terminations);
        // RSS moves without any event, so with a memory cap no look is ever skipped, and
        // every one reads every process; nor is one skipped while a unit is followed to
        // its end, and its members are read again on each.
        let exact = self.config.max_memory > 0;
        let following = terminations.in_flight();
        let depth = self.schedule.due(now, || {
            if exact || following {
                Quiet::Changed
            } else {
                probe.quiet(probe.read(&mut reading))
            }
        });
        if let Some(depth) = depth {
            let baseline = self.probe.read(&mut reading);
            if !self.config.dry_run && self.probe.jumped(baseline) {
                self.brake.rebrake(&mut Linux, now);
            }
            // What we signalled is read again: its state is ours to have changed.
            self.scanner.reread(self.terminations.pids());
            self.scanner.reread(self.brake.pids());
            self.look(now, baseline, if exact { Depth::Full } else { depth });
        }
        if let Some(mark) = reading.taken() {
            self.probe.observe(now, mark);
        }
        self.publish_if_due(now);
        Flow::Continue
    }

    /// The probe's `mark` jumped past the cap: stop the forkers of the newest processes
    /// before the look (`Brake::early`), if more than a jump of them were forked since
    /// the last look (processes, not threads: the count has both).
    fn brake_early(&mut self, mark: Mark, now: Instant) {
        let cap = self.config.max_procs;
        let Some(cursor) = mark
            .last_pid
            .filter(|_| !self.config.dry_run && self.probe.storm(mark))
        else {
            return;
        };
        let newest = crate::sys::procfs::newest(cursor, NEWEST_READ);
        let forked = (newest.iter())
            .filter(|&&(pid, _)| self.probe.new_since_look(pid, cursor))
            .count();
        if forked <= brake::jump(cap) {
            return;
        }
        if let Some(stopped) = self.brake.early(&mut Linux, &newest, self.me, now) {
            report::storm_began(&stopped, self.probe.projected(mark) as usize, cap);
        }
    }

    /// Look, decide and act, with `baseline` the probe's mark taken just before.
    fn look(&mut self, now: Instant, baseline: Mark, mut depth: Depth) {
        let started = Instant::now();
        let since_ms = self.last.snapshot.now_ms;
        let mut snapshot = self.scanner.look(depth);
        self.tally.scanned(started.elapsed());
        log::debug!(event = "look", processes = snapshot.procs.len(), depth = format!("{depth:?}").as_str(),
            us = started.elapsed().as_micros() as u64, late_us = started.saturating_duration_since(now).as_micros() as u64;
            "looked at {} processes", snapshot.procs.len());
        if self.blinded(now, depth) {
            return;
        }
        // The last look's units go before this one's are made: at 10,000 processes
        // each set holds about 600 kB. The state file shows them until then, so a blind
        // look after this one makes them again (`blinded`).
        self.last.units = Vec::new();
        let mut units = self.units(&snapshot);
        for event in self.terminations.refresh(&mut Linux, &snapshot, now) {
            count_event(&mut self.counters, &event);
            self.tally.event(&event);
            report::escalation(&event);
        }
        let busy = self.terminations.busy();
        let mut plan = self
            .watcher
            .decide(&snapshot, &units, &self.config, &busy, now);
        if depth != Depth::Full && !self.confirmed(&plan.terminate, &units) {
            // Nothing is ended on what an incremental look took over from the last one
            // and no longer holds (a state, a program): the decision is taken again on
            // a full read.
            depth = Depth::Full;
            snapshot = self.scanner.look(depth);
            if self.blinded(now, depth) {
                return;
            }
            units = self.units(&snapshot);
            plan = self
                .watcher
                .decide(&snapshot, &units, &self.config, &busy, now);
        }
        self.counters.peak_procs = self.counters.peak_procs.max(plan.live);
        let tasks = snapshot.tasks();
        self.counters.peak_tasks = self.counters.peak_tasks.max(tasks);
        self.counters.peak_rss = self.counters.peak_rss.max(plan.rss);
        self.thresholds
            .watch(&plan, &units, &self.config, self.main);
        self.counters.env_splits += self.thresholds.splits(&units);
        self.thresholds.watch_tasks(tasks, self.limits.pids_max);
        let cap = self.config.max_procs;
        if !self.config.dry_run {
            // Stopped first, so that nothing forks while the units are being ended.
            let forkers =
                brake::forkers(&plan.terminate, &units, &snapshot, since_ms, self.me, cap);
            if let Some(stopped) = self.brake.apply(&mut Linux, &forkers, now) {
                report::storm_began(&stopped, plan.live, cap);
            }
        }
        for decision in &plan.terminate {
            let unit = units.iter().find(|u| u.id == decision.unit);
            // Left alone once: not tried (nor said) again while it lives.
            let spared = |u: &&Unit| {
                decision.reason == Reason::Duplicate && self.terminations.spared(u, &snapshot)
            };
            if let Some(unit) = unit.filter(|u| !spared(u)) {
                self.terminate(unit, &snapshot, decision, now);
            }
        }
        // A young process may still exec or change its group, which no probe sees: the
        // next periodic look is not skipped while one is.
        let young_since = snapshot.now_ms.saturating_sub(YOUNG_MS);
        let young = snapshot.procs.iter().any(|p| p.started_ms > young_since);
        self.schedule.scanned(
            now,
            depth,
            Found {
                over_cap: cap > 0 && plan.live > cap,
                storm: self.brake.next_look(now, self.probe.forked(baseline)),
                following: self.terminations.in_flight(),
                live: Some(plan.live),
                headroom: (cap > 0).then(|| cap.saturating_sub(plan.projected)),
                decide_at: self
                    .watcher
                    .due()
                    .into_iter()
                    .chain(young.then_some(now))
                    .min(),
            },
        );
        self.probe.rebase(now, baseline, plan.projected);
        let busy = self.terminations.busy();
        self.publisher
            .observe(publisher::fingerprint(&snapshot, &busy, &self.counters));
        self.last = LastLook {
            snapshot,
            units,
            duplicates: plan.duplicates,
        };
        self.publish_if_due(now);
    }

    /// The units of a complete look, marked by what they were (see `lineage`).
    fn units(&mut self, snapshot: &Snapshot) -> Vec<Unit> {
        let mut units = units::units(snapshot, Some(self.main), &self.config.dedupe);
        self.lineage.remember(snapshot, &mut units);
        units
    }

    /// The members of the units about to be ended are as the look has them.
    fn confirmed(&mut self, decisions: &[policy::Decision], units: &[Unit]) -> bool {
        let touched = units
            .iter()
            .filter(|u| decisions.iter().any(|d| d.unit == u.id))
            .flat_map(|u| u.pids.iter().copied());
        let pids: Vec<i32> = touched.collect();
        pids.is_empty() || self.scanner.confirm(&pids)
    }

    /// Whether the look just taken is blind. An incomplete snapshot: deciding on it
    /// could end the newest instance of a key whose older sibling it cannot see, or
    /// take a unit in flight for ended. Decide nothing; reaping goes on, and the next
    /// look tries again.
    fn blinded(&mut self, now: Instant, depth: Depth) -> bool {
        let blind = self.scanner.blind();
        report::sight(self.blind, blind);
        self.blind = blind;
        if blind.is_none() {
            return false;
        }
        if self.last.units.is_empty() && !self.last.snapshot.procs.is_empty() {
            let snapshot = &self.last.snapshot;
            self.last.units = units::units(snapshot, Some(self.main), &self.config.dedupe);
            self.lineage.mark(&self.last.snapshot, &mut self.last.units);
        }
        let found = Found {
            over_cap: false,
            storm: self.brake.next_look(now, true),
            following: self.terminations.in_flight(),
            decide_at: None,
            live: None,
            headroom: None,
        };
        self.schedule.scanned(now, depth, found);
        self.publisher.mark_dirty();
        self.publish_if_due(now);
        true
    }

    fn terminate(
        &mut self,
        unit: &Unit,
        snapshot: &Snapshot,
        decision: &policy::Decision,
        now: Instant,
    ) {
        let dry = self.config.dry_run;
        report::terminating(unit, unit.process_group(snapshot), decision, dry);
        if !dry {
            count_termination(&mut self.counters, decision.reason);
        }
        // The exit step is for an instance a gateway still tracks: an orphan's
        // launcher is gone, and whatever is left of it may simply be signalled.
        let tracked = !unit.orphaned;
        let graces = Graces {
            eof: self.config.eof_grace,
            exit: (self.config.exit_step && tracked).then_some(self.config.eof_grace),
            kill: self.config.kill_grace,
            tracked,
        };
        let begun = self.terminations.start(
            &mut Linux,
            unit,
            snapshot,
            decision.reason,
            graces,
            dry,
            now,
        );
        // Without a stdio channel (/dev/null) it is no gateway's server: no crash.
        let crash = match &begun {
            Begun::Fallback(why) => tracked && why.has_stdio_channel(),
            _ => false,
        };
        if let Begun::Fallback(_) = begun {
            self.counters.eof_fallbacks += 1;
        }
        self.counters.crashes += u64::from(crash);
        if let Begun::Spared(_) = begun {
            self.counters.spared += 1;
        }
        report::begun(unit.top, crash, &begun);
    }

    fn publish_if_due(&mut self, now: Instant) {
        if self.publisher.due(now) {
            self.publish(now);
        }
    }

    /// Write the state file now, from the last scan and the loop's own state.
    fn publish(&mut self, now: Instant) {
        let terminating = self.terminations.reasons();
        // Out of `self` while the view borrows the rest of it; put back at once.
        let mut publisher = std::mem::take(&mut self.publisher);
        publisher.write(now, &self.view(&terminating));
        self.publisher = publisher;
    }

    /// The loop's state as the state document shows it (`terminating`: the units being
    /// ended and why, which the caller holds).
    fn view<'a>(&'a self, terminating: &'a HashMap<UnitId, Reason>) -> statefile::View<'a> {
        statefile::View {
            config: &self.config,
            pid: self.me,
            main: self.phase.main_alive().then_some(self.main),
            started_unix_ms: self.started_unix_ms,
            limits: self.limits,
            snapshot: &self.last.snapshot,
            units: &self.last.units,
            duplicates: &self.last.duplicates,
            terminating,
            counters: &self.counters,
            activity: self.watcher.uses(),
            blind: self.blind,
        }
    }
}

/// What a step of a termination adds to the counters: SIGKILLs, and how each ended.
fn count_event(counters: &mut Counters, event: &Event) {
    match event {
        Event::Killed { .. } => counters.escalations += 1,
        Event::Gone { ended, .. } => match ended {
            Ended::Eof => counters.ended_eof += 1,
            Ended::Exit => counters.ended_exit += 1,
            Ended::Term => counters.ended_term += 1,
            Ended::Kill => counters.ended_kill += 1,
        },
        Event::Termed { crash: true, .. } => counters.crashes += 1,
        Event::Termed { .. }
        | Event::Stuck { .. }
        | Event::Exited { .. }
        | Event::ExitRefused { .. } => {}
        Event::Spared { .. } => counters.spared += 1,
    }
}

fn count_termination(counters: &mut Counters, reason: Reason) {
    match reason {
        Reason::Duplicate => counters.terminated_duplicate += 1,
        Reason::Orphan => counters.terminated_orphan += 1,
        Reason::Cap => counters.terminated_cap += 1,
        Reason::Memory => counters.terminated_memory += 1,
    }
}
