//! The effect layer: every system call mcpinit makes, and every `unsafe` block.

pub mod cgroup;
pub mod close_input;
pub mod holdings;
pub mod inject;
pub mod kernel;
pub mod output;
pub mod pidfd;
pub mod procfs;
pub mod procmount;
pub(crate) mod reap;
pub mod reserve;
pub mod sched;
pub mod signals;
pub mod spawn;

/// The test double of `kernel::Kernel`.
#[cfg(test)]
pub mod fake;
