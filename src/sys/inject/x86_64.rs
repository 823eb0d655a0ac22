//! x86_64: the architecture as data for the remote system call in `super`.
//!
//! Registers come whole from `PTRACE_GETREGS`. The system call number goes in `rax`,
//! the arguments in `rdi`, `rsi`, `rdx`, the result comes back in `rax`. `orig_rax`
//! is what the kernel's restart logic reads: it is the number of the system call the
//! thread was in, or -1 outside one.

use nix::sys::ptrace;
use nix::unistd::Pid;

/// `syscall`: 0f 05, read as a little-endian word.
pub(super) const INSN: u64 = 0x050f;
pub(super) const INSN_LEN: u64 = 2;

pub(super) const NR_SHUTDOWN: i64 = 48;
pub(super) const NR_EXIT_GROUP: i64 = 231;
pub(super) const NR_GETPID: i64 = 39;

pub(super) type Regs = libc::user_regs_struct;

pub(super) fn get(pid: Pid) -> nix::Result<Regs> {
    ptrace::getregs(pid)
}

pub(super) fn set(pid: Pid, regs: &Regs) -> nix::Result<()> {
    ptrace::setregs(pid, *regs)
}

pub(super) fn ip(regs: &Regs) -> u64 {
    regs.rip
}

/// Whether the stop is inside a system call: x86 restarts (or not) an interrupted
/// call only after the tracer's stop, so here `orig_rax` still holds its number and
/// `rip` is just past its `syscall` instruction.
pub(super) fn in_syscall(regs: &Regs) -> bool {
    (regs.orig_rax as i64) >= 0
}

/// Where the `syscall` instruction may be: just before the instruction pointer.
pub(super) fn candidates(regs: &Regs) -> [u64; 1] {
    [regs.rip.wrapping_sub(INSN_LEN)]
}

/// Point the thread at the instruction at `at` with the call set up. `orig_rax` -1:
/// when the thread leaves its stop, the kernel's restart logic must not touch the
/// registers (it would turn `rax` back into the interrupted call's number).
pub(super) fn set_call(regs: &mut Regs, at: u64, nr: i64, args: [u64; 3]) {
    regs.rip = at;
    regs.rax = nr as u64;
    regs.orig_rax = u64::MAX;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
}

/// At the syscall-entry stop, make sure the kernel runs `nr` with `args`: on x86 the
/// number it runs is `orig_rax`, which entry has just set from `rax`.
pub(super) fn fix_at_entry(pid: Pid, regs: &mut Regs, nr: i64, args: [u64; 3]) -> nix::Result<()> {
    if regs.orig_rax == nr as u64 && [regs.rdi, regs.rsi, regs.rdx] == args {
        return Ok(());
    }
    regs.orig_rax = nr as u64;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    set(pid, regs)
}

pub(super) fn result(regs: &Regs) -> i64 {
    regs.rax as i64
}
