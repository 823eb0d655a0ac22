#!/usr/bin/env bash
# mcpinit side by side with tini-static, catatonit and dumb-init (docs/benchmarks.md).
#
#   scripts/bench.sh            full run, about 10 minutes; results in target/bench/
#   scripts/bench.sh --quick    smoke run, about 2 minutes
#   scripts/bench.sh --docs     full run, then rewrite the results in docs/benchmarks.md
#   scripts/bench.sh --only startup,memory   selected sections, merged into the last run
#
# Needs root (PID namespaces), the peers (apt-get install tini dumb-init catatonit),
# gcc, python3 and gnuplot. Not part of the test suite: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=() docs=() only=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--quick) ;;
        --docs) docs=(--docs) ;;
        --only) only=(--only "$2"); shift ;;
        *) echo "usage: scripts/bench.sh [--quick] [--docs] [--only SECTIONS]" >&2; exit 2 ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || { echo "bench: needs root for PID namespaces" >&2; exit 1; }
for tool in tini-static catatonit dumb-init gcc python3 gnuplot unshare timeout; do
    command -v "$tool" >/dev/null || {
        echo "bench: $tool is missing (apt-get install tini dumb-init catatonit gcc python3 gnuplot)" >&2
        exit 1
    }
done

target=${CARGO_TARGET_DIR:-$PWD/target}
out=$target/bench
mkdir -p "$out"
scripts/build-static.sh >&2
gcc -O2 -Wall -Wextra -o "$out/benchkit" scripts/bench/benchkit.c
cargo bench --locked --no-run --quiet 2>&2

python3 scripts/bench/compare.py "${quick[@]}" "${only[@]}" --out "$out" \
    --mcpinit "$target/x86_64-unknown-linux-musl/release/mcpinit" \
    --benchkit "$out/benchkit" --criterion "$target/criterion"
python3 scripts/bench/report.py --out "$out" "${docs[@]}"
