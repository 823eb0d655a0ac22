#!/usr/bin/env bash
# mcpinit on a MetaMCP-shaped process tree: a fake backend leaks 4 instances of one
# `npm exec` server and 1 of another, plus one whose launcher dies 2 s in, orphaning its server. Every instance reads input once,
# 1 s in (a session that used it, then left it). Watch mcpinit cull the idle duplicates
# down to the newest and the spare (one never seen reading input: MetaMCP hands it to
# the next session), reclaim the server's orphan, then shut down cleanly. Each instance's stdin
# is a socketpair the backend holds, as MetaMCP's are: mcpinit ends an instance the MCP
# way, closing its input first, and one that ignores EOF is made to exit 0.
# Runs in its own PID namespace, so nothing can outlive it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
sudo_unshare=(unshare --pid --fork --mount-proc --kill-child)
[ "$(id -u)" = 0 ] || sudo_unshare=(unshare --user --map-root-user --pid --fork --mount-proc --kill-child)
echo "== mcpinit as PID 1 over tests/fixtures/metamcp/backend.js (about 10 s) =="
MCPINIT_DEDUPE_IDLE=2s MCPINIT_KILL_GRACE=1s MCPINIT_STATE_FILE=/tmp/mcpinit-demo.json \
timeout -s KILL 30 "${sudo_unshare[@]}" target/release/mcpinit -- sh -c '
    node tests/fixtures/metamcp/backend.js --stdio socket --spawn a:4 --spawn b:1 --orphan c:1 --orphan-after 2 --gap-ms 300 --leaf-read-once 1000 >/dev/null &
    sleep 8
    echo "== mcpinit status =="
    target/release/mcpinit status
    kill -TERM $!
    wait
'
