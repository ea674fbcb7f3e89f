#!/bin/bash
# Configure (once, or when the options below change) and build the x86_64,
# i386 and aarch64 emulators, qemu-img and the qtests we run, then link
# them into build/.
#
#   build.sh [TREE OUT LINKS [reference | reduced]]
#
# Several trees are built the same way. A reference tree (the stripped
# base, upstream QEMU) gets only the x86_64 emulator that its checks run.
# The reduced build is ours without QEMU's default devices, as QEMU's CI
# and distributions configure it: aarch64 with its "minimal" device set
# (virt), x86_64 with pc, q35 and microvm only. Neither has vmgenid
# (machines only imply it), so it shows that the machines link without it.
#
# Every build is without debug information, which is quicker to compile
# and to link: make check builds three trees from scratch on a fresh
# machine (ccache serves only objects built with the same generated
# headers, and config-poison.h lists every device a build has, so the
# reference trees and the reduced build share nothing with ours).
# DEBUG=1 builds ours with it, for gdb.
. "$(dirname "$0")/common.sh"

TREE=${1:-$SRC}
OUT=${2:-$OBJ}
LINKS=${3:-$BUILD}
MODE=${4:-}               # "", reference or reduced

# Debian's firmware packages, searched in this order (as Debian's qemu does).
FIRMWARE_DIRS=(/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu)

EXTRA=()
DEBUG_INFO=--disable-debug-info
case $MODE in
reference)
    TARGET_LIST=x86_64-softmmu
    TARGETS=(qemu-system-x86_64)
    DOCS=--disable-docs ;;
reduced)
    TARGET_LIST=x86_64-softmmu,aarch64-softmmu
    TARGETS=(qemu-system-x86_64 qemu-system-aarch64)
    DOCS=--disable-docs
    # configure takes device files by name from the tree's configs/devices.
    cp "$ROOT/harness/x86_64-pc-q35-microvm.mak" \
       "$TREE/configs/devices/x86_64-softmmu/pc-q35-microvm.mak"
    EXTRA=(--without-default-devices
           --with-devices-aarch64=minimal
           --with-devices-x86_64=pc-q35-microvm) ;;
*)
    TARGET_LIST=x86_64-softmmu,i386-softmmu,aarch64-softmmu
    TARGETS=(qemu-system-x86_64 qemu-system-i386 qemu-system-aarch64 qemu-img)
    DOCS=--enable-docs         # built by make check, not by default
    [ -z "${DEBUG:-}" ] || DEBUG_INFO=--enable-debug-info ;;
esac

CONFIGURE_ARGS=(
    --prefix=/usr
    "--target-list=$TARGET_LIST"
    --enable-tcg --enable-kvm
    --disable-modules          # never load a system QEMU's modules
    --disable-install-blobs    # Debian ships no prebuilt ROMs in its source
    "$DOCS" "$DEBUG_INFO"
    ${EXTRA[@]+"${EXTRA[@]}"}
    --disable-rust --disable-download
    --disable-gtk --disable-sdl --disable-opengl --disable-vnc
    --disable-xen --disable-spice
    "--firmwarepath=$(IFS=:; echo "${FIRMWARE_DIRS[*]}")"
    --python=/usr/bin/python3  # Debian's python, which sees Debian's meson
)

# What configure saw: a new 32-bit x86 compiler, say, means configuring again.
configure_stamp() {
    printf '%s\n' "${CONFIGURE_ARGS[@]}"
    i686-linux-gnu-gcc --version 2>/dev/null | head -n 1
}

configure() {
    mkdir -p "$OUT"
    (cd "$OUT" && "$TREE/configure" "${CONFIGURE_ARGS[@]}" >configure.log 2>&1) || {
        tail -n 20 "$OUT/configure.log" >&2
        die "configure failed; the whole log is $OUT/configure.log"
    }
    [ -f "$OUT/pc-bios/optionrom/config.mak" ] ||
        die "configure found no 32-bit x86 compiler for the option ROMs: run 'make deps'"
    configure_stamp > "$OUT/harness-configure-args"
}

# A QEMU started from its build folder looks for firmware under
# qemu-bundle/<firmwarepath>. qemu-bundle/usr/share/qemu is the build's own
# data folder, which gets the option ROMs we built; the other folders point
# at Debian's packages.
link_firmware() {
    local dir rom
    for dir in "${FIRMWARE_DIRS[@]:1}"; do
        mkdir -p "$OUT/qemu-bundle$(dirname "$dir")"
        ln -sfn "$dir" "$OUT/qemu-bundle$dir"
    done
    for rom in "$OUT"/pc-bios/optionrom/*.bin; do
        ln -sfn "$rom" "$OUT/qemu-bundle${FIRMWARE_DIRS[0]}/"
    done
}

if ! [ -f "$OUT/build.ninja" ] ||
   ! configure_stamp | cmp -s - "$OUT/harness-configure-args"; then
    phase configure configure
fi

qtests=
if [ -z "$MODE" ]; then
    qtests=$(cd "$TREE/tests/qtest" && ls vmgenid*-test.c 2>/dev/null | sed 's|\.c$||;s|^|tests/qtest/|') || true
fi
# shellcheck disable=SC2086
phase compile ninja -C "$OUT" "${TARGETS[@]}" $qtests
# linuxboot_dma.bin (for -kernel), kvmvapic.bin, ...: built by make, not ninja.
phase "option ROMs" make -s -C "$OUT" pc-bios/optionrom/all
link_firmware
for t in "${TARGETS[@]}"; do
    ln -sfn "$OUT/$t" "$LINKS/$t"
done
echo "built $LINKS/qemu-system-x86_64"
