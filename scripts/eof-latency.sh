#!/usr/bin/env bash
# How long the real server-everything (npx, from the npx cache) takes to exit once
# mcpinit closes its input: the time from mcpinit's `terminate` line to the exit its
# parent (tests/fixtures/eof/parent.py, MetaMCP's stand-in) sees. Each run is PID 1 of its
# own PID namespace under a timeout.   scripts/eof-latency.sh [RUNS] [MCPINIT]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=${2:-target/debug/mcpinit}
py=$(python3 -c 'import sys; print(sys.executable)')
ns=(unshare --pid --fork --mount-proc --kill-child)
[ "$(id -u)" = 0 ] || ns=(unshare --user --map-root-user --pid --fork --mount-proc --kill-child)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for _ in $(seq 1 "$runs"); do
    npm_config_prefer_offline=true timeout -s KILL 120 "${ns[@]}" "$bin" --max-procs 6 -- \
        "$py" tests/fixtures/eof/parent.py --mcp --grow 4 --linger 0.3 -- \
        npx -y @modelcontextprotocol/server-everything >"$log" 2>/dev/null || true
    python3 - "$log" <<'PY'
import datetime, json, sys
start = exit_ = ended = None
for line in open(sys.argv[1]):
    if " mcpinit " in line and "terminating " in line:
        t = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
        start = t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
    elif line.startswith('{"event": "exit"'):
        exit_ = json.loads(line)
    elif " is gone, ended " in line:
        ended = line.split("ended=")[1].split()[0]
if start is None or exit_ is None:
    print("no measurement (see the run's output)")
else:
    how = f"code {exit_['code']}" if "code" in exit_ else f"signal {exit_['signal']}"
    print(f"exit {round(exit_['t'] - start)} ms after the input was closed ({how}, ended={ended})")
PY
done
