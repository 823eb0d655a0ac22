//! mcpinit's own scheduling: a short slice, so that it runs soon after it wakes while
//! the processes it governs keep the cores busy.
//!
//! In a fork storm every process the storm makes is runnable, and a look of 150
//! processes took 20-100 ms because mcpinit waited for a core between its reads, while
//! the storm forked on (issue 27). Since Linux 6.6 the fair scheduler (EEVDF) takes a
//! task's requested slice, `sched_attr.sched_runtime`, as how soon it should run once it
//! is eligible: a short one is picked first at a wake-up, with no more CPU than its fair
//! share. No privilege is needed (only a lower nice would need one, and the nice is
//! kept), and the children mcpinit has already spawned keep the default.

use nix::errno::Errno;

/// The slice asked for: the kernel's floor (0.1 ms). mcpinit's work between two sleeps
/// is a few reads, or one look of a few milliseconds.
const SLICE_NS: u64 = 100_000;

/// `struct sched_attr` (include/uapi/linux/sched/types.h), as far as
/// SCHED_ATTR_SIZE_VER1; not in the libc crate.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// Ask for the short slice, keeping the policy (SCHED_OTHER) and the nice value mcpinit
/// was started with. Kernels before EEVDF ignore the slice; a refusal (a seccomp
/// filter, another policy given by the operator) leaves the scheduling as it was.
pub fn short_slice() -> Result<(), Errno> {
    // getpriority can return -1 as a value: errno tells the error apart.
    Errno::clear();
    // SAFETY: getpriority reads no memory of ours.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && Errno::last_raw() != 0 {
        return Err(Errno::last());
    }
    // SAFETY: sched_getscheduler reads no memory of ours.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy != libc::SCHED_OTHER {
        return Err(Errno::EPERM); // the operator chose a policy: not ours to change
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_nice: nice,
        sched_runtime: SLICE_NS,
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid sched_attr of the size it states, alive for the call;
    // pid 0 is the calling thread.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    Errno::result(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Custom slices came with Linux 6.12: before, the request is accepted and ignored.
    fn kernel_has_custom_slices() -> bool {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor) >= (6, 12)
    }

    #[test]
    fn the_short_slice_is_taken_and_the_nice_value_kept() {
        // On a thread of its own: the slice is the calling thread's.
        std::thread::spawn(|| {
            // SAFETY: getpriority reads no memory of ours.
            let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            short_slice().expect("sched_setattr");
            // SAFETY: as above.
            assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, before);
            if kernel_has_custom_slices() {
                let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap();
                let slice = sched
                    .lines()
                    .find(|l| l.starts_with("se.slice"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|v| v.trim().to_string());
                assert_eq!(slice.as_deref(), Some("100000"), "{sched}");
            }
        })
        .join()
        .unwrap();
    }
}
