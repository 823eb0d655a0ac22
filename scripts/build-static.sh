#!/usr/bin/env bash
# Builds the static, stripped mcpinit for each architecture (default: both):
#   target/x86_64-unknown-linux-musl/release/mcpinit    (x86_64 or amd64)
#   target/aarch64-unknown-linux-musl/release/mcpinit   (aarch64 or arm64)
# Usage: scripts/build-static.sh [--out FILE] [ARCH]...
#   --out FILE: also copy the binary there (one ARCH only; the Dockerfile's use).
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
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
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
    nice cargo build --release --locked --target "$triple"
    bin=target/$triple/release/mcpinit
    echo "$bin: $(stat -c %s "$bin") bytes"
    [ -z "$out" ] || cp "$bin" "$out"
done
