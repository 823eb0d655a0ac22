//! aarch64: the architecture as data for the remote system call in `super`.
//!
//! General registers come through `PTRACE_GETREGSET`/`NT_PRSTATUS` (there is no
//! `PTRACE_GETREGS`); the number of the system call the thread is in (the kernel's
//! `syscallno`, which its restart logic reads) is a register set of its own,
//! `NT_ARM_SYSTEM_CALL`, and is saved and restored with the rest. The call number goes
//! in `x8`, the arguments in `x0`..`x2`, the result comes back in `x0`.
//!
//! Unlike x86, arm64 decides about restarting an interrupted call *before* the
//! tracer's stop (`do_signal` in arch/arm64/kernel/signal.c): at the stop of a call
//! that will restart, `pc` is already back on the `svc` and `x0` holds the first
//! argument again, and `syscallno` is already -1. So the `svc` may be at `pc` or just
//! before it, and the number register cannot tell whether the stop is in a call.

use nix::sys::ptrace;
use nix::unistd::Pid;

/// `svc #0`: d4000001, a little-endian word.
pub(super) const INSN: u64 = 0xd400_0001;
pub(super) const INSN_LEN: u64 = 4;

pub(super) const NR_SHUTDOWN: i64 = 210;
pub(super) const NR_EXIT_GROUP: i64 = 94;
pub(super) const NR_GETPID: i64 = 172;

/// `NT_ARM_SYSTEM_CALL` (include/uapi/linux/elf.h); not in the libc crate.
const NT_ARM_SYSTEM_CALL: libc::c_int = 0x404;

#[derive(Clone, Copy)]
pub(super) struct Regs {
    gp: libc::user_regs_struct,
    syscallno: libc::c_int,
}

pub(super) fn get(pid: Pid) -> nix::Result<Regs> {
    let gp = ptrace::getregset::<ptrace::regset::NT_PRSTATUS>(pid)?;
    let mut syscallno: libc::c_int = -1;
    let mut iov = libc::iovec {
        iov_base: (&mut syscallno as *mut libc::c_int).cast(),
        iov_len: std::mem::size_of::<libc::c_int>(),
    };
    // SAFETY: PTRACE_GETREGSET writes at most iov_len bytes into iov_base, which
    // points at a live c_int; the tracee is in a ptrace stop (the caller's contract).
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            pid.as_raw(),
            NT_ARM_SYSTEM_CALL as usize as *mut libc::c_void,
            (&mut iov as *mut libc::iovec).cast::<libc::c_void>(),
        )
    };
    nix::errno::Errno::result(rc)?;
    Ok(Regs { gp, syscallno })
}

pub(super) fn set(pid: Pid, regs: &Regs) -> nix::Result<()> {
    ptrace::setregset::<ptrace::regset::NT_PRSTATUS>(pid, regs.gp)?;
    set_syscallno(pid, regs.syscallno)
}

fn set_syscallno(pid: Pid, nr: libc::c_int) -> nix::Result<()> {
    let mut nr = nr;
    let mut iov = libc::iovec {
        iov_base: (&mut nr as *mut libc::c_int).cast(),
        iov_len: std::mem::size_of::<libc::c_int>(),
    };
    // SAFETY: PTRACE_SETREGSET reads iov_len bytes from iov_base, a live c_int.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            pid.as_raw(),
            NT_ARM_SYSTEM_CALL as usize as *mut libc::c_void,
            (&mut iov as *mut libc::iovec).cast::<libc::c_void>(),
        )
    };
    nix::errno::Errno::result(rc).map(drop)
}

pub(super) fn ip(regs: &Regs) -> u64 {
    regs.gp.pc
}

/// The number register cannot tell (see the module comment): only the instruction can.
pub(super) fn in_syscall(_regs: &Regs) -> bool {
    true
}

/// Where the `svc` may be: at `pc` (a call the kernel will restart, already rewound)
/// or just before it (a call that returned, e.g. with EINTR).
pub(super) fn candidates(regs: &Regs) -> [u64; 2] {
    [regs.gp.pc, regs.gp.pc.wrapping_sub(INSN_LEN)]
}

/// Point the thread at the `svc` at `at` with the call set up. `x8` alone is not
/// always enough: when the stop is in a call interrupted with
/// `-ERESTART_RESTARTBLOCK` and `pc` is on its `svc`, the kernel sets `x8` to
/// `restart_syscall` as the thread leaves the stop; `fix_at_entry` corrects that.
pub(super) fn set_call(regs: &mut Regs, at: u64, nr: i64, args: [u64; 3]) {
    regs.gp.pc = at;
    regs.gp.regs[8] = nr as u64;
    regs.gp.regs[0] = args[0];
    regs.gp.regs[1] = args[1];
    regs.gp.regs[2] = args[2];
    regs.syscallno = -1;
}

/// At the syscall-entry stop, make sure the kernel runs `nr` with `args`: the number
/// it runs is `syscallno`, settable only through `NT_ARM_SYSTEM_CALL`.
pub(super) fn fix_at_entry(pid: Pid, regs: &mut Regs, nr: i64, args: [u64; 3]) -> nix::Result<()> {
    let same = regs.syscallno as i64 == nr && regs.gp.regs[..3] == args;
    if same {
        return Ok(());
    }
    regs.gp.regs[8] = nr as u64;
    regs.gp.regs[0] = args[0];
    regs.gp.regs[1] = args[1];
    regs.gp.regs[2] = args[2];
    regs.syscallno = nr as libc::c_int;
    set(pid, regs)
}

pub(super) fn result(regs: &Regs) -> i64 {
    regs.gp.regs[0] as i64
}
