# Shared settings for the harness scripts; sourced, never run.
# shellcheck shell=bash

# The one place that names the QEMU release we build on (Debian source version).
QEMU_DEB_VERSION='1:10.2.2+ds-1'

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
DL=$BUILD/dl                 # apt-get source download, reused across runs
SRC=$BUILD/src               # prepared QEMU tree (git: pristine, stripped, ours)
OBJ=$BUILD/qemu              # meson build folder for $SRC
OVERLAY=$ROOT/qemu/overlay   # the files we own, at their QEMU paths
PATCHES=$ROOT/qemu/patches   # our changes to upstream files, listed in series
STRIP=$ROOT/qemu/strip       # how upstream's vmgenid is removed
ACCEL=${ACCEL:-tcg}          # KVM only when asked: ACCEL=kvm

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# ccache when installed; hashes ignore the folder so sibling builds share it.
# In depend mode it takes the headers from the compiler's -MD output
# instead of running the preprocessor once more for every object it
# does not have, which makes a build with an empty cache much slower.
if [ -d /usr/lib/ccache ]; then
    export PATH=/usr/lib/ccache:$PATH
    export CCACHE_BASEDIR=$BUILD CCACHE_NOHASHDIR=1 CCACHE_DEPEND=1
fi

die() { echo "error: $*" >&2; exit 1; }

# The files we own, relative to the overlay, sorted; not the byte-code
# caches Python leaves beside a test run from there.
overlay_files() {
    (cd "$OVERLAY" && find . -type f -not -path '*/__pycache__/*' |
        sed 's|^\./||' | sort)
}

# phase NAME CMD...: run CMD and report how long it took.
phase() {
    local name=$1 start=$SECONDS
    shift
    echo "== $name"
    "$@"
    echo "== $name: $((SECONDS - start)) s"
}

# worktree DIR TAG: DIR is a worktree of the prepared tree at TAG. One left
# from a tree that was unpacked again is stale and is made anew.
worktree() {
    local dir=$1 tag=$2
    if ! git -C "$dir" checkout -q -f --detach "$tag" 2>/dev/null; then
        rm -rf "$dir"
        git -C "$SRC" worktree prune
        mkdir -p "$(dirname "$dir")"
        git -C "$SRC" worktree add -q -f --detach "$dir" "$tag"
    fi
}

# git in the prepared tree, with a fixed identity so commits are reproducible.
tgit() {
    GIT_AUTHOR_NAME=harness GIT_AUTHOR_EMAIL=harness@localhost \
    GIT_COMMITTER_NAME=harness GIT_COMMITTER_EMAIL=harness@localhost \
    GIT_AUTHOR_DATE='2000-01-01T00:00:00Z' \
    GIT_COMMITTER_DATE='2000-01-01T00:00:00Z' \
        git -C "${TREE:-$SRC}" "$@"
}
