#!/bin/bash
# End-to-end test of our vmgenid device under Debian 12's libvirt 9.0.
#
# Starts a private virtlogd + libvirtd as root, with all their state under
# build/libvirt/ and no systemd, then runs checks.py against it.  The
# daemons live in a mount namespace of their own in which build/libvirt/*
# is bind-mounted over libvirt's fixed paths (/etc/libvirt, /run/libvirt,
# /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), so a system
# libvirtd, if any, is neither used nor disturbed.  virsh reaches ours
# through build/libvirt/run/libvirt-sock.  Outside the namespace those
# five paths are at most empty folders (mount points).
#
#   bash tests/libvirt/run.sh        # exit status 0 only if every check passed
# shellcheck disable=SC2317  # functions that run through phase() or the trap
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/libvirt
WORK=$ROOT/build/libvirt
QEMU=$ROOT/build/qemu-system-x86_64
WRAPPER=$WORK/bin/qemu-system-x86_64
PYTHON=/usr/bin/python3
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$WORK/run/libvirt-sock"

# libvirt's fixed paths (privileged daemon) -> our folders under $WORK.
declare -A MOUNTS=(
    [/etc/libvirt]=$WORK/etc
    [/run/libvirt]=$WORK/run
    [/var/lib/libvirt]=$WORK/lib
    [/var/log/libvirt]=$WORK/log
    [/var/cache/libvirt]=$WORK/cache
)

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

# --- 1. packages -----------------------------------------------------------
# libvirtd and virtlogd come in libvirt-daemon.  libvirt-daemon-system is
# not needed (it would start the system's own daemons under systemd and
# pull in a newer systemd); we only take the one thing it would do that
# libvirtd needs: the libvirt-qemu user and group, which the QEMU driver
# looks up as its built-in default before it reads qemu.conf.
install_packages() {
    local p status missing=()
    for p in libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients; do
        status=$(dpkg-query -W -f '${Status} ${Version}' "$p" 2>/dev/null || true)
        # /bookworm pins 9.0 even though bookworm-backports offers 11.x.
        [[ $status == "install ok installed 9.0."* ]] || missing+=("$p/bookworm")
    done
    if ((${#missing[@]})); then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    getent passwd libvirt-qemu >/dev/null ||
        useradd --system --user-group --no-create-home \
                --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
    virsh --version | grep -q '^9\.0\.' || die "virsh is not libvirt 9.0"
}

# --- 2. private daemons ----------------------------------------------------
# alive PID: the process exists and is not a zombie (the daemons' parent
# after they fork away may be a PID 1 that is slow to reap).
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

# kill_pidfile FILE NAME: stop the process whose pid FILE holds, if it is
# still NAME (a pid file left by an earlier run may name a reused pid).
kill_pidfile() {
    local file=$1 name=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$file"
}

# Domains first (libvirt's pid files), then the daemons.
stop_all() {
    local f
    for f in "$WORK"/run/qemu/*.pid; do
        [ -e "$f" ] && kill_pidfile "$f" qemu-system-x86
    done
    kill_pidfile "$WORK/libvirtd.pid" libvirtd
    kill_pidfile "$WORK/virtlogd.pid" virtlogd
}

write_config() {
    local d
    rm -rf "$WORK"
    for d in "${MOUNTS[@]}"; do mkdir -p "$d"; done
    mkdir -p "$WORK/domains"
    cat > "$WORK/etc/libvirtd.conf" <<'EOF'
# Both sockets for root only, without polkit; no TCP (the default).
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    cat > "$WORK/etc/virtlogd.conf" <<'EOF'
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
    cat > "$WORK/etc/qemu.conf" <<'EOF'
# QEMU runs as root, outside any cgroup, namespace or MAC confinement:
# the test needs none of them, and a container may offer none.
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
# Files keep their owner; no extended attributes to remember it.
dynamic_ownership = 0
remember_owner = 0
EOF
    # The domains' <emulator>, also first on the daemons' PATH so that
    # libvirt's default x86_64 emulator is ours too.  libvirt caches what
    # it probed from an emulator keyed by the binary's path and ctime: a
    # fresh wrapper each run makes it probe our current build.
    mkdir -p "$WORK/bin"
    printf '#!/bin/sh\nexec %q "$@"\n' "$QEMU" > "$WRAPPER"
    chmod 755 "$WRAPPER"
}

start_daemons() {
    local path setup=''
    for path in "${!MOUNTS[@]}"; do
        mkdir -p "$path"   # the mount point; empty, only used inside the namespace
        setup+="mount --bind '${MOUNTS[$path]}' '$path' && "
    done
    # The namespace lives as long as a process in it does: the two daemons
    # and the QEMU processes libvirtd starts.
    PATH=$WORK/bin:$PATH unshare --mount --propagation private -- /bin/sh -ec "$setup
        virtlogd --daemon --config /etc/libvirt/virtlogd.conf --pid-file '$WORK/virtlogd.pid'
        libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file '$WORK/libvirtd.pid'"
    for _ in $(seq 100); do
        virsh uri >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/log/libvirtd.log" >&2 || true
    die "libvirtd did not answer on $WORK/run/libvirt-sock"
}

# --- main ------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root"
for f in "$QEMU" "$ROOT/build/qemu-img"; do
    [ -x "$f" ] || die "$f is missing: build QEMU first"
done
if [ ! -e "$ROOT/build/guest/vmlinuz" ] || [ ! -e "$ROOT/build/guest/initramfs.cpio.gz" ]; then
    phase guest-build bash "$ROOT/guest/build-initramfs.sh"
fi

phase packages install_packages
stop_all   # whatever an interrupted earlier run left behind
write_config
trap 'stop_all; echo "time: total $(elapsed "$T0") s"' EXIT
phase daemons start_daemons
virsh version --daemon | sed -n 's/^Running against daemon: */libvirtd /p'
echo "state in ${WORK#"$ROOT"/}, emulator ${WRAPPER#"$ROOT"/}"

rc=0
"$PYTHON" -B "$HERE/checks.py" "$WORK" "$WRAPPER" || rc=$?
exit $rc
