//! The pure core, in process: /proc/PID/stat parsing, grouping a snapshot into units,
//! and the policy's decision, on MetaMCP-shaped snapshots of a leak incident (a
//! backend with N/3 `npm exec` -> `sh -c` -> `node` servers over 20 packages).
//! Run: `cargo bench --bench core`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mcpinit::config::Config;
use mcpinit::policy::decide;
use mcpinit::proctree::{parse_stat, Proc, Snapshot};
use mcpinit::units::units;
use std::collections::HashSet;
use std::hint::black_box;

const ME: i32 = 1;
const MAIN: i32 = 10;
const BACKEND: i32 = 20;
const NOW_MS: u64 = 10_000_000;

fn process(pid: i32, ppid: i32, pgid: i32, age_ms: u64, cmdline: &str) -> Proc {
    Proc {
        pid,
        ppid,
        pgid,
        sid: pgid,
        start: (NOW_MS - age_ms) / 10,
        started_ms: NOW_MS - age_ms,
        state: b'S',
        rss: 40 << 20,
        cmdline: cmdline.into(),
    }
}

/// The entrypoint shell, the backend, then servers of 3 processes until `n` in all.
fn incident(n: usize) -> Snapshot {
    let mut procs = vec![
        process(MAIN, ME, MAIN, 9_000_000, "/bin/sh ./docker-entrypoint.sh"),
        process(BACKEND, MAIN, MAIN, 9_000_000, "node dist/index.js"),
    ];
    let servers = (n.saturating_sub(2) / 3) as i32;
    for i in 0..servers {
        let top = 100 + 3 * i;
        let age = 60_000 + 7_919 * (servers - i) as u64; // older first
        let package = format!("@modelcontextprotocol/server-{}", i % 20);
        procs.push(process(
            top,
            BACKEND,
            top,
            age,
            &format!("npm exec {package}"),
        ));
        procs.push(process(
            top + 1,
            top,
            top,
            age,
            &format!("sh -c mcp-server-{}", i % 20),
        ));
        procs.push(process(
            top + 2,
            top + 1,
            top,
            age,
            &format!(
                "node /root/.npm/_npx/{i:x}/node_modules/.bin/mcp-server-{}",
                i % 20
            ),
        ));
    }
    Snapshot {
        me: ME,
        now_ms: NOW_MS,
        procs,
        shared_groups: Vec::new(),
    }
}

fn stat_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_stat");
    let plain = b"4242 (node) S 4241 4240 4240 0 -1 4194560 21810 0 0 0 120 31 0 0 20 0 11 0 \
        73425 1137127424 24117 18446744073709551615 1 1 0 0 0 0 0 4096 17922 0 0 0 17 1 0 0 0 0 0 \
        0 0 0 0 0 0 0 0\n";
    let hostile =
        b"4242 (a) b) (c d) S 4241 4240 4240 0 -1 4194560 21810 0 0 0 120 31 0 0 20 0 11 \
        0 73425 1137127424 24117 18446744073709551615 1 1 0 0 0 0 0 4096 17922 0 0 0 17 1 0 0 0 0 \
        0 0 0 0 0 0 0 0 0\n";
    group.bench_function("node", |b| b.iter(|| parse_stat(black_box(plain))));
    group.bench_function("hostile_comm", |b| {
        b.iter(|| parse_stat(black_box(hostile)))
    });
    group.finish();
}

fn grouping_and_policy(c: &mut Criterion) {
    let config = Config::default();
    let busy = HashSet::new();
    let activity = mcpinit::policy::Activity::new();
    for name in ["units", "decide"] {
        let mut group = c.benchmark_group(name);
        for n in [10, 100, 1_000, 10_000] {
            let snapshot = incident(n);
            let grouped = units(&snapshot, Some(MAIN), &config.dedupe);
            group.throughput(Throughput::Elements(snapshot.procs.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                if name == "units" {
                    b.iter(|| units(black_box(&snapshot), Some(MAIN), &config.dedupe))
                } else {
                    b.iter(|| decide(black_box(&grouped), &activity, &config, NOW_MS, &busy))
                }
            });
        }
        group.finish();
    }
}

criterion_group!(benches, stat_parsing, grouping_and_policy);
criterion_main!(benches);
