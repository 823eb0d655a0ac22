//! What a unit's input is and which process's input to shut down: the pure half of
//! closing a server's input (sys::close_input does it). See sys/close_input.rs for why.

use crate::core::process::ProcId;

/// What a process's fd 0 is, from its `/proc/PID/fd/0` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `socket:[INODE]`.
    Socket(u64),
    Pipe,
    Tty,
    /// Anything else: `/dev/null`, a file.
    Other(String),
    /// No fd 0, or the process is gone.
    Closed,
}

/// Why the input of a unit was not closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `pidfd_open` or `pidfd_getfd` is missing: kernel older than 5.3 / 5.6.
    NoSyscall,
    /// EPERM from `pidfd_getfd`: under a seccomp filter (Docker's default profile allows
    /// it only with CAP_SYS_PTRACE), or no ptrace rights over the process.
    Refused { pid: i32, seccomp: bool },
    /// No process of the unit has a socket at fd 0: what the top's fd 0 is instead.
    NotSocket(Input),
    /// The socket is mcpinit's own fd 0, which the main child shares: shutting it down
    /// would end the main child's input too.
    Shared { pid: i32 },
    /// The process changed or vanished between the look and the copy.
    Gone { pid: i32 },
    /// Any other error of the copy or of shutdown(2).
    Failed { pid: i32, errno: i32 },
    /// The ptrace route could not make a holder of the socket shut it down.
    Ptrace {
        pid: i32,
        cause: &'static str,
        detail: String,
    },
    /// Neither route is open here: what refused each (said at start too).
    NoRoute,
    /// A process outside the unit holds the socket too: shutting it down would end
    /// that one's input as well.
    SharedOutside { pid: i32, holder: i32 },
    /// fd 0 is a socket, but not a connected stream (a listening socket, a datagram):
    /// not a server's stdio, and shutting it down may break its owner.
    NotStdio { pid: i32 },
}

impl Fallback {
    /// A short word for the log's `cause` field.
    pub fn cause(&self) -> &'static str {
        match self {
            Fallback::NoSyscall => "kernel",
            Fallback::Refused { seccomp: true, .. } => "seccomp",
            Fallback::Refused { .. } => "permission",
            Fallback::NotSocket(Input::Pipe) => "pipe",
            Fallback::NotSocket(Input::Tty) => "tty",
            Fallback::NotSocket(Input::Closed) => "no_input",
            Fallback::NotSocket(_) => "not_socket",
            Fallback::Shared { .. } => "shared",
            Fallback::Gone { .. } => "gone",
            Fallback::Failed { .. } => "error",
            Fallback::Ptrace { cause, .. } => cause,
            Fallback::NoRoute => "no_route",
            Fallback::SharedOutside { .. } => "shared",
            Fallback::NotStdio { .. } => "not_stdio",
        }
    }

    /// The unit has a stdio channel a gateway may be talking to (a socket or a pipe at
    /// its input) that could not be closed. Without one (/dev/null, a file, a terminal,
    /// no fd 0, a listener) it is no stdio server of anyone's, and a signal to it is no
    /// stdio gateway's crash.
    pub fn has_stdio_channel(&self) -> bool {
        !matches!(
            self,
            Fallback::NotSocket(Input::Other(_) | Input::Closed | Input::Tty)
                | Fallback::NotStdio { .. }
        )
    }

    /// The sentence for the operator: why, and what would make it work.
    pub fn describe(&self) -> String {
        match self {
            Fallback::NoSyscall => "the kernel has no pidfd_getfd (Linux 5.6 or later is needed)".into(),
            Fallback::Refused { pid, seccomp: true } => format!(
                "pidfd_getfd on {pid} refused (EPERM) under a seccomp filter; Docker's default profile allows it only with CAP_SYS_PTRACE (cap_add: [SYS_PTRACE])"
            ),
            Fallback::Refused { pid, .. } => {
                format!("no ptrace rights over {pid} for pidfd_getfd (EPERM)")
            }
            Fallback::NotSocket(Input::Pipe) => "its fd 0 is a pipe, not a socket".into(),
            Fallback::NotSocket(Input::Tty) => "its fd 0 is a terminal, which is never shut down".into(),
            Fallback::NotSocket(Input::Closed) => "it has no fd 0".into(),
            Fallback::NotSocket(Input::Other(what)) => format!("its fd 0 is {what}, not a socket"),
            Fallback::NotSocket(Input::Socket(_)) => "its fd 0 is not a socket".into(),
            Fallback::Shared { pid } => {
                format!("the socket at fd 0 of {pid} is mcpinit's own input, shared with the main child")
            }
            Fallback::Gone { pid } => format!("{pid} changed or exited before its input was reached"),
            Fallback::Ptrace { pid, detail, .. } => {
                format!("the ptrace route could not close the input of {pid}: {detail}")
            }
            Fallback::NoRoute => "no route to close inputs here (see the start line)".into(),
            Fallback::SharedOutside { pid, holder } => format!(
                "the socket at fd 0 of {pid} is also held by {holder}, outside the unit"
            ),
            Fallback::NotStdio { pid } => {
                format!("fd 0 of {pid} is not a connected stream socket (a listener?)")
            }
            Fallback::Failed { pid, errno } => format!(
                "closing the input of {pid} failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// Read a `/proc/PID/fd/0` link text.
pub fn classify(link: Option<&str>) -> Input {
    let Some(link) = link else {
        return Input::Closed;
    };
    if let Some(inode) = link
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
    {
        return Input::Socket(inode);
    }
    if link.starts_with("pipe:[") {
        return Input::Pipe;
    }
    let tty = link.starts_with("/dev/pts/")
        || link.starts_with("/dev/tty")
        || link == "/dev/console"
        || link == "/dev/ptmx";
    if tty {
        Input::Tty
    } else {
        Input::Other(link.to_string())
    }
}

/// Which process's fd 0 to shut down: the first (top first) holding a socket that is
/// not `own`, mcpinit's own input. Pure, so the search is table-tested.
pub fn choose(inputs: &[(i32, Input)], own: Option<u64>) -> Result<(i32, u64), Fallback> {
    let mut shared = None;
    for (pid, input) in inputs {
        if let Input::Socket(inode) = *input {
            if Some(inode) == own {
                shared.get_or_insert(*pid);
            } else {
                return Ok((*pid, inode));
            }
        }
    }
    if let Some(pid) = shared {
        return Err(Fallback::Shared { pid });
    }
    let top = inputs.first().map_or(Input::Closed, |(_, i)| i.clone());
    Err(Fallback::NotSocket(top))
}

/// A process of a unit that holds the unit's input socket, at descriptor `fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub who: ProcId,
    pub fd: i32,
    pub threads: u32,
}

/// Where to make the `shutdown` call, best first: single-threaded holders (a launcher's
/// `sh`, waiting in wait4, where nothing else can run while it is ours), then the rest;
/// top first within each. `holders` is top first.
pub fn shutdown_order(holders: &[Holder]) -> Vec<&Holder> {
    let (single, multi): (Vec<&Holder>, Vec<&Holder>) =
        holders.iter().partition(|h| h.threads == 1);
    single.into_iter().chain(multi).collect()
}

/// A member of a unit as the exit step sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub who: ProcId,
    pub ppid: i32,
    /// It holds the unit's input socket.
    pub holds: bool,
}

/// Whom the exit step makes call `exit_group(0)`, best first: the unit's top, the
/// process the gateway started and tracks, so that the exit it sees is a clean 0 whatever
/// the shape of the tree below; what survives it is orphaned, tracked by no one, and
/// gets SIGTERM after the grace. Should the top not be waiting in a system call, the
/// processes down the line from it through the children holding its input follow (the
/// launchers pass a status up). The top is the member whose parent is not a member and
/// under which most members live (the lowest pid on a tie).
pub fn exit_order(members: &[Member]) -> Vec<ProcId> {
    let is_member = |pid: i32| members.iter().any(|m| m.who.pid == pid);
    let under = |root: i32| {
        // Bounded: each pass adds a member or stops.
        let mut line = vec![root];
        loop {
            let before = line.len();
            for m in members {
                if line.contains(&m.ppid) && !line.contains(&m.who.pid) {
                    line.push(m.who.pid);
                }
            }
            if line.len() == before {
                return line.len();
            }
        }
    };
    let Some(top) = members
        .iter()
        .filter(|m| !is_member(m.ppid))
        .max_by_key(|m| (under(m.who.pid), std::cmp::Reverse(m.who.pid)))
    else {
        return Vec::new();
    };
    let mut line = vec![top.who];
    while line.len() <= members.len() {
        let last = line[line.len() - 1].pid;
        let next = members
            .iter()
            .filter(|m| m.ppid == last && m.holds)
            .min_by_key(|m| m.who.pid);
        match next {
            Some(m) => line.push(m.who),
            None => break,
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_classified() {
        let table = [
            (Some("socket:[12345]"), Input::Socket(12345)),
            (Some("pipe:[77]"), Input::Pipe),
            (Some("/dev/pts/3"), Input::Tty),
            (Some("/dev/tty1"), Input::Tty),
            (Some("/dev/console"), Input::Tty),
            (Some("/dev/null"), Input::Other("/dev/null".into())),
            (Some("socket:[x]"), Input::Other("socket:[x]".into())),
            (
                Some("anon_inode:[eventfd]"),
                Input::Other("anon_inode:[eventfd]".into()),
            ),
            (None, Input::Closed),
        ];
        for (link, want) in table {
            assert_eq!(classify(link), want, "{link:?}");
        }
    }

    #[test]
    fn the_first_socket_top_first_is_chosen() {
        use Input::*;
        type Case<'a> = (
            &'a [(i32, Input)],
            Option<u64>,
            Result<(i32, u64), Fallback>,
        );
        let table: &[Case] = &[
            // npx: every level holds the socket; the top is taken.
            (
                &[(10, Socket(5)), (11, Socket(5)), (12, Socket(5))],
                None,
                Ok((10, 5)),
            ),
            // a launcher whose top moved stdin away: found lower.
            (
                &[(10, Other("/dev/null".into())), (11, Socket(7))],
                None,
                Ok((11, 7)),
            ),
            // mcpinit's own input is never shut down; another socket lower still is.
            (&[(10, Socket(3)), (11, Socket(9))], Some(3), Ok((11, 9))),
            (
                &[(10, Socket(3))],
                Some(3),
                Err(Fallback::Shared { pid: 10 }),
            ),
            (
                &[(10, Pipe), (11, Pipe)],
                None,
                Err(Fallback::NotSocket(Pipe)),
            ),
            (&[(10, Tty)], None, Err(Fallback::NotSocket(Tty))),
            (&[], None, Err(Fallback::NotSocket(Closed))),
        ];
        for (inputs, own, want) in table {
            assert_eq!(&choose(inputs, *own), want, "{inputs:?} own {own:?}");
        }
    }

    fn m(pid: i32, ppid: i32, holds: bool) -> Member {
        Member {
            who: ProcId { pid, start: 1 },
            ppid,
            holds,
        }
    }

    #[test]
    fn the_exit_step_goes_down_the_line_the_gateway_started() {
        let pids = |v: Vec<ProcId>| v.into_iter().map(|p| p.pid).collect::<Vec<_>>();
        let table: &[(&str, Vec<Member>, Vec<i32>)] = &[
            (
                "npm exec -> sh -> node: the top the gateway tracks first",
                vec![m(40, 7, true), m(41, 40, true), m(42, 41, true)],
                vec![40, 41, 42],
            ),
            (
                "a helper the server started with pipes of its own is off the line",
                vec![
                    m(40, 7, true),
                    m(41, 40, true),
                    m(42, 41, true),
                    m(43, 42, false),
                ],
                vec![40, 41, 42],
            ),
            (
                "readers the gateway put in the group are other roots, not the top",
                vec![m(4, 2, true), m(5, 4, true), m(12, 2, true), m(13, 2, true)],
                vec![4, 5],
            ),
            (
                "uv keeps the socket at fd 0, python at fd 6: both hold it",
                vec![m(40, 7, true), m(41, 40, true)],
                vec![40, 41],
            ),
            (
                "nothing holds the input: the top alone",
                vec![m(40, 7, false), m(41, 40, false)],
                vec![40],
            ),
            ("no members", vec![], vec![]),
        ];
        for (name, members, want) in table {
            assert_eq!(pids(exit_order(members)), *want, "{name}");
        }
    }

    #[test]
    fn shutdown_is_made_in_a_single_threaded_holder_first() {
        let h = |pid: i32, threads: u32| Holder {
            who: ProcId { pid, start: 1 },
            fd: 0,
            threads,
        };
        let holders = [h(40, 11), h(41, 1), h(42, 7), h(43, 1)];
        let order: Vec<i32> = shutdown_order(&holders).iter().map(|h| h.who.pid).collect();
        assert_eq!(order, [41, 43, 40, 42]);
    }
}
