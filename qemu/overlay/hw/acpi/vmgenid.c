/*
 * VM Generation ID device
 *
 * A 128-bit GUID in guest memory that changes whenever the guest runs again
 * from a state it already ran (snapshot revert, restore, clone), plus an ACPI
 * notification of the change. See docs/specs/vmgenid.rst.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-machine.h"
#include "qapi/qapi-events-machine.h"
#include "qemu/bswap.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "hw/acpi/acpi_dev_interface.h"
#include "hw/acpi/aml-build.h"
#include "hw/acpi/vmgenid.h"
#include "hw/boards.h"
#include "hw/nvram/fw_cfg.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "system/address-spaces.h"
#include "system/runstate.h"
#include "trace.h"

VmGenIdState *vmgenid_find(void)
{
    Object *obj = object_resolve_path_type("", TYPE_VMGENID, NULL);

    return obj ? VMGENID(obj) : NULL;
}

void vmgenid_build_acpi(VmGenIdState *s, GArray *table_data,
                        BIOSLinker *linker, const char *oem_id)
{
    AcpiTable table = { .sig = "SSDT", .rev = 1,
                        .oem_id = oem_id, .oem_table_id = "VMGENID" };
    Aml *ssdt, *scope, *dev, *method, *cond, *pkg;
    uint32_t vgia_offset;

    acpi_table_begin(&table, table_data);
    ssdt = init_aml_allocator();

    /*
     * VGIA comes first so that tools can find it at a fixed place; the
     * firmware patches in the address of the page it allocated.
     */
    vgia_offset = table_data->len + build_append_named_dword(ssdt->buf, "VGIA");

    scope = aml_scope("\\_SB");
    dev = aml_device("VGEN");
    aml_append(dev, aml_name_decl("_HID", aml_string("QEMUVGID")));
    aml_append(dev, aml_name_decl("_CID", aml_string("VM_Gen_Counter")));
    aml_append(dev, aml_name_decl("_DDN", aml_string("VM_Gen_Counter")));

    /* The device exists for the OS only once the firmware placed the page. */
    method = aml_method("_STA", 0, AML_NOTSERIALIZED);
    cond = aml_if(aml_equal(aml_name("VGIA"), aml_int(0)));
    aml_append(cond, aml_return(aml_int(0)));
    aml_append(method, cond);
    aml_append(method, aml_return(aml_int(0xf)));
    aml_append(dev, method);

    /* ADDR: { low 32 bits, high 32 bits } of the GUID's address. */
    method = aml_method("ADDR", 0, AML_NOTSERIALIZED);
    pkg = aml_package(2);
    aml_append(pkg, aml_int(0));
    aml_append(pkg, aml_int(0));
    aml_append(method, aml_store(pkg, aml_local(0)));
    aml_append(method,
               aml_store(aml_add(aml_name("VGIA"),
                                 aml_int(VMGENID_GUID_OFFSET), NULL),
                         aml_index(aml_local(0), aml_int(0))));
    aml_append(method, aml_return(aml_local(0)));
    aml_append(dev, method);

    aml_append(scope, dev);
    aml_append(ssdt, scope);

    /* GPE 5 is the one ACPI_VMGENID_CHANGE_STATUS raises. */
    scope = aml_scope("\\_GPE");
    method = aml_method("_E05", 0, AML_NOTSERIALIZED);
    aml_append(method, aml_notify(aml_name("\\_SB.VGEN"), aml_int(0x80)));
    aml_append(scope, method);
    aml_append(ssdt, scope);

    g_array_append_vals(table_data, ssdt->buf->data, ssdt->buf->len);

    bios_linker_loader_alloc(linker, VMGENID_GUID_FW_CFG_FILE, s->page,
                             VMGENID_FW_CFG_SIZE, false);
    bios_linker_loader_add_pointer(linker, ACPI_BUILD_TABLE_FILE,
                                   vgia_offset, sizeof(uint32_t),
                                   VMGENID_GUID_FW_CFG_FILE, 0);
    /* QEMU is told the address of the GUID itself, not of the page. */
    bios_linker_loader_write_pointer(linker, VMGENID_ADDR_FW_CFG_FILE, 0,
                                     sizeof(s->addr_le),
                                     VMGENID_GUID_FW_CFG_FILE,
                                     VMGENID_GUID_OFFSET);

    acpi_table_end(linker, &table);
    free_aml_allocator();
}

/* The GUID as the guest reads it: the first three fields little endian. */
static QemuUUID vmgenid_guest_guid(VmGenIdState *s)
{
    return qemu_uuid_bswap(s->guid);
}

/* Where the firmware put the GUID; 0 until it has. */
static uint64_t vmgenid_guid_addr(VmGenIdState *s)
{
    return ldq_le_p(s->addr_le);
}

/*
 * The address comes from the guest, which may write anything there: use it
 * only if the 16 GUID bytes lie in writable guest RAM.
 */
static bool vmgenid_guid_addr_ok(uint64_t addr)
{
    MemoryRegionSection sec;
    const char *why = NULL;

    if (addr & 7) {
        why = "is not 8-byte aligned";
    } else if (addr > UINT64_MAX - sizeof(QemuUUID)) {
        why = "is out of range";
    } else {
        sec = memory_region_find(get_system_memory(), addr, sizeof(QemuUUID));
        if (!sec.mr || !memory_region_is_ram(sec.mr) ||
            memory_region_is_rom(sec.mr) ||
            memory_region_is_ram_device(sec.mr)) {
            why = "is not in guest RAM";
        } else if (int128_lt(sec.size, int128_make64(sizeof(QemuUUID)))) {
            why = "runs past the end of guest RAM";
        }
        if (sec.mr) {
            memory_region_unref(sec.mr);
        }
    }
    if (why) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: GUID address 0x%" PRIx64 " %s; not writing it\n",
                      TYPE_VMGENID, addr, why);
    }
    return !why;
}

/* Keep the fw_cfg copy current for the firmware's next load of the page. */
static void vmgenid_update_page(VmGenIdState *s)
{
    QemuUUID le = vmgenid_guest_guid(s);

    memcpy(s->page->data + VMGENID_GUID_OFFSET, &le, sizeof(le));
}

/* Write the GUID where the firmware put it, if it has done so. */
static void vmgenid_write_guest(VmGenIdState *s)
{
    uint64_t addr = vmgenid_guid_addr(s);
    QemuUUID le = vmgenid_guest_guid(s);
    g_autofree char *text = NULL;

    if (!addr || !vmgenid_guid_addr_ok(addr)) {
        return;
    }
    if (trace_event_get_state_backends(TRACE_VMGENID_GUID_WRITE)) {
        text = qemu_uuid_unparse_strdup(&s->guid);
        trace_vmgenid_guid_write(addr, text);
    }
    address_space_write(&address_space_memory, addr, MEMTXATTRS_UNSPECIFIED,
                        &le, sizeof(le));
}

/* Raise GPE 5 so that the guest's \_GPE._E05 notifies \_SB.VGEN. */
static void vmgenid_notify_guest(VmGenIdState *s)
{
    Object *acpi = object_resolve_path_type("", TYPE_ACPI_DEVICE_IF, NULL);

    if (!vmgenid_guid_addr(s) || !acpi) {
        return;
    }
    trace_vmgenid_notify();
    acpi_send_event(DEVICE(acpi), ACPI_VMGENID_CHANGE_STATUS);
}

/*
 * Make @guid the generation ID. The guest's page is rewritten in any case
 * (the guest may have scribbled on it); the guest is notified, and the
 * change reported, only when the value changes or @force says the guest may
 * have seen another one.
 */
static void vmgenid_change(VmGenIdState *s, const QemuUUID *guid,
                           VmGenerationIdReason reason, bool force)
{
    bool changed = force || !qemu_uuid_is_equal(&s->guid, guid);
    g_autofree char *text = NULL;

    s->guid = *guid;
    vmgenid_update_page(s);
    vmgenid_write_guest(s);
    if (changed) {
        vmgenid_notify_guest(s);
        text = qemu_uuid_unparse_strdup(&s->guid);
        qapi_event_send_vm_generation_id_changed(text, reason);
    }
}

/* fw_cfg write callback: the firmware reports where it put the GUID. */
static void vmgenid_addr_written(void *opaque, off_t start, size_t len)
{
    VmGenIdState *s = opaque;

    trace_vmgenid_addr_written(vmgenid_guid_addr(s));
    /* No notification: no OS runs yet to care about a change. */
    vmgenid_write_guest(s);
}

static int vmgenid_pre_save(void *opaque)
{
    VmGenIdState *s = opaque;

    s->stream_guid = s->guid;
    return 0;
}

static int vmgenid_pre_load(void *opaque)
{
    VmGenIdState *s = opaque;

    s->stream_has_guid = false;
    return 0;
}

/*
 * A state is being loaded, and with it the page as the saved guest had it.
 * A live migration continues the same generation; a snapshot load runs the
 * guest again from an earlier state, which "auto" answers with a new GUID.
 * QEMU cannot tell a restore from a file from a live migration: management
 * that wants a new generation there passes a new guid= or sets one.
 */
static int vmgenid_post_load(void *opaque, int version_id)
{
    VmGenIdState *s = opaque;
    bool incoming = runstate_check(RUN_STATE_INMIGRATE);
    QemuUUID guid = s->guid;

    if (s->stream_has_guid) {
        /* What the guest saw: compare with it, and keep it if ours is auto. */
        if (s->guid_auto && incoming) {
            guid = s->stream_guid;
        }
        s->guid = s->stream_guid;
    }
    if (s->guid_auto && !incoming) {
        qemu_uuid_generate(&guid);
    }
    /* Without the GUID in the stream, assume the guest saw another one. */
    vmgenid_change(s, &guid,
                   incoming ? VM_GENERATION_ID_REASON_MIGRATION
                            : VM_GENERATION_ID_REASON_SNAPSHOT_LOAD,
                   !s->stream_has_guid);
    return 0;
}

static bool vmgenid_guid_needed(void *opaque)
{
    VmGenIdState *s = opaque;

    return s->migrate_guid;
}

static int vmgenid_guid_post_load(void *opaque, int version_id)
{
    VmGenIdState *s = opaque;

    s->stream_has_guid = true;
    return 0;
}

/*
 * The GUID the guest has, so that the destination keeps it where it should
 * and notifies the guest only of a real change. QEMU 10.2 and older do not
 * know this subsection: migrate to them with migrate-guid=off.
 */
static const VMStateDescription vmstate_vmgenid_guid = {
    .name = TYPE_VMGENID "/guid",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = vmgenid_guid_needed,
    .post_load = vmgenid_guid_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8_ARRAY(stream_guid.data, VmGenIdState, sizeof(QemuUUID)),
        VMSTATE_END_OF_LIST()
    },
};

/* Byte for byte the section upstream QEMU uses, so either can migrate. */
static const VMStateDescription vmstate_vmgenid = {
    .name = TYPE_VMGENID,
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = vmgenid_pre_save,
    .pre_load = vmgenid_pre_load,
    .post_load = vmgenid_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8_ARRAY(addr_le, VmGenIdState, sizeof(uint64_t)),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_vmgenid_guid,
        NULL
    },
};

/* A reset runs the firmware again, which allocates the page anew. */
static void vmgenid_reset_hold(Object *obj, ResetType type)
{
    VmGenIdState *s = VMGENID(obj);

    memset(s->addr_le, 0, sizeof(s->addr_le));
}

/*
 * Accept exactly xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (any case) or "auto";
 * qemu_uuid_parse() alone lets some malformed strings through.
 */
static bool vmgenid_parse_guid(const char *str, QemuUUID *guid, bool *is_auto,
                               Error **errp)
{
    ERRP_GUARD();
    size_t i;

    if (!strcmp(str, "auto")) {
        qemu_uuid_generate(guid);
        *is_auto = true;
        return true;
    }
    for (i = 0; str[i]; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? str[i] != '-' : !g_ascii_isxdigit(str[i])) {
            break;
        }
    }
    if (i != 36 || str[i] || qemu_uuid_parse(str, guid) < 0) {
        error_setg(errp, "'%s' is not a valid GUID", str);
        error_append_hint(errp, "Use the form "
                          "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hex digits"
                          " x, or 'auto' for a random one.\n");
        return false;
    }
    *is_auto = false;
    return true;
}

static char *vmgenid_get_guid(Object *obj, Error **errp)
{
    return qemu_uuid_unparse_strdup(&VMGENID(obj)->guid);
}

/*
 * Before realize this sets the policy: a fixed GUID or "auto". Afterwards
 * it is set-vm-generation-id: a new value, "auto" drawing a random one.
 */
static void vmgenid_set_guid(Object *obj, const char *value, Error **errp)
{
    VmGenIdState *s = VMGENID(obj);
    QemuUUID guid;
    bool is_auto;

    if (!DEVICE(obj)->realized) {
        vmgenid_parse_guid(value, &s->guid, &s->guid_auto, errp);
        return;
    }
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        /* The incoming state would overwrite it: set it afterwards. */
        error_setg(errp, "the generation ID cannot be set during an incoming"
                   " migration");
        return;
    }
    if (vmgenid_parse_guid(value, &guid, &is_auto, errp)) {
        vmgenid_change(s, &guid, VM_GENERATION_ID_REASON_SET, false);
    }
}

/*
 * Refuse machines where the guest could never see the device: it needs
 * ACPI tables, a GPE to signal changes, and fw_cfg DMA for the firmware to
 * report the GUID's address.
 */
static bool vmgenid_machine_ok(Error **errp)
{
    g_autofree char *acpi = NULL;
    bool ambiguous;

    /* Machines that build ACPI tables have an OnOffAuto "acpi" property. */
    if (object_property_find(qdev_get_machine(), "acpi")) {
        acpi = object_property_get_str(qdev_get_machine(), "acpi", NULL);
    }
    if (!g_strcmp0(acpi, "off")) {
        error_setg(errp, "%s needs ACPI, which is disabled (acpi=off)",
                   TYPE_VMGENID);
        return false;
    }
    if (!object_resolve_path_type("", TYPE_ACPI_DEVICE_IF, &ambiguous) &&
        !ambiguous) {
        error_setg(errp, "%s needs an ACPI power management device, which"
                   " this machine does not have", TYPE_VMGENID);
        return false;
    }
    if (!bios_linker_loader_can_write_pointer()) {
        error_setg(errp, "%s needs fw_cfg with DMA, which this machine does"
                   " not have or has disabled", TYPE_VMGENID);
        return false;
    }
    return true;
}

static void vmgenid_realize(DeviceState *dev, Error **errp)
{
    VmGenIdState *s = VMGENID(dev);
    FWCfgState *fw_cfg;

    if (!vmgenid_find()) {
        error_setg(errp, "only one %s device is allowed", TYPE_VMGENID);
        return;
    }
    if (!vmgenid_machine_ok(errp)) {
        return;
    }

    s->page = g_array_sized_new(false, true, 1, VMGENID_FW_CFG_SIZE);
    g_array_set_size(s->page, VMGENID_FW_CFG_SIZE);
    vmgenid_update_page(s);

    fw_cfg = fw_cfg_find();
    fw_cfg_add_file(fw_cfg, VMGENID_GUID_FW_CFG_FILE, s->page->data,
                    VMGENID_FW_CFG_SIZE);
    fw_cfg_add_file_callback(fw_cfg, VMGENID_ADDR_FW_CFG_FILE, NULL,
                             vmgenid_addr_written, s, s->addr_le,
                             sizeof(s->addr_le), false);
}

static void vmgenid_instance_init(Object *obj)
{
    VmGenIdState *s = VMGENID(obj);

    qemu_uuid_generate(&s->guid);
    s->guid_auto = true;
}

static const Property vmgenid_properties[] = {
    DEFINE_PROP_BOOL("migrate-guid", VmGenIdState, migrate_guid, true),
};

static void vmgenid_class_init(ObjectClass *klass, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    dc->desc = "VM Generation ID";
    device_class_set_props(dc, vmgenid_properties);
    dc->realize = vmgenid_realize;
    dc->vmsd = &vmstate_vmgenid;
    rc->phases.hold = vmgenid_reset_hold;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);

    object_class_property_add_str(klass, "guid", vmgenid_get_guid,
                                  vmgenid_set_guid);
    object_class_property_set_description(klass, "guid",
        "The generation ID: a GUID, or 'auto' for a random one");
}

static const TypeInfo vmgenid_info = {
    .name = TYPE_VMGENID,
    .parent = TYPE_DYNAMIC_SYS_BUS_DEVICE,
    .instance_size = sizeof(VmGenIdState),
    .instance_init = vmgenid_instance_init,
    .class_init = vmgenid_class_init,
};

static void vmgenid_register_types(void)
{
    type_register_static(&vmgenid_info);
}

type_init(vmgenid_register_types)

GuidInfo *qmp_query_vm_generation_id(Error **errp)
{
    VmGenIdState *s = vmgenid_find();
    GuidInfo *info;

    if (!s) {
        error_setg(errp, "there is no %s device", TYPE_VMGENID);
        return NULL;
    }
    info = g_new0(GuidInfo, 1);
    info->guid = qemu_uuid_unparse_strdup(&s->guid);
    return info;
}

void qmp_set_vm_generation_id(const char *guid, Error **errp)
{
    VmGenIdState *s = vmgenid_find();

    if (!s) {
        error_setg(errp, "there is no %s device", TYPE_VMGENID);
        return;
    }
    object_property_set_str(OBJECT(s), "guid", guid, errp);
}
