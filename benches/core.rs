//! The pure core, in process: /proc/PID/stat parsing, grouping a snapshot into units,
//! and the policy's decision, on MetaMCP-shaped snapshots of a leak incident (a
//! backend with N/3 `npm exec` -> `sh -c` -> `node` servers over 20 packages).
//! Run: `cargo bench --bench core`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mcpinit::config::Config;
use mcpinit::core::policy::decide;
use mcpinit::core::process::{parse_stat, Snapshot};
use mcpinit::core::testkit::{p, server, snapshot, MAIN, NOW_MS};
use mcpinit::core::units::units;
use std::collections::HashSet;
use std::hint::black_box;

const BACKEND: i32 = 20;

/// The entrypoint shell, the backend, then servers of 3 processes until `n` in all.
fn incident(n: usize) -> Snapshot {
    let mut procs = vec![p(BACKEND, MAIN, MAIN, 9_000, "node dist/index.js")];
    let servers = (n.saturating_sub(2) / 3) as i32;
    for i in 0..servers {
        let age = 60 + 8 * (servers - i) as u64; // older first
        let package = format!("@modelcontextprotocol/server-{}", i % 20);
        procs.extend(server(100 + 3 * i, BACKEND, age, &package));
    }
    snapshot(procs)
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
    let activity = mcpinit::core::policy::Activity::new();
    for name in ["units", "decide", "decide_with_input"] {
        let mut group = c.benchmark_group(name);
        for n in [10, 100, 1_000, 10_000] {
            let snapshot = incident(n);
            let grouped = units(&snapshot, Some(MAIN), &config.dedupe);
            // Every instance watched, half of them with input a minute ago, half idle
            // for an hour: dedupe has to rank them all.
            let watched: mcpinit::core::policy::Activity = grouped
                .iter()
                .filter(|u| u.key.is_some())
                .enumerate()
                .map(|(i, u)| {
                    let input = (i % 2 == 0).then_some(NOW_MS - 60_000);
                    let seen = mcpinit::core::activity::Use {
                        last_input_ms: input,
                        watched_since_ms: NOW_MS - 3_600_000,
                        from: None,
                    };
                    (u.id, seen)
                })
                .collect();
            group.throughput(Throughput::Elements(snapshot.procs.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                if name == "units" {
                    b.iter(|| units(black_box(&snapshot), Some(MAIN), &config.dedupe))
                } else if name == "decide_with_input" {
                    b.iter(|| decide(black_box(&grouped), &watched, &config, NOW_MS, &busy))
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
