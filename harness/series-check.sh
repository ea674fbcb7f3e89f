#!/bin/bash
# make series-check: every patch of series/ builds and works on its own.
#
# In a fresh worktree of build/src at the series' base, build the base
# (it has neither the device nor its commands), then git am the patches
# one at a time; after each, build with harness/build.sh in
# build/series-check/qemu (sharing ccache with the other builds), build
# the configuration without default devices (harness/build.sh reduced) in
# build/series-check/reduced, and run the checks that what the tree holds
# by then allows:
#   always                           the emulator starts (pc and q35)
#   QAPI declares the commands       query-/set-vm-generation-id exist
#   hw/acpi/vmgenid.c is there       the vmgenid device exists
#   pc and q35 accept the device     -device vmgenid,guid=... works on both
#   tests/qtest/vmgenid-test.c       the qtest, with TAP, its sequences
#                                    one event deep (its migrations with
#                                    upstream QEMU use the build of
#                                    'make check', build/upstream, if
#                                    any); not again after a patch that
#                                    changes only functional tests
# One PASS/FAIL line per check; exits non-zero if any failed. Slow: every
# build after a QAPI change recompiles much of QEMU.
# shellcheck source=harness/common.sh
. "$(dirname "$0")/common.sh"

DIR=$BUILD/series-check
WT=$DIR/src                  # the worktree (a fixed path: meson remembers it)
OUT=$DIR/qemu                # its build folder
LOGS=$DIR/logs
PATCH_DIR=$ROOT/series
GUID=324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

# check NAME LOG CMD...: one check that passes when CMD succeeds.
check() {
    local name=$1 log=$2
    shift 2
    if "$@" >"$log" 2>&1; then
        pass "$name"
    else
        fail "$name (log: ${log#"$ROOT"/})"
        tail -n 20 "$log" | sed 's/^/    /'
    fi
}

# qmp ARGS...: run the emulator with ARGS under qtest, paused, feeding it
# the QMP commands on stdin after the handshake; print its answers.
qmp() {
    (echo '{"execute":"qmp_capabilities"}'; cat; echo '{"execute":"quit"}') |
        timeout 60 "$OUT/qemu-system-x86_64" -display none -accel qtest \
            -nodefaults -S -qmp stdio "$@"
}

starts() {
    local m out
    for m in pc q35; do
        out=$(echo '{"execute":"query-status"}' | qmp -M "$m")
        echo "$m: $out"
        echo "$out" | grep -q '"status": "prelaunch"' || return 1
    done
}

has_commands() {
    local out
    out=$(printf '%s\n' '{"execute":"query-commands"}' \
              '{"execute":"query-vm-generation-id"}' | qmp -M q35)
    if ! echo "$out" | grep -q '"name": "query-vm-generation-id"' ||
       ! echo "$out" | grep -q '"name": "set-vm-generation-id"' ||
       ! echo "$out" | grep -q '"class": "GenericError"'; then
        echo "$out"
        return 1
    fi
    echo "both commands listed; without a device: $(echo "$out" | grep -o '"desc": "[^"]*"')"
}

has_device() {
    "$OUT/qemu-system-x86_64" -display none -accel qtest -device help |
        grep -F 'name "vmgenid"'
}

# The base: upstream's vmgenid is gone, device and commands.
has_nothing() {
    local out
    out=$(echo '{"execute":"query-commands"}' | qmp -M q35)
    echo "$out" | grep -q '"name": "query-status"' || return 1
    ! echo "$out" | grep -q 'vm-generation-id' && ! has_device
}

on_machines() {
    local m out
    for m in pc q35; do
        out=$(echo '{"execute":"query-vm-generation-id"}' |
              qmp -M "$m" -device "vmgenid,guid=$GUID")
        echo "$m: $out"
        echo "$out" | grep -q "\"guid\": \"$GUID\"" || return 1
    done
}

# Upstream QEMU for the qtest's migrations to and from it: the one that
# 'make check' builds, unless the environment names another.
if [ -z "${VMGENID_TEST_UPSTREAM_QEMU:-}" ] && [ -x "$BUILD/upstream/qemu-system-x86_64" ]; then
    export VMGENID_TEST_UPSTREAM_QEMU=$BUILD/upstream/qemu-system-x86_64
fi

# qtest: the device's qtest, one line per failed test, counts at the end.
qtest() {
    local log=$1 rc=0 ok skip notok
    (cd "$OUT" &&
     QTEST_QEMU_BINARY=./qemu-system-x86_64 QTEST_QEMU_IMG=./qemu-img \
     VMGENID_SEQ_DEPTH=${VMGENID_SEQ_DEPTH:-1} \
     G_TEST_SRCDIR="$WT/tests/qtest" tests/qtest/vmgenid-test --tap) \
        >"$log" 2>&1 || rc=$?
    ok=$(grep -c '^ok ' "$log") || true
    skip=$(grep -ci '^ok .*# skip' "$log") || true
    notok=$(grep -c '^not ok ' "$log") || true
    grep '^not ok ' "$log" | sed 's/^/    /'
    echo "$((ok - skip)) passed, $notok failed, $skip skipped, exit status $rc"
    [ "$rc" = 0 ] && [ "$notok" = 0 ] && [ "$ok" -gt 0 ]
}

# --- the worktree ---------------------------------------------------------

[ -d "$PATCH_DIR" ] || die "no series/ yet: run 'make series'"
patches=()
for patch in "$PATCH_DIR"/[0-9][0-9][0-9][0-9]-*.patch; do
    [ ! -f "$patch" ] || [ "${patch##*/}" = 0000-cover-letter.patch ] ||
        patches+=("$patch")
done
[ "${#patches[@]}" -gt 0 ] || die "series/ holds no patches: run 'make series'"
base=$(sed -n 's/^base-commit: //p' "$PATCH_DIR/0000-cover-letter.patch" 2>/dev/null)
base=${base:-$(git -C "$SRC" rev-parse stripped)}
# ours as it is now: the series must end there (a later 'make prepare'
# by someone else must not decide the result).
ours=$(git -C "$SRC" rev-parse -q --verify 'ours^{tree}') || true

mkdir -p "$DIR" "$DIR/reduced"
if [ -e "$WT" ]; then
    git -C "$SRC" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
fi
git -C "$SRC" worktree prune
git -C "$SRC" worktree add -q --detach "$WT" "$base"
rm -rf "$LOGS"
mkdir -p "$LOGS"

# Patches are applied as they come, with a fixed committer.
am() {
    GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
    GIT_COMMITTER_NAME=harness GIT_COMMITTER_EMAIL=harness@localhost \
        git -C "$WT" am -q "$1"
}

start=$SECONDS
total=${#patches[@]}
t=$SECONDS
if bash "$ROOT/harness/build.sh" "$WT" "$OUT" "$DIR" >"$LOGS/00-build.log" 2>&1; then
    pass "0/$total the base builds, $((SECONDS - t)) s"
    check "0/$total the base has no vmgenid device and no commands" \
        "$LOGS/00-none.log" has_nothing
else
    fail "0/$total the base builds (log: ${LOGS#"$ROOT"/}/00-build.log)"
fi
n=0
for patch in "${patches[@]}"; do
    n=$((n + 1))
    subject=$(sed -n 's/^Subject: \[PATCH [0-9]*\/[0-9]*\] //p' "$patch" | head -n 1)
    tag="$n/$total $subject"
    log=$LOGS/$(printf %02d "$n")
    echo "== $tag"
    if ! am "$patch" >"$log-am.log" 2>&1; then
        fail "$tag: git am (log: ${log#"$ROOT"/}-am.log)"
        sed 's/^/    /' "$log-am.log" | tail -n 20
        break
    fi

    t=$SECONDS
    if ! bash "$ROOT/harness/build.sh" "$WT" "$OUT" "$DIR" >"$log-build.log" 2>&1; then
        fail "$tag: builds, $((SECONDS - t)) s (log: ${log#"$ROOT"/}-build.log)"
        tail -n 30 "$log-build.log" | sed 's/^/    /'
        continue
    fi
    pass "$tag: builds, $((SECONDS - t)) s"
    t=$SECONDS
    if bash "$ROOT/harness/build.sh" "$WT" "$DIR/reduced/qemu" "$DIR/reduced" \
            reduced >"$log-reduced.log" 2>&1; then
        pass "$tag: builds without default devices, $((SECONDS - t)) s"
    else
        fail "$tag: builds without default devices (log: ${log#"$ROOT"/}-reduced.log)"
        tail -n 30 "$log-reduced.log" | sed 's/^/    /'
    fi

    check "$tag: the emulator starts on pc and q35" "$log-start.log" starts
    if grep -qs "'command': 'query-vm-generation-id'" "$WT"/qapi/*.json; then
        check "$tag: query-vm-generation-id and set-vm-generation-id exist" \
            "$log-commands.log" has_commands
    fi
    if [ -f "$WT/hw/acpi/vmgenid.c" ]; then
        check "$tag: the vmgenid device exists" "$log-device.log" has_device
    fi
    if grep -qs 'TYPE_VMGENID' "$WT/hw/i386/pc_piix.c" "$WT/hw/i386/pc_q35.c"; then
        check "$tag: -device vmgenid,guid=... on pc and q35" \
            "$log-machines.log" on_machines
    fi
    # The qtest, with the shorter exploration of i386 (make check runs the
    # longer one), where the patch changed more than the functional tests.
    if [ -f "$WT/tests/qtest/vmgenid-test.c" ] &&
       ! git -C "$WT" diff --name-only HEAD~1 HEAD |
           grep -qv -e '^tests/functional/' -e '^MAINTAINERS$'; then
        pass "$tag: vmgenid-test: not run again, the patch changes only functional tests"
    elif [ -f "$WT/tests/qtest/vmgenid-test.c" ]; then
        t=$SECONDS
        if out=$(qtest "$log-qtest.log"); then
            pass "$tag: vmgenid-test: $(echo "$out" | tail -n 1), $((SECONDS - t)) s"
        else
            fail "$tag: vmgenid-test: $(echo "$out" | tail -n 1), $((SECONDS - t)) s" \
                 "(log: ${log#"$ROOT"/}-qtest.log)"
            echo "$out" | head -n -1
        fi
    fi
done

if [ "$n" = "$total" ] && [ -n "$ours" ]; then
    if [ "$(git -C "$WT" rev-parse 'HEAD^{tree}')" = "$ours" ]; then
        pass "the series ends at ours' tree"
    else
        fail "the series does not end at ours' tree: run 'make series' again"
    fi
fi
echo "series-check: $PASSED passed, $FAILED failed, $((SECONDS - start)) s"
[ "$FAILED" = 0 ]
