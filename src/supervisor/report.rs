//! What the operator sees of the loop: one log line per event, and the threshold
//! warnings (each said once per crossing).

use super::signal_log;
use crate::config::values::signal_name;
use crate::config::Config;
use crate::core::escalation::Ended;
use crate::core::phase::Exit;
use crate::core::policy;
use crate::core::process::Blind;
use crate::core::units::{Unit, UnitId};
use crate::supervisor::terminate::{Begun, Event};
use crate::surface::statefile::KEY_MAX;
use crate::sys::close_input;
use log::{debug, error, info, warn};

/// Which thresholds are crossed now, so each crossing is said once.
#[derive(Default)]
pub(super) struct Thresholds {
    near_cap: bool,
    main_over_memory: bool,
    /// Hashes of the keys already warned of for an environment split (at most
    /// `SPLITS_MAX`: past that, new splits are neither warned of nor counted).
    split: std::collections::HashSet<u64>,
    near_pids_max: bool,
}

/// Keys remembered as warned of for a split, at most.
const SPLITS_MAX: usize = 4096;

impl Thresholds {
    /// The kernel's pids limit counts tasks (threads), not processes: a node server has
    /// about 11, so `pids.max` is met long before a cap on processes.
    pub(super) fn watch_tasks(&mut self, tasks: u64, pids_max: Option<u64>) {
        let Some(max) = pids_max else { return };
        let near = tasks * 5 > max * 4;
        if near && !self.near_pids_max {
            warn!(event = "near_pids_max", tasks = tasks, cgroup_pids_max = max;
                "{tasks} tasks (threads), above 80% of the cgroup's pids.max of {max}: the kernel will refuse forks (EAGAIN) before mcpinit's process cap is reached");
        }
        self.near_pids_max = near;
    }

    pub(super) fn watch(
        &mut self,
        plan: &policy::Plan,
        units: &[Unit],
        config: &Config,
        main: i32,
    ) {
        let cap = config.max_procs;
        if cap > 0 {
            let near = plan.live * 5 > cap * 4;
            if near && !self.near_cap {
                warn!(event = "near_cap", live = plan.live, max_procs = cap; "{} live processes, above 80% of the cap of {cap}", plan.live);
            }
            self.near_cap = near;
        }
        if plan.main_over_memory && !self.main_over_memory {
            let rss = units
                .iter()
                .find(|u| u.id == UnitId::Main)
                .map_or(0, |u| u.rss);
            error!(event = "main_over_memory", pid = main, rss = rss, max_memory = config.max_memory; "the main child alone uses {} MiB, over the memory cap; leaving it to the kernel", rss >> 20);
        }
        self.main_over_memory = plan.main_over_memory;
    }

    /// Warn once per key whose instances run under more environments than expected;
    /// returns how many keys were newly warned of.
    pub(super) fn splits(&mut self, units: &[Unit]) -> u64 {
        let mut new = 0;
        for (key, envs) in policy::env_splits(units) {
            if self.split.len() >= SPLITS_MAX || !self.split.insert(hash(key)) {
                continue;
            }
            new += 1;
            let key = crate::surface::statefile::cut(key, KEY_MAX);
            warn!(event = "env_split", key = key, environments = envs, expected = policy::ENV_SPLIT_EXPECTED;
                "the instances of one server run under {envs} different environments, more than the {} expected: they are never deduped against each other (does a variable differ by instance, such as a token?)",
                policy::ENV_SPLIT_EXPECTED);
        }
        new
    }
}

fn hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

pub(super) fn storm_began(stopped: &[i32], live: usize, cap: usize) {
    let pids = join(stopped);
    warn!(event = "storm_brake", pids = pids.as_str(), live = live, max_procs = cap; "fork storm: {live} live processes against a cap of {cap}; stopping their forker {pids} while the newest are ended");
}

pub(super) fn storm_over(storm: &super::brake::Storm, now: std::time::Instant) {
    let lasted = now.saturating_duration_since(storm.started).as_millis() as u64;
    let held = storm.longest_hold.as_millis() as u64;
    info!(event = "storm_over", brakes = storm.brakes, lasted_ms = lasted, longest_hold_ms = held; "fork storm over: its forkers stopped {} times, at most {held} ms at once", storm.brakes);
}

pub(super) fn reaped(pid: i32, exit: Exit, warn_on_reap: bool) {
    let level = if warn_on_reap {
        log::Level::Warn
    } else {
        log::Level::Debug
    };
    log::log!(level, event = "reaped", pid = pid, status = exit.status(); "reaped zombie {pid}");
}

pub(super) fn child_exit(main: i32, exit: Exit) {
    let how = match exit {
        Exit::Code(code) => format!("exited with {code}"),
        Exit::Signal(sig) => format!("killed by {}", signal_name(sig)),
    };
    info!(event = "child_exit", pid = main, status = exit.status(); "child {main} {how}");
}

pub(super) fn signal_lines(lines: Vec<signal_log::Line>) {
    for line in lines {
        match line {
            signal_log::Line::Forwarded { signal, target } => {
                let name = signal_name(signal);
                info!(event = "signal", signal = name.as_str(), pid = target; "forwarded {name} to {}", whom(target));
            }
            signal_log::Line::Coalesced {
                signal,
                target,
                repeats,
            } => {
                let name = signal_name(signal);
                info!(event = "signals_coalesced", signal = name.as_str(), pid = target, repeats = repeats;
                    "forwarded {name} to {} {repeats} more times in the second after its first", whom(target));
            }
        }
    }
}

fn whom(target: i32) -> &'static str {
    if target < 0 {
        "process group"
    } else {
        "child"
    }
}

pub(super) fn terminating(unit: &Unit, pgid: i32, decision: &policy::Decision, dry: bool) {
    let pids = join(&unit.pids);
    // Capped as in the state file: a 100,000-argument command line must not make a
    // line of nearly a megabyte.
    let key = crate::surface::statefile::cut(unit.key.as_deref().unwrap_or(""), KEY_MAX);
    let reason = decision.reason.as_str();
    let verb = if dry {
        "would terminate"
    } else {
        "terminating"
    };
    let top = unit.top;
    // An instance ended by its input says how long it was idle (`idle_ms`, -1: not
    // looked at), so an operator can tell a leak from a pause too long for the idle time.
    let idle_ms = decision
        .idle_ms
        .map_or(-1, |ms| ms.min(i64::MAX as u64) as i64);
    let idle = decision
        .idle_ms
        .map(|ms| format!(", idle {}", crate::surface::status::duration(ms)))
        .unwrap_or_default();
    match decision.kept {
        Some(kept) => {
            info!(event = "terminate", reason = reason, key = key, pids = pids.as_str(),
            pgid = pgid, top = top, kept = kept, idle_ms = idle_ms, dry_run = dry;
            "{verb} {reason} unit {top} (keeping newer {kept}{idle})")
        }
        None => info!(event = "terminate", reason = reason, key = key, pids = pids.as_str(),
            pgid = pgid, top = top, idle_ms = idle_ms, dry_run = dry;
            "{verb} {reason} unit {top}{}", if idle.is_empty() { String::new() } else { format!(" ({})", &idle[2..]) }),
    }
}

/// How a termination began: the input closed (debug), or the one line saying why it
/// could not be, the unit getting SIGTERM at once.
pub(super) fn begun(top: i32, crash: bool, begun: &Begun) {
    match begun {
        Begun::InputClosed(pid) => {
            debug!(event = "input_closed", top = top, pid = pid; "closed the input of unit {top} (fd 0 of {pid})")
        }
        Begun::Fallback(why) => {
            info!(event = "eof_fallback", top = top, cause = why.cause();
                "cannot close the input of unit {top}, sending SIGTERM{}: {}",
                if crash { " (the gateway that tracks it will count a crash)" } else { "" }, why.describe())
        }
        Begun::Signalled => {}
        Begun::Exited { why, pid } => {
            info!(event = "exit_step", top = top, pid = pid, cause = why.cause();
                "cannot close the input of unit {top} ({}): made {pid} exit with status 0 instead", why.describe())
        }
        Begun::Spared(why) => {
            warn!(event = "spared", top = top, cause = why.cause();
                "leaving unit {top} alone: its input cannot be closed ({}) and a signal would be a crash to the gateway that tracks it", why.describe())
        }
    }
}

pub(super) fn escalation(event: &Event) {
    match event {
        Event::Termed {
            id,
            crash,
            pgid,
            pids,
        } => {
            let pids = join(pids);
            let crash_note = if *crash {
                " (the gateway that tracks it will count a crash)"
            } else {
                ""
            };
            info!(event = "eof_timeout", unit = unit_name(*id).as_str(), pgid = pgid, pids = pids.as_str(), crash = crash;
                "{} still alive after the EOF grace, sending SIGTERM{crash_note}", unit_name(*id));
        }
        Event::Killed { id, pgid, pids } => {
            let pids = join(pids);
            warn!(event = "escalate", unit = unit_name(*id).as_str(), pgid = pgid, pids = pids.as_str();
                "{} still alive after the kill grace, sending SIGKILL", unit_name(*id));
        }
        Event::Gone {
            id,
            reason,
            ended,
            after,
        } => {
            let how = match ended {
                Ended::Eof => "at EOF",
                Ended::Exit => "by the exit step, status 0",
                Ended::Term => "after SIGTERM",
                Ended::Kill => "after SIGKILL",
            };
            info!(event = "unit_gone", unit = unit_name(*id).as_str(), reason = reason.as_str(),
                ended = ended.as_str(), after_ms = after.as_millis() as u64;
                "{} is gone, ended {how}", unit_name(*id));
        }
        Event::Exited { id, pid } => {
            info!(event = "exit_step", unit = unit_name(*id).as_str(), pid = pid;
                "{} still alive after the EOF grace: made {pid} exit with status 0", unit_name(*id));
        }
        Event::ExitRefused { id, why } => {
            info!(event = "exit_refused", unit = unit_name(*id).as_str(), cause = why.cause;
                "{} still alive after the EOF grace and cannot be made to exit: {}", unit_name(*id), why.why);
        }
        Event::Spared { id, pids } => {
            let pids = join(pids);
            warn!(event = "spared", unit = unit_name(*id).as_str(), pids = pids.as_str();
                "leaving {} alone: it ignored EOF, cannot be made to exit, and a signal would be a crash to the gateway that tracks it", unit_name(*id));
        }
        Event::Stuck { id, pids } => {
            let pids = join(pids);
            error!(event = "stuck", unit = unit_name(*id).as_str(), pids = pids.as_str(); "{} survives SIGKILL (uninterruptible?); giving up on it", unit_name(*id));
        }
    }
}

fn unit_name(id: UnitId) -> String {
    match id {
        UnitId::Main => "main child".into(),
        UnitId::Group(pgid) => format!("process group {pgid}"),
        UnitId::Subtree(root) => format!("subtree of {root}"),
    }
}

fn join(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Scans starting or ceasing to miss processes for want of a resource: said once each
/// way, with the limit that is the usual cause.
pub(super) fn sight(before: Option<Blind>, now: Option<Blind>) {
    match (before, now) {
        (None, Some(blind)) => {
            let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(0, |(soft, _)| soft);
            error!(event = "scan_blind", errno = blind.errno.desc(), unread = blind.unread, open_files_limit = nofile; "cannot see every process ({:?}: {}, {} unread; open files limit {nofile}): deciding nothing until this passes", blind.errno, blind.errno.desc(), blind.unread);
        }
        (Some(_), None) => {
            info!(event = "scan_sight"; "scans see every process again");
        }
        _ => {}
    }
}

/// How servers will be ended here: the routes, probed if nothing needed them yet.
pub(super) fn routes(c: &Config) {
    let routes = close_input::routes();
    let refused = routes.refused.join("; ");
    let route = routes.close.as_str();
    let exit = if c.exit_step && routes.exit {
        "on"
    } else {
        "off"
    };
    match routes.close {
        close_input::Route::None => {
            log::warn!(event = "routes", close = route, exit = exit, refused = refused.as_str();
            "server inputs cannot be closed here ({refused}): dedupe and the idle rule leave instances a gateway tracks alone; the caps still end them with SIGTERM, which MetaMCP counts as a crash")
        }
        _ => log::info!(event = "routes", close = route, exit = exit, refused = refused.as_str();
            "inputs are closed through {route}; the exit step is {exit}{}",
            if refused.is_empty() { String::new() } else { format!(" ({refused})") }),
    }
}
