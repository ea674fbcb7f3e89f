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
#include "hw/acpi/vmgenid.h"
#include "hw/boards.h"
#include "hw/irq.h"
#include "hw/nvram/fw_cfg.h"
#include "migration/cpr.h"
#include "migration/vmstate.h"
#include "system/address-spaces.h"
#include "system/hostmem.h"
#include "system/numa.h"
#include "system/runstate.h"
#include "trace.h"

/* How much of a rejected GUID string an error message quotes. */
#define VMGENID_QUOTE_MAX 40

/* Other channels of the generation, told along with vmgenid. */
static NotifierList vmgenid_change_notifiers =
    NOTIFIER_LIST_INITIALIZER(vmgenid_change_notifiers);

void vmgenid_add_acpi_table(GArray *table_offsets, GArray *table_data,
                            BIOSLinker *linker, const char *oem_id)
{
    AcpiTable table = { .sig = "SSDT", .rev = 1,
                        .oem_id = oem_id, .oem_table_id = "VMGENID" };
    Aml *ssdt, *scope, *dev, *method, *cond, *pkg;
    VmGenIdState *s = vmgenid_find();
    uint32_t vgia_offset;

    /* Without the firmware's page the guest finds no GUID through ACPI. */
    if (!s || !s->page) {
        return;
    }
    acpi_add_table(table_offsets, table_data);
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

    /* Otherwise the machine's own AML handles its event. */
    if (s->acpi_gpe) {
        scope = aml_scope("\\_GPE");
        method = aml_method("_E05", 0, AML_NOTSERIALIZED);
        aml_append(method, vmgenid_build_notify());
        aml_append(scope, method);
        aml_append(ssdt, scope);
    }

    g_array_append_vals(table_data, ssdt->buf->data, ssdt->buf->len);

    /*
     * The same commands, in the same order, as every QEMU since 2.9 gives
     * the firmware, so that the loader script is the same bytes.
     */
    bios_linker_loader_alloc(linker, VMGENID_GUID_FW_CFG_FILE, s->page,
                             VMGENID_FW_CFG_SIZE, false);
    /* QEMU is told the address of the GUID itself, not of the page. */
    bios_linker_loader_write_pointer(linker, VMGENID_ADDR_FW_CFG_FILE, 0,
                                     sizeof(s->addr_file),
                                     VMGENID_GUID_FW_CFG_FILE,
                                     VMGENID_GUID_OFFSET);
    bios_linker_loader_add_pointer(linker, ACPI_BUILD_TABLE_FILE,
                                   vgia_offset, sizeof(uint32_t),
                                   VMGENID_GUID_FW_CFG_FILE, 0);

    acpi_table_end(linker, &table);
    free_aml_allocator();
}

/* The GUID as the guest reads it: the first three fields little endian. */
static QemuUUID vmgenid_guest_order(const QemuUUID *guid)
{
    return qemu_uuid_bswap(*guid);
}

/* Where the GUID is in guest memory; 0 until the firmware has told us. */
static uint64_t vmgenid_guid_addr(VmGenIdState *s)
{
    return ldq_le_p(s->vmgenid_addr_le);
}

/*
 * Whether @mr, a region that terminates a flat view, is the machine's main
 * RAM or, with NUMA memdevs, one of the backends it is made of.
 */
static bool vmgenid_is_machine_ram(MemoryRegion *mr)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    NumaState *numa = ms->numa_state;
    int i;

    if (mr == ms->ram) {
        return true;
    }
    for (i = 0; numa && i < numa->num_nodes; i++) {
        HostMemoryBackend *backend = numa->nodes[i].node_memdev;

        if (backend && mr == host_memory_backend_get_memory(backend)) {
            return true;
        }
    }
    return false;
}

/* Whether the excluded memory has something enabled at @addr. */
static bool vmgenid_excluded_at(VmGenIdState *s, hwaddr addr)
{
    hwaddr xlat, len = 1;
    MemoryRegion *mr;

    RCU_READ_LOCK_GUARD();
    mr = address_space_translate(&s->excluded, addr, &xlat, &len, false,
                                 MEMTXATTRS_UNSPECIFIED);
    return memory_region_is_ram(mr);
}

/*
 * Whether [@addr, @addr + @len) meets memory the front-end excluded, such
 * as SMRAM, which plain RAM may back while the firmware has it open. Its
 * windows are whole pages, so the two ends of a GUID tell. Only in the
 * excluded memory's own address space: it may be a subregion of others,
 * as of KVM's SMM address space, which shows all of system memory too.
 */
static bool vmgenid_in_excluded(VmGenIdState *s, uint64_t addr, uint64_t len)
{
    return s->excluded_mr && (vmgenid_excluded_at(s, addr) ||
                              vmgenid_excluded_at(s, addr + len - 1));
}

/*
 * The address comes from the guest, which may write anything there. Say
 * why the GUID cannot go there, or return NULL if all of its 16 bytes lie
 * in one piece of the machine's ordinary, writable RAM.
 */
static const char *vmgenid_addr_problem(VmGenIdState *s, uint64_t addr)
{
    const uint64_t len = sizeof(QemuUUID);
    MemoryRegionSection sec;
    const char *why = NULL;

    if (addr & 7) {
        return "is not 8-byte aligned";
    }
    if (addr > UINT64_MAX - len) {
        return "is out of range";
    }
    sec = memory_region_find(get_system_memory(), addr, len);
    if (!sec.mr) {
        return "is not in the machine's RAM";
    }
    if (sec.offset_within_address_space != addr ||
        !vmgenid_is_machine_ram(sec.mr) || !memory_region_is_ram(sec.mr)) {
        /* Also ROM, device RAM such as a VGA BAR, memory devices. */
        why = "is not in the machine's RAM";
    } else if (int128_lt(sec.size, int128_make64(len))) {
        why = "runs past the end of a RAM region";
    } else if (sec.readonly || memory_region_is_rom(sec.mr)) {
        /* E.g. BIOS shadow RAM that the PAM registers made read-only. */
        why = "is in read-only memory";
    } else if (vmgenid_in_excluded(s, addr, len)) {
        why = s->excluded_why;
    } else if (memory_region_has_ram_discard_manager(sec.mr) &&
               !ram_discard_manager_is_populated(
                   memory_region_get_ram_discard_manager(sec.mr), &sec)) {
        why = "is in memory that is not plugged";
    }
    memory_region_unref(sec.mr);
    return why;
}

/* Check an address the guest reported; log and trace a refusal. */
static bool vmgenid_addr_ok(VmGenIdState *s, uint64_t addr)
{
    const char *why = vmgenid_addr_problem(s, addr);

    if (why) {
        trace_vmgenid_addr_refused(addr, why);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: GUID address 0x%" PRIx64 " %s; not writing it\n",
                      TYPE_VMGENID, addr, why);
    }
    return !why;
}

/*
 * The fw_cfg copy of the page, which the firmware loads after a reset:
 * like guest memory, it holds the GUID the guest was told of.
 */
static void vmgenid_update_blob(VmGenIdState *s)
{
    QemuUUID le = vmgenid_guest_order(&s->told);

    if (s->page) {
        memcpy(s->page->data + VMGENID_GUID_OFFSET, &le, sizeof(le));
    }
}

/*
 * Write the GUID the guest was told of where the firmware put the page.
 * Return whether it landed: false before the firmware placed the page, or
 * if the place is not (or no longer) usable.
 */
static bool vmgenid_write_page(VmGenIdState *s)
{
    uint64_t addr = vmgenid_guid_addr(s);
    QemuUUID le = vmgenid_guest_order(&s->told);

    if (!addr || !vmgenid_addr_ok(s, addr)) {
        return false;
    }
    if (trace_event_get_state_backends(TRACE_VMGENID_GUID_WRITE)) {
        g_autofree char *text = qemu_uuid_unparse_strdup(&s->told);

        trace_vmgenid_guid_write(addr, text);
    }
    return address_space_write(&address_space_memory, addr,
                               MEMTXATTRS_UNSPECIFIED,
                               &le, sizeof(le)) == MEMTX_OK;
}

/* The same in QEMU's own page: nobody else writes it, so it lands. */
static bool vmgenid_write_dt(VmGenIdState *s)
{
    QemuUUID le = vmgenid_guest_order(&s->told);

    if (!s->dt) {
        return false;
    }
    memcpy(memory_region_get_ram_ptr(&s->dt_page), &le, sizeof(le));
    memory_region_set_dirty(&s->dt_page, 0, sizeof(le));
    return true;
}

/*
 * QEMU's own page as the guest boots: the first GUID. Not on a CPR
 * destination, whose page is the source's memory while the source still
 * runs; it arrives holding what that guest was told of.
 */
static void vmgenid_boot_dt(VmGenIdState *s)
{
    if (!cpr_is_incoming()) {
        vmgenid_write_dt(s);
    }
}

/*
 * The GUID that a loaded state left in guest memory: what the saved guest
 * was told of last. Only compared with ours, never reported or adopted:
 * the guest may have written anything there.
 */
static bool vmgenid_read_guest(VmGenIdState *s, QemuUUID *guid)
{
    uint64_t addr = vmgenid_guid_addr(s);
    QemuUUID le;

    if (addr && !vmgenid_addr_problem(s, addr)) {
        if (address_space_read(&address_space_memory, addr,
                               MEMTXATTRS_UNSPECIFIED,
                               &le, sizeof(le)) != MEMTX_OK) {
            return false;
        }
    } else if (s->dt) {
        memcpy(&le, memory_region_get_ram_ptr(&s->dt_page), sizeof(le));
    } else {
        return false;
    }
    *guid = vmgenid_guest_order(&le);
    return true;
}

/*
 * Tell the guest of the current GUID: write it where the guest reads it,
 * let the other channels of the generation update theirs (they notify
 * the guest of their own), then raise the notification of each place the
 * GUID landed in. Through ACPI the machine's ACPI device raises the event
 * that makes the guest notify \_SB.VGEN (GPE 5, or a Generic Event
 * Device's event); with a devicetree, the "microsoft,vmgenid" node's
 * interrupt. Management hears of it too.
 */
static void vmgenid_tell(VmGenIdState *s)
{
    g_autofree char *text = qemu_uuid_unparse_strdup(&s->guid);
    VmGenIdChange change = { &s->told, false };
    bool acpi, dt;

    s->told = s->guid;
    s->told_known = true;
    vmgenid_update_blob(s);
    acpi = s->acpi_dev && vmgenid_write_page(s);
    dt = vmgenid_write_dt(s);
    notifier_list_notify(&vmgenid_change_notifiers, &change);
    if (acpi) {
        trace_vmgenid_notify("ACPI");
        acpi_send_event(DEVICE(s->acpi_dev), ACPI_VMGENID_CHANGE_STATUS);
    }
    if (dt) {
        trace_vmgenid_notify("interrupt");
        qemu_irq_pulse(s->irq);
    }
    change.notify = true;
    notifier_list_notify(&vmgenid_change_notifiers, &change);
    qapi_event_send_vm_generation_id_changed(text, s->reason);
}

void vmgenid_add_change_notifier(Notifier *n)
{
    notifier_list_add(&vmgenid_change_notifiers, n);
}

/* A GUID the guest was not told of yet: see vmgenid_update(). */
bool vmgenid_change_pending(void)
{
    VmGenIdState *s = vmgenid_find();

    return s && s->set_up &&
           !(s->told_known && qemu_uuid_is_equal(&s->guid, &s->told));
}

/*
 * The one place that decides: when the guest runs (vCPUs running, not
 * asleep) with a GUID other than the one it was last told of, tell it.
 * Everything else only records; so guest memory only ever holds a GUID
 * the guest has been told of.
 */
static void vmgenid_update(VmGenIdState *s)
{
    if (!runstate_check(RUN_STATE_RUNNING) || s->asleep) {
        return;
    }
    if (s->told_known && qemu_uuid_is_equal(&s->guid, &s->told)) {
        return;
    }
    vmgenid_tell(s);
}

/* Make @guid the generation ID; the guest hears of it when it runs. */
static void vmgenid_set(VmGenIdState *s, const QemuUUID *guid,
                        VmGenerationIdReason reason)
{
    g_autofree char *text = qemu_uuid_unparse_strdup(guid);

    trace_vmgenid_set(text, VmGenerationIdReason_str(reason));
    s->guid = *guid;
    s->reason = reason;
    vmgenid_update(s);
}

static void vmgenid_vm_state_change(void *opaque, bool running,
                                    RunState state)
{
    VmGenIdState *s = opaque;

    /*
     * Also a guest loaded in S3: it sleeps, though no suspend was seen.
     * Running, it is awake: after a reset during S3 the firmware resumed
     * it.
     */
    if (state == RUN_STATE_SUSPENDED) {
        s->asleep = true;
    } else if (running && state == RUN_STATE_RUNNING) {
        s->asleep = false;
    }
    if (running) {
        vmgenid_update(s);
    }
}

static void vmgenid_suspended(Notifier *n, void *data)
{
    VmGenIdState *s = container_of(n, VmGenIdState, suspend_notifier);

    s->asleep = true;
}

/*
 * Called after the wakeup reset, which cleared the GPE status: a change
 * made while the guest slept is announced now.
 */
static void vmgenid_woken(Notifier *n, void *data)
{
    VmGenIdState *s = container_of(n, VmGenIdState, wakeup_notifier);

    s->asleep = false;
    vmgenid_update(s);
}

/*
 * fw_cfg write callback: the firmware reports where it put the GUID. Only
 * a complete, usable address is taken; anything else leaves the device
 * without one, so that nothing is written.
 */
static void vmgenid_addr_written(void *opaque, off_t start, size_t len)
{
    VmGenIdState *s = opaque;
    uint64_t addr = ldq_le_p(s->addr_file);

    trace_vmgenid_addr_written(addr, len, start);
    memset(s->vmgenid_addr_le, 0, sizeof(s->vmgenid_addr_le));
    if (start != 0 || len != sizeof(s->addr_file)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: partial write of %s (%zu bytes at offset %"
                      PRId64 "); ignoring it\n", TYPE_VMGENID,
                      VMGENID_ADDR_FW_CFG_FILE, len, (int64_t)start);
        return;
    }
    if (addr && vmgenid_addr_ok(s, addr)) {
        stq_le_p(s->vmgenid_addr_le, addr);
        /*
         * No notification: the firmware runs, no OS yet. Unless a loaded
         * state left QEMU not knowing what the guest was told of; then the
         * guest is told when it runs, and the page filled then.
         */
        if (s->told_known) {
            vmgenid_write_page(s);
        }
    }
}

/*
 * A state was loaded: guest memory is the saved guest's, and holds what
 * that guest was told of last. QEMU cannot tell a live migration from one
 * more restore of a saved stream, so "auto" draws a new GUID for every
 * copy; continuity across a live migration is management's to ask for, by
 * giving the destination the source's GUID. That holds on memory shared
 * with the source (x-ignore-shared, CPR) too: a memory file can be
 * restored more than once, and the only copy of the source's GUID there
 * is one the guest can overwrite. Nothing is written now: the guest is
 * told when it runs, which a failed incoming migration never does, and a
 * source that resumes after one finds its memory as it left it.
 */
static int vmgenid_post_load(void *opaque, int version_id)
{
    VmGenIdState *s = opaque;
    uint64_t addr = vmgenid_guid_addr(s);
    QemuUUID guid = s->guid;

    if (addr && !vmgenid_addr_ok(s, addr)) {
        memset(s->vmgenid_addr_le, 0, sizeof(s->vmgenid_addr_le));
    }
    memcpy(s->addr_file, s->vmgenid_addr_le, sizeof(s->addr_file));
    /* Whether the loaded guest sleeps is known when it runs or resets. */
    s->asleep = false;
    s->told_known = vmgenid_read_guest(s, &s->told);
    trace_vmgenid_post_load(s->told_known);
    if (s->guid_auto) {
        qemu_uuid_generate(&guid);
    }
    vmgenid_update_blob(s);
    vmgenid_set(s, &guid,
                runstate_check(RUN_STATE_INMIGRATE)
                ? VM_GENERATION_ID_REASON_MIGRATION
                : VM_GENERATION_ID_REASON_SNAPSHOT_LOAD);
    return 0;
}

/*
 * Byte for byte the section every QEMU since 2.9 uses, with the field
 * named as there, so that tools describing the stream see no difference.
 */
static const VMStateDescription vmstate_vmgenid = {
    .name = TYPE_VMGENID,
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = vmgenid_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8_ARRAY(vmgenid_addr_le, VmGenIdState, sizeof(uint64_t)),
        VMSTATE_END_OF_LIST()
    },
};

/*
 * A reset runs the firmware again, which allocates the page anew: until
 * it reports it, nothing is written. The guest boots afresh, awake,
 * reading the current GUID: nothing is pending.
 *
 * Not so the wakeup from S3, nor a reset while the guest sleeps in S3:
 * the firmware finds the S3 resume flag (on x86 in CMOS, which a reset
 * keeps) and resumes the guest from its memory, where the page still is.
 * For the guest both are a wakeup, and a change made while it slept is
 * still to be told. It sleeps until it runs again: a second reset before
 * that finds the flag too. QEMU knows a guest stopped in S3, or loaded
 * from a state saved in S3 (whose global state comes last in the stream).
 */
static void vmgenid_reset_hold(Object *obj, ResetType type)
{
    VmGenIdState *s = VMGENID(obj);

    if (type == RESET_TYPE_WAKEUP) {
        return;
    }
    if (s->asleep || vm_get_suspended()) {
        s->asleep = true;
        return;
    }
    memset(s->vmgenid_addr_le, 0, sizeof(s->vmgenid_addr_le));
    memset(s->addr_file, 0, sizeof(s->addr_file));
    s->told = s->guid;
    s->told_known = true;
    vmgenid_update_blob(s);
    vmgenid_boot_dt(s);
}

/* At most VMGENID_QUOTE_MAX printable characters of @str, for messages. */
static char *vmgenid_quote(const char *str)
{
    size_t len = strnlen(str, VMGENID_QUOTE_MAX + 1);
    char *quote = g_strndup(str, MIN(len, VMGENID_QUOTE_MAX));
    char *p;

    for (p = quote; *p; p++) {
        if (!g_ascii_isprint(*p)) {
            *p = '?';
        }
    }
    if (len > VMGENID_QUOTE_MAX) {
        char *longer = g_strconcat(quote, "...", NULL);

        g_free(quote);
        quote = longer;
    }
    return quote;
}

/* A GUID in 8-4-4-4-12 form (either case), or "auto" for a random one. */
static bool vmgenid_parse_guid(const char *str, QemuUUID *guid, bool *is_auto,
                               Error **errp)
{
    if (!strcmp(str, "auto")) {
        qemu_uuid_generate(guid);
        *is_auto = true;
        return true;
    }
    if (qemu_uuid_parse(str, guid) < 0) {
        g_autofree char *quote = vmgenid_quote(str);

        error_setg(errp, "'%s' is not a valid GUID", quote);
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

    if (!s->set_up) {
        if (vmgenid_parse_guid(value, &guid, &is_auto, errp)) {
            s->guid = guid;
            s->guid_auto = is_auto;
        }
        return;
    }
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        /* The incoming state would overwrite it: set it afterwards. */
        error_setg(errp, "the generation ID cannot be set during an incoming"
                   " migration");
        return;
    }
    if (vmgenid_parse_guid(value, &guid, &is_auto, errp)) {
        vmgenid_set(s, &guid, VM_GENERATION_ID_REASON_SET);
    }
}

void vmgenid_use_acpi(VmGenIdState *s, AcpiDeviceIf *acpi_dev, bool gpe)
{
    s->acpi_dev = acpi_dev;
    s->acpi_gpe = gpe;
}

void vmgenid_use_dt(VmGenIdState *s)
{
    s->dt = true;
}

void vmgenid_exclude(VmGenIdState *s, MemoryRegion *mr, const char *why)
{
    s->excluded_mr = mr;
    s->excluded_why = why;
}

/* The excluded memory's own view, which shows what of it is enabled. */
static void vmgenid_init_excluded(VmGenIdState *s)
{
    if (s->excluded_mr) {
        address_space_init(&s->excluded, s->excluded_mr, "vmgenid-excluded");
    }
}

/*
 * The firmware's page, and the fw_cfg files by which it is placed. It
 * reports the GUID's address by the linker/loader's WRITE_POINTER, which
 * needs fw_cfg DMA.
 */
static bool vmgenid_init_acpi(VmGenIdState *s, Error **errp)
{
    FWCfgState *fw_cfg = fw_cfg_find();

    if (!bios_linker_loader_can_write_pointer()) {
        error_setg(errp, "%s needs fw_cfg with DMA, which this machine does"
                   " not have or has disabled", TYPE_VMGENID);
        return false;
    }
    s->page = g_array_sized_new(false, true, 1, VMGENID_FW_CFG_SIZE);
    g_array_set_size(s->page, VMGENID_FW_CFG_SIZE);
    vmgenid_update_blob(s);
    fw_cfg_add_file(fw_cfg, VMGENID_GUID_FW_CFG_FILE, s->page->data,
                    VMGENID_FW_CFG_SIZE);
    fw_cfg_add_file_callback(fw_cfg, VMGENID_ADDR_FW_CFG_FILE, NULL,
                             vmgenid_addr_written, s, s->addr_file,
                             sizeof(s->addr_file), false);
    return true;
}

/* QEMU's own page, read-only for the guest, which reads it as memory. */
static bool vmgenid_init_dt(VmGenIdState *s, Error **errp)
{
    if (!memory_region_init_rom(&s->dt_page, OBJECT(s), "vmgenid.guid",
                                VMGENID_DT_SIZE, errp)) {
        return false;
    }
    sysbus_init_mmio(SYS_BUS_DEVICE(s), &s->dt_page);
    sysbus_init_irq(SYS_BUS_DEVICE(s), &s->irq);
    return true;
}

/*
 * Realized once for the machine's lifetime: fw_cfg files cannot be taken
 * back. QEMU gives a device no way to refuse qom-set of realized=false, so
 * vmgenid_unrealize() keeps everything working, and realizing it again
 * finds it set up.
 */
static void vmgenid_realize(DeviceState *dev, Error **errp)
{
    VmGenIdState *s = VMGENID(dev);

    if (s->set_up) {
        /* qdev registers the section again, as at the first realize. */
        vmstate_unregister(VMSTATE_IF(dev), &vmstate_vmgenid, s);
        return;
    }
    if (!vmgenid_find()) {
        error_setg(errp, "only one %s device is allowed", TYPE_VMGENID);
        return;
    }
    /* QEMU writes the GUID into guest memory, which such guests encrypt. */
    if (MACHINE(qdev_get_machine())->cgs) {
        error_setg(errp, "%s cannot work with confidential guest support:"
                   " QEMU cannot write into the guest's private memory",
                   TYPE_VMGENID);
        return;
    }
    if (!s->acpi_dev && !s->dt) {
        error_setg(errp, "this machine gives the guest no way to find the"
                   " %s GUID", TYPE_VMGENID);
        return;
    }
    /* fw_cfg keeps pointers into the device: register its files last. */
    if (s->dt && !vmgenid_init_dt(s, errp)) {
        return;
    }
    if (s->acpi_dev && !vmgenid_init_acpi(s, errp)) {
        return;
    }

    /* The first generation is the one the guest boots with. */
    s->told = s->guid;
    s->told_known = true;
    vmgenid_update_blob(s);
    vmgenid_boot_dt(s);
    vmgenid_init_excluded(s);

    qemu_add_vm_change_state_handler(vmgenid_vm_state_change, s);
    s->suspend_notifier.notify = vmgenid_suspended;
    qemu_register_suspend_notifier(&s->suspend_notifier);
    s->wakeup_notifier.notify = vmgenid_woken;
    qemu_register_wakeup_notifier(&s->wakeup_notifier);

    /* The guest would keep a GUID that no longer changes. */
    error_setg(&s->unplug_blocker, "the %s device cannot be removed",
               TYPE_VMGENID);
    qdev_add_unplug_blocker(dev, s->unplug_blocker);
    s->set_up = true;
}

/*
 * qom-set of realized=false, after qdev dropped the migration section:
 * the device keeps working, and its state must keep travelling.
 */
static void vmgenid_unrealize(DeviceState *dev)
{
    vmstate_register(VMSTATE_IF(dev), VMSTATE_INSTANCE_ID_ANY,
                     &vmstate_vmgenid, dev);
}

static void vmgenid_instance_init(Object *obj)
{
    VmGenIdState *s = VMGENID(obj);

    qemu_uuid_generate(&s->guid);
    s->guid_auto = true;
}

static void vmgenid_class_init(ObjectClass *klass, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    dc->desc = "VM Generation ID";
    dc->realize = vmgenid_realize;
    dc->unrealize = vmgenid_unrealize;
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
