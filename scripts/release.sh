#!/usr/bin/env bash
# Release artifacts: both static binaries and their checksums, built twice to show the
# same source gives the same bytes.
#
#   dist/v$VERSION/mcpinit-$VERSION-amd64     x86_64-unknown-linux-musl
#   dist/v$VERSION/mcpinit-$VERSION-arm64     aarch64-unknown-linux-musl
#   dist/v$VERSION/SHA256SUMS                 `sha256sum -c SHA256SUMS` checks both
#
# Architectures are named as Docker's TARGETARCH names them (amd64, arm64), so a
# Dockerfile can ADD mcpinit-$VERSION-${TARGETARCH} (README, "Use it").
#
# What is built is the COMMITTED source (HEAD, or the commit given as $1), never the
# working tree: each build runs in its own fresh `git worktree` (two different
# directories) with its own target directory, SOURCE_DATE_EPOCH set to the commit's
# time, and the build paths remapped (--remap-path-prefix). The script then compares
# the two builds byte for byte and says whether they are identical; they must be, or
# it fails. Usage: scripts/release.sh [COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
commit=$(git rev-parse --verify "${1:-HEAD}^{commit}")
short=$(git rev-parse --short=12 "$commit")
version=$(git show "$commit:Cargo.toml" | sed -n 's/^version = "\(.*\)"/\1/p' | head -1)
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$commit")
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
    echo "release: note: the working tree has uncommitted changes; building commit $short as committed" >&2

cargo_home=${CARGO_HOME:-$HOME/.cargo}
sysroot=$(rustc --print sysroot)
scratch=$(mktemp -d /tmp/mcpinit-release.XXXXXX)
cleanup() {
    for d in "$scratch"/src-*; do
        [ -d "$d" ] && git -C "$root" worktree remove --force "$d" >/dev/null 2>&1
    done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A triple=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl)

# build NAME: both binaries from a fresh worktree at $scratch/src-NAME.
build() {
    local src=$scratch/src-$1 arch t
    git -C "$root" worktree add --detach --quiet "$src" "$commit"
    for arch in amd64 arm64; do
        t=${triple[$arch]}
        # Appended to .cargo/config.toml's flags for the target (cargo merges the lists).
        (cd "$src" && MCPINIT_COMMIT=$short CARGO_TARGET_DIR="$scratch/target-$1" \
            scripts/build-static.sh "$arch" -- --quiet \
            --config "target.$t.rustflags=['--remap-path-prefix=$src=/build/mcpinit', '--remap-path-prefix=$cargo_home=/cargo', '--remap-path-prefix=$sysroot=/rustc']" \
            >/dev/null)
        cp "$scratch/target-$1/$t/release/mcpinit" "$scratch/mcpinit-$1-$arch"
    done
}

echo "release: building $short (v$version) twice, in $scratch/src-a and $scratch/src-b"
start=$SECONDS
build a
build b
echo "release: two builds in $((SECONDS - start))s"

out=dist/v$version
mkdir -p "$out"
identical=yes
for arch in amd64 arm64; do
    a=$scratch/mcpinit-a-$arch b=$scratch/mcpinit-b-$arch
    if cmp -s "$a" "$b"; then
        echo "release: $arch: identical bytes in both builds ($(sha256sum <"$a" | cut -c1-16)…, $(stat -c %s "$a") bytes)"
    else
        echo "release: $arch: the two builds DIFFER: $(cmp "$a" "$b" | head -1)" >&2
        identical=no
    fi
    cp "$a" "$out/mcpinit-$version-$arch"
done
(cd "$out" && sha256sum "mcpinit-$version-amd64" "mcpinit-$version-arm64" >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
echo "release: $out:"
(cd "$out" && ls -l mcpinit-* SHA256SUMS | awk '{print "  " $5 "  " $9}' && sed 's/^/  /' SHA256SUMS)
"$out/mcpinit-$version-amd64" --version | sed 's/^/release: amd64 says: /'
if command -v qemu-aarch64-static >/dev/null; then
    qemu-aarch64-static "$out/mcpinit-$version-arm64" --version | sed 's/^/release: arm64 says (qemu-user): /'
fi
[ "$identical" = yes ] || { echo "release: FAIL: not reproducible" >&2; exit 1; }
echo "release: reproducible: both architectures gave the same bytes twice"
