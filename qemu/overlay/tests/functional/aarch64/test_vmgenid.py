#!/usr/bin/env python3
#
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The VM Generation ID device as a Linux guest on the Arm virt machine
# sees it, through the devicetree and through ACPI.
#
# The guest (see vmgenid.py) comes from outside, as local files: two
# kernels, Linux 6.1 (whose driver knows only ACPI) and 6.12 (whose
# driver knows the devicetree binding too), named by
# QEMU_TEST_VMGENID_ARM64_KERNEL_61 and QEMU_TEST_VMGENID_ARM64_KERNEL_612,
# and the initramfs by QEMU_TEST_VMGENID_ARM64_INITRD.  Its tool
# vmgenid-guest finds the GUID through the VMGENID SSDT's VGIA with ACPI,
# else through the reg of the devicetree node compatible with
# "microsoft,vmgenid".
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

from qemu_test import skipIfMissingEnv
from vmgenid import ACCEL, VmGenIdBase, interrupt_count, new_guid


KERNEL_61_ENV = 'QEMU_TEST_VMGENID_ARM64_KERNEL_61'
KERNEL_612_ENV = 'QEMU_TEST_VMGENID_ARM64_KERNEL_612'
INITRD_ENV = 'QEMU_TEST_VMGENID_ARM64_INITRD'
CPU = 'cortex-a57' if ACCEL == 'tcg' else 'host'

AAVMF = (os.environ.get('QEMU_TEST_VMGENID_AAVMF_CODE',
                        '/usr/share/AAVMF/AAVMF_CODE.fd'),
         os.environ.get('QEMU_TEST_VMGENID_AAVMF_VARS',
                        '/usr/share/AAVMF/AAVMF_VARS.fd'))

DT = '/proc/device-tree'
COMPATIBLE = 'microsoft,vmgenid'

# The interrupt that tells the guest of a change, as /proc/interrupts
# names it: the device's own (devicetree), or the GED's (ACPI).
DT_IRQ = 'vmgenid'
ACPI_IRQ = 'ACPI:Ged'


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
class VmGenIdTest(VmGenIdBase):
    """
    Boots Linux guests with -device vmgenid on the virt machine, through
    the devicetree and through ACPI (AAVMF), and checks what they read
    and when they are told, across set-vm-generation-id, restores and
    loadvm.
    """

    console_timeout = 180

    def setUp(self):
        super().setUp()
        self.set_machine('virt')
        self.cpu = CPU
        self.kernels = {'6.1': os.environ[KERNEL_61_ENV],
                        '6.12': os.environ[KERNEL_612_ENV]}
        self.initrd = os.environ[INITRD_ENV]
        self.require_files(*self.kernels.values(), self.initrd)
        self.guests = {}
        self.kernel_of = {}

    # ---------------------------------------------------------------- VMs

    def make_vm(self, name, guid, kernel, guest, extra=(), incoming=False):
        """A guest VM, not launched: with guest.acpi through AAVMF, else
        booted directly."""
        # The devicetree driver claims the page, which a strict /dev/mem
        # then refuses to map.
        append = 'console=ttyAMA0 quiet' + ('' if guest.acpi else
                                            ' iomem=relaxed')
        vm = self.guest_vm(name, guid, self.kernels[kernel], self.initrd,
                           append, '512M',
                           pflash=AAVMF if guest.acpi else None,
                           extra=extra, incoming=incoming)
        self.guests[vm] = guest
        self.kernel_of[vm] = kernel
        return vm

    def start_incoming(self, name, guid, like):
        """A VM waiting for an incoming migration (-incoming defer), set up
        as the VM like (the same kernel, the same way to boot)."""
        return self.launch_incoming(self.make_vm(name, guid,
                                                 self.kernel_of[like],
                                                 self.guests[like],
                                                 incoming=True))

    # ---------------------------------------------------------- the guest

    def signal(self, vm):
        irq = self.guests[vm].irq
        return f'interrupt {irq}', interrupt_count(irq)

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

    def guid_address(self, vm):
        """The guest-physical address of the GUID, as the guest finds it."""
        if self.guests[vm].acpi:
            return self.acpi_address(vm)
        return self.dt_address(vm)

    def driver(self, vm):
        """The ACPI device, or the devicetree node (a platform device named
        after its address)."""
        guest = self.guests[vm]
        return guest.driver, ('QEMUVGID:00' if guest.acpi else
                              f'{self.dt_address(vm):x}.vmgenid')

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
        fixed = self.check_set(vm, 'devicetree', watch=True)
        saved = self.check_loadvm(vm, auto, fixed)
        self.check_restores(vm, auto, saved, self.start_incoming)

    def test_acpi(self):
        """
        Linux 6.1 and 6.12 booted through AAVMF: they find the device
        through ACPI, and are told of changes through the GED.  6.1 with
        a fixed GUID, 6.12 with guid=auto, booted together: the driver
        binds and the guest reads what QMP reports; set-vm-generation-id
        notifies each, to the same value it does not (check_set); then
        the restores of check_restores.
        """
        if not all(os.path.exists(f) for f in AAVMF):
            self.skipTest(f'AAVMF not found: {", ".join(AAVMF)}')
        fixed = new_guid()
        self.make_vm('default', fixed, '6.1', ACPI_61)
        self.make_vm('auto', 'auto', '6.12', ACPI_612)
        vm, auto = self.vm, self.get_vm(name='auto')
        self.launch(vm, auto)

        self.assert_driver_bound(vm)
        self.assert_driver_bound(auto)
        self.assert_guid(vm, fixed, 'ACPI, Linux 6.1, boot with guid=UUID')
        self.assert_auto_boot(auto, 'ACPI, Linux 6.12, boot with guid=auto')
        self.check_set(vm, 'ACPI, Linux 6.1', watch=True)
        saved = self.check_set(auto, 'ACPI, Linux 6.12', watch=True)
        self.check_restores(vm, auto, saved, self.start_incoming)


if __name__ == '__main__':
    VmGenIdBase.main()
