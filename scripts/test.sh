#!/usr/bin/env bash
# The whole test suite: what CI runs. Unit tests of the pure core, then every
# process-spawning test, each inside its own PID namespace under a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-static.sh
cargo test --locked -- --test-threads=2
# The aarch64 binary: the same suites under qemu-user, then mcpinit as PID 1 of an
# aarch64 VM (qemu-system, Debian's arm64 kernel) running tests/aarch64/vm/checks.sh
# (tests/aarch64/run.sh; installs qemu-user-static and qemu-system-arm when root).
tests/aarch64/run.sh
# tini's own inner suite against mcpinit, in its own PID namespace (tests/tini/run.sh)
tests/tini/run.sh
# mcpinit in a real Docker container (starts a dockerd if none runs; fails in CI without one).
# Both engine tests hold /tmp/engine.lock while they run.
tests/docker/run.sh
# mcpinit in a real podman container, rootful (tests/podman/run.sh; fails in CI without one)
tests/podman/run.sh
# The real MetaMCP (pinned) under mcpinit with real MCP SDK clients and a private Postgres
# (tests/metamcp/run.sh; installs pnpm, the backend's dependencies and uv under
# ~/.cache/mcpinit-tests; SKIPPED without the snapshot, a failure under CI=true).
# Scenarios: healthy, leak (with a uvx server), stubborn, twins (METAMCP_SCENARIOS picks).
tests/metamcp/run.sh
