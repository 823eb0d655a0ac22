//! Real servers under a small gateway that counts crashes as MetaMCP does (any exit it
//! did not cause, with a non-zero code or a signal): per kind, several instances leaked
//! (used once, then abandoned) and one in use for the whole run. The one in use answers
//! every call, the leaked ones are ended, no crash is counted. Kinds: `npx
//! @modelcontextprotocol/server-memory`, `uvx mcp-server-time` (mcp 2.x: the socket at
//! fds 6/7), a server that keeps a helper child, and one that ignores EOF. Besides: the
//! entrypoint starts a daemon with a double fork (it lives), and the gateway kills the
//! launcher of one more instance of the server deaf to EOF (its orphaned server is
//! reclaimed).
//!
//! npx and uvx servers come from the caches scripts/setup.sh fills; a kind that cannot
//! be had is left out with a SKIPPED line. Everything runs in one PID namespace under
//! the harness's time limit.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

const TIME_PACKAGE: &str = "mcp-server-time@2026.10.19";

fn skipped(what: &str) {
    // Straight to the stderr handle: the harness captures eprintln! of a passing test.
    let line = format!("SKIPPED in real_servers_under_a_crash_counting_gateway: {what}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

fn memory_cached() -> bool {
    let home = std::env::var("HOME").unwrap_or_default();
    std::fs::read_dir(format!("{home}/.npm/_npx"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| {
            d.path()
                .join("node_modules/@modelcontextprotocol/server-memory")
                .exists()
        })
}

/// The uvx scripts/uv.sh installs (as tests/metamcp/run.sh does), else one on PATH, if
/// it runs the pinned mcp-server-time from its cache (offline, in a namespace).
fn uvx() -> Option<PathBuf> {
    let cache = std::env::var("MCPINIT_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/mcpinit-tests")
        });
    let pinned = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin/uvx"))
        .find(|p| p.is_file());
    let found = pinned.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("uvx"))
                .find(|p| p.is_file())
        })
    })?;
    let uvx = found.to_str()?;
    let ok = in_namespace(uvx, &["--offline", TIME_PACKAGE])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(found)
}

#[test]
fn real_servers_under_a_crash_counting_gateway() {
    let server = fixture("behave/server.py");
    let python = python();
    let mut plan = vec![
        serde_json::json!({"name": "helper", "cmd": [python, server, "--kind", "helper"]}),
        serde_json::json!({"name": "deaf", "cmd": [python, server, "--kind", "deaf"],
            "orphanCmd": [python, server, "--kind", "deaf", "--launcher"]}),
    ];
    let memory = memory_cached();
    if memory {
        plan.push(serde_json::json!({"name": "memory",
            "cmd": ["npx", "-y", "@modelcontextprotocol/server-memory"]}));
    } else {
        skipped("@modelcontextprotocol/server-memory is not in the npx cache (scripts/setup.sh)");
    }
    match uvx() {
        Some(uvx) => plan.push(serde_json::json!({"name": "time",
            "cmd": [uvx, "--offline", TIME_PACKAGE]})),
        None => skipped("no uvx that runs mcp-server-time offline (scripts/setup.sh)"),
    }
    // The launcher of a server that ignores EOF: the gateway's end of its input closes
    // with the launcher (Node does that, as in MetaMCP), and only such a server lives on.
    let orphan_of = "deaf";
    let gateway = format!(
        "node {} --seconds 30 --max-seconds 80 --leaked 3 --orphan {orphan_of} --plan '{}'",
        fixture("behave/gateway.js"),
        serde_json::Value::Array(plan.clone())
    );
    // The entrypoint starts a daemon the classic way, then runs the gateway.
    let entrypoint = format!("sh -c 'sleep 300 &'; exec {gateway}");
    let run = Run::start(
        &[
            "--dedupe-idle",
            "8s",
            "--dedupe",
            "npm exec,npx,uvx,server.py",
            "--",
            "sh",
            "-c",
            &entrypoint,
        ],
        &[],
    );
    // While it runs, status names the process the helper server's input was read from:
    // the server (python), not its helper (`sleep`), the unit's leaf.
    let state = run.dir().join("state.json");
    let reader = wait_until(Duration::from_secs(60), || {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).ok()?).ok()?;
        let rows = doc["processes"].as_array()?;
        let from = rows
            .iter()
            .filter(|r| r["key"] == "server.py --kind helper")
            .find_map(|r| r["input_from"].as_i64())?;
        let row = rows.iter().find(|r| r["pid"].as_i64() == Some(from))?;
        Some(row["cmdline"].as_str()?.to_string())
    })
    .unwrap_or_else(|| panic!("status never named a reader:\n{}", run.stdout()));
    assert!(
        reader.contains("server.py --kind helper"),
        "read from {reader}"
    );
    let summary = wait_until(Duration::from_secs(110), || {
        run.stdout()
            .lines()
            .find(|l| l.starts_with("{\"summary\""))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no summary from the gateway:\n{}", run.stdout()));
    // The daemon is still there at the end.
    assert_eq!(run.count("sleep 300"), 1, "the daemon: {}", run.stdout());
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let s = &summary["summary"];
    let out = run.stdout();
    assert_eq!(s["crashes"], serde_json::json!([]), "crashes: {s}\n{out}");
    for kind in &plan {
        let name = kind["name"].as_str().unwrap();
        let k = &s["kinds"][name];
        let ok = k["inUseOk"].as_u64().unwrap_or(0);
        assert!(ok >= 20, "{name}: {ok} calls answered: {k}\n{out}");
        assert_eq!(
            k["inUseFailed"], 0,
            "{name}: a call of the one in use failed: {k}\n{out}"
        );
        assert_eq!(k["leakedUsed"], 3, "{name}: {k}\n{out}");
        assert_eq!(
            k["leakedExited"], 3,
            "{name}: a leaked instance lives: {k}\n{out}"
        );
        let exits = k["leakedExits"].as_array().unwrap();
        assert!(
            exits.iter().all(|e| e["code"] == 0),
            "{name}: a leaked instance ended otherwise than with 0: {k}"
        );
    }
    // The instance whose launcher the gateway killed: its orphaned server reclaimed.
    let launcher = s["kinds"][orphan_of]["orphanLauncherKilled"]
        .as_i64()
        .unwrap_or_else(|| panic!("the launcher was not killed: {s}"));
    assert!(
        out.lines()
            .any(|l| l.contains("terminating orphan unit")
                && l.contains(&format!("pgid={launcher} "))),
        "the orphan of {launcher} was not reclaimed:\n{out}"
    );
}
