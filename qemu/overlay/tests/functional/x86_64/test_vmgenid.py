#!/usr/bin/env python3
#
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The VM Generation ID device as a Linux guest on x86 sees it.
#
# The guest (see vmgenid.py) is Debian 12's Linux 6.1 with an initramfs
# of Debian's busybox; it reads the GUID where the VMGENID SSDT's VGIA
# says.  Debian's Linux 7.2 (its cloud flavour, from unstable) also
# boots with vmclock on each machine: its ptp_vmclock driver serves the
# vmclock page as /dev/vmclock0, whose vm_generation_counter must move
# exactly when the GUID does, and whose poll() must wake then.
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

from qemu.qmp import ExecuteError
from qemu_test import Asset, exec_command
from vmgenid import ACCEL, EVENT, NULL_GUID, VmGenIdBase
from vmgenid import interrupt_count, new_guid


# The machine type a UEFI firmware must be for (OVMF on q35).
UEFI_TYPE = 'pc-q35-10.2'

GPE = '/sys/firmware/acpi/interrupts/gpe05'
GED_IRQ = 'ACPI:Ged'
DRIVER = '/sys/bus/acpi/drivers/vmgenid'


class VmGenIdTest(VmGenIdBase):
    """
    Boots a Linux guest with -device vmgenid on pc and q35, SeaBIOS and
    OVMF, and on microvm, and checks what it reads and when it is told,
    across restores, live migration, loadvm, set-vm-generation-id, S3
    and reset.
    """

    # Debian's packages, from snapshot.debian.org, which serves, for any
    # timestamp, the archive as its last import at or before that time
    # had it (an exact import time is not needed).  Both come from
    # bookworm itself, which has not changed since its last point release
    # (its Release file is dated 2026-07-11 10:16 UTC): a day later, the
    # snapshot surely holds them.  The kernel's config has
    # CONFIG_VMGENID=y.
    ASSET_KERNEL = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20260712T000000Z/pool/main/l/linux-signed-amd64/'
         'linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb'),
        '7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3')
    KERNEL = 'boot/vmlinuz-6.1.0-50-amd64'

    # Linux 7.2 from unstable, whose Release file of 2026-10-30 08:08 UTC
    # listed it.  Its config has CONFIG_VMGENID=y and
    # CONFIG_PTP_1588_CLOCK_VMCLOCK=m: the module comes from its own
    # package.
    ASSET_KERNEL_7 = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20261030T080801Z/pool/main/l/linux-signed-amd64/'
         'linux-binary-7.2.13%2Bdeb14-cloud-amd64_7.2.13-1_amd64.deb'),
        '03e41f1c34c16583462f029e81944a85ebcdb78098c258dedfa1cfdd680a27f8')
    ASSET_MODULES_7 = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20261030T080801Z/pool/main/l/linux/'
         'linux-modules-7.2.13%2Bdeb14-cloud-amd64_7.2.13-1_amd64.deb'),
        '97d79546041e3fdfb44dccff180938894d1bf8eb298f091f88539c1b37080bef')
    KERNEL_7 = 'usr/lib/modules/7.2.13+deb14-cloud-amd64/vmlinuz'
    VMCLOCK_7 = ('usr/lib/modules/7.2.13+deb14-cloud-amd64/kernel/drivers/'
                 'ptp/ptp_vmclock.ko.xz')

    ASSET_BUSYBOX = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20260712T000000Z/pool/main/b/busybox/'
         'busybox-static_1.35.0-4%2Bdeb12u1%2Bb1_amd64.deb'),
        '3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744')

    def setUp(self):
        super().setUp()
        self.kernel = self.deb_file(self.ASSET_KERNEL, self.KERNEL)
        self.initrd = self.build_initrd(self.ASSET_BUSYBOX)
        self.guest7 = None
        self.linux7_vms = set()

    # ---------------------------------------------------------------- VMs

    def make_vm(self, name, guid, firmware='seabios', append='',
                extra=(), incoming=False, linux7=False):
        """A guest VM, not launched.  self.machine is pc, q35 or microvm
        (whose default firmware with ACPI is SeaBIOS too).  PAT is off
        (nopat): the guest's devmem maps the GUID's page uncached, which
        PAT would refuse next to the driver's write-back mapping.  With
        linux7, Linux 7.2 and a vmclock with the generation counter: on
        pc and q35 it is off unless asked for, on microvm on by default."""
        kernel, initrd, clock = self.kernel, self.initrd, None
        if linux7:
            kernel, initrd = self.linux7()
            clock = ('vmclock' if self.machine == 'microvm' else
                     'vmclock,vm-generation-counter=on')
        vm = self.guest_vm(name, guid, kernel, initrd,
                           f'console=ttyS0 quiet nopat {append}'.strip(),
                           '256M', pflash=(self.uefi(UEFI_TYPE)
                                   if firmware == 'ovmf' else None),
                           extra=extra, incoming=incoming, clock=clock)
        if linux7:
            self.linux7_vms.add(vm)
        return vm

    def linux7(self):
        """Linux 7.2 and an initramfs with its ptp_vmclock module, made
        when a test first needs them."""
        if not self.guest7:
            module = self.deb_file(self.ASSET_MODULES_7, self.VMCLOCK_7)
            self.guest7 = (self.deb_file(self.ASSET_KERNEL_7, self.KERNEL_7),
                           self.build_initrd(self.ASSET_BUSYBOX, [module],
                                             'initramfs-7.cpio'))
        return self.guest7

    def start(self, name, guid, **kwargs):
        vm = self.make_vm(name, guid, **kwargs)
        self.launch(vm)
        return vm

    def start_incoming(self, name, guid, *extra, **kwargs):
        """A VM waiting for an incoming migration (-incoming defer)."""
        return self.launch_incoming(self.make_vm(name, guid, incoming=True,
                                                 extra=extra, **kwargs))

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

    # ---------------------------------------------------------- the guest

    def signal(self, vm):
        """GPE 5, or the GED's interrupt on microvm, and how to count it."""
        if self.machine == 'microvm':
            return GED_IRQ, interrupt_count(GED_IRQ)
        return 'gpe05', f'cat {GPE}'

    def driver(self, vm):
        # Linux 7's driver is a platform driver, bound to the ACPI device.
        if vm in self.linux7_vms:
            return '/sys/bus/platform/drivers/vmgenid', 'QEMUVGID:00'
        return DRIVER, 'QEMUVGID:00'

    def guid_address(self, vm):
        return self.acpi_address(vm)

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

    def check_boot_and_restore(self, firmware, append='', s3=None,
                               loadvm=False, set_guid=False):
        """
        One guest with a fixed GUID, one with guid=auto, booted together.
        Both: the driver binds and the guest reads what QMP reports.
        With s3 (the -global that enables S3): check_s3 on the fixed one.
        With loadvm: check_loadvm on them.
        With set_guid: check_set on the fixed one.
        Then check_restores.
        """
        fixed = new_guid()
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
            self.check_set(vm, self.machine)

        def incoming(name, guid, like):
            return self.start_incoming(name, guid, *common, **opts)
        self.check_restores(vm, auto, saved, incoming)

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
        self.uefi(UEFI_TYPE)
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

    def check_linux7(self, append=''):
        """Linux 7.2 with vmclock on self.machine: check_generations."""
        opts = {'append': append, 'linux7': True}
        vm = self.make_vm('default', 'auto', extra=self.snapshot_drive('d'),
                          **opts)
        self.launch(vm)

        def incoming(name, guid, like):
            return self.start_incoming(name, guid, **opts)
        self.check_generations(vm, f'{self.machine}, Linux 7.2', incoming)

    def test_linux7_pc(self):
        self.set_machine('pc')
        self.check_linux7()

    def test_linux7_q35(self):
        self.set_machine('q35')
        self.check_linux7()

    def test_linux7_microvm(self):
        self.set_machine('microvm')
        # See test_microvm.
        self.check_linux7('tsc_early_khz=2000000' if ACCEL == 'tcg' else '')

    def test_set_vm_generation_id(self):
        """
        set-vm-generation-id on a running guest (notified at once, and
        vmgenid --watch shows it), on a paused one (in guest memory
        before cont, notified on cont), to the value it has (nothing),
        to "auto" (a new random GUID) and to a malformed GUID (refused).
        stop/cont and system_reset keep the GUID.
        """
        self.set_machine('q35')
        vm = self.start('default', 'auto')
        self.assert_auto_boot(vm, 'boot with guid=auto')

        # Running, watched by vmgenid --watch.
        self.check_set(vm, 'q35', watch=True, again=False)

        # Paused: QMP has the value at once, guest memory only at cont,
        # when the guest is told.
        addr = self.address(vm)
        before = self.notices(vm)
        old, guid = self.qmp_guid(vm), new_guid()
        vm.cmd('stop')
        vm.cmd('set-vm-generation-id', guid=guid)
        memory = self.memory_guid(vm, addr)
        self.assertEqual((memory, self.qmp_guid(vm), self.status(vm)),
                         (old, guid, 'paused'),
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
        self.forget_address(vm)
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
        addr = self.address(src)
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
        self.assertEqual(memory, guid, f'paused destination: guest memory '
                         f'at {addr:#x} {memory}, expected what the guest '
                         f'was told of, {guid}')
        dst.cmd('set-vm-generation-id', guid=guid)
        dst.cmd('cont')
        self.assert_guid(dst, guid, 'paused destination set to the '
                         'source GUID, then cont')
        self.assert_quiet(dst, before, 'paused destination set to the '
                          'source GUID, then cont')
        dst.shutdown()

        # A change made on the paused source, then a migration to a QEMU
        # given the source's new GUID (as management does): the guest
        # never ran with it, so it is told when it runs again.
        src.cmd('cont')
        before = self.notices(src)
        src.cmd('stop')
        changed = new_guid()
        src.cmd('set-vm-generation-id', guid=changed)
        self.assertEqual(self.memory_guid(src, addr), guid,
                         'guest memory after a set while paused')
        dst = self.start_incoming('changed', changed)
        self.migrate(src, dst, state='paused')
        dst.cmd('cont')
        self.assert_notified(dst, before, changed, 'migration',
                             'set while paused, migration to the new GUID')
        self.assert_guid(dst, changed, 'set while paused, migration to the '
                         'new GUID')

    def check_s3_reset(self, firmware, append, s3):
        """
        system_reset while the guest sleeps in S3, then a GUID set while
        it runs: the guest is told.  (The firmware finds QEMU's S3 resume
        flag in CMOS, which a reset keeps, and resumes the guest.)
        """
        vm = self.start('default', new_guid(), firmware=firmware,
                        append=append, extra=('-global', s3))
        exec_command(self, '(echo mem > /sys/power/state; '
                     'echo "@@res""umed@@") &', vm=vm)
        self.assertIsNotNone(self.wait_qmp_event(vm, 'SUSPEND', 60),
                             'the guest did not suspend to S3')
        vm.cmd('system_reset')
        self.assertIsNotNone(self.wait_qmp_event(vm, 'RESET', 60),
                             'no RESET after system_reset')
        # A reset out of S3 leaves the VM in prelaunch.
        self.assertEqual(self.status(vm), 'prelaunch')
        vm.cmd('cont')
        self.console_wait(vm, '@@resumed@@')
        self.assert_driver_bound(vm)
        self.check_set(vm, f'{self.machine}: system_reset in S3, then set',
                       again=False)

    def test_s3_reset_pc(self):
        self.set_machine('pc')
        self.check_s3_reset('seabios', '', 'PIIX4_PM.disable_s3=0')

    def test_s3_reset_q35(self):
        self.uefi(UEFI_TYPE)
        self.set_machine('q35')
        # OVMF: SeaBIOS cannot take q35 out of S3 (see test_q35_seabios).
        self.check_s3_reset('ovmf', 'iomem=relaxed', 'ICH9-LPC.disable_s3=0')


if __name__ == '__main__':
    VmGenIdBase.main()
