//! Starting the child: its own process group, the terminal's foreground when there is
//! one, and the signal mask and dispositions mcpinit itself inherited.

use crate::sys::signals::Inherited;
use nix::errno::Errno;
use nix::unistd::{getpid, isatty, setpgid, tcsetpgrp, Pid};
use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Why the command could not be started, with the shell's conventional status.
#[derive(Debug)]
pub enum SpawnError {
    /// No such file (or not on PATH): 127.
    NotFound {
        command: OsString,
        error: std::io::Error,
    },
    /// Found but not runnable (permissions, format, a setup step before exec): 126.
    CannotRun {
        command: OsString,
        error: std::io::Error,
    },
}

impl SpawnError {
    /// mcpinit's exit status for it.
    pub fn status(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::CannotRun { .. } => 126,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let (SpawnError::NotFound { command, error } | SpawnError::CannotRun { command, error }) =
            self;
        let name = crate::sys::output::printable(&command.to_string_lossy()).into_owned();
        write!(f, "cannot run '{name}': {error}")
    }
}

/// Spawn `command` (PATH lookup) and return its pid. Exec failures come back as the
/// shell's conventional statuses: 127 not found, 126 found but not runnable.
pub fn spawn(command: &[OsString], inherited: &Inherited) -> Result<libc::pid_t, SpawnError> {
    let inherited = *inherited;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (setpgid, isatty, tcsetpgrp, getpid, sigaction, sigprocmask), none of
    // which allocates.
    unsafe {
        cmd.pre_exec(move || {
            setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            // SAFETY: fd 0 is only borrowed for the two calls below, and nothing in
            // this process closes it meanwhile.
            let stdin = BorrowedFd::borrow_raw(libc::STDIN_FILENO);
            // Interactive `docker run -it`: Ctrl-C must reach the child's group, and the
            // child must be able to read the terminal without SIGTTIN.
            if isatty(stdin) == Ok(true) {
                match tcsetpgrp(stdin, getpid()) {
                    // As tini: a terminal that is not ours (ENOTTY), or a zone's odd
                    // device (ENXIO), just leaves the child in the background.
                    Ok(()) | Err(Errno::ENOTTY | Errno::ENXIO) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
            inherited.restore()
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(child.id() as libc::pid_t),
        Err(error) => {
            let command = command[0].clone();
            Err(if error.raw_os_error() == Some(libc::ENOENT) {
                SpawnError::NotFound { command, error }
            } else {
                SpawnError::CannotRun { command, error }
            })
        }
    }
}
