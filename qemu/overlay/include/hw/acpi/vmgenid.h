/*
 * VM Generation ID device
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_ACPI_VMGENID_H
#define HW_ACPI_VMGENID_H

#include "hw/acpi/bios-linker-loader.h"
#include "hw/sysbus.h"
#include "qapi/qapi-types-machine.h"
#include "qemu/notify.h"
#include "qemu/uuid.h"
#include "qom/object.h"

#define TYPE_VMGENID "vmgenid"

/*
 * The guest ABI, shared with firmware and existing guests: the firmware
 * allocates a page for VMGENID_GUID_FW_CFG_FILE and writes the address of
 * the GUID in it to VMGENID_ADDR_FW_CFG_FILE. The GUID sits
 * VMGENID_GUID_OFFSET bytes into the page, behind room for OVMF's ACPI
 * table header probe.
 */
#define VMGENID_GUID_FW_CFG_FILE "etc/vmgenid_guid"
#define VMGENID_ADDR_FW_CFG_FILE "etc/vmgenid_addr"
#define VMGENID_FW_CFG_SIZE      4096
#define VMGENID_GUID_OFFSET      40

OBJECT_DECLARE_SIMPLE_TYPE(VmGenIdState, VMGENID)

struct VmGenIdState {
    SysBusDevice parent_obj;

    QemuUUID guid;          /* the generation ID, as the user writes it */
    bool guid_auto;         /* "guid=auto": QEMU draws every new value */

    /*
     * The generation the guest last ran with, and why the current one
     * differs from it. The guest hears of a change only when it runs.
     */
    QemuUUID guest_guid;
    bool guest_guid_known;
    VmGenerationIdReason reason;
    bool asleep;            /* suspended to RAM: hold notifications */

    GArray *page;           /* contents of VMGENID_GUID_FW_CFG_FILE */
    uint8_t addr_file[8];   /* VMGENID_ADDR_FW_CFG_FILE as the guest wrote it */
    uint8_t addr_le[8];     /* the GUID address in use (migrated); 0: none */

    Notifier suspend_notifier;
    Notifier wakeup_notifier;
    Error *unplug_blocker;
};

/*
 * The device, or NULL when the machine has none (or, while a second one is
 * being realized, two).
 */
VmGenIdState *vmgenid_find(void);

/* Append the device's SSDT and its linker/loader commands. */
void vmgenid_build_acpi(VmGenIdState *s, GArray *table_data,
                        BIOSLinker *linker, const char *oem_id);

#endif
