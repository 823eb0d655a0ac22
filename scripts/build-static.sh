#!/usr/bin/env bash
# Builds the static, stripped mcpinit: target/x86_64-unknown-linux-musl/release/mcpinit
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -q x86_64-unknown-linux-musl \
    || rustup target add x86_64-unknown-linux-musl
cargo build --release --locked --target x86_64-unknown-linux-musl
bin=target/x86_64-unknown-linux-musl/release/mcpinit
echo "$bin: $(stat -c %s "$bin") bytes"
