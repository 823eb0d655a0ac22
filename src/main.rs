//! mcpinit: dispatch between running as init and the `status` / `health` subcommands.
//!
//! `no_main`: Rust's runtime start-up would set SIGPIPE to ignored before our first
//! line runs, and the child must inherit exactly the dispositions we were given. It
//! also makes start-up cheaper, which matters for a process on every container start.

#![deny(clippy::undocumented_unsafe_blocks)]
#![no_main]

use log::info;
use mcpinit::config::{self, Config, Invocation};
use mcpinit::supervisor;
use mcpinit::surface::{logging, metrics, status};
use mcpinit::sys::{cgroup, output, sched, signals, spawn};
use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;

/// A failed allocation must not abort PID 1: see src/reserve.rs.
#[global_allocator]
static ALLOCATOR: mcpinit::sys::reserve::Allocator = mcpinit::sys::reserve::Allocator;

#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // Before anything else, so that no signal can be lost or kill us early.
    let (inherited, waited) = match signals::block_all() {
        Ok(set_up) => set_up,
        Err(errno) => {
            // As tini: an init that any signal could kill or lose does not start.
            let error = std::io::Error::from(errno);
            output::err(&format!("mcpinit: cannot block signals: {error}\n"));
            return 1;
        }
    };
    let args = arguments(argc, argv);
    match config::parse(&args, |name| std::env::var_os(name)) {
        Ok(Invocation::Run(config)) => {
            mcpinit::sys::reserve::arm();
            run(*config, inherited, waited)
        }
        Ok(Invocation::Status { json, state_file }) => status::status(json, state_file),
        Ok(Invocation::Health { state_file }) => status::health(state_file),
        Ok(Invocation::Help) => {
            output::out(&format!("{}\n", config::usage()));
            0
        }
        Ok(Invocation::Version) => {
            // build.rs: the commit (`unknown` outside a git checkout) and the target triple.
            output::out(&format!(
                "mcpinit {} (commit {}, target {})\n",
                env!("CARGO_PKG_VERSION"),
                env!("MCPINIT_COMMIT"),
                env!("MCPINIT_TARGET")
            ));
            0
        }
        Err(error) => {
            output::err(&format!("mcpinit: {}\n", error.message));
            if error.usage {
                output::err(&format!(
                    "{}\nTry 'mcpinit --help' for more information.\n",
                    config::SYNOPSIS
                ));
            }
            2
        }
    }
}

fn arguments(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<OsString> {
    (1..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the C runtime hands us argc valid NUL-terminated strings.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect()
}

fn run(config: Config, inherited: signals::Inherited, waited: signals::Waited) -> i32 {
    logging::init(&config.log_filter, config.log_json, config.log_target);
    let me = nix::unistd::getpid().as_raw();
    if let Some(signal) = config.parent_death_signal {
        set_parent_death_signal(signal);
    }
    if me != 1 {
        // Orphans of our tree must come to us, not to the real init.
        if let Err(errno) = nix::sys::prctl::set_child_subreaper(true) {
            // std's message (libc's strerror), not nix's: its table of texts cost 12 KB of binary.
            let error = std::io::Error::from(errno).to_string();
            log::error!(event = "subreaper_error", error = error.as_str();
                "cannot become child subreaper ({error}): orphans of the child's tree go to the real init, so mcpinit neither reaps nor governs them");
        }
    }
    // Before the child exists: close-on-exec, it never reaches the child.
    let signals = match waited.open() {
        Ok(signals) => signals,
        Err(e) => {
            output::err(&format!("mcpinit: cannot create a signalfd: {e}\n"));
            return 1;
        }
    };
    // Only what the child's start needs comes before it: everything else (cgroup files,
    // mount options, the metrics port, the routes probe) runs while it starts.
    let main = match spawn::spawn(&config.command, &inherited) {
        Ok(pid) => pid,
        Err(error) => {
            // stderr carries it for scripts; in JSON mode the log collector gets it too.
            if config.log_json {
                log::error!(event = "spawn_error", status = error.status(); "{error}");
            }
            output::err(&format!("mcpinit: {error}\n"));
            return error.status();
        }
    };
    // After the spawn: the child keeps the default slice.
    let slice = sched::short_slice();
    let cgroup = cgroup::read();
    log_start(&config, me, cgroup.limits);
    if let Err(errno) = slice {
        log::debug!(event = "slice", errno = errno as i32; "keeping the default scheduler slice: {errno}");
    }
    info!(event = "spawn", pid = main, command = config.command[0].to_string_lossy().as_ref(); "started child {main}");
    let metrics = config.metrics.and_then(|address| match metrics::Server::bind(address) {
        Ok(server) => {
            if let Some(address) = server.local_addr() {
                info!(event = "metrics", address = address.to_string().as_str(); "serving metrics on http://{address}/metrics");
            }
            Some(server)
        }
        Err(e) => {
            // The child runs already: an init does not end it over its metrics port.
            let error = e.to_string();
            log::error!(event = "metrics_error", address = address.to_string().as_str(), error = error.as_str();
                "cannot serve metrics on {address} (MCPINIT_METRICS / --metrics): {error}; running without them");
            None
        }
    });
    supervisor::Supervisor::new(config, me, main, signals, metrics, cgroup).run()
}

/// `-p`: the signal mcpinit gets when its parent dies.
fn set_parent_death_signal(signal: i32) {
    if let Err(error) = signals::set_parent_death_signal(signal) {
        let error = error.to_string();
        log::warn!(event = "pdeathsig_error", signal = signal, error = error.as_str();
            "cannot set the parent-death signal ({error}): mcpinit will not notice its parent's death");
    }
}

fn log_start(c: &Config, me: i32, limits: cgroup::Limits) {
    let dedupe = config::DedupeList(&c.dedupe).to_string();
    let memory = if c.max_memory == 0 {
        "off".to_string()
    } else {
        format!("{}MiB", c.max_memory >> 20)
    };
    let pids_max = limits.pids_max.map_or("max".to_string(), |n| n.to_string());
    let memory_max = limits
        .memory_max
        .map_or("max".to_string(), |n| format!("{}MiB", n >> 20));
    info!(event = "start", version = env!("CARGO_PKG_VERSION"), pid = me, max_procs = c.max_procs,
        max_memory = memory.as_str(), dedupe = dedupe.as_str(), dedupe_keep = c.dedupe_keep,
        dedupe_idle_ms = c.dedupe_idle.as_millis() as u64, orphans = c.orphans.to_string().as_str(),
        kill_grace_ms = c.kill_grace.as_millis() as u64,
        eof_grace_ms = c.eof_grace.as_millis() as u64, stop_grace_ms = c.stop_grace.as_millis() as u64,
        scan_interval_ms = c.scan_interval.as_millis() as u64, dry_run = c.dry_run,
        cgroup_pids_max = pids_max.as_str(), cgroup_memory_max = memory_max.as_str();
        "mcpinit {} as pid {me}{}", env!("CARGO_PKG_VERSION"), if me == 1 { "" } else { " (subreaper)" });
    for line in &c.retired {
        log::warn!(event = "retired_setting"; "{line}");
    }
    if let Some(hidepid) = mcpinit::sys::procmount::hidepid() {
        log::warn!(event = "proc_hidepid", hidepid = hidepid;
            "/proc is mounted hidepid={hidepid}: processes of other users are hidden from mcpinit's uid (unless it may ptrace them or is in the mount's gid=), so they are neither counted nor governed, and health/status run as another user cannot see mcpinit");
    }
    if let Some(pids_max) = limits.pids_max {
        if c.max_procs == 0 || c.max_procs as u64 >= pids_max {
            log::warn!(event = "cgroup_limit", max_procs = c.max_procs, cgroup_pids_max = pids_max;
                "MCPINIT_MAX_PROCS ({}) does not keep below the cgroup's pids.max ({pids_max}): the kernel will refuse forks first",
                c.max_procs);
        }
    }
}
