#!/usr/bin/env bash
# mcpinit side by side with tini-static, catatonit and dumb-init (docs/benchmarks.md).
#
#   scripts/bench.sh            full run, about 10 minutes; results in target/bench/
#   scripts/bench.sh --quick    smoke run, about 2 minutes
#   scripts/bench.sh --docs     full run, then rewrite the results in docs/benchmarks.md
#   scripts/bench.sh --only startup,memory   selected sections, merged into the last run
#   scripts/bench.sh --only scan,scale       look cost and idle cost from 100 to 10,000
#                               processes, side by side with the mcpinit before
#                               incremental looks (BASELINE_REV, default 38420cf)
#   scripts/bench.sh --soak [SECONDS]        mcpinit alone under churn (default 600 s);
#                               exits 1 if its RSS or open fds grew (with --docs: rewrites
#                               the soak section of docs/benchmarks.md)
#
# Needs root (PID namespaces), the peers (apt-get install tini dumb-init catatonit),
# gcc, python3 and gnuplot. Not part of the test suite: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=() docs=() only=() soak=
while [ $# -gt 0 ]; do
    case "$1" in
        --soak)
            soak=600
            if [[ "${2:-}" =~ ^[0-9]+$ ]]; then soak=$2; shift; fi ;;
        --quick) quick=(--quick) ;;
        --docs) docs=(--docs) ;;
        --only) only=(--only "$2"); shift ;;
        *) echo "usage: scripts/bench.sh [--quick] [--docs] [--only SECTIONS] | --soak [SECONDS] [--docs]" >&2
           exit 2 ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || { echo "bench: needs root for PID namespaces" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$PWD/target}
out=$target/bench

if [ -n "$soak" ]; then
    for tool in gcc python3 gnuplot unshare timeout; do
        command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
    done
    mkdir -p "$out"
    scripts/build-static.sh >&2
    gcc -O2 -Wall -Wextra -o "$out/benchkit" scripts/bench/benchkit.c
    exec python3 scripts/bench/soak.py "$soak" "${docs[@]}" --out "$out" \
        --mcpinit "$target/x86_64-unknown-linux-musl/release/mcpinit" --benchkit "$out/benchkit"
fi

for tool in tini-static catatonit dumb-init gcc python3 gnuplot unshare timeout; do
    command -v "$tool" >/dev/null || {
        echo "bench: $tool is missing (apt-get install tini dumb-init catatonit gcc python3 gnuplot)" >&2
        exit 1
    }
done

mkdir -p "$out"
scripts/build-static.sh >&2
gcc -O2 -Wall -Wextra -o "$out/benchkit" scripts/bench/benchkit.c
cargo bench --locked --no-run --quiet 2>&2

# The scale section's baseline: mcpinit as it was before incremental looks, built once
# from its own tree (git archive) and kept by revision.
base_rev=${BASELINE_REV:-38420cf}
base=$out/baseline
if [[ -z "${only[*]}" || "${only[1]:-}" == *scale* ]] && [ "$(cat "$base/REV" 2>/dev/null)" != "$base_rev" ]; then
    rm -rf "$base/src" && mkdir -p "$base/src"
    git archive "$base_rev" | tar -x -C "$base/src"
    (cd "$base/src" && CARGO_TARGET_DIR="$base/target" scripts/build-static.sh >&2)
    cp "$base/target/x86_64-unknown-linux-musl/release/mcpinit" "$base/mcpinit"
    echo "$base_rev" > "$base/REV"
fi

python3 scripts/bench/compare.py "${quick[@]}" "${only[@]}" --out "$out" \
    --baseline "$base/mcpinit" --baseline-rev "$base_rev" \
    --mcpinit "$target/x86_64-unknown-linux-musl/release/mcpinit" \
    --benchkit "$out/benchkit" --criterion "$target/criterion"
python3 scripts/bench/report.py --out "$out" "${docs[@]}"
