#!/usr/bin/env python3
#
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The VM Generation ID device as a Linux guest sees it.
#
# The guest is a Linux kernel (with its vmgenid driver) and an initramfs
# whose /init mounts sysfs and tracefs, puts a kprobe on
# add_vmfork_randomness, prints GUEST-READY and then runs a root shell on
# the serial console.  The initramfs holds a tool, vmgenid-guest, that
# prints the GUID the way the ACPI tables describe it (the VMGENID SSDT,
# VGIA, /dev/mem).  Both come from outside, as local files named by
# QEMU_TEST_VMGENID_KERNEL and QEMU_TEST_VMGENID_INITRD.
#
# A change of generation reaches the guest as GPE 5 on pc and q35
# (counted in /sys/firmware/acpi/interrupts/gpe05) and as the interrupt
# of the Generic Event Device on microvm, whose ACPI is hardware-reduced
# (counted in /proc/interrupts as ACPI:Ged); the driver then calls
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

from qemu.qmp import ExecuteError
from qemu_test import LinuxKernelTest, get_qemu_img, skipIfMissingEnv
from qemu_test import exec_command, exec_command_and_wait_for_pattern
from qemu_test import wait_for_console_pattern


KERNEL_ENV = 'QEMU_TEST_VMGENID_KERNEL'
INITRD_ENV = 'QEMU_TEST_VMGENID_INITRD'
# TCG unless QEMU_TEST_VMGENID_ACCEL names another accelerator (kvm).
ACCEL = os.environ.get('QEMU_TEST_VMGENID_ACCEL', 'tcg')

OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd'

EVENT = 'VM_GENERATION_ID_CHANGED'
NULL_GUID = str(uuid.UUID(int=0))
GPE = '/sys/firmware/acpi/interrupts/gpe05'
GED_IRQ = 'ACPI:Ged'
TRACE = '/sys/kernel/tracing/trace'
DRIVER = '/sys/bus/acpi/drivers/vmgenid'
PANIC = 'Kernel panic - not syncing'

# Seconds: a console wait, a migration, the guest's reaction to a
# change, and how long we watch for a reaction that must not come.
CONSOLE_TIMEOUT = 120
MIGRATION_TIMEOUT = 120
REACT = 20.0
SETTLE = 2.0


def norm(guid):
    """The canonical text of a GUID."""
    return str(uuid.UUID(guid))


def new_guid():
    return str(uuid.uuid4())


class Notices:
    """The guest's record of changes: the count of the signal (GPE 5, or
    the GED's interrupt on microvm) and of add_vmfork_randomness."""

    def __init__(self, signal, count, vmfork):
        self.signal = signal
        self.count = count
        self.vmfork = vmfork

    def __str__(self):
        return (f'{self.signal} {self.count}, '
                f'add_vmfork_randomness {self.vmfork}')


@skipIfMissingEnv(KERNEL_ENV, INITRD_ENV)
class VmGenIdTest(LinuxKernelTest):
    """
    Boots a Linux guest with -device vmgenid on pc and q35, SeaBIOS and
    OVMF, and on microvm, and checks what it reads and when it is told,
    across restores, live migration, loadvm, set-vm-generation-id, S3
    and reset.
    """

    # GUIDs drawn by every guid=auto boot so far, to see they all differ.
    auto_guids = {}

    def setUp(self):
        super().setUp()
        self.require_accelerator(ACCEL)
        self.require_device('vmgenid')
        self.kernel = os.environ[KERNEL_ENV]
        self.initrd = os.environ[INITRD_ENV]
        for path in (self.kernel, self.initrd):
            self.assertTrue(os.path.isfile(path), f'{path} does not exist')
        self.names = {}
        self.seq = 0

    # ---------------------------------------------------------------- VMs

    def make_vm(self, name, guid, firmware='seabios', append='',
                extra=(), incoming=False):
        """A guest VM, not launched.  self.machine is pc, q35 or microvm
        (whose default firmware with ACPI is SeaBIOS too)."""
        vm = self.get_vm(name=name)
        self.names[vm] = name
        vm.set_console()
        vm.add_args('-accel', ACCEL, '-m', '256M', '-smp', '1',
                    '-nodefaults',
                    '-kernel', self.kernel, '-initrd', self.initrd,
                    '-append', self.KERNEL_COMMON_COMMAND_LINE +
                    f'console=ttyS0 quiet {append}'.strip(),
                    '-device', f'vmgenid,id=vmgenid0,guid={guid}',
                    *extra)
        if firmware == 'ovmf':
            varstore = self.scratch_file(f'{name}-vars.fd')
            shutil.copyfile(OVMF_VARS, varstore)
            vm.add_args('-drive', 'if=pflash,format=raw,unit=0,readonly=on,'
                        f'file={OVMF_CODE}',
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

    def start(self, name, guid, **kwargs):
        vm = self.make_vm(name, guid, **kwargs)
        self.launch(vm)
        return vm

    def start_incoming(self, name, guid, *extra, **kwargs):
        """A VM waiting for an incoming migration (-incoming defer)."""
        vm = self.make_vm(name, guid, incoming=True, extra=extra, **kwargs)
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
        if self.machine == 'microvm':
            signal = GED_IRQ
            count = ('awk \'$NF == "' + GED_IRQ + '" { print $2 }\' '
                     '/proc/interrupts')
        else:
            signal, count = 'gpe05', f'cat {GPE}'
        out = self.guest_ok(vm, f'echo "count=$({count}) '
                            f'vmfork=$(grep -c vmfork: {TRACE})"')
        found = re.search(r'count=\s*(\d+).*vmfork=(\d+)', out)
        self.assertIsNotNone(found, f'{self.names[vm]}: cannot read the '
                             f'count of {signal} and of the '
                             f'add_vmfork_randomness kprobe: {out}')
        return Notices(signal, int(found.group(1)), int(found.group(2)))

    def assert_driver_bound(self, vm):
        status, out = self.guest_run(vm, f'ls {DRIVER}')
        self.assertIn('QEMUVGID:00', out.split(),
                      f'{self.names[vm]}: the kernel\'s vmgenid driver is '
                      f'not bound: ls {DRIVER} exited with {status}: {out}')

    def guid_address(self, vm):
        """The guest-physical address of the GUID: VGIA + 40, VGIA taken
        from the VMGENID SSDT as the guest has it."""
        out = self.guest_ok(vm, 'for t in /sys/firmware/acpi/tables/SSDT*; '
                            'do echo TABLE; od -An -tx1 -v "$t"; done')
        for dump in out.split('TABLE')[1:]:
            table = bytes.fromhex(''.join(dump.split()))
            if table[:4] == b'SSDT' and table[16:23] == b'VMGENID':
                i = table.find(b'\x08VGIA\x0c')
                if i >= 0:
                    return int.from_bytes(table[i + 6:i + 10], 'little') + 40
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

    def migrate(self, src, dst, state='running'):
        """Live migration from src to the -incoming defer dst."""
        sock = os.path.join(self.socket_dir().name, f'{self.names[dst]}.sock')
        src.cmd('migrate-set-parameters', max_bandwidth=1 << 30)
        dst.cmd('migrate-incoming', uri=f'unix:{sock}')
        src.cmd('migrate', uri=f'unix:{sock}')
        self.wait_migration(src, dst)
        self.assertEqual(self.status(src), 'postmigrate')
        self.assertEqual(self.status(dst), state,
                         f'{self.names[dst]} after the migration')

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
        """The guest was told once: its signal (gpe05 or the GED's
        interrupt) rose, add_vmfork_randomness ran, QEMU emitted
        VM_GENERATION_ID_CHANGED with guid and reason."""
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

    def assert_quiet(self, vm, before, what):
        """For SETTLE seconds the guest hears nothing and QEMU emits no
        VM_GENERATION_ID_CHANGED."""
        time.sleep(SETTLE)
        after = self.notices(vm)
        self.assertEqual((after.count, after.vmfork),
                         (before.count, before.vmfork),
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

    # ---------------------------------------------------------- the tests

    def check_s3(self, vm):
        """set-vm-generation-id while the guest sleeps in S3: QEMU reports
        the value at once, the guest is told after system_wakeup."""
        before = self.notices(vm)
        self.events(vm)
        # The marker shows that the guest's write to /sys/power/state
        # returned: the guest resumed and its console works again.
        exec_command(self, '(echo mem > /sys/power/state; '
                     'echo "@@res""umed@@") &', vm=vm)
        self.assertIsNotNone(self.wait_qmp_event(vm, 'SUSPEND', 60),
                             'the guest did not suspend to S3')
        self.assertEqual(self.status(vm), 'suspended')
        guid = new_guid()
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assertEqual(self.qmp_guid(vm), guid, 'QMP while in S3')
        self.assertEqual(self.events(vm), [],
                         f'{EVENT} while the guest is in S3')
        vm.cmd('system_wakeup')
        self.assertIsNotNone(self.wait_qmp_event(vm, 'WAKEUP', 60),
                             'no WAKEUP after system_wakeup')
        self.console_wait(vm, '@@resumed@@')
        self.assert_notified(vm, before, guid, 'set',
                             'set-vm-generation-id in S3, then wakeup')
        self.assert_guid(vm, guid, 'set-vm-generation-id in S3, then wakeup')

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

    def check_set(self, vm, again=True):
        """set-vm-generation-id on a running guest notifies it at once
        (reason set); set again to the same value (unless not again),
        nothing happens. Returns the GUID set."""
        before = self.notices(vm)
        self.events(vm)
        guid = new_guid()
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assertEqual(self.qmp_guid(vm), guid,
                         'QMP right after set-vm-generation-id')
        self.assert_notified(vm, before, guid, 'set',
                             'set-vm-generation-id while running')
        self.assert_guid(vm, guid, 'set-vm-generation-id while running')
        if not again:
            return guid
        before = self.notices(vm)
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assert_guid(vm, guid, 'set-vm-generation-id to the same GUID')
        self.assert_quiet(vm, before, 'set-vm-generation-id to the same GUID')
        return guid

    def check_boot_and_restore(self, firmware, append='', s3=None,
                               loadvm=False, set_guid=False):
        """
        One guest with a fixed GUID, one with guid=auto, booted together.
        Both: the driver binds and the guest reads what QMP reports.
        With s3 (the -global that enables S3): check_s3 on the fixed one.
        With loadvm: check_loadvm on them.
        With set_guid: check_set on the fixed one.
        Fixed: restored into a QEMU with another GUID the guest reads it
        and is notified; restored again into one with that same GUID it
        is not.  Auto: one saved state restored into two guid=auto QEMUs
        gives each its own new GUID, and notifies each.
        """
        fixed, fixed2 = new_guid(), new_guid()
        opts = {'firmware': firmware, 'append': append}
        common = ('-global', s3) if s3 else ()
        for name, guid in (('default', fixed), ('auto', 'auto')):
            drive = self.snapshot_drive(name) if loadvm else ()
            self.make_vm(name, guid, extra=common + drive, **opts)
        vm, auto = self.vm, self.get_vm(name='auto')
        self.launch(vm, auto)

        self.assert_driver_bound(vm)
        self.assert_driver_bound(auto)
        self.assert_guid(vm, fixed, 'boot with guid=UUID')
        saved = self.assert_auto_boot(auto, 'boot with guid=auto')
        if s3:
            self.check_s3(vm)
        if loadvm:
            saved = self.check_loadvm(vm, auto, fixed)
        if set_guid:
            self.check_set(vm)

        # Restore into a QEMU started with another GUID.
        addr = self.guid_address(vm)
        before = self.notices(vm)
        state = self.scratch_file('fixed.state')
        self.save(vm, state)
        vm.shutdown()
        new = self.start_incoming('new', fixed2, *common, **opts)
        self.restore(state, new, addr=addr)
        self.assert_guid(new, fixed2, 'restore into another guid=UUID')
        self.assert_notified(new, before, fixed2, 'migration',
                             'restore into another guid=UUID')

        # And that state into a QEMU started with the same GUID.
        before = self.notices(new)
        self.save(new, state)
        new.shutdown()
        same = self.start_incoming('same', fixed2, *common, **opts)
        self.restore(state, same, addr=addr)
        self.assert_guid(same, fixed2, 'restore into the same guid=UUID')
        self.assert_quiet(same, before, 'restore into the same guid=UUID')
        same.shutdown()

        # One saved guid=auto state, two guid=auto restores.
        addr = self.guid_address(auto)
        before = self.notices(auto)
        state = self.scratch_file('auto.state')
        self.save(auto, state)
        auto.shutdown()
        first = self.start_incoming('auto1', 'auto', *common, **opts)
        second = self.start_incoming('auto2', 'auto', *common, **opts)
        self.restore(state, first, second, addr=addr)
        guid1 = self.assert_new_guid(first, [saved],
                                     'first guid=auto restore')
        guid2 = self.assert_new_guid(second, [saved, guid1],
                                     'second guid=auto restore')
        self.assert_notified(first, before, guid1, 'migration',
                             'first guid=auto restore')
        self.assert_notified(second, before, guid2, 'migration',
                             'second guid=auto restore')

    def test_pc_seabios(self):
        self.set_machine('pc')
        self.check_boot_and_restore('seabios', s3='PIIX4_PM.disable_s3=0')

    def test_q35_seabios(self):
        self.set_machine('q35')
        # No S3 here: QEMU resets the ICH9 LPC on wakeup and SeaBIOS does
        # not set its ACPI I/O base again, so no GPE reaches the guest
        # after a resume, whatever device raises it.
        self.check_boot_and_restore('seabios', loadvm=True)

    def test_q35_ovmf(self):
        if not all(os.path.exists(f) for f in (OVMF_CODE, OVMF_VARS)):
            self.skipTest(f'OVMF not found: {OVMF_CODE}, {OVMF_VARS}')
        self.set_machine('q35')
        # OVMF puts the GUID in ACPI NVS, which a strict /dev/mem refuses.
        self.check_boot_and_restore('ovmf', 'iomem=relaxed',
                                    s3='ICH9-LPC.disable_s3=0')

    def test_microvm(self):
        self.set_machine('microvm')
        # Linux calibrates the TSC against the PIT alone on microvm (no
        # HPET, no ACPI PM timer); under TCG on a busy host that fails
        # and the boot then hangs, waiting for a timer tick.  A given
        # frequency only sets the pace of the guest's clock, which no
        # check depends on.
        append = 'tsc_early_khz=2000000' if ACCEL == 'tcg' else ''
        # Hardware-reduced ACPI, built by SeaBIOS's microvm build: the
        # GUID is found as on pc and q35, a change signalled by the GED.
        self.check_boot_and_restore('seabios', append, set_guid=True)

    def test_set_vm_generation_id(self):
        """
        set-vm-generation-id on a running guest (notified at once, and
        vmgenid-guest --watch shows it), on a paused one (in guest memory
        before cont, notified on cont), to the value it has (nothing),
        to "auto" (a new random GUID) and to a malformed GUID (refused).
        stop/cont and system_reset keep the GUID.
        """
        self.set_machine('q35')
        vm = self.start('default', 'auto')
        self.assert_auto_boot(vm, 'boot with guid=auto')

        # Running, watched by vmgenid-guest --watch.
        self.guest_ok(vm, 'vmgenid-guest --watch > /tmp/watch.log & '
                      'echo $! > /tmp/watch.pid')
        self.guest_ok(vm, 'for i in $(seq 50); do '
                      '[ -s /tmp/watch.log ] && break; sleep 0.2; done')
        guid = self.check_set(vm, again=False)
        for _ in range(30):
            watched = self.guest_ok(vm, 'cat /tmp/watch.log').splitlines()
            if any(line.split()[-1:] == [guid] for line in watched):
                break
            time.sleep(0.3)
        else:
            self.fail(f'vmgenid-guest --watch did not print {guid}: '
                      f'{watched}')
        self.guest_ok(vm, 'kill $(cat /tmp/watch.pid)')

        # Paused: guest memory has the value before cont.
        addr = self.guid_address(vm)
        before = self.notices(vm)
        guid = new_guid()
        vm.cmd('stop')
        vm.cmd('set-vm-generation-id', guid=guid)
        memory = self.memory_guid(vm, addr)
        self.assertEqual((memory, self.qmp_guid(vm), self.status(vm)),
                         (guid, guid, 'paused'),
                         f'set-vm-generation-id while paused: guest memory '
                         f'at {addr:#x}, QMP and state before cont')
        self.assertEqual(self.events(vm), [],
                         f'{EVENT} while the guest is paused')
        vm.cmd('cont')
        self.assert_notified(vm, before, guid, 'set',
                             'cont after set-vm-generation-id while paused')
        self.assert_guid(vm, guid, 'cont after set-vm-generation-id')

        # The value it has already.
        before = self.notices(vm)
        vm.cmd('set-vm-generation-id', guid=guid)
        self.assert_guid(vm, guid, 'set-vm-generation-id to the same GUID')
        self.assert_quiet(vm, before, 'set-vm-generation-id to the same GUID')

        # auto: a random new one.
        before = self.notices(vm)
        vm.cmd('set-vm-generation-id', guid='auto')
        new = self.assert_new_guid(vm, [guid], 'set-vm-generation-id auto')
        self.assert_notified(vm, before, new, 'set',
                             'set-vm-generation-id auto')
        guid = new

        # Malformed: refused, nothing changes.
        with self.assertRaises(ExecuteError) as refused:
            vm.cmd('set-vm-generation-id', guid='1234-not-a-guid')
        self.assertEqual(str(refused.exception),
                         "'1234-not-a-guid' is not a valid GUID")
        self.assertEqual(self.qmp_guid(vm), guid,
                         'QMP after a refused set-vm-generation-id')

        # stop and cont: nothing changes.
        before = self.notices(vm)
        vm.cmd('stop')
        vm.cmd('cont')
        self.assert_guid(vm, guid, 'stop, cont')
        self.assert_quiet(vm, before, 'stop, cont')

        # A reset boots the guest again, with the GUID it had.
        vm.cmd('system_reset')
        self.console_wait(vm, 'GUEST-READY')
        self.assert_driver_bound(vm)
        self.assert_guid(vm, guid, 'system_reset')
        self.assertEqual(self.events(vm), [],
                         f'system_reset: unexpected {EVENT}')

    def test_live_migration(self):
        """
        Live migration of a guid=auto guest: to a QEMU started with the
        source's GUID the guest keeps it and hears nothing; the source,
        resumed with cont, keeps it too; to a guid=auto QEMU the guest
        gets a fresh GUID and is notified; to a guid=auto QEMU started
        with -S whose GUID is set back to the source's before cont, the
        guest hears nothing.  A QEMU waiting for an incoming migration
        refuses set-vm-generation-id.
        """
        self.set_machine('q35')
        src = self.start('default', 'auto')
        guid = self.assert_auto_boot(src, 'boot with guid=auto')

        before = self.notices(src)
        dst = self.start_incoming('same', guid)
        self.migrate(src, dst)
        self.assert_guid(dst, guid, 'migration to guid=<source GUID>')
        self.assert_quiet(dst, before, 'migration to guid=<source GUID>')
        dst.shutdown()

        src.cmd('cont')
        self.assert_guid(src, guid, 'source resumed after migration')
        self.assert_quiet(src, before, 'source resumed after migration')

        before = self.notices(src)
        dst = self.start_incoming('auto', 'auto')
        self.migrate(src, dst)
        new = self.assert_new_guid(dst, [guid], 'migration guid=auto to auto')
        self.assert_notified(dst, before, new, 'migration',
                             'migration guid=auto to guid=auto')
        dst.shutdown()

        src.cmd('cont')
        addr = self.guid_address(src)
        before = self.notices(src)
        dst = self.start_incoming('paused', 'auto', '-S')
        self.assertEqual(self.status(dst), 'inmigrate')
        with self.assertRaises(ExecuteError) as refused:
            dst.cmd('set-vm-generation-id', guid=guid)
        self.assertEqual(str(refused.exception), 'the generation ID cannot '
                         'be set during an incoming migration')
        self.migrate(src, dst, state='paused')
        fresh, memory = self.qmp_guid(dst), self.memory_guid(dst, addr)
        self.assertNotIn(fresh, (guid, NULL_GUID),
                         f'paused destination: QMP {fresh}, expected a '
                         f'fresh GUID, not the source\'s {guid}')
        self.assertEqual(memory, fresh, f'paused destination: guest memory '
                         f'at {addr:#x} {memory}, QMP {fresh}')
        dst.cmd('set-vm-generation-id', guid=guid)
        memory = self.memory_guid(dst, addr)
        self.assertEqual(memory, guid, f'paused destination set to the '
                         f'source GUID: guest memory at {addr:#x} {memory}, '
                         f'expected {guid}')
        dst.cmd('cont')
        self.assert_guid(dst, guid, 'paused destination set to the '
                         'source GUID, then cont')
        self.assert_quiet(dst, before, 'paused destination set to the '
                          'source GUID, then cont')


if __name__ == '__main__':
    LinuxKernelTest.main()
