#!/usr/bin/env bash
# Installs what building and testing mcpinit needs on a fresh Debian machine with Rust:
# the musl target (static binary), util-linux (unshare), Node.js (the MetaMCP-shaped
# fixture) and python3 (signal-mask checks). Idempotent; quiet when all is there.
set -euo pipefail

need_apt=()
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v node >/dev/null || need_apt+=(nodejs)
command -v python3 >/dev/null || need_apt+=(python3)
command -v timeout >/dev/null || need_apt+=(coreutils)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "setup: please install: ${need_apt[*]}" >&2
        exit 1
    fi
fi
if ! rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
fi

# The real-npx governance test runs a real `npm exec @modelcontextprotocol/server-everything`
# from the npx cache; cache it once (the registry can be slow). It exits at stdin's EOF;
# the namespace and the time limit make sure nothing of it outlives this step.
if ! ls -d "${HOME:-/root}"/.npm/_npx/*/node_modules/@modelcontextprotocol/server-everything >/dev/null 2>&1; then
    echo "setup: caching @modelcontextprotocol/server-everything for the real-npx test" >&2
    ns=(unshare --pid --fork --mount-proc --kill-child)
    [ "$(id -u)" = 0 ] || ns=(unshare --user --map-root-user --pid --fork --mount-proc --kill-child)
    timeout -s KILL 300 "${ns[@]}" npx -y @modelcontextprotocol/server-everything </dev/null >/dev/null 2>&1 ||
        echo "setup: could not cache it (registry unreachable?); that one test will say SKIPPED" >&2
fi

# The behaviour test (tests/behaviour.rs) runs real servers too: `npx
# @modelcontextprotocol/server-memory` from the npx cache and `uvx mcp-server-time` with
# the uv tests/metamcp/run.sh uses (scripts/uv.sh). Cached once each, in a namespace
# under a time limit; without them the test leaves that server out and says SKIPPED.
if ! ls -d "${HOME:-/root}"/.npm/_npx/*/node_modules/@modelcontextprotocol/server-memory >/dev/null 2>&1; then
    echo "setup: caching @modelcontextprotocol/server-memory for the behaviour test" >&2
    ns=(unshare --pid --fork --mount-proc --kill-child)
    [ "$(id -u)" = 0 ] || ns=(unshare --user --map-root-user --pid --fork --mount-proc --kill-child)
    timeout -s KILL 300 "${ns[@]}" npx -y @modelcontextprotocol/server-memory </dev/null >/dev/null 2>&1 ||
        echo "setup: could not cache it (registry unreachable?); the behaviour test leaves it out" >&2
fi
say() { echo "setup: $*" >&2; }
# shellcheck source=uv.sh
. "$(dirname "$0")/uv.sh"
setup_uv
if [ -n "$uvbin" ] && [ ! -f "$uv_cache/.warm-mcp-server-time" ]; then
    ns=(unshare --pid --fork --mount-proc --kill-child)
    [ "$(id -u)" = 0 ] || ns=(unshare --user --map-root-user --pid --fork --mount-proc --kill-child)
    if timeout -s KILL 300 "${ns[@]}" "$uvbin/uvx" mcp-server-time@2026.10.19 </dev/null >/dev/null 2>&1; then
        touch "$uv_cache/.warm-mcp-server-time"
    else
        echo "setup: could not cache mcp-server-time; the behaviour test leaves it out" >&2
    fi
fi
