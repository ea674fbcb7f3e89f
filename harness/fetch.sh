#!/bin/bash
# Download Debian's qemu source package once into build/dl and check it
# against the checksums its .dsc carries. A later run reuses it.
. "$(dirname "$0")/common.sh"

upstream_version=${QEMU_DEB_VERSION#*:}
dsc=$DL/qemu_${upstream_version}.dsc

verify() {
    [ -f "$dsc" ] || return 1
    # Checksums-Sha256 lines: " <sha256> <size> <file>"
    sed -n '/^Checksums-Sha256:/,/^[^ ]/{/^ /p}' "$dsc" |
        awk '{ print $1 "  " $3 }' | (cd "$DL" && sha256sum --quiet -c -)
}

if [ -f "$dsc" ]; then
    verify || die "the download in $DL is damaged; remove that folder and run 'make' again"
    echo "reusing qemu $QEMU_DEB_VERSION from $DL"
    exit 0
fi

mkdir -p "$DL"
tmp=$(mktemp -d "$DL/.part.XXXXXX")
# apt checks each file against the signed Sources index while downloading.
if ! (cd "$tmp" && apt-get source -q --download-only "qemu=$QEMU_DEB_VERSION" \
        >apt-source.log 2>&1); then
    tail -n 5 "$tmp/apt-source.log" >&2
    rm -rf "$tmp"
    die "could not download qemu $QEMU_DEB_VERSION; run 'make deps' (it adds the deb-src entry) and check the network"
fi
mv "$tmp"/qemu_* "$DL"/
rm -rf "$tmp"
verify || die "the download in $DL is damaged; remove that folder and run 'make' again"
echo "downloaded qemu $QEMU_DEB_VERSION into $DL"
