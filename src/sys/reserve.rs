//! A rainy-day reserve of address space behind the global allocator. Rust aborts when
//! an allocation fails, and an aborting PID 1 takes the whole container with it. Under
//! a memory limit (`ulimit -v`, RLIMIT_AS) the allocator here gives up the reserve and
//! retries, so the allocation that hit the limit succeeds; the loop then sees
//! `ready() == false`, skips its scans (the step that grows with the population) and
//! tries to take the reserve back before each one.
//!
//! The reserve is mapped but never touched, so it costs address space, not memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// Well above what one scan, state write or log line allocates at 10,000 processes.
const SIZE: usize = 4 << 20;

static RESERVE: AtomicPtr<u8> = AtomicPtr::new(null_mut());
/// Set by the binary's first `arm()`: unit tests and benches run without a reserve.
static IN_USE: AtomicBool = AtomicBool::new(false);

pub struct Allocator;

// SAFETY: every call is passed to the system allocator unchanged; the reserve is only
// ever unmapped whole, by whoever swaps its pointer out first.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if p.is_null() && release() {
            return System.alloc(layout);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if p.is_null() && release() {
            return System.alloc_zeroed(layout);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() && release() {
            return System.realloc(ptr, layout, new_size);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Give the reserve back to the kernel; false if it was already spent.
fn release() -> bool {
    let p = RESERVE.swap(null_mut(), Ordering::AcqRel);
    if p.is_null() {
        return false;
    }
    // SAFETY: `p` is the start of a SIZE-byte mapping made by `arm`, and the swap above
    // made this the only call that can unmap it.
    unsafe { libc::munmap(p.cast(), SIZE) };
    true
}

/// Take the reserve (again); true when it is held. Allocates nothing.
pub fn arm() -> bool {
    IN_USE.store(true, Ordering::Release);
    if !RESERVE.load(Ordering::Acquire).is_null() {
        return true;
    }
    // SAFETY: an anonymous private mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    if RESERVE
        .compare_exchange(null_mut(), p.cast(), Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: our own fresh mapping, never published.
        unsafe { libc::munmap(p, SIZE) };
    }
    true
}

/// Memory is not known to be short: no reserve is in use, or it is held.
pub fn ready() -> bool {
    !IN_USE.load(Ordering::Acquire) || arm()
}
