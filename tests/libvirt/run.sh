#!/bin/bash
# End-to-end test of our vmgenid device under Debian 12's libvirt 9.0, with
# x86_64 (q35) and aarch64 (virt) domains.
#
# Starts private libvirt daemons (harness/libvirtd.sh) with all their state
# under build/libvirt/, then runs checks.py against them. virsh reaches
# them through build/libvirt/run/libvirt-sock.
#
#   bash tests/libvirt/run.sh        # exit status 0 only if every check passed
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/libvirt
WORK=$ROOT/build/libvirt
QEMU=$ROOT/build/qemu-system-x86_64
QEMU_ARM=$ROOT/build/qemu-system-aarch64
WRAPPER=$WORK/bin/qemu-system-x86_64
WRAPPER_ARM=$WORK/bin/qemu-system-aarch64
PYTHON=/usr/bin/python3
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$WORK/run/libvirt-sock"

T0=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) $1" | awk '{ printf "%.1f", $1 - $2 }'; }
phase() {   # phase NAME CMD...: run CMD, print how long it took
    local name=$1 t
    shift
    t=$(date +%s.%N)
    "$@"
    echo "time: $name $(elapsed "$t") s"
}
die() { echo "error: $*" >&2; exit 1; }

# --- main ------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root"
for f in "$QEMU" "$QEMU_ARM" "$ROOT/build/qemu-img"; do
    [ -x "$f" ] || die "$f is missing: build QEMU first"
done
for f in vmlinuz initramfs.cpio.gz arm64/vmlinuz-6.12 arm64/initramfs.cpio.gz; do
    if [ ! -e "$ROOT/build/guest/$f" ]; then
        phase guest-build bash "$ROOT/guest/build-initramfs.sh"
        break
    fi
done

trap 'bash "$ROOT/harness/libvirtd.sh" stop "$WORK"
      echo "time: total $(elapsed "$T0") s"' EXIT
phase daemons bash "$ROOT/harness/libvirtd.sh" start "$WORK" "$QEMU" "$QEMU_ARM"
virsh version --daemon | sed -n 's/^Running against daemon: */libvirtd /p'
echo "state in ${WORK#"$ROOT"/}, emulators ${WRAPPER#"$ROOT"/} ${WRAPPER_ARM#"$ROOT"/}"

rc=0
"$PYTHON" -B "$HERE/checks.py" "$WORK" "$WRAPPER" "$WRAPPER_ARM" || rc=$?
exit $rc
