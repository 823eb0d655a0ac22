# uv, pinned, installed with pip into a venv of its own under the tests' cache: shared by
# tests/metamcp/run.sh and scripts/setup.sh (the behaviour test's uvx server), so both
# find the same uvx and the same uv cache. Source it, then call setup_uv; it sets uvbin
# (empty when uv cannot be had) and uses the caller's `say`.
UV_VERSION=0.13.8
uv_cache=${MCPINIT_TEST_CACHE:-${HOME:-/root}/.cache/mcpinit-tests}

setup_uv() {
    uvbin=$uv_cache/uv-$UV_VERSION/bin
    [ "${E2E_NO_UVX:-}" = 1 ] && { uvbin=""; return 0; }
    [ -x "$uvbin/uvx" ] && return 0
    say "installing uv $UV_VERSION (pip, in a venv of its own)"
    if ! { python3 -m venv "$uv_cache/uv-$UV_VERSION" &&
        timeout 300 "$uvbin/pip" install -q "uv==$UV_VERSION"; } >/dev/null 2>&1; then
        say "cannot install uv: the uvx server is left out"
        rm -rf "$uv_cache/uv-$UV_VERSION"
        uvbin=""
    fi
}
