#!/bin/bash
# Build the test guests under build/guest/, from Debian 12's packages only
# (taken out of their .debs, never installed on the host):
#
#   amd64  build/guest/vmlinuz                    Linux 6.1 (bookworm)
#          build/guest/vmlinuz-7                  Linux 7 (unstable, cloud)
#          build/guest/initramfs.cpio.gz          (with Linux 7's ptp_vmclock)
#   arm64  build/guest/arm64/vmlinuz-6.1          Linux 6.1 (bookworm)
#          build/guest/arm64/vmlinuz-6.12         Linux 6.12 (bookworm-backports)
#          build/guest/arm64/initramfs.cpio.gz
#
# Each initramfs holds busybox, vmgenid-guest (compiled for that
# architecture, statically) and our /init; the amd64 one also Linux 7's
# ptp_vmclock module (which /init loads when that kernel runs).  Linux 7
# comes from Debian unstable, through an apt configuration of our own
# (harness/common.sh: unstable_apt) that leaves the host's apt as it is.
# The arm64 kernels are the uncompressed Image with its EFI stub that
# Debian ships as vmlinuz, which QEMU's -kernel boots directly or through
# the firmware.
#
#   guest/build-initramfs.sh [ARCH...]   (amd64, arm64; both by default)
#
# Safe to rerun: each package is downloaded once, and an initramfs is
# rebuilt only when one of its inputs changed.  arm64 needs what
# harness/deps.sh sets up: the arm64 architecture known to apt (for
# apt-get download) and the cross compiler.
# shellcheck source-path=SCRIPTDIR/../harness
. "$(dirname "$0")/../harness/common.sh"

GUEST_SRC=$ROOT/guest
CFLAGS=(-static -O2 -Wall -Wextra -Werror)

# depends_on APT-CACHE-ARGS...: the first package whose name starts with
# linux-image-<digit> that the meta-package in APT-CACHE-ARGS depends on,
# e.g. linux-image-6.1.0-56-amd64 for linux-image-amd64; an apt-get update
# first if apt knows nothing yet.
depends_on() {
    local pkg
    pkg=$(apt-cache depends "$@" 2>/dev/null |
          awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$pkg" ]; then
        apt-get update >/dev/null
        pkg=$(apt-cache depends "$@" 2>/dev/null |
              awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    fi
    [ -n "$pkg" ] || die "apt does not know $* (harness/deps.sh makes apt" \
                         "know the arm64 packages)"
    echo "$pkg"
}

# The newest of the given files that exist, or nothing.
newest() {
    local f
    for f in "$@"; do
        if [ -e "$f" ]; then echo "$f"; fi
    done | sort -V | tail -n 1
}

# download DIR GLOB COMMAND...: set DEB to the newest .deb in DIR that
# GLOB matches; if there is none, download the package COMMAND prints.
download() {
    local dir=$1 glob=$2 pkg
    shift 2
    # shellcheck disable=SC2086 # GLOB is a pattern
    DEB=$(newest "$dir"/$glob)
    if [ -n "$DEB" ]; then
        echo "reusing $(basename "$DEB")"
        return
    fi
    pkg=$("$@")
    echo "downloading $pkg"
    # apt-get download drops its sandbox user when run as root, noisily.
    (cd "$dir" && apt-get download "$pkg" 2>&1 |
        grep -v '^W: Download is performed unsandboxed' >&2) || true
    DEB=$(newest "$dir/${pkg%:*}"_*.deb)
    [ -n "$DEB" ] || die "apt-get download $pkg failed"
}

# extract DEB OUT MEMBER [OUT MEMBER...]: each file MEMBER (a tar pattern
# that matches one file) of DEB as its OUT, unless they all exist and the
# first OUT's .version says they came from this very package version.
extract() {
    local deb=$1 first=$2 tmp version i fresh=yes
    local -a args=("${@:2}") members=()
    # shellcheck disable=SC2016 # dpkg-deb expands these, not the shell
    version=$(dpkg-deb -W --showformat='${Package} ${Version}' "$deb")
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        [ -f "${args[i]}" ] || fresh=no
        members+=("${args[i + 1]}")
    done
    if [ $fresh = yes ] && [ "$(cat "$first.version" 2>/dev/null)" = "$version" ]; then
        echo "up to date: $first ($version)"
        return
    fi
    tmp=$(mktemp -d "$first.XXXXXX")
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards "${members[@]}"
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        # The one file the pattern matched.
        # shellcheck disable=SC2086 # MEMBER is a pattern
        set -- "$tmp"/${args[i + 1]}
        if [ $# != 1 ] || [ ! -s "$1" ]; then
            die "not one file ${args[i + 1]} in $deb"
        fi
        mv "$1" "${args[i]}"
    done
    rm -rf "$tmp"
    echo "$version" > "$first.version"
    echo "extracted $first ($version)"
}

# kernel DIR NAME ARCH SERIES APT-CACHE-ARGS...: Debian's Linux SERIES
# (6.1, 6.12) for ARCH as DIR/NAME, out of the kernel package that the
# meta-package in APT-CACHE-ARGS depends on.  Its config must build the
# vmgenid driver in.
kernel() {
    local dir=$1 name=$2 arch=$3 series=$4 version
    shift 4
    download "$dir" "linux-image-$series.*-${arch}_*.deb" depends_on "$@"
    # shellcheck disable=SC2016
    version=$(dpkg-deb -W --showformat='${Version}' "$DEB")
    case $version in
        "$series".*) ;;
        *) die "$DEB is Linux $version, not $series: Debian moved on" ;;
    esac
    extract "$DEB" "$dir/$name" './boot/vmlinuz-*' \
                   "$dir/$name.config" './boot/config-*'
    grep -qx 'CONFIG_VMGENID=y' "$dir/$name.config" ||
        die "$DEB: its kernel config has no CONFIG_VMGENID=y"
}

# kernel7 DIR: Debian unstable's newest Linux 7 of the cloud flavour for
# amd64 as DIR/vmlinuz-7, and its ptp_vmclock module (not built in there)
# as DIR/ptp_vmclock.ko.xz; RELEASE set to its uname -r.
kernel7() {
    local dir=$1 conf image version
    conf=$(unstable_apt)
    image=$(APT_CONFIG=$conf apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-7\./ { print $2; exit }')
    [ -n "$image" ] || die "Debian unstable has no Linux 7 linux-image-cloud-amd64"
    RELEASE=${image#linux-image-}
    APT_CONFIG=$conf download "$dir" "linux-binary-${RELEASE}_*.deb" \
        echo "linux-binary-$RELEASE"
    # shellcheck disable=SC2016
    version=$(dpkg-deb -W --showformat='${Version}' "$DEB")
    extract "$DEB" "$dir/vmlinuz-7" "./usr/lib/modules/$RELEASE/vmlinuz"
    APT_CONFIG=$conf download "$dir" "linux-modules-${RELEASE}_*.deb" \
        echo "linux-modules-$RELEASE"
    extract "$DEB" "$dir/ptp_vmclock.ko.xz" \
        "./usr/lib/modules/$RELEASE/kernel/drivers/ptp/ptp_vmclock.ko.xz"
    echo "Linux 7: $RELEASE ($version)"
}

# Everything an initramfs is made of; a change in any rebuilds it.
inputs_hash() {
    {
        sha256sum "$GUEST_SRC/vmgenid-guest.c" "$GUEST_SRC/init" "$0" "$BUSYBOX" \
                  ${MODULE:+"$MODULE"} | cut -d' ' -f1
        echo "${RELEASE:-}"
        "$CC" --version | head -n 1
        echo "${CFLAGS[*]}"
    } | sha256sum | cut -d' ' -f1
}

# initramfs DIR: DIR/initramfs.cpio.gz of $BUSYBOX (its applets named by
# $APPLETS), vmgenid-guest compiled by $CC, and /init.
initramfs() {
    local out=$1 stamp=$1/initramfs.inputs hash root=$1/root applet
    hash=$(inputs_hash)
    if [ -f "$out/initramfs.cpio.gz" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
        echo "initramfs up to date: $out/initramfs.cpio.gz"
        return
    fi
    if command -v file >/dev/null && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
        die "$BUSYBOX is not static: install busybox-static"
    fi

    "$CC" "${CFLAGS[@]}" -o "$out/vmgenid-guest" "$GUEST_SRC/vmgenid-guest.c"
    echo "compiled $out/vmgenid-guest ($CC)"

    rm -rf "$root"
    mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,root}
    ln -s bin "$root/sbin"
    install -m 755 "$BUSYBOX" "$root/bin/busybox"
    for applet in $($APPLETS --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    cp "$out/vmgenid-guest" "$root/bin/vmgenid-guest"
    if [ -n "${MODULE:-}" ]; then
        mkdir -p "$root/lib/modules/$RELEASE"
        xz -dc "$MODULE" > "$root/lib/modules/$RELEASE/$(basename "$MODULE" .xz)"
    fi
    install -m 755 "$GUEST_SRC/init" "$root/init"
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null ||
        echo "note: cannot mknod /dev/console, relying on the kernel's own"

    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc --owner 0:0 --reproducible --quiet) |
        gzip -9 -n > "$out/initramfs.cpio.gz.tmp"
    mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
    echo "$hash" > "$stamp"
    echo "built $out/initramfs.cpio.gz ($(du -k "$out/initramfs.cpio.gz" | cut -f1) KiB)"
}

amd64() {
    local out=$BUILD/guest
    local BUSYBOX=${BUSYBOX:-/bin/busybox} CC=gcc
    local APPLETS=$BUSYBOX RELEASE MODULE=$out/ptp_vmclock.ko.xz
    mkdir -p "$out"
    kernel "$out" vmlinuz amd64 6.1 linux-image-amd64
    kernel7 "$out"
    initramfs "$out"
}

# Nothing of arm64 runs on the host: busybox comes out of its arm64
# package, and the list of its applets from the host's busybox, built from
# the same Debian source.
arm64() {
    local out=$BUILD/guest/arm64 host guest
    local BUSYBOX=$BUILD/guest/arm64/busybox CC=aarch64-linux-gnu-gcc
    local APPLETS=/bin/busybox
    mkdir -p "$out"
    kernel "$out" vmlinuz-6.1 arm64 6.1 linux-image-arm64:arm64
    kernel "$out" vmlinuz-6.12 arm64 6.12 -t bookworm-backports \
        linux-image-arm64:arm64
    download "$out" 'busybox-static_*_arm64.deb' echo busybox-static:arm64
    extract "$DEB" "$BUSYBOX" './bin/busybox'
    [ -x "$APPLETS" ] || die "no $APPLETS on the host: install busybox-static"
    # shellcheck disable=SC2016
    host=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
    # shellcheck disable=SC2016
    guest=$(dpkg-deb -W --showformat='${Version}' "$DEB")
    if [ "$host" != "$guest" ]; then
        echo "note: busybox-static $host on the host, $guest in the guest:" \
             "applet names taken from the host's"
    fi
    command -v "$CC" >/dev/null ||
        die "no $CC: install gcc-aarch64-linux-gnu and libc6-dev-arm64-cross"
    initramfs "$out"
}

if [ $# = 0 ]; then
    set -- amd64 arm64
fi
for arch in "$@"; do
    case $arch in
        amd64|arm64) "$arch" ;;
        *) die "unknown architecture $arch (amd64, arm64)" ;;
    esac
done
