//! mcpinit starved of file descriptors or memory: it must neither go blind silently nor
//! die. Each run is PID 1 of its own namespace under a timeout (tests/common).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// `mcpinit health` inside the run's namespaces, as `docker exec` runs it.
fn health_inside(run: &Run, state: &std::path::Path) -> std::process::Output {
    inside_program(
        run,
        mcpinit(),
        &["health", "--state-file", state.to_str().unwrap()],
    )
    .output()
    .expect("nsenter must be installed")
}

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
    // Twenty sleepers appear once told to, over a cap of five: by then mcpinit can
    // open no new file, so it cannot read their stat. (They once came two seconds in,
    // which a loaded machine can take to get here: then they came before the limit.)
    let dir = temp_dir("nofile");
    let go = dir.join("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done; for i in $(seq 20); do sleep 600 & done; wait",
        go = go.display()
    );
    let run = Run::start(
        &[
            "--max-procs",
            "5",
            "--scan-interval",
            "200ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    // After the start-up probe of the routes, whose victim holds descriptors a moment.
    assert!(run.wait_for_log("inputs are closed through", LONG));
    let init = run.init_pid();
    // The limit at its lowest free descriptor number: a new descriptor would take that
    // number, so none can be opened now, except by giving one up.
    let open: Vec<u32> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let limit = (0..).find(|n| !open.contains(n)).unwrap();
    prlimit_nofile(init, &format!("{limit}:1024"));
    std::fs::write(&go, b"").unwrap();
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
    assert!(
        line.contains(&format!("open files limit {limit}")),
        "{line}"
    );
    assert!(line.contains("EMFILE"), "{line}");
    // The state file still gets written (a descriptor is kept in reserve for it), so
    // health says what is wrong instead of "healthy: 0 live".
    let state = run.dir().join("state.json");
    let verdict = wait_until(LONG, || {
        let out = health_inside(&run, &state);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (!out.status.success() && text.contains("cannot see every process")).then_some(text)
    });
    assert!(verdict.is_some(), "health never said the scans are blind");
    std::thread::sleep(Duration::from_secs(2));
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
    let _ = std::fs::remove_dir_all(&dir);
}

/// VmSize of `pid` in kB.
fn vm_size_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/PID/status")
}

#[test]
fn out_of_memory_a_scan_is_skipped_and_pid_1_lives_on() {
    // The child waits for a go, then forks 3,000 sleepers: a scan of them needs a few
    // hundred kB more than mcpinit has once its address space is capped just above
    // what it uses now. Before, the failed allocation aborted PID 1.
    let dir = temp_dir("oom");
    let go = dir.join("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done; \
         for i in $(seq 3000); do sleep 600 & p=\"$p $!\"; done; sleep 3; kill $p; wait; exit 7",
        go = go.display()
    );
    let mut run = Run::start(&["--max-procs", "8000", "--", "sh", "-c", &script], &[]);
    // After the start-up probe of the routes, whose victim holds descriptors a moment.
    assert!(run.wait_for_log("inputs are closed through", LONG));
    let init = run.init_pid();
    std::thread::sleep(Duration::from_millis(500));
    let cap_kb = vm_size_kb(init) + 256;
    let ok = Command::new("prlimit")
        .arg(format!("--pid={init}"))
        .arg(format!("--as={}:unlimited", cap_kb * 1024))
        .status()
        .expect("prlimit (util-linux) must be installed")
        .success();
    assert!(ok, "prlimit --as failed");
    std::fs::write(&go, b"").unwrap();
    let status = run.wait(Duration::from_secs(90));
    let out = run.stdout() + &run.stderr();
    assert!(
        !out.contains("memory allocation of"),
        "PID 1 aborted: {out}"
    );
    assert_eq!(
        status,
        Some(7),
        "mcpinit did not outlive the pressure: {out}"
    );
}
