use super::server::{parse_for_test as parse, MAX_CONNECTIONS, READ_DEADLINE, REQUEST_CAP};
use super::*;
use nix::poll::{poll, PollFd, PollTimeout};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

fn figures() -> Figures {
    Figures {
        version: "9.9.9",
        started_unix_ms: 1_700_000_000_123,
        terminated: [3, 1, 2, 0],
        escalations: 1,
        crashes: 2,
        spared: 3,
        input_route: "ptrace",
        zombies_reaped: 42,
        signals_forwarded: 2,
        live: 7,
        rss: 123_456,
        peak_procs: 9,
        peak_rss: 200_000,
        max_procs: 128,
        max_memory: 0,
        cgroup_pids_max: Some(512),
        cgroup_memory_max: None,
        units: Roles {
            main: 1,
            server: 2,
            orphan: 0,
            other: 1,
        },
        terminating: 1,
        instances: vec![("npm exec @x/a".into(), 2), ("uvx time".into(), 1)],
        ..Figures::default()
    }
}

/// The sample lines of a scrape as (name with labels, value).
fn samples(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("sample has a value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

fn value(text: &str, name: &str) -> Option<String> {
    samples(text)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

#[test]
fn prometheus_text_carries_every_figure() {
    let mut f = figures();
    f.ended.add(0, Ended::Term);
    f.ended.add(0, Ended::Term);
    f.ended.add(2, Ended::Kill);
    let text = render(&f, Format::Prometheus);
    let v = |name: &str| value(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert_eq!(v("mcpinit_terminations_total{reason=\"duplicate\"}"), "3");
    assert_eq!(v("mcpinit_terminations_total{reason=\"cap\"}"), "2");
    assert_eq!(v("mcpinit_terminations_total{reason=\"memory\"}"), "0");
    assert_eq!(
        v("mcpinit_terminations_ended_total{reason=\"duplicate\",ended=\"term\"}"),
        "2"
    );
    assert_eq!(
        v("mcpinit_terminations_ended_total{reason=\"cap\",ended=\"kill\"}"),
        "1"
    );
    assert_eq!(
        v("mcpinit_terminations_ended_total{reason=\"orphan\",ended=\"eof\"}"),
        "0"
    );
    assert_eq!(v("mcpinit_escalations_total"), "1");
    assert_eq!(v("mcpinit_crashes_total"), "2");
    assert_eq!(v("mcpinit_input_route{route=\"ptrace\"}"), "1");
    assert_eq!(v("mcpinit_spared_total"), "3");
    assert_eq!(v("mcpinit_zombies_reaped_total"), "42");
    assert_eq!(v("mcpinit_signals_forwarded_total"), "2");
    assert_eq!(v("mcpinit_processes"), "7");
    assert_eq!(v("mcpinit_rss_bytes"), "123456");
    assert_eq!(v("mcpinit_max_procs"), "128");
    assert_eq!(v("mcpinit_max_memory_bytes"), "0");
    assert_eq!(v("mcpinit_cgroup_pids_max"), "512");
    assert!(value(&text, "mcpinit_cgroup_memory_max_bytes").is_none());
    assert_eq!(v("mcpinit_units{role=\"server\"}"), "2");
    assert_eq!(v("mcpinit_units{role=\"main\"}"), "1");
    assert_eq!(v("mcpinit_terminating_units"), "1");
    assert_eq!(v("mcpinit_server_instances{key=\"npm exec @x/a\"}"), "2");
    assert_eq!(v("mcpinit_server_keys"), "2");
    assert_eq!(v("mcpinit_start_time_seconds"), "1700000000.123");
    assert_eq!(v("mcpinit_build{version=\"9.9.9\"}"), "1");
    // Prometheus names a counter's family with its _total, and has no EOF marker.
    assert!(text.contains("# TYPE mcpinit_zombies_reaped_total counter\n"));
    assert!(!text.contains("# EOF"));
    // Every sample belongs to a family declared before it.
    let mut declared = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                declared.iter().any(|d| name == d
                    || name.strip_suffix("_bucket") == Some(d)
                    || name.strip_suffix("_count") == Some(d)
                    || name.strip_suffix("_sum") == Some(d)),
                "{name} has no family"
            );
        }
    }
}

#[test]
fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
    let text = render(&figures(), Format::OpenMetrics);
    assert!(text.contains("# TYPE mcpinit_zombies_reaped counter\n"));
    assert!(text.contains("\nmcpinit_zombies_reaped_total 42\n"));
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(text.matches("# EOF").count(), 1);
}

#[test]
fn label_values_are_escaped_and_control_characters_replaced() {
    assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label("a\nb"), "a\\nb");
    assert_eq!(escape_label("a\x1b[31mb\x07"), "a\u{FFFD}[31mb\u{FFFD}");
    let mut f = figures();
    f.instances = vec![("npm exec \"evil\\\" x\ny".into(), 1)];
    let text = render(&f, Format::Prometheus);
    assert!(
        text.contains("mcpinit_server_instances{key=\"npm exec \\\"evil\\\\\\\" x\\ny\"} 1\n"),
        "{text}"
    );
    // No line was split by the newline in the key.
    assert!(text
        .lines()
        .all(|l| l.starts_with('#') || l.starts_with("mcpinit_")));
}

#[test]
fn keyed_instances_are_bounded_and_the_rest_summed() {
    let mut f = figures();
    f.instances = (0..40)
        .map(|i| (format!("npm exec @s/server-{i:02}"), 1 + i % 3))
        .collect();
    let text = render(&f, Format::Prometheus);
    let listed = samples(&text)
        .into_iter()
        .filter(|(n, _)| n.starts_with("mcpinit_server_instances{"))
        .collect::<Vec<_>>();
    assert_eq!(listed.len(), 32);
    let listed_sum: usize = listed
        .iter()
        .map(|(_, v)| v.parse::<usize>().unwrap())
        .sum();
    let total: usize = f.instances.iter().map(|(_, n)| n).sum();
    let unlisted: usize = value(&text, "mcpinit_server_instances_unlisted")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(listed_sum + unlisted, total);
    assert_eq!(value(&text, "mcpinit_server_keys").unwrap(), "40");
    // The most instances first: every key with 3 instances is listed.
    assert_eq!(
        listed.iter().filter(|(_, v)| v == "3").count(),
        f.instances.iter().filter(|(_, n)| *n == 3).count()
    );
}

#[test]
fn long_keys_are_cut_and_merged_so_no_series_repeats() {
    let stem = "é".repeat(100); // 200 bytes: the cut falls inside a character's bytes
    let mut f = figures();
    f.instances = vec![(format!("{stem}a"), 1), (format!("{stem}b"), 2)];
    let text = render(&f, Format::Prometheus);
    let listed: Vec<_> = samples(&text)
        .into_iter()
        .filter(|(n, _)| n.starts_with("mcpinit_server_instances{"))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].1, "3");
    assert!(listed[0].0.len() < 200, "{}", listed[0].0);
    assert!(listed[0].0.contains('…'));
    assert_eq!(value(&text, "mcpinit_server_keys").unwrap(), "2");
}

#[test]
fn histogram_is_cumulative_with_an_inf_bucket() {
    let mut h = Histogram::default();
    for us in [100, 400, 900, 3_000, 2_000_000] {
        h.observe(Duration::from_micros(us));
    }
    let buckets: Vec<_> = h.cumulative().collect();
    assert_eq!(buckets.len(), SCAN_BUCKETS.len() + 1);
    assert_eq!(buckets[0], (0.0005, 2));
    assert_eq!(buckets[1], (0.001, 3));
    assert_eq!(buckets[3], (0.005, 4));
    assert_eq!(buckets[10], (1.0, 4));
    assert_eq!(buckets[11].1, 5);
    assert!(buckets[11].0.is_infinite());
    assert_eq!(h.count(), 5);
    assert!((h.sum_seconds() - 2.0044).abs() < 1e-9);
    let mut f = figures();
    f.scans = h;
    let text = render(&f, Format::Prometheus);
    assert_eq!(
        value(&text, "mcpinit_scan_duration_seconds_bucket{le=\"0.0005\"}").unwrap(),
        "2"
    );
    assert_eq!(
        value(&text, "mcpinit_scan_duration_seconds_bucket{le=\"1.0\"}").unwrap(),
        "4"
    );
    assert_eq!(
        value(&text, "mcpinit_scan_duration_seconds_bucket{le=\"+Inf\"}").unwrap(),
        "5"
    );
    assert_eq!(
        value(&text, "mcpinit_scan_duration_seconds_count").unwrap(),
        "5"
    );
    assert_eq!(
        value(&text, "mcpinit_scan_duration_seconds_sum").unwrap(),
        "2.0044"
    );
}

#[test]
fn ended_counts_ignore_an_unknown_reason() {
    let mut e = EndedCounts::default();
    e.add(3, Ended::Eof);
    e.add(9, Ended::Kill);
    assert_eq!(e.get(3, Ended::Eof), 1);
    assert_eq!(e.get(9, Ended::Kill), 0);
}

#[test]
fn requests_are_routed_strictly() {
    let ok = |r: &str| parse(r.as_bytes());
    assert_eq!(
        ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Ok(Route::Metrics(Format::Prometheus))
    );
    assert_eq!(
        ok("GET /metrics?x=1 HTTP/1.0\r\nAccept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5\r\n\r\n"),
        Ok(Route::Metrics(Format::OpenMetrics))
    );
    assert_eq!(ok("GET /healthz HTTP/1.1\n\n"), Ok(Route::Healthz));
    assert_eq!(
        ok("POST /metrics HTTP/1.1\r\n\r\n"),
        Err(Outcome::MethodNotAllowed)
    );
    assert_eq!(
        ok("HEAD /healthz HTTP/1.1\r\n\r\n"),
        Err(Outcome::MethodNotAllowed)
    );
    assert_eq!(ok("GET / HTTP/1.1\r\n\r\n"), Err(Outcome::NotFound));
    assert_eq!(ok("DELETE /x HTTP/1.1\r\n\r\n"), Err(Outcome::NotFound));
    assert_eq!(ok("GET /metrics\r\n\r\n"), Err(Outcome::BadRequest));
    assert_eq!(
        ok("GET  /metrics HTTP/1.1\r\n\r\n"),
        Err(Outcome::BadRequest)
    );
    assert_eq!(
        ok("GET http://h/metrics HTTP/1.1\r\n\r\n"),
        Err(Outcome::BadRequest)
    );
    assert_eq!(ok("\u{0}\u{1}\r\n\r\n"), Err(Outcome::BadRequest));
    assert_eq!(
        parse(b"GET /metrics HTTP/1.1\r\nX: \xff\r\n\r\n"),
        Err(Outcome::BadRequest)
    );
}

// ---- the server against real sockets, driven the way the loop drives it ----

/// A stand-in for the event loop: poll the server's fds (10 ms at most, as the loop
/// would for its own deadlines), service them, and record the longest a single
/// `service` took and the longest gap between two turns.
struct Pump {
    server: Server,
    longest_service: Duration,
    longest_turn: Duration,
    body: String,
}

impl Pump {
    fn new() -> Pump {
        Pump {
            server: Server::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
            longest_service: Duration::ZERO,
            longest_turn: Duration::ZERO,
            body: "ok\n".into(),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.server.local_addr().unwrap()
    }

    fn turn(&mut self) {
        let started = Instant::now();
        let ready: Vec<bool> = {
            let interest = self.server.interest();
            let mut fds: Vec<PollFd> = interest
                .iter()
                .map(|&(fd, ev)| PollFd::new(fd, ev))
                .collect();
            poll(&mut fds, PollTimeout::from(10u8)).unwrap();
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let before = Instant::now();
        // Making the reply is the loop's work, not the endpoint's: it is left out of
        // the measure (a 16 MiB one takes a while in a debug build).
        let mut replying = Duration::ZERO;
        let body = &self.body;
        self.server.service(&ready, Instant::now(), |route| {
            let started = Instant::now();
            let reply = Reply {
                status: 200,
                content_type: "text/plain",
                body: format!("{route:?} {body}"),
            };
            replying += started.elapsed();
            reply
        });
        let serving = before.elapsed().saturating_sub(replying);
        self.longest_service = self.longest_service.max(serving);
        self.longest_turn = self
            .longest_turn
            .max(started.elapsed().saturating_sub(replying));
    }

    /// Turn until `done` or `limit`.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Server) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            self.turn();
            if done(&self.server) {
                return true;
            }
        }
        false
    }

    fn count(&self, outcome: Outcome) -> u64 {
        let i = OUTCOMES.iter().position(|&o| o == outcome).unwrap();
        self.server.counts()[i]
    }
}

/// Send `request`, read the reply to EOF (blocking, with a timeout).
fn client(addr: std::net::SocketAddr, request: Vec<u8>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&request);
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    })
}

/// A client whose whole request is in the socket before the server accepts it: the
/// kernel completes the handshake from the backlog, so connect and write need no turn
/// of the loop.
fn serve_ready(pump: &mut Pump, request: &[u8]) -> String {
    let mut s = TcpStream::connect(pump.addr()).unwrap();
    s.write_all(request).unwrap();
    let handle = thread::spawn(move || {
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    pump.run_until(Duration::from_secs(10), |_| handle.is_finished());
    handle.join().unwrap()
}

fn serve_one(pump: &mut Pump, request: &[u8]) -> String {
    let handle = client(pump.addr(), request.to_vec());
    pump.run_until(Duration::from_secs(10), |_| handle.is_finished());
    handle.join().unwrap()
}

#[test]
fn answers_get_metrics_and_refuses_the_rest_then_closes() {
    let mut pump = Pump::new();
    let reply = serve_one(&mut pump, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Content-Length: 23\r\n"), "{reply}");
    assert!(reply.contains("Connection: close\r\n"));
    assert!(
        reply.ends_with("\r\n\r\nMetrics(Prometheus) ok\n"),
        "{reply}"
    );
    let reply = serve_one(&mut pump, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(reply.ends_with("Healthz ok\n"), "{reply}");
    let reply = serve_one(&mut pump, b"PUT /metrics HTTP/1.1\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
    assert!(reply.contains("Allow: GET\r\n"));
    let reply = serve_one(&mut pump, b"GET /admin HTTP/1.1\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 404 "), "{reply}");
    let reply = serve_one(&mut pump, b"\x16\x03\x01\x02\x00garbage\n\n");
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let reply = serve_one(&mut pump, &vec![b'A'; REQUEST_CAP * 3]);
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    assert_eq!(pump.count(Outcome::Metrics), 1);
    assert_eq!(pump.count(Outcome::Healthz), 1);
    assert_eq!(pump.count(Outcome::MethodNotAllowed), 1);
    assert_eq!(pump.count(Outcome::NotFound), 1);
    assert_eq!(pump.count(Outcome::BadRequest), 1);
    assert_eq!(pump.count(Outcome::TooLarge), 1);
    assert!(pump.run_until(Duration::from_secs(5), |s| s.open_connections() == 0));
}

#[test]
fn slowloris_clients_are_bounded_and_dropped_at_the_deadline_without_stalling_the_loop() {
    let mut pump = Pump::new();
    let addr = pump.addr();
    let started = Instant::now();
    // Twice as many trickling clients as there are slots: one byte every 100 ms, never
    // a complete request.
    let trickle: Vec<_> = (0..MAX_CONNECTIONS * 2)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let mut sent = 0;
                for b in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().cycle().take(60) {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    sent += 1;
                    thread::sleep(Duration::from_millis(100));
                }
                sent
            })
        })
        .collect();
    // Meanwhile the loop turns; the slots fill, and the extra clients are turned away.
    assert!(
        pump.run_until(Duration::from_secs(5), |s| s.open_connections()
            == MAX_CONNECTIONS)
    );
    // With every slot held, a client whose request is there at the accept is served
    // at once (a few tries: a trickler turned away may take the accept before it).
    let honest = (0..5).any(|_| {
        serve_ready(&mut pump, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200")
    });
    assert!(honest, "no scrape got through while the slots were held");
    assert_eq!(pump.server.open_connections(), MAX_CONNECTIONS);
    assert!(pump.run_until(Duration::from_secs(10), |_| trickle
        .iter()
        .all(|t| t.is_finished())));
    let sent: Vec<usize> = trickle.into_iter().map(|t| t.join().unwrap()).collect();
    // All were dropped: the ones served at the read deadline, the rest at once.
    assert!(pump.run_until(Duration::from_secs(5), |s| s.open_connections() == 0));
    assert_eq!(
        pump.count(Outcome::Timeout),
        MAX_CONNECTIONS as u64,
        "{sent:?}"
    );
    assert!(pump.count(Outcome::Busy) >= MAX_CONNECTIONS as u64);
    // No trickler got its 60 bytes through: each was cut off by ~2 s.
    assert!(sent.iter().all(|&n| n < 60), "{sent:?}");
    // The loop never waited on them: generous bounds, the point is "not seconds".
    assert!(
        pump.longest_service < Duration::from_millis(1000),
        "{:?}",
        pump.longest_service
    );
    assert!(
        pump.longest_turn < Duration::from_millis(1000),
        "{:?}",
        pump.longest_turn
    );
    assert!(started.elapsed() >= READ_DEADLINE);
    // And a real scrape is answered afterwards.
    let reply = serve_one(&mut pump, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}

#[test]
fn a_client_that_never_reads_its_reply_is_dropped_at_the_write_deadline() {
    let mut pump = Pump::new();
    pump.body = "x".repeat(16 << 20); // far beyond any socket buffer
    let addr = pump.addr();
    let lazy = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        thread::sleep(Duration::from_secs(6));
        let _ = s.shutdown(Shutdown::Both);
    });
    assert!(pump.run_until(Duration::from_secs(3), |s| s.open_connections() == 1));
    let opened = Instant::now();
    assert!(pump.run_until(Duration::from_secs(8), |s| s.open_connections() == 0));
    let held = opened.elapsed();
    assert!(held < Duration::from_secs(4), "{held:?}");
    assert_eq!(pump.count(Outcome::Metrics), 1);
    assert!(
        pump.longest_service < Duration::from_millis(1000),
        "{:?}",
        pump.longest_service
    );
    lazy.join().unwrap();
}

#[test]
fn a_client_that_vanishes_mid_request_is_counted_closed() {
    let mut pump = Pump::new();
    let addr = pump.addr();
    let gone = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /met").unwrap();
    });
    gone.join().unwrap();
    assert!(
        pump.run_until(Duration::from_secs(5), |s| s.open_connections() == 0
            && s.counts().iter().sum::<u64>() > 0)
    );
    assert_eq!(pump.count(Outcome::Closed), 1);
}
