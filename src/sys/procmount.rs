//! How /proc is mounted: with `hidepid`, the processes of other users are hidden
//! (their /proc/PID entries invisible, or present but unreadable), so mcpinit cannot
//! count or govern them and `health` run as another user cannot see mcpinit itself.

/// Larger than any real mountinfo of a container; a longer one is read only this far.
const READ_LIMIT: u64 = 1 << 20;

/// /proc's `hidepid`, when it is not `off`: the kernel's own word for it (`noaccess`,
/// `invisible`, `ptraceable`; older kernels print 1, 2 and 4, read as those words).
pub fn hidepid() -> Option<&'static str> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open("/proc/self/mountinfo")
        .ok()?
        .take(READ_LIMIT)
        .read_to_string(&mut text)
        .ok()?;
    hidepid_in(&text)
}

/// The `hidepid` of the proc file system mounted on /proc in `mountinfo`: the last
/// such line, the one on top. None when it is off or there is no such mount.
pub fn hidepid_in(mountinfo: &str) -> Option<&'static str> {
    let proc_line = mountinfo.lines().rev().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (before, after) = line.split_once(" - ")?;
        let mount_point = before.split(' ').nth(4)?;
        let mut after = after.split(' ');
        let fstype = after.next()?;
        let super_options = after.nth(1).unwrap_or("");
        (mount_point == "/proc" && fstype == "proc").then_some(super_options)
    })?;
    let value = proc_line
        .split(',')
        .find_map(|option| option.strip_prefix("hidepid="))?;
    match value {
        "1" | "noaccess" => Some("noaccess"),
        "2" | "invisible" => Some("invisible"),
        "4" | "ptraceable" => Some("ptraceable"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l\n";

    fn with_proc(super_options: &str) -> String {
        format!("{ROOT}23 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc {super_options}\n")
    }

    #[test]
    fn the_hidepid_of_the_proc_on_top_is_read_in_both_spellings() {
        let table: &[(&str, Option<&str>)] = &[
            ("rw", None),
            ("rw,hidepid=0", None),
            ("rw,hidepid=off", None),
            ("rw,hidepid=1", Some("noaccess")),
            ("rw,hidepid=noaccess", Some("noaccess")),
            ("rw,hidepid=2", Some("invisible")),
            ("rw,gid=10,hidepid=invisible", Some("invisible")),
            ("rw,hidepid=invisible,subset=pid", Some("invisible")),
            ("rw,hidepid=4", Some("ptraceable")),
            ("rw,hidepid=ptraceable", Some("ptraceable")),
            ("rw,hidepid=banana", None),
            ("", None),
        ];
        for &(options, want) in table {
            assert_eq!(hidepid_in(&with_proc(options)), want, "{options}");
        }
        // Only the proc on /proc counts, and the last one mounted there wins.
        let other = format!("{ROOT}30 22 0:40 / /mnt/proc rw - proc proc rw,hidepid=2\n");
        assert_eq!(hidepid_in(&other), None);
        let stacked = with_proc("rw,hidepid=2") + "40 23 0:50 / /proc rw - proc proc rw\n";
        assert_eq!(hidepid_in(&stacked), None);
        let stacked = with_proc("rw") + "40 23 0:50 / /proc rw - proc proc rw,hidepid=2\n";
        assert_eq!(hidepid_in(&stacked), Some("invisible"));
        // Optional fields before the separator; a tmpfs on /proc is not proc.
        let tagged =
            format!("{ROOT}23 22 0:22 / /proc rw shared:5 master:1 - proc proc rw,hidepid=1\n");
        assert_eq!(hidepid_in(&tagged), Some("noaccess"));
        let tmpfs = format!("{ROOT}23 22 0:22 / /proc rw - tmpfs tmpfs rw,hidepid=2\n");
        assert_eq!(hidepid_in(&tmpfs), None);
        assert_eq!(hidepid_in(""), None);
        assert_eq!(hidepid_in("garbage\n - \n"), None);
    }
}
