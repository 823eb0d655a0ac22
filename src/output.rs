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
