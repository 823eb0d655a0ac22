use super::*;
use crate::settings::log_filter;
use std::collections::HashMap;
use std::time::Duration;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match parse(&args, |name| env.get(name).cloned())? {
        Invocation::Run(config) => Ok(*config),
        other => panic!("expected a run, got {other:?}"),
    }
}

fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    run(args, env).expect_err("should be refused").message
}

#[test]
fn defaults_match_the_brief() {
    let c = run(&["cmd"], &[]).unwrap();
    assert_eq!(c.max_procs, 128);
    assert_eq!(c.max_memory, 0);
    assert_eq!(c.dedupe, ["npm exec", "npx", "uvx"]);
    assert_eq!(c.dedupe_keep, 1);
    assert_eq!(c.dedupe_settle, Duration::from_secs(30));
    assert_eq!(c.dedupe_idle, Duration::from_secs(600));
    assert_eq!(c.eof_grace, Duration::from_secs(3));
    assert_eq!(c.orphans, Orphans::Term);
    assert_eq!(c.kill_grace, Duration::from_secs(5));
    assert_eq!(c.stop_grace, Duration::from_secs(8));
    assert_eq!(c.scan_interval, Duration::from_secs(1));
    assert!(!c.dry_run && !c.log_json && !c.kill_group && !c.warn_on_reap);
    assert_eq!(c.log_filter, "info");
    assert_eq!(c.state_file, None);
}

#[test]
fn every_variable_is_read() {
    let c = run(
        &["cmd"],
        &[
            ("MCPINIT_MAX_PROCS", "15"),
            ("MCPINIT_MAX_MEMORY", "512m"),
            ("MCPINIT_DEDUPE", "npm exec, uv tool  run"),
            ("MCPINIT_DEDUPE_KEEP", "2"),
            ("MCPINIT_DEDUPE_SETTLE", "250ms"),
            ("MCPINIT_DEDUPE_IDLE", "90s"),
            ("MCPINIT_ORPHANS", "keep"),
            ("MCPINIT_KILL_GRACE", "2"),
            ("MCPINIT_EOF_GRACE", "0"),
            ("MCPINIT_STOP_GRACE", "1m"),
            ("MCPINIT_SCAN_INTERVAL", "500ms"),
            ("MCPINIT_DRY_RUN", "1"),
            ("MCPINIT_LOG", "mcpinit=trace"),
            ("MCPINIT_LOG_FORMAT", "json"),
            ("MCPINIT_STATE_FILE", "/x/state.json"),
            ("TINI_KILL_PROCESS_GROUP", "1"),
        ],
    )
    .unwrap();
    assert_eq!(c.max_procs, 15);
    assert_eq!(c.max_memory, 512 << 20);
    assert_eq!(c.dedupe, ["npm exec", "uv tool run"]);
    assert_eq!(c.dedupe_keep, 2);
    assert_eq!(c.dedupe_settle, Duration::from_millis(250));
    assert_eq!(c.dedupe_idle, Duration::from_secs(90));
    assert_eq!(c.eof_grace, Duration::ZERO);
    assert_eq!(c.orphans, Orphans::Keep);
    assert_eq!(c.kill_grace, Duration::from_secs(2));
    assert_eq!(c.stop_grace, Duration::from_secs(60));
    assert_eq!(c.scan_interval, Duration::from_millis(500));
    assert!(c.dry_run && c.log_json && c.kill_group);
    assert_eq!(c.log_filter, "mcpinit=trace");
    assert_eq!(c.state_file, Some(PathBuf::from("/x/state.json")));
}

#[test]
fn options_win_over_variables() {
    let c = run(
        &[
            "--max-procs",
            "20",
            "--kill-grace=100ms",
            "--dedupe",
            "off",
            "cmd",
        ],
        &[("MCPINIT_MAX_PROCS", "15"), ("MCPINIT_KILL_GRACE", "9s")],
    )
    .unwrap();
    assert_eq!(c.max_procs, 20);
    assert_eq!(c.kill_grace, Duration::from_millis(100));
    assert!(c.dedupe.is_empty());
}

#[test]
fn empty_variables_mean_unset() {
    let c = run(
        &["cmd"],
        &[("MCPINIT_MAX_PROCS", ""), ("TINI_KILL_PROCESS_GROUP", "")],
    )
    .unwrap();
    assert_eq!(c.max_procs, 128);
    assert!(!c.kill_group);
}

#[test]
fn tini_options_combine_and_stop_at_the_command() {
    let c = run(
        &[
            "-sgvw", "-e", "3", "-e4", "-p", "SIGKILL", "sh", "-c", "exit 3",
        ],
        &[],
    )
    .unwrap();
    assert!(c.kill_group && c.warn_on_reap);
    assert_eq!(c.expect_zero, [3, 4]);
    assert_eq!(c.parent_death_signal, Some(libc::SIGKILL));
    assert_eq!(c.log_filter, "debug");
    assert_eq!(c.command, ["sh", "-c", "exit 3"]);

    let c = run(&["-e", "3", "sh", "-c", "exit 3"], &[]).unwrap();
    assert_eq!(c.command, ["sh", "-c", "exit 3"]);
    let c = run(&["--", "-weird-name", "--max-procs"], &[]).unwrap();
    assert_eq!(c.command, ["-weird-name", "--max-procs"]);
    assert_eq!(run(&["-vv", "x"], &[]).unwrap().log_filter, "trace");
}

#[test]
fn tini_verbosity_maps_to_levels_unless_mcpinit_log_is_set() {
    assert_eq!(
        run(&["x"], &[("TINI_VERBOSITY", "0")]).unwrap().log_filter,
        "error"
    );
    assert_eq!(
        run(&["x"], &[("TINI_VERBOSITY", "3")]).unwrap().log_filter,
        "trace"
    );
    let both = [("TINI_VERBOSITY", "3"), ("MCPINIT_LOG", "warn")];
    assert_eq!(run(&["x"], &both).unwrap().log_filter, "warn");
}

#[test]
fn subcommands_and_their_escape() {
    let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    let none = |_: &str| None;
    assert_eq!(
        parse(&args(&["status", "--json"]), none),
        Ok(Invocation::Status {
            json: true,
            state_file: None
        })
    );
    assert_eq!(
        parse(&args(&["health", "--state-file", "/s"]), none),
        Ok(Invocation::Health {
            state_file: Some("/s".into())
        })
    );
    assert!(parse(&args(&["health", "--json"]), none).is_err());
    assert_eq!(run(&["--", "status"], &[]).unwrap().command, ["status"]);
    assert_eq!(parse(&args(&["--help"]), none), Ok(Invocation::Help));
    assert_eq!(parse(&args(&["--version"]), none), Ok(Invocation::Version));
}

#[test]
fn bad_variables_are_named_with_value_and_what_is_accepted() {
    let cases = [
        ("MCPINIT_MAX_PROCS", "many"),
        ("MCPINIT_MAX_PROCS", "-1"),
        ("MCPINIT_MAX_MEMORY", "lots"),
        ("MCPINIT_DEDUPE", "npx,,uvx"),
        ("MCPINIT_DEDUPE_KEEP", "0"),
        ("MCPINIT_DEDUPE_SETTLE", "soon"),
        ("MCPINIT_ORPHANS", "kill"),
        ("MCPINIT_DEDUPE_IDLE", "idle"),
        ("MCPINIT_EOF_GRACE", "-1s"),
        ("MCPINIT_KILL_GRACE", "5x"),
        ("MCPINIT_STOP_GRACE", "-3"),
        ("MCPINIT_SCAN_INTERVAL", "1ms"),
        ("MCPINIT_DRY_RUN", "maybe"),
        ("MCPINIT_LOG", "loud"),
        ("MCPINIT_LOG_FORMAT", "xml"),
        ("TINI_VERBOSITY", "high"),
    ];
    for (var, value) in cases {
        let message = refused(&["cmd"], &[(var, value)]);
        assert!(message.contains(var), "{message}");
        assert!(message.contains(&format!("'{value}'")), "{message}");
        assert!(message.contains("expected"), "{message}");
    }
}

#[test]
fn bad_options_are_refused() {
    for args in [
        &["--max-procs", "x", "cmd"][..],
        &["--max-procs"],
        &["--max-procs=", "cmd"],
        &["--orphans=kill", "cmd"],
        &["-e", "256", "cmd"],
        &["-e", "x", "cmd"],
        &["-e"],
        &["-p", "SIGNOPE", "cmd"],
        &["--bogus", "cmd"],
        &["-z", "cmd"],
        &["--dry-run=maybe", "cmd"],
        &[],
        &["-v"],
    ] {
        assert!(run(args, &[]).is_err(), "{args:?}");
    }
    assert!(refused(&["--bogus", "cmd"], &[]).contains("--bogus"));
    assert!(refused(&["-p", "SIGNOPE", "cmd"], &[]).contains("-p 'SIGNOPE'"));
    assert!(refused(&[], &[]).contains("no command"));
}

#[test]
fn log_filters() {
    for ok in [
        "info",
        "debug",
        "mcpinit=trace",
        "warn,mcpinit=debug",
        "mcpinit",
    ] {
        assert!(log_filter(ok).is_some(), "{ok}");
    }
    for bad in ["loud", "mcpinit=loud", "a=b=c", ""] {
        assert!(log_filter(bad).is_none(), "{bad}");
    }
}
