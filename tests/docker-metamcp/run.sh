#!/usr/bin/env bash
# The real MetaMCP backend (pinned, 250240be) under mcpinit in a FROM-scratch Docker
# image, as users run it: Docker's DEFAULT seccomp profile, no capability added, as root
# and as `--user 1001`, `--network host` to a private Postgres on loopback, real MCP SDK
# clients (tests/metamcp/scenario.mjs). What mcpinit must do there (issue 26): end
# MetaMCP's leaked and duplicate instances without MetaMCP counting a crash.
#
# Cases (each a container of its own, seccomp checked active: `Seccomp: 2` in /proc/1/status):
#   leak     2 sessions in use while more sessions are opened and abandoned than
#            MCPINIT_MAX_PROCS holds: no failed call, no server ERROR, no crash counted,
#            a fresh session has every server's tools, leaked instances reclaimed, each
#            one ended cleanly (ended=eof|exit). Root and 1001.
#   stubdup  tracked duplicates of a server that ignores EOF (tests/metamcp/stubborn-server),
#            3 sessions abandoned, one ended by the idle rule: no crash, ended cleanly. Root and 1001.
#   compose  the values of examples/metamcp/docker-compose.yml (its user, pids_limit,
#            mem_limit and MCPINIT_* environment, read from the file) under the leak's
#            workload: no failed call, no ERROR, no crash, tasks below the pids limit.
#   ctr      the leak under containerd's own default profile (`ctr run --seccomp`, which
#            Kubernetes' RuntimeDefault is on containerd), root, when ctr and containerd's
#            socket can be had (docker.io brings both); skipped otherwise, with a reason.
# Each case prints: calls made / failed, crashes counted, servers' status, ends by step
# (mcpinit's unit_gone ended=…) and its close-input route, peak processes and peak tasks
# (threads below mcpinit; the cgroup's pids.current), tasks per instance, wall time; a
# table of every case at the end.
#
# Environment:
#   DOCKER_MM_CAP_ADD=SYS_PTRACE   add a capability to every container (docker --cap-add;
#                                  ctr --cap-add CAP_…): where pidfd_getfd is allowed, to
#                                  check the harness passes when a clean route exists
#   DOCKER_MM_CASES                which cases, default "leak stubdup compose ctr"
#   DOCKER_MM_USERS                users for leak and stubdup, default "0 1001"
#   DOCKER_MM_SECCOMP=unconfined   docker --security-opt seccomp=unconfined instead of the
#                                  default profile (diagnosis only)
#   DOCKER_MM_LEAK_SECONDS (30), DOCKER_MM_LEAK_EVERY (3), DOCKER_MM_LEAK_TAIL (15),
#   DOCKER_MM_STUBDUP_WAIT (70), DOCKER_MM_COMPOSE_SECONDS (30)   durations, seconds
#   DOCKER_MM_ENV_<CASE>           extra VAR=value words for mcpinit in that case
#   DOCKER_MM_NPM                  npm in the image: a version (default 10.8.2, what node 20
#                                  in MetaMCP's image bundles: npm exec -> sh -c -> node),
#                                  or "host" (this machine's; npm 11: npm exec -> node)
#   DOCKER_MM_SH                   /bin/sh in the image: dash (default: Debian's, as in
#                                  MetaMCP's image; npm's `sh -c` stays the server's parent)
#                                  or busybox (its sh execs the server in place of itself:
#                                  npm exec -> node, no sh)
#   MCPINIT_BIN                    the static binary (default: the release musl build)
#   DOCKER_MM_KEEP_LOGS=DIR        keep every container's log there
# and tests/metamcp/setup.sh's (MCPINIT_TEST_CACHE, METAMCP_SNAPSHOT_DIR, …).
#
# Needs Docker (started as tests/docker does when not running: Debian's docker.io,
# dockerd in the background) and the MetaMCP setup (as tests/metamcp does); SKIPPED
# when they cannot be had, which under CI=true is a failure. Holds /tmp/engine.lock
# while it uses the engine and /tmp/mcpinit-metamcp-12009.lock while a backend runs.
# The base image (MetaMCP without mcpinit) is kept, keyed by its content; every
# container, the per-run image's predecessors and containerd's copy are removed.
# Wall time measured on 2 shared cores (load 18-34): 385 s for every case with the base
# image cached; building it (a fresh machine) adds about 3 minutes, once.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
mmd=$repo/tests/docker-metamcp

SUITE=docker-metamcp
STUBBORN_DIR=/app/stubborn-server # where the image has it (seed.sql's stubborn_dir)
IMAGE=mcpinit-mm-test:local
LABEL="mcpinit-test=$$"
CTR_NS=mcpinit-test
bin=${MCPINIT_BIN:-target/x86_64-unknown-linux-musl/release/mcpinit}
cases=${DOCKER_MM_CASES:-leak stubdup compose ctr}
users=${DOCKER_MM_USERS:-0 1001}
cap_add=${DOCKER_MM_CAP_ADD:-}
work=$(mktemp -d /tmp/mcpinit-docker-mm.XXXXXX)
chmod 755 "$work"
passed=0
failed=0
started_at=$SECONDS
current="" # the running container (docker name or ctr id)
scenario_pid="" # the running scenario.mjs (its timeout)
logger=""  # the pid of `docker logs -f` / `ctr run` writing the current log
ctr_sock=""
table=()

say() { echo "$SUITE: $*"; }
# shellcheck source=tests/metamcp/setup.sh
. "$repo/tests/metamcp/setup.sh"
# shellcheck source=tests/docker/engine.sh
. "$repo/tests/docker/engine.sh"

ctr_() { timeout 60 ctr --address "$ctr_sock" --namespace "$CTR_NS" "$@" 9>&- 8>&-; }

stop_current() {
    if [ -n "$scenario_pid" ]; then
        kill -KILL "$scenario_pid" 2>/dev/null || true
        pkill -KILL -P "$scenario_pid" 2>/dev/null || true
        scenario_pid=""
    fi
    if [ -n "$current" ]; then
        if [ "${current#ctr-}" != "$current" ]; then
            ctr_ task kill -s KILL "$current" >/dev/null 2>&1 || true
            sleep 1
            ctr_ task rm -f "$current" >/dev/null 2>&1 || true
            ctr_ container rm "$current" >/dev/null 2>&1 || true
        else
            dk rm -f "$current" >/dev/null 2>&1 || true
        fi
    fi
    if [ -n "$logger" ]; then
        kill "$logger" 2>/dev/null || true
        wait "$logger" 2>/dev/null || true
    fi
    current="" logger=""
}

cleanup() {
    stop_current
    if [ -n "$ctr_sock" ]; then
        ctr_ image rm "docker.io/library/$IMAGE" >/dev/null 2>&1 || true
        ctr_ content prune references >/dev/null 2>&1 || true
    fi
    engine_cleanup
    metamcp_cleanup
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ the images

# What the suite seeds, cached for npx offline: one npm cache of its own per npm.
NPX_PACKAGES=(@modelcontextprotocol/server-everything)

# npm as MetaMCP's image has it: its Dockerfile installs NodeSource's node 20, which
# bundles npm 10 (an npx instance is then `npm exec` -> `sh -c` -> node). npm 11 starts
# the server without the sh (`npm exec` -> node): DOCKER_MM_NPM=host takes this
# machine's npm, DOCKER_MM_NPM=VERSION another.
NPM_VERSION=${DOCKER_MM_NPM:-10.8.2}
SH=${DOCKER_MM_SH:-dash}

npm_tree() {
    local dir=$cache/npm-$NPM_VERSION
    if [ "$NPM_VERSION" = host ]; then
        dirname "$(dirname "$(readlink -f "$(command -v npm)")")"
        return 0
    fi
    if [ ! -f "$dir/node_modules/npm/package.json" ]; then
        say "installing npm $NPM_VERSION for the image" >&2
        timeout 300 npm install --silent --no-audit --no-fund --prefix "$dir" "npm@$NPM_VERSION" >/dev/null 2>&1 9>&- 8>&- ||
            return 1
    fi
    echo "$dir/node_modules/npm"
}

npm_cache() { # NPM_TREE VERSION
    local dir=$cache/docker-npm-cache-$2 p
    [ -f "$dir/.filled" ] && { echo "$dir"; return 0; }
    rm -rf "$dir"
    for p in "${NPX_PACKAGES[@]}"; do
        npm_config_cache=$dir npm_config_prefer_offline=true timeout 300 \
            node "$1/bin/npm-cli.js" exec --yes --package="$p" -- true >/dev/null 2>&1 9>&- 8>&- || return 1
    done
    touch "$dir/.filled"
    echo "$dir"
}

# The backend's runtime: the built tree without what only building or the frontend
# needs (Next.js, its compilers, TypeScript, esbuild, test tools): ~500 MB less.
copy_backend() { # DEST
    mkdir -p "$1"
    tar -C "$mm" -cf - --exclude='./apps/frontend' --exclude='./.git' --exclude='./docs' \
        --exclude='./node_modules/.pnpm/next@*' --exclude='./node_modules/.pnpm/@next+*' \
        --exclude='./node_modules/.pnpm/turbo*' --exclude='./node_modules/.pnpm/typescript@*' \
        --exclude='./node_modules/.pnpm/@img+*' --exclude='./node_modules/.pnpm/@esbuild+*' \
        --exclude='./node_modules/.pnpm/esbuild@*' --exclude='./node_modules/.pnpm/lightningcss*' \
        --exclude='./node_modules/.pnpm/@vitest+*' --exclude='./node_modules/.pnpm/vitest@*' \
        --exclude='./node_modules/.pnpm/@types+*' . | tar -C "$1" -xf -
}

base_key() { # NPM_VERSION
    {
        echo "$COMMIT" "$(node --version)" "$1" "${NPX_PACKAGES[*]}" "$SH"
        sha256sum /bin/busybox "$mmd/Dockerfile.base" "$here/entrypoint.sh" "$here"/stubborn-server/*
        declare -f copy_backend
    } | sha256sum | cut -c1-12
}

build_images() {
    local missing=() npmc key base ctx npm npmv
    installed busybox-static || missing+=(busybox-static)
    [ "$SH" = dash ] && { command -v dash >/dev/null || missing+=(dash); }
    install_packages "${missing[@]}" || skip "cannot install ${missing[*]}"
    npm=$(npm_tree) || skip "cannot install npm $NPM_VERSION (registry unreachable?)"
    npmv=$(node -p "require('$npm/package.json').version")
    key=$(base_key "$npmv")
    base=mcpinit-mm-base:$key
    if ! dk image inspect "$base" >/dev/null 2>&1; then
        say "building the base image $base (MetaMCP, node, npm and its offline cache; once per content)"
        npmc=$(npm_cache "$npm" "$npmv") || skip "cannot cache ${NPX_PACKAGES[*]} for npx (registry unreachable?)"
        ctx=$work/base
        mkdir -p "$ctx/app"
        cp /bin/busybox "$ctx/busybox"
        copy_node "$ctx/node"
        # dash's libraries are node's (libc); busybox's sh stays as /bin/ash.
        [ "$SH" = dash ] && cp "$(readlink -f "$(command -v dash)")" "$ctx/node/usr/bin/dash"
        mkdir -p "$ctx/node/usr/lib/node_modules" "$ctx/node/usr/etc"
        cp -a "$npm" "$ctx/node/usr/lib/node_modules/npm"
        ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ctx/node/usr/bin/npm"
        ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ctx/node/usr/bin/npx"
        # npm's global config ($prefix/etc/npmrc): the cache in the image, offline, quiet.
        printf 'cache=/npm-cache\noffline=true\nupdate-notifier=false\nfund=false\naudit=false\n' \
            >"$ctx/node/usr/etc/npmrc"
        cp -a "$npmc" "$ctx/npm-cache"
        copy_backend "$ctx/app/metamcp"
        cp "$here/entrypoint.sh" "$ctx/app/entrypoint.sh"
        cp -a "$here/stubborn-server" "$ctx/app/stubborn-server"
        timeout 900 docker build -q --network none -t "$base" -f "$mmd/Dockerfile.base" "$ctx" \
            >"$work/base.log" 2>&1 9>&- 8>&- || { tail -20 "$work/base.log"; say "FAIL: building the base image"; exit 1; }
        rm -rf "$ctx"
    fi
    mkdir -p "$work/top"
    cp "$bin" "$work/top/mcpinit"
    dk build -q --network none --build-arg "BASE=$base" -t "$IMAGE" -f "$mmd/Dockerfile" "$work/top" \
        >"$work/image.log" 2>&1 || { cat "$work/image.log"; say "FAIL: building the test image"; exit 1; }
    say "image $IMAGE on $base: $(($(dk image inspect -f '{{.Size}}' "$IMAGE") >> 20)) MiB, node $(node --version), npm $npmv, /bin/sh $SH"
}

# ------------------------------------------------------------------ the compose file

# The example compose file's values for the app service: user, pids_limit, mem_limit and
# the MCPINIT_* environment, as docker run options (one per line).
compose_options() {
    python3 - "$repo/examples/metamcp/docker-compose.yml" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
out, in_app, in_env = [], False, False
for line in lines:
    if re.match(r"^  [a-z]", line):
        in_app = line.strip() == "app:"
        in_env = False
        continue
    if not in_app:
        continue
    m = re.match(r"^    ([a-z_]+):\s*(.*?)\s*(#.*)?$", line)
    if m:
        key, value = m.group(1), m.group(2).strip('"\'')
        in_env = key == "environment"
        if key == "user":
            out.append(f"--user={value}")
        elif key == "pids_limit":
            out.append(f"--pids-limit={value}")
        elif key == "mem_limit":
            out.append(f"--memory={value}")
        continue
    m = re.match(r"^      (MCPINIT_[A-Z_]+):\s*\"?([^\"#]*?)\"?\s*(#.*)?$", line)
    if in_env and m:
        out.append(f"--env={m.group(1)}={m.group(2)}")
print("\n".join(out))
EOF
}

# ------------------------------------------------------------------ one case

# The pids cgroup's pids.current of a process (cgroup v1 or v2), or nothing.
pids_current_of() {
    local path
    path=$(sed -n 's/^[0-9]*:pids:\(.*\)$/\1/p' "/proc/$1/cgroup" 2>/dev/null | head -1)
    if [ -n "$path" ] && [ -r "/sys/fs/cgroup/pids$path/pids.current" ]; then
        echo "/sys/fs/cgroup/pids$path/pids.current"
        return 0
    fi
    path=$(sed -n 's/^0::\(.*\)$/\1/p' "/proc/$1/cgroup" 2>/dev/null | head -1)
    [ -n "$path" ] && [ -r "/sys/fs/cgroup$path/pids.current" ] && echo "/sys/fs/cgroup$path/pids.current"
    return 0
}

servers_of() {
    case $1 in
        leak | compose | ctr) echo "everything,everything2" ;;
        stubdup) echo "everything,stubborn" ;;
    esac
}

# mcpinit's settings per case: a cap the leak passes before the idle rule may act, and
# above what MetaMCP holds without a leak: 8 instances (2 servers x its start-up spare,
# the namespace's spare, 2 sessions in use) of 3 processes with npm 10 (2 with npm 11),
# its backend and sh: 26; each leaked session adds 6 (npm 11: 4), and at least 8 are
# leaked. An idle time as short as a loaded machine allows (npm exec may take 15 s to
# start its server).
mcpinit_env_of() {
    case $1 in
        leak | ctr) echo "MCPINIT_MAX_PROCS=40 MCPINIT_DEDUPE_IDLE=30s" ;;
        stubdup) echo "MCPINIT_DEDUPE_IDLE=15s" ;;
        compose) echo "" ;;
    esac
}

scenario_of() {
    case $1 in
        leak | ctr) echo leak ;;
        *) echo "$1" ;;
    esac
}

# run_case CASE USER ENGINE: one container, one scenario.mjs run; counts pass/fail.
run_case() {
    local case=$1 user=$2 engine=$3 servers extra var db log label scenario opts=() rc=0 t0=$SECONDS
    local init="" seccomp pids_current e envs=() menv=() limit=""
    servers=$(servers_of "$case")
    scenario=$(scenario_of "$case")
    var=DOCKER_MM_ENV_$(echo "$case" | tr '[:lower:]' '[:upper:]')
    extra=$(echo "$(mcpinit_env_of "$case") ${!var:-}" | xargs)
    label="$case/$engine/user=$user${cap_add:+/+$cap_add}"
    db=dmm_${case}_$user
    seed "$db" "$servers"
    log=$work/$case-$user.log
    envs=(MCPINIT_LOG_FORMAT=json MCPINIT_STATE_FILE=/tmp/mcpinit.json
        "DATABASE_URL=postgresql://metamcp@127.0.0.1:$pg_port/$db" NODE_ENV=production LOG_LEVEL=all
        APP_URL=http://localhost:12008 NEXT_PUBLIC_APP_URL=http://localhost:12008
        BETTER_AUTH_SECRET=mcpinit-e2e-secret-of-at-least-32-characters
        TRANSFORM_LOCALHOST_TO_DOCKER_INTERNAL=false BOOTSTRAP_ENABLE=false)
    read -ra menv <<<"$extra" # mcpinit's settings, also for scenario.mjs's own figures
    envs+=("${menv[@]}")
    say "case $label: servers $servers; mcpinit ${extra:-(defaults)}"
    port_freed || { echo "fail: $label: port 12009 stays busy (another MetaMCP?)"; failed=$((failed + 1)); return; }

    if [ "$engine" = docker ]; then
        current=mcpinit-mm-$$-$case-$user
        opts=(--name "$current" --label "$LABEL" --network host)
        if [ "$case" = compose ]; then
            while IFS= read -r e; do
                [ -n "$e" ] && opts+=("$e")
                case $e in --pids-limit=*) limit=${e#--pids-limit=} ;; --env=*) menv+=("${e#--env=}") ;; esac
            done < <(compose_options)
            say "  the compose file's values: $(compose_options | tr '\n' ' ')"
        else
            opts+=(--user "$user")
        fi
        [ -n "$cap_add" ] && opts+=(--cap-add "$cap_add")
        [ "${DOCKER_MM_SECCOMP:-}" = unconfined ] && opts+=(--security-opt seccomp=unconfined)
        for e in "${envs[@]}"; do opts+=(-e "$e"); done
        dk run -d "${opts[@]}" "$IMAGE" >/dev/null || { echo "fail: $label: docker run failed"; failed=$((failed + 1)); current=""; return; }
        timeout 900 docker logs -f "$current" >"$log" 2>&1 9>&- 8>&- &
        logger=$!
        init=$(dk inspect -f '{{.State.Pid}}' "$current")
        seccomp=$(dk exec "$current" cat /proc/1/status | sed -n 's/^Seccomp:\s*//p')
    else
        current=ctr-mm-$$
        opts=(--rm --net-host --seccomp --cwd /app/run) # ctr 1.6 has no --user: root
        [ -n "$cap_add" ] && opts+=(--cap-add "CAP_$cap_add")
        for e in "${envs[@]}" METAMCP_DIR=/app/metamcp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root; do
            opts+=(--env "$e")
        done
        timeout 900 ctr --address "$ctr_sock" --namespace "$CTR_NS" run "${opts[@]}" \
            "docker.io/library/$IMAGE" "$current" /mcpinit -- sh /app/entrypoint.sh \
            </dev/null >"$log" 2>&1 9>&- 8>&- &
        logger=$!
        for _ in $(seq 1 50); do
            init=$(ctr_ task ls 2>/dev/null | awk -v id="$current" '$1 == id {print $2}')
            [ -n "$init" ] && [ "$init" != 0 ] && break
            sleep 0.2
        done
        seccomp=$(sed -n 's/^Seccomp:\s*//p' "/proc/$init/status" 2>/dev/null || true)
    fi
    echo "    seccomp in the container (/proc/1/status): Seccomp: ${seccomp:-unread}" \
        "($([ "${seccomp:-}" = 2 ] && echo "filter active" || echo "NOT a filter"))"
    pids_current=$(pids_current_of "$init")
    if ! backend_up "$init"; then
        echo "fail: $label: the backend did not come up"
        tail -30 "$log"
        failed=$((failed + 1))
        stop_current
        return
    fi
    env "${menv[@]}" CLIENT_MODULES=$client INIT_PID=$init NS_LOG=$log SERVERS=$servers E2E_CASE=$label \
        E2E_STATE_FILE="/proc/$init/root/tmp/mcpinit.json" PIDS_CURRENT=$pids_current \
        E2E_LEAK_DRIVES_CAP=$([ "$scenario" = leak ] && echo 1 || echo 0) E2E_PIDS_LIMIT=$limit \
        E2E_LEAK_SECONDS=$([ "$case" = compose ] && echo "${DOCKER_MM_COMPOSE_SECONDS:-30}" || echo "${DOCKER_MM_LEAK_SECONDS:-30}") \
        E2E_LEAK_EVERY=${DOCKER_MM_LEAK_EVERY:-3} E2E_LEAK_TAIL=${DOCKER_MM_LEAK_TAIL:-15} E2E_LEAK_MIN_SESSIONS=8 \
        E2E_STUBDUP_WAIT=${DOCKER_MM_STUBDUP_WAIT:-70} \
        PSQL_ARGS="[\"-h\",\"127.0.0.1\",\"-p\",\"$pg_port\",\"-U\",\"metamcp\",\"-d\",\"$db\"]" \
        timeout -s KILL 300 node "$here/scenario.mjs" "$scenario" >"$work/$case-$user.out" 2>&1 9>&- 8>&- &
    # In the background and waited for, so that INT/TERM reach the trap at once.
    scenario_pid=$!
    wait "$scenario_pid" || rc=$?
    scenario_pid=""
    # What mcpinit says of the container at the end, before the stop.
    if [ "$engine" = docker ]; then
        dk exec "$current" /mcpinit health 2>&1 | sed 's/^/    mcpinit health: /' || true
        dk exec "$current" /mcpinit status >"$work/$case-$user.status" 2>&1 || true
        dk stop -t 10 "$current" >/dev/null 2>&1 || true
    else
        ctr_ task kill -s TERM "$current" >/dev/null 2>&1 || true
        for _ in $(seq 1 24); do kill -0 "$logger" 2>/dev/null || break; sleep 0.5; done
    fi
    stop_current
    cat "$work/$case-$user.out"
    grep -h '"event":"start"' "$log" | head -1 | cut -c1-400 | sed 's/^/    mcpinit: /' || true
    grep -h '"event":"routes"\|"event":"shutdown"' "$log" | cut -c1-300 | sed 's/^/    mcpinit: /' || true
    grep -h 'EAGAIN' "$log" | head -2 | cut -c1-200 | sed 's/^/    MetaMCP: /' || true
    echo "    wall time of the case: $((SECONDS - t0)) s"
    local fig
    fig=$(sed -n 's/^figures: //p' "$work/$case-$user.out" | tail -1)
    [ -n "$fig" ] && table+=("$fig|$((SECONDS - t0))")
    tally "$work/$case-$user.out" "$rc" "$label"
    if [ "${seccomp:-}" != 2 ] && [ "${DOCKER_MM_SECCOMP:-}" != unconfined ]; then
        echo "fail: $label: seccomp is not active in the container (Seccomp: ${seccomp:-unread})"
        failed=$((failed + 1))
    fi
    if grep -q '^fail:' "$work/$case-$user.out" && [ -s "$work/$case-$user.status" ]; then
        echo "    mcpinit status at the end (docker exec … /mcpinit status):"
        head -40 "$work/$case-$user.status" | sed 's/^/      /'
    fi
    if [ -n "${DOCKER_MM_KEEP_LOGS:-}" ]; then
        mkdir -p "$DOCKER_MM_KEEP_LOGS" && cp "$log" "$DOCKER_MM_KEEP_LOGS/$case-$engine-$user.log"
    fi
}

# ------------------------------------------------------------------ containerd

# containerd's socket: a containerd of its own, or the one dockerd runs.
find_ctr() {
    local s
    command -v ctr >/dev/null || return 1
    for s in /run/containerd/containerd.sock /var/run/docker/containerd/containerd.sock; do
        [ -S "$s" ] && timeout 10 ctr --address "$s" version >/dev/null 2>&1 9>&- 8>&- && { ctr_sock=$s; return 0; }
    done
    return 1
}

run_ctr() {
    if ! find_ctr; then
        if [ "${CI:-}" = true ]; then
            echo "fail: ctr: no containerd socket answers ctr (docker.io brings containerd; CI=true: required)"
            failed=$((failed + 1))
        else
            say "SKIPPED ctr: no containerd socket answers ctr (with CI=true this is a failure)"
        fi
        return 0
    fi
    say "containerd $(ctr --address "$ctr_sock" version 2>/dev/null | awk '/Version/ {print $2; exit}') at $ctr_sock; importing the image"
    if ! timeout 300 sh -c "docker save '$IMAGE' | ctr --address '$ctr_sock' --namespace '$CTR_NS' images import -" >"$work/ctr-import.log" 2>&1 9>&- 8>&-; then
        cat "$work/ctr-import.log"
        echo "fail: ctr: importing the image failed"
        failed=$((failed + 1))
        return 0
    fi
    run_case ctr 0 ctr
}

# ------------------------------------------------------------------ main

[ -x "$bin" ] || { echo "$SUITE: FAIL: no mcpinit binary at $bin (scripts/build-static.sh, or set MCPINIT_BIN)" >&2; exit 1; }
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
metamcp_setup
say "MetaMCP set up in $((SECONDS - started_at)) s; mcpinit: $bin ($("$bin" --version 2>&1 | head -1))"

exec 9>/tmp/engine.lock
flock -w 1200 9 || { say "FAIL: /tmp/engine.lock still held after 20 min"; exit 1; }
ensure_engine
say "engine: $(dk version --format 'server {{.Server.Version}}'), cgroup v$(dk info --format '{{.CgroupVersion}}')," \
    "seccomp: $(dk info --format '{{.SecurityOptions}}' | grep -o 'name=seccomp,profile=[a-z]*' || echo none)" \
    "${cap_add:+; every container gets --cap-add $cap_add}"
build_images
say "engine and images ready $((SECONDS - started_at)) s after the start"

# One MetaMCP backend per machine (port 12009 is hard-coded).
exec 8>/tmp/mcpinit-metamcp-12009.lock
flock -w 900 8 || { say "FAIL: another run holds /tmp/mcpinit-metamcp-12009.lock"; exit 1; }
for c in $cases; do
    case $c in
        leak | stubdup) for u in $users; do run_case "$c" "$u" docker; done ;;
        compose) run_case compose compose docker ;;
        ctr) run_ctr ;;
        *) echo "fail: unknown case $c"; failed=$((failed + 1)) ;;
    esac
done

echo
echo "case | calls made/failed (fresh) | crashes | servers | ends (EOF/EXIT/TERM/KILL) | route | peak procs | peak tasks (cgroup, refused at pids.max) | tasks/instance | s"
for row in "${table[@]}"; do
    python3 -c '
import json, sys
f, wall = sys.argv[1].rsplit("|", 1)
d = json.loads(f)
h = d["how"]
cells = [d["case"], "%s/%s (%s)" % (d["calls"], d["failed"], d["fresh_failed"]), d["crashes"], d["status"],
         "%s (%s/%s/%s/%s)" % (d["ends"], h["EOF"], h["EXIT"], h["TERM"], h["KILL"]), d["route"],
         d["peak_procs"], "%s (%s, %s refused)" % (d["peak_tasks"], d["peak_cgroup"], d.get("refused")), d["tasks_per_instance"], wall]
print(" | ".join(str(c) for c in cells))
' "$row"
done
say "$passed passed, $failed failed in $((SECONDS - started_at)) s"
[ "$failed" = 0 ]
