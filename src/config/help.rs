//! `--help`: fixed text around one entry per setting, built from the settings table, so
//! a setting cannot be added without its help line and its default.

use crate::config::settings::{Config, SETTINGS};

pub const SYNOPSIS: &str = "\
Usage: mcpinit [OPTIONS] [--] COMMAND [ARGS...]
       mcpinit status [--json] [--state-file PATH]
       mcpinit health [--state-file PATH]";

const ABOUT: &str = "\
A PID 1 for containers: runs COMMAND, forwards signals, reaps zombies, and
governs the process tree (dedupes npm exec/npx/uvx servers, reclaims orphans,
caps the number and memory of descendants).

tini-compatible options:
  -s            register as child subreaper (always on when not PID 1)
  -g            forward signals to the child's process group
  -e CODE       report child exit code CODE as 0 (repeatable)
  -p SIGNAL     signal to receive when mcpinit's parent dies
  -v            more verbose (repeatable: -vv)
  -w            log each reaped zombie at warning level
  -h, --help    this help;  -V, --version  the version
  variables: TINI_SUBREAPER (accepted), TINI_KILL_PROCESS_GROUP (as -g),
  TINI_VERBOSITY (0 to 3)";

const EPILOGUE: &str = "\
Durations: 250ms, 5s, 2m, 1h, 1m30s, or a number of seconds. Sizes: 100k, 512m, 4g.

Exit status: the child's; 128+N if it died of signal N; 127 command not
found; 126 not executable; 2 bad usage or configuration.";

/// `--help`: the fixed text around one entry per setting, built from `SETTINGS`.
pub fn usage() -> String {
    let defaults = Config::default();
    let mut out = format!("{SYNOPSIS}\n\n{ABOUT}\n\nGovernance (each option overrides its variable; default in brackets):\n");
    for s in SETTINGS {
        let option = match s.metavar() {
            "" => s.option.to_string(),
            metavar => format!("{} {metavar}", s.option),
        };
        out.push_str(&format!(
            "  {option:<26} {} [{}]\n      {}\n",
            s.var,
            s.show(&defaults),
            s.help
        ));
    }
    out.push('\n');
    out.push_str(EPILOGUE);
    out
}
