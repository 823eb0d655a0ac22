use super::*;
use crate::config::settings::log_filter;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::time::Duration;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match parse(&args, |name| env.get(name).map(OsString::from))? {
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
    assert!(c.retired.is_empty());
    assert_eq!(c.dedupe_idle, Duration::from_secs(600));
    assert_eq!(c.eof_grace, Duration::from_secs(3));
    assert_eq!(c.orphans, Orphans::Servers);
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
    assert_eq!(c.dedupe_idle, Duration::from_secs(90));
    assert_eq!(c.eof_grace, Duration::ZERO);
    assert_eq!(c.orphans, Orphans::None);
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
    let none = |_: &str| None::<OsString>;
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
    assert_eq!(
        refused(&["--bogus", "cmd"], &[]),
        "unknown option '--bogus'"
    );
    assert_eq!(refused(&["-sz", "cmd"], &[]), "unknown option '-z'");
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

fn parse_bytes(args: &[&[u8]], env: &[(&str, &[u8])]) -> Result<Invocation, UsageError> {
    use std::os::unix::ffi::OsStringExt;
    let args: Vec<OsString> = args
        .iter()
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from_vec(v.to_vec())))
        .collect();
    parse(&args, |name| env.get(name).cloned())
}

#[test]
fn values_that_are_not_utf8_are_refused_in_every_form() {
    for args in [
        &[&b"--max-procs=\xff"[..], b"cmd"][..],
        &[b"--max-procs", b"\xff", b"cmd"],
        &[b"--dedupe=npx\xff", b"cmd"],
        &[b"-e\xff", b"cmd"],
        &[b"-we\xff", b"cmd"],
        &[b"-e", b"\xff", b"cmd"],
        &[b"-p\xff", b"cmd"],
        &[b"--nope\xff", b"cmd"],
        &[b"-\xff", b"cmd"],
        &[b"status", b"--state-file\xff"],
    ] {
        let error = parse_bytes(args, &[]).expect_err("refused");
        assert!(error.message.contains("\\xff"), "{}", error.message);
    }
    let error = parse_bytes(&[b"cmd"], &[("MCPINIT_DEDUPE", b"npx\xff")]).unwrap_err();
    assert_eq!(
        error.message,
        "invalid MCPINIT_DEDUPE 'npx\\xff': expected UTF-8 text"
    );
    // After `--`, or as the command, bytes are the child's business.
    let Ok(Invocation::Run(c)) = parse_bytes(&[b"--", b"--max-procs=\xff"], &[]) else {
        panic!()
    };
    assert_eq!(c.command.len(), 1);
    assert!(parse_bytes(&[b"\xff-cmd", b"-\xff"], &[]).is_ok());
}

#[test]
fn state_file_paths_keep_their_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let path = |i: Invocation| match i {
        Invocation::Run(c) => c.state_file,
        Invocation::Status { state_file, .. } | Invocation::Health { state_file } => state_file,
        other => panic!("{other:?}"),
    };
    let bytes = &b"/tmp/st\xffte.json"[..];
    let want = Some(PathBuf::from(OsStr::from_bytes(bytes)));
    let env = [("MCPINIT_STATE_FILE", bytes)];
    assert_eq!(path(parse_bytes(&[b"cmd"], &env).unwrap()), want);
    assert_eq!(path(parse_bytes(&[b"status"], &env).unwrap()), want);
    assert_eq!(path(parse_bytes(&[b"health"], &env).unwrap()), want);
    let inline = [&b"--state-file="[..], bytes].concat();
    assert_eq!(path(parse_bytes(&[&inline, b"cmd"], &[]).unwrap()), want);
    assert_eq!(
        path(parse_bytes(&[b"health", b"--state-file", bytes], &[]).unwrap()),
        want
    );
    assert!(parse_bytes(&[b"status", b"--state-file="], &[]).is_err());
}

#[test]
fn refusals_are_one_short_escaped_line() {
    let message = refused(&["cmd"], &[("MCPINIT_MAX_PROCS", "5\n6")]);
    assert_eq!(
        message,
        "invalid MCPINIT_MAX_PROCS '5\\n6': expected a whole number (0 = no cap)"
    );
    let message = refused(&["--orphans", "\u{1b}[2Jx", "cmd"], &[]);
    assert!(message.contains("'\\u{1b}[2Jx'"), "{message}");
    let huge = "7".repeat(131_072);
    let message = refused(&["cmd"], &[("MCPINIT_STOP_GRACE", &(huge + "x"))]);
    assert!(message.len() < 200, "{message}");
    assert!(message.contains(&format!("'{}…' (131073 bytes)", "7".repeat(64))));
    assert!(!refused(&["--x\u{7}y", "cmd"], &[]).contains('\u{7}'));
    assert_eq!(shown(OsStr::new("")), "''");
    assert_eq!(
        shown(OsStr::new(&"é".repeat(64))),
        format!("'{}'", "é".repeat(64))
    );
}

#[test]
fn tini_verbosity_is_0_to_3_and_help_takes_no_value() {
    for bad in ["-1", "+5", "4", "4294967296", "1.5", "2x"] {
        let message = refused(&["cmd"], &[("TINI_VERBOSITY", bad)]);
        assert!(message.contains("TINI_VERBOSITY"), "{message}");
    }
    assert_eq!(
        run(&["x"], &[("TINI_VERBOSITY", " 2 ")])
            .unwrap()
            .log_filter,
        "debug"
    );
    let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    let none = |_: &str| None::<OsString>;
    for bad in ["--help=1", "--version=x", "--help="] {
        let error = parse(&args(&[bad]), none).expect_err(bad);
        assert!(
            error.message.contains(bad.split('=').next().unwrap()),
            "{}",
            error.message
        );
    }
}

#[test]
fn the_eof_grace_is_a_duration_and_zero_turns_the_step_off() {
    let c = run(&["--eof-grace", "0", "cmd"], &[]).unwrap();
    assert_eq!(c.eof_grace, Duration::ZERO);
    let c = run(&["cmd"], &[("MCPINIT_EOF_GRACE", "250ms")]).unwrap();
    assert_eq!(c.eof_grace, Duration::from_millis(250));
    let e = run(&["cmd"], &[("MCPINIT_EOF_GRACE", "soon")]).unwrap_err();
    assert!(
        e.message.contains("MCPINIT_EOF_GRACE 'soon'"),
        "{}",
        e.message
    );
}

#[test]
fn metrics_are_off_unless_an_address_is_given() {
    assert_eq!(run(&["cmd"], &[]).unwrap().metrics, None);
    let c = run(&["cmd"], &[("MCPINIT_METRICS", "0.0.0.0:9464")]).unwrap();
    assert_eq!(c.metrics, Some("0.0.0.0:9464".parse().unwrap()));
    let c = run(
        &["--metrics", "[::1]:9000", "cmd"],
        &[("MCPINIT_METRICS", "0.0.0.0:9464")],
    )
    .unwrap();
    assert_eq!(c.metrics, Some("[::1]:9000".parse().unwrap()));
    let c = run(&["--metrics=off", "cmd"], &[("MCPINIT_METRICS", ":9464")]).unwrap();
    assert_eq!(c.metrics, None);
    assert_eq!(
        refused(&["cmd"], &[("MCPINIT_METRICS", "localhost:9464")]),
        format!(
            "invalid MCPINIT_METRICS 'localhost:9464': expected {}",
            crate::config::values::ADDRESS_HELP
        )
    );
    assert!(refused(&["--metrics", "9464", "cmd"], &[]).starts_with("invalid --metrics '9464'"));
}

#[test]
fn the_retired_settle_time_is_ignored_with_a_warning() {
    for args in [
        &["--dedupe-settle", "1s", "cmd"][..],
        &["--dedupe-settle=soon", "cmd"],
    ] {
        let c = run(args, &[("MCPINIT_DEDUPE_SETTLE", "soon")]).unwrap();
        assert_eq!(c.retired.len(), 2, "{:?}", c.retired);
        for line in &c.retired {
            assert!(line.contains("MCPINIT_DEDUPE_SETTLE"), "{line}");
            assert!(line.contains("retired"), "{line}");
            assert!(line.contains("MCPINIT_DEDUPE_IDLE"), "{line}");
        }
        assert_eq!(c.dedupe_idle, Duration::from_secs(600));
        assert_eq!(c.command, ["cmd"]);
    }
    let zero = run(&["--dedupe-idle", "0", "cmd"], &[]).unwrap();
    assert_eq!(zero.dedupe_idle, Duration::ZERO);
}
