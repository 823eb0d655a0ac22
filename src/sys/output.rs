//! Text for the terminal that never panics: std's `print!` family panics when the
//! write fails, and with SIGPIPE blocked (as it is in mcpinit from the first line) a
//! reader that goes away (`mcpinit status | head -1`) makes every write fail with
//! EPIPE. What was not read is lost; the exit status still says what happened.

use std::io::Write;

/// Write `text` to stdout, ignoring a reader that went away.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Write `text` to stderr, likewise.
pub fn err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): command lines are
/// whatever a process put there, and must neither break a one-line log record nor
/// send escape sequences to the operator's terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("npm exec a"), "npm exec a");
        assert_eq!(
            super::printable("a\nb\u{1b}[2Jc\té"),
            "a\\nb\\u{1b}[2Jc\\té"
        );
    }
}
