/*
 * VM Generation ID: what machines and QMP call, for builds without the device
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-machine.h"
#include "hw/acpi/vmgenid.h"

/*
 * Without the device no machine routes one to its front-end, and there is
 * no SSDT to add.
 */
void vmgenid_use_acpi(VmGenIdState *s, AcpiDeviceIf *acpi_dev, bool gpe)
{
    g_assert_not_reached();
}

void vmgenid_use_dt(VmGenIdState *s)
{
    g_assert_not_reached();
}

void vmgenid_exclude(VmGenIdState *s, MemoryRegion *mr, const char *why)
{
    g_assert_not_reached();
}

void vmgenid_add_change_notifier(Notifier *n)
{
}

bool vmgenid_change_pending(void)
{
    return false;
}

void vmgenid_add_acpi_table(GArray *table_offsets, GArray *table_data,
                            BIOSLinker *linker, const char *oem_id)
{
}

GuidInfo *qmp_query_vm_generation_id(Error **errp)
{
    error_setg(errp, "this QEMU has no vmgenid device");
    return NULL;
}

void qmp_set_vm_generation_id(const char *guid, Error **errp)
{
    error_setg(errp, "this QEMU has no vmgenid device");
}
