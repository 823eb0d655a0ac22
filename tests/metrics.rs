//! The metrics endpoint of a real mcpinit (PID 1 of its own namespace, under a timeout):
//! scraped with prometheus_client's own parsers and compared with `status --json`, and
//! attacked with slowloris and garbage clients while a fork storm runs, to show that
//! reaping and the cap are not held up by it.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn dir() -> String {
    format!("{}/tests/metrics", env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python with prometheus_client (made on first use, cached); not
/// `common::python()`, which has no prometheus_client.
fn prometheus_python() -> String {
    let out = Command::new(format!("{}/venv.sh", dir()))
        .output()
        .expect("bash must be installed");
    assert!(
        out.status.success(),
        "cannot set up prometheus_client (PyPI unreachable?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The endpoint's address, from mcpinit's `serving metrics on` line (port 0 asked).
fn address(run: &Run) -> SocketAddr {
    assert!(
        run.wait_for_log("serving metrics on http://", LONG),
        "{}",
        run.stdout()
    );
    let out = run.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("serving metrics on"))
        .unwrap();
    let url = line.split("http://").nth(1).unwrap();
    url.split('/').next().unwrap().parse().unwrap()
}

/// One HTTP exchange: (status code, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let code = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (code, body.to_string())
}

/// A sample's value in Prometheus text, by its exact name and labels.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Scrape (both formats, with the real parser) and compare with `status --json` until
/// they agree: the two are read at different moments, so a reap in between may
/// separate them once. Returns the Prometheus text of the agreeing scrape.
fn agree(run: &Run, python: &str, addr: SocketAddr) -> String {
    let state_file = run.dir().join("state.json");
    let status = run.dir().join("status.json");
    let scrape = run.dir().join("scrape.txt");
    let mut last = String::new();
    for _ in 0..20 {
        let out = inside(
            run,
            &[
                "status",
                "--json",
                "--state-file",
                state_file.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&status, &out.stdout).unwrap();
        let compared = Command::new(python)
            .arg(format!("{}/compare.py", dir()))
            .arg(format!("http://{addr}"))
            .arg(&status)
            .arg(&scrape)
            .output()
            .unwrap();
        if compared.status.success() {
            return std::fs::read_to_string(&scrape).unwrap();
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&compared.stdout),
            String::from_utf8_lossy(&compared.stderr)
        );
        thread::sleep(Duration::from_millis(500));
    }
    panic!("scrape and status never agreed:\n{last}\n{}", run.stdout());
}

/// The fixture backend under mcpinit with `settings`, serving metrics on a free port.
fn start(settings: &[&str], backend_args: &str) -> Run {
    with_backend(
        settings,
        backend_args,
        &[("MCPINIT_METRICS", "127.0.0.1:0")],
    )
}

#[test]
fn a_scrape_parsed_by_prometheus_client_agrees_with_status_json() {
    let python = prometheus_python();
    // Every leaf ignores SIGTERM: the culled duplicates and the orphan need SIGKILL.
    // Every leaf reads once, 4 s in: used, then left (a never-used one would be the spare).
    let run = start(
        // The fixture's orphan is made in its first milliseconds, before any look saw it
        // as a server's: only `all` ends it.
        &["--dedupe-idle", "500ms", "--kill-grace", "1s", "--orphans", "all"],
        "--spawn a:3 --spawn b:2 --orphan c:1 --gap-ms 150 --leaf-ignore-term --leaf-read-once 4000",
    );
    let addr = address(&run);
    // Settled: 2 + 1 duplicates and the orphan terminated and gone, each by SIGKILL: the
    // backend makes no instance a duplicate or an orphan before its leaf ignores SIGTERM.
    let ended = |text: &str, how: &str| -> f64 {
        ["duplicate", "orphan"]
            .iter()
            .filter_map(|r| {
                sample(
                    text,
                    &format!("mcpinit_terminations_ended_total{{reason=\"{r}\",ended=\"{how}\"}}"),
                )
            })
            .sum()
    };
    let settled = wait_until(LONG, || {
        let (code, text) = get(addr, "/metrics");
        let all = ended(&text, "term") + ended(&text, "kill");
        (code == 200 && all == 4.0).then_some(text)
    });
    let Some(settled) = settled else {
        panic!("never settled:\n{}", get(addr, "/metrics").1);
    };
    assert_eq!(ended(&settled, "kill"), 4.0, "{settled}");
    run.signal(libc::SIGWINCH); // forwarded to the backend, which ignores it
    assert!(run.wait_for_log("forwarded SIGWINCH", LONG));

    let text = agree(&run, &python, addr);
    let v = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name}:\n{text}"));
    assert_eq!(v("mcpinit_terminations_total{reason=\"duplicate\"}"), 3.0);
    assert_eq!(v("mcpinit_terminations_total{reason=\"orphan\"}"), 1.0);
    assert_eq!(v("mcpinit_escalations_total"), ended(&text, "kill"));
    assert_eq!(v("mcpinit_signals_forwarded_total"), 1.0);
    assert_eq!(v("mcpinit_units{role=\"server\"}"), 2.0);
    assert_eq!(v("mcpinit_units{role=\"main\"}"), 1.0);
    assert_eq!(v("mcpinit_server_keys"), 2.0);
    assert_eq!(
        v("mcpinit_server_instances{key=\"npm exec @modelcontextprotocol/server-a --port 0\"}"),
        1.0
    );
    assert_eq!(v("mcpinit_processes"), 7.0, "main + two servers of 3");
    assert!(v("mcpinit_scan_duration_seconds_count") > 0.0);
    assert!(v("mcpinit_zombies_reaped_total") >= 4.0);

    // /healthz says what `health` says.
    let (code, body) = get(addr, "/healthz");
    let health = inside(
        &run,
        &[
            "health",
            "--state-file",
            run.dir().join("state.json").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 200, "{body}");
    assert!(health.status.success());
    assert!(
        body.starts_with("healthy: 7 live processes (cap 128)"),
        "{body}"
    );
    assert!(
        String::from_utf8_lossy(&health.stdout).starts_with("healthy: 7 live processes (cap 128)")
    );
    // Nothing else is answered.
    assert_eq!(get(addr, "/").0, 404);
    assert_eq!(get(addr, "/metrics/../state").0, 404);
}

#[test]
fn healthz_fails_when_health_fails() {
    // Dry run over a cap of 3: `health` fails, and so must /healthz, with its words.
    let run = start(
        &["--max-procs", "3", "--dry-run"],
        "--spawn a:2 --gap-ms 100",
    );
    let addr = address(&run);
    let failing = wait_until(LONG, || {
        let (code, body) = get(addr, "/healthz");
        (code == 503).then_some(body)
    })
    .expect("healthz never failed");
    assert!(
        failing.starts_with("unhealthy: ")
            && failing.contains("over MCPINIT_MAX_PROCS=3 (dry run)"),
        "{failing}"
    );
}

#[test]
fn a_port_in_use_is_said_and_the_child_runs_without_metrics() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("metrics-busy");
    let marker = dir.join("spawned");
    let script = format!("touch {}", marker.display());
    let mut run = Run::start(&["--metrics", &port, "--", "sh", "-c", &script], &[]);
    assert_eq!(run.wait(LONG), Some(0), "{}", run.stdout());
    let said = run.mcpinit_lines(&format!("cannot serve metrics on {port}"));
    assert_eq!(said.len(), 1, "{}", run.stdout());
    assert!(said[0].contains("running without them"), "{}", said[0]);
    assert!(marker.exists(), "the child did not run");
    assert!(
        !run.stdout().contains("serving metrics"),
        "{}",
        run.stdout()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_are_off_by_default() {
    let run = Run::start(&["sh", "-c", "sleep 30"], &[]);
    // After the start-up probe of the routes, whose victim holds a socketpair a moment.
    assert!(run.wait_for_log("inputs are closed through", LONG));
    assert!(
        !run.stdout().contains("serving metrics"),
        "{}",
        run.stdout()
    );
    // No socket of any kind: mcpinit's fds are stdio, the signalfd and nothing else.
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", run.init_pid()))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    assert!(!fds.iter().any(|l| l.starts_with("socket:")), "{fds:?}");
    assert!(fds.iter().any(|l| l.contains("signalfd")), "{fds:?}");
}

// ---- hostile clients during a fork storm ----

/// What a storm run showed.
#[derive(Debug)]
struct Storm {
    peak: usize,
    /// Most zombies seen at once in the namespace, and whether they were all gone soon
    /// after the storm.
    peak_zombies: usize,
    settled_under_cap: bool,
    scrapes_ok: u64,
    scrapes_failed: u64,
    slowest_scrape: Duration,
    final_scrape: String,
}

const CAP: usize = 50;

/// Five seconds of forking sleepers (plus orphans that exit at once, for the reaper)
/// against a cap of 50, with `attack` hostile clients at the endpoint meanwhile.
fn storm(attack: bool) -> Storm {
    let script = "end=$(( $(date +%s) + 5 )); while [ $(date +%s) -lt $end ]; do \
                  sleep 1000 & sleep 1000 & (sleep 0.01 &); done; echo storm-over; wait";
    let cap = CAP.to_string();
    let mut run = Run::start(
        &[
            "--max-procs",
            &cap,
            "--kill-grace",
            "500ms",
            "--",
            "sh",
            "-c",
            script,
        ],
        &[("MCPINIT_METRICS", "127.0.0.1:0")],
    );
    let addr = address(&run);
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    if attack {
        attackers.extend((0..12).map(|i| {
            let stop = stop.clone();
            thread::spawn(move || slowloris(addr, &stop, i))
        }));
        attackers.extend((0..3).map(|i| {
            let stop = stop.clone();
            thread::spawn(move || garbage(addr, &stop, i))
        }));
    }
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let slowest = Arc::new(AtomicU64::new(0));
    let scraper = {
        let (stop, ok, failed, slowest) =
            (stop.clone(), ok.clone(), failed.clone(), slowest.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match TcpStream::connect(addr).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")?;
                    let mut reply = String::new();
                    s.read_to_string(&mut reply)?;
                    Ok(reply)
                }) {
                    Ok(reply) if reply.starts_with("HTTP/1.1 200") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let ms = started.elapsed().as_millis() as u64;
                        slowest.fetch_max(ms, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (mut peak, mut peak_zombies) = (0, 0);
    let over = wait_until(Duration::from_secs(60), || {
        peak = peak.max(run.processes().len());
        peak_zombies = peak_zombies.max(zombies(run.init_pid()));
        run.stdout().contains("storm-over").then_some(())
    });
    assert!(over.is_some(), "the storm never ended");
    let settled_under_cap = wait_until(LONG, || {
        (run.processes().len() <= CAP && zombies(run.init_pid()) == 0).then_some(())
    })
    .is_some();
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    scraper.join().unwrap();
    // The attackers' connections end within the endpoint's deadlines; then it serves.
    let final_scrape = wait_until(Duration::from_secs(10), || {
        let (code, text) = get(addr, "/metrics");
        (code == 200).then_some(text)
    })
    .unwrap_or_default();
    run.signal(libc::SIGTERM);
    assert_eq!(
        run.wait(LONG),
        Some(128 + libc::SIGTERM),
        "{}",
        run.stdout()
    );
    Storm {
        peak,
        peak_zombies,
        settled_under_cap,
        scrapes_ok: ok.load(Ordering::Relaxed),
        scrapes_failed: failed.load(Ordering::Relaxed),
        slowest_scrape: Duration::from_millis(slowest.load(Ordering::Relaxed)),
        final_scrape,
    }
}

/// Zombies waiting for mcpinit: its own children that exited and are not reaped yet
/// (the shell's own children are the shell's to reap).
fn zombies(init: i32) -> usize {
    children(init)
        .into_iter()
        .filter(|&pid| is_zombie(pid) && Path::new(&format!("/proc/{pid}")).exists())
        .count()
}

/// A request trickled one byte every 50 ms, over and over, never finished in time.
fn slowloris(addr: SocketAddr, stop: &AtomicBool, seed: u64) {
    let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: ";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        for (i, b) in head.iter().cycle().enumerate() {
            if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                break;
            }
            // Some of them also hold the connection silently for a while.
            let pause = if seed % 3 == 0 && i == 0 { 1500 } else { 50 };
            thread::sleep(Duration::from_millis(pause));
        }
    }
}

/// Random bytes, oversized heads, bad methods and paths, as fast as replies come.
fn garbage(addr: SocketAddr, stop: &AtomicBool, seed: u64) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while !stop.load(Ordering::Relaxed) {
        let request: Vec<u8> = match next() % 5 {
            0 => (0..next() % 4096).map(|_| next() as u8).collect(),
            1 => [b"GET /metrics HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 5000]].concat(),
            2 => b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            3 => b"GET /../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(),
            _ => b"\r\n\r\n".to_vec(),
        };
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = s.write_all(&request);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
}

#[test]
fn hostile_clients_during_a_fork_storm_hold_up_neither_reaping_nor_the_cap() {
    let quiet = storm(false);
    let attacked = storm(true);
    for (name, s) in [("without attack", &quiet), ("with attack", &attacked)] {
        eprintln!(
            "fork storm, cap {CAP}, {name}: peak {} processes, at most {} zombies of mcpinit's \
             at once, settled under the cap: {}, scrapes {} ok / {} failed, slowest ok {:?}",
            s.peak,
            s.peak_zombies,
            s.settled_under_cap,
            s.scrapes_ok,
            s.scrapes_failed,
            s.slowest_scrape
        );
    }
    for s in [&quiet, &attacked] {
        // The same bounds as the storm test without metrics (tests/governance.rs).
        assert!(s.peak < 600, "peak {} processes", s.peak);
        assert!(
            s.settled_under_cap,
            "not back under the cap with no zombies left"
        );
    }
    // The attack really happened and the endpoint fended it off.
    let text = &attacked.final_scrape;
    let outcome = |o: &str| {
        sample(
            text,
            &format!("mcpinit_metrics_requests_total{{outcome=\"{o}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(outcome("timeout") > 0.0, "{text}");
    assert!(
        outcome("bad_request") + outcome("too_large") > 0.0,
        "{text}"
    );
    assert!(outcome("metrics") > 0.0, "{text}");
    // Reaping went on: every orphan the storm made was reaped.
    assert!(
        sample(text, "mcpinit_zombies_reaped_total").unwrap_or(0.0) > 10.0,
        "{text}"
    );
    assert!(sample(text, "mcpinit_terminations_total{reason=\"cap\"}").unwrap_or(0.0) > 0.0);
    assert!(attacked.scrapes_ok > 0, "{attacked:?}");
}
