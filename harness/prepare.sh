#!/bin/bash
# Lay out the QEMU tree in build/src as a git repository with three steps:
#   pristine  Debian's source with Debian's patches applied
#   stripped  pristine minus upstream's vmgenid (qemu/strip)
#   ours      stripped plus qemu/patches (in series order) and qemu/overlay
# Each step is rebuilt only when its inputs changed, and moving the tree to a
# new "ours" rewrites only the files that differ, so ninja's rebuild stays small.
. "$(dirname "$0")/common.sh"

upstream_version=${QEMU_DEB_VERSION#*:}

# The hash of a step's inputs is kept in its commit message, so a change to
# the strip or the version is noticed and the step is redone.
inputs_hash() {
    (echo "$QEMU_DEB_VERSION"; cd "$ROOT" && cat "$@") | sha256sum | cut -c1-16
}

step_hash() {
    tgit log -1 --format=%b "$1" 2>/dev/null | sed -n 's/^Inputs: //p'
}

make_pristine() {
    local want
    # "2": subprojects are committed too (QEMU's .gitignore hides them).
    want=$(echo 2 | inputs_hash /dev/stdin)
    [ "$(step_hash pristine)" = "$want" ] && return 0
    rm -rf "$SRC" "$SRC.tmp"
    dpkg-source -q -x "$DL/qemu_${upstream_version}.dsc" "$SRC.tmp" \
            >"$BUILD/unpack.log" 2>&1 ||
        die "unpacking failed: the download in $DL is damaged; remove that folder and run 'make' again"
    # Keep QEMU itself: packaging and quilt's bookkeeping are not part of it,
    # nor the copy of the tarball that dpkg-source leaves beside the tree.
    rm -rf "$SRC.tmp/debian" "$SRC.tmp/.pc" "$BUILD"/qemu_*.orig.tar.*
    mv "$SRC.tmp" "$SRC"
    tgit init -q -b ours
    tgit add -A -f
    tgit commit -q -m "pristine: qemu $QEMU_DEB_VERSION, Debian patches applied" \
        -m "Inputs: $want"
    tgit tag -f pristine >/dev/null
}

make_stripped() {
    local want
    want=$(inputs_hash qemu/strip/delete qemu/strip/references.patch)
    [ "$(step_hash stripped)" = "$want" ] && return 0
    tgit checkout -q -f --detach pristine
    xargs -a "$STRIP/delete" git -C "$SRC" rm -q --
    tgit apply --index "$STRIP/references.patch" ||
        die "qemu/strip/references.patch no longer applies to $QEMU_DEB_VERSION"
    tgit commit -q -m "stripped: upstream vmgenid removed" -m "Inputs: $want"
    tgit tag -f stripped >/dev/null
}

# Build the "ours" commit in a private index, without touching the work tree.
make_ours_commit() {
    local index=$BUILD/ours.index patch file mode blob tree
    rm -f "$index"
    export GIT_INDEX_FILE=$index
    tgit read-tree stripped
    while read -r patch; do
        case $patch in ''|'#'*) continue ;; esac
        tgit apply --cached "$PATCHES/$patch" ||
            die "qemu/patches/$patch does not apply"
    done < "$PATCHES/series"
    overlay_files | while read -r file; do
        mode=100644
        [ -x "$OVERLAY/$file" ] && mode=100755
        blob=$(tgit hash-object -w "$OVERLAY/$file")
        tgit update-index --add --cacheinfo "$mode,$blob,$file"
    done
    tree=$(tgit write-tree)
    unset GIT_INDEX_FILE
    rm -f "$index"
    if [ "$(tgit rev-parse -q --verify 'ours^{tree}' 2>/dev/null)" = "$tree" ] &&
       [ "$(tgit rev-parse 'ours^')" = "$(tgit rev-parse stripped)" ]; then
        tgit rev-parse ours
    else
        echo "ours: the vmgenid device" | tgit commit-tree "$tree" -p stripped
    fi
}

make_ours() {
    local commit
    commit=$(make_ours_commit)
    if [ "$(tgit rev-parse -q --verify HEAD)" != "$commit" ] ||
       [ -n "$(tgit status --porcelain --untracked-files=no)" ]; then
        tgit checkout -q -f -B ours "$commit"
    fi
}

[ -f "$DL/qemu_${upstream_version}.dsc" ] || die "no download yet: run 'make fetch'"
make_pristine
make_stripped
make_ours
echo "prepared $SRC: $(tgit rev-parse --short pristine) pristine," \
     "$(tgit rev-parse --short stripped) stripped, $(tgit rev-parse --short ours) ours"
