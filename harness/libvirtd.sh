#!/bin/bash
# Private libvirt 9.0 daemons for the tests and the benchmark: virtlogd +
# libvirtd as root, no systemd, in a mount namespace of their own where
# libvirt's fixed paths (/etc/libvirt, /run/libvirt, /var/lib/libvirt,
# /var/log/libvirt, /var/cache/libvirt) are bind mounts of folders under
# WORK. A system libvirtd, if any, is neither used nor disturbed; outside
# the namespace those paths are at most empty folders (mount points).
#
#   harness/libvirtd.sh start WORK EMULATOR...  # fresh WORK, daemons running
#   harness/libvirtd.sh stop WORK                # domains, then the daemons
#
# virsh reaches the daemon with
#   LIBVIRT_DEFAULT_URI="qemu:///system?socket=WORK/run/libvirt-sock"
# and for each EMULATOR (e.g. build/qemu-system-x86_64) the domains'
# <emulator> is WORK/bin/ with the same name (WORK/bin/qemu-system-x86_64),
# a wrapper that runs it.
set -euo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

die() { echo "libvirtd.sh: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 start WORK EMULATOR... | stop WORK"
ACTION=$1
WORK=$(realpath -m "$2")
# WORK is emptied on start: refuse anything that is not a folder of its own.
case $WORK in
    /|/etc|/run|/var|/usr|/root|/home|/tmp) die "refusing WORK=$WORK" ;;
    /etc/libvirt|/run/libvirt|/var/lib/libvirt|/var/log/libvirt|/var/cache/libvirt)
        die "refusing WORK=$WORK" ;;
esac

declare -A MOUNTS=(
    [/etc/libvirt]=$WORK/etc
    [/run/libvirt]=$WORK/run
    [/var/lib/libvirt]=$WORK/lib
    [/var/log/libvirt]=$WORK/log
    [/var/cache/libvirt]=$WORK/cache
)

# Debian 12's libvirt 9.0 (/bookworm pins it: backports offers 11.x) and the
# libvirt-qemu user its QEMU driver looks up before it reads qemu.conf.
# libvirt-daemon-system is not needed: it would start the system's own
# daemons under systemd and pull in a newer systemd.
install_packages() {
    local p status missing=()
    for p in libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients; do
        status=$(dpkg-query -W -f '${Status} ${Version}' "$p" 2>/dev/null || true)
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

# alive PID: exists and is not a zombie (the daemons' parent after they
# fork away may be a PID 1 that is slow to reap).
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

# stop_pidfile FILE NAME: end the process FILE names if its name still
# matches the pattern NAME (a pid file left by an earlier run may name a
# reused pid).
stop_pidfile() {
    local file=$1 name=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    # shellcheck disable=SC2053 # NAME is a pattern
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == $name ]]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$file"
}

stop_all() {
    local f
    for f in "$WORK"/run/qemu/*.pid; do
        # The kernel keeps 15 characters of a name: qemu-system-aar.
        [ -e "$f" ] && stop_pidfile "$f" 'qemu-system-*'
    done
    stop_pidfile "$WORK/libvirtd.pid" libvirtd
    stop_pidfile "$WORK/virtlogd.pid" virtlogd
}

write_config() {
    local d
    rm -rf "$WORK"
    for d in "${MOUNTS[@]}"; do mkdir -p "$d"; done
    mkdir -p "$WORK/domains" "$WORK/bin"
    cat > "$WORK/etc/libvirtd.conf" <<'EOF'
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
# the tests need none of them, and a container may offer none.
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
dynamic_ownership = 0
remember_owner = 0
EOF
    # The domains' <emulator>s, also first on the daemons' PATH so that
    # libvirt's default emulator of each architecture is ours too (and
    # libvirt knows an architecture only when it finds its emulator). A
    # new wrapper each time: libvirt keys its cache of what it probed from
    # an emulator on the binary's path and ctime.
    local name
    for name in "${!EMULATORS[@]}"; do
        printf '#!/bin/sh\nexec %q "$@"\n' "${EMULATORS[$name]}" > "$WORK/bin/$name"
        chmod 755 "$WORK/bin/$name"
    done
}

start_daemons() {
    local path setup=''
    for path in "${!MOUNTS[@]}"; do
        mkdir -p "$path"
        setup+="mount --bind '${MOUNTS[$path]}' '$path' && "
    done
    PATH=$WORK/bin:$PATH unshare --mount --propagation private -- /bin/sh -ec "$setup
        virtlogd --daemon --config /etc/libvirt/virtlogd.conf --pid-file '$WORK/virtlogd.pid'
        libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file '$WORK/libvirtd.pid'"
    export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$WORK/run/libvirt-sock"
    for _ in $(seq 100); do
        virsh uri >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/log/libvirtd.log" >&2 || true
    die "libvirtd did not answer on $WORK/run/libvirt-sock"
}

case $ACTION in
    start)
        [ $# -ge 3 ] || die "usage: $0 start WORK EMULATOR..."
        declare -A EMULATORS=()     # wrapper name -> the binary it runs
        for e in "${@:3}"; do
            [ -x "$e" ] || die "$e is not an executable"
            EMULATORS[$(basename "$e")]=$(realpath "$e")
        done
        [ "$(id -u)" = 0 ] || die "run as root"
        install_packages
        stop_all
        write_config
        start_daemons
        ;;
    stop)
        stop_all
        ;;
    *)
        die "unknown action $ACTION"
        ;;
esac
