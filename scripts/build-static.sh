#!/usr/bin/env bash
# Builds the static, stripped mcpinit for each architecture (default: both):
#   target/x86_64-unknown-linux-musl/release/mcpinit    (x86_64 or amd64)
#   target/aarch64-unknown-linux-musl/release/mcpinit   (aarch64 or arm64)
# Usage: scripts/build-static.sh [--out FILE] [ARCH]... [-- CARGO_ARGS...]
#   --out FILE: also copy the binary there (one ARCH only; the Dockerfile's use).
#   CARGO_ARGS: more for `cargo build` (scripts/release.sh's path remapping); the
#   binary lands under $CARGO_TARGET_DIR (default target/).
#
# std is built from the toolchain's own source (the rust-src component) without its
# backtrace symbolizer and with its size-optimized code paths: with panic=abort the
# symbolizer (gimli, addr2line, miniz_oxide, about 150 kB of code) only ever prints a
# backtrace no PID 1 log needs, and the kernel maps a static binary's text by whole
# large folios, so its resident set is about its size. 1,024 kB -> 620 kB, resident
# 1,016 kB -> 652 kB against tini-static's 704 kB (docs/benchmarks.md, "Memory").
# -Z build-std is unstable: RUSTC_BOOTSTRAP=1 lets the stable toolchain take it, for
# this build only; tests and `cargo build` use the prebuilt std.
# ARCH takes Docker's TARGETARCH names too, so the Dockerfile passes its own.
# The aarch64 binary is cross-linked with rust-lld, which ships with the Rust toolchain
# (.cargo/config.toml): no Debian cross gcc is needed, only `rustup target add`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=
if [ "${1:-}" = --out ]; then
    out=$2
    shift 2
fi
arches=() cargo_args=()
while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then
        shift
        cargo_args=("$@")
        break
    fi
    arches+=("$1")
    shift
done
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
if ! rustup component list --installed | grep -x 'rust-src' >/dev/null; then
    rustup component add rust-src || rustup component list --installed | grep -x 'rust-src' >/dev/null
fi
if [ -n "$out" ] && [ ${#arches[@]} -ne 1 ]; then
    echo "build-static: --out takes exactly one architecture" >&2
    exit 2
fi
for arch in "${arches[@]}"; do
    case "$arch" in
        x86_64 | amd64) triple=x86_64-unknown-linux-musl ;;
        aarch64 | arm64) triple=aarch64-unknown-linux-musl ;;
        *) echo "build-static: no build for architecture '$arch' (x86_64/amd64 or aarch64/arm64)" >&2; exit 2 ;;
    esac
    if ! rustup target list --installed | grep -x "$triple" >/dev/null; then
        # Another build may be adding it at the same moment: accept its result.
        rustup target add "$triple" || rustup target list --installed | grep -x "$triple" >/dev/null
    fi
    # x86_64 is linked by the host's cc on an x86_64 host; cross from elsewhere (an arm64
    # Docker builder) by rust-lld, as aarch64 always is.
    if [ "$triple" = x86_64-unknown-linux-musl ] && [ "$(uname -m)" != x86_64 ]; then
        export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
    fi
    RUSTC_BOOTSTRAP=1 nice cargo build --release --locked --target "$triple" \
        -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size \
        ${cargo_args[@]+"${cargo_args[@]}"}
    bin=${CARGO_TARGET_DIR:-target}/$triple/release/mcpinit
    echo "$bin: $(stat -c %s "$bin") bytes"
    [ -z "$out" ] || cp "$bin" "$out"
done
