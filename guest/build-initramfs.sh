#!/bin/bash
# Build the test guest under build/guest/: Debian 12's kernel as vmlinuz
# (taken out of its package, never installed on the host) and an initramfs
# of busybox, vmgenid-guest and our /init.  Safe to rerun: the kernel
# package is downloaded once, and the initramfs is rebuilt only when one
# of its inputs changed.
# shellcheck source-path=SCRIPTDIR/../harness
. "$(dirname "$0")/../harness/common.sh"

GUEST_SRC=$ROOT/guest
OUT=$BUILD/guest
BUSYBOX=${BUSYBOX:-/bin/busybox}
CFLAGS=(-static -O2 -Wall -Wextra -Werror)

mkdir -p "$OUT"

# The kernel linux-image-amd64 points at, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$pkg" ]; then
        apt-get update >/dev/null
        pkg=$(apt-cache depends linux-image-amd64 |
              awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    fi
    [ -n "$pkg" ] || die "apt does not know linux-image-amd64"
    echo "$pkg"
}

# The newest of the given files that exist, or nothing.
newest() {
    local f
    for f in "$@"; do
        if [ -e "$f" ]; then echo "$f"; fi
    done | sort -V | tail -n 1
}

fetch_kernel() {
    local deb pkg version
    deb=$(newest "$OUT"/linux-image-*-amd64_*.deb)
    if [ -z "$deb" ]; then
        pkg=$(kernel_package)
        echo "downloading $pkg"
        # apt-get download drops its sandbox user when run as root, noisily.
        (cd "$OUT" && apt-get download "$pkg" 2>&1 |
            grep -v '^W: Download is performed unsandboxed' >&2) || true
        deb=$(newest "$OUT/$pkg"_*.deb)
        [ -n "$deb" ] || die "apt-get download $pkg failed"
    else
        echo "reusing $(basename "$deb")"
    fi
    # shellcheck disable=SC2016 # dpkg-deb expands these, not the shell
    version=$(dpkg-deb -W --showformat='${Package} ${Version}' "$deb")
    if [ -f "$OUT/vmlinuz" ] && [ "$(cat "$OUT/vmlinuz.version" 2>/dev/null)" = "$version" ]; then
        echo "kernel up to date: $OUT/vmlinuz ($version)"
        return
    fi
    dpkg-deb --fsys-tarfile "$deb" |
        tar -x -O --wildcards './boot/vmlinuz-*' > "$OUT/vmlinuz.tmp"
    [ -s "$OUT/vmlinuz.tmp" ] || die "no /boot/vmlinuz-* in $deb"
    mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
    echo "$version" > "$OUT/vmlinuz.version"
    echo "extracted $OUT/vmlinuz ($version)"
}

# Everything the initramfs is made of; a change in any rebuilds it.
inputs_hash() {
    {
        sha256sum "$GUEST_SRC/vmgenid-guest.c" "$GUEST_SRC/init" "$0" "$BUSYBOX" |
            cut -d' ' -f1
        gcc --version | head -n 1
        echo "${CFLAGS[*]}"
    } | sha256sum | cut -d' ' -f1
}

build_initramfs() {
    local stamp=$OUT/initramfs.inputs hash root=$OUT/root applet
    hash=$(inputs_hash)
    if [ -f "$OUT/initramfs.cpio.gz" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
        echo "initramfs up to date: $OUT/initramfs.cpio.gz"
        return
    fi
    if command -v file >/dev/null && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
        die "$BUSYBOX is not static: install busybox-static"
    fi

    gcc "${CFLAGS[@]}" -o "$OUT/vmgenid-guest" "$GUEST_SRC/vmgenid-guest.c"
    echo "compiled $OUT/vmgenid-guest"

    rm -rf "$root"
    mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,root}
    ln -s bin "$root/sbin"
    cp "$BUSYBOX" "$root/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    cp "$OUT/vmgenid-guest" "$root/bin/vmgenid-guest"
    install -m 755 "$GUEST_SRC/init" "$root/init"
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null ||
        echo "note: cannot mknod /dev/console, relying on the kernel's own"

    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc --owner 0:0 --reproducible --quiet) |
        gzip -9 -n > "$OUT/initramfs.cpio.gz.tmp"
    mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
    echo "$hash" > "$stamp"
    echo "built $OUT/initramfs.cpio.gz ($(du -k "$OUT/initramfs.cpio.gz" | cut -f1) KiB)"
}

fetch_kernel
build_initramfs
