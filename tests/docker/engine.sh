# The Docker engine for the suites that use one (sourced, not run): a bounded `docker`
# (dk), an engine found running or started here (Debian's docker.io installed when
# missing, dockerd started in the background as root), its removal at the end, and the
# helpers the engine suites share. Used by tests/docker/run.sh and
# tests/docker-metamcp/run.sh; each holds /tmp/engine.lock (fd 9) while it runs.
#
# The sourcing script sets: work (its temporary directory), say (a function printing
# one line with its prefix), SUITE (its name in SKIP/FAIL lines), LABEL (the label of
# every container it starts); and calls engine_cleanup from its EXIT trap.

# shellcheck shell=bash
dockerd_pid=""

# Every docker call is bounded: a hung engine must not hang the suite.
# Never hands the engine lock (fd 9) to what it starts.
dk() { timeout 60 docker "$@" 9>&-; }

# Removes every container labelled $LABEL, the dangling test images, and the dockerd
# this script started.
engine_cleanup() {
    local ids
    ids=$(timeout 20 docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086 # one id per word
        timeout 60 docker rm -f $ids >/dev/null 2>&1 || true
    fi
    # Rebuilt images leave their predecessors dangling; drop those, keep the cache.
    timeout 60 docker image prune -f --filter label=mcpinit-test >/dev/null 2>&1 || true
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        say "stopping the dockerd this script started (pid $dockerd_pid)"
        kill -TERM "$dockerd_pid" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 "$dockerd_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
}

no_engine() {
    if [ "${CI:-}" = true ]; then
        echo "$SUITE: FAIL: no Docker engine: $1" >&2
        exit 1
    fi
    echo "$SUITE: SKIP: no Docker engine: $1 (in CI, with CI=true, this is a failure)"
    exit 0
}

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# install_packages PACKAGE...: Debian packages, as root; nothing to do without arguments.
install_packages() {
    [ $# -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || { say "please install: $*"; return 1; }
    say "installing $*"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

engine_up() { command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; }

ensure_engine() {
    engine_up && return 0
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        install_packages docker.io || no_engine "installing Debian's docker.io failed"
        engine_up && return 0 # its package scripts may have started it
    fi
    [ "$(id -u)" = 0 ] || no_engine "dockerd is not running, and starting it needs root"
    say "starting dockerd in the background"
    dockerd >"$work/dockerd.log" 2>&1 9>&- &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
        engine_up && return 0
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.5
    done
    tail -n 20 "$work/dockerd.log" | sed 's/^/    dockerd: /'
    if kill -0 "$dockerd_pid" 2>/dev/null; then
        no_engine "dockerd did not answer within 30 s (its log is above)"
    fi
    no_engine "dockerd exited (its log is above)"
}

# wait_for SECONDS COMMAND...: polls every 200 ms until COMMAND succeeds.
wait_for() {
    local tries=$(($1 * 5))
    shift
    while [ "$tries" -gt 0 ]; do
        "$@" 2>/dev/null && return 0
        tries=$((tries - 1))
        sleep 0.2
    done
    return 1
}

# The container's pids cgroup on this host (cgroup v1 or v2, cgroupfs or systemd driver).
pids_cgroup() {
    local id dir
    id=$(dk inspect -f '{{.Id}}' "$1")
    for dir in "/sys/fs/cgroup/pids/docker/$id" "/sys/fs/cgroup/docker/$id" \
        "/sys/fs/cgroup/pids/system.slice/docker-$id.scope" \
        "/sys/fs/cgroup/system.slice/docker-$id.scope"; do
        [ -r "$dir/pids.events" ] && { echo "$dir"; return 0; }
    done
    return 1
}

# copy_node DEST: node with exactly the shared libraries it loads, at the paths it loads
# them from, under DEST (DEST/usr/bin/node, DEST/lib/…), for a FROM-scratch image.
copy_node() {
    local dest=$1 node lib
    node=$(readlink -f "$(command -v node)")
    mkdir -p "$dest/usr/bin"
    cp "$node" "$dest/usr/bin/node"
    for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done
}
