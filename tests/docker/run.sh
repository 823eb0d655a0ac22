#!/usr/bin/env bash
# mcpinit in a real Docker container, checked the way a user would see it: exit codes,
# Ctrl-C, `docker stop`, `--pids-limit` (against Docker's own `--init` for contrast),
# `docker logs`, `docker exec … /mcpinit status`, HEALTHCHECK, and `--user 1001`.
#
# Needs a Docker engine. When `docker info` fails, installs Debian's docker.io (as
# root) and starts dockerd in the background, and stops it again at the end. When no
# engine can be had, it says so and fails in CI (CI=true) or skips locally.
# Every container it starts is removed at the end, every step has a timeout.
# Holds /tmp/engine.lock for its whole run, so it never fights podman (or another
# helper's dockerd) over cgroups and iptables.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=mcpinit-test:local
LABEL="mcpinit-test=$$"
BIN=target/x86_64-unknown-linux-musl/release/mcpinit
work=$(mktemp -d /tmp/mcpinit-docker-test.XXXXXX)
passed=0
failed=0
started_at=$SECONDS

SUITE=docker-test
say() { echo "$SUITE: $*"; }
# A measured figure or the reason for a failure, under the scenario it belongs to.
note() { echo "    $*"; }
pass() { echo "pass: $*"; passed=$((passed + 1)); }
fail() { echo "fail: $*"; failed=$((failed + 1)); }
# shellcheck source=tests/docker/engine.sh
. tests/docker/engine.sh

cleanup() {
    engine_cleanup
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the image

# The build context: everything the test Dockerfile copies, gathered from this machine.
gather_context() {
    local ctx=$work/context
    mkdir -p "$ctx/metamcp"
    cp "$BIN" "$ctx/mcpinit"
    cp /bin/busybox "$ctx/busybox"
    cp tests/docker/leak.sh "$ctx/"
    cp tests/fixtures/metamcp/*.js "$ctx/metamcp/"
    cp tests/fixtures/eof/parent.js tests/fixtures/eof/server.js "$ctx/metamcp/"
    copy_node "$ctx/node"
}

build_image() {
    scripts/build-static.sh >"$work/build.log" 2>&1 \
        || { cat "$work/build.log"; say "building the static mcpinit failed"; exit 1; }
    local missing=()
    installed busybox-static || missing+=(busybox-static) # /bin/busybox must be the static one
    command -v node >/dev/null || missing+=(nodejs)
    command -v python3 >/dev/null || missing+=(python3)
    install_packages "${missing[@]}" || { say "cannot go on without them"; exit 1; }
    gather_context
    if ! dk build -q --network none -t "$IMAGE" -f tests/docker/Dockerfile "$work/context" \
        >"$work/image.log" 2>&1; then
        cat "$work/image.log"
        say "building the test image failed"
        exit 1
    fi
}

# ---------------------------------------------------------------- helpers

# start NAME [docker run options] IMAGE [COMMAND...]: a detached test container.
start() {
    local name="mcpinit-test-$$-$1"
    shift
    dk run -d --name "$name" --label "$LABEL" --network none "$@" >/dev/null
    echo "$name"
}

# run_fg [docker run options] IMAGE [COMMAND...]: a foreground `docker run --rm`;
# returns its exit status.
run_fg() { dk run --rm --label "$LABEL" --network none "$@"; }


# Whole logs first, then grep: with pipefail, `docker logs | grep -q` can fail when grep
# stops reading early and docker gets SIGPIPE.
logs() { dk logs "$1" 2>&1; }
logs_have() { local text; text=$(logs "$1") && grep -q -- "$2" <<<"$text"; }
duplicates_culled() { [ "$(logs "$1" | grep -c 'terminating duplicate unit')" -ge "$2" ]; }
exit_code() { dk inspect -f '{{.State.ExitCode}}' "$1"; }
is_running() { [ "$(dk inspect -f '{{.State.Running}}' "$1")" = true ]; }
is_healthy() { [ "$(dk inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; }
now_ms() { date +%s%3N; }

# json EXPR: evaluates a Python expression over the JSON document on stdin (as `d`).
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }


# watch_pids DIR SECONDS: samples the cgroup every 50 ms; prints the peak process count
# and how many forks the kernel refused at pids.max (pids.events "max N"), as last seen
# (the cgroup goes away if the container dies).
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

# Closing a server's input (pidfd_getfd + shutdown) under Docker's seccomp profile.
# /app/parent.js starts a stdio server with a socketpair stdin, as MetaMCP does, and says
# how it ended; the server grows past MCPINIT_MAX_PROCS=4 once ready, so mcpinit ends it.
# eof_run [docker run options]: the run's output.
eof_run() {
    run_fg "$@" -e MCPINIT_MAX_PROCS=4 -e MCPINIT_KILL_GRACE=1s "$IMAGE" node /app/parent.js 3 2>&1
}

# The default profile refuses pidfd_getfd without CAP_SYS_PTRACE and allows ptrace of a
# descendant: mcpinit says at start that it closes inputs through ptrace, and the server
# reads EOF and exits 0, no signal sent, as root and as user 1001.
eof_default_seccomp() {
    local out user ok=0
    for user in 0 1001; do
        out=$(eof_run --user "$user") || true
        note "--user $user: $(grep -m1 -o 'inputs are closed through [a-z]*' <<<"$out"); $(grep -m1 '"event":"exit"' <<<"$out"); $(grep -m1 -o 'ended=[a-z]* after_ms=[0-9]*' <<<"$out")"
        if ! grep -q 'inputs are closed through ptrace.*cause\|close=ptrace' <<<"$out" \
            || ! grep -q '"event":"exit".*"code":0' <<<"$out" || ! grep -q 'ended=eof' <<<"$out" \
            || grep -q 'cannot close the input\|sending SIG' <<<"$out"; then
            note "expected close=ptrace at start, exit code 0 and ended=eof with no signal; got:"
            note "$out"
            ok=1
        fi
    done
    return $ok
}

# With CAP_SYS_PTRACE (cap_add: [SYS_PTRACE]), as root and as user 1001: the server reads
# EOF and exits 0, no signal sent.
eof_with_sys_ptrace() {
    local out user ok=0
    for user in 0 1001; do
        out=$(eof_run --cap-add SYS_PTRACE --user "$user") || true
        note "--user $user: $(grep -m1 '"event":"exit"' <<<"$out"); $(grep -m1 -o 'ended=[a-z]* after_ms=[0-9]*' <<<"$out")"
        if ! grep -q '"event":"exit".*"code":0' <<<"$out" || ! grep -q 'ended=eof' <<<"$out" \
            || grep -q 'cannot close the input\|cannot be closed here\|sending SIG' <<<"$out"; then
            note "expected exit code 0 and ended=eof with no signal; got:"
            note "$out"
            ok=1
        fi
    done
    return $ok
}

# ---------------------------------------------------------------- scenarios
# Each returns non-zero with a note saying what it expected; `scenario` counts.

scenario() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

exit_status() {
    local code signal missing
    code=0 signal=0 missing=0
    run_fg "$IMAGE" sh -c 'exit 7' >/dev/null || code=$?
    run_fg "$IMAGE" sh -c 'kill -KILL $$' >/dev/null || signal=$?
    run_fg "$IMAGE" /no/such/program >/dev/null 2>&1 || missing=$?
    note "docker run exits with: 'exit 7' -> $code, killed by SIGKILL -> $signal, not found -> $missing"
    [ "$code" = 7 ] && [ "$signal" = 137 ] && [ "$missing" = 127 ] && return 0
    note "expected 7, 137 and 127"
    return 1
}

ctrl_c_with_tty() {
    local out status=0
    out=$(tests/docker/ctrl-c.py 30 child-ready docker run --rm -it --label "$LABEL" \
        --network none --no-healthcheck "$IMAGE" \
        sh -c 'trap "echo child got SIGINT; exit 42" INT; echo child-ready; while :; do sleep 0.1; done') \
        || status=$?
    note "docker run -it, Ctrl-C typed: exit $status; the child printed:" \
        "$(echo "$out" | tr -d '\r' | grep -o 'child got SIGINT' || echo nothing)"
    [ "$status" = 42 ] && grep -q 'child got SIGINT' <<<"$out" && return 0
    note "expected the child's INT trap to run and docker run to exit 42"
    return 1
}

# docker_stop NAME: runs `docker stop -t 10` and prints how long it took, in ms.
docker_stop() {
    local t0
    t0=$(now_ms)
    dk stop -t 10 "$1" >/dev/null
    echo $(($(now_ms) - t0))
}

stop_ignoring_child() {
    local script='trap "" TERM; echo child-ready; while :; do sleep 0.2; done'
    local c t ms code tini_ms stopping
    c=$(start stop-ignore --no-healthcheck -e MCPINIT_STOP_GRACE=3s "$IMAGE" sh -c "$script")
    # the contrast: the same child under Docker's own init (tini), stopped at the same time
    t=$(start stop-ignore-tini --no-healthcheck --init --entrypoint sh "$IMAGE" -c "$script")
    if ! wait_for 10 logs_have "$c" child-ready || ! wait_for 10 logs_have "$t" child-ready; then
        note "the children never started"
        return 1
    fi
    docker_stop "$t" >"$work/tini-stop-ms" &
    stopping=$!
    ms=$(docker_stop "$c")
    code=$(exit_code "$c")
    wait "$stopping"
    tini_ms=$(cat "$work/tini-stop-ms")
    note "child ignores SIGTERM: docker stop -t 10 took $ms ms with MCPINIT_STOP_GRACE=3s" \
        "(exit $code), $tini_ms ms with --init"
    [ "$ms" -ge 2500 ] && [ "$ms" -le 6000 ] && [ "$code" = 137 ] && [ "$tini_ms" -ge 9500 ] && return 0
    note "expected about 3 s and exit 137 (SIGKILL) with mcpinit, Docker's 10 s with --init"
    return 1
}

stop_graceful_child() {
    local c ms code
    c=$(start stop-graceful --no-healthcheck "$IMAGE" \
        sh -c 'trap "echo child stopping gracefully; exit 0" TERM; echo child-ready; while :; do sleep 0.2; done')
    wait_for 10 logs_have "$c" child-ready || { note "the child never started"; return 1; }
    ms=$(docker_stop "$c")
    code=$(exit_code "$c")
    note "child handles SIGTERM: docker stop took $ms ms, exit $code"
    # docker logs may trail the container's end by a moment on a loaded machine
    [ "$ms" -le 3000 ] && [ "$code" = 0 ] && wait_for 5 logs_have "$c" "child stopping gracefully" \
        && return 0
    note "expected its TERM trap to run, exit 0, well under 3 s"
    return 1
}

# The leaking workload under --pids-limit 64, with mcpinit capping at 40.
pids_limit_mcpinit() {
    local c dir peak refused state live cap_kills
    c=$(start leak-mcpinit --no-healthcheck --pids-limit 64 -e MCPINIT_MAX_PROCS=40 \
        -e MCPINIT_KILL_GRACE=1s "$IMAGE" sh /test/leak.sh)
    dir=$(pids_cgroup "$c") || { note "cannot find the container's pids cgroup"; return 1; }
    read -r peak refused <<<"$(watch_pids "$dir" 10)"
    state=$(dk exec "$c" /mcpinit status --json) || { note "mcpinit status --json failed"; return 1; }
    live=$(json 'd["live"]' <<<"$state")
    cap_kills=$(json 'd["counters"]["terminated"]["cap"]' <<<"$state")
    note "10 s of leaking 10 processes/s: cgroup peak $peak of 64, forks refused $refused;" \
        "mcpinit: $live live now, peak $(json 'd["counters"]["peak_procs"]' <<<"$state")," \
        "$cap_kills units terminated for the cap, saw pids.max $(json 'd["cgroup"]["pids_max"]' <<<"$state")"
    [ "$refused" = 0 ] && [ "$peak" -lt 64 ] && [ "$cap_kills" -gt 0 ] && is_running "$c" && return 0
    note "expected no refused fork, a peak under 64, cap terminations, and the workload still running"
    return 1
}

# The same workload and limit with Docker's own init (tini): nothing caps the leak.
pids_limit_tini() {
    local c dir peak refused
    command -v docker-init >/dev/null || { note "docker-init (tini) is missing: install tini"; return 1; }
    c=$(start leak-tini --no-healthcheck --pids-limit 64 --init --entrypoint sh "$IMAGE" /test/leak.sh)
    dir=$(pids_cgroup "$c") || { note "cannot find the container's pids cgroup"; return 1; }
    read -r peak refused <<<"$(watch_pids "$dir" 8)"
    note "same leak with --init: cgroup peak $peak of 64, forks refused $refused;" \
        "the workload says: $(logs "$c" | grep "can't fork" | head -n 1)"
    # a shell whose fork fails may give up: the container then dies with the limit hit
    is_running "$c" || note "the workload died of it: container exited with $(exit_code "$c")"
    [ "$refused" -gt 0 ] && return 0
    note "expected the kernel to refuse forks at the pids limit"
    return 1
}

logs_show_decisions() {
    local c="mcpinit-test-$$-leak-mcpinit" text
    text=$(logs "$c")
    note "$(grep -m1 'as pid 1' <<<"$text" | cut -c1-120)…"
    note "$(grep -m1 'terminating cap unit' <<<"$text")"
    note "$(grep -c 'terminating cap unit' <<<"$text") 'terminating cap unit' lines"
    grep -q 'as pid 1 .*max_procs=40 .*cgroup_pids_max=64' <<<"$text" \
        && grep -q 'terminating cap unit' <<<"$text" && return 0
    note "expected the start line (max_procs=40, cgroup_pids_max=64) and cap terminations"
    return 1
}

status_shows_tree() {
    local c="mcpinit-test-$$-leak-mcpinit" text
    text=$(dk exec "$c" /mcpinit status) || { note "docker exec … /mcpinit status failed"; return 1; }
    note "docker exec … /mcpinit status: $(wc -l <<<"$text") lines," \
        "$(grep -c 'sleep 1000' <<<"$text") mention 'sleep 1000'"
    grep -q 'sh /test/leak.sh' <<<"$text" && grep -q 'sleep 1000' <<<"$text" \
        && dk exec "$c" test -e /run/mcpinit.json && return 0
    note "expected the main child, its leaked units and /run/mcpinit.json"
    return 1
}

# A MetaMCP-shaped tree as user 1001, as MetaMCP's image runs: 3 instances of one npm exec
# server, 1 of another, and 1 whose wrappers exit and leave its leaf orphaned. Dedupe, the
# orphan, the state-file fallback to /tmp, HEALTHCHECK, docker stop.
metamcp_as_user_1001() {
    local c t0 state uid units newest duplicates ms code ok=0
    t0=$(now_ms)
    c=$(start metamcp --user 1001 -e MCPINIT_DEDUPE_IDLE=1s -e MCPINIT_KILL_GRACE=1s "$IMAGE" \
        node /app/backend.js --spawn a:3 --spawn b:1 --orphan c:1 --orphan-after 2 --leaf-read-once 4000 --gap-ms 200)
    if wait_for 15 is_healthy "$c"; then
        note "HEALTHCHECK /mcpinit health (every 1 s): healthy $(($(now_ms) - t0)) ms after docker run"
    else
        note "HEALTHCHECK /mcpinit health: $(dk inspect -f '{{.State.Health.Status}}' "$c"), expected healthy;" \
            "last check said: $(dk inspect -f '{{with .State.Health}}{{range .Log}}{{.Output}}{{end}}{{end}}' "$c" | tail -n 1)"
        ok=1
    fi
    if ! wait_for 20 duplicates_culled "$c" 2; then
        note "expected 2 'terminating duplicate unit' lines in docker logs"
        ok=1
    fi
    wait_for 10 logs_have "$c" "terminating orphan unit" || { note "expected a 'terminating orphan unit' line"; ok=1; }
    # the backend prints {"server":"a","pid":PID,"seq":N} for each instance it starts
    newest=$(logs "$c" | grep '"server":"a"' | tail -n 1 | json 'd["pid"]' || echo none)
    duplicates=$(logs "$c" | grep 'terminating duplicate unit')
    note "$(head -n 1 <<<"$duplicates" | cut -c1-110)…"
    grep -q "kept=$newest " <<<"$duplicates" \
        || { note "expected the newest instance of server-a (pid $newest) to be kept"; ok=1; }
    uid=$(dk exec "$c" grep '^Uid:' /proc/1/status | awk '{print $2}')
    if ! dk exec "$c" test -e /tmp/mcpinit.json || dk exec "$c" test -e /run/mcpinit.json; then
        note "expected the state file at /tmp/mcpinit.json (/run is not writable by 1001)"
        ok=1
    fi
    if state=$(dk exec "$c" /mcpinit status --json); then
        units=$(json 'len({p["unit"] for p in d["processes"] if p["role"] == "server"})' <<<"$state")
        note "mcpinit runs as uid $uid; status --json as 1001 shows $units server units (a, b)"
        if [ "$uid" != 1001 ] || [ "$units" != 2 ]; then
            note "expected uid 1001 and 2 server units"
            ok=1
        fi
    else
        note "docker exec … /mcpinit status --json as 1001 failed: it must find /tmp/mcpinit.json"
        ok=1
    fi
    ms=$(docker_stop "$c")
    code=$(exit_code "$c")
    note "docker stop took $ms ms, exit $code (the backend stops its instances)"
    if [ "$ms" -gt 3000 ] || [ "$code" != 0 ]; then
        note "expected exit 0 within 3 s"
        ok=1
    fi
    return $ok
}

# MCPINIT_METRICS in a container, as user 1001 under Docker's default seccomp profile:
# the signalfd loop and the endpoint work there, a scrape (busybox wget, from inside:
# the test containers have no network) shows the duplicate culled, /healthz agrees with
# `mcpinit health`.
metrics_in_a_container() {
    local c text health ok=0
    c=$(start metrics --user 1001 -e MCPINIT_METRICS=127.0.0.1:9464 -e MCPINIT_DEDUPE_IDLE=1s \
        -e MCPINIT_KILL_GRACE=1s "$IMAGE" node /app/backend.js --spawn a:2 --leaf-read-once 4000 --gap-ms 200)
    if ! wait_for 15 logs_have "$c" "serving metrics on http://127.0.0.1:9464/metrics"; then
        note "expected 'serving metrics on http://127.0.0.1:9464/metrics' in docker logs"
        dk rm -f "$c" >/dev/null
        return 1
    fi
    wait_for 25 duplicates_culled "$c" 1 || { note "expected a duplicate culled"; ok=1; }
    sleep 1.5 # the culled instance gone, the next scan in
    if text=$(dk exec "$c" wget -qO- http://127.0.0.1:9464/metrics); then
        note "scrape: $(grep -c '^mcpinit_' <<<"$text") samples;" \
            "$(grep -E '^mcpinit_(processes|terminations_total\{reason="duplicate"\}) ' <<<"$text" | tr '\n' ' ')"
        grep -q '^mcpinit_terminations_total{reason="duplicate"} 1$' <<<"$text" \
            || { note "expected mcpinit_terminations_total{reason=\"duplicate\"} 1"; ok=1; }
        grep -q '^mcpinit_units{role="server"} 1$' <<<"$text" \
            || { note "expected one server unit left"; ok=1; }
    else
        note "docker exec … wget /metrics failed"
        ok=1
    fi
    if health=$(dk exec "$c" wget -qO- http://127.0.0.1:9464/healthz) && [ "${health%%:*}" = healthy ] \
        && [ "$(dk exec "$c" /mcpinit health | cut -d: -f1)" = healthy ]; then
        note "/healthz: $health"
    else
        note "expected /healthz and mcpinit health both healthy, got: ${health:-nothing}"
        ok=1
    fi
    dk rm -f "$c" >/dev/null
    return $ok
}

# ---------------------------------------------------------------- main

# One engine user at a time: dockerd and podman fight over iptables and cgroups.
exec 9>/tmp/engine.lock
flock -w 1200 9 || { say "FAIL: /tmp/engine.lock still held after 20 min"; exit 1; }

ensure_engine
say "engine: $(dk version --format 'server {{.Server.Version}}, client {{.Client.Version}}')," \
    "cgroup v$(dk info --format '{{.CgroupVersion}}')"
build_image
say "image $IMAGE built FROM scratch ($(dk image inspect -f '{{.Size}}' "$IMAGE") bytes)"

scenario "exit status: docker run exits with the child's code" exit_status
scenario "docker run -it: Ctrl-C reaches the child" ctrl_c_with_tty
scenario "docker stop: a child ignoring SIGTERM is killed after MCPINIT_STOP_GRACE, not 10 s" stop_ignoring_child
scenario "docker stop: a child handling SIGTERM stops gracefully" stop_graceful_child
scenario "--pids-limit 64: mcpinit keeps a leak under its cap of 40" pids_limit_mcpinit
scenario "docker logs shows mcpinit's decisions" logs_show_decisions
scenario "docker exec … /mcpinit status shows the tree" status_shows_tree
dk rm -f "mcpinit-test-$$-leak-mcpinit" >/dev/null # done with it: stop the leak
scenario "--pids-limit 64 with --init (tini): the leak hits the kernel's limit" pids_limit_tini
scenario "MetaMCP-shaped, --user 1001: dedupe, orphan, /tmp state file, HEALTHCHECK, stop" metamcp_as_user_1001
scenario "closing input under Docker's default seccomp (root, 1001): through ptrace, the server exits 0 at EOF, no signal" eof_default_seccomp
scenario "closing input with --cap-add SYS_PTRACE (root, 1001): the server exits 0 at EOF, no signal" eof_with_sys_ptrace
scenario "MCPINIT_METRICS as user 1001: /metrics and /healthz from inside the container" metrics_in_a_container

say "took $((SECONDS - started_at)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
