#!/usr/bin/env bash
# Make sure the Python venv with prometheus_client (the real parser the metrics tests
# scrape with) exists under ~/.cache/mcpinit-tests, then print its python's path.
# Idempotent; concurrent callers wait for one another.
set -euo pipefail
version=0.26.0
dir="${HOME:-/root}/.cache/mcpinit-tests/prometheus-client-$version"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if ! "$dir/bin/python" -c "import prometheus_client" 2>/dev/null; then
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install -q --disable-pip-version-check "prometheus_client==$version" >&2
fi
echo "$dir/bin/python"
