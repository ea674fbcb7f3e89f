#!/usr/bin/env python3
#
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The VM Generation ID device as a Linux guest on the Arm virt machine
# sees it, through the devicetree and through ACPI.
#
# The guests (see vmgenid.py) are two of Debian 12's kernels, Linux 6.1
# (whose driver knows only ACPI) and 6.12 from bookworm-backports (whose
# driver knows the devicetree binding too), and Debian's Linux 7.2 (its
# cloud flavour, from unstable) with vmclock, with an initramfs of
# Debian's busybox.  They read the GUID where the VMGENID SSDT's VGIA
# says with ACPI, else where the reg of the devicetree node compatible
# with "microsoft,vmgenid" says.
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

from qemu_test import Asset
from vmgenid import ACCEL, VmGenIdBase, interrupt_count, new_guid


CPU = 'cortex-a57' if ACCEL == 'tcg' else 'host'

# The machine type a UEFI firmware (AAVMF) must be for.
UEFI_TYPE = 'virt-10.2'

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


class VmGenIdTest(VmGenIdBase):
    """
    Boots Linux guests with -device vmgenid on the virt machine, through
    the devicetree and through ACPI (AAVMF), and checks what they read
    and when they are told, across set-vm-generation-id, restores and
    loadvm.
    """

    console_timeout = 180

    # Debian's packages, from snapshot.debian.org, which serves, for any
    # timestamp, the archive as its last import at or before that time
    # had it (an exact import time is not needed).  bookworm has not
    # changed since its last point release (its Release file is dated
    # 2026-07-11 10:16 UTC): a day later, the snapshot surely holds its
    # packages.  6.12 is from bookworm-backports, whose Release file of
    # 2026-11-30 02:21 UTC listed it.  Both
    # kernels' configs have CONFIG_VMGENID=y; each package's vmlinuz is
    # the uncompressed Image with its EFI stub, which QEMU boots directly
    # and AAVMF through fw_cfg.
    ASSET_KERNEL_61 = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20260712T000000Z/pool/main/l/linux-signed-arm64/'
         'linux-image-6.1.0-50-arm64_6.1.176-1_arm64.deb'),
        '914f75b57a8e165d85fb910c3e2dcc7000a05a9fea3f42f90b26e8dd590d5f06')

    ASSET_KERNEL_612 = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20261130T022141Z/pool/main/l/linux-signed-arm64/'
         'linux-image-6.12.95%2Bdeb12-arm64_6.12.95-1~bpo12%2B1_arm64.deb'),
        '08f6c01d4c68c5136106f51302d1b564f40325be2b6bfada71269929e9b5b336')

    # Linux 7.2 from unstable, whose Release file of 2026-10-30 08:08 UTC
    # listed it; its config has CONFIG_VMGENID=y and
    # CONFIG_PTP_1588_CLOCK_VMCLOCK=y.
    ASSET_KERNEL_7 = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20261030T080801Z/pool/main/l/linux-signed-arm64/'
         'linux-binary-7.2.13%2Bdeb14-cloud-arm64_7.2.13-1_arm64.deb'),
        '6468b94955d8b5e8a2b3b36a826851ad0aa431c7340f6401e20b065dc08e4f5d')

    ASSET_BUSYBOX = Asset(
        ('https://snapshot.debian.org/archive/debian/'
         '20260712T000000Z/pool/main/b/busybox/'
         'busybox-static_1.35.0-4%2Bdeb12u1%2Bb1_arm64.deb'),
        '732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5')

    # Each series' package and its kernel in it.
    KERNELS = {'6.1': (ASSET_KERNEL_61, 'boot/vmlinuz-6.1.0-50-arm64'),
               '6.12': (ASSET_KERNEL_612,
                        'boot/vmlinuz-6.12.95+deb12-arm64'),
               '7.2': (ASSET_KERNEL_7,
                       'usr/lib/modules/7.2.13+deb14-cloud-arm64/vmlinuz')}

    def setUp(self):
        super().setUp()
        self.set_machine('virt')
        self.cpu = CPU
        self.kernels = {}
        self.initrd = self.build_initrd(self.ASSET_BUSYBOX)
        self.guests = {}
        self.kernel_of = {}

    # ---------------------------------------------------------------- VMs

    def make_vm(self, name, guid, kernel, guest, extra=(), incoming=False):
        """A guest VM, not launched: with guest.acpi through AAVMF, else
        booted directly.  Linux 7.2 gets a vmclock, whose generation
        counter is on by default on virt."""
        # The devicetree driver claims the page, which a strict /dev/mem
        # then refuses to map.
        append = 'console=ttyAMA0 quiet' + ('' if guest.acpi else
                                            ' iomem=relaxed')
        vm = self.guest_vm(name, guid, self.kernel(kernel), self.initrd,
                           append, '512M',
                           pflash=self.uefi(UEFI_TYPE) if guest.acpi else None,
                           extra=extra, incoming=incoming,
                           clock='vmclock' if kernel == '7.2' else None)
        self.guests[vm] = guest
        self.kernel_of[vm] = kernel
        return vm

    def kernel(self, series):
        """The kernel of Linux series (6.1, 6.12), extracted when a test
        first needs it."""
        if series not in self.kernels:
            self.kernels[series] = self.deb_file(*self.KERNELS[series])
        return self.kernels[series]

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

    def test_linux7_devicetree(self):
        """Linux 7.2 booted directly, vmgenid and vmclock found in the
        devicetree: check_generations."""
        vm = self.make_vm('default', 'auto', '7.2', DT_612,
                          extra=self.snapshot_drive('default'))
        self.launch(vm)
        self.check_generations(vm, 'devicetree, Linux 7.2',
                               self.start_incoming)

    def test_linux7_acpi(self):
        """Linux 7.2 through AAVMF, vmgenid and vmclock found through
        ACPI and told through the GED: check_generations."""
        self.uefi(UEFI_TYPE)
        vm = self.make_vm('default', 'auto', '7.2', ACPI_612,
                          extra=self.snapshot_drive('default'))
        self.launch(vm)
        self.check_generations(vm, 'ACPI, Linux 7.2', self.start_incoming)

    def test_acpi(self):
        """
        Linux 6.1 and 6.12 booted through AAVMF: they find the device
        through ACPI, and are told of changes through the GED.  6.1 with
        a fixed GUID, 6.12 with guid=auto, booted together: the driver
        binds and the guest reads what QMP reports; set-vm-generation-id
        notifies each, to the same value it does not (check_set); then
        the restores of check_restores.
        """
        self.uefi(UEFI_TYPE)
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
