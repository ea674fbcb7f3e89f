#!/bin/bash
# make check: every test suite, each reporting PASS/FAIL lines, then one
# summary line "N passed, N failed[, N skipped]". Exits non-zero on failure.
. "$(dirname "$0")/common.sh"

PASSED=0 FAILED=0 SKIPPED=0
LOGS=$BUILD/check-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIP: $*"; }

logfile() {
    echo "$LOGS/$(echo "$1" | tr -c 'A-Za-z0-9_.-' _).log"
}

# check NAME CMD...: one test that passes when CMD succeeds.
check() {
    local name=$1 log
    shift
    log=$(logfile "$name")
    if "$@" >"$log" 2>&1; then
        pass "$name"
    else
        fail "$name (log: ${log#"$ROOT"/})"
        sed 's/^/    /' "$log" | tail -n 20
    fi
}

# tap NAME CMD...: run a program that prints TAP and count its tests.
# A skipped test counts as skipped, or as failed when the caller has set
# tap_skip=fail.
tap() {
    local name=$1 log
    shift
    log=$(logfile "$name $*")
    "$@" >"$log" 2>&1 && local rc=0 || local rc=$?
    tap_count "$name" "$log" "$rc"
}

# tap_count NAME LOG RC: count the TAP lines of a program's LOG, which
# exited with status RC.
tap_count() {
    local name=$1 log=$2 rc=$3 line on_skip=${tap_skip:-skip} seen=0
    while IFS= read -r line; do
        case $line in
            "ok "*"# SKIP"*|"ok "*"# skip"*) $on_skip "$name: ${line#ok [0-9]* }"; seen=1 ;;
            "ok "*) pass "$name: ${line#ok [0-9]* }"; seen=1 ;;
            "not ok "*) fail "$name: ${line#not ok [0-9]* }"; seen=1 ;;
            "1..0"*) $on_skip "$name: ${line#1..0 }"; seen=1 ;;
        esac
    done < "$log"
    if [ "$rc" != 0 ] || [ "$seen" = 0 ]; then
        fail "$name exited with status $rc (log: ${log#"$ROOT"/})"
        grep -v '^ok ' "$log" | tail -n 30 | sed 's/^/    /'
    fi
}

# Build another step of the prepared tree (stripped, or pristine: upstream
# QEMU with its own vmgenid) in build/NAME, sharing ccache with ours.
build_step() {
    local name=$1 tag=$2 dir=$BUILD/$1
    worktree "$dir/src" "$tag"
    check "$name QEMU builds" \
        bash "$ROOT/harness/build.sh" "$dir/src" "$dir/qemu" "$dir" reference
}

# lines NAME CMD...: run a suite that prints "PASS: ..." / "FAIL: ..." /
# "SKIP: ..." lines itself, echo them and count them.
lines() {
    local name=$1 log line seen=0 rc=0
    shift
    log=$(logfile "$name")
    "$@" >"$log" 2>&1 || rc=$?
    while IFS= read -r line; do
        case $line in
            "PASS: "*) pass "$name: ${line#PASS: }"; seen=1 ;;
            "FAIL: "*) fail "$name: ${line#FAIL: }"; seen=1 ;;
            "SKIP: "*) skip "$name: ${line#SKIP: }"; seen=1 ;;
        esac
    done < "$log"
    if [ "$rc" != 0 ] && ! grep -q '^FAIL: ' "$log" || [ "$seen" = 0 ]; then
        fail "$name exited with status $rc (log: ${log#"$ROOT"/})"
        tail -n 30 "$log" | sed 's/^/    /'
    fi
}

# --- 1. the stripped base has no trace of vmgenid (make series-check
# builds it, as the series' base, and checks that it has no device)
suite_stripped() {
    check "stripped tree has no upstream vmgenid file" \
        bash -c "! git -C '$SRC' ls-tree -r --name-only stripped | grep -i vmgenid"
}

# --- 2. the prepared tree differs from the stripped base only by our work
owned_and_patched() {
    local want got
    want=$( (overlay_files;
             cat "$PATCHES"/*.patch | sed -n 's|^+++ b/||p') | sort -u)
    got=$(git -C "$SRC" diff --name-only stripped ours | sort -u)
    [ "$want" = "$got" ] || { diff <(echo "$want") <(echo "$got"); return 1; }
}
suite_tree() {
    check "tree: stripped..ours is exactly overlay + patches" owned_and_patched
}

# --- 3. the device's qtests, with upstream QEMU as the other migration end
# make check explores orders of events two events deep and three random
# sequences, from a seed of its own each run (the test's defaults, one
# deep, one sequence, a fixed seed, are for QEMU's CI); i386 runs the
# device and machine code of x86_64, built for another target: one deep.
# (Exported: the cases run in processes of their own, through xargs.)
VMGENID_SEQ_SEED=${VMGENID_SEQ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
export VMGENID_SEQ_SEED
qtest() {
    local arch=$1 depth=${VMGENID_SEQ_DEPTH:-2}
    shift
    [ -n "${VMGENID_SEQ_DEPTH:-}" ] || [ "$arch" != i386 ] || depth=1
    (cd "$OBJ" && export VMGENID_SEQ_DEPTH=$depth \
        VMGENID_SEQ_RANDOM=${VMGENID_SEQ_RANDOM:-3} &&
        QTEST_QEMU_BINARY=./qemu-system-$arch \
        QTEST_QEMU_IMG=./qemu-img G_TEST_SRCDIR="$SRC/tests/qtest" \
        VMGENID_TEST_UPSTREAM_QEMU="$BUILD/upstream/qemu-system-x86_64" \
        exec tests/qtest/vmgenid-test "$@")
}
# qtest_case ARCH TEST: one test case, its output and status in its log.
qtest_case() {
    local log
    log=$(logfile "qtest $1 $2")
    qtest "$1" --tap -p "$2" >"$log" 2>&1
    echo $? >"$log.rc"
}
# qtest_cases [PATTERN]: every qtest case (whose path matches PATTERN) in
# a process of its own, so that a failed assertion stops only its own;
# two at a time, since each keeps about one core busy. What the sequence
# tests tell of their runs (counts, seeds) is shown too.
qtest_cases() {
    local arch t log
    export -f qtest qtest_case logfile
    export OBJ SRC BUILD LOGS
    for arch in x86_64 i386 aarch64; do
        qtest "$arch" -l | grep "^/" | { grep -e "${1:-.}" || true; } | sed "s|^|$arch |"
    done > "$LOGS/qtest-cases"
    xargs -P 2 -L 1 bash -c 'qtest_case "$0" "$1"' < "$LOGS/qtest-cases"
    while read -r arch t; do
        log=$(logfile "qtest $arch $t")
        tap_count "qtest" "$log" "$(cat "$log.rc")"
        grep -h '^# [a-z0-9]*: ' "$log" || true
    done < "$LOGS/qtest-cases"
}
suite_qtest() {
    local tap_skip=fail   # a skipped case did not run: a failure
    build_step upstream pristine
    qtest_cases
}

# --- 3a. a build without default devices (QEMU CI's and distributions'
# reduced configurations): the machines link and run without vmgenid
REDUCED=$BUILD/reduced
suite_reduced() {
    local m
    mkdir -p "$REDUCED"
    check "reduced: QEMU builds without default devices" \
        bash "$ROOT/harness/build.sh" "$SRC" "$REDUCED/qemu" "$REDUCED" reduced
    check "reduced: aarch64 virt runs without vmgenid" reduced_machine aarch64 virt
    for m in pc q35 microvm; do
        check "reduced: x86_64 $m runs without vmgenid" reduced_machine x86_64 "$m"
    done
}
# reduced_machine ARCH MACHINE: the machine starts and answers QMP, and
# vmgenid is neither a device nor behind the QMP command.
reduced_machine() {
    local qemu=$REDUCED/qemu-system-$1 out
    out=$("$qemu" -M "$2" -display none -accel qtest -device vmgenid 2>&1) &&
        return 1
    echo "$out" | grep -F "'vmgenid' is not a valid device model name" || return 1
    out=$(printf '%s\n' '{"execute":"qmp_capabilities"}' \
              '{"execute":"query-vm-generation-id"}' '{"execute":"quit"}' |
          "$qemu" -M "$2" -display none -accel qtest -qmp stdio)
    echo "$out" | grep -F '"desc": "this QEMU has no vmgenid device"'
}

# The vmgenid entry of analyze-migration.py's description of a stream is
# the same for ours and upstream's, on every machine type both have.
same_stream_desc() {
    local t
    for t in pc-i440fx-9.2 pc-q35-10.2 q35; do
        diff -u <(python3 "$ROOT/harness/stream-desc.py" \
                      "$BUILD/upstream/qemu-system-x86_64" "$t") \
                <(python3 "$ROOT/harness/stream-desc.py" \
                      "$BUILD/qemu-system-x86_64" "$t") || return 1
    done
}
suite_stream() {
    check "stream: analyze-migration.py describes vmgenid as upstream's" \
        same_stream_desc
}

# --- 4. QEMU's coding style on every C file we own
suite_style() {
    local f
    for f in $(overlay_files | grep '\.[ch]$'); do
        check "checkpatch $f" \
            bash -c "cd '$SRC' && scripts/checkpatch.pl --no-tree --strict -f '$f'"
    done
}

# --- 4b. the docs build (sphinx, warnings are errors) and show our parts
docs_show_vmgenid() {
    local manual=$OBJ/docs/manual
    grep -q 'href="vmgenid.html"' "$manual/specs/index.html" &&
    grep -q 'set-vm-generation-id' "$manual/interop/qemu-qmp-ref.html" &&
    grep -q 'VM_GENERATION_ID_CHANGED' "$manual/interop/qemu-qmp-ref.html" &&
    grep -q '<span class="pre">vm-generation-id</span>' "$manual/system/monitor.html" &&
    grep -q 'set_vm_generation_id' "$manual/system/monitor.html"
}
suite_docs() {
    check "docs build with sphinx -W" ninja -C "$OBJ" html
    check "docs: spec in the specs index, commands in the QMP and HMP references" \
        docs_show_vmgenid
}

# --- 5. real peers: Debian's Linux guests through QEMU's functional tests
# tests/functional/ARCH/test_vmgenid.py: 6.1 on x86_64 pc/q35/microvm with
# SeaBIOS and OVMF; 6.1 and 6.12 on aarch64 virt with AAVMF (ACPI) and
# 6.12 booted directly (devicetree); 7.2 with vmclock on all of those.
# They build their guests from Debian packages they declare as Assets,
# which QEMU's download cache must hold (seed_assets): nothing is
# downloaded while they run. Their logs go where meson would put them,
# build/qemu/tests/functional/ARCH/.
TEST_CACHE=$BUILD/test-cache      # QEMU_TEST_CACHE_DIR of the tests
functional_env() {
    PYTHONPATH=$SRC/python:$SRC/tests/functional QEMU_BUILD_ROOT=$OBJ \
    QEMU_TEST_CACHE_DIR=$TEST_CACHE QEMU_TEST_NO_DOWNLOAD=1 "$@"
}

# test_assets: every Asset (ASSET_* of a test class) of the vmgenid
# functional tests, "SHA256 URL" a line, read from the tests themselves.
test_assets() {
    functional_env /usr/bin/python3 - "$SRC"/tests/functional/*/test_vmgenid.py <<'EOF'
import importlib.util
import sys
from qemu_test import Asset

for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location('test_vmgenid', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for cls in [c for c in vars(module).values() if isinstance(c, type)]:
        for name, asset in vars(cls).items():
            if name.startswith('ASSET_') and isinstance(asset, Asset):
                print(asset.hash, asset.url)
EOF
}

# apt_asset HASH URL DIR: download into DIR the package version that apt's
# index gives the sha256 HASH, the package named by URL's file (NAME_VERSION_
# ARCH.deb, without the epoch); print the file's path. The host's apt
# first (bookworm and its backports), then our own for unstable
# (unstable_apt), where Linux 7 comes from.
apt_asset() {
    local hash=$1 file=${2##*/} dir=$3 pkg arch version conf
    file=$(printf '%b' "${file//%/\\x}")     # the URL's %XX decoded
    pkg=${file%%_*} arch=${file##*_}
    arch=${arch%.deb}
    for conf in "${APT_CONFIG:-}" unstable; do
        [ "$conf" != unstable ] || conf=$(unstable_apt)
        version=$(APT_CONFIG=$conf apt-cache show "$pkg:$arch" 2>/dev/null |
            awk -v h="$hash" '/^Version: / { v = $2 }
                              $1 == "SHA256:" && $2 == h { print v; exit }')
        [ -z "$version" ] || break
    done
    if [ -z "$version" ]; then
        echo "apt has no $pkg:$arch with sha256 $hash; it has:" >&2
        apt-cache show "$pkg:$arch" 2>&1 | grep -E '^(Version|SHA256):' >&2
        return 1
    fi
    (cd "$dir" && APT_CONFIG=$conf apt-get download "$pkg:$arch=$version" 2>&1 |
        grep -v '^W: Download is performed unsandboxed' >&2) || true
    ls "$dir/${pkg}_"*"_$arch.deb"
}

# asset_file HASH URL DIR: a .deb with the sha256 HASH: the one
# guest/build-initramfs.sh fetched, else the package apt has with it,
# downloaded into DIR.
asset_file() {
    local deb
    deb=$(sha256sum "$BUILD"/guest/*.deb "$BUILD"/guest/*/*.deb 2>/dev/null |
          awk -v h="$1" '$1 == h { print $2; exit }')
    if [ -n "$deb" ]; then echo "$deb"; else apt_asset "$@"; fi
}

# seed_assets: QEMU's download cache (TEST_CACHE/download, a file per
# Asset named by its sha256) holds every Asset of the tests, each checked
# against its sha256. An Asset that apt cannot give fails here, named.
seed_assets() {
    local cache=$TEST_CACHE/download asset hash url deb tmp rc=0
    local -a assets
    mkdir -p "$cache"
    mapfile -t assets < <(test_assets | sort -u)
    [ ${#assets[@]} -gt 0 ] || { echo "no Asset found in the tests"; return 1; }
    tmp=$(mktemp -d "$cache/.apt.XXXXXX")
    for asset in "${assets[@]}"; do
        read -r hash url <<<"$asset"
        if [ -f "$cache/$hash" ] &&
           [ "$(sha256sum <"$cache/$hash" | cut -d' ' -f1)" = "$hash" ]; then
            echo "cached: $url"
        elif ! deb=$(asset_file "$hash" "$url" "$tmp"); then
            echo "FAILED: apt has no package for the Asset $url" \
                 "(sha256 $hash): the test names another version"
            rc=1
        elif [ "$(sha256sum <"$deb" | cut -d' ' -f1)" != "$hash" ]; then
            echo "FAILED: $deb does not have the sha256 $hash of $url"
            rc=1
        else
            ln -f "$deb" "$cache/$hash" 2>/dev/null || cp -f "$deb" "$cache/$hash"
            echo "seeded: $url from $(basename "$deb")"
        fi
    done
    rm -rf "$tmp"
    return $rc
}

functional_vmgenid() {
    local arch=$1 tmp=$OBJ/tests/functional/tmp
    mkdir -p "$tmp"
    TMPDIR=$tmp \
    QEMU_TEST_QEMU_BINARY=$BUILD/qemu-system-$arch \
    QEMU_TEST_QEMU_IMG=$BUILD/qemu-img \
    QEMU_TEST_VMGENID_ACCEL=$ACCEL \
        functional_env timeout 1200 /usr/bin/python3 \
            "$SRC/tests/functional/$arch/test_vmgenid.py"
}
suite_guest() {
    local tap_skip=fail   # a skipped guest test shows nothing: a failure
    check "guest: kernels and initramfs (guest/build-initramfs.sh)" \
        bash "$ROOT/guest/build-initramfs.sh"
    check "guest: QEMU's download cache holds the functional tests' Assets" \
        seed_assets
    tap guest functional_vmgenid x86_64
    tap guest functional_vmgenid aarch64
}

# --- 6. real peers: libvirt 9.0 driving the device through <genid>
suite_libvirt() {
    lines libvirt bash "$ROOT/tests/libvirt/run.sh"
}

# --- 6b. the patch series: generated twice alike, checkpatch-clean, applies
suite_series() {
    lines series bash "$ROOT/harness/series.sh" --check
}

# --- 7. the benchmark runs: every measurement once, each gives a number
suite_bench() {
    check "bench smoke: every measurement produces a number" \
        bash "$ROOT/harness/bench.sh" --smoke
}

# make check-sequences: only the qtests that explore orders of events,
# longer than make check runs them (every sequence of VMGENID_SEQ_DEPTH
# events, VMGENID_SEQ_RANDOM random ones of VMGENID_SEQ_LENGTH).
if [ "${1:-}" = --sequences ]; then
    export VMGENID_SEQ_DEPTH=${VMGENID_SEQ_DEPTH:-3}
    export VMGENID_SEQ_RANDOM=${VMGENID_SEQ_RANDOM:-25}
    export VMGENID_SEQ_LENGTH=${VMGENID_SEQ_LENGTH:-16}
    tap_skip=fail
    qtest_cases /sequences/
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
    exit
fi

phase "suite: stripped base" suite_stripped
phase "suite: tree" suite_tree
phase "suite: qtest" suite_qtest
phase "suite: reduced" suite_reduced
phase "suite: stream" suite_stream
phase "suite: style" suite_style
phase "suite: series" suite_series
phase "suite: docs" suite_docs
phase "suite: guest" suite_guest
phase "suite: libvirt" suite_libvirt
phase "suite: bench" suite_bench

summary="$PASSED passed, $FAILED failed"
[ "$SKIPPED" = 0 ] || summary="$summary, $SKIPPED skipped"
echo "$summary"
[ "$FAILED" = 0 ]
