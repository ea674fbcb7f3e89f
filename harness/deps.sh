#!/bin/bash
# Install what the harness needs from Debian: QEMU's build dependencies from
# Debian 12, meson from bookworm-backports, the test peers, and a deb-src entry
# for the unstable index that carries the QEMU source package. Both entries
# use the Debian mirror this machine's apt already uses for bookworm.
#
#   harness/deps.sh                 install (as root; safe to run again)
#   harness/deps.sh --mirror [DIR]  print the mirror found in DIR (/etc/apt)
# shellcheck source-path=SCRIPTDIR
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
    seabios ovmf ipxe-qemu acpica-tools device-tree-compiler
    busybox-static cpio xz-utils
    # the arm64 test guest (guest/build-initramfs.sh) and its firmware
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-efi-aarch64
)
# From bookworm-backports: meson (QEMU needs 1.5), and pycotap, which
# QEMU's functional tests (tests/functional/qemu_test) import.
BACKPORTS=(meson python3-pycotap)

# The URIs of the sources that serve "deb ... bookworm main": one-line
# entries (sources.list, *.list) on stdin.
list_uris() {
    awk '{ sub(/#.*/, "") }
         $1 == "deb" {
             i = 2
             if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
             if ($(i + 1) != "bookworm") next
             for (c = i + 2; c <= NF; c++) if ($c == "main") { print $i; next }
         }'
}
# The same for deb822 entries (*.sources): paragraphs of "Field: value",
# values continued on indented lines, "Enabled: no" switching one off.
deb822_uris() {
    awk 'function has(list, word) { return (" " list " ") ~ (" " word " ") }
         function flush() {
             if (has(f["types"], "deb") && has(f["suites"], "bookworm") &&
                 has(f["components"], "main") && tolower(f["enabled"]) != "no")
                 print f["uris"]
             split("", f); name = ""
         }
         /^#/ { next }
         /^[ \t]*$/ { flush(); next }
         /^[ \t]/ { if (name != "") f[name] = f[name] " " $0; next }
         { i = index($0, ":"); if (!i) next
           name = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1)
           gsub(/^[ \t]+|[ \t]+$/, "", v); f[name] = v }
         END { flush() }' | tr -s ' \t' '\n' | sed '/^$/d'
}
# The Debian mirror apt uses on this machine (DIR: /etc/apt by default),
# so that a local mirror or proxy keeps working; an error if none
# serves bookworm main.
debian_mirror() {
    local dir=${1:-/etc/apt} f uri
    uri=$({
        if [ -f "$dir/sources.list" ]; then list_uris < "$dir/sources.list"; fi
        for f in "$dir"/sources.list.d/*.list; do
            if [ -f "$f" ]; then list_uris < "$f"; fi
        done
        for f in "$dir"/sources.list.d/*.sources; do
            if [ -f "$f" ]; then deb822_uris < "$f"; fi
        done
    } | head -n 1)
    uri=${uri%/}
    [ -n "$uri" ] ||
        die "no apt source in $dir serves Debian bookworm main; add one" \
            "(the harness takes its Debian mirror from there)"
    echo "$uri"
}

# guest/build-initramfs.sh takes the arm64 guest's kernels and busybox out
# of arm64 packages (apt-get download, never installed), which apt lists
# only once dpkg knows the architecture.
add_arm64() {
    if dpkg --print-foreign-architectures | grep -x arm64 >/dev/null; then
        return 1
    fi
    dpkg --add-architecture arm64
}

write_sources() {
    local mirror
    mirror=$(debian_mirror) || exit 1
    cat > "$SOURCES.new" <<SRC
# Added by the vmgenid harness: QEMU's source from unstable (sources only,
# no binaries) and meson from bookworm-backports, from the mirror that
# serves bookworm main here.
Types: deb-src
URIs: $mirror
Suites: unstable
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror
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

if [ "${1:-}" = --mirror ]; then
    debian_mirror "${2:-}"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root: apt-get installs the dependencies"

need=$(missing "${PACKAGES[@]}" "${BACKPORTS[@]}")
arm64=no
if add_arm64; then arm64=added; fi
if write_sources || [ -n "$need" ] || [ $arm64 = added ]; then
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
