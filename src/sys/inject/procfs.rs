//! What `/proc` says about a process before a call is put in it: whether its thread is
//! waiting in a system call and which, and how many threads it has. Pure parsers, so
//! the reading is table-tested; the two readers only add the file.

/// `/proc/PID/syscall`: where the thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    /// On a CPU or runnable: nothing to tell.
    Running,
    /// Blocked outside a system call (a page fault): `-1 SP PC`.
    Outside,
    /// Blocked in system call `nr` with these arguments.
    In { nr: i64, args: [u64; 6] },
}

/// Parse `/proc/PID/syscall`: `running`, `-1 SP PC`, or `NR ARG1..ARG6 SP PC` (the
/// number decimal, the rest hex).
pub fn parse_syscall(text: &str) -> Option<Syscall> {
    let mut fields = text.split_whitespace();
    let first = fields.next()?;
    if first == "running" {
        return Some(Syscall::Running);
    }
    let nr: i64 = first.parse().ok()?;
    if nr < 0 {
        return Some(Syscall::Outside);
    }
    let mut args = [0u64; 6];
    for arg in &mut args {
        let field = fields.next()?;
        *arg = u64::from_str_radix(field.strip_prefix("0x").unwrap_or(field), 16).ok()?;
    }
    Some(Syscall::In { nr, args })
}

/// Where the thread `pid` is, or None if it is gone (or the file is refused: reading
/// it needs the same rights as ptrace).
pub fn syscall_of(pid: i32) -> Option<Syscall> {
    parse_syscall(&std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?)
}

/// The `Threads:` line of `/proc/PID/status`.
pub fn parse_threads(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// How many threads the process `pid` has, or None if it is gone.
pub fn threads_of(pid: i32) -> Option<u32> {
    parse_threads(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `TracerPid:` line of `/proc/PID/status`: 0 when untraced.
pub(super) fn tracer_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// mcpinit runs under a seccomp filter (`Seccomp: 2` in /proc/self/status).
pub(super) fn under_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines_are_read() {
        let table = [
            ("running\n", Some(Syscall::Running)),
            ("-1 0x7ffd1c8e0b78 0x7f2a8c2e5d3e\n", Some(Syscall::Outside)),
            (
                "61 0xffffffffffffffff 0x7ffc3a0 0x0 0x0 0x0 0x0 0x7ffc398 0x7f1e2b3\n",
                Some(Syscall::In {
                    nr: 61,
                    args: [u64::MAX, 0x7ffc3a0, 0, 0, 0, 0],
                }),
            ),
            ("0 0x0 0x5 0x1 0x0 0x0 0x0 0x1 0x2\n", {
                Some(Syscall::In {
                    nr: 0,
                    args: [0, 5, 1, 0, 0, 0],
                })
            }),
            ("61 0x1 0x2\n", None),
            ("", None),
            ("x 0x1", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_syscall(text), want, "{text:?}");
        }
    }

    #[test]
    fn threads_are_counted() {
        assert_eq!(
            parse_threads("Name:\tnode\nThreads:\t11\nSigQ:\t0/1\n"),
            Some(11)
        );
        assert_eq!(parse_threads("Name:\tsh\n"), None);
    }
}
