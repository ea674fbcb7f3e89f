#!/bin/bash
# Our change (stripped..ours) as a patch series for QEMU's mailing list.
#
# qemu/series/NN-*.msg describe the patches in order: the commit message,
# then a line "---", then the files the patch is made of, one a line:
#     overlay PATH    a file of qemu/overlay, copied to PATH
#     patch NAME      a file of qemu/patches, applied (in series order)
# Every overlay file and every patch file belongs to exactly one of them.
# qemu/series/cover-letter.msg is the cover letter: subject line, empty
# line, text.
#
#   harness/series.sh          write the series to series/ (make series)
#   harness/series.sh --check  regenerate it twice (each run is a
#                              --generate DIR), compare, run checkpatch
#                              and git am it: one PASS/FAIL line per check
#
# Author, committer and dates are fixed, so the same inputs give the same
# bytes. Needs the tree that 'make prepare' lays out in build/src.
# shellcheck source=harness/common.sh
. "$(dirname "$0")/common.sh"

DESC=$ROOT/qemu/series       # the description of the series
OUT=$ROOT/series             # the generated patches (ignored by git)

SERIES_NAME='vmgenid developers'
SERIES_EMAIL='vmgenid@localhost'
SERIES_DATE='1767225600 +0000'   # 2026-01-01 00:00 UTC, raw git format

# The base and the tree to reach, read once (and handed to the processes
# --check starts) so that a 'make prepare' running meanwhile cannot mix
# two versions into one result.
git -C "$SRC" rev-parse -q --verify ours >/dev/null ||
    die "no prepared tree in build/src: run 'make prepare'"
export SERIES_BASE=${SERIES_BASE:-$(git -C "$SRC" rev-parse 'stripped^{commit}')}
export SERIES_OURS=${SERIES_OURS:-$(git -C "$SRC" rev-parse 'ours^{tree}')}

# git with the series' identity and date, and no user or system settings
# (format.*, diff.*, commit.gpgsign ...) that could change the output.
sgit() {
    GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
    GIT_AUTHOR_NAME=$SERIES_NAME GIT_AUTHOR_EMAIL=$SERIES_EMAIL \
    GIT_COMMITTER_NAME=$SERIES_NAME GIT_COMMITTER_EMAIL=$SERIES_EMAIL \
    GIT_AUTHOR_DATE=$SERIES_DATE GIT_COMMITTER_DATE=$SERIES_DATE \
        git "$@"
}

# --- the description ------------------------------------------------------

messages() {
    local m
    for m in "$DESC"/[0-9]*.msg; do
        [ ! -f "$m" ] || echo "$m"
    done
}

# The commit message of a description: everything before the "---" line.
msg_text() { sed '/^---$/,$d' "$1"; }

# The files of kind $2 (overlay or patch) a description lists, in order.
msg_files() { sed '1,/^---$/d' "$1" | awk -v kind="$2" '$1 == kind { print $2 }'; }

series_patches() { sed '/^[[:space:]]*$/d;/^#/d' "$PATCHES/series"; }

patch_files() {
    (series_patches; cd "$PATCHES" && ls -- *.patch 2>/dev/null) | sort -u
}

# Print every problem with the description; succeed if there is none.
problems() {
    local msg name line count f want got
    [ -n "$(messages)" ] || echo "no qemu/series/NN-*.msg"
    [ -f "$DESC/cover-letter.msg" ] || echo "no qemu/series/cover-letter.msg"
    for msg in $(messages); do
        name=qemu/series/${msg##*/}
        grep -qx -- '---' "$msg" || echo "$name: no '---' line before its files"
        [ -n "$(msg_text "$msg" | head -n 1)" ] ||
            echo "$name: the first line (the subject) is empty"
        msg_text "$msg" | grep -q '^Signed-off-by: ' ||
            echo "$name: no Signed-off-by line"
        while read -r line; do
            case $line in
                '') ;;
                'overlay '*[!\ ]*|'patch '*[!\ ]*)
                    [ "$(echo "$line" | wc -w)" = 2 ] ||
                        echo "$name: '$line': one file a line" ;;
                *) echo "$name: '$line' is neither 'overlay PATH' nor 'patch NAME'" ;;
            esac
        done < <(sed '1,/^---$/d' "$msg")
    done
    if LC_ALL=C grep -n '[^ -~]' "$DESC"/*.msg /dev/null; then
        echo "qemu/series: the lines above are not printable ASCII"
    fi

    # Each file in exactly one patch, and each listed file exists.
    for f in $(overlay_files); do
        count=$(for msg in $(messages); do msg_files "$msg" overlay; done | grep -cxF -- "$f") || true
        [ "$count" = 1 ] ||
            echo "qemu/overlay/$f is in $count series patches instead of one"
    done
    for f in $(patch_files); do
        count=$(for msg in $(messages); do msg_files "$msg" patch; done | grep -cxF -- "$f") || true
        [ "$count" = 1 ] ||
            echo "qemu/patches/$f is in $count series patches instead of one"
    done
    for msg in $(messages); do
        for f in $(msg_files "$msg" overlay); do
            [ -f "$OVERLAY/$f" ] ||
                echo "qemu/series/${msg##*/}: no file qemu/overlay/$f"
        done
        for f in $(msg_files "$msg" patch); do
            series_patches | grep -qxF -- "$f" ||
                echo "qemu/series/${msg##*/}: $f is not in qemu/patches/series"
        done
    done

    # Patches build on each other: the series keeps their order.
    want=$(series_patches)
    got=$(for msg in $(messages); do msg_files "$msg" patch; done)
    [ "$want" = "$got" ] || [ "$(echo "$want" | sort)" != "$(echo "$got" | sort)" ] ||
        echo "qemu/series lists the patch files in another order than qemu/patches/series"
}

check_description() {
    local found
    found=$(problems)
    [ -z "$found" ] || { echo "$found" >&2; return 1; }
}

# --- generating -----------------------------------------------------------

# Temporary folders and worktrees, removed when the script ends.
TEMPS=()
cleanup() {
    local dir
    for dir in "${TEMPS[@]}"; do
        if [ -e "$dir/.git" ]; then
            git -C "$SRC" worktree remove --force "$dir" || true
        fi
        rm -rf "$dir"
    done
    git -C "$SRC" worktree prune
}
trap cleanup EXIT

# temp_dir NAME: set TMP to a new empty folder under build/.
temp_dir() {
    TMP=$(mktemp -d "$BUILD/$1.XXXXXX")
    TEMPS+=("$TMP")
}

# Set WT to a new worktree of build/src at stripped.
new_worktree() {
    temp_dir series-tree
    WT=$TMP
    git -C "$SRC" worktree add -q --detach "$WT" "$SERIES_BASE"
}

# Fill the cover letter's placeholders from qemu/series/cover-letter.msg.
fill_cover_letter() {
    local letter=$1 subject blurb
    subject=$(head -n 1 "$DESC/cover-letter.msg")
    blurb=$(tail -n +3 "$DESC/cover-letter.msg")
    SUBJECT=$subject BLURB=$blurb awk '
        $0 == "*** BLURB HERE ***" { print ENVIRON["BLURB"]; next }
        (i = index($0, "*** SUBJECT HERE ***")) {
            $0 = substr($0, 1, i - 1) ENVIRON["SUBJECT"] substr($0, i + 20)
        }
        { print }' "$letter" > "$letter.new"
    mv "$letter.new" "$letter"
    ! grep -q '\*\*\* .* HERE \*\*\*' "$letter" ||
        die "format-patch's cover letter has placeholders we did not fill"
}

# generate DIR: one commit per description on a worktree at stripped, the
# final tree checked against ours, then format-patch into DIR.
generate() {
    local dest=$1 wt msg f
    check_description || die "fix qemu/series (see above)"
    new_worktree
    wt=$WT
    for msg in $(messages); do
        for f in $(msg_files "$msg" patch); do
            sgit -C "$wt" apply --index "$PATCHES/$f" ||
                die "qemu/patches/$f does not apply in qemu/series/${msg##*/}"
        done
        for f in $(msg_files "$msg" overlay); do
            mkdir -p "$(dirname "$wt/$f")"
            cp "$OVERLAY/$f" "$wt/$f"
            if [ -x "$OVERLAY/$f" ]; then chmod 755 "$wt/$f"; else chmod 644 "$wt/$f"; fi
            sgit -C "$wt" add -f -- "$f"
        done
        msg_text "$msg" |
            sgit -C "$wt" commit -q --no-verify --cleanup=whitespace -F - ||
            die "qemu/series/${msg##*/}: nothing to commit"
    done
    if [ "$(git -C "$wt" rev-parse 'HEAD^{tree}')" != "$SERIES_OURS" ]; then
        git -C "$wt" diff --stat HEAD "$SERIES_OURS" >&2
        die "the series does not end at ours (diff above: series -> ours);" \
            "run 'make prepare' after editing qemu/overlay or qemu/patches"
    fi
    mkdir -p "$dest"
    # --no-signature: no git version; --full-index: no abbreviation that
    # depends on the repository's size; --base: the commit it applies to.
    sgit -C "$wt" format-patch -q --cover-letter --numbered --no-signature \
        --full-index --base="$SERIES_BASE" -o "$dest" "$SERIES_BASE..HEAD"
    fill_cover_letter "$dest"/0000-cover-letter.patch
}

# checkpatch PATCH: QEMU's checkpatch, clean (no error, no warning). A
# patch that only imports headers from Linux gets the one warning every
# such import in QEMU gets, which asks whether it was made with
# scripts/update-linux-headers.sh (it was).
checkpatch() {
    local out files
    out=$(cd "$(dirname "$1")" &&
          "$SRC/scripts/checkpatch.pl" --strict "$(basename "$1")" 2>&1) &&
        echo "$out" | grep -q '^total: 0 errors, 0 warnings,' && return 0
    files=$(sed -n 's|^+++ b/||p' "$1" | grep -v -E '^(linux-headers|include/standard-headers)/')
    if [ -z "$files" ] &&
       echo "$out" | grep -q '^total: 0 errors, 1 warnings,' &&
       echo "$out" | grep -q '^WARNING: added, moved or deleted file(s) imported from Linux'; then
        return 0
    fi
    echo "$out"
    return 1
}

# The patches format-patch wrote in $1, cover letter aside, in order.
series_patch_files() {
    local p
    for p in "$1"/[0-9][0-9][0-9][0-9]-*.patch; do
        [ ! -f "$p" ] || [ "${p##*/}" = 0000-cover-letter.patch ] || echo "$p"
    done
}

# --- make series ----------------------------------------------------------

write_series() {
    local tmp p bad=0
    temp_dir series-out
    tmp=$TMP
    generate "$tmp"
    for p in $(series_patch_files "$tmp"); do
        checkpatch "$p" || { echo "checkpatch: ${p##*/} is not clean (above)" >&2; bad=1; }
    done
    rm -rf "$OUT"
    mv "$tmp" "$OUT"
    for p in "$OUT"/*.patch; do
        echo "wrote ${p#"$ROOT"/}"
    done
    echo "base: stripped (${SERIES_BASE:0:12}); checkpatch:" \
         "$([ $bad = 0 ] && echo clean || echo 'NOT clean')"
    [ $bad = 0 ]
}

# --- harness/series.sh --check --------------------------------------------

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
indent() { sed 's/^/    /' | tail -n "${1:-20}"; }

check_series() {
    local a b log wt p n=0 out last
    temp_dir series-check
    a=$TMP/a b=$TMP/b log=$TMP/log

    if out=$(problems) && [ -z "$out" ]; then
        pass "series: each overlay and patch file is in exactly one series patch"
    else
        fail "series: qemu/series does not cover our files exactly once"
        echo "$out" | indent 40
        return
    fi

    # Each run in its own process, with its own worktree.
    if bash "$0" --generate "$a" >"$log" 2>&1 && bash "$0" --generate "$b" >>"$log" 2>&1; then
        pass "series: generated, ends at ours' tree"
    else
        fail "series: could not generate it"
        indent 30 < "$log"
        return
    fi
    if diff -r "$a" "$b" >"$log" 2>&1; then
        pass "series: generated twice, byte-identical ($(find "$a" -type f | wc -l) files)"
    else
        fail "series: two generations differ"
        indent 30 < "$log"
    fi

    for p in $(series_patch_files "$a"); do
        if checkpatch "$p" >"$log" 2>&1; then
            pass "checkpatch ${p##*/}"
        else
            fail "checkpatch ${p##*/}"
            indent 40 < "$log"
        fi
    done

    new_worktree
    wt=$WT
    for p in $(series_patch_files "$a"); do
        n=$((n + 1))
        if ! sgit -C "$wt" am -q "$p" >"$log" 2>&1; then
            fail "git am: ${p##*/} does not apply"
            indent 20 < "$log"
            return
        fi
    done
    # The patches carry author and date, and git am commits with the same
    # committer and date: it must give back the very commits we wrote.
    last=$(series_patch_files "$a" | tail -n 1)
    if [ "From $(git -C "$wt" rev-parse HEAD)" = "$(head -n 1 "$last" | cut -d ' ' -f 1-2)" ]; then
        pass "git am: gives back the generated commits, ids and all"
    else
        fail "git am: does not give back the generated commits"
        git -C "$wt" log --format='%H %s' "$SERIES_BASE..HEAD" | indent
    fi
    if [ "$(git -C "$wt" rev-parse 'HEAD^{tree}')" = "$SERIES_OURS" ]; then
        pass "git am: the $n patches on stripped give ours' tree"
    else
        fail "git am: the $n patches on stripped do not give ours' tree"
        git -C "$wt" diff --stat HEAD "$SERIES_OURS" | indent 20
    fi
}

case ${1:-} in
    '') write_series ;;
    --generate) generate "$2" ;;
    --check)
        check_series
        echo "series: $PASSED passed, $FAILED failed"
        [ "$FAILED" = 0 ] ;;
    *) die "usage: $0 [--check]" ;;
esac
