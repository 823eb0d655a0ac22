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
here=$repo/tests/metamcp

COMMIT=250240be7da37e3f21d53eaa66afac5eee775aa5
SHORT=${COMMIT:0:8}
SDK_VERSION=$(sed -n 's/.*"@modelcontextprotocol\/sdk": "\(.*\)".*/\1/p' "$here/package.json")
cache=${MCPINIT_TEST_CACHE:-${HOME:-/root}/.cache/mcpinit-tests}
bin=${MCPINIT_BIN:-target/x86_64-unknown-linux-musl/release/mcpinit}
scenarios=${METAMCP_SCENARIOS:-healthy leak stubborn twins}
work=$(mktemp -d /tmp/mcpinit-metamcp-test.XXXXXX)
chmod 755 "$work"
pg_bin="" pg_port="" pg_data="$work/pg/data"
ns_pid=""
failed=0
passed=0
started_at=$SECONDS

say() { echo "metamcp-test: $*"; }

skip() {
    if [ "${CI:-}" = true ]; then
        echo "metamcp-test: FAIL: $1 (CI=true: the suite must run)" >&2
        exit 1
    fi
    echo "metamcp-test: SKIPPED: $1 (with CI=true this is a failure)"
    exit 0
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

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
    if [ -n "$pg_bin" ] && [ -f "$pg_data/postmaster.pid" ]; then
        as_pg timeout 30 "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || {
            pid=$(head -1 "$pg_data/postmaster.pid" 2>/dev/null || true)
            [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
        }
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ MetaMCP

# The snapshot sits in ../shared/metamcp/ beside the main checkout; a worktree finds
# the main checkout through git's common dir.
find_snapshot() {
    local dirs=("$repo/../shared/metamcp")
    local common
    if [ -n "${METAMCP_SNAPSHOT_DIR:-}" ]; then
        dirs=("$METAMCP_SNAPSHOT_DIR")
    elif common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
        dirs+=("$(dirname "$common")/../shared/metamcp")
    fi
    for d in "${dirs[@]}"; do
        [ -f "$d/metamcp-$SHORT.tar.gz" ] && { echo "$d"; return 0; }
    done
    return 1
}

fetch_metamcp() { # DEST
    local dest=$1 snap
    if snap=$(find_snapshot); then
        say "MetaMCP $SHORT from the snapshot in $snap"
        (cd "$snap" && sha256sum --quiet -c "metamcp-$SHORT.tar.gz.sha256") ||
            { echo "metamcp-test: FAIL: the snapshot's sha256 does not match" >&2; exit 1; }
        mkdir -p "$dest"
        tar xzf "$snap/metamcp-$SHORT.tar.gz" -C "$dest" --strip-components=1
        return 0
    fi
    say "no snapshot; cloning metatool-ai/metamcp at $SHORT"
    command -v git >/dev/null || return 1
    timeout 300 git clone -q --filter=blob:none "${METAMCP_GIT_URL:-https://github.com/metatool-ai/metamcp}" "$dest" 2>/dev/null &&
        git -C "$dest" -c advice.detachedHead=false checkout -q "$COMMIT" 2>/dev/null
}

# pnpm at the version MetaMCP's own image installs (its Dockerfile); packageManager
# in package.json (pnpm@9.0.0) is older than the image and than what was measured.
pnpm_version() { # TREE
    local v
    v=$(sed -n 's/.*npm install -g pnpm@\([0-9.]*\).*/\1/p' "$1/Dockerfile" | head -1)
    [ -n "$v" ] || v=$(sed -n 's/.*"packageManager": "pnpm@\([0-9.]*\)".*/\1/p' "$1/package.json")
    echo "$v"
}

setup_metamcp() {
    mm=$cache/metamcp-$COMMIT
    [ -f "$mm/.built" ] && return 0
    rm -rf "$mm" "$mm.tmp"
    mkdir -p "$cache"
    fetch_metamcp "$mm.tmp" || { rm -rf "$mm.tmp"; skip "MetaMCP $SHORT: no snapshot and no git clone"; }
    local pv
    pv=$(pnpm_version "$mm.tmp")
    if [ ! -x "$cache/pnpm-$pv/node_modules/.bin/pnpm" ]; then
        say "installing pnpm $pv"
        timeout 300 npm install --silent --no-audit --no-fund --prefix "$cache/pnpm-$pv" "pnpm@$pv" >/dev/null ||
            skip "cannot install pnpm $pv (registry unreachable?)"
    fi
    local pnpm=$cache/pnpm-$pv/node_modules/.bin/pnpm
    say "installing MetaMCP's backend dependencies and building it (once per commit)"
    (
        cd "$mm.tmp"
        timeout 900 "$pnpm" install --silent --frozen-lockfile --filter 'backend...' --store-dir "$cache/pnpm-store" &&
            timeout 300 "$pnpm" --silent --filter @repo/zod-types build &&
            timeout 300 "$pnpm" --silent --filter @repo/trpc build &&
            timeout 300 "$pnpm" --silent --filter backend build
    ) >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; rm -rf "$mm.tmp"; skip "cannot install or build MetaMCP's backend"; }
    echo "$pnpm" >"$mm.tmp/.pnpm"
    touch "$mm.tmp/.built"
    mv "$mm.tmp" "$mm"
}

setup_client() {
    client=$cache/client-sdk-$SDK_VERSION
    [ -d "$client/node_modules/@modelcontextprotocol/sdk" ] && return 0
    say "installing @modelcontextprotocol/sdk $SDK_VERSION for the clients"
    mkdir -p "$client"
    cp "$here/package.json" "$client/"
    (cd "$client" && timeout 300 npm install --silent --no-audit --no-fund >/dev/null) ||
        skip "cannot install @modelcontextprotocol/sdk $SDK_VERSION"
}

# uv for the Python server; the suite runs without that server if uv cannot be had.
# shellcheck source=../../scripts/uv.sh
. "$repo/scripts/uv.sh"

# Servers start from the npx / uv caches; fill them once, each in a namespace under a
# time limit. They exit at their input's end (except the stubborn one: the namespace ends it).
in_namespace() { # SECONDS CMD...
    local limit=$1
    shift
    timeout -s KILL "$limit" unshare --pid --fork --mount-proc --kill-child "$@" </dev/null >/dev/null 2>&1
}

warm_caches() {
    local marker=$cache/.warm-$SDK_VERSION
    [ -f "$marker" ] && return 0
    say "caching the MCP servers (npx, uvx)"
    in_namespace 300 npx -y @modelcontextprotocol/server-everything ||
        skip "cannot cache @modelcontextprotocol/server-everything (registry unreachable?)"
    in_namespace 60 sh -c "npx -y '$here/stubborn-server' & sleep 20; exit 0" || true
    if [ -n "$uvbin" ]; then
        in_namespace 300 "$uvbin/uvx" mcp-server-time@2026.10.19 || { say "cannot cache mcp-server-time: the uvx server is left out"; uvbin=""; }
    fi
    [ -n "$uvbin" ] && touch "$marker"
    return 0
}

# ------------------------------------------------------------------ Postgres

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

find_pg() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && pg_bin=$d
    done
    [ -n "$pg_bin" ]
}

setup_postgres() {
    if ! find_pg; then
        [ "$(id -u)" = 0 ] || skip "no Postgres: please install Debian's postgresql"
        say "installing Debian's postgresql"
        # No service of its own: the package's cluster is neither wanted nor started.
        local own_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
        fi
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 || true
        [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
        find_pg || skip "cannot install postgresql"
    fi
    mkdir -p "$work/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$work/pg"
    pg_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    as_pg "$pg_bin/initdb" -D "$pg_data" -U metamcp --auth=trust -E UTF8 >"$work/initdb.log" 2>&1 ||
        { cat "$work/initdb.log"; echo "metamcp-test: FAIL: initdb" >&2; exit 1; }
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work/pg -c fsync=off" start >/dev/null ||
        { cat "$work/pg/log"; echo "metamcp-test: FAIL: Postgres did not start" >&2; exit 1; }
    psql_base=(-h 127.0.0.1 -p "$pg_port" -U metamcp)
    psql -X -q "${psql_base[@]}" -d postgres -c "CREATE DATABASE template_e2e" >/dev/null
    # MetaMCP's own migrations (docker-entrypoint.sh line 26), once, into a template.
    (cd "$mm/apps/backend" &&
        DATABASE_URL="postgresql://metamcp@127.0.0.1:$pg_port/template_e2e" \
            timeout 120 "$(cat "$mm/.pnpm")" exec drizzle-kit migrate) >"$work/migrate.log" 2>&1 ||
        { tail -20 "$work/migrate.log"; echo "metamcp-test: FAIL: migrations" >&2; exit 1; }
}

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

seed() { # DB SERVERS
    local db=$1 list=",$2,"
    psql -X -q "${psql_base[@]}" -d postgres -c "CREATE DATABASE $db TEMPLATE template_e2e" >/dev/null
    psql -X -q "${psql_base[@]}" -d "$db" \
        -v everything2="$([[ $list == *,everything2,* ]] && echo true || echo false)" \
        -v twin="$([[ $list == *,twin,* ]] && echo true || echo false)" \
        -v stubborn="$([[ $list == *,stubborn,* ]] && echo true || echo false)" \
        -v time="$([[ $list == *,time,* ]] && echo true || echo false)" \
        -v stubborn_dir="$here/stubborn-server" -v max_attempts="${E2E_MCP_MAX_ATTEMPTS:-}" \
        -f "$here/seed.sql" >/dev/null
}

port_free() { ! ss -Hltn 'sport = :12009' 2>/dev/null | grep -q .; }

child_of() { ps -o pid= --ppid "$1" 2>/dev/null | head -1 | tr -d ' ' || true; }

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
    for _ in $(seq 1 60); do port_free && break; sleep 2; done
    port_free || { echo "fail: $name: port 12009 stays busy (another MetaMCP?)"; failed=$((failed + 1)); return; }
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
    local up=""
    for _ in $(seq 1 120); do
        curl -fs -m 2 http://127.0.0.1:12009/health >/dev/null 2>&1 && { up=1; break; }
        kill -0 "$ns_pid" 2>/dev/null || break
        sleep 0.5
    done
    if [ -z "$up" ] || [ -z "$init" ]; then
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
    passed=$((passed + $(grep -c '^pass:' "$work/$name.out" || true)))
    failed=$((failed + $(grep -c '^fail:' "$work/$name.out" || true)))
    if [ "$rc" != 0 ] && ! grep -q '^fail:' "$work/$name.out"; then
        echo "fail: $name: scenario.mjs exited with $rc"
        failed=$((failed + 1))
    fi
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
command -v node >/dev/null || skip "no Node.js"
setup_metamcp
mm=$cache/metamcp-$COMMIT
setup_client
setup_uv
warm_caches
setup_postgres
say "setup done in $((SECONDS - started_at)) s; mcpinit: $bin ($("$bin" --version 2>&1 | head -1))"

# One MetaMCP backend per machine (port 12009 is hard-coded): serialise with other runs.
exec 9>/tmp/mcpinit-metamcp-12009.lock
flock -w 900 9 || { echo "metamcp-test: FAIL: another run holds /tmp/mcpinit-metamcp-12009.lock" >&2; exit 1; }
for s in $scenarios; do
    run_scenario "$s"
done
say "$passed passed, $failed failed in $((SECONDS - started_at)) s"
[ "$failed" = 0 ]
