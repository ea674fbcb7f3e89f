/*
 * Virtual Machine Clock Device: what machines call, for builds without it
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "hw/acpi/vmclock.h"

/*
 * Without the device no machine routes one to its front-end, nor finds one
 * to describe.
 */
void vmclock_use_page(VmclockState *vms, uint64_t addr, uint64_t size,
                      bool generation)
{
    g_assert_not_reached();
}

void vmclock_use_acpi(VmclockState *vms, AcpiDeviceIf *acpi_dev, bool gpe)
{
    g_assert_not_reached();
}

void vmclock_use_dt(VmclockState *vms)
{
    g_assert_not_reached();
}

bool vmclock_has_generation(VmclockState *vms)
{
    g_assert_not_reached();
}

void vmclock_build_acpi(VmclockState *vms, GArray *table_data,
                        BIOSLinker *linker, const char *oem_id)
{
    g_assert_not_reached();
}
