"""Measure the vmgenid device under TCG: how soon a guest is notified of a
new generation ID, what the device costs at boot and restore, and how a
revert in one QEMU process compares with libvirt's, which restarts QEMU.

harness/bench.sh runs this after building both QEMUs and starting private
libvirt daemons; it writes every sample (seconds) to a JSON file that
bench/report.py turns into a table and a plot.

Times come from the host only.  The guest runs `vmgenid-guest --watch` in
the foreground on its serial console, woken by a kprobe on
add_vmfork_randomness (what Linux 6.1's vmgenid driver calls when it
handles the notification), read from tracefs's trace_pipe; no poll
period is in the way.  A guest of Linux 7 with vmclock compares that
driver-level wake-up with what any process can wait for: poll() on
/dev/vmclock0 (--watch=vmclock against --watch=kprobe, one after the
other in the same guest).  A latency ends when the tool's `<time> <guid>`
line arrives on the host's end of the console (a thread stamps every
line on arrival) and starts when the host sent the command (cont,
set-vm-generation-id, virsh) or, for loadvm, at the QMP timestamp of the
RESUME event.

QEMU is driven through QEMU's own python library (qemu.machine), which
guest/console.py sets up; nothing else beyond the standard library.
"""

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'guest'))
from console import (ACCEL, APPEND, GUEST, GUID, KERNEL, KERNEL7,  # noqa: E402
                     READY, Console, GuestError, GuestMachine)

FIRST_LINE = re.compile(rf'^({GUID})$')            # the watcher's first line
CHANGE_LINE = re.compile(rf'(\d+\.\d{{3}}) ({GUID})$')  # each change after
GEN_LINE = re.compile(r'^generation (\d+)$')     # --watch=vmclock, through mmap
# How the watcher says it waits; anything but an event is refused here.
WAKE_LINE = re.compile(r'^vmgenid-guest: (waiting for|waiting in|polling every) (.*)$')
BOOT_TIMEOUT = 240
SEEN_TIMEOUT = 60
MIGRATE_TIMEOUT = 180

# Every measurement, in the order of the report; the smoke mode wants one
# number for each.  Keys are build/what; values are lists of seconds.
MEASUREMENTS = [
    'latency/restore/ours', 'latency/restore/upstream',
    'latency/set/ours', 'latency/loadvm/ours',
    'latency/set/linux7-kprobe', 'latency/set/linux7-vmclock',
    'boot/ours/dev', 'boot/upstream/dev', 'boot/ours/nodev', 'boot/upstream/nodev',
    'restore/ours/dev', 'restore/upstream/dev',
    'restore/ours/nodev', 'restore/upstream/nodev', 'restore/ours/vmclock',
    'save/ours/dev', 'save/upstream/dev', 'save/ours/nodev', 'save/upstream/nodev',
    'loadvm-command/ours',
    'revert/ours/loadvm', 'revert/ours/libvirt-domain',
    'revert/libvirt/snapshot-revert', 'revert/libvirt/virsh',
]


def say(text):
    print(text, flush=True)


def start_watcher(console, way='kprobe'):
    """Run vmgenid-guest --watch=way (kprobe, vmclock) in the foreground;
    the GUID it starts with.  It must wait for an event: a poll period
    would be measured."""
    mark = console.mark()
    console.send(f'vmgenid-guest --watch={way}\n')
    m = console.wait(WAKE_LINE, mark, 30)[2]
    if m.group(1) == 'polling every':
        raise GuestError(f'the guest tool would poll: {m.group(0)}')
    return console.wait(FIRST_LINE, mark, 30)[2].group(1)


def stop_watcher(console):
    """Ctrl-C to the foreground watcher; its shell prompts again."""
    console.send('\x03')
    console.run('true')


def seen(console, start, guid, timeout=SEEN_TIMEOUT):
    """Host monotonic time at which the watcher's line for guid arrived."""
    guid = guid.lower()
    return console.wait(CHANGE_LINE, start, timeout,
                        pred=lambda m: m.group(2) == guid)[1]


def resume_time(vm, timeout=30):
    """The QMP timestamp of the next RESUME event, on the monotonic clock."""
    ts = vm.event_wait('RESUME', timeout)['timestamp']
    return ts['seconds'] + ts['microseconds'] / 1e6 - (time.time() - time.monotonic())


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

    def vm(self, name, build, args=(), incoming=False, kernel=KERNEL):
        return GuestMachine(name, qemu=self.qemu[build], args=list(args),
                            incoming=incoming, kernel=kernel)

    # --- 1 and 2: boot, save, restore with a new GUID, both builds ------
    def cycle(self, build, kind, run):
        """Boot a guest, save it to a file, restore the file into a new
        QEMU (with a new GUID if the guest has the device).  kind: dev
        (vmgenid), nodev, vmclock (vmgenid and vmclock with the
        generation counter, whose page a restore updates too)."""
        tag = f'{build}/{kind}'
        name = f'bench-{build}-{kind}-{run}'
        dev = kind != 'nodev'
        clock = ['-device', 'vmclock,vm-generation-counter=on'] if kind == 'vmclock' else []
        device = lambda g: ['-device', f'vmgenid,guid={g}', *clock] if dev else []
        state = self.work / f'{build}-{kind}.state'
        state.unlink(missing_ok=True)

        with self.vm(f'{name}-a', build, device(uuid.uuid4())) as a:
            boot = a.boot(BOOT_TIMEOUT)
            if kind != 'vmclock':
                self.record(f'boot/{tag}', boot)
            if dev:
                start_watcher(a.console)
            t = time.monotonic()
            a.save(state, MIGRATE_TIMEOUT)
            if kind != 'vmclock':
                self.record(f'save/{tag}', time.monotonic() - t)

        new = str(uuid.uuid4())
        t = time.monotonic()
        with self.vm(f'{name}-b', build, device(new), incoming=True) as b:
            b.launch()
            b.restore(state, MIGRATE_TIMEOUT)
            sent = time.monotonic()
            b.cmd('cont')
            self.record(f'restore/{tag}', time.monotonic() - t)
            if kind == 'dev':
                self.record(f'latency/restore/{build}', seen(b.console, 0, new) - sent)
            elif dev:
                seen(b.console, 0, new)
        state.unlink(missing_ok=True)

    def phase_cycles(self):
        configs = [('ours', 'dev'), ('upstream', 'dev'), ('ours', 'nodev'),
                   ('upstream', 'nodev'), ('ours', 'vmclock')]
        for run in range(self.args.runs):
            say(f'round {run + 1}/{self.args.runs}: boot, save, restore')
            # A different order each round, so that a slow spell of the
            # (shared) machine does not always hit the same configuration.
            k = run % len(configs)
            for build, kind in configs[k:] + configs[:k]:
                try:
                    self.cycle(build, kind, run)
                except Exception as e:  # noqa: BLE001 - recorded, run goes on
                    self.failed(f'{build} {kind}, round {run + 1}', e)

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
        with self.vm('bench-ours', 'ours', [
                '-device', 'vmgenid,id=vmgenid0,guid=auto',
                '-drive', f'if=none,id=disk0,file={disk},format=qcow2',
                '-device', 'virtio-blk-pci,drive=disk0']) as g:
            g.boot(BOOT_TIMEOUT)
            start_watcher(g.console)
            for run in range(self.args.runs):
                try:
                    # A snapshot of its own for each load, as libvirt's
                    # revert below has one taken with the watcher running.
                    self.pause()
                    g.hmp('savevm bench')
                    self.pause()
                    old = g.cmd('query-vm-generation-id')['guid'].lower()
                    mark = g.console.mark()
                    g.get_qmp_events()
                    t = time.monotonic()
                    g.hmp('loadvm bench')
                    self.record('loadvm-command/ours', time.monotonic() - t)
                    resumed = resume_time(g)
                    new = g.cmd('query-vm-generation-id')['guid'].lower()
                    if new == old:
                        raise GuestError(f'loadvm kept the GUID {old}')
                    at = seen(g.console, mark, new)
                    self.record('latency/loadvm/ours', at - resumed)
                    self.record('revert/ours/loadvm', at - t)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'ours loadvm, run {run + 1}', e)
            for run in range(self.args.runs):
                try:
                    self.pause()
                    new = str(uuid.uuid4())
                    mark = g.console.mark()
                    t = time.monotonic()
                    g.cmd('set-vm-generation-id', guid=new)
                    self.record('latency/set/ours', seen(g.console, mark, new) - t)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'ours set-vm-generation-id, run {run + 1}', e)

    def pause(self):
        """Let the guest settle back into its wait between changes."""
        time.sleep(0.3)

    # --- 1: Linux 7, poll() on /dev/vmclock0 against the kprobe ---------
    def phase_linux7(self):
        """One Linux 7 guest with vmgenid and vmclock (counter on): each
        run sets a GUID once under each watcher, in turns, so that both
        see the same moments of the machine."""
        say('ours, Linux 7: set-vm-generation-id, poll() on /dev/vmclock0 '
            'against the kprobe')
        with self.vm('bench-linux7', 'ours', [
                '-device', 'vmgenid,guid=auto',
                '-device', 'vmclock,vm-generation-counter=on'],
                kernel=KERNEL7) as g:
            g.boot(BOOT_TIMEOUT)
            for run in range(self.args.runs):
                for way in ('kprobe', 'vmclock') if run % 2 else ('vmclock', 'kprobe'):
                    try:
                        mark = g.console.mark()
                        start_watcher(g.console, way)
                        if way == 'vmclock':
                            gen = g.console.wait(GEN_LINE, mark, 30)[2].group(1)
                        self.pause()
                        new = str(uuid.uuid4())
                        mark = g.console.mark()
                        t = time.monotonic()
                        g.cmd('set-vm-generation-id', guid=new)
                        self.record(f'latency/set/linux7-{way}',
                                    seen(g.console, mark, new) - t)
                        # The counter, read through mmap, moved with it.
                        if way == 'vmclock' and g.console.wait(
                                GEN_LINE, mark, 10)[2].group(1) == gen:
                            raise GuestError(f'vm_generation_counter stayed {gen}')
                    except Exception as e:  # noqa: BLE001
                        self.failed(f'Linux 7 {way}, run {run + 1}', e)
                    finally:
                        # Also after a failure, so the next run finds a shell.
                        stop_watcher(g.console)

    # --- 3: libvirt 9.0 snapshot-revert against loadvm in its domain -----
    def virsh(self, *args, timeout=MIGRATE_TIMEOUT):
        r = subprocess.run(['virsh', *map(str, args)], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"virsh {' '.join(map(str, args))}: {r.stderr.strip()}")
        return r.stdout

    def domain_xml(self, name, disk, serial_path, emulator):
        return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <genid/>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{GUEST / 'vmlinuz'}</kernel>
    <initrd>{GUEST / 'initramfs.cpio.gz'}</initrd>
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
        serial = Console(self.work / f'{name}.console.log', listener=listener)
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
                    t = time.monotonic()
                    self.virsh('snapshot-revert', name, 'snap1')
                    self.record('revert/libvirt/virsh', time.monotonic() - t)
                    new = self.genid(name)
                    if new == old:
                        raise RuntimeError(f'snapshot-revert kept <genid> {old}')
                    restarts += self.qemu_pid(lv, name) != pid
                    self.record('revert/libvirt/snapshot-revert',
                                seen(serial, mark, new) - t)
                except Exception as e:  # noqa: BLE001
                    self.failed(f'libvirt snapshot-revert, run {run + 1}', e)
                try:
                    self.pause()
                    new = str(uuid.uuid4())
                    mark = serial.mark()
                    t = time.monotonic()
                    self.virsh('qemu-monitor-command', name, '--hmp', 'loadvm snap1')
                    self.virsh('qemu-monitor-command', name, json.dumps(
                        {'execute': 'set-vm-generation-id', 'arguments': {'guid': new}}))
                    self.record('revert/ours/libvirt-domain', seen(serial, mark, new) - t)
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
            serial.close()                        # and the listener

    def run(self):
        self.work.mkdir(parents=True, exist_ok=True)
        started = time.time()
        load0 = os.getloadavg()
        phases = [self.phase_cycles, self.phase_ours, self.phase_linux7]
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
    guest = GUEST / 'vmlinuz.version'
    guest7 = GUEST / 'vmlinuz-7.version'
    commit = subprocess.run(['git', '-C', str(ROOT), 'describe', '--always', '--dirty'],
                            capture_output=True, text=True).stdout.strip()
    return {
        'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
        'nproc': os.cpu_count(), 'cpu': cpu,
        'host_kernel': platform.release(), 'accel': ACCEL,
        'guest_kernel': guest.read_text().strip() if guest.exists() else '?',
        'guest_kernel7': guest7.read_text().strip() if guest7.exists() else '?',
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
