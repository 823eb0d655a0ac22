//! /proc mounted `hidepid=2`: mcpinit says so at start, and `health` run as another
//! user says it cannot see mcpinit instead of calling it gone. Root only (setpriv to
//! another uid); the whole run lives in its own PID and mount namespace (tests/common),
//! so the remount touches only that namespace's /proc.

mod common;

use common::*;

#[test]
fn health_as_another_user_says_it_cannot_see_mcpinit_under_hidepid() {
    if !is_root() {
        eprintln!("skipped: needs root to run health as another uid");
        return;
    }
    let dir = temp_dir("hidepid");
    let state = dir.join("state.json");
    let log = dir.join("log");
    // sh is PID 1 here, mcpinit its subreaper child (as root): health as uid 1001 then
    // finds the state file but no readable /proc entry for its writer.
    let script = format!(
        "mount -o remount,hidepid=2 /proc || exit 77
        MCPINIT_STATE_FILE={state} {mcpinit} -- sleep 60 >{log} 2>&1 &
        i=0; while [ ! -s {state} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
        setpriv --reuid 1001 --regid 1001 --clear-groups {mcpinit} health --state-file {state}
        echo \"health=$?\"
        kill -TERM $!; wait $!",
        state = state.display(),
        log = log.display(),
        mcpinit = mcpinit(),
    );
    let out = in_namespace("sh", &["-c", &script])
        .output()
        .expect("timeout/unshare must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        eprintln!("skipped: cannot remount /proc with hidepid=2 here: {stderr}");
        return;
    }
    assert!(stdout.contains("health=8"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("cannot see pid ")
            && stdout.contains("(mounted hidepid=invisible)")
            && stdout.contains("run this as mcpinit's user")
            && !stdout.contains("is gone"),
        "{stdout}\n{stderr}"
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("/proc is mounted hidepid=invisible"),
        "no proc_hidepid line at start: {log}"
    );
}
