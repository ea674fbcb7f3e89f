#!/bin/bash
# make bench: our QEMU against upstream QEMU 10.2.2 (the same Debian source
# with upstream's own vmgenid, built in build/upstream) and against libvirt
# 9.0's snapshot-revert, under TCG.  See bench/bench.py for what is measured.
#
#   harness/bench.sh           BENCH_RUNS runs of each (default 15, about
#                              10 min on 2 cores); writes bench/results/
#                              <date>.md (table), .png (plot), .json (samples)
#   harness/bench.sh --smoke   one run of each (about 80 s), results in
#                              build/bench/smoke; exits 0 only if every
#                              measurement produced a number
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2317  # functions that run through phase()
. "$(dirname "$0")/common.sh"

PYTHON=/usr/bin/python3
BENCH=$BUILD/bench
SMOKE=0 FLAGS=()
case ${1:-} in
    '') ;;
    --smoke) SMOKE=1 FLAGS=(--smoke) ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac
if [ "$SMOKE" = 1 ]; then
    RUNS=1
    OUT=$BENCH/smoke
else
    RUNS=${BENCH_RUNS:-15}
    OUT=$ROOT/bench/results
fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"

OURS=$BUILD/qemu-system-x86_64
UPSTREAM=$BUILD/upstream/qemu-system-x86_64
for f in "$OURS" "$BUILD/qemu-img"; do
    [ -x "$f" ] || die "$f is missing: run make first"
done
git -C "$SRC" rev-parse -q --verify pristine >/dev/null ||
    die "$SRC has no pristine tag: run make first"

mkdir -p "$BENCH" "$OUT"
# One benchmark at a time: they share build/bench and would slow each other.
exec 8>"$BENCH/lock"
if ! flock -n 8; then
    echo "another benchmark is running; waiting for it"
    flock 8
fi

# Upstream QEMU from the pristine tag, built exactly as make check builds
# it (a reference build: x86_64 only), so that a build already there is
# only brought up to date, not configured again for other targets.
build_upstream() {
    local dir=$BUILD/upstream
    worktree "$dir/src" pristine
    bash "$ROOT/harness/build.sh" "$dir/src" "$dir/qemu" "$dir" reference
}

# The two builds are what they should be: both have the device, only ours
# the set command.
has_set_command() {
    printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"query-commands"}' \
                  '{"execute":"quit"}' |
        "$1" -M none -display none -accel qtest -qmp stdio | grep -q '"set-vm-generation-id"'
}
check_builds() {
    local q
    for q in "$OURS" "$UPSTREAM"; do
        "$q" -device help 2>/dev/null | grep -q '^name "vmgenid"' || die "$q has no vmgenid device"
    done
    has_set_command "$OURS" || die "$OURS has no set-vm-generation-id"
    ! has_set_command "$UPSTREAM" || die "$UPSTREAM has set-vm-generation-id: not upstream"
    echo "ours:     $("$OURS" -version | head -n 1)"
    echo "upstream: $("$UPSTREAM" -version | head -n 1) (pristine tag, upstream vmgenid)"
}

gnuplot_installed() {
    command -v gnuplot >/dev/null && return
    apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq gnuplot-nox >/dev/null
    }
}

LIBVIRT=$BENCH/libvirt
stop_libvirt() { bash "$ROOT/harness/libvirtd.sh" stop "$LIBVIRT" || true; }

phase guest bash "$ROOT/guest/build-initramfs.sh"
phase "upstream QEMU" build_upstream
check_builds
# The smoke mode installs nothing more; it plots only if gnuplot is there.
[ "$SMOKE" = 1 ] || phase gnuplot gnuplot_installed
trap stop_libvirt EXIT
phase "libvirt daemons" bash "$ROOT/harness/libvirtd.sh" start "$LIBVIRT" "$OURS"

WORK=$BENCH/work$([ "$SMOKE" = 0 ] || echo -smoke)
rm -rf "$WORK"
mkdir -p "$WORK"
SAMPLES=$WORK/samples.json
rc=0 start=$SECONDS
echo "== measurements ($RUNS run(s) each)"
"$PYTHON" -B "$ROOT/bench/bench.py" --runs "$RUNS" "${FLAGS[@]}" \
    --ours "$OURS" --upstream "$UPSTREAM" --qemu-img "$BUILD/qemu-img" \
    --libvirt "$LIBVIRT" --emulator "$LIBVIRT/bin/qemu-system-x86_64" \
    --work "$WORK" --out "$SAMPLES" || rc=$?
echo "== measurements: $((SECONDS - start)) s"
stop_libvirt
trap - EXIT
[ -s "$SAMPLES" ] || die "no samples written"

NAME=$(date +%F)
cp "$SAMPLES" "$OUT/$NAME.json.tmp"
mv "$OUT/$NAME.json.tmp" "$OUT/$NAME.json"
echo
"$PYTHON" -B "$ROOT/bench/report.py" "$OUT/$NAME.json" \
    --md "$OUT/$NAME.md" --png "$OUT/$NAME.png"
echo
echo "report: ${OUT#"$ROOT"/}/$NAME.md$([ ! -e "$OUT/$NAME.png" ] || echo ", plot ${OUT#"$ROOT"/}/$NAME.png")"
if [ "$SMOKE" = 1 ]; then
    if [ "$rc" = 0 ]; then
        echo "bench smoke: every measurement produced a number"
    else
        echo "bench smoke: FAILED, some measurements produced no number"
    fi
fi
exit "$rc"
