#!/usr/bin/env python3
#
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The VM Generation ID device as a Linux guest on the Arm virt machine
# sees it, through the devicetree and through ACPI.
#
# The guest is a Linux kernel (with its vmgenid driver) and an initramfs
# whose /init mounts sysfs and tracefs, puts a kprobe on
# add_vmfork_randomness, prints GUEST-READY and then runs a root shell on
# the serial console.  The initramfs holds a tool, vmgenid-guest, that
# prints the GUID the way the firmware tables describe it: the VMGENID
# SSDT's VGIA with ACPI, else the reg of the devicetree node compatible
# with "microsoft,vmgenid"; it reads the page through /dev/mem.  Both
# come from outside, as local files: two kernels, Linux 6.1 (whose driver
# knows only ACPI) and 6.12 (whose driver knows the devicetree binding
# too), named by QEMU_TEST_VMGENID_ARM64_KERNEL_61 and
# QEMU_TEST_VMGENID_ARM64_KERNEL_612, and the initramfs by
# QEMU_TEST_VMGENID_ARM64_INITRD.
#
# Booted directly (-kernel, no firmware) the guest finds the device in
# the devicetree, on the platform bus, and a change reaches it as the
# device's own interrupt.  Booted through UEFI firmware (AAVMF, which
# loads the -kernel from fw_cfg) it finds the device through ACPI, and a
# change reaches it through the Generic Event Device's interrupt.  Both
# are counted in /proc/interrupts; the driver then calls
# add_vmfork_randomness (a hit of the kprobe), and QEMU emits
# VM_GENERATION_ID_CHANGED.  The tests check that all three happen
# exactly when the guest resumes with a GUID it did not run with, and
# that the guest then reads what QMP reports.

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid

from qemu_test import LinuxKernelTest, get_qemu_img, skipIfMissingEnv
from qemu_test import exec_command_and_wait_for_pattern
from qemu_test import wait_for_console_pattern


KERNEL_61_ENV = 'QEMU_TEST_VMGENID_ARM64_KERNEL_61'
KERNEL_612_ENV = 'QEMU_TEST_VMGENID_ARM64_KERNEL_612'
INITRD_ENV = 'QEMU_TEST_VMGENID_ARM64_INITRD'
# TCG unless QEMU_TEST_VMGENID_ACCEL names another accelerator (kvm).
ACCEL = os.environ.get('QEMU_TEST_VMGENID_ACCEL', 'tcg')
CPU = 'cortex-a57' if ACCEL == 'tcg' else 'host'

AAVMF_CODE = os.environ.get('QEMU_TEST_VMGENID_AAVMF_CODE',
                            '/usr/share/AAVMF/AAVMF_CODE.fd')
AAVMF_VARS = os.environ.get('QEMU_TEST_VMGENID_AAVMF_VARS',
                            '/usr/share/AAVMF/AAVMF_VARS.fd')

EVENT = 'VM_GENERATION_ID_CHANGED'
NULL_GUID = str(uuid.UUID(int=0))
TRACE = '/sys/kernel/tracing/trace'
DT = '/proc/device-tree'
COMPATIBLE = 'microsoft,vmgenid'
PANIC = 'Kernel panic - not syncing'

# The interrupt that tells the guest of a change, as /proc/interrupts
# names it: the device's own (devicetree), or the GED's (ACPI).
DT_IRQ = 'vmgenid'
ACPI_IRQ = 'ACPI:Ged'

# Seconds: a console wait, a migration, the guest's reaction to a
# change, and how long we watch for a reaction that must not come.
CONSOLE_TIMEOUT = 180
MIGRATION_TIMEOUT = 120
REACT = 20.0
SETTLE = 2.0


def norm(guid):
    """The canonical text of a GUID."""
    return str(uuid.UUID(guid))


def new_guid():
    return str(uuid.uuid4())


class Notices:
    """The guest's record of changes: the interrupt that signals them, and
    add_vmfork_randomness."""

    def __init__(self, irq, vmfork):
        self.irq = irq
        self.vmfork = vmfork

    def __str__(self):
        return f'interrupt {self.irq}, add_vmfork_randomness {self.vmfork}'


class Guest:
    """How one guest finds the device: the interrupt's name, where the
    driver shows up, and whether the GUID is found through ACPI."""

    def __init__(self, irq, driver, acpi):
        self.irq = irq
        self.driver = driver
        self.acpi = acpi


# Linux 6.1's driver is an ACPI driver; 6.12's a platform driver, which
# binds to the ACPI device (QEMUVGID:00) or to the devicetree node.
ACPI_61 = Guest(ACPI_IRQ, '/sys/bus/acpi/drivers/vmgenid', True)
ACPI_612 = Guest(ACPI_IRQ, '/sys/bus/platform/drivers/vmgenid', True)
DT_612 = Guest(DT_IRQ, '/sys/bus/platform/drivers/vmgenid', False)


@skipIfMissingEnv(KERNEL_61_ENV, KERNEL_612_ENV, INITRD_ENV)
class VmGenIdTest(LinuxKernelTest):
    """
    Boots Linux guests with -device vmgenid on the virt machine, through
    the devicetree and through ACPI (AAVMF), and checks what they read
    and when they are told, across set-vm-generation-id, restores and
    loadvm.
    """

    # GUIDs drawn by every guid=auto boot so far, to see they all differ.
    auto_guids = {}

    def setUp(self):
        super().setUp()
        self.require_accelerator(ACCEL)
        self.require_device('vmgenid')
        self.set_machine('virt')
        self.cpu = CPU
        self.kernels = {'6.1': os.environ[KERNEL_61_ENV],
                        '6.12': os.environ[KERNEL_612_ENV]}
        self.initrd = os.environ[INITRD_ENV]
        for path in (*self.kernels.values(), self.initrd):
            self.assertTrue(os.path.isfile(path), f'{path} does not exist')
        self.names = {}
        self.guests = {}
        self.kernel_of = {}
        self.seq = 0

    # ---------------------------------------------------------------- VMs

    def make_vm(self, name, guid, kernel, guest, extra=(), incoming=False):
        """A guest VM, not launched: with guest.acpi through AAVMF (with a
        varstore of its own), else booted directly."""
        vm = self.get_vm(name=name)
        self.names[vm] = name
        self.guests[vm] = guest
        self.kernel_of[vm] = kernel
        vm.set_console()
        # The devicetree driver claims the page, which a strict /dev/mem
        # then refuses to map.
        append = '' if guest.acpi else ' iomem=relaxed'
        vm.add_args('-accel', ACCEL, '-m', '512M', '-smp', '1',
                    '-nodefaults',
                    '-kernel', self.kernels[kernel], '-initrd', self.initrd,
                    '-append', self.KERNEL_COMMON_COMMAND_LINE +
                    'console=ttyAMA0 quiet' + append,
                    '-device', f'vmgenid,id=vmgenid0,guid={guid}',
                    *extra)
        if guest.acpi:
            varstore = self.scratch_file(f'{name}-vars.fd')
            shutil.copyfile(AAVMF_VARS, varstore)
            vm.add_args('-drive', 'if=pflash,format=raw,unit=0,readonly=on,'
                        f'file={AAVMF_CODE}',
                        '-drive', 'if=pflash,format=raw,unit=1,'
                        f'file={varstore}')
        if incoming:
            vm.add_args('-incoming', 'defer')
        return vm

    def launch(self, *vms):
        """Launch the VMs together, then wait until each guest is up."""
        for vm in vms:
            vm.launch()
            vm.console_socket.settimeout(CONSOLE_TIMEOUT)
        for vm in vms:
            self.console_wait(vm, 'GUEST-READY')

    def start_incoming(self, name, guid, like):
        """A VM waiting for an incoming migration (-incoming defer), set up
        as the VM like (the same kernel, the same way to boot)."""
        vm = self.make_vm(name, guid, self.kernel_of[like], self.guests[like],
                          incoming=True)
        vm.launch()
        vm.console_socket.settimeout(CONSOLE_TIMEOUT)
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
                      f'{CONSOLE_TIMEOUT} s (command: {command!r})')
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

    def guest_guid(self, vm):
        """What vmgenid-guest reads in the guest."""
        return norm(self.guest_ok(vm, 'vmgenid-guest').strip())

    def notices(self, vm):
        irq = self.guests[vm].irq
        out = self.guest_ok(vm, 'echo "irq=$(awk \'$NF == "' + irq +
                            '" { print $2 }\' /proc/interrupts) '
                            f'vmfork=$(grep -c vmfork: {TRACE})"')
        found = re.search(r'irq=(\d+) vmfork=(\d+)', out)
        self.assertIsNotNone(found, f'{self.names[vm]}: cannot read the '
                             f'count of interrupt {irq} and of the '
                             f'add_vmfork_randomness kprobe: {out}')
        return Notices(int(found.group(1)), int(found.group(2)))

    def dt_bytes(self, vm, path):
        """A devicetree property of the guest, or None if it has none."""
        status, out = self.guest_run(vm, f'od -An -tx1 -v {path}')
        return bytes.fromhex(''.join(out.split())) if status == 0 else None

    def dt_cells(self, vm, node, name, default):
        prop = self.dt_bytes(vm, f'{node}/{name}')
        return int.from_bytes(prop, 'big') if prop else default

    def dt_address(self, vm):
        """The physical address of the GUID as the guest's devicetree has
        it: the node's reg, through the ranges of the buses above it."""
        node = self.guest_ok(vm, f'grep -l {COMPATIBLE} '
                             f'$(find {DT}/ -name compatible) '
                             '< /dev/null').split()
        self.assertEqual(len(node), 1, f'{self.names[vm]}: not one '
                         f'{COMPATIBLE} node in the devicetree: {node}')
        node = os.path.dirname(node[0])
        bus = os.path.dirname(node)
        na = self.dt_cells(vm, bus, '#address-cells', 2)
        addr = int.from_bytes(self.dt_bytes(vm, f'{node}/reg')[:4 * na], 'big')
        while bus != DT:
            up = os.path.dirname(bus)
            ns = self.dt_cells(vm, bus, '#size-cells', 1)
            pna = self.dt_cells(vm, up, '#address-cells', 2)
            ranges = self.dt_bytes(vm, f'{bus}/ranges')
            self.assertIsNotNone(ranges, f'{bus} has no ranges')
            size = 4 * (na + pna + ns)
            for i in range(0, len(ranges), size):
                cells = [int.from_bytes(ranges[j:j + 4], 'big')
                         for j in range(i, i + size, 4)]
                child = int(''.join(f'{c:08x}' for c in cells[:na]), 16)
                parent = int(''.join(f'{c:08x}' for c in
                                     cells[na:na + pna]), 16)
                length = int(''.join(f'{c:08x}' for c in
                                     cells[na + pna:]), 16)
                if child <= addr < child + length:
                    addr += parent - child
                    break
            else:
                self.assertEqual(ranges, b'', f'{addr:#x} is in none of '
                                 f'the ranges of {bus}')
            bus, na = up, pna
        return addr

    def acpi_address(self, vm):
        """VGIA + 40, VGIA taken from the VMGENID SSDT as the guest has
        it (a DWORD or a QWORD)."""
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

    def guid_address(self, vm):
        """The guest-physical address of the GUID, as the guest finds it."""
        if self.guests[vm].acpi:
            return self.acpi_address(vm)
        return self.dt_address(vm)

    def assert_driver_bound(self, vm):
        """The kernel's vmgenid driver is bound to the ACPI device or to
        the devicetree node (a platform device named after its address)."""
        guest = self.guests[vm]
        want = ('QEMUVGID:00' if guest.acpi else
                f'{self.dt_address(vm):x}.vmgenid')
        status, out = self.guest_run(vm, f'ls {guest.driver}')
        self.assertIn(want, out.split(),
                      f'{self.names[vm]}: the kernel\'s vmgenid driver is '
                      f'not bound to {want}: ls {guest.driver} exited with '
                      f'{status}: {out}')

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

    def restore(self, path, *vms, addr=None):
        """Load the state in path into each of the -incoming defer vms.
        The state was saved paused, so they stay paused until cont.  With
        addr: check first that the GUID each QEMU reports is already in
        guest memory at addr, and that no VM_GENERATION_ID_CHANGED came."""
        for vm in vms:
            vm.cmd('migrate-incoming', uri=f'file:{path}')
        self.wait_migration(*vms)
        for vm in vms:
            name = self.names[vm]
            self.assertEqual(self.status(vm), 'paused',
                             f'{name} after the restore')
            if addr is not None:
                memory, qmp = self.memory_guid(vm, addr), self.qmp_guid(vm)
                self.assertEqual(memory, qmp, f'{name} after the restore, '
                                 f'before cont: guest memory at {addr:#x} '
                                 f'{memory}, QMP {qmp}')
                self.assertEqual(self.events(vm), [], f'{name}: {EVENT} '
                                 f'before cont')
            vm.cmd('cont')

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
        """The guest was told once: its interrupt came, add_vmfork_randomness
        ran, QEMU emitted VM_GENERATION_ID_CHANGED with guid and reason."""
        event = self.wait_qmp_event(vm, EVENT, REACT)
        deadline = time.monotonic() + REACT
        while True:
            after = self.notices(vm)
            if ((after.irq > before.irq and after.vmfork > before.vmfork)
                    or time.monotonic() > deadline):
                break
            time.sleep(0.3)
        self.assertGreater(after.irq, before.irq,
                           f'{what}: no interrupt {self.guests[vm].irq} '
                           f'({before} -> {after})')
        self.assertGreater(after.vmfork, before.vmfork,
                           f'{what}: add_vmfork_randomness did not run '
                           f'({before} -> {after})')
        self.assertIsNotNone(event, f'{what}: no {EVENT} within {REACT} s')
        self.assertEqual(event['data'], {'guid': guid, 'reason': reason},
                         f'{what}: {EVENT}')
        more = self.events(vm)
        self.assertEqual(more, [], f'{what}: more than one {EVENT}')

    def assert_quiet(self, vm, before, what):
        """For SETTLE seconds the guest hears nothing and QEMU emits no
        VM_GENERATION_ID_CHANGED."""
        time.sleep(SETTLE)
        after = self.notices(vm)
        self.assertEqual((after.irq, after.vmfork),
                         (before.irq, before.vmfork),
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

    def check_set(self, vm, what):
        """set-vm-generation-id on a running guest: notified at once, and
        vmgenid-guest --watch shows it; to the value it has: nothing."""
        self.guest_ok(vm, 'vmgenid-guest --watch > /tmp/watch.log '
                      '2> /tmp/watch.err & echo $! > /tmp/watch.pid')
        self.guest_ok(vm, 'for i in $(seq 50); do '
                      '[ -s /tmp/watch.log ] && break; sleep 0.2; done')
        err = self.guest_ok(vm, 'cat /tmp/watch.err')
        self.assertIn('waiting for add_vmfork_randomness (kprobe', err,
                      f'{what}: vmgenid-guest --watch does not wait on the '
                      f'kprobe')
        before = self.notices(vm)
        guid = new_guid()
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assertEqual(self.qmp_guid(vm), guid,
                         f'{what}: QMP right after set-vm-generation-id')
        self.assert_notified(vm, before, guid, 'set',
                             f'{what}: set-vm-generation-id while running')
        self.assert_guid(vm, guid, f'{what}: set-vm-generation-id while '
                         'running')
        for _ in range(30):
            watched = self.guest_ok(vm, 'cat /tmp/watch.log').splitlines()
            if any(line.split()[-1:] == [guid] for line in watched):
                break
            time.sleep(0.3)
        else:
            self.fail(f'{what}: vmgenid-guest --watch did not print {guid}: '
                      f'{watched}')
        self.guest_ok(vm, 'kill $(cat /tmp/watch.pid)')

        before = self.notices(vm)
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assert_guid(vm, guid, f'{what}: set-vm-generation-id to the '
                         'same GUID')
        self.assert_quiet(vm, before, f'{what}: set-vm-generation-id to the '
                          'same GUID')
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

    def check_restores(self, vm, auto, saved):
        """
        vm (a fixed GUID): restored into a QEMU with another GUID the
        guest reads it and is notified; restored again into one with that
        same GUID it is not.  auto (guid=auto, running with saved): one
        saved state restored into two guid=auto QEMUs gives each its own
        new GUID, and notifies each.
        """
        fixed2 = new_guid()
        addr = self.guid_address(vm)
        before = self.notices(vm)
        state = self.scratch_file('fixed.state')
        self.save(vm, state)
        vm.shutdown()
        new = self.start_incoming('new', fixed2, vm)
        self.restore(state, new, addr=addr)
        self.assert_guid(new, fixed2, 'restore into another guid=UUID')
        self.assert_notified(new, before, fixed2, 'migration',
                             'restore into another guid=UUID')

        before = self.notices(new)
        self.save(new, state)
        new.shutdown()
        same = self.start_incoming('same', fixed2, new)
        self.restore(state, same, addr=addr)
        self.assert_guid(same, fixed2, 'restore into the same guid=UUID')
        self.assert_quiet(same, before, 'restore into the same guid=UUID')
        same.shutdown()

        addr = self.guid_address(auto)
        before = self.notices(auto)
        state = self.scratch_file('auto.state')
        self.save(auto, state)
        auto.shutdown()
        first = self.start_incoming('auto1', 'auto', auto)
        second = self.start_incoming('auto2', 'auto', auto)
        self.restore(state, first, second, addr=addr)
        guid1 = self.assert_new_guid(first, [saved],
                                     'first guid=auto restore')
        guid2 = self.assert_new_guid(second, [saved, guid1],
                                     'second guid=auto restore')
        self.assert_notified(first, before, guid1, 'migration',
                             'first guid=auto restore')
        self.assert_notified(second, before, guid2, 'migration',
                             'second guid=auto restore')

    # ---------------------------------------------------------- the tests

    def test_devicetree(self):
        """
        Linux 6.12 booted directly: it finds the device in the devicetree.
        One guest with a fixed GUID, one with guid=auto, booted together:
        the driver binds and the guest reads what QMP reports; then
        set-vm-generation-id, loadvm and restores (check_set,
        check_loadvm, check_restores).
        """
        fixed = new_guid()
        for name, guid in (('default', fixed), ('auto', 'auto')):
            self.make_vm(name, guid, '6.12', DT_612,
                         extra=self.snapshot_drive(name))
        vm, auto = self.vm, self.get_vm(name='auto')
        self.launch(vm, auto)

        self.assert_driver_bound(vm)
        self.assert_driver_bound(auto)
        self.assert_guid(vm, fixed, 'devicetree, boot with guid=UUID')
        self.assert_auto_boot(auto, 'devicetree, boot with guid=auto')
        fixed = self.check_set(vm, 'devicetree')
        saved = self.check_loadvm(vm, auto, fixed)
        self.check_restores(vm, auto, saved)

    def test_acpi(self):
        """
        Linux 6.1 and 6.12 booted through AAVMF: they find the device
        through ACPI, and are told of changes through the GED.  6.1 with
        a fixed GUID, 6.12 with guid=auto, booted together: the driver
        binds and the guest reads what QMP reports; set-vm-generation-id
        notifies each, to the same value it does not (check_set); then
        the restores of check_restores.
        """
        if not all(os.path.exists(f) for f in (AAVMF_CODE, AAVMF_VARS)):
            self.skipTest(f'AAVMF not found: {AAVMF_CODE}, {AAVMF_VARS}')
        fixed = new_guid()
        self.make_vm('default', fixed, '6.1', ACPI_61)
        self.make_vm('auto', 'auto', '6.12', ACPI_612)
        vm, auto = self.vm, self.get_vm(name='auto')
        self.launch(vm, auto)

        self.assert_driver_bound(vm)
        self.assert_driver_bound(auto)
        self.assert_guid(vm, fixed, 'ACPI, Linux 6.1, boot with guid=UUID')
        self.assert_auto_boot(auto, 'ACPI, Linux 6.12, boot with guid=auto')
        self.check_set(vm, 'ACPI, Linux 6.1')
        saved = self.check_set(auto, 'ACPI, Linux 6.12')
        self.check_restores(vm, auto, saved)


if __name__ == '__main__':
    LinuxKernelTest.main()
