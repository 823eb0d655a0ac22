#!/usr/bin/env bash
# mcpinit's aarch64 binary, tested two ways (scripts/test.sh runs this after building it):
#
# 1. qemu-user (Debian's qemu-user-static, called directly: no binfmt registration, so
#    nothing on the machine changes). The EXISTING process suites run against the aarch64
#    binary: tests/common picks it from MCPINIT_TEST_BIN, a two-line wrapper that execs
#    `qemu-aarch64-static mcpinit`. qemu-user translates aarch64 syscalls to the HOST's
#    x86_64 kernel: it is aarch64 code on an x86_64 kernel, not an aarch64 kernel. Tests
#    that qemu-user itself cannot pass are skipped by name, each with its cause (QEMU_USER_SKIP).
# 2. qemu-system-aarch64 (Debian's qemu-system-arm) booting Debian's arm64 kernel with an
#    initramfs in which mcpinit is the VM's own PID 1 (tests/aarch64/vm/init exec's it)
#    and runs tests/aarch64/vm/checks.sh: that is a real aarch64 Linux kernel, so ptrace,
#    pidfd, PR_SET_CHILD_SUBREAPER and signals are the kernel's own. Add checks there (a
#    function, or an executable in vm/checks.d/, e.g. the ptrace injector's probe()).
#    The kernel, busybox-static and tini (arm64, the peer for an RSS figure) are fetched with `apt-get download` through a
#    PRIVATE apt configuration under ~/.cache/mcpinit-tests/aarch64: the machine's apt
#    state (architectures, lists) is never touched.
#
# On an aarch64 host the suites run natively instead of (1), on the host's real kernel.
# Prints what ran where. A part that cannot run here (not root and qemu missing, Debian
# unreachable) is SKIPPED with its cause; with CI=true that is a failure.
# AARCH64_PARTS="user system" picks the parts (default both).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
BIN=$root/target/aarch64-unknown-linux-musl/release/mcpinit
cache=${HOME:-/root}/.cache/mcpinit-tests/aarch64
parts=${AARCH64_PARTS:-user system}
work=$(mktemp -d /tmp/mcpinit-aarch64.XXXXXX)
chmod 755 "$work" # the wrapper below is run as another uid too (tests/hidepid.rs)
qemu_pid=
cleanup() {
    # qemu_pid is timeout's: TERM, which it passes on to qemu (a KILL would orphan qemu).
    [ -z "$qemu_pid" ] || kill -TERM "$qemu_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "aarch64: $*"; }
failed=0
summary=()
skipped() {
    if [ "${CI:-}" = true ]; then
        say "FAIL: $1 (CI=true: a skip is a failure)" >&2
        failed=$((failed + 1))
    else
        say "SKIPPED: $1"
    fi
    summary+=("SKIPPED: $1")
}

# The integration suites run against the aarch64 binary, and the tests qemu-user cannot
# pass, with the cause (each of these runs on the real aarch64 kernel in part 2 instead).
SUITES=(init refusals logs governance status eof hidepid starved metrics config_properties hostile_state)
QEMU_USER_SKIP=(
    # qemu-user 7.2 refuses prctl(PR_SET_CHILD_SUBREAPER) with EINVAL (VM: subreaper_exit)
    a_thousand_orphans_are_reaped_as_subreaper
    # qemu-user maps guest real-time signals onto other host numbers, treats a kill()ed
    # SIGBUS as its own fault, and installs its own host dispositions: the host sees
    # other numbers, masks and ignored sets (VM: exit_signal, exit_rt_signal, signal_forward)
    every_catchable_signal_is_forwarded_to_the_child
    exit_statuses
    the_child_inherits_the_mask_and_ignored_set_mcpinit_was_given
    an_inherited_sigchld_ignore_is_not_a_hang
    a_signal_flood_is_counted_not_logged_line_by_line
    # qemu-user has no ptrace, so the start-up probe refuses the route and the exit step
    # is off there (VM: exit_step, on the real kernel)
    a_tracked_server_that_ignores_eof_and_sigterm_is_made_to_exit_zero
    where_pidfd_getfd_is_refused_a_server_that_ignores_eof_still_exits_zero
    where_pidfd_getfd_is_refused_the_input_is_closed_through_ptrace
    # ... and without the exit step a tracked duplicate whose pipe cannot be closed is
    # left alone (real npx under `sleep | npx`), and a cap's SIGTERM to a tracked
    # instance is a crash that health reports (the metrics scrape's /healthz)
    real_npx_servers_are_deduped
    a_scrape_parsed_by_prometheus_client_agrees_with_status_json
)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
# Installs Debian packages when root (waiting for another apt to finish); false otherwise.
ensure() {
    local missing=()
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || { say "not root: cannot install ${missing[*]}"; return 1; }
    say "installing ${missing[*]}"
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -qq)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { "${apt[@]}" update >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

[ -x "$BIN" ] || scripts/build-static.sh aarch64 >/dev/null
say "binary $BIN ($(stat -c %s "$BIN") bytes): $(file -b "$BIN" 2>/dev/null | cut -d, -f1-2)"
host=$(uname -m)

run_suites() { # $1: what runs them, $2: the binary or wrapper
    local args=() t
    for t in "${SUITES[@]}"; do args+=(--test "$t"); done
    local skip=()
    if [ "$1" = qemu-user ]; then
        for t in "${QEMU_USER_SKIP[@]}"; do skip+=(--skip "$t"); done
    fi
    local start=$SECONDS log=$work/suites.log
    if MCPINIT_TEST_BIN=$2 nice cargo test --locked --no-fail-fast "${args[@]}" -- --test-threads=2 "${skip[@]}" >"$log" 2>&1; then
        local passed
        passed=$(awk '/^test result:/ {n += $4} END {print n + 0}' "$log")
        say "$1: $passed tests of ${#SUITES[@]} suites passed against the aarch64 binary in $((SECONDS - start))s${skip:+, ${#QEMU_USER_SKIP[@]} skipped (qemu-user limits, see QEMU_USER_SKIP)}"
        summary+=("$1: $passed tests passed (${SUITES[*]})")
    else
        grep -E "^test .* FAILED|^test result|panicked at" "$log" | head -40 >&2
        say "$1: FAIL (full log above)" >&2
        summary+=("$1: FAILED")
        failed=$((failed + 1))
    fi
}

# ---- part 1: the suites on aarch64 code ----
if [[ " $parts " == *" user "* ]]; then
    if [ "$host" = aarch64 ]; then
        say "host is aarch64: the suites run natively, on this host's real aarch64 kernel"
        run_suites native-aarch64 "$BIN"
    elif ensure qemu-user-static && command -v qemu-aarch64-static >/dev/null; then
        say "qemu-user: aarch64 code on this host's $(uname -r) x86_64 kernel (not an aarch64 kernel)"
        printf '#!/bin/sh\nexec qemu-aarch64-static %q "$@"\n' "$BIN" >"$work/mcpinit"
        chmod +x "$work/mcpinit"
        run_suites qemu-user "$work/mcpinit"
    else
        skipped "qemu-user: qemu-aarch64-static is not installed and cannot be (apt-get install qemu-user-static)"
    fi
fi

# ---- part 2: mcpinit as PID 1 of an aarch64 VM ----
# Debian's arm64 cloud kernel and busybox-static, through a private apt configuration.
fetch_debian_arm64() {
    local apt=$cache/apt
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/debs"
    cat >"$apt/apt.conf" <<EOF
Dir::State::Lists "$apt/lists";
Dir::State::status "/dev/null";
Dir::Cache "$apt/cache";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
EOF
    export APT_CONFIG=$apt/apt.conf
    if [ ! -e "$apt/updated" ] || [ -n "$(find "$apt/updated" -mmin +1440)" ]; then
        apt-get -qq update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; return 1; }
        touch "$apt/updated"
    fi
    local kpkg
    kpkg=$(apt-cache depends linux-image-cloud-arm64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$kpkg" ] || return 1
    if [ ! -e "$cache/debs/$kpkg.ok" ]; then
        (cd "$work" && apt-get -qq download "$kpkg" busybox-static tini >"$work/apt.log" 2>&1) ||
            { cat "$work/apt.log" >&2; return 1; }
        rm -rf "$cache/kernel" "$cache/busybox" "$cache/tini"
        dpkg-deb -x "$work"/linux-image-*_arm64.deb "$cache/kernel"
        dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$cache/busybox"
        dpkg-deb -x "$work"/tini_*_arm64.deb "$cache/tini"
        rm -f "$cache"/debs/*.ok
        touch "$cache/debs/$kpkg.ok"
    fi
    unset APT_CONFIG
    KERNEL=$(ls "$cache"/kernel/boot/vmlinuz-*)
    BUSYBOX=$cache/busybox/bin/busybox
    TINI=$cache/tini/usr/bin/tini-static # the peer, for check_rss's side-by-side figure
    [ -f "$KERNEL" ] && [ -x "$BUSYBOX" ]
}

if [[ " $parts " == *" system "* ]]; then
    if ! ensure qemu-system-arm || ! command -v qemu-system-aarch64 >/dev/null; then
        skipped "qemu-system: qemu-system-aarch64 is not installed and cannot be (apt-get install qemu-system-arm)"
    elif ! fetch_debian_arm64; then
        skipped "qemu-system: could not fetch Debian's arm64 kernel and busybox-static (Debian unreachable?)"
    else
        python3 tests/aarch64/mkinitramfs.py "$work/initrd.gz" "$BIN" "$BUSYBOX" tests/aarch64/vm "$TINI"
        accel=(-accel tcg -cpu cortex-a57)
        how="TCG emulation of the CPU"
        if [ "$host" = aarch64 ] && [ -w /dev/kvm ]; then
            accel=(-accel kvm -cpu host)
            how="KVM"
        fi
        say "qemu-system: booting $(basename "$KERNEL") ($how), mcpinit as the VM's PID 1"
        start=$SECONDS
        # Bounded: the VM powers off when mcpinit (its init) exits; timeout ends it otherwise.
        timeout -s KILL "${AARCH64_VM_TIMEOUT:-300}" nice qemu-system-aarch64 -M virt "${accel[@]}" \
            -m 512 -smp 2 -nographic -no-reboot -nic none \
            -kernel "$KERNEL" -initrd "$work/initrd.gz" \
            -append "console=ttyAMA0 panic=-1 quiet ${AARCH64_VM_APPEND:-}" \
            </dev/null >"$work/console.log" 2>&1 &
        qemu_pid=$!
        wait "$qemu_pid" || true
        qemu_pid=
        tr -d '\r' <"$work/console.log" >"$work/console.txt"
        grep -aE '^(CHECK|mcpinit-vm:)' "$work/console.txt" | sed 's/^/  /'
        exitcode=$(grep -aoE 'Attempted to kill init! exitcode=0x[0-9a-f]+' "$work/console.txt" | grep -oE '0x[0-9a-f]+' || true)
        fails=$(grep -acE '^CHECK [a-z0-9_.-]+ FAIL' "$work/console.txt" || true)
        oks=$(grep -acE '^CHECK [a-z0-9_.-]+ ok' "$work/console.txt" || true)
        if grep -aq '^mcpinit-vm: .* checks passed' "$work/console.txt" && [ "$fails" = 0 ] &&
            [ "$exitcode" = 0x00000000 ]; then
            say "qemu-system: $oks checks passed on a real aarch64 kernel in $((SECONDS - start))s; mcpinit, the VM's PID 1, exited 0"
            summary+=("qemu-system: $oks checks on a real aarch64 kernel ($how)")
        else
            tail -60 "$work/console.txt" >&2
            say "qemu-system: FAIL: $fails checks failed, PID 1 exit ${exitcode:-not seen} (console above)" >&2
            summary+=("qemu-system: FAILED")
            failed=$((failed + 1))
        fi
    fi
fi

for s in "${summary[@]}"; do say "$s"; done
[ "$failed" = 0 ] || { say "$failed part(s) failed"; exit 1; }
