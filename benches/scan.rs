//! A look at the tree against real processes, as it grows from 10 to 10,000 idle
//! children:
//! - `full`: a full read (every /proc/PID/stat; command lines cached), the safety net
//!   and, before issue 14, every periodic look;
//! - `cold`: the first look at a tree (every cmdline read too);
//! - `incremental`: an incremental look at the same, unchanged, settled tree (the
//!   listing, and nothing read again);
//! - `unchanged`: what a periodic look costs when the probe proves nothing forked or
//!   exited, and it is skipped: the container's task count and the pid cursor;
//! - `activity`: one look at the input (/proc/PID/io) of that many server leaves.
//!
//! The scan reads every process in /proc, ours or not, so run it in a PID namespace
//! to measure our tree alone, as `scripts/bench.sh` does:
//!     unshare --pid --fork --mount-proc --kill-child cargo bench --bench scan
//! Every child dies with this process (PR_SET_PDEATHSIG), even if the bench is killed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mcpinit::core::activity::Tracker;
use mcpinit::core::process::Depth;
use mcpinit::core::units;
use mcpinit::supervisor::watch;
use mcpinit::sys::cgroup;
use mcpinit::sys::procfs::{self, Scanner, YOUNG_MS};
use std::hint::black_box;
use std::time::Duration;

/// Idle children of this process, killed and reaped on drop.
struct Children(Vec<libc::pid_t>);

impl Children {
    fn spawn(n: usize) -> Children {
        let mut pids = Vec::with_capacity(n);
        for _ in 0..n {
            // SAFETY: the child calls only async-signal-safe functions, then waits for
            // its death signal forever.
            match unsafe { libc::fork() } {
                0 => unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    loop {
                        libc::pause();
                    }
                },
                -1 => panic!("fork: {}", std::io::Error::last_os_error()),
                pid => pids.push(pid),
            }
        }
        Children(pids)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: our own unreaped children, so the pids cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &pid in &self.0 {
            // SAFETY: waitpid with a null status pointer.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }
}

fn scan(c: &mut Criterion) {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let sizes: Vec<usize> = match std::env::var("MCPINIT_BENCH_SCAN_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
        // `cargo test --all-targets` runs each bench once, without `--bench`: keep it small.
        Err(_) if !std::env::args().any(|a| a == "--bench") => vec![10],
        Err(_) => vec![10, 100, 1_000, 10_000],
    };
    let mut group = c.benchmark_group("scan");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let loadavg = std::fs::File::open("/proc/loadavg").expect("/proc/loadavg");
    let pids_current = cgroup::read()
        .pids_current
        .and_then(|p| std::fs::File::open(p).ok());
    for &n in &sizes {
        let children = Children::spawn(n);
        // Settled: past the age at which a process is read again on every look.
        std::thread::sleep(Duration::from_millis(YOUNG_MS + 100));
        let mut scanner = Scanner::new(me);
        let first = scanner.scan();
        assert_eq!(
            first.procs.len(),
            n,
            "the scan must see exactly our children"
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("full", n), &n, |b, _| {
            b.iter(|| black_box(scanner.look(Depth::Full)))
        });
        group.bench_with_input(BenchmarkId::new("incremental", n), &n, |b, _| {
            b.iter(|| black_box(scanner.look(Depth::Incremental)))
        });
        // At least our children (the namespace's other processes are taken over too).
        assert!(
            scanner.reused() >= n,
            "an unchanged, settled tree is read from the last look: {} of {n}",
            scanner.reused()
        );
        // The probe's mark (supervisor/probe.rs): without a cgroup count, /proc's
        // link count stands in, as it does in the loop.
        group.bench_with_input(BenchmarkId::new("unchanged", n), &n, |b, _| {
            b.iter(|| {
                // st_nlink is u32 on aarch64, u64 on x86_64.
                #[allow(clippy::useless_conversion)]
                let tasks = match &pids_current {
                    Some(file) => cgroup::current(file),
                    None => nix::sys::stat::stat(c"/proc")
                        .ok()
                        .map(|st| u64::from(st.st_nlink)),
                };
                black_box((tasks, procfs::last_pid(&loadavg)))
            })
        });
        group.bench_with_input(BenchmarkId::new("cold", n), &n, |b, _| {
            b.iter(|| black_box(Scanner::new(me).scan()))
        });
        // One look at the input of every unit: each child is a unit of one process,
        // so its own leaf, and one /proc/PID/io read each (what a sample of n watched
        // server instances costs, one leaf per instance).
        let snapshot = scanner.scan();
        let grouped = units::units(&snapshot, None, &[]);
        let ids: Vec<_> = grouped.iter().map(|u| u.id).collect();
        let mut tracker = Tracker::default();
        // Who holds each unit's input is found at the first look, then kept while the
        // unit's members stay the same: the steady cost is the counters alone.
        let mut holders = watch::Holders::default();
        group.bench_with_input(BenchmarkId::new("activity", n), &n, |b, _| {
            b.iter(|| {
                black_box(watch::sample(
                    &mut tracker,
                    &mut holders,
                    &snapshot,
                    &grouped,
                    &ids,
                ))
            })
        });
        assert_eq!(tracker.len(), n, "every leaf was read");
        drop(children);
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
