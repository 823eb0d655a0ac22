//! Closing a server's input: the MCP specification's stdio shutdown, and the only end
//! MetaMCP does not count as a crash (a stdio server reads EOF and exits 0, while any
//! signal death of an instance it tracks wipes the whole server).
//!
//! The server's fd 0 is one end of a Unix socketpair; the backend holds the other.
//! mcpinit takes a copy of it (`pidfd_getfd`), shuts down the copy's read side, which
//! is the socket's, so every process holding it reads EOF, and closes the copy. A
//! launcher may keep the socket at fd 0 while its child moves its own stdin elsewhere
//! (`uv` does, for Python), so the unit's processes are searched top first.
//!
//! When the input cannot be closed, the caller falls back to SIGTERM and logs the
//! `Fallback` said here.

use crate::core::input::{
    choose, classify, exit_order, shutdown_order, Fallback, Holder, Input, Member,
};
use crate::core::process::ProcId;
use crate::sys::kernel::NotEnded;
use crate::sys::{inject, pidfd, procfs};
use nix::errno::Errno;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

/// How this mcpinit closes inputs and ends servers from the inside, found once (after
/// the child is spawned: the probe forks a victim of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub close: Route,
    /// The exit step (exit_group through ptrace) can be taken.
    pub exit: bool,
    /// What refused the routes not taken, for the start line and `status`.
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A copy of the socket through `pidfd_getfd`, shut down here.
    Pidfd,
    /// A holder of the socket made to call `shutdown` itself, through ptrace.
    Ptrace,
    /// Neither: inputs are not closed.
    None,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Pidfd => "pidfd",
            Route::Ptrace => "ptrace",
            Route::None => "none",
        }
    }
}

static ROUTES: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();

/// The routes, if something has needed them yet: the state file shows them without
/// probing.
pub fn known_routes() -> Option<&'static Routes> {
    ROUTES.get()
}

/// The routes, probed on first use.
pub fn routes() -> &'static Routes {
    ROUTES.get_or_init(|| {
        let mut refused = Vec::new();
        let pidfd = available()
            .map_err(|why| refused.push(why.describe()))
            .is_ok();
        let ptrace = inject::probe()
            .map_err(|why| refused.push(why.describe()))
            .is_ok();
        let close = match (pidfd, ptrace) {
            (true, _) => Route::Pidfd,
            (false, true) => Route::Ptrace,
            (false, false) => Route::None,
        };
        Routes {
            close,
            exit: ptrace,
            refused,
        }
    })
}

/// Each call of the ptrace route waits this long at most for its process to stop.
const INJECT_BUDGET: Duration = Duration::from_millis(200);
/// A unit's holders tried in turn, at most: each try is bounded by `INJECT_BUDGET`.
const INJECT_TRIES: usize = 3;
/// A process's descriptors looked at for the socket, at most.
const FDS_MAX: usize = 4096;

/// Close the input of the unit whose live members are `members` (top first), whose
/// socket must not be held by any of `outside`: on success the pid whose socket was
/// shut down.
pub fn close_input(members: &[ProcId], outside: &[i32]) -> Result<i32, Fallback> {
    let (pid, inode) = find_input(members)?;
    if !connected_stream(pid, inode) {
        return Err(Fallback::NotStdio { pid });
    }
    if let Some(holder) = outside
        .iter()
        .copied()
        .find(|&o| (0..3).any(|fd| fd_link(o, fd) == Some(socket_link(inode))))
    {
        return Err(Fallback::SharedOutside { pid, holder });
    }
    match routes().close {
        Route::Pidfd => {
            let who = members
                .iter()
                .find(|m| m.pid == pid)
                .map_or(ProcId { pid, start: 0 }, |&m| m);
            shut_down_copy(who, inode)
        }
        Route::Ptrace => shut_down_inside(&holders(members, inode), pid),
        Route::None => Err(Fallback::NoRoute),
    }
}

/// The pidfd route: a copy of fd 0, checked to be that very socket, shut down here.
fn shut_down_copy(who: ProcId, inode: u64) -> Result<i32, Fallback> {
    let pid = who.pid;
    let copy = copy_fd0(who)?;
    // fd 0 may have been replaced since the look: only that very socket is shut down,
    // never whatever (a terminal) took its place.
    let file = File::from(copy);
    match file.metadata() {
        Ok(m) if m.file_type().is_socket() && m.ino() == inode => {}
        Ok(_) => return Err(Fallback::Gone { pid }),
        Err(e) => return Err(failed(pid, e.raw_os_error())),
    }
    match nix::sys::socket::shutdown(file.as_raw_fd(), nix::sys::socket::Shutdown::Read) {
        Ok(()) => Ok(pid),
        Err(errno) => Err(Fallback::Failed {
            pid,
            errno: errno as i32,
        }),
    }
}

/// The ptrace route: a holder of the socket calls `shutdown(fd, SHUT_RD)` itself. The
/// socket is the same whoever shuts it down, so any holder will do; the safest first.
fn shut_down_inside(holders: &[Holder], pid: i32) -> Result<i32, Fallback> {
    let mut last = Fallback::Gone { pid };
    for h in shutdown_order(holders).into_iter().take(INJECT_TRIES) {
        let call = inject::Call::Shutdown {
            fd: h.fd,
            how: libc::SHUT_RD,
        };
        match inject::inject(h.who.pid, h.who.start, call, INJECT_BUDGET) {
            Ok(0) => return Ok(h.who.pid),
            Ok(ret) => {
                last = Fallback::Failed {
                    pid: h.who.pid,
                    errno: (-ret) as i32,
                }
            }
            Err(why) => {
                last = Fallback::Ptrace {
                    pid: h.who.pid,
                    cause: why.cause(),
                    detail: why.describe(),
                };
                if matches!(why, inject::InjectError::Refused { .. }) {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// The exit step: a process of the unit made to call `exit_group(0)`, its top first
/// (see `exit_order`).
pub fn end_cleanly(members: &[ProcId]) -> Result<i32, NotEnded> {
    if !routes().exit {
        return Err(NotEnded {
            cause: "no_route",
            why: "ptrace is refused here (see the start line)".into(),
        });
    }
    let holding: Vec<i32> = find_input(members).map_or_else(
        |_| Vec::new(),
        |(_, inode)| holders(members, inode).iter().map(|h| h.who.pid).collect(),
    );
    let line: Vec<Member> = members
        .iter()
        .filter_map(|&who| {
            let ppid = procfs::stat_of(who.pid)?.ppid;
            let holds = holding.contains(&who.pid);
            Some(Member { who, ppid, holds })
        })
        .collect();
    let mut last = NotEnded {
        cause: "gone",
        why: "no process of the unit is left".into(),
    };
    for who in exit_order(&line).into_iter().take(INJECT_TRIES) {
        let call = inject::Call::ExitGroup { code: 0 };
        match inject::inject(who.pid, who.start, call, INJECT_BUDGET) {
            Ok(_) => return Ok(who.pid),
            Err(why) => {
                let refused = matches!(why, inject::InjectError::Refused { .. });
                last = NotEnded {
                    cause: why.cause(),
                    why: why.describe(),
                };
                if refused {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// The unit's input socket: the first member's fd 0 (top first) that is a socket and not
/// mcpinit's own input; the pid and the socket's inode.
fn find_input(members: &[ProcId]) -> Result<(i32, u64), Fallback> {
    let inputs: Vec<(i32, Input)> = members
        .iter()
        .map(|&ProcId { pid, .. }| (pid, classify(fd_link(pid, 0).as_deref())))
        .collect();
    choose(&inputs, own_socket())
}

/// The processes of `members` holding the socket `inode`, at any descriptor (Python
/// servers on the mcp 2.x SDK move it to fd 6 or 7 and put /dev/null at fd 0).
fn holders(members: &[ProcId], inode: u64) -> Vec<Holder> {
    let link = socket_link(inode);
    members
        .iter()
        .filter_map(|&who| {
            let fd = fds(who.pid)
                .into_iter()
                .find(|&fd| fd_link(who.pid, fd).as_deref() == Some(&link))?;
            let threads = inject::threads_of(who.pid).unwrap_or(u32::MAX);
            Some(Holder { who, fd, threads })
        })
        .collect()
}

/// The open descriptors of `pid`, at most `FDS_MAX`, lowest first.
fn fds(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .take(FDS_MAX)
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

fn socket_link(inode: u64) -> String {
    format!("socket:[{inode}]")
}

/// `inode` is a connected stream socket in `pid`'s network namespace, as a server's
/// stdio is: a Unix socketpair (type 0001, state 03 in /proc/PID/net/unix) or an
/// established TCP connection (state 01 in net/tcp or net/tcp6). A listening socket, a
/// datagram socket, or anything else is not, and is never shut down.
fn connected_stream(pid: i32, inode: u64) -> bool {
    let wanted = inode.to_string();
    let found = |table: &str, fields: &dyn Fn(&[&str]) -> bool| {
        use std::io::{BufRead, BufReader};
        let Ok(file) = File::open(format!("/proc/{pid}/net/{table}")) else {
            return false;
        };
        // Bounded: a namespace's sockets, read a line at a time.
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                fields(&f)
            })
    };
    found("unix", &|f| {
        f.len() >= 7 && f[6] == wanted && f[4] == "0001" && f[5] == "03"
    }) || ["tcp", "tcp6"]
        .iter()
        .any(|t| found(t, &|f| f.len() >= 10 && f[9] == wanted && f[3] == "01"))
}

/// Whether inputs can be closed here at all, asked of mcpinit itself at start: a copy of
/// its own fd 0 needs no ptrace rights, so only a missing syscall or a seccomp filter
/// (Docker's default profile without CAP_SYS_PTRACE) refuses it.
pub fn available() -> Result<(), Fallback> {
    let me = std::process::id() as i32;
    let pidfd = match pidfd::open(me) {
        Ok(pidfd) => pidfd,
        Err(Errno::ENOSYS) => return Err(Fallback::NoSyscall),
        Err(_) => return Ok(()),
    };
    match pidfd::getfd(&pidfd, 0) {
        Ok(_copy) => Ok(()),
        Err(Errno::ENOSYS) => Err(Fallback::NoSyscall),
        Err(Errno::EPERM) => Err(Fallback::Refused {
            pid: me,
            seccomp: under_seccomp(),
        }),
        // EBADF: no fd 0 of our own, which says nothing about the servers'.
        Err(_) => Ok(()),
    }
}

/// mcpinit's own input socket, read once: nothing in mcpinit ever replaces its fd 0,
/// and a storm ends thousands of units a second.
fn own_socket() -> Option<u64> {
    static OWN: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| {
        match classify(
            std::fs::read_link("/proc/self/fd/0")
                .ok()
                .map(|l| l.to_string_lossy().into_owned())
                .as_deref(),
        ) {
            Input::Socket(inode) => Some(inode),
            _ => None,
        }
    })
}

fn fd_link(pid: i32, fd: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

fn failed(pid: i32, errno: Option<i32>) -> Fallback {
    Fallback::Failed {
        pid,
        errno: errno.unwrap_or(libc::EIO),
    }
}

/// A copy of fd 0 of `who`, proven to be the process seen: the pidfd pins it, so the
/// check after opening it cannot be fooled by pid reuse.
fn copy_fd0(who: ProcId) -> Result<OwnedFd, Fallback> {
    let pid = who.pid;
    let pidfd = pidfd::open(pid).map_err(|errno| match errno {
        Errno::ENOSYS => Fallback::NoSyscall,
        Errno::ESRCH => Fallback::Gone { pid },
        e => Fallback::Failed {
            pid,
            errno: e as i32,
        },
    })?;
    if !procfs::is_alive(who) {
        return Err(Fallback::Gone { pid });
    }
    pidfd::getfd(&pidfd, 0).map_err(|errno| match errno {
        Errno::ENOSYS => Fallback::NoSyscall,
        Errno::EPERM => Fallback::Refused {
            pid,
            seccomp: under_seccomp(),
        },
        Errno::ESRCH | Errno::EBADF => Fallback::Gone { pid },
        e => Fallback::Failed {
            pid,
            errno: e as i32,
        },
    })
}

/// mcpinit runs under a seccomp filter (`Seccomp: 2` in /proc/self/status).
fn under_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    })
}

// The effects (pidfd_getfd, shutdown, the pid-reuse check) are tested against real
// processes in a PID namespace: tests/eof.rs.
