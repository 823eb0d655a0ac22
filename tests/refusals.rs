//! Hostile settings (issue 12, defects 1–4), against the real binary: every mcpinit runs
//! as PID 1 of its own PID namespace under a timeout (tests/common). A refused run must
//! exit 2 with one short, escaped line, and must not have spawned its command, which
//! would create a marker file.

mod common;

use common::*;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::process::Output;

fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// `mcpinit ARGS touch MARKER` with `env`; returns its output and whether it spawned.
fn try_run(args: &[OsString], env: &[(&str, OsString)]) -> (Output, bool) {
    let dir = temp_dir("refusal");
    let marker = dir.join("spawned");
    let mut cmd = in_namespace(mcpinit(), &[]);
    cmd.args(args)
        .args([OsStr::new("touch"), marker.as_os_str()])
        .env("MCPINIT_STATE_FILE", dir.join("state.json"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("timeout/unshare must be installed");
    let spawned = marker.exists();
    let _ = std::fs::remove_dir_all(&dir);
    (output, spawned)
}

fn assert_refused(args: &[OsString], env: &[(&str, OsString)], name: &str) -> String {
    let (output, spawned) = try_run(args, env);
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {err}");
    assert!(!spawned, "{args:?} {env:?}: spawned after a refusal");
    assert!(err.contains(name), "{args:?} {env:?}: {err}");
    // One line says it; a usage error adds the synopsis after it.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("mcpinit: "), "{err:?}");
    assert!(
        lines.len() == 1 || lines[1].starts_with("Usage: "),
        "one line: {err:?}"
    );
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
    err
}

/// Defect 1: an inline value that is not UTF-8 made the whole argument the command.
#[test]
fn inline_values_that_are_not_utf8_are_refused() {
    for (arg, name) in [
        (&b"--max-procs=\xff"[..], "--max-procs"),
        (b"--dedupe=npx\xff", "--dedupe"),
        (b"--kill-grace=5\xfes", "--kill-grace"),
        (b"-e\xff", "-e"),
        (b"-ge\xff", "-e"),
        (b"-p\xff", "-p"),
        (b"--no-such\xff=1", "--no-such"),
        (b"-\xff", "option"),
    ] {
        let err = assert_refused(&[bytes(arg), "--".into()], &[], name);
        assert!(err.contains("\\xff") || err.contains("\\xfe"), "{err}");
    }
    // The separate form was already refused; it still is.
    assert_refused(&["--max-procs".into(), bytes(b"\xff")], &[], "--max-procs");
    // A variable's bytes are refused, not read lossily and accepted.
    assert_refused(
        &[],
        &[("MCPINIT_DEDUPE", bytes(b"npx\xff"))],
        "MCPINIT_DEDUPE",
    );
}

/// Defect 2: a refusal echoed the raw value: newlines split it, escape sequences reached
/// the terminal, and a 131 KB value gave a 131 KB line.
#[test]
fn refusals_escape_and_shorten_the_value() {
    let err = assert_refused(
        &[],
        &[("MCPINIT_MAX_PROCS", "5\n6".into())],
        "MCPINIT_MAX_PROCS",
    );
    assert!(err.contains("'5\\n6'"), "{err}");
    let err = assert_refused(
        &["--orphans".into(), "\u{1b}[2Jkill\u{7}".into()],
        &[],
        "--orphans",
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("\\u{1b}[2Jkill"), "{err}");
    let err = assert_refused(&["--bogus\u{1b}]0;x".into()], &[], "--bogus");
    assert!(
        err.starts_with("mcpinit: unknown option '--bogus\\u{1b}]0;x'\n"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");

    let huge = "9".repeat(130_000) + "x"; // under the kernel's 128 KiB per string
    let err = assert_refused(
        &[],
        &[("MCPINIT_KILL_GRACE", huge.into())],
        "MCPINIT_KILL_GRACE",
    );
    assert!(err.len() < 400, "{} bytes: {}", err.len(), &err[..200]);
    assert!(err.contains("130001 bytes"), "{err}");
    assert!(err.contains("expected a duration"), "{err}");
}

/// Defect 3: a state path that is not UTF-8 was rewritten with U+FFFD, so the state went
/// elsewhere. Paths are bytes on Linux: mcpinit keeps them, for the writer and readers.
#[test]
fn a_state_path_that_is_not_utf8_is_kept_byte_for_byte() {
    let dir = temp_dir("statebytes");
    let mut path = dir.clone().into_os_string().into_vec();
    path.extend_from_slice(b"/st\xffte.json");
    let path = OsString::from_vec(path);
    // The child sees the same variable: it waits for the file at exactly those bytes,
    // then reads it back through `status` with the variable and `health --state-file`.
    let script = r#"
        for i in $(seq 600); do [ -f "$MCPINIT_STATE_FILE" ] && break; sleep 0.1; done
        [ -f "$MCPINIT_STATE_FILE" ] || exit 7
        "$BIN" status --json > /dev/null || exit 8
        "$BIN" health --state-file "$MCPINIT_STATE_FILE" > /dev/null || exit 9
    "#;
    let output = in_namespace(mcpinit(), &["sh", "-c", script])
        .env("MCPINIT_STATE_FILE", &path)
        .env("BIN", mcpinit())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: Vec<OsString> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains('\u{fffd}')),
        "a lossy path was used: {names:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Defect 4: TINI_VERBOSITY took -1, +5 and 2^32 though 0–3 is documented; `--help=1`
/// and `--version=x` printed help and the version with exit 0.
#[test]
fn loose_values_are_refused() {
    for value in ["-1", "+5", "4", "4294967296", "1.0", "01x"] {
        assert_refused(&[], &[("TINI_VERBOSITY", value.into())], "TINI_VERBOSITY");
    }
    for arg in ["--help=1", "--version=x", "--help=", "--dry-run="] {
        let name = arg.split('=').next().unwrap();
        assert_refused(&[arg.into()], &[], name);
    }
    for ok in ["0", "3"] {
        let (output, spawned) = try_run(&[], &[("TINI_VERBOSITY", ok.into())]);
        assert_eq!(output.status.code(), Some(0), "TINI_VERBOSITY={ok}");
        assert!(spawned);
    }
}
