#!/bin/sh
# The checks run on the aarch64 VM (tests/aarch64/run.sh), as the child of mcpinit, which
# is the VM's PID 1. Each check is a shell function `check_NAME`; CHECKS lists them in
# order. One line per check on the serial console: `CHECK NAME ok|FAIL|SKIP detail`.
# To add one: write check_NAME below, or drop an executable into tests/aarch64/vm/checks.d/
# (copied to /checks.d/; exit 0 = ok, 77 = skip, anything else = FAIL; see its README) -
# e.g. the ptrace injector's run-time self-test, which only a real kernel can answer.
# CHECKS=... on the kernel command line (AARCH64_VM_APPEND) runs only those.
CHECKS=${CHECKS:-"arch pid1 exit_code exit_signal exit_rt_signal subreaper_exit signal_forward
ns_pid1 zombies orphan dedupe npm_title eof exit_step cap stop rss"}
[ "$CHECKS" != none ] || CHECKS= # only /checks.d

M=/mcpinit
ok() { echo "CHECK $name ok $*"; }
fail() { echo "CHECK $name FAIL $*"; failed=$((failed + 1)); }
skip() { echo "CHECK $name SKIP $*"; }

# Processes whose command line starts with $1, in this PID namespace.
count() {
    grep -l "^$1" /proc/[0-9]*/cmdline 2>/dev/null | wc -l
}
# Waits up to $1 tenths of a second for `eval $2` to succeed.
until_true() {
    i=0
    while [ $i -lt "$1" ]; do
        eval "$2" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# A nested mcpinit as PID 1 of a new PID namespace with its own /proc.
ns() { unshare --pid --fork --mount-proc "$@"; }
# The nested mcpinit below a backgrounded `ns` (unshare forwards no signal): its only child.
nested() { np=$1; until_true 50 '[ -n "$(cat /proc/$np/task/$np/children 2>/dev/null)" ]' && set -- $(cat /proc/$np/task/$np/children) && echo "$1"; }

check_arch() {
    v=$($M --version)
    case "$(uname -m) $v" in
        "aarch64 mcpinit "*"target aarch64-unknown-linux-musl)") ok "$v" ;;
        *) fail "uname -m $(uname -m), $v" ;;
    esac
}
check_pid1() {
    c=$(tr '\0' ' ' </proc/1/cmdline)
    p=$(awk '/^PPid/{print $2}' /proc/$$/status)
    rss=$(awk '/^Rss:/{print $2 " " $3}' /proc/1/smaps_rollup)
    [ "${c%% *}" = /mcpinit ] && [ "$p" = 1 ] && ok "pid 1 is '$c' (Rss $rss), our parent is pid $p" ||
        fail "pid 1 is '$c', our parent is $p"
}
check_exit_code() {
    ns $M -- sh -c 'exit 3' >/tmp/exit.log 2>&1
    rc=$?
    [ $rc = 3 ] && ok "exit 3 passed up" || fail "got $rc: $(tail -3 /tmp/exit.log)"
}
check_exit_signal() {
    ns $M -- sh -c 'kill -USR1 $$' >/tmp/sig.log 2>&1
    rc=$?
    [ $rc = 138 ] && ok "death by SIGUSR1 is 128+10" || fail "got $rc"
}
check_subreaper_exit() {
    # Not PID 1 (no namespace): the child-subreaper path, refused by qemu-user.
    $M -- sh -c '(sleep 0.2; exit 0) & exit 5' >/tmp/sub.log 2>&1
    rc=$?
    if [ $rc = 5 ] && grep -q subreaper /tmp/sub.log && ! grep -q "cannot become child subreaper" /tmp/sub.log; then
        ok "exit 5 as a subreaper"
    else
        fail "got $rc: $(head -2 /tmp/sub.log)"
    fi
}
check_signal_forward() {
    unshare --pid --fork --mount-proc $M -- sh -c 'trap "exit 42" TERM; while :; do sleep 0.1; done' >/tmp/fwd.log 2>&1 &
    pid=$!
    sleep 1
    kill -TERM $(nested $pid)
    wait $pid
    rc=$?
    [ $rc = 42 ] && grep -q "forward" /tmp/fwd.log && ok "SIGTERM forwarded, the child's 42 returned" ||
        fail "got $rc: $(tail -3 /tmp/fwd.log)"
}
check_ns_pid1() {
    out=$(ns $M --log-target stderr -- sh -c 'echo $$ $(awk "/^PPid/{print \$2}" /proc/$$/status)' 2>/dev/null)
    [ "$out" = "2 1" ] || [ "${out#* }" = 1 ] && ok "a nested mcpinit is pid 1 of its namespace (child: $out)" ||
        fail "child pid/ppid: '$out'"
}
check_zombies() {
    # 200 orphans reparented to the VM's PID 1 (the mcpinit above us); none stays a zombie.
    i=0
    while [ $i -lt 200 ]; do
        (true &)
        i=$((i + 1))
    done
    z() { n=0; for f in /proc/[0-9]*/stat; do read -r _ _ s _ <"$f" 2>/dev/null && [ "$s" = Z ] && n=$((n + 1)); done; echo $n; }
    until_true 50 '[ "$(z)" = 0 ]' && ok "200 orphans reaped by pid 1" || fail "$(z) zombies left"
}
check_orphan() {
    ns $M --orphans term -- sh -c '(sleep 1000 &); sleep 3' >/tmp/orph.log 2>&1
    grep -q "terminating orphan unit" /tmp/orph.log && ok "orphan reparented and ended" ||
        fail "$(tail -4 /tmp/orph.log)"
}
check_dedupe() {
    # Three idle instances of one server, each a session leader (MetaMCP spawns detached)
    # with its leaf in its group, input a pipe nobody writes. busybox cannot title a
    # process `npm exec <pkg>` with the leaf in its group (check_npm_title covers the
    # title), so the launcher is `sh -c sleep …`, named by the configurable launcher
    # list. The newest is kept, and the spare (the newest idle one besides): one ended.
    ns $M --dedupe-idle 1s --dedupe "sh -c sleep" -- sh -c '
        for i in 1 2 3; do
            sleep 1000 | setsid sh -c "sleep 1000; : vm-server" >/dev/null 2>&1 &
            sleep 0.3
        done
        i=0
        while [ $i -lt 100 ]; do
            n=$(grep -l "^sh.-c.sleep 1000; : vm-server" /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
            [ $n = 2 ] && [ $i -gt 10 ] && echo "two-left" && exit 0
            sleep 0.1; i=$((i+1))
        done
        echo "still $n"; exit 1' >/tmp/dedupe.log 2>&1
    rc=$?
    if [ $rc = 0 ] && [ "$(grep -c "terminating duplicate unit" /tmp/dedupe.log)" = 1 ]; then
        ok "$(grep -o 'terminating duplicate unit [^=]*' /tmp/dedupe.log | head -1)"
    else
        fail "rc $rc: $(cat /tmp/dedupe.log)"
    fi
}
check_npm_title() {
    # Processes titled as npm titles a launcher (`npm exec <pkg>`, one argv string: here
    # mcpinit itself under that argv[0]) are seen as instances of one server by status.
    ns $M --state-file /tmp/npm.json --scan-interval 250ms -- sh -c '
        for i in 1 2; do
            setsid sh -c "exec -a \"npm exec @vm/server\" /mcpinit -- sleep 1000" </dev/null >/dev/null 2>&1 &
        done
        sleep 2; /mcpinit status --state-file /tmp/npm.json' >/tmp/npm.log 2>&1
    n=$(grep -c '^server  npm exec @vm/server' /tmp/npm.log)
    [ "$n" = 2 ] && ok "2 instances of server 'npm exec @vm/server' in status" || fail "$(grep -v INFO /tmp/npm.log | head -5)"
}
check_exit_rt_signal() {
    # A real-time signal's number passes up unchanged (qemu-user remaps these).
    ns $M -- sh -c 'kill -40 $$' >/tmp/rt.log 2>&1
    rc=$?
    [ $rc = 168 ] && ok "death by signal 40 is 168" || fail "got $rc"
}
check_eof() {
    # The MCP stdio shutdown on a real aarch64 kernel: three idle instances whose input
    # (fd 0) is a TCP socket (busybox nc -e, a client holding it open); mcpinit takes
    # an idle duplicate's fd 0 with pidfd_getfd and shuts it down for reading, so the
    # server sees EOF and exits 0 with no signal. qemu-user cannot show this on arm64.
    ns $M --dedupe-idle 1s --dedupe "sh -c cat" -- sh -c '
        for p in 9001 9002 9003; do
            setsid nc -l -p $p -e sh -c "cat >/dev/null; : vm-eof" </dev/null >/dev/null 2>&1 &
            sleep 0.3
            sleep 1000 | nc 127.0.0.1 $p >/dev/null 2>&1 &
            sleep 0.3
        done
        sleep 6' >/tmp/eof.log 2>&1
    if grep -q "ended at EOF" /tmp/eof.log; then
        ok "$(grep -o '[a-z ]*[0-9]* is gone, ended at EOF' /tmp/eof.log | head -1)"
    else
        fail "$(grep -E 'duplicate|input|gone' /tmp/eof.log | head -5)"
    fi
}
check_exit_step() {
    # The ptrace route on a real aarch64 kernel: the start-up probe (a getpid and a
    # shutdown injected into a victim, checked) must pass, and a tracked duplicate that
    # ignores EOF (it sleeps on after its input ends) is made to exit 0 by an injected
    # exit_group(0) before any signal reaches it.
    ns $M --dedupe-idle 1s --eof-grace 500ms --dedupe "sh -c cat" -- sh -c '
        for p in 9011 9012 9013; do
            setsid nc -l -p $p -e sh -c "cat >/dev/null; sleep 1000; : vm-exit" </dev/null >/dev/null 2>&1 &
            sleep 0.3
            sleep 1000 | nc 127.0.0.1 $p >/dev/null 2>&1 &
            sleep 0.3
        done
        sleep 8' >/tmp/exit.log 2>&1
    if ! grep -q "exit=on" /tmp/exit.log; then
        fail "the ptrace probe failed: $(grep -E 'routes|inputs|refused' /tmp/exit.log | head -2)"
    elif grep -q "exit with status 0" /tmp/exit.log && ! grep -q "crash=true" /tmp/exit.log; then
        ok "probe passed; $(grep -o 'made [0-9]* exit with status 0' /tmp/exit.log | head -1)"
    else
        fail "$(grep -E 'duplicate|exit|gone|SIGTERM' /tmp/exit.log | head -5)"
    fi
}
check_cap() {
    ns $M --max-procs 10 -- sh -c '
        i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); done
        j=0; while [ $j -lt 100 ]; do
            n=$(ls -d /proc/[0-9]* | wc -l)
            [ $n -le 12 ] && echo "settled at $n" && exit 0
            sleep 0.1; j=$((j+1))
        done; echo "still $n"; exit 1' >/tmp/cap.log 2>&1
    rc=$?
    [ $rc = 0 ] && grep -q "terminating cap unit" /tmp/cap.log && ok "30 sleepers brought under a cap of 10: $(grep -E "^(settled|still)" /tmp/cap.log)" ||
        fail "rc $rc: $(tail -3 /tmp/cap.log)"
}
check_stop() {
    # SIGTERM to a nested mcpinit whose child ignores it: SIGKILL after the stop grace.
    unshare --pid --fork --mount-proc $M --stop-grace 1s -- sh -c 'trap "" TERM; sleep 1000 & wait' >/tmp/stop.log 2>&1 &
    pid=$!
    sleep 1
    kill -TERM $(nested $pid)
    start=$(date +%s)
    wait $pid
    rc=$?
    took=$(($(date +%s) - start))
    [ $took -le 4 ] && ok "stopped in ${took}s, status $rc (137: the SIGTERM-ignoring child was SIGKILLed after the grace)" || fail "took ${took}s, status $rc: $(tail -3 /tmp/stop.log)"
}

check_rss() {
    # A measurement, not a test: the resident set of mcpinit and of Debian's tini-static
    # (arm64), each PID 1 of a namespace supervising one `sleep`, read after 2 s. Never
    # fails. From smaps_rollup (a page-table walk): 6.1's VmRSS lags by up to 64 faults
    # per task, which for a process as small as tini is most of it. The initramfs is
    # tmpfs, where fault-around maps most of a binary's cached pages at once: Rss comes
    # out near the file's size for both; Anonymous (heap, stack, data) is what differs.
    [ -x /tini-static ] || { skip "no /tini-static in the initramfs"; return; }
    line=
    for init in "/tini-static --" "$M --log warn --"; do
        unshare --pid --fork --mount-proc $init sleep 1000 >/dev/null 2>&1 &
        pid=$!
        kid=$(nested $pid)
        sleep 2
        n=${init%% *}
        line="$line ${n##*/}: $(awk '/^(Rss|Anonymous):/{printf "%s %s kB ", $1, $2}' /proc/$kid/smaps_rollup)"
        kill -KILL $kid
        wait $pid
    done
    ok "Rss (smaps_rollup) as PID 1 over one child:$line"
}

failed=0
total=0
for name in $CHECKS; do
    total=$((total + 1))
    if type "check_$name" >/dev/null 2>&1; then "check_$name"; else fail "no such check"; fi
done
for f in /checks.d/*; do
    [ -x "$f" ] || continue
    name=${f##*/}
    total=$((total + 1))
    out=$("$f" 2>&1)
    rc=$?
    out=$(echo "$out" | head -1)
    case $rc in 0) ok "$out" ;; 77) skip "$out" ;; *) fail "status $rc: $out" ;; esac
done
echo "mcpinit-vm: $((total - failed)) of $total checks passed on $(uname -m) Linux $(uname -r)"
exit $failed
