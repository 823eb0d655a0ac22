//! Signal names, as `-p` reads them and logs show them.

/// A signal by number (`15`), name (`SIGTERM`) or short name (`TERM`), any case.
pub fn number(text: &str) -> Option<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(number) = realtime_number(short) {
        return Some(number);
    }
    NAMES
        .iter()
        .find(|(name, _)| *name == short)
        .map(|&(_, number)| number)
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (the SIG prefix already gone), inside the
/// real-time range. The range is read at run time: glibc keeps two signals for its
/// threads (SIGRTMIN is 34) and musl three (35), so a fixed number would be wrong on one.
fn realtime_number(short: &str) -> Option<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let number = if let Some(rest) = short.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            None if rest.is_empty() => min,
            None => return None,
            Some(offset) => min.checked_add(offset.parse::<i32>().ok()?)?,
        }
    } else if let Some(rest) = short.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            None if rest.is_empty() => max,
            None => return None,
            Some(offset) => max.checked_sub(offset.parse::<i32>().ok()?)?,
        }
    } else {
        return None;
    };
    (min..=max).contains(&number).then_some(number)
}

/// The conventional name of a signal, for logs. Real-time signals are named from
/// SIGRTMIN up, as `kill -l` does for the lower half; SIGRTMAX itself keeps its name.
pub fn name(number: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|&&(_, n)| n == number) {
        return format!("SIG{name}");
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    match number {
        n if n == min => "SIGRTMIN".to_string(),
        n if n == max => "SIGRTMAX".to_string(),
        n if n > min && n < max => format!("SIGRTMIN+{}", n - min),
        n => format!("SIG{n}"),
    }
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("TERM"), Some(libc::SIGTERM));
        assert_eq!(number("sigkill"), Some(libc::SIGKILL));
        assert_eq!(number("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(number("9"), Some(9));
        assert_eq!(number("0"), None);
        assert_eq!(number("NOPE"), None);
        assert_eq!(number("999"), None);
        assert_eq!(name(libc::SIGWINCH), "SIGWINCH");
        assert_eq!(name(0), "SIG0");
        for &(_, n) in NAMES {
            assert_eq!(number(&name(n)), Some(n));
        }
    }

    #[test]
    fn realtime_names_follow_the_runtime_sigrtmin() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(name(min), "SIGRTMIN");
        assert_eq!(name(min + 1), "SIGRTMIN+1");
        assert_eq!(name(max - 1), format!("SIGRTMIN+{}", max - 1 - min));
        assert_eq!(name(max), "SIGRTMAX");
        // The ones libc keeps for itself, below SIGRTMIN, have no name.
        assert_eq!(name(min - 1), format!("SIG{}", min - 1));
        let table: &[(&str, Option<i32>)] = &[
            ("SIGRTMIN", Some(min)),
            ("rtmin", Some(min)),
            ("SIGRTMIN+1", Some(min + 1)),
            ("RTMIN+1", Some(min + 1)),
            ("rtmin+0", Some(min)),
            ("SIGRTMAX", Some(max)),
            ("RTMAX-1", Some(max - 1)),
            ("RTMIN+", None),
            ("RTMIN1", None),
            ("RTMIN-1", None),
            ("RTMIN+x", None),
            ("RTMIN+-1", None),
            ("RTMAX+1", None),
            ("RTMAX-99", None),
            ("RTMIN+2147483647", None),
        ];
        for &(text, want) in table {
            assert_eq!(number(text), want, "{text}");
        }
        for n in min..=max {
            assert_eq!(number(&name(n)), Some(n), "{}", name(n));
        }
    }
}
