/*
 * VM Generation ID device
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_ACPI_VMGENID_H
#define HW_ACPI_VMGENID_H

#include "hw/acpi/acpi_dev_interface.h"
#include "hw/acpi/aml-build.h"
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

/*
 * Through a devicetree (see vmgenid_use_dt()), QEMU offers the GUID in a
 * page of its own, at offset 0, which the devicetree describes as
 * "microsoft,vmgenid" with an edge-triggered interrupt.
 */
#define VMGENID_DT_COMPATIBLE    "microsoft,vmgenid"
#define VMGENID_DT_SIZE          4096

OBJECT_DECLARE_SIMPLE_TYPE(VmGenIdState, VMGENID)

struct VmGenIdState {
    SysBusDevice parent_obj;

    QemuUUID guid;          /* the generation ID, as the user writes it */
    bool guid_auto;         /* "guid=auto": QEMU draws every new value */

    /*
     * The GUID the guest was last told of, which is all that guest memory
     * ever holds (unknown after loading a state that has none), and why
     * the current one differs from it. The guest is told only when it
     * runs: not while stopped, loading or asleep.
     */
    QemuUUID told;
    bool told_known;
    VmGenerationIdReason reason;
    bool asleep;            /* suspended to RAM, until wakeup or reset */
    bool set_up;            /* realized once; see vmgenid_realize() */

    /*
     * What the machine's front-end chose before realize: how the guest
     * finds the GUID and how it is told of a change.
     */
    AcpiDeviceIf *acpi_dev; /* ACPI: the device that raises the event */
    bool acpi_gpe;          /* ... as GPE 5, handled by the SSDT's _E05 */
    bool dt;                /* devicetree: QEMU's own page, an interrupt */
    MemoryRegion *excluded_mr; /* what of it is enabled: never the GUID's */
    const char *excluded_why;
    AddressSpace excluded;  /* its view, to look addresses up in */

    /* ACPI: a page the firmware places */
    GArray *page;           /* VMGENID_GUID_FW_CFG_FILE; NULL: no ACPI */
    uint8_t addr_file[8];   /* VMGENID_ADDR_FW_CFG_FILE as the guest wrote it */
    /* The GUID address in use (migrated; named as always); 0: none */
    uint8_t vmgenid_addr_le[8];

    /* Devicetree: the page on the platform bus, and its interrupt */
    MemoryRegion dt_page;
    qemu_irq irq;

    Notifier suspend_notifier;
    Notifier wakeup_notifier;
    Error *unplug_blocker;
};

/*
 * The device, or NULL when the machine has none (or, while a second one is
 * being realized, two). Works in builds without the device too.
 */
static inline VmGenIdState *vmgenid_find(void)
{
    return (VmGenIdState *)object_resolve_path_type("", TYPE_VMGENID, NULL);
}

/*
 * Front-ends. A machine that hosts the device routes it to its hotplug
 * handler, whose pre_plug callback says how the guest finds the GUID:
 *
 * vmgenid_use_acpi(): through the SSDT that vmgenid_add_acpi_table()
 * builds, in a page the firmware places; @acpi_dev raises the change
 * event, as GPE 5 if @gpe (the SSDT then handles it), otherwise as an
 * event of its own that the machine's AML handles with
 * vmgenid_build_notify().
 *
 * vmgenid_use_dt(): in a page of QEMU's own that the machine maps on its
 * platform bus and describes in its devicetree (VMGENID_DT_COMPATIBLE),
 * with the device's interrupt.
 *
 * vmgenid_exclude(): memory that the guest must never make QEMU write the
 * GUID to, such as SMRAM: whatever of @mr is enabled. @why says where such
 * an address is, for the log: "is in SMRAM".
 */
void vmgenid_use_acpi(VmGenIdState *s, AcpiDeviceIf *acpi_dev, bool gpe);
void vmgenid_use_dt(VmGenIdState *s);
void vmgenid_exclude(VmGenIdState *s, MemoryRegion *mr, const char *why);

/*
 * Other channels of the generation (vmclock's counter): whenever the guest
 * is told of a new GUID, @n is called twice with a VmGenIdChange: once the
 * GUID is in guest memory, to update theirs (@notify false), and once
 * vmgenid has notified the guest, to notify it of theirs (@notify true),
 * so that the guest's kernel has the new GUID first.
 *
 * vmgenid_change_pending(): whether vmgenid will tell the guest of a new
 * GUID as soon as it runs and is awake.
 *
 * Both work in builds without the device: nothing is ever pending.
 */
typedef struct VmGenIdChange {
    const QemuUUID *guid;
    bool notify;
} VmGenIdChange;

void vmgenid_add_change_notifier(Notifier *n);
bool vmgenid_change_pending(void);

/* The ACPI path of the device that the SSDT describes */
#define VMGENID_ACPI_PATH "\\_SB.VGEN"

/* The AML that tells the guest's OS of a new GUID */
static inline Aml *vmgenid_build_notify(void)
{
    return aml_notify(aml_name(VMGENID_ACPI_PATH), aml_int(0x80));
}

/*
 * Append the SSDT of the machine's vmgenid device and its linker/loader
 * commands, if the machine has the device and its guest finds the GUID
 * through ACPI.
 */
void vmgenid_add_acpi_table(GArray *table_offsets, GArray *table_data,
                            BIOSLinker *linker, const char *oem_id);

#endif
