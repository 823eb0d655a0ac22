//! Hand-built snapshots for the pure core's table tests.

use crate::core::process::{Proc, Snapshot};

pub const ME: i32 = 1;
pub const MAIN: i32 = 10;

/// A live process started `age_s` seconds before `NOW_MS`.
pub fn p(pid: i32, ppid: i32, pgid: i32, age_s: u64, cmdline: &str) -> Proc {
    Proc {
        pid,
        ppid,
        pgid,
        start: NOW_MS / 10 - age_s * 100,
        started_ms: NOW_MS - age_s * 1000,
        state: b'S',
        rss: 1 << 20,
        threads: 1,
        cmdline: cmdline.into(),
        env_hash: 0,
    }
}

/// About 28 hours of uptime: room for the benches' oldest servers.
pub const NOW_MS: u64 = 100_000_000;

/// mcpinit (pid 1) with main child 10 (a shell, its own group) plus `procs`.
pub fn snapshot(procs: Vec<Proc>) -> Snapshot {
    let mut all = vec![p(MAIN, ME, MAIN, 600, "sh ./docker-entrypoint.sh")];
    all.extend(procs);
    all.sort_by_key(|p| p.pid);
    Snapshot {
        me: ME,
        now_ms: NOW_MS,
        procs: all,
        shared_groups: Vec::new(),
    }
}

/// One MetaMCP-style server instance: `npm exec` leader (its own group) -> sh -> node.
pub fn server(leader: i32, parent: i32, age_s: u64, package: &str) -> Vec<Proc> {
    vec![
        p(
            leader,
            parent,
            leader,
            age_s,
            &format!("npm exec {package}"),
        ),
        p(
            leader + 1,
            leader,
            leader,
            age_s,
            &format!("sh -c {package}"),
        ),
        p(
            leader + 2,
            leader + 1,
            leader,
            age_s,
            "node /root/.npm/_npx/x/node_modules/.bin/srv",
        ),
    ]
}

/// `server` whose `npm exec` leader was started with the environment hashed to `env`.
pub fn server_with_env(leader: i32, parent: i32, age_s: u64, package: &str, env: u64) -> Vec<Proc> {
    let mut procs = server(leader, parent, age_s, package);
    procs[0].env_hash = env;
    procs
}

/// The default launcher patterns, as the config has them.
pub fn defaults() -> Vec<String> {
    crate::config::settings::DEFAULT_DEDUPE
        .iter()
        .map(|s| s.to_string())
        .collect()
}
