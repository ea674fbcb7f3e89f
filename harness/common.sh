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

# unstable_apt: the path of an apt configuration of our own that knows
# Debian unstable's amd64 and arm64 packages (for Linux 7, which bookworm
# lacks), from the mirror the machine's apt uses for bookworm; its lists
# fetched on first use. Only 'apt-get download' runs with it: it has its
# own lists, cache and an empty dpkg status, so the host's packages and
# apt state never change.
unstable_apt() {
    local dir=$BUILD/apt-unstable mirror
    if [ ! -f "$dir/apt.conf" ]; then
        mirror=$(bash "$ROOT/harness/deps.sh" --mirror) || return 1
        mkdir -p "$dir"/{parts,lists/partial,cache/archives/partial}
        : > "$dir/status"
        echo "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
             "$mirror unstable main" > "$dir/sources.list"
        cat > "$dir/apt.conf.new" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/parts";
Dir::Etc::Preferences "$dir/preferences";
Dir::Etc::PreferencesParts "$dir/parts";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
Dir::State::status "$dir/status";
APT::Architectures { "amd64"; "arm64"; };
Acquire::Languages "none";
CONF
        mv "$dir/apt.conf.new" "$dir/apt.conf"
    fi
    if ! compgen -G "$dir/lists/*_Packages*" >/dev/null; then
        APT_CONFIG=$dir/apt.conf apt-get update -q >/dev/null 2>&1 ||
            die "apt-get update of Debian unstable failed (see $dir/sources.list)"
    fi
    echo "$dir/apt.conf"
}
