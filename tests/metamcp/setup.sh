# What the MetaMCP suites share (sourced, not run): the pinned MetaMCP backend built once
# per commit under the cache, the client SDK, uv, the servers' npx/uvx caches, a private
# Postgres on a loopback port with MetaMCP's migrations in a template database, and the
# seeding of one scenario's database (seed.sql). Used by tests/metamcp/run.sh (MetaMCP in
# a PID namespace) and tests/docker-metamcp/run.sh (MetaMCP in a Docker container).
#
# The sourcing script sets before it calls anything here:
#   repo   the checkout's root          work   its temporary directory (removed by it)
#   say    a function printing one line with the script's prefix
#   SUITE  its name in SKIPPED/FAIL lines (e.g. metamcp-test)
# and calls metamcp_cleanup from its EXIT trap (stops the Postgres started here).
# After metamcp_setup: mm (the built tree), client (the SDK's folder), uvbin (uv's bin
# folder, empty without uv), pg_port, psql_base (psql's connection arguments).
# STUBBORN_DIR: where the servers find the stubborn server (default: this checkout's).

# shellcheck shell=bash
here=$repo/tests/metamcp
COMMIT=250240be7da37e3f21d53eaa66afac5eee775aa5
SHORT=${COMMIT:0:8}
SDK_VERSION=$(sed -n 's/.*"@modelcontextprotocol\/sdk": "\(.*\)".*/\1/p' "$here/package.json")
cache=${MCPINIT_TEST_CACHE:-${HOME:-/root}/.cache/mcpinit-tests}
pg_bin="" pg_port="" pg_data="$work/pg/data"
# pnpm 10 would switch to package.json's packageManager (pnpm@9.0.0) by running `pnpm
# add` through a pnpm it expects on PATH, and fail on a fresh machine: keep the one run.
export npm_config_manage_package_manager_versions=false

skip() {
    if [ "${CI:-}" = true ]; then
        echo "$SUITE: FAIL: $1 (CI=true: the suite must run)" >&2
        exit 1
    fi
    echo "$SUITE: SKIPPED: $1 (with CI=true this is a failure)"
    exit 0
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

metamcp_cleanup() {
    if [ -n "$pg_bin" ] && [ -f "$pg_data/postmaster.pid" ]; then
        as_pg timeout 30 "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || {
            pid=$(head -1 "$pg_data/postmaster.pid" 2>/dev/null || true)
            [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
        }
    fi
}

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
            { echo "$SUITE: FAIL: the snapshot's sha256 does not match" >&2; exit 1; }
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

# uv for the Python server (scripts/uv.sh, shared with scripts/setup.sh); the suite runs
# without that server if uv cannot be had.
# shellcheck source=../../scripts/uv.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/uv.sh"

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
        { cat "$work/initdb.log"; echo "$SUITE: FAIL: initdb" >&2; exit 1; }
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work/pg -c fsync=off" start >/dev/null ||
        { cat "$work/pg/log"; echo "$SUITE: FAIL: Postgres did not start" >&2; exit 1; }
    psql_base=(-h 127.0.0.1 -p "$pg_port" -U metamcp)
    psql -X -q "${psql_base[@]}" -d postgres -c "CREATE DATABASE template_e2e" >/dev/null
    # MetaMCP's own migrations (docker-entrypoint.sh line 26), once, into a template.
    (cd "$mm/apps/backend" &&
        DATABASE_URL="postgresql://metamcp@127.0.0.1:$pg_port/template_e2e" \
            timeout 120 "$(cat "$mm/.pnpm")" exec drizzle-kit migrate) >"$work/migrate.log" 2>&1 ||
        { tail -20 "$work/migrate.log"; echo "$SUITE: FAIL: migrations" >&2; exit 1; }
}

seed() { # DB SERVERS
    local db=$1 list=",$2,"
    psql -X -q "${psql_base[@]}" -d postgres -c "CREATE DATABASE $db TEMPLATE template_e2e" >/dev/null
    psql -X -q "${psql_base[@]}" -d "$db" \
        -v everything2="$([[ $list == *,everything2,* ]] && echo true || echo false)" \
        -v twin="$([[ $list == *,twin,* ]] && echo true || echo false)" \
        -v stubborn="$([[ $list == *,stubborn,* ]] && echo true || echo false)" \
        -v time="$([[ $list == *,time,* ]] && echo true || echo false)" \
        -v stubborn_dir="${STUBBORN_DIR:-$here/stubborn-server}" -v max_attempts="${E2E_MCP_MAX_ATTEMPTS:-}" \
        -f "$here/seed.sql" >/dev/null
}

port_free() { ! ss -Hltn 'sport = :12009' 2>/dev/null | grep -q .; }

# port_freed: waits (2 min at most) until nothing listens on 12009 (a backend stopping).
port_freed() {
    for _ in $(seq 1 60); do
        port_free && return 0
        sleep 2
    done
    return 1
}

# backend_up PID: waits (60 s at most) until the backend answers /health, while PID lives.
backend_up() {
    for _ in $(seq 1 120); do
        curl -fs -m 2 http://127.0.0.1:12009/health >/dev/null 2>&1 && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

# tally OUT RC LABEL: adds scenario.mjs's pass:/fail: lines in OUT to the caller's
# passed/failed; a non-zero exit (RC) without a fail: line is one failure more.
tally() {
    passed=$((passed + $(grep -c '^pass:' "$1" || true)))
    failed=$((failed + $(grep -c '^fail:' "$1" || true)))
    if [ "$2" != 0 ] && ! grep -q '^fail:' "$1"; then
        echo "fail: $3: scenario.mjs exited with $2"
        failed=$((failed + 1))
    fi
}

child_of() { ps -o pid= --ppid "$1" 2>/dev/null | head -1 | tr -d ' ' || true; }


# Everything above, in order; skips (a failure under CI=true) what cannot be had.
metamcp_setup() {
    command -v node >/dev/null || skip "no Node.js"
    setup_metamcp
    mm=$cache/metamcp-$COMMIT
    setup_client
    setup_uv
    warm_caches
    setup_postgres
}
