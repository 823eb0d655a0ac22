//! A socket is shut down only when it is the unit's own stdio: not one another process
//! outside the unit holds too, and not a listener. Both cases once cost someone else
//! their input or their port. Every mcpinit runs as PID 1 of its own PID namespace.

mod common;

use common::*;

#[test]
fn a_socket_another_instance_holds_too_is_not_shut_down() {
    let dir = temp_dir("shared");
    let d = dir.to_str().unwrap();
    let script = fixture("ownership/shared.py");
    let mut run = Run::start(
        &[
            "--dedupe",
            "python3 -c",
            "--dedupe-idle",
            "0",
            "--scan-interval",
            "250ms",
            "--",
            &python(),
            &script,
            d,
        ],
        &[],
    );
    assert_eq!(run.wait(LONG), Some(0), "{}", run.stdout());
    let out = run.stdout();
    assert!(
        out.lines().any(|l| l.contains("cause=shared")),
        "the older instance's input was not refused as shared:\n{out}"
    );
    // The newer one still runs and never read EOF; the older one exited 0.
    assert!(
        out.lines()
            .any(|l| l == "first 0 second None second_eof False"),
        "the newer instance lost its input:\n{out}"
    );
}

#[test]
fn a_listener_at_an_orphans_fd0_is_not_shut_down() {
    let script = fixture("ownership/listener.py");
    let mut run = Run::start(&["--orphans", "term", "--", &python(), &script, "3"], &[]);
    assert_eq!(run.wait(LONG), Some(0), "{}", run.stdout());
    let out = run.stdout();
    assert!(
        out.lines().any(|l| l.contains("terminating orphan")),
        "the orphan was not ended:\n{out}"
    );
    assert!(out.lines().any(|l| l == "accepted"), "{out}");
}
