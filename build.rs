//! Build facts for `mcpinit --version`: the commit and the target the binary was built
//! from. Only the source decides them (never the clock, the host or the build path), so
//! two builds of one commit give the same bytes (scripts/release.sh checks it).
//!
//! The commit is `MCPINIT_COMMIT` when set (a packager building from a tarball, or the
//! Dockerfile's build argument), else `git rev-parse HEAD` when the source is a git
//! checkout, else `unknown`.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MCPINIT_COMMIT");
    let commit = std::env::var("MCPINIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_head)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MCPINIT_COMMIT={}", commit.trim());
    // Cargo sets TARGET for build scripts: the triple being compiled for.
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=MCPINIT_TARGET={target}");
}

/// The checked-out commit (12 hex digits), and cargo told to look again when HEAD moves.
fn git_head() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    // Only this package's own repository: a tarball unpacked inside some other checkout
    // must say `unknown`, not that checkout's commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(&here).ok()? {
        return None;
    }
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &reference]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
