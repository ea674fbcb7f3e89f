"""Measure the vmgenid device under TCG: how soon a guest reads a new
generation ID, what the device costs at boot and restore, and how a revert
in one QEMU process compares with libvirt's, which restarts QEMU.

harness/bench.sh runs this after building both QEMUs and starting private
libvirt daemons; it writes every sample (seconds) to a JSON file that
bench/report.py turns into a table and a plot.

Times come from the host only.  A guest "reads" a new GUID when the line
`<time> <guid>` of `vmgenid-guest --watch`, running in the foreground on
the guest's serial console, arrives on the host's end of that console; the
host's wall clock at that moment is compared with the host-side change: the
QMP timestamp of the RESUME event (restore, loadvm) or the moment the
command was sent (set-vm-generation-id, virsh).  The tool re-reads the GUID
every 100 ms, so every latency includes up to 100 ms of that period.

Standard library only (Debian's /usr/bin/python3).
"""

import argparse
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'harness'))
import vm as harness  # noqa: E402

GUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
FIRST_LINE = re.compile(rf'^({GUID})$')            # the watcher's first line
CHANGE_LINE = re.compile(rf'(\d+\.\d{{3}}) ({GUID})$')  # each change after
READY = re.compile(r'GUEST-READY')
APPEND = 'console=ttyS0 panic=-1 quiet'
BOOT_TIMEOUT = 240
SEEN_TIMEOUT = 60
MIGRATE_TIMEOUT = 180

# Every measurement, in the order of the report; the smoke mode wants one
# number for each.  Keys are build/what; values are lists of seconds.
MEASUREMENTS = [
    'latency/restore/ours', 'latency/restore/upstream',
    'latency/set/ours', 'latency/loadvm/ours',
    'boot/ours/dev', 'boot/upstream/dev', 'boot/ours/nodev', 'boot/upstream/nodev',
    'restore/ours/dev', 'restore/upstream/dev',
    'restore/ours/nodev', 'restore/upstream/nodev',
    'save/ours/dev', 'save/upstream/dev', 'save/ours/nodev', 'save/upstream/nodev',
    'loadvm-command/ours',
    'revert/ours/loadvm', 'revert/ours/libvirt-domain',
    'revert/libvirt/snapshot-revert', 'revert/libvirt/virsh',
]


def say(text):
    print(text, flush=True)


class Serial:
    """A guest's serial console, read by a thread of its own so that every
    line is stamped with the host's clocks the moment it arrives.

    Either a connected socket (QEMU is the server) or a listening one
    (QEMU connects, again after each restart: libvirt's revert)."""

    def __init__(self, log_path, sock=None, listener=None):
        self.lines = []             # (wall clock, monotonic, text)
        self.cond = threading.Condition()
        self.sock = sock
        self.listener = listener
        self.log = open(log_path, 'a', encoding='utf-8', errors='replace')
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        if not self.listener:
            self._read(self.sock)
            return
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.cond:
                self.sock = conn
            self._read(conn)
            conn.close()

    def _read(self, sock):
        partial = b''
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b''
            wall, mono = time.time(), time.monotonic()
            if not data:
                return
            try:
                self.log.write(data.decode('utf-8', 'replace'))
                self.log.flush()
            except ValueError:      # closed: the console is no longer wanted
                pass
            partial += data
            with self.cond:
                while b'\n' in partial:
                    line, partial = partial.split(b'\n', 1)
                    text = line.decode('utf-8', 'replace').rstrip('\r')
                    self.lines.append((wall, mono, text))
                self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait(self, regex, start=0, timeout=SEEN_TIMEOUT, pred=None):
        """The first line from index start on that regex matches (and
        pred(match) accepts): (wall, mono, match)."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    wall, mono, text = self.lines[i]
                    i += 1
                    m = regex.search(text)
                    if m and (pred is None or pred(m)):
                        return wall, mono, m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = ' | '.join(t for _, _, t in self.lines[-5:])
                    raise TimeoutError(f'serial: no {regex.pattern!r} within '
                                       f'{timeout} s; last lines: {tail}')
                self.cond.wait(left)

    def send(self, text):
        with self.cond:
            sock = self.sock
        sock.sendall(text.encode())

    def close(self):
        """After QEMU is gone (or the listener closed): let the reader see
        the end of the stream, then close the log."""
        self.thread.join(5)
        self.log.close()


def start_watcher(serial):
    """Run vmgenid-guest --watch in the foreground; the GUID it starts with."""
    mark = serial.mark()
    serial.send('vmgenid-guest --watch\n')
    return serial.wait(FIRST_LINE, mark, 30)[2].group(1)


def seen(serial, start, guid, timeout=SEEN_TIMEOUT):
    """Host wall-clock time at which the watcher's line for guid arrived."""
    guid = guid.lower()
    return serial.wait(CHANGE_LINE, start, timeout,
                       pred=lambda m: m.group(2) == guid)[0]


def event_time(ev):
    ts = ev['timestamp']
    return ts['seconds'] + ts['microseconds'] / 1e6


def resume_time(vm, timeout=30):
    return event_time(vm.qmp.wait_event('RESUME', timeout))


def hmp(vm, line, timeout=MIGRATE_TIMEOUT):
    out = vm.qmp.cmd('human-monitor-command', timeout=timeout,
                     **{'command-line': line})
    if out.strip():
        raise harness.VMError(f'HMP {line!r}: {out.strip()}')


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.qemu = {'ours': args.ours, 'upstream': args.upstream}
        self.samples = {k: [] for k in MEASUREMENTS}
        self.errors = []
        self.notes = []

    def record(self, key, seconds):
        self.samples[key].append(seconds)
        shown = f'{seconds * 1000:.0f} ms' if seconds < 1 else f'{seconds:.2f} s'
        say(f'  {key}: {shown}')

    def failed(self, what, exc):
        text = ' | '.join(f'{type(exc).__name__}: {exc}'.strip().splitlines()[-8:])
        self.errors.append(f'{what}: {text}')
        say(f'  ERROR {what}: {text}')
        if os.environ.get('BENCH_DEBUG'):
            traceback.print_exc()

    def vm(self, name, build, args=(), incoming=False):
        return harness.VM(name, qemu=self.qemu[build], args=list(args),
                          append='', incoming=incoming)

    def serial(self, vm, name):
        return Serial(self.work / f'{name}.console.log', sock=vm.console.sock)

    def boot(self, vm, name):
        """For a vm just launched (by `with`): wait for the guest's
        userspace; (serial, seconds since QEMU started)."""
        serial = self.serial(vm, name)
        mono = serial.wait(READY, 0, BOOT_TIMEOUT)[1]
        return serial, mono - vm.started

    # --- 1 and 2: boot, save, restore with a new GUID, both builds ------
    def cycle(self, build, dev, run):
        """Boot a guest, save it to a file, restore the file into a new
        QEMU (with a new GUID if the guest has the device)."""
        tag = f'{build}/{"dev" if dev else "nodev"}'
        name = f'bench-{build}-{"dev" if dev else "nodev"}-{run}'
        device = lambda g: ['-device', f'vmgenid,guid={g}'] if dev else []
        state = self.work / f'{build}-{"dev" if dev else "nodev"}.state'
        state.unlink(missing_ok=True)

        a = self.vm(f'{name}-a', build, device(uuid.uuid4()))
        with a:
            serial, boot = self.boot(a, f'{name}-a')
            self.record(f'boot/{tag}', boot)
            if dev:
                start_watcher(serial)
            t = time.monotonic()
            a.stop()
            a.qmp.cmd('migrate', uri=f'file:{state}')
            a.wait_migration(MIGRATE_TIMEOUT, poll=0.01)
            self.record(f'save/{tag}', time.monotonic() - t)
        serial.close()

        new = str(uuid.uuid4())
        b = self.vm(f'{name}-b', build, device(new), incoming=True)
        t = time.monotonic()
        with b:
            serial = self.serial(b, f'{name}-b')
            b.qmp.cmd('migrate-incoming', uri=f'file:{state}')
            b.wait_migration(MIGRATE_TIMEOUT, poll=0.01)
            b.qmp.events.clear()
            b.qmp.cmd('cont')
            self.record(f'restore/{tag}', time.monotonic() - t)
            if dev:
                resumed = resume_time(b)
                self.record(f'latency/restore/{build}', seen(serial, 0, new) - resumed)
        serial.close()
        state.unlink(missing_ok=True)

    def phase_cycles(self):
        configs = [('ours', True), ('upstream', True), ('ours', False), ('upstream', False)]
        for run in range(self.args.runs):
            say(f'round {run + 1}/{self.args.runs}: boot, save, restore')
            # A different order each round, so that a slow spell of the
            # (shared) machine does not always hit the same configuration.
            k = run % len(configs)
            for build, dev in configs[k:] + configs[:k]:
                try:
                    self.cycle(build, dev, run)
                except Exception as e:  # noqa: BLE001 - recorded, run goes on
                    self.failed(f'{build} {"with" if dev else "without"} device, '
                                f'round {run + 1}', e)

    # --- 1 and 3: set-vm-generation-id and loadvm, ours -----------------
    def disk(self, name):
        path = self.work / f'{name}.qcow2'
        path.unlink(missing_ok=True)
        subprocess.run([self.args.qemu_img, 'create', '-q', '-f', 'qcow2',
                        str(path), '64M'], check=True)
        return path

    def phase_ours(self):
        """One guest like the libvirt domain below (q35, 256 MiB, a virtio
        qcow2 disk for the snapshot), with guid=auto."""
        say('ours: loadvm with guid=auto, set-vm-generation-id')
        disk = self.disk('ours')
        g = self.vm('bench-ours', 'ours', [
            '-device', 'vmgenid,id=vmgenid0,guid=auto',
            '-drive', f'if=none,id=disk0,file={disk},format=qcow2',
            '-device', 'virtio-blk-pci,drive=disk0'])
        with g:
            serial, _ = self.boot(g, 'bench-ours')
            start_watcher(serial)
            for run in range(self.args.runs):
                try:
                    # A snapshot of its own for each load: the watcher's
                    # 100 ms period is then at a different point each time.
                    self.pause()
                    hmp(g, 'savevm bench')
                    self.pause()
                    old = g.qmp.cmd('query-vm-generation-id')['guid'].lower()
                    mark = serial.mark()
                    g.qmp.events.clear()
                    wall, t = time.time(), time.monotonic()
                    hmp(g, 'loadvm bench')
                    self.record('loadvm-command/ours', time.monotonic() - t)
                    resumed = resume_time(g)
                    new = g.qmp.cmd('query-vm-generation-id')['guid'].lower()
                    if new == old:
                        raise harness.VMError(f'loadvm kept the GUID {old}')
                    at = seen(serial, mark, new)
                    self.record('latency/loadvm/ours', at - resumed)
                    self.record('revert/ours/loadvm', at - wall)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'ours loadvm, run {run + 1}', e)
            for run in range(self.args.runs):
                try:
                    self.pause()
                    new = str(uuid.uuid4())
                    mark = serial.mark()
                    wall = time.time()
                    g.qmp.cmd('set-vm-generation-id', guid=new)
                    self.record('latency/set/ours', seen(serial, mark, new) - wall)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'ours set-vm-generation-id, run {run + 1}', e)
        serial.close()

    def pause(self):
        """A random pause, so that changes fall anywhere in the guest
        tool's 100 ms period rather than in step with it."""
        time.sleep(random.uniform(0.2, 0.6))

    # --- 3: libvirt 9.0 snapshot-revert against loadvm in its domain -----
    def virsh(self, *args, timeout=MIGRATE_TIMEOUT):
        r = subprocess.run(['virsh', *map(str, args)], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"virsh {' '.join(map(str, args))}: {r.stderr.strip()}")
        return r.stdout

    def domain_xml(self, name, disk, serial_path, emulator):
        guest = harness.BUILD / 'guest'
        return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <genid/>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{guest / 'vmlinuz'}</kernel>
    <initrd>{guest / 'initramfs.cpio.gz'}</initrd>
    <cmdline>{APPEND}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>{emulator}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='unix'>
      <source mode='connect' path='{serial_path}'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""

    def genid(self, name):
        out = self.virsh('dumpxml', name)
        m = re.search(rf'<genid>({GUID})</genid>', out, re.I)
        if not m:
            raise RuntimeError(f'no <genid> in the dumpxml of {name}')
        return m.group(1).lower()

    def qemu_pid(self, lv, name):
        return (lv / 'run' / 'qemu' / f'{name}.pid').read_text().strip()

    def phase_libvirt(self):
        lv = Path(self.args.libvirt)
        os.environ['LIBVIRT_DEFAULT_URI'] = f'qemu:///system?socket={lv}/run/libvirt-sock'
        name = 'vmgenid-bench'
        say('libvirt 9.0: snapshot-revert, and loadvm + set in the same domain')
        disk = self.disk('libvirt')
        sock_path = lv / 'domains' / f'{name}.serial'
        sock_path.parent.mkdir(parents=True, exist_ok=True)
        sock_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sock_path))
        listener.listen(4)
        serial = Serial(self.work / f'{name}.console.log', listener=listener)
        xml = lv / 'domains' / f'{name}.xml'
        xml.write_text(self.domain_xml(name, disk, sock_path, self.args.emulator))
        self.virsh('define', xml)
        try:
            self.virsh('start', name)
            serial.wait(READY, 0, BOOT_TIMEOUT)
            start_watcher(serial)
            self.virsh('snapshot-create-as', name, 'snap1')
            restarts = 0
            for run in range(self.args.runs):
                try:
                    self.pause()
                    old, pid = self.genid(name), self.qemu_pid(lv, name)
                    mark = serial.mark()
                    wall, t = time.time(), time.monotonic()
                    self.virsh('snapshot-revert', name, 'snap1')
                    self.record('revert/libvirt/virsh', time.monotonic() - t)
                    new = self.genid(name)
                    if new == old:
                        raise RuntimeError(f'snapshot-revert kept <genid> {old}')
                    restarts += self.qemu_pid(lv, name) != pid
                    self.record('revert/libvirt/snapshot-revert',
                                seen(serial, mark, new) - wall)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'libvirt snapshot-revert, run {run + 1}', e)
                try:
                    self.pause()
                    new = str(uuid.uuid4())
                    mark = serial.mark()
                    wall = time.time()
                    self.virsh('qemu-monitor-command', name, '--hmp', 'loadvm snap1')
                    self.virsh('qemu-monitor-command', name, json.dumps(
                        {'execute': 'set-vm-generation-id', 'arguments': {'guid': new}}))
                    self.record('revert/ours/libvirt-domain', seen(serial, mark, new) - wall)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'loadvm + set in the libvirt domain, run {run + 1}', e)
            self.notes.append(f'libvirt snapshot-revert started a new QEMU process '
                              f'in {restarts} of {self.args.runs} reverts')
        finally:
            for cmd in (('destroy', name), ('undefine', name, '--snapshots-metadata')):
                try:
                    self.virsh(*cmd)
                except Exception:  # noqa: BLE001 - libvirtd.sh stop cleans up
                    pass
            try:
                listener.shutdown(socket.SHUT_RDWR)   # wakes the accept()
            except OSError:
                pass
            listener.close()
            serial.close()

    def run(self):
        self.work.mkdir(parents=True, exist_ok=True)
        started = time.time()
        load0 = os.getloadavg()
        phases = [self.phase_cycles, self.phase_ours]
        if self.args.libvirt:
            phases.append(self.phase_libvirt)
        for phase in phases:
            try:
                phase()
            except Exception as e:  # noqa: BLE001
                self.failed(phase.__name__, e)
        meta = machine()
        meta.update({
            'runs': self.args.runs, 'smoke': self.args.smoke,
            'seconds': round(time.time() - started),
            'loadavg_start': [round(x, 2) for x in load0],
            'loadavg_end': [round(x, 2) for x in os.getloadavg()],
            'qemu_ours': version(self.args.ours),
            'qemu_upstream': version(self.args.upstream),
            'libvirt': self.virsh('--version').strip() if self.args.libvirt else None,
            'notes': self.notes,
        })
        return {'meta': meta, 'samples': self.samples, 'errors': self.errors}


def version(qemu):
    out = subprocess.run([qemu, '-version'], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else '?'


def machine():
    cpu = '?'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    guest = harness.BUILD / 'guest' / 'vmlinuz.version'
    commit = subprocess.run(['git', '-C', str(ROOT), 'describe', '--always', '--dirty'],
                            capture_output=True, text=True).stdout.strip()
    return {
        'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
        'nproc': os.cpu_count(), 'cpu': cpu,
        'host_kernel': platform.release(), 'accel': harness.ACCEL,
        'guest_kernel': guest.read_text().strip() if guest.exists() else '?',
        'guest': 'q35, SeaBIOS, 1 vCPU, 256 MiB, Linux + busybox initramfs',
        'commit': commit or '?',
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--runs', type=int, default=15)
    p.add_argument('--smoke', action='store_true', help='recorded in the output only')
    p.add_argument('--ours', required=True)
    p.add_argument('--upstream', required=True)
    p.add_argument('--qemu-img', required=True)
    p.add_argument('--libvirt', help='the private libvirt folder (harness/libvirtd.sh)')
    p.add_argument('--emulator', help="the libvirt domain's <emulator>")
    p.add_argument('--work', required=True, help='state files, disks, console logs')
    p.add_argument('--out', required=True, help='JSON file of all samples')
    args = p.parse_args()
    if args.libvirt and not args.emulator:
        p.error('--libvirt needs --emulator')

    result = Bench(args).run()
    Path(args.out).write_text(json.dumps(result, indent=1) + '\n')
    missing = [k for k in MEASUREMENTS if not result['samples'][k]]
    for k in missing:
        say(f'no number for {k}')
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main())
