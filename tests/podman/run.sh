#!/usr/bin/env bash
# mcpinit in a real podman container (Debian's podman, rootful), beside tests/docker/run.sh:
# exit codes, `podman stop` of a child ignoring SIGTERM (against `podman run --init`,
# i.e. catatonit, for contrast), `podman exec … /mcpinit status`, and a leak under
# `--pids-limit` held by mcpinit's cap (again against --init).
#
# Installs Debian's podman (as root) when it is missing. When podman cannot run a
# container, it says so and fails in CI (CI=true) or skips locally. The image is the
# Docker test's (tests/docker/Dockerfile, FROM scratch from local files), built by podman.
# Holds /tmp/engine.lock for its whole run, so it never fights dockerd (or another
# helper's podman) over cgroups and iptables. Every container it starts is removed at
# the end, every step has a timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=localhost/mcpinit-test:podman
LABEL="mcpinit-test=podman-$$"
BIN=target/x86_64-unknown-linux-musl/release/mcpinit
work=$(mktemp -d /tmp/mcpinit-podman-test.XXXXXX)
passed=0
failed=0
started_at=$SECONDS

say() { echo "podman-test: $*"; }
note() { echo "    $*"; }
pass() { echo "pass: $*"; passed=$((passed + 1)); }
fail() { echo "fail: $*"; failed=$((failed + 1)); }

# This VM's podman asks runc for RLIMIT_NOFILE/NPROC above what the session may set
# (no CAP_SYS_RESOURCE here), and runc fails with "error setting rlimit type 7/6".
# Explicit limits below the current hard ones avoid that; they change nothing tested.
nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 16384 ]; then nofile=16384; fi
ULIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=8192:8192)

# Every podman call is bounded, and never hands the engine lock (fd 9) to conmon.
pd() { timeout 60 podman "$@" 9>&-; }

cleanup() {
    local ids
    ids=$(timeout 20 podman ps -aq --filter "label=$LABEL" 2>/dev/null 9>&- || true)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086 # one id per word
        timeout 60 podman rm -f -t 0 $ids >/dev/null 2>&1 9>&- || true
    fi
    timeout 60 podman image prune -f --filter label=mcpinit-test >/dev/null 2>&1 9>&- || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

no_engine() {
    if [ "${CI:-}" = true ]; then
        echo "podman-test: FAIL: no usable podman: $1" >&2
        exit 1
    fi
    echo "podman-test: SKIP: no usable podman: $1 (in CI, with CI=true, this is a failure)"
    exit 0
}

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

install_packages() {
    [ $# -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || { say "please install: $*"; return 1; }
    say "installing $*"
    timeout 120 apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >/dev/null
}

ensure_engine() {
    [ "$(id -u)" = 0 ] || no_engine "this test runs podman rootful, as root"
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    installed catatonit || missing+=(catatonit) # podman run --init
    installed busybox-static || missing+=(busybox-static)
    command -v node >/dev/null || missing+=(nodejs)
    install_packages "${missing[@]}" || no_engine "installing ${missing[*]} failed"
    timeout 60 podman info >"$work/info.log" 2>&1 9>&- \
        || { sed 's/^/    podman: /' "$work/info.log" | tail -n 20; no_engine "podman info failed"; }
}

# ---------------------------------------------------------------- the image

# The Docker test's build context, gathered the same way (see tests/docker/run.sh).
gather_context() {
    local ctx=$work/context node lib
    mkdir -p "$ctx/node/usr/bin" "$ctx/metamcp"
    cp "$BIN" "$ctx/mcpinit"
    cp /bin/busybox "$ctx/busybox"
    cp tests/docker/leak.sh "$ctx/"
    cp tests/fixtures/metamcp/*.js "$ctx/metamcp/"
    node=$(readlink -f "$(command -v node)")
    cp "$node" "$ctx/node/usr/bin/node"
    for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
        mkdir -p "$ctx/node$(dirname "$lib")"
        cp -L "$lib" "$ctx/node$lib"
    done
}

build_image() {
    scripts/build-static.sh >"$work/build.log" 2>&1 \
        || { cat "$work/build.log"; say "building the static mcpinit failed"; exit 1; }
    gather_context
    # docker format keeps the Dockerfile's HEALTHCHECK without a warning; the containers
    # run with --no-healthcheck, as podman runs health checks through systemd timers,
    # and there is no systemd here
    if ! timeout 300 podman build -q --format docker --network none "${ULIMITS[@]}" \
        -t "$IMAGE" -f tests/docker/Dockerfile "$work/context" >"$work/image.log" 2>&1 9>&-; then
        cat "$work/image.log"
        no_engine "podman build failed (its output is above)"
    fi
}

# ---------------------------------------------------------------- helpers

start() {
    local name="mcpinit-podman-$$-$1"
    shift
    pd run -d --name "$name" --label "$LABEL" --network none --no-healthcheck "${ULIMITS[@]}" "$@" >/dev/null
    echo "$name"
}

run_fg() { pd run --rm --label "$LABEL" --network none --no-healthcheck "${ULIMITS[@]}" "$@"; }

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

logs() { pd logs "$1" 2>&1; }
logs_have() { local text; text=$(logs "$1") && grep -q -- "$2" <<<"$text"; }
exit_code() { pd inspect -f '{{.State.ExitCode}}' "$1"; }
is_running() { [ "$(pd inspect -f '{{.State.Running}}' "$1")" = true ]; }
now_ms() { date +%s%3N; }
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# The container's pids cgroup (cgroup v1 or v2, podman's cgroupfs or systemd manager).
pids_cgroup() {
    local id dir
    id=$(pd inspect -f '{{.Id}}' "$1")
    for dir in "/sys/fs/cgroup/pids/libpod_parent/libpod-$id" "/sys/fs/cgroup/libpod_parent/libpod-$id" \
        "/sys/fs/cgroup/pids/machine.slice/libpod-$id.scope" "/sys/fs/cgroup/machine.slice/libpod-$id.scope"; do
        [ -r "$dir/pids.events" ] && { echo "$dir"; return 0; }
    done
    return 1
}

# watch_pids DIR SECONDS: peak process count and forks refused at pids.max, every 50 ms.
watch_pids() {
    local dir=$1 samples=$(($2 * 20)) peak=0 count refused=0 seen
    while [ "$samples" -gt 0 ] && read -r count 2>/dev/null <"$dir/pids.current" \
        && read -r _ seen 2>/dev/null <"$dir/pids.events"; do
        [ "$count" -gt "$peak" ] && peak=$count
        refused=$seen
        samples=$((samples - 1))
        sleep 0.05
    done
    echo "$peak $refused"
}

scenario() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# ---------------------------------------------------------------- scenarios

exit_status() {
    local code=0 signal=0 missing=0
    run_fg "$IMAGE" sh -c 'exit 7' >/dev/null || code=$?
    run_fg "$IMAGE" sh -c 'kill -KILL $$' >/dev/null || signal=$?
    run_fg "$IMAGE" /no/such/program >/dev/null 2>&1 || missing=$?
    note "podman run exits with: 'exit 7' -> $code, killed by SIGKILL -> $signal, not found -> $missing"
    [ "$code" = 7 ] && [ "$signal" = 137 ] && [ "$missing" = 127 ] && return 0
    note "expected 7, 137 and 127"
    return 1
}

podman_stop() {
    local t0
    t0=$(now_ms)
    # podman warns on stderr when it has to SIGKILL: expected for --init, kept aside
    timeout 60 podman stop -t 10 "$1" >/dev/null 2>>"$work/stop.log" 9>&-
    echo $(($(now_ms) - t0))
}

stop_ignoring_child() {
    local script='trap "" TERM; echo child-ready; while :; do sleep 0.2; done'
    local c t ms code init_ms init_code stopping
    c=$(start stop-ignore -e MCPINIT_STOP_GRACE=3s "$IMAGE" sh -c "$script")
    # the contrast: the same child under podman's own init (catatonit), stopped at once
    t=$(start stop-ignore-init --init --entrypoint sh "$IMAGE" -c "$script")
    if ! wait_for 10 logs_have "$c" child-ready || ! wait_for 10 logs_have "$t" child-ready; then
        note "the children never started"
        return 1
    fi
    podman_stop "$t" >"$work/init-stop-ms" &
    stopping=$!
    ms=$(podman_stop "$c")
    code=$(exit_code "$c")
    wait "$stopping"
    init_ms=$(cat "$work/init-stop-ms")
    init_code=$(exit_code "$t")
    note "child ignores SIGTERM: podman stop -t 10 took $ms ms with MCPINIT_STOP_GRACE=3s" \
        "(exit $code), $init_ms ms with --init/catatonit (exit $init_code)"
    [ "$ms" -ge 2500 ] && [ "$ms" -le 6000 ] && [ "$code" = 137 ] && [ "$init_ms" -ge 9500 ] && return 0
    note "expected about 3 s and exit 137 (SIGKILL) with mcpinit, podman's 10 s with --init"
    return 1
}

stop_graceful_child() {
    local c ms code
    c=$(start stop-graceful "$IMAGE" \
        sh -c 'trap "echo child stopping gracefully; exit 0" TERM; echo child-ready; while :; do sleep 0.2; done')
    wait_for 10 logs_have "$c" child-ready || { note "the child never started"; return 1; }
    ms=$(podman_stop "$c")
    code=$(exit_code "$c")
    note "child handles SIGTERM: podman stop took $ms ms, exit $code"
    [ "$ms" -le 3000 ] && [ "$code" = 0 ] && wait_for 5 logs_have "$c" "child stopping gracefully" \
        && return 0
    note "expected its TERM trap to run, exit 0, well under 3 s"
    return 1
}

pids_limit_mcpinit() {
    local c dir peak refused state cap_kills
    c=$(start leak-mcpinit --pids-limit 64 -e MCPINIT_MAX_PROCS=40 -e MCPINIT_KILL_GRACE=1s \
        "$IMAGE" sh /test/leak.sh)
    dir=$(pids_cgroup "$c") || { note "cannot find the container's pids cgroup"; return 1; }
    read -r peak refused <<<"$(watch_pids "$dir" 10)"
    state=$(pd exec "$c" /mcpinit status --json) || { note "podman exec … status --json failed"; return 1; }
    cap_kills=$(json 'd["counters"]["terminated"]["cap"]' <<<"$state")
    note "10 s of leaking 10 processes/s: cgroup peak $peak of 64, forks refused $refused;" \
        "mcpinit: $(json 'd["live"]' <<<"$state") live now, peak $(json 'd["counters"]["peak_procs"]' <<<"$state")," \
        "$cap_kills units terminated for the cap, saw pids.max $(json 'd["cgroup"]["pids_max"]' <<<"$state")"
    [ "$refused" = 0 ] && [ "$peak" -lt 64 ] && [ "$cap_kills" -gt 0 ] && is_running "$c" && return 0
    note "expected no refused fork, a peak under 64, cap terminations, and the workload still running"
    return 1
}

status_shows_tree() {
    local c="mcpinit-podman-$$-leak-mcpinit" text
    text=$(pd exec "$c" /mcpinit status) || { note "podman exec … /mcpinit status failed"; return 1; }
    note "podman exec … /mcpinit status: $(wc -l <<<"$text") lines," \
        "$(grep -c 'sleep 1000' <<<"$text") mention 'sleep 1000'; first: $(head -n 1 <<<"$text" | cut -c1-80)"
    grep -q 'sh /test/leak.sh' <<<"$text" && grep -q 'sleep 1000' <<<"$text" \
        && logs_have "$c" 'terminating cap unit' && return 0
    note "expected the main child and its leaked units, and 'terminating cap unit' in podman logs"
    return 1
}

pids_limit_init() {
    local c dir peak refused
    c=$(start leak-init --pids-limit 64 --init --entrypoint sh "$IMAGE" /test/leak.sh)
    dir=$(pids_cgroup "$c") || { note "cannot find the container's pids cgroup"; return 1; }
    read -r peak refused <<<"$(watch_pids "$dir" 8)"
    note "same leak with --init (catatonit): cgroup peak $peak of 64, forks refused $refused"
    is_running "$c" || note "the workload died of it: container exited with $(exit_code "$c")"
    [ "$refused" -gt 0 ] && return 0
    note "expected the kernel to refuse forks at the pids limit"
    return 1
}

# ---------------------------------------------------------------- main

# One engine user at a time: dockerd and podman fight over iptables and cgroups.
exec 9>/tmp/engine.lock
flock -w 1200 9 || { say "FAIL: /tmp/engine.lock still held after 20 min"; exit 1; }

ensure_engine
say "engine: podman $(pd version --format '{{.Server.Version}}'), runtime" \
    "$(pd info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}' | head -n 1)," \
    "cgroup $(pd info --format '{{.Host.CgroupsVersion}} {{.Host.CgroupManager}}')"
build_image
say "image $IMAGE built FROM scratch ($(pd image inspect -f '{{.Size}}' "$IMAGE") bytes)"

scenario "exit status: podman run exits with the child's code" exit_status
scenario "podman stop: a child ignoring SIGTERM is killed after MCPINIT_STOP_GRACE, not 10 s" stop_ignoring_child
scenario "podman stop: a child handling SIGTERM stops gracefully" stop_graceful_child
scenario "--pids-limit 64: mcpinit keeps a leak under its cap of 40" pids_limit_mcpinit
scenario "podman exec … /mcpinit status shows the tree" status_shows_tree
pd rm -f -t 0 "mcpinit-podman-$$-leak-mcpinit" >/dev/null # done with it: stop the leak
scenario "--pids-limit 64 with --init (catatonit): the leak hits the kernel's limit" pids_limit_init

say "took $((SECONDS - started_at)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
