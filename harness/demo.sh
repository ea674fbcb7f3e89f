#!/bin/bash
# Boot a guest with a vmgenid device, compare what the host reports with
# what the guest reads, save and restore it with a new GUID, compare again.
# QEMU=... picks another binary; ACCEL=kvm where KVM works.
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

QEMU=${QEMU:-$BUILD/qemu-system-x86_64}
export QEMU ACCEL

[ -x "$QEMU" ] || die "$QEMU does not exist: run harness/build.sh first"
"$QEMU" -device help 2>/dev/null | grep -q '^name "vmgenid"' ||
    die "$QEMU has no vmgenid device"

phase guest bash "$ROOT/guest/build-initramfs.sh"
phase demo /usr/bin/python3 "$ROOT/guest/demo.py"
