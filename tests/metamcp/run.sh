#!/usr/bin/env bash
# The real MetaMCP (commit 250240be, backend only) under mcpinit, with real MCP SDK
# clients over Streamable HTTP. Scenarios (scenario.mjs says what each asserts):
#   healthy   several sessions in use, mcpinit's defaults: nothing ended, no failed call
#   leak      sessions opened and abandoned while others stay in use: bounded under the
#             cap, no failed call, no ERROR; every new session finds a live spare; with
#             a Python server through uvx when uv can be had
#   stubborn  a session MetaMCP closed whose server ignores SIGTERM and EOF: reclaimed
#   twins     two servers with one command line (their environments differ): each keeps
#             a live spare, though only one of them is the newest instance of the key
#
# Sets itself up on a fresh machine, cached under ~/.cache/mcpinit-tests keyed by commit:
# MetaMCP from the pinned snapshot in ../shared/metamcp/ (sha256 checked) or a git clone
# of the pinned commit, pnpm at the version MetaMCP's Dockerfile installs, the backend's
# dependencies only, the client SDK, uv; a private Postgres from Debian's package in a
# temporary directory on a loopback port, started and stopped here. When MetaMCP cannot
# be had it says SKIPPED, which under CI=true is a failure.
#
# Each scenario runs `mcpinit -- sh entrypoint.sh` as PID 1 of its own PID namespace
# under a time limit; the namespace is killed at the end of the scenario.
#
# Environment: MCPINIT_BIN (default: the static build), METAMCP_SCENARIOS (default:
# "healthy leak stubborn twins"), E2E_ENV_<SCENARIO> (extra VAR=value words for mcpinit in
# that scenario, e.g. E2E_ENV_LEAK="MCPINIT_DEDUPE_IDLE=20s"), E2E_NO_UVX=1,
# E2E_MCP_MAX_ATTEMPTS (MetaMCP's setting, seeded; default: unset, MetaMCP's 1), and the
# scenarios' durations E2E_HEALTHY_SECONDS, E2E_LEAK_SECONDS, E2E_LEAK_EVERY,
# E2E_LEAK_TAIL, E2E_STUBBORN_WAIT, E2E_TWINS_SECONDS (seconds; see scenario.mjs),
# METAMCP_SNAPSHOT_DIR (where the snapshot is, instead of ../shared/metamcp),
# METAMCP_GIT_URL (what to clone without it), MCPINIT_TEST_CACHE (the cache's place).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
bin=${MCPINIT_BIN:-target/x86_64-unknown-linux-musl/release/mcpinit}
scenarios=${METAMCP_SCENARIOS:-healthy leak stubborn twins}
work=$(mktemp -d /tmp/mcpinit-metamcp-test.XXXXXX)
chmod 755 "$work"
ns_pid=""
failed=0
passed=0
started_at=$SECONDS

SUITE=metamcp-test
say() { echo "$SUITE: $*"; }
# shellcheck source=tests/metamcp/setup.sh
. "$repo/tests/metamcp/setup.sh"

stop_namespace() {
    [ -n "$ns_pid" ] || return 0
    # timeout -> unshare -> PID 1 of the namespace. Killing unshare makes it take its
    # child (--kill-child), and with PID 1 goes every process of the namespace; killing
    # timeout alone would leave unshare running.
    local u
    u=$(child_of "$ns_pid")
    [ -n "$u" ] && kill -KILL "$u" 2>/dev/null
    kill -KILL "$ns_pid" 2>/dev/null || true
    wait "$ns_pid" 2>/dev/null || true
    ns_pid=""
}

cleanup() {
    stop_namespace
    metamcp_cleanup
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ scenarios

# SERVERS and mcpinit's settings per scenario. A short idle time where a scenario has
# to show reclaiming within a minute or two, defaults everywhere else. Not shorter than
# 30 s: on a loaded machine `npm exec` may take 15 s and more before it starts its
# server, and an instance that has not started reads no input.
servers_of() {
    case $1 in
        healthy) echo "everything,everything2" ;;
        leak) if [ -n "$uvbin" ]; then echo "everything,time"; else echo "everything"; fi ;;
        stubborn) echo "everything,stubborn" ;;
        twins) echo "everything,twin" ;;
    esac
}

mcpinit_env_of() {
    case $1 in
        healthy) echo "" ;;
        leak) echo "MCPINIT_MAX_PROCS=64 MCPINIT_DEDUPE_IDLE=30s" ;;
        stubborn) echo "" ;;
        twins) echo "MCPINIT_DEDUPE_IDLE=30s" ;;
    esac
}

run_scenario() { # NAME
    local name=$1 servers extra var db log init="" rc=0
    servers=$(servers_of "$name")
    [ -n "$servers" ] || { echo "fail: unknown scenario $name"; failed=$((failed + 1)); return; }
    var=E2E_ENV_$(echo "$name" | tr '[:lower:]' '[:upper:]')
    extra=$(echo "$(mcpinit_env_of "$name") ${!var:-}" | xargs)
    db=e2e_$name
    seed "$db" "$servers"
    log=$work/$name.log
    mkdir -p "$work/$name"
    say "scenario $name: servers $servers; mcpinit ${extra:-(defaults)}"
    port_freed || { echo "fail: $name: port 12009 stays busy (another MetaMCP?)"; failed=$((failed + 1)); return; }
    # shellcheck disable=SC2086 # extra: VAR=value words
    (cd "$work/$name" && exec timeout -s KILL 400 unshare --pid --fork --mount-proc --kill-child \
        env MCPINIT_LOG_FORMAT=json MCPINIT_STATE_FILE="$work/$name/mcpinit.json" $extra \
        DATABASE_URL="postgresql://metamcp@127.0.0.1:$pg_port/$db" NODE_ENV=production LOG_LEVEL=all \
        APP_URL=http://localhost:12008 NEXT_PUBLIC_APP_URL=http://localhost:12008 \
        BETTER_AUTH_SECRET=mcpinit-e2e-secret-of-at-least-32-characters \
        TRANSFORM_LOCALHOST_TO_DOCKER_INTERNAL=false BOOTSTRAP_ENABLE=false \
        METAMCP_DIR="$mm" PATH="${uvbin:+$uvbin:}$PATH" \
        "$bin" -- sh "$here/entrypoint.sh") >"$log" 2>&1 &
    ns_pid=$!
    # timeout -> unshare -> mcpinit (PID 1 inside)
    for _ in $(seq 1 50); do
        local u
        u=$(child_of "$ns_pid") && [ -n "$u" ] && init=$(child_of "$u") && [ -n "$init" ] && break
        sleep 0.1
    done
    if [ -z "$init" ] || ! backend_up "$ns_pid"; then
        echo "fail: $name: the backend did not come up"
        tail -30 "$log"
        failed=$((failed + 1))
        stop_namespace
        return
    fi
    CLIENT_MODULES=$client INIT_PID=$init NS_LOG=$log SERVERS=$servers E2E_STATE_FILE="$work/$name/mcpinit.json" \
        PSQL_ARGS="[\"-h\",\"127.0.0.1\",\"-p\",\"$pg_port\",\"-U\",\"metamcp\",\"-d\",\"$db\"]" \
        env $extra timeout -s KILL 420 node "$here/scenario.mjs" "$name" >"$work/$name.out" 2>&1 || rc=$?
    # A graceful stop first: mcpinit forwards SIGTERM to the script, which stops the
    # backend; then the namespace goes whatever is left in it.
    kill -TERM "$init" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$ns_pid" 2>/dev/null || break; sleep 0.5; done
    stop_namespace
    cat "$work/$name.out"
    grep -h '"event":"shutdown"' "$log" | sed 's/^/    mcpinit: /' || true
    tally "$work/$name.out" "$rc" "$name"
    if [ "$rc" != 0 ]; then
        # Kept for a look afterwards: the namespace's whole output (mcpinit and MetaMCP).
        local keep=${E2E_LOG_DIR:-/tmp}/mcpinit-metamcp-$name.log
        cp "$log" "$keep" 2>/dev/null && say "$name: the whole log is in $keep"
        say "$name: mcpinit's actions and MetaMCP's crash lines:"
        grep -hE '"event":"(start|terminate|escalate|stuck)"|Process crashed|marked as ERROR' "$log" | head -40 | sed 's/^/    /' || true
    fi
}

# ------------------------------------------------------------------ main

[ -x "$bin" ] || { echo "metamcp-test: FAIL: no mcpinit binary at $bin (scripts/build-static.sh, or set MCPINIT_BIN)" >&2; exit 1; }
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
metamcp_setup
say "setup done in $((SECONDS - started_at)) s; mcpinit: $bin ($("$bin" --version 2>&1 | head -1))"

# One MetaMCP backend per machine (port 12009 is hard-coded): serialise with other runs.
exec 9>/tmp/mcpinit-metamcp-12009.lock
flock -w 900 9 || { echo "metamcp-test: FAIL: another run holds /tmp/mcpinit-metamcp-12009.lock" >&2; exit 1; }
for s in $scenarios; do
    run_scenario "$s"
done
say "$passed passed, $failed failed in $((SECONDS - started_at)) s"
[ "$failed" = 0 ]
