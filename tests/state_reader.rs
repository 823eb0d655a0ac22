//! Property tests of the state reader (issue 12, "also wanted"): whatever bytes sit in
//! the state file, `status` / `health` never panic, and what they allocate stays within
//! a small multiple of the file's size. The case count and input sizes are fixed, so
//! the run's time is bounded (a few seconds); PROPTEST_CASES raises it for a longer hunt.

use mcpinit::surface::statefile::{
    Blindness, Cgroup, Counters, Document, Role, Row, Settings, State,
};
use mcpinit::surface::status;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// Counts what this thread has allocated and the peak since the last `reset`, so that
/// each case measures itself even while the harness runs other tests beside it.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counters are plain thread-local cells
// (const-initialized, no destructor), which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grow(-(layout.size() as isize));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn grow(by: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + by);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated by `f` beyond what was live before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(Cell::get) - base).max(0) as usize)
}

/// What reading `text` may allocate at most: the decoded rows and the rendered view
/// are each about the text's size (measured: 1.7x together on a 5 MB document, see
/// `a_large_document_costs_a_small_multiple_of_its_size`), plus fixed overhead.
fn budget(len: usize) -> usize {
    4 * len + (1 << 20)
}

/// Decode `text` and, when it decodes, render it and judge its health: nothing may
/// panic, and the whole may allocate only `budget`.
fn read_back(text: &str, now_ms: u64) {
    let (_, peak) = peak_of(|| {
        if let Ok(state) = status::decode(text) {
            let _ = status::render(&state, Path::new("/run/mcpinit.json"), now_ms);
            let _ = status::verdict(&state, now_ms);
        }
    });
    assert!(
        peak <= budget(text.len()),
        "{peak} bytes allocated for {} bytes of input",
        text.len()
    );
}

fn any_role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Main),
        Just(Role::Server),
        Just(Role::Orphan),
        Just(Role::Other)
    ]
}

/// Short text with control characters, quotes and non-ASCII mixed in.
fn any_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z \"\\\\:@/\u{1b}\n\t é─]{0,40}").unwrap()
}

fn any_row() -> impl Strategy<Value = Row<'static>> {
    // Small pid ranges, so that repeated pids and parent cycles are common.
    (
        (
            0..8i32,
            0..8i32,
            0..8i32,
            any::<char>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (any_text(), any_role(), any_text(), 0..8i32),
        (
            proptest::option::of(any_text()),
            any::<bool>(),
            any::<bool>(),
            any::<Option<u64>>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (pid, ppid, pgid, state, age_ms, rss),
                (cmdline, role, unit, unit_top),
                (key, duplicate, terminating, idle_ms, input_seen),
            )| Row {
                pid,
                ppid,
                pgid,
                state,
                age_ms,
                rss,
                cmdline: cmdline.into(),
                role,
                unit: unit.into(),
                unit_top,
                key: key.map(Into::into),
                env: None,
                idle_ms,
                input_seen,
                input_from: None,
                duplicate,
                terminating,
            },
        )
}

/// Any document of the schema, its numbers anywhere in their ranges.
fn any_state() -> impl Strategy<Value = State> {
    (
        (
            any::<i32>(),
            any_text(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<u64>>(),
            any::<Option<i32>>(),
        ),
        (
            any::<[u64; 8]>(),
            any_text(),
            any::<bool>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
        ),
        (
            any::<[u64; 9]>(),
            proptest::collection::vec(any_row(), 0..40),
        ),
    )
        .prop_map(
            |(
                (pid, version, started, updated, snapshot, main),
                (s, text, dry, pids_max, memory_max),
                (c, processes),
            )| Document {
                pid,
                version,
                started_unix_ms: started,
                updated_unix_ms: updated,
                snapshot_unix_ms: snapshot,
                main_pid: main,
                settings: Settings {
                    max_procs: s[0],
                    max_memory: s[1],
                    dedupe: text.clone(),
                    dedupe_keep: s[2],
                    dedupe_idle_ms: s[3],
                    orphans: text,
                    kill_grace_ms: s[4],
                    stop_grace_ms: s[5],
                    eof_grace_ms: s[3],
                    scan_interval_ms: s[6],
                    dry_run: dry,
                    input_route: "ptrace".into(),
                    exit_step: dry,
                    route_refused: String::new(),
                },
                cgroup: Cgroup {
                    pids_max,
                    memory_max,
                },
                counters: Counters {
                    zombies_reaped: c[0],
                    signals_forwarded: c[1],
                    terminated_duplicate: c[2],
                    terminated_orphan: c[3],
                    terminated_cap: c[4],
                    terminated_memory: c[5],
                    escalations: c[6],
                    peak_procs: c[7] as usize,
                    peak_rss: c[8],
                    ended_eof: c[3],
                    ended_kill: c[4],
                    // Counters added later take their defaults.
                    ..Counters::default()
                },
                live: s[7],
                tasks: s[7],
                rss: c[8],
                blind: (c[0] % 3 == 0).then(|| Blindness {
                    errno: errno_name(c[1]),
                    unread: c[2],
                }),
                processes,
            },
        )
}

/// An errno name as the writer puts it, or junk.
fn errno_name(n: u64) -> String {
    ["EMFILE", "ENFILE", "ENOMEM", "", "\u{1b}[2J"][(n % 5) as usize].to_string()
}

/// One edit of a document's text: cut it short, drop a range, or put bytes in.
#[derive(Debug, Clone)]
enum Edit {
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, String),
}

fn any_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0..64usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (
            any::<usize>(),
            proptest::string::string_regex("[\\[\\]{}\",:0-9a-z\\-.e]{1,8}").unwrap()
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
    ]
}

/// `edit` applied to `text`, positions taken modulo its length and moved back to a
/// character boundary.
fn apply(text: &str, edit: &Edit) -> String {
    let at = |n: usize| {
        let mut i = n % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match edit {
        Edit::Truncate(n) => text[..at(*n)].to_string(),
        Edit::Delete(n, len) => {
            let start = at(*n);
            let end = at(start + len).max(start);
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert(n, s) => {
            let i = at(*n);
            format!("{}{s}{}", &text[..i], &text[i..])
        }
    }
}

proptest! {
    // 256 cases each (PROPTEST_CASES overrides). No failure files: a failing case
    // prints its minimal input, which is what CI keeps.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any document the schema allows reads back as itself, renders and is judged.
    #[test]
    fn documents_round_trip_and_render(state in any_state(), now_ms in any::<u64>()) {
        let text = serde_json::to_string(&state).unwrap();
        prop_assert_eq!(status::decode(&text).unwrap(), state);
        read_back(&text, now_ms);
    }

    /// Edited documents (cut, holes, stray JSON) are refused or read, never a panic.
    #[test]
    fn edited_documents_never_panic(
        state in any_state(),
        edits in proptest::collection::vec(any_edit(), 1..4),
        now_ms in any::<u64>(),
    ) {
        let mut text = serde_json::to_string(&state).unwrap();
        for edit in &edits {
            text = apply(&text, edit);
        }
        read_back(&text, now_ms);
    }

    /// Arbitrary text, JSON-ish or not.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,2000}", now_ms in any::<u64>()) {
        read_back(&text, now_ms);
    }

    /// Arbitrary bytes in a file, through the whole load path (limits, UTF-8, decode,
    /// writer check): an error or a load, never a panic, within the budget.
    #[test]
    fn arbitrary_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let path = std::env::temp_dir().join(format!(
            "mcpinit-prop-{}-{:?}.json",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, &bytes).unwrap();
        let (_, peak) = peak_of(|| status::load(Some(path.clone())).map(|_| ()));
        let _ = std::fs::remove_file(&path);
        prop_assert!(peak <= budget(bytes.len()), "{} bytes for {}", peak, bytes.len());
    }
}

/// The reader's memory on a large, valid file: measured, not just bounded.
#[test]
fn a_large_document_costs_a_small_multiple_of_its_size() {
    let row = Row {
        pid: 7,
        ppid: 8,
        pgid: 7,
        state: 'S',
        age_ms: 1,
        rss: 1,
        cmdline: "npm exec @modelcontextprotocol/server-everything".into(),
        role: Role::Server,
        unit: "pgid:7".into(),
        unit_top: 7,
        key: Some("npm exec @modelcontextprotocol/server-everything".into()),
        env: None,
        idle_ms: Some(1),
        input_seen: true,
        input_from: None,
        duplicate: false,
        terminating: false,
    };
    let state = Document {
        processes: vec![row; 20_000],
        ..small()
    };
    let text = serde_json::to_string(&state).unwrap();
    let (_, peak) = peak_of(|| {
        let state = status::decode(&text).unwrap();
        status::render(&state, Path::new("x"), 0).len()
    });
    eprintln!(
        "decode + render of {} bytes: peak {} bytes ({:.1}x)",
        text.len(),
        peak,
        peak as f64 / text.len() as f64
    );
    assert!(peak <= budget(text.len()));
}

fn small() -> State {
    Document {
        pid: 1,
        version: "0.1.0".into(),
        started_unix_ms: 1,
        updated_unix_ms: 2,
        snapshot_unix_ms: None,
        main_pid: Some(7),
        settings: Settings {
            max_procs: 0,
            max_memory: 0,
            dedupe: "off".into(),
            dedupe_keep: 1,
            dedupe_idle_ms: 1,
            orphans: "term".into(),
            kill_grace_ms: 1,
            stop_grace_ms: 1,
            eof_grace_ms: 1,
            scan_interval_ms: 1000,
            dry_run: false,
            input_route: "pidfd".into(),
            exit_step: true,
            route_refused: String::new(),
        },
        cgroup: Cgroup::default(),
        counters: Counters::default(),
        live: 1,
        tasks: 1,
        rss: 0,
        blind: None,
        processes: Vec::new(),
    }
}
