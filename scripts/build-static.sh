#!/usr/bin/env bash
# Builds the static, stripped mcpinit for each target (default: both):
#   target/x86_64-unknown-linux-musl/release/mcpinit
#   target/aarch64-unknown-linux-musl/release/mcpinit
# Usage: scripts/build-static.sh [x86_64|aarch64]...
# The aarch64 binary is cross-linked with rust-lld, which ships with the Rust toolchain
# (.cargo/config.toml): no Debian cross gcc is needed, only `rustup target add`.
set -euo pipefail
cd "$(dirname "$0")/.."
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
for arch in "${arches[@]}"; do
    case "$arch" in
        x86_64 | amd64) triple=x86_64-unknown-linux-musl ;;
        aarch64 | arm64) triple=aarch64-unknown-linux-musl ;;
        *) echo "build-static: unknown architecture $arch (x86_64 or aarch64)" >&2; exit 2 ;;
    esac
    if ! rustup target list --installed | grep -x "$triple" >/dev/null; then
        # Another build may be adding it at the same moment: accept its result.
        rustup target add "$triple" || rustup target list --installed | grep -x "$triple" >/dev/null
    fi
    nice cargo build --release --locked --target "$triple"
    bin=target/$triple/release/mcpinit
    echo "$bin: $(stat -c %s "$bin") bytes"
done
