//! Starting the child: its own process group, the terminal's foreground when there is
//! one, and the signal mask and dispositions mcpinit itself inherited.

use crate::signals::Inherited;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

pub struct SpawnError {
    pub status: i32,
    pub message: String,
}

/// Spawn `command` (PATH lookup) and return its pid. Exec failures come back as the
/// shell's conventional statuses: 127 not found, 126 found but not runnable.
pub fn spawn(command: &[OsString], inherited: &Inherited) -> Result<libc::pid_t, SpawnError> {
    let inherited = *inherited;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (setpgid, isatty, tcsetpgrp, sigaction, sigprocmask).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Interactive `docker run -it`: Ctrl-C must reach the child's group, and the
            // child must be able to read the terminal without SIGTTIN.
            if libc::isatty(libc::STDIN_FILENO) == 1 {
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
            }
            inherited.restore()
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(child.id() as libc::pid_t),
        Err(error) => Err(SpawnError {
            status: if error.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            },
            message: format!("cannot run '{}': {error}", command[0].to_string_lossy()),
        }),
    }
}
