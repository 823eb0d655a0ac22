//! mcpinit starved of file descriptors or memory: it must neither go blind silently nor
//! die. Each run is PID 1 of its own namespace under a timeout (tests/common).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(40);

fn prlimit_nofile(pid: i32, limit: &str) {
    let ok = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}"))
        .status()
        .expect("prlimit (util-linux) must be installed")
        .success();
    assert!(ok, "prlimit --nofile={limit} failed");
}

#[test]
fn out_of_file_descriptors_a_scan_says_so_and_decides_nothing() {
    // Twenty sleepers appear two seconds in, over a cap of five: by then mcpinit can
    // open no new file, so it cannot read their stat.
    let run = Run::start(
        &[
            "--max-procs",
            "5",
            "--scan-interval",
            "200ms",
            "--",
            "sh",
            "-c",
            "sleep 2; for i in $(seq 20); do sleep 600 & done; wait",
        ],
        &[],
    );
    assert!(run.wait_for_log("started child", LONG));
    let init = run.init_pid();
    // Its open descriptors are 0-3 and perhaps a few more: none can be opened now.
    prlimit_nofile(init, "3:1024");
    assert!(
        run.wait_for_log("cannot see every process", LONG),
        "no scan_blind line: {}",
        run.stdout()
    );
    let line = run
        .stdout()
        .lines()
        .find(|l| l.contains("cannot see every process"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("open files limit 3"), "{line}");
    assert!(line.contains("EMFILE"), "{line}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !run.stdout().contains("terminating cap unit"),
        "decided on a blind snapshot: {}",
        run.stdout()
    );
    prlimit_nofile(init, "1024:1024");
    assert!(run.wait_for_log("scans see every process again", LONG));
    assert!(
        run.wait_for_log("terminating cap unit", LONG),
        "the cap was not enforced once sight came back"
    );
}
