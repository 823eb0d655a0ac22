use super::*;

/// Counters of a process whose every read is answered by a write of the same size.
fn io(rchar: u64, syscr: u64) -> Io {
    Io {
        rchar,
        syscr,
        wchar: rchar,
        syscw: syscr,
    }
}

#[test]
fn parse_proc_io() {
    let text = b"rchar: 249866\nwchar: 12\nsyscr: 85\nsyscw: 3\nread_bytes: 0\n\
                 write_bytes: 0\ncancelled_write_bytes: 0\n";
    let want = Io {
        rchar: 249866,
        syscr: 85,
        wchar: 12,
        syscw: 3,
    };
    assert_eq!(parse_io(text), Some(want));
    assert_eq!(parse_io(b"rchar: 1\n"), None, "syscr missing");
    assert_eq!(parse_io(b"rchar: 1\nsyscr: 1\n"), None, "no write counters");
    assert_eq!(parse_io(b"rchar: x\nsyscr: 1\n"), None);
    assert_eq!(parse_io(b""), None);
}

/// Growth between two looks after start-up: (bytes, read calls) -> input?
#[test]
fn what_growth_is_input() {
    let table: &[(u64, u64, bool, &str)] = &[
        (0, 0, false, "flat: idle"),
        (8, 1, false, "one eventfd read"),
        (8 * 40, 40, false, "a burst of eventfd reads"),
        (0, 3, false, "failed reads (EAGAIN): calls, no bytes"),
        (16, 4, false, "eventfd reads and failed ones"),
        (40, 1, true, "the shortest JSON-RPC request"),
        (40, 2, true, "a request and the EAGAIN after it"),
        (312, 2, true, "a tools/call of a few hundred bytes"),
        (48, 2, true, "a request and one eventfd read"),
        (9, 1, true, "just over one eventfd read per call"),
    ];
    for &(bytes, calls, want, what) in table {
        let before = io(1000, 50);
        let after = io(1000 + bytes, 50 + calls);
        assert_eq!(is_input(before, after), want, "{what}");
    }
}

/// One leaf started at 0 ms, looked at at the given times with the given counters:
/// what is its last input and idle-since after each look?
#[test]
fn a_leaf_over_its_life() {
    /// (now_ms, rchar, syscr, last_input_ms, idle_since_ms, what)
    type Look = (u64, u64, u64, Option<u64>, u64, &'static str);
    let table: &[Look] = &[
        (500, 8_196, 13, None, 500, "first look: a baseline"),
        (1_500, 249_866, 85, None, 500, "module loading"),
        (6_000, 250_300, 88, None, 500, "the launcher's handshake"),
        (13_000, 250_500, 113, None, 500, "the eventfd burst"),
        (21_000, 250_500, 113, None, 500, "flat"),
        (25_000, 250_800, 115, Some(25_000), 25_000, "a request"),
        (40_000, 250_800, 115, Some(25_000), 25_000, "idle"),
        (
            45_000,
            250_808,
            116,
            Some(25_000),
            25_000,
            "a late eventfd read",
        ),
        (
            50_000,
            251_100,
            118,
            Some(50_000),
            50_000,
            "another request",
        ),
    ];
    let mut tracker = Tracker::default();
    for &(now, rchar, syscr, last, idle, what) in table {
        tracker.begin(now);
        let seen = tracker.observe(7, 99, 0, Some(io(rchar, syscr)), now);
        tracker.finish();
        assert_eq!(seen.last_input_ms, last, "{what}");
        assert_eq!(seen.idle_since_ms(), idle, "{what}");
        assert_eq!(tracker.get(7, 99), Some(seen));
    }
}

#[test]
fn growth_since_a_look_during_start_up_is_a_baseline() {
    // Looked at once at 3 s, then at 33 s: the rest of start-up could be in between,
    // so the growth is not input, but the leaf is idle only since its first look.
    let mut tracker = Tracker::default();
    tracker.begin(3_000);
    tracker.observe(7, 99, 0, Some(io(1000, 10)), 3_000);
    tracker.begin(33_000);
    let seen = tracker.observe(7, 99, 0, Some(io(5000, 20)), 33_000);
    assert_eq!((seen.last_input_ms, seen.idle_since_ms()), (None, 3_000));
    tracker.begin(63_000);
    let seen = tracker.observe(7, 99, 0, Some(io(5400, 22)), 63_000);
    assert_eq!(seen.last_input_ms, Some(63_000));
}

#[test]
fn a_leaf_first_seen_late_is_idle_only_from_then() {
    // Started long ago, never looked at: whatever it did before is unknown.
    let mut tracker = Tracker::default();
    tracker.begin(600_000);
    let seen = tracker.observe(7, 99, 0, Some(io(9_999_999, 5000)), 600_000);
    assert_eq!((seen.last_input_ms, seen.idle_since_ms()), (None, 600_000));
}

#[test]
fn a_reused_pid_starts_over() {
    let mut tracker = Tracker::default();
    tracker.begin(30_000);
    tracker.observe(7, 99, 0, Some(io(1000, 10)), 30_000);
    // Same pid, another start time: another process.
    tracker.begin(40_000);
    let seen = tracker.observe(7, 120, 0, Some(io(9000, 90)), 40_000);
    assert_eq!((seen.last_input_ms, seen.watched_since_ms), (None, 40_000));
    assert_eq!(tracker.get(7, 99), None);
    // Counters that went down: not the process we knew either.
    tracker.begin(50_000);
    let seen = tracker.observe(7, 120, 0, Some(io(10, 1)), 50_000);
    assert_eq!((seen.last_input_ms, seen.watched_since_ms), (None, 50_000));
}

#[test]
fn unreadable_counters_count_as_just_used() {
    let mut tracker = Tracker::default();
    tracker.begin(30_000);
    tracker.observe(7, 99, 0, Some(io(1000, 10)), 30_000);
    tracker.begin(40_000);
    let seen = tracker.observe(7, 99, 0, None, 40_000);
    assert_eq!(seen.idle_since_ms(), 40_000);
    assert_eq!(tracker.get(7, 99), None, "starts over once readable");
}

#[test]
fn processes_not_looked_at_are_forgotten() {
    let mut tracker = Tracker::default();
    tracker.begin(30_000);
    tracker.observe(7, 99, 0, Some(io(1000, 10)), 30_000);
    tracker.observe(8, 99, 0, Some(io(1000, 10)), 30_000);
    tracker.finish();
    assert_eq!(tracker.len(), 2);
    tracker.begin(40_000);
    tracker.observe(8, 99, 0, Some(io(1000, 10)), 40_000);
    tracker.finish();
    assert_eq!((tracker.get(7, 99), tracker.len()), (None, 1));
}

#[test]
fn a_unit_is_as_recent_as_its_latest_leaf() {
    let a = Use {
        last_input_ms: Some(5_000),
        watched_since_ms: 1_000,
        from: None,
    };
    let b = Use {
        last_input_ms: None,
        watched_since_ms: 8_000,
        from: None,
    };
    let unit = unit_use([a, b]).unwrap();
    assert_eq!(unit.idle_since_ms(), 8_000);
    assert_eq!(unit_use([]), None);
}

#[test]
fn the_start_up_window_is_at_most_a_quarter_of_the_idle_time() {
    assert_eq!(startup_ms(600_000), STARTUP_MS);
    assert_eq!(startup_ms(40_000), STARTUP_MS);
    assert_eq!(startup_ms(12_000), 3_000);
    assert_eq!(startup_ms(4_000), 1_000);
    let mut tracker = Tracker::new(startup_ms(4_000));
    tracker.begin(1_200);
    tracker.observe(7, 99, 0, Some(io(1000, 10)), 1_200);
    tracker.begin(2_200);
    let seen = tracker.observe(7, 99, 0, Some(io(2000, 12)), 2_200);
    assert_eq!(seen.last_input_ms, Some(2_200));
}

#[test]
fn descriptor_links_name_sockets_and_pipes_only() {
    let table: &[(&[u8], Option<Object>)] = &[
        (b"socket:[4242]", Some(Object::Socket(4242))),
        (b"pipe:[77]", Some(Object::Pipe(77))),
        (b"/dev/null", None),
        (b"anon_inode:[eventfd]", None),
        (b"socket:[x]", None),
        (b"socket:[12", None),
        (b"", None),
    ];
    for (link, want) in table {
        assert_eq!(object(link), *want, "{}", String::from_utf8_lossy(link));
    }
}

#[test]
fn a_units_input_is_read_on_every_holder_whatever_the_trees_shape() {
    use Object::*;
    let h = |pid: i32, held: &[(i32, Object)]| Holding {
        pid,
        held: held.to_vec(),
    };
    let s = Socket(9);
    type Case<'a> = (&'a str, Vec<Holding>, Option<(Object, Vec<i32>)>);
    let table: Vec<Case> = vec![
        (
            "npm exec -> sh -> node: all three hold it at fd 0",
            vec![
                h(40, &[(0, s)]),
                h(41, &[(0, s)]),
                h(42, &[(0, s), (3, Socket(5))]),
            ],
            Some((s, vec![40, 41, 42])),
        ),
        (
            "uv -> python on mcp 2.x: /dev/null at fd 0, the socket at fd 6",
            vec![h(40, &[(0, s)]), h(41, &[(6, s), (7, s)])],
            Some((s, vec![40, 41])),
        ),
        (
            "a server with a helper: the helper inherited the socket, a leaf that never reads",
            vec![h(40, &[(0, s)]), h(41, &[(0, s)]), h(42, &[(0, s)])],
            Some((s, vec![40, 41, 42])),
        ),
        (
            "a helper started with pipes of its own is not a reader",
            vec![h(40, &[(0, s)]), h(41, &[(0, Pipe(3)), (1, Pipe(4))])],
            Some((s, vec![40])),
        ),
        (
            "a top with /dev/null at fd 0: the input is found lower",
            vec![
                h(40, &[(4, Socket(1))]),
                h(41, &[(0, Pipe(8))]),
                h(42, &[(0, Pipe(8))]),
            ],
            Some((Pipe(8), vec![41, 42])),
        ),
        (
            "no socket or pipe at fd 0 anywhere: leaves instead",
            vec![h(40, &[(5, s)]), h(41, &[])],
            None,
        ),
        ("no members", vec![], None),
    ];
    for (name, members, want) in table {
        assert_eq!(readers(&members), want, "{name}");
    }
}

#[test]
fn the_reader_of_the_latest_input_is_named() {
    let mut tracker = Tracker::new(0);
    let io = |rchar, syscr| Some(io(rchar, syscr));
    tracker.begin(10_000);
    let a = tracker.observe(40, 1, 0, io(100, 10), 10_000);
    let b = tracker.observe(42, 1, 0, io(100, 10), 10_000);
    assert_eq!(unit_use([a, b]).unwrap().from, None);
    tracker.finish();
    tracker.begin(20_000);
    // the launcher's eventfd wake-ups (8 bytes a read) and the server's request.
    let a = tracker.observe(40, 1, 0, io(180, 20), 20_000);
    let b = tracker.observe(42, 1, 0, io(400, 11), 20_000);
    let unit = unit_use([a, b]).unwrap();
    assert_eq!(unit.from, Some(42));
    assert_eq!(unit.last_input_ms, Some(20_000));
}

/// A server that polls a file reads without answering: never input. A request is
/// answered in the same interval, or in the next when it came late in one.
#[test]
fn reads_are_input_only_when_answered() {
    let rw = |rchar, syscr, wchar, syscw| {
        Some(Io {
            rchar,
            syscr,
            wchar,
            syscw,
        })
    };
    type Step = (u64, Option<Io>, Option<u64>, &'static str);
    let table: &[(&str, &[Step])] = &[
        (
            "a file polled every few seconds, 2 kB a read, nothing written",
            &[
                (10_000, rw(0, 0, 0, 0), None, "baseline"),
                (20_000, rw(8_000, 4, 0, 0), None, "read, no answer"),
                (30_000, rw(16_000, 8, 0, 0), None, "still none"),
                (
                    40_000,
                    rw(24_000, 12, 80, 10),
                    None,
                    "eventfd writes are no answer",
                ),
            ],
        ),
        (
            "a request and its response in one interval",
            &[
                (10_000, rw(0, 0, 0, 0), None, "baseline"),
                (20_000, rw(300, 2, 900, 1), Some(20_000), "answered"),
            ],
        ),
        (
            "a request late in one interval, its response in the next",
            &[
                (10_000, rw(0, 0, 0, 0), None, "baseline"),
                (20_000, rw(300, 2, 0, 0), None, "read, not yet answered"),
                (30_000, rw(300, 2, 900, 1), Some(30_000), "answered now"),
                (
                    40_000,
                    rw(300, 2, 1800, 2),
                    Some(30_000),
                    "a write alone is no input",
                ),
            ],
        ),
    ];
    for (name, steps) in table {
        let mut tracker = Tracker::new(0);
        for &(now, io, want, what) in steps.iter() {
            tracker.begin(now);
            let seen = tracker.observe(42, 1, 0, io, now);
            tracker.finish();
            assert_eq!(seen.last_input_ms, want, "{name}: {what}");
        }
    }
}
