#!/bin/bash
# Install what the harness needs from Debian: QEMU's build dependencies from
# Debian 12, meson from bookworm-backports, the test peers, and a deb-src entry
# for the unstable index that carries the QEMU source package.
. "$(dirname "$0")/common.sh"

SOURCES=/etc/apt/sources.list.d/vmgenid-harness.sources

# Build dependencies (a subset of Debian's qemu Build-Depends that is enough
# for an x86_64-softmmu build) and the tools and peers the tests use.
PACKAGES=(
    build-essential dpkg-dev pkgconf ninja-build flex bison ccache
    gcc-i686-linux-gnu         # for the x86 option ROMs (linuxboot_dma.bin, ...)
    python3 python3-venv python3-distlib python3-sphinx python3-sphinx-rtd-theme
    libglib2.0-dev zlib1g-dev libpixman-1-dev libfdt-dev libzstd-dev
    libaio-dev libslirp-dev
    seabios ovmf ipxe-qemu acpica-tools busybox-static cpio xz-utils
)
BACKPORTS=(meson)

write_sources() {
    cat > "$SOURCES.new" <<'SRC'
# Added by the vmgenid harness: QEMU's source from unstable (sources only,
# no binaries) and meson from bookworm-backports.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: unstable
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    if cmp -s "$SOURCES.new" "$SOURCES"; then
        rm "$SOURCES.new"
        return 1
    fi
    mv "$SOURCES.new" "$SOURCES"
}

missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q 'install ok installed' || echo "$p"
    done
}

[ "$(id -u)" = 0 ] || die "run as root: apt-get installs the dependencies"

need=$(missing "${PACKAGES[@]}" "${BACKPORTS[@]}")
if write_sources || [ -n "$need" ]; then
    apt-get update -q >/dev/null || die "apt-get update failed (network or sources?)"
fi
if [ -n "$(missing "${PACKAGES[@]}")" ]; then
    # shellcheck disable=SC2046
    apt-get install -y -q --no-install-recommends $(missing "${PACKAGES[@]}") >/dev/null
fi
if [ -n "$(missing "${BACKPORTS[@]}")" ]; then
    apt-get install -y -q --no-install-recommends -t bookworm-backports \
        "${BACKPORTS[@]}" >/dev/null
fi
meson_version=$(meson --version)
dpkg --compare-versions "$meson_version" ge 1.5 ||
    die "meson $meson_version is too old; 1.5 or later comes from bookworm-backports"
echo "dependencies installed (meson $meson_version)"
