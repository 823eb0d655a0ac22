//! Property test of the configuration parser (issue 12): generated command lines and
//! environments mixing good values, bad ones and hostile bytes. Invariants:
//! - parsing never panics;
//! - it refuses (exit 2) exactly when one of the values is refused on its own, or an
//!   option is unknown, and a refusal is one short line without control characters;
//! - nothing is spawned after a refusal: a sample runs the real binary, each run as PID
//!   1 of its own PID namespace under a timeout (tests/common), with a command that
//!   would leave a marker file.
//!
//! Bounded: a fixed number of cases (`PROPTEST_CASES` is not read), no fork, no timeout
//! thread; the binary sample is small because each case starts a namespace.

mod common;

use common::*;
use mcpinit::config::settings::{Config, Kind, Setting, SETTINGS};
use mcpinit::config::{self, Invocation};
use proptest::prelude::*;
use proptest::test_runner::{Config as Runner, FileFailurePersistence};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// One generated element of a command line, with what the parser must make of it.
#[derive(Debug, Clone)]
enum Item {
    /// `--opt VALUE` (`inline`: `--opt=VALUE`); a switch alone when `value` is None.
    Long {
        setting: usize,
        value: Option<Vec<u8>>,
        inline: bool,
    },
    /// `-e CODE`, `-pSIGNAL`, …: the flag, its value, attached or not.
    Short {
        flag: u8,
        value: Vec<u8>,
        attached: bool,
    },
    /// Value-less tini flags, combined: `-sgvw`.
    Flags(Vec<u8>),
    /// An option that does not exist, or `--help=V` / `--version=V`.
    Unknown(Vec<u8>),
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn accepted(setting: &Setting, value: &[u8]) -> bool {
    setting
        .apply(&mut Config::default(), OsStr::from_bytes(value))
        .is_ok()
}

impl Item {
    fn args(&self) -> Vec<OsString> {
        match self {
            Item::Long {
                setting,
                value,
                inline,
            } => {
                let option = SETTINGS[*setting].option.as_bytes();
                match (value, inline) {
                    (None, _) => vec![os(option)],
                    (Some(v), true) => vec![os(&[option, b"=", v].concat())],
                    (Some(v), false) => vec![os(option), os(v)],
                }
            }
            Item::Short {
                flag,
                value,
                attached,
            } => match attached {
                true => vec![os(&[&[b'-', *flag][..], value].concat())],
                false => vec![os(&[b'-', *flag]), os(value)],
            },
            Item::Flags(flags) => vec![os(&[b"-", &flags[..]].concat())],
            Item::Unknown(arg) => vec![os(arg)],
        }
    }

    /// Whether the parser must refuse this item on its own.
    fn refused(&self) -> bool {
        match self {
            Item::Long { value: None, .. } => false,
            Item::Long {
                setting,
                value: Some(v),
                ..
            } => v.is_empty() || !accepted(&SETTINGS[*setting], v),
            Item::Short { flag, value, .. } => {
                let text = std::str::from_utf8(value).ok();
                match flag {
                    b'e' => text
                        .and_then(|t| t.parse::<i32>().ok())
                        .is_none_or(|c| !(0..=255).contains(&c)),
                    _ => text
                        .and_then(mcpinit::config::signal_names::number)
                        .is_none(),
                }
            }
            Item::Flags(_) => false,
            Item::Unknown(_) => true,
        }
    }
}

/// Values: some that some setting accepts, some that none does, hostile bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::sample::select(POOL).prop_map(|s| s.as_bytes().to_vec()),
        // No NUL: it cannot be in an argument or a variable at all.
        1 => proptest::collection::vec(1u8..=255, 0..12),
        1 => (200usize..400).prop_map(|n| vec![b'7'; n]),
    ]
}

/// Values from the pool that `setting` accepts: for cases that should run.
fn good_value(setting: &'static Setting) -> impl Strategy<Value = Vec<u8>> {
    let good: Vec<Vec<u8>> = POOL
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .filter(|v| !v.is_empty() && accepted(setting, v))
        .collect();
    proptest::sample::select(good)
}

/// Cases made only of accepted items, so that the binary sample also runs commands.
fn good_case() -> impl Strategy<Value = Case> {
    let long = (0..SETTINGS.len(), any::<bool>()).prop_flat_map(|(setting, inline)| {
        good_value(&SETTINGS[setting]).prop_map(move |v| match &SETTINGS[setting].kind {
            Kind::Switch(_) if !inline => Item::Long {
                setting,
                value: None,
                inline,
            },
            _ => Item::Long {
                setting,
                value: Some(v),
                inline,
            },
        })
    });
    let item = prop_oneof![
        4 => long,
        1 => (0u8..=255, any::<bool>()).prop_map(|(code, attached)| Item::Short {
            flag: b'e',
            value: code.to_string().into_bytes(),
            attached,
        }),
        1 => proptest::collection::vec(proptest::sample::select(b"sgvw".to_vec()), 1..4)
            .prop_map(Item::Flags),
    ];
    (
        proptest::collection::vec(item, 0..5),
        proptest::collection::vec(
            (0..SETTINGS.len()).prop_flat_map(|s| {
                good_value(&SETTINGS[s]).prop_map(move |v| (SETTINGS[s].var.to_string(), v))
            }),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(items, env, dashes)| Case {
            items,
            env: env.into_iter().collect(),
            dashes,
        })
}

#[rustfmt::skip]
const POOL: &[&str] = &[
    "0", "1", "2", "3", "5", "15", "128", "255", "256", "250ms", "5s", "2m", "1m30s", "1h",
    "10ms", "1ms", "512m", "4g", "1.5g", "off", "npm exec,npx", ",,", "term", "keep", "text",
    "json", "stdout", "stderr", "info", "mcpinit=debug", "loud", "true", "maybe", "-1", "+5",
    "4294967296", "SIGKILL", "TERM", "9", "64", "x", "", " ", "--", "\n", "5\n6",
    "\u{1b}[2J", "é", "1s2m",
];

fn item() -> impl Strategy<Value = Item> {
    let settings = 0..SETTINGS.len();
    prop_oneof![
        6 => (settings, value(), any::<bool>()).prop_map(|(setting, v, inline)| {
            match &SETTINGS[setting].kind {
                // A switch's separate "value" would be the command: alone, or inline.
                Kind::Switch(_) if !inline => Item::Long { setting, value: None, inline },
                _ => Item::Long { setting, value: Some(v), inline },
            }
        }),
        2 => (prop_oneof![Just(b'e'), Just(b'p')], value(), any::<bool>()).prop_map(
            |(flag, value, attached)| Item::Short { flag, attached: attached && !value.is_empty(), value }
        ),
        1 => proptest::collection::vec(proptest::sample::select(b"sgvw".to_vec()), 1..4)
            .prop_map(Item::Flags),
        1 => proptest::sample::select(vec![
            &b"--bogus"[..], b"-z", b"--help=1", b"--version=x", b"--max-procs\xff", b"-\xff",
            b"--=3",
        ])
        .prop_map(|a| Item::Unknown(a.to_vec())),
    ]
}

/// Variables: a setting's, or tini's, with a value (empty = unset).
fn variable() -> impl Strategy<Value = (String, Vec<u8>)> {
    let names: Vec<String> = SETTINGS
        .iter()
        .map(|s| s.var.to_string())
        .chain(["TINI_VERBOSITY".into(), "TINI_KILL_PROCESS_GROUP".into()])
        .collect();
    (proptest::sample::select(names), value())
}

fn variable_refused(name: &str, value: &[u8]) -> bool {
    if value.is_empty() {
        return false; // unset
    }
    match name {
        "TINI_KILL_PROCESS_GROUP" => false,
        "TINI_VERBOSITY" => !matches!(
            std::str::from_utf8(value).map(str::trim),
            Ok("0" | "1" | "2" | "3")
        ),
        _ => !accepted(SETTINGS.iter().find(|s| s.var == name).unwrap(), value),
    }
}

#[derive(Debug, Clone)]
struct Case {
    items: Vec<Item>,
    env: HashMap<String, Vec<u8>>,
    dashes: bool,
}

impl Case {
    fn refused(&self) -> bool {
        self.env.iter().any(|(k, v)| variable_refused(k, v)) || self.items.iter().any(Item::refused)
    }

    /// The arguments, with the state file (a path: any bytes are accepted) kept inside
    /// `dir` so a run writes nowhere else.
    fn args(&self, dir: &[u8], command: &[OsString]) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for item in &self.items {
            args.extend(item.args());
        }
        let state = b"--state-file";
        for arg in &mut args {
            let bytes = arg.as_bytes();
            // An empty value stays empty: it is refused, and must stay so.
            if let Some(v) = bytes
                .strip_prefix(&b"--state-file="[..])
                .filter(|v| !v.is_empty())
            {
                let path = confined(dir, v);
                *arg = os(&[&state[..], b"=", &path].concat());
            }
        }
        for i in 1..args.len() {
            if args[i - 1].as_bytes() == state && !args[i].is_empty() {
                args[i] = os(&confined(dir, args[i].as_bytes()));
            }
        }
        if self.dashes {
            args.push("--".into());
        }
        args.extend(command.iter().cloned());
        args
    }

    fn env(&self, dir: &[u8]) -> Vec<(String, OsString)> {
        self.env
            .iter()
            .map(|(k, v)| match k.as_str() {
                "MCPINIT_STATE_FILE" if !v.is_empty() => (k.clone(), os(&confined(dir, v))),
                _ => (k.clone(), os(v)),
            })
            .collect()
    }
}

/// `dir/s-<value without slashes>`: still hostile bytes, but inside `dir`.
fn confined(dir: &[u8], value: &[u8]) -> Vec<u8> {
    let name: Vec<u8> = value
        .iter()
        .map(|&b| if b == b'/' { b'_' } else { b })
        .collect();
    [dir, b"/s-", &name].concat()
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(item(), 0..5),
        proptest::collection::hash_map(variable().prop_map(|(k, _)| k), value(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(items, env, dashes)| Case { items, env, dashes })
}

fn runner(cases: u32) -> Runner {
    Runner {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 200,
        ..Runner::default()
    }
}

proptest! {
    #![proptest_config(runner(3_000))]

    /// In-process: no panic; refused exactly when a value or option is; refusals short.
    #[test]
    fn the_parser_refuses_exactly_the_bad_values(case in case()) {
        let command = [OsString::from("cmd"), OsString::from("-x")];
        let args = case.args(b"/nonexistent", &command);
        let env = case.env(b"/nonexistent");
        let env: HashMap<String, OsString> = env.into_iter().collect();
        let parsed = config::parse(&args, |name| env.get(name).cloned());
        match parsed {
            Ok(Invocation::Run(config)) => {
                prop_assert!(!case.refused(), "accepted a bad case: {args:?} {env:?}");
                prop_assert_eq!(&config.command[..], &command[..]);
            }
            Ok(other) => prop_assert!(false, "not a run: {other:?} from {args:?}"),
            Err(error) => {
                prop_assert!(case.refused(), "refused a good case: {} {args:?} {env:?}", error.message);
                prop_assert!(!error.message.chars().any(char::is_control), "{:?}", error.message);
                prop_assert!(error.message.len() < 400, "{} bytes", error.message.len());
            }
        }
    }
}

proptest! {
    #![proptest_config(runner(32))]

    /// The real binary: exit 2 exactly when refused, and then nothing spawned.
    #[test]
    fn the_binary_exits_2_exactly_when_refused_and_spawns_nothing(
        case in prop_oneof![case(), good_case()]
    ) {
        let dir = temp_dir("props");
        let marker = dir.join("spawned");
        let command = [OsString::from("touch"), marker.clone().into_os_string()];
        let dir_bytes = dir.as_os_str().as_bytes().to_vec();
        let mut cmd = in_namespace(mcpinit(), &[]);
        cmd.args(case.args(&dir_bytes, &command))
            .env("MCPINIT_STATE_FILE", dir.join("state.json"))
            .stdin(std::process::Stdio::null());
        for (k, v) in case.env(&dir_bytes) {
            cmd.env(k, v);
        }
        let output = cmd.output().expect("timeout/unshare must be installed");
        let spawned = marker.exists();
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if case.refused() {
            prop_assert_eq!(output.status.code(), Some(2), "{}", stderr);
            prop_assert!(!spawned, "spawned after a refusal: {}", stderr);
        } else {
            prop_assert_eq!(output.status.code(), Some(0), "{}", stderr);
            prop_assert!(spawned, "the command did not run: {}", stderr);
        }
    }
}
