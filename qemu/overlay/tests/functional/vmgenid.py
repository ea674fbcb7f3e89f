# SPDX-License-Identifier: GPL-2.0-or-later
#
# The part of the VM Generation ID functional tests that does not depend
# on the target: building and driving a Linux guest with the vmgenid
# driver through its serial console, and the QMP side of the device.
#
# The guest is one of Debian's Linux kernels and an initramfs that the
# test builds from Debian's busybox-static and the scripts in
# vmgenid-guest/: its /init mounts sysfs and tracefs, puts a kprobe on
# add_vmfork_randomness, prints GUEST-READY and then runs a root shell
# on the serial console; its vmgenid script prints the GUID at an address
# through /dev/mem, and with --watch again on each change.  The test
# finds that address where the guest's firmware tables say.  Each
# target's test names its Debian packages (Assets), says how its guests
# boot, how they find the GUID and which interrupt tells them of a
# change; this class does the rest.

import fnmatch
import json
import lzma
import os
import re
import shlex
import stat
import subprocess
import time
import uuid

from qemu_test import LinuxKernelTest, get_qemu_img
from qemu_test import exec_command_and_wait_for_pattern
from qemu_test import wait_for_console_pattern


# TCG unless QEMU_TEST_VMGENID_ACCEL names another accelerator (kvm).
ACCEL = os.environ.get('QEMU_TEST_VMGENID_ACCEL', 'tcg')

EVENT = 'VM_GENERATION_ID_CHANGED'
NULL_GUID = str(uuid.UUID(int=0))
TRACE = '/sys/kernel/tracing/trace'
PANIC = 'Kernel panic - not syncing'

# Linux 7's ptp_vmclock: its driver, and the page it serves to any
# process, laid out as struct vmclock_abi (linux/vmclock-abi.h) says.
VMCLOCK_DRIVER = '/sys/bus/platform/drivers/vmclock'
VMCLOCK_DEV = '/dev/vmclock0'
VMCLOCK_MAGIC = 0x4b4c4356
VMCLOCK_SIZE = 112
VMCLOCK_GEN_FLAGS = (1 << 8) | (1 << 9)   # counter, notification present

# UEFI firmware: QEMU's own edk2 builds in pc-bios (code, and varstore
# template), else what the firmware descriptors (docs/interop/firmware.json)
# in these directories name.
EDK2 = {'x86_64': ('edk2-x86_64-code.fd', 'edk2-i386-vars.fd'),
        'aarch64': ('edk2-aarch64-code.fd', 'edk2-arm-vars.fd')}
FIRMWARE_DIRS = (os.path.join(os.environ.get('XDG_CONFIG_HOME',
                                             os.path.expanduser('~/.config')),
                              'qemu', 'firmware'),
                 '/etc/qemu/firmware', '/usr/share/qemu/firmware')
# Descriptors with these features do not suit a test's plain boot.
FIRMWARE_UNWANTED = {'secure-boot', 'enrolled-keys', 'requires-smm'}

# What vmgenid --watch writes.
WATCH = '/tmp/watch'

# Seconds: a migration, the guest's reaction to a change, and how long
# we watch for a reaction that must not come.
MIGRATION_TIMEOUT = 120
REACT = 20.0
SETTLE = 2.0


def norm(guid):
    """The canonical text of a GUID."""
    return str(uuid.UUID(guid))


def new_guid():
    return str(uuid.uuid4())


def cpio_entry(ino, name, mode, data=b'', rdev=0):
    """One member of a cpio archive in the "newc" format, which is what
    the kernel unpacks as an initramfs: a header of 13 eight-digit hex
    fields, the name and the data, each padded to four bytes."""
    fields = (ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0,
              len(data), 0, 0, os.major(rdev), os.minor(rdev),
              len(name) + 1, 0)
    head = b'070701' + b''.join(b'%08x' % f for f in fields)
    head += name.encode() + b'\0'
    head += b'\0' * (-len(head) % 4)
    return head + data + b'\0' * (-len(data) % 4)


def write_cpio(path, members):
    """Write the archive of members, (name, mode, data, rdev) each, to
    path.  No file is taken from the host as it is, so that owners,
    times and device nodes are the same wherever the test runs."""
    with open(path, 'wb') as out:
        for ino, member in enumerate(members, 1):
            out.write(cpio_entry(ino, *member))
        out.write(cpio_entry(0, 'TRAILER!!!', 0))


def interrupt_count(name):
    """A shell command printing how often the interrupt that
    /proc/interrupts calls name has fired."""
    return 'awk \'$NF == "' + name + '" { print $2 }\' /proc/interrupts'


class Notices:
    """The guest's record of changes: the count of the signal that tells
    it of one, and of add_vmfork_randomness; with vmclock, its
    vm_generation_counter; with vmgenid --watch running, the lines it
    printed."""

    def __init__(self, signal, count, vmfork, counter=None, watched=None):
        self.signal = signal
        self.count = count
        self.vmfork = vmfork
        self.counter = counter
        self.watched = watched

    def __str__(self):
        text = (f'{self.signal} {self.count}, '
                f'add_vmfork_randomness {self.vmfork}')
        if self.counter is not None:
            text += f', vm_generation_counter {self.counter:#x}'
        return text


class VmGenIdBase(LinuxKernelTest):
    """
    What every target's vmgenid test does.  A subclass declares its
    Debian packages as Assets, builds its guests from them (deb_file,
    build_initrd), provides signal(vm), driver(vm) and guid_address(vm),
    and sets console_timeout.
    """

    console_timeout = 120

    # GUIDs drawn by every guid=auto boot so far, to see they all differ.
    auto_guids = {}

    def setUp(self):
        super().setUp()
        self.require_accelerator(ACCEL)
        self.require_device('vmgenid')
        self.names = {}
        self.seq = 0
        # The VMs whose guest has vmclock with the generation counter,
        # and those whose guest runs vmgenid --watch.
        self.clocks = set()
        self.watching = set()
        # Where each VM's guest found the GUID, once asked.
        self.addresses = {}

    # ------------------------------------------------------ the guest's files

    def deb_file(self, asset, member):
        """The file member (a path without the leading /) of the Debian
        package asset, extracted into the scratch directory."""
        return self.archive_extract(asset, format='deb', member=member)

    def build_initrd(self, busybox, modules=(), name='initramfs.cpio'):
        """An initramfs of the busybox in the Debian package busybox
        (an Asset of busybox-static), the scripts in vmgenid-guest/ and
        the kernel modules in modules (paths of .ko or .ko.xz files),
        which /init loads; its path."""
        path = self.scratch_file(name)
        with open(self.deb_file(busybox, 'bin/busybox'), 'rb') as f:
            binary = f.read()
        scripts = {}
        for name in ('init', 'vmgenid'):
            with open(self.data_file('vmgenid-guest', name), 'rb') as f:
                scripts[name] = f.read()
        directory, program = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755
        # Uncompressed: busybox's insmod need not know xz.
        kos = []
        for module in modules:
            with open(module, 'rb') as f:
                data = f.read()
            if module.endswith('.xz'):
                data = lzma.decompress(data)
            base = os.path.basename(module).removesuffix('.xz')
            kos.append((f'lib/modules/{base}', stat.S_IFREG | 0o644, data, 0))
        # The kernel opens /dev/console for /init before anything mounts
        # devtmpfs; /init makes the commands of the other applets.
        write_cpio(path, [
            ('bin', directory, b'', 0),
            ('bin/busybox', program, binary, 0),
            ('bin/sh', stat.S_IFLNK | 0o777, b'busybox', 0),
            ('bin/vmgenid', program, scripts['vmgenid'], 0),
            ('dev', directory, b'', 0),
            ('dev/console', stat.S_IFCHR | 0o600, b'', os.makedev(5, 1)),
            ('init', program, scripts['init'], 0),
            ('lib', directory, b'', 0),
            ('lib/modules', directory, b'', 0),
            *kos,
        ])
        return path

    # ---------------------------------------------------------------- VMs

    def uefi(self, machine_type):
        """UEFI firmware in flash for this target and the versioned
        machine_type: (code, varstore template).  QEMU's own edk2 build
        where its pc-bios has one, else the first that the firmware
        descriptors name; without either the test is skipped."""
        own = tuple(self.build_file('pc-bios', f)
                    for f in EDK2.get(self.arch, ()))
        if own and all(os.path.exists(f) for f in own):
            return own
        for directory in FIRMWARE_DIRS:
            if not os.path.isdir(directory):
                continue
            for name in sorted(os.listdir(directory)):
                found = self.uefi_descriptor(os.path.join(directory, name),
                                             machine_type)
                if found:
                    return found
        return self.skipTest(f'no UEFI firmware for {self.arch}'
                             f' {machine_type}: neither QEMU\'s pc-bios nor'
                             f' a firmware descriptor has one')

    def uefi_descriptor(self, path, machine_type):
        """What the firmware descriptor at path gives for uefi(), or
        None if it does not suit."""
        try:
            with open(path, encoding='utf-8') as f:
                desc = json.load(f)
            mapping = desc['mapping']
            files = (mapping['executable']['filename'],
                     mapping['nvram-template']['filename'])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        fits = any(t.get('architecture') == self.arch and
                   any(fnmatch.fnmatch(machine_type, m)
                       for m in t.get('machines', ()))
                   for t in desc.get('targets', ()))
        if (mapping.get('device') != 'flash' or not fits or
                FIRMWARE_UNWANTED & set(desc.get('features', ())) or
                not all(os.path.exists(f) for f in files)):
            return None
        return files

    def guest_vm(self, name, guid, kernel, initrd, append, memory,
                 pflash=None, extra=(), incoming=False, clock=None):
        """A guest VM, not launched; with pflash (the code and the
        varstore template of UEFI firmware) it boots through them, with
        a varstore of its own.  With clock (the -device argument of a
        vmclock with the generation counter) the guest has vmclock too."""
        vm = self.get_vm(name=name)
        self.names[vm] = name
        vm.set_console()
        vm.add_args('-accel', ACCEL, '-m', memory, '-smp', '1',
                    '-nodefaults',
                    '-kernel', kernel, '-initrd', initrd,
                    '-append', self.KERNEL_COMMON_COMMAND_LINE + append,
                    '-device', f'vmgenid,id=vmgenid0,guid={guid}',
                    *extra)
        if pflash:
            # The varstore in qcow2, so that savevm can snapshot it.
            code, template = pflash
            varstore = self.scratch_file(f'{name}-vars.qcow2')
            subprocess.run([get_qemu_img(self), 'convert', '-q', '-f', 'raw',
                            '-O', 'qcow2', template, varstore], check=True)
            vm.add_args('-drive', 'if=pflash,format=raw,unit=0,readonly=on,'
                        f'file={code}',
                        '-drive', 'if=pflash,format=qcow2,unit=1,'
                        f'file={varstore}')
        if clock:
            vm.add_args('-device', clock)
            self.clocks.add(vm)
        if incoming:
            vm.add_args('-incoming', 'defer')
        return vm

    def launch(self, *vms):
        """Launch the VMs together, then wait until each guest is up."""
        for vm in vms:
            vm.launch()
            vm.console_socket.settimeout(self.console_timeout)
        for vm in vms:
            self.console_wait(vm, 'GUEST-READY')

    def launch_incoming(self, vm):
        """Launch a VM made with incoming=True; it waits for the state."""
        vm.launch()
        vm.console_socket.settimeout(self.console_timeout)
        return vm

    def snapshot_drive(self, name):
        """-drive arguments for a small qcow2 that savevm can write."""
        path = self.scratch_file(f'{name}.qcow2')
        subprocess.run([get_qemu_img(self), 'create', '-q', '-f', 'qcow2',
                        path, '16M'], check=True)
        return ('-drive', f'if=none,id=snap,file={path},format=qcow2')

    # ---------------------------------------------------------- the guest

    def console_wait(self, vm, pattern, command=None):
        name = self.names[vm]
        try:
            if command is None:
                return wait_for_console_pattern(self, pattern, PANIC, vm=vm)
            return exec_command_and_wait_for_pattern(self, command, pattern,
                                                     PANIC, vm=vm)
        except TimeoutError:
            self.fail(f'{name}: no {pattern!r} on the console within '
                      f'{self.console_timeout} s (command: {command!r})')
        return None

    def guest_run(self, vm, command):
        """Run command in the guest's shell; return (status, output).

        The output is framed by two markers that the terminal's echo of
        the command line cannot match (an empty string splits them)."""
        self.seq += 1
        begin, end = f'@@begin-{self.seq}@@', f'@@end-{self.seq}@@'
        line = (f'echo "{begin[:7]}""{begin[7:]}"; '
                f'eval {shlex.quote(command)} 2>&1; '
                f'echo "@@rc=$?{end[:5]}""{end[5:]}"')
        out = self.console_wait(vm, end, line).decode(errors='replace')
        found = re.search(re.escape(begin) + r'\r?\n(.*)@@rc=(\d+)' +
                          re.escape(end), out, re.S)
        self.assertIsNotNone(found, f'{self.names[vm]}: cannot find the '
                             f'output of {command!r} in {out!r}')
        return int(found.group(2)), found.group(1).replace('\r\n', '\n')

    def guest_ok(self, vm, command):
        status, out = self.guest_run(vm, command)
        self.assertEqual(status, 0, f'{self.names[vm]}: {command!r} exited '
                         f'with {status}: {out}')
        return out

    def address(self, vm):
        """guid_address(vm), found once per VM (the firmware places the
        GUID at boot; forget_address after a reset)."""
        if vm not in self.addresses:
            self.addresses[vm] = self.guid_address(vm)
        return self.addresses[vm]

    def forget_address(self, vm):
        """After a reset: the firmware places the GUID anew."""
        self.addresses.pop(vm, None)

    def guest_guid(self, vm):
        """What the guest reads where its firmware tables put the GUID."""
        return norm(self.guest_ok(vm, f'vmgenid {self.address(vm):#x}')
                    .strip())

    def notices(self, vm):
        signal, count = self.signal(vm)
        out = self.guest_ok(vm, f'echo "count=$({count}) '
                            f'vmfork=$(grep -c vmfork: {TRACE}) '
                            f'watched=$(cat {WATCH}.log 2>/dev/null | wc -l)"')
        found = re.search(r'count=\s*(\d+).*vmfork=(\d+) watched=\s*(\d+)',
                          out)
        self.assertIsNotNone(found, f'{self.names[vm]}: cannot read the '
                             f'count of {signal} and of the '
                             f'add_vmfork_randomness kprobe: {out}')
        counter = self.mapped_counter(vm) if vm in self.clocks else None
        return Notices(signal, int(found.group(1)), int(found.group(2)),
                       counter, int(found.group(3)))

    def mapped_counter(self, vm):
        """vm_generation_counter as a guest process that maps
        /dev/vmclock0 with mmap reads it (vmgenid --counter)."""
        out = self.guest_ok(vm, 'vmgenid --counter').strip()
        self.assertRegex(out, r'^0x[0-9a-f]{16}$', f'{self.names[vm]}: '
                         f'vmgenid --counter printed {out!r}')
        return int(out, 16)

    def clock_page(self, vm):
        """The vmclock page as a guest process reads it from
        /dev/vmclock0 with read() (ptp_vmclock copies it out by its
        seq_count protocol)."""
        out = self.guest_ok(vm, f'od -An -tx1 -v -N {VMCLOCK_SIZE} '
                            f'{VMCLOCK_DEV}')
        page = bytes.fromhex(''.join(out.split()))
        self.assertEqual(len(page), VMCLOCK_SIZE,
                         f'{self.names[vm]}: {VMCLOCK_DEV} gave {out!r}')
        return page

    def assert_vmclock(self, vm, what):
        """The guest's ptp_vmclock is bound and serves /dev/vmclock0, a
        vmclock page that has the generation counter and notifications."""
        status, out = self.guest_run(vm, f'ls {VMCLOCK_DRIVER}; '
                                     f'test -c {VMCLOCK_DEV}')
        self.assertEqual(status, 0, f'{what}: no ptp_vmclock driver or no '
                         f'{VMCLOCK_DEV}: {out}')
        page = self.clock_page(vm)
        magic = int.from_bytes(page[0:4], 'little')
        flags = int.from_bytes(page[24:32], 'little')
        self.assertEqual(magic, VMCLOCK_MAGIC, f'{what}: vmclock magic')
        self.assertEqual(flags & VMCLOCK_GEN_FLAGS, VMCLOCK_GEN_FLAGS,
                         f'{what}: vmclock flags {flags:#x} lack the '
                         'generation counter or the notification')
        # Both ways into the page show the same generation.
        counter = int.from_bytes(page[104:112], 'little')
        self.assertEqual(self.mapped_counter(vm), counter,
                         f'{what}: vm_generation_counter through mmap '
                         'differs from read()')

    def start_watch(self, vm, what):
        """vmgenid --watch in the background of the guest, printing to
        /tmp/watch.log; it waits in poll() on /dev/vmclock0 where the
        guest has vmclock, else on the kprobe."""
        self.guest_ok(vm, f'vmgenid --watch {self.address(vm):#x} '
                      f'> {WATCH}.log 2> {WATCH}.err & '
                      f'echo $! > {WATCH}.pid')
        self.guest_ok(vm, 'for i in $(seq 50); do '
                      f'[ -s {WATCH}.log ] && break; sleep 0.2; done')
        err = self.guest_ok(vm, f'cat {WATCH}.err')
        way = ('waiting in poll() on /dev/vmclock0' if vm in self.clocks
               else 'waiting for add_vmfork_randomness (kprobe')
        self.assertIn(way, err, f'{what}: vmgenid --watch does not wait '
                      f'as expected ({way}): {err}')
        self.watching.add(vm)

    def stop_watch(self, vm):
        self.guest_ok(vm, f'kill $(cat {WATCH}.pid); rm {WATCH}.log')
        self.watching.discard(vm)

    def assert_watched(self, vm, before, guid, what):
        """vmgenid --watch woke after before and printed guid last."""
        for _ in range(30):
            lines = self.guest_ok(vm, f'cat {WATCH}.log').split()
            if len(lines) > before.watched and lines[-1] == guid:
                return
            time.sleep(0.3)
        _, err = self.guest_run(vm, f'cat {WATCH}.err; ps')
        self.fail(f'{what}: vmgenid --watch did not wake to print {guid} '
                  f'(it printed {lines[before.watched:]}); its stderr and '
                  f'ps: {err}')

    def assert_driver_bound(self, vm):
        """The kernel's vmgenid driver is bound to the device."""
        driver, device = self.driver(vm)
        status, out = self.guest_run(vm, f'ls {driver}')
        self.assertIn(device, out.split(),
                      f'{self.names[vm]}: the kernel\'s vmgenid driver is '
                      f'not bound to {device}: ls {driver} exited with '
                      f'{status}: {out}')

    def acpi_address(self, vm):
        """The guest-physical address of the GUID: VGIA + 40, VGIA taken
        from the VMGENID SSDT as the guest has it (a DWORD or a QWORD)."""
        out = self.guest_ok(vm, 'for t in /sys/firmware/acpi/tables/SSDT*; '
                            'do echo TABLE; od -An -tx1 -v "$t"; done')
        for dump in out.split('TABLE')[1:]:
            table = bytes.fromhex(''.join(dump.split()))
            if table[:4] == b'SSDT' and table[16:23] == b'VMGENID':
                i = table.find(b'\x08VGIA')
                if i >= 0 and table[i + 5] in (0x0c, 0x0e):
                    width = 4 if table[i + 5] == 0x0c else 8
                    vgia = table[i + 6:i + 6 + width]
                    return int.from_bytes(vgia, 'little') + 40
        self.fail(f'{self.names[vm]}: no VGIA in the guest\'s SSDTs')
        return None

    # ---------------------------------------------------------- the host

    def qmp_guid(self, vm):
        return norm(vm.cmd('query-vm-generation-id')['guid'])

    def hmp(self, vm, line):
        return vm.cmd('human-monitor-command', command_line=line)

    def memory_guid(self, vm, addr):
        """The GUID in guest memory at addr, read through HMP xp."""
        out = self.hmp(vm, f'xp /16xb {addr:#x}')
        octets = []
        for row in out.splitlines():
            octets += re.findall(r'0x([0-9a-f]{2})\b', row.split(':', 1)[-1])
        self.assertEqual(len(octets), 16, f'cannot parse xp output {out!r}')
        return str(uuid.UUID(bytes_le=bytes.fromhex(''.join(octets))))

    def status(self, vm):
        return vm.cmd('query-status')['status']

    def events(self, vm):
        """Every VM_GENERATION_ID_CHANGED received so far; a command first,
        so that all QEMU sent before it is in."""
        vm.cmd('query-status')
        return [e for e in vm.get_qmp_events() if e['event'] == EVENT]

    def wait_qmp_event(self, vm, name, timeout):
        try:
            return vm.event_wait(name, timeout=float(timeout))
        except TimeoutError:
            return None

    def wait_migration(self, *vms):
        for vm in vms:
            deadline = time.monotonic() + MIGRATION_TIMEOUT
            while True:
                info = vm.cmd('query-migrate')
                state = info.get('status')
                if state == 'completed':
                    break
                self.assertNotIn(state, ('failed', 'cancelled'),
                                 f'{self.names[vm]}: migration {state}: '
                                 f'{info.get("error-desc")}')
                self.assertLess(time.monotonic(), deadline,
                                f'{self.names[vm]}: migration still {state}')
                time.sleep(0.1)

    def save(self, vm, path):
        """Stop vm and write its state to path (migrate to file:)."""
        vm.cmd('stop')
        vm.cmd('migrate', uri=f'file:{path}')
        self.wait_migration(vm)

    def restore(self, path, *vms, addr=None, held=None, like=None):
        """Load the state in path into each of the -incoming defer vms.
        The state was saved paused, so they stay paused until cont.  With
        addr: check first that guest memory at addr still holds held, the
        GUID the saved guest was told of (QEMU writes a new one only when
        it tells the guest), and that no VM_GENERATION_ID_CHANGED came.
        like is the saved VM: a vmgenid --watch it ran runs on in them."""
        for vm in vms:
            if like in self.watching:
                self.watching.add(vm)
            vm.cmd('migrate-incoming', uri=f'file:{path}')
        self.wait_migration(*vms)
        for vm in vms:
            name = self.names[vm]
            self.assertEqual(self.status(vm), 'paused',
                             f'{name} after the restore')
            if addr is not None:
                memory = self.memory_guid(vm, addr)
                self.assertEqual(memory, held, f'{name} after the restore, '
                                 f'before cont: guest memory at {addr:#x}')
                self.assertEqual(self.events(vm), [], f'{name}: {EVENT} '
                                 f'before cont')
            vm.cmd('cont')

    def move(self, vm, incoming, held, *targets):
        """Save vm to a file, end it and restore the file into a QEMU
        incoming(name, guid, vm) for each (name, guid) of targets, with
        restore's checks that guest memory still holds held.  Returns
        the guest's notices from before the save and the new VMs, which
        run."""
        addr = self.address(vm)
        before = self.notices(vm)
        state = self.scratch_file(f'{self.names[vm]}.state')
        self.save(vm, state)
        vm.shutdown()
        new = [incoming(name, guid, vm) for name, guid in targets]
        self.restore(state, *new, addr=addr, held=held, like=vm)
        return before, new

    # ---------------------------------------------------------- asserts

    def assert_guid(self, vm, want, what):
        """The guest reads want, and QMP reports it."""
        guest, qmp = self.guest_guid(vm), self.qmp_guid(vm)
        self.assertEqual((guest, qmp), (want, want),
                         f'{what}: guest {guest}, QMP {qmp}, expected {want}')

    def assert_new_guid(self, vm, old, what):
        """The guest reads what QMP reports, none of the GUIDs in old and
        not the null GUID; returns it."""
        guest, qmp = self.guest_guid(vm), self.qmp_guid(vm)
        self.assertEqual(guest, qmp, f'{what}: guest {guest}, QMP {qmp}')
        self.assertNotIn(qmp, [NULL_GUID, *old],
                         f'{what}: guest and QMP {qmp}, expected a new GUID, '
                         f'not null nor one of {", ".join(old)}')
        return qmp

    def assert_notified(self, vm, before, guid, reason, what):
        """The guest was told once: its signal rose, add_vmfork_randomness
        ran, QEMU emitted VM_GENERATION_ID_CHANGED with guid and reason."""
        event = self.wait_qmp_event(vm, EVENT, REACT)
        deadline = time.monotonic() + REACT
        while True:
            after = self.notices(vm)
            if ((after.count > before.count and after.vmfork > before.vmfork)
                    or time.monotonic() > deadline):
                break
            time.sleep(0.3)
        self.assertGreater(after.count, before.count,
                           f'{what}: {after.signal} did not rise '
                           f'({before} -> {after})')
        self.assertGreater(after.vmfork, before.vmfork,
                           f'{what}: add_vmfork_randomness did not run '
                           f'({before} -> {after})')
        self.assertIsNotNone(event, f'{what}: no {EVENT} within {REACT} s')
        self.assertEqual(event['data'], {'guid': guid, 'reason': reason},
                         f'{what}: {EVENT}')
        more = self.events(vm)
        self.assertEqual(more, [], f'{what}: more than one {EVENT}')
        # vmclock shows the new generation before either notification.
        if after.counter is not None:
            self.assertNotEqual(after.counter, before.counter,
                                f'{what}: vm_generation_counter did not '
                                f'move ({before} -> {after})')
        if vm in self.watching:
            self.assert_watched(vm, before, guid, what)

    def assert_quiet(self, vm, before, what):
        """For SETTLE seconds the guest hears nothing and QEMU emits no
        VM_GENERATION_ID_CHANGED."""
        time.sleep(SETTLE)
        after = self.notices(vm)
        self.assertEqual((after.count, after.vmfork, after.counter),
                         (before.count, before.vmfork, before.counter),
                         f'{what}: the guest was notified ({before} -> '
                         f'{after})')
        self.assertEqual(self.events(vm), [], f'{what}: unexpected {EVENT}')

    def assert_auto_boot(self, vm, what):
        """A guid=auto boot: the guest reads what QMP reports, a GUID no
        other guid=auto boot of this test run drew."""
        guid = self.assert_new_guid(vm, [], what)
        self.assertNotIn(guid, self.auto_guids.values(),
                         f'{what}: the same GUID as another guid=auto boot '
                         f'({self.auto_guids})')
        self.auto_guids[f'{self.id()} {self.names[vm]}'] = guid
        return guid

    # ---------------------------------------------------------- the checks

    def check_set(self, vm, what, watch=False, again=True):
        """
        set-vm-generation-id on a running guest notifies it at once
        (reason set).  With watch, vmgenid --watch runs meanwhile and
        must show the new GUID.  With again, setting the same value
        once more does nothing.  Returns the GUID set.
        """
        if watch:
            self.start_watch(vm, what)
        before = self.notices(vm)
        self.events(vm)
        guid = new_guid()
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assertEqual(self.qmp_guid(vm), guid,
                         f'{what}: QMP right after set-vm-generation-id')
        self.assert_notified(vm, before, guid, 'set',
                             f'{what}: set-vm-generation-id while running')
        self.assert_guid(vm, guid, f'{what}: set-vm-generation-id while '
                         'running')
        if watch:
            self.stop_watch(vm)
        if again:
            before = self.notices(vm)
            vm.cmd('set-vm-generation-id', guid=guid)
            self.assert_guid(vm, guid, f'{what}: set-vm-generation-id to '
                             'the same GUID')
            self.assert_quiet(vm, before, f'{what}: set-vm-generation-id '
                              'to the same GUID')
        return guid

    def check_loadvm(self, vm, auto, fixed):
        """savevm and loadvm in the same QEMU: the fixed GUID stays and
        that guest hears nothing; guid=auto draws a new GUID and notifies
        that guest (reason snapshot-load).  Returns the new GUID."""
        old = self.qmp_guid(auto)
        for guest in (vm, auto):
            self.assertEqual(self.hmp(guest, 'savevm s1'), '')
        before = self.notices(vm), self.notices(auto)
        for guest in (vm, auto):
            self.events(guest)
            self.assertEqual(self.hmp(guest, 'loadvm s1'), '')
            self.assertEqual(self.status(guest), 'running')
        self.assert_guid(vm, fixed, 'loadvm with guid=UUID')
        self.assert_quiet(vm, before[0], 'loadvm with guid=UUID')
        guid = self.assert_new_guid(auto, [old], 'loadvm with guid=auto')
        self.assert_notified(auto, before[1], guid, 'snapshot-load',
                             'loadvm with guid=auto')
        return guid

    def check_restores(self, vm, auto, saved, incoming):
        """
        vm (a fixed GUID): restored into a QEMU with another GUID the
        guest reads it and is notified; restored again into one with that
        same GUID it is not.  auto (guid=auto, running with saved): one
        saved state restored into two guid=auto QEMUs gives each its own
        new GUID, and notifies each.  incoming(name, guid, like) starts a
        QEMU that waits for the state of the VM like.
        """
        fixed2 = new_guid()
        before, (new,) = self.move(vm, incoming, self.qmp_guid(vm),
                                   ('new', fixed2))
        self.assert_guid(new, fixed2, 'restore into another guid=UUID')
        self.assert_notified(new, before, fixed2, 'migration',
                             'restore into another guid=UUID')

        before, (same,) = self.move(new, incoming, fixed2, ('same', fixed2))
        self.assert_guid(same, fixed2, 'restore into the same guid=UUID')
        self.assert_quiet(same, before, 'restore into the same guid=UUID')
        same.shutdown()

        before, (first, second) = self.move(auto, incoming, saved,
                                            ('auto1', 'auto'),
                                            ('auto2', 'auto'))
        guid1 = self.assert_new_guid(first, [saved],
                                     'first guid=auto restore')
        guid2 = self.assert_new_guid(second, [saved, guid1],
                                     'second guid=auto restore')
        self.assert_notified(first, before, guid1, 'migration',
                             'first guid=auto restore')
        self.assert_notified(second, before, guid2, 'migration',
                             'second guid=auto restore')

    def check_generations(self, vm, what, incoming):
        """
        A guid=auto guest of Linux 7 with vmclock: the vmgenid driver and
        ptp_vmclock are bound and /dev/vmclock0 has the counter.  With
        vmgenid --watch waiting in poll() on /dev/vmclock0 throughout,
        set-vm-generation-id, loadvm and a restore each give the guest a
        new GUID, move vm_generation_counter (as a process that maps
        /dev/vmclock0 reads it), notify it and wake the watch; the same
        GUID set again moves nothing.  incoming(name, guid, like) starts a
        QEMU that waits for the state of the VM like.
        """
        self.assert_driver_bound(vm)
        self.assert_vmclock(vm, what)
        guid = self.assert_auto_boot(vm, f'{what}: boot with guid=auto')
        self.start_watch(vm, what)
        guid = self.check_set(vm, what)

        self.assertEqual(self.hmp(vm, 'savevm s1'), '')
        before = self.notices(vm)
        self.events(vm)
        self.assertEqual(self.hmp(vm, 'loadvm s1'), '')
        loaded = self.assert_new_guid(vm, [guid], f'{what}: loadvm')
        self.assert_notified(vm, before, loaded, 'snapshot-load',
                             f'{what}: loadvm')

        before, (restored,) = self.move(vm, incoming, loaded,
                                        ('restored', 'auto'))
        guid = self.assert_new_guid(restored, [loaded], f'{what}: restore')
        self.assert_notified(restored, before, guid, 'migration',
                             f'{what}: restore')
