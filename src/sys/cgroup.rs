//! The container's own limits, read-only: cgroup v2 (`pids.max`, `memory.max`) or v1
//! (`pids/pids.max`, `memory/memory.limit_in_bytes`), whichever holds our process.

use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub pids_max: Option<u64>,
    pub memory_max: Option<u64>,
}

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup mcpinit runs in: its limits, and where its live task count is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub limits: Limits,
    /// `pids.current` of our own cgroup (tasks, threads included), when there is one:
    /// the root cgroup of a host has none.
    pub pids_current: Option<PathBuf>,
}

pub fn read() -> Cgroup {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    read_from(Path::new(ROOT), &membership)
}

/// `membership` is the text of /proc/self/cgroup; `root` where cgroupfs is mounted.
pub fn read_from(root: &Path, membership: &str) -> Cgroup {
    let mut limits = Limits::default();
    let mut pids_current = None;
    let mut found_current = |dir: &Path| {
        let file = dir.join("pids.current");
        if pids_current.is_none() && file.is_file() {
            pids_current = Some(file);
        }
    };
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            let dir = existing(root.join(path), root);
            found_current(&dir);
            limits.pids_max = limits.pids_max.or_else(|| value(&dir.join("pids.max")));
            limits.memory_max = limits.memory_max.or_else(|| value(&dir.join("memory.max")));
        }
        // Only these two hold what we read; looking at every v1 controller's mount
        // would cost a dozen system calls on every container start.
        for controller in controllers
            .split(',')
            .filter(|c| matches!(*c, "pids" | "memory"))
        {
            let mount = root.join(controller);
            let dir = existing(mount.join(path), &mount);
            match controller {
                "pids" => {
                    found_current(&dir);
                    limits.pids_max = value(&dir.join("pids.max")).or(limits.pids_max)
                }
                "memory" => {
                    limits.memory_max =
                        value(&dir.join("memory.limit_in_bytes")).or(limits.memory_max)
                }
                _ => {}
            }
        }
    }
    Cgroup {
        limits,
        pids_current,
    }
}

/// Tasks in our cgroup now, from `pids.current` kept open: one pread per probe.
/// None when it cannot be read.
pub fn current(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 24];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Inside a container without a cgroup namespace the path names a directory of the
/// host's hierarchy that is not mounted here; the mount's root is then ours.
fn existing(dir: PathBuf, fallback: &Path) -> PathBuf {
    if dir.is_dir() {
        dir
    } else {
        fallback.to_path_buf()
    }
}

/// A limit file's value; `max` and v1's "no limit" (close to i64::MAX) are None.
fn value(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("mcpinit-cg-{}-{}", std::process::id(), files.len()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        root
    }

    #[test]
    fn v2_container_root() {
        let root = tree(&[
            ("pids.max", "64\n"),
            ("memory.max", "max\n"),
            ("pids.current", "7\n"),
        ]);
        let cgroup = read_from(&root, "0::/\n");
        let expected = Limits {
            pids_max: Some(64),
            memory_max: None,
        };
        assert_eq!(cgroup.limits, expected);
        assert_eq!(cgroup.pids_current, Some(root.join("pids.current")));
        let file = std::fs::File::open(root.join("pids.current")).unwrap();
        assert_eq!(current(&file), Some(7));
        std::fs::write(root.join("pids.current"), "12\n").unwrap();
        assert_eq!(current(&file), Some(12), "read again from the start");
    }

    #[test]
    fn v1_with_host_paths_falls_back_to_the_mount_root() {
        let root = tree(&[
            ("pids/pids.max", "max\n"),
            ("memory/docker/abc/memory.limit_in_bytes", "536870912\n"),
            ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
            ("unified/x", ""),
        ]);
        let membership = "8:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n";
        let cgroup = read_from(&root, membership);
        let expected = Limits {
            pids_max: None,
            memory_max: Some(512 << 20),
        };
        assert_eq!(cgroup.limits, expected);
        assert_eq!(
            cgroup.pids_current, None,
            "the host's root cgroup has no task count"
        );
    }

    #[test]
    fn nothing_readable_is_no_limit() {
        let cgroup = read_from(Path::new("/nonexistent"), "garbage\n0::/x\n");
        assert_eq!(cgroup, Cgroup::default());
    }
}
