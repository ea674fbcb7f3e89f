/*
 * QTest for the VM Generation ID device: how its cases drive QEMU
 *
 * Starting QEMU (one way, vm_start()), and what a guest and its firmware
 * do and see: the GUID in memory, the notification each machine raises,
 * fw_cfg through DMA, PCI configuration space. vmgenid-test.c and
 * vmgenid-seq.c hold the cases.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/uuid.h"
#include "qobject/qdict.h"
#include "vmgenid-test.h"
#include "standard-headers/linux/qemu_fw_cfg.h"
#include "boot-sector.h"

#define EVENT       "VM_GENERATION_ID_CHANGED"
#define TIMEOUT     60          /* seconds of TCG to wait for anything */

#define GPE_VMGENID       0x20  /* bit 5 of the first GPE0 status byte */
#define GPE_VMCLOCK       0x100 /* GPE 8: bit 0 of the second */
#define GED_VMGENID_EVT   0x40
#define GED_VMCLOCK_EVT   0x80
#define MICROVM_GED_ESEL  0x0fea00000ULL   /* event selector, read clears */
#define VIRT_GED_ESEL     0x09080000
#define VIRT_INTID        (112 + 32)  /* the platform bus' first SPI */
#define VIRT_CLOCK_INTID  (10 + 32)   /* vmclock's SPI */
#define VIRT_FW_CFG       0x09020000
#define FW_CFG_IO         0x510

char *tmp_dir;
char *halt_bios;
char boot_disk[] = "tests/vmgenid-test-disk-XXXXXX";

static bool on_event(QTestState *qts, const char *name, QDict *ev,
                     void *opaque)
{
    Vm *vm = opaque;

    if (!strcmp(name, EVENT)) {
        QDict *data = qdict_get_qdict(ev, "data");

        vm->changes++;
        g_free(vm->change_guid);
        g_free(vm->change_reason);
        vm->change_guid = g_strdup(qdict_get_str(data, "guid"));
        vm->change_reason = g_strdup(qdict_get_str(data, "reason"));
    } else {
        g_hash_table_add(vm->seen, g_strdup(name));
    }
    return true;
}

/* The one way these tests start QEMU: under TCG, as @s says. */
Vm *vm_start(const Start *s)
{
    g_autoptr(GString) cmd = g_string_new("");
    const Machine *m = s->m;
    Vm *vm = g_new0(Vm, 1);
    static int count;

    g_string_printf(cmd, "-machine %s %s -accel tcg -nodefaults -net none"
                    " -m %s", s->type ?: m->name, m->args, s->mem ?: "128M");
    if (s->disk && s->boot != BOOT_UEFI) {
        g_string_append_printf(cmd, " -drive if=none,id=disk,format=qcow2,"
                               "file=%s,file.locking=off", s->disk);
    }
    switch (s->boot) {
    case BOOT_BIOS:
        if (m->kind == PC && !s->disk) {
            g_string_append_printf(cmd, " -drive if=none,id=disk,"
                                   "format=raw,snapshot=on,file=%s", boot_disk);
        }
        if (m->kind == PC) {
            g_string_append(cmd, " -device ide-hd,drive=disk");
        } else if (m->kind == MICROVM) {
            /* SeaBIOS finds nothing to boot: let it wait, not reboot. */
            vm->bios_log = g_strdup_printf("%s/bios-%d.log", tmp_dir,
                                           count++);
            g_string_append_printf(cmd, " -boot reboot-timeout=-1"
                                   " -chardev file,id=bios,path=%s"
                                   " -device isa-debugcon,iobase=0x402,"
                                   "chardev=bios", vm->bios_log);
        }
        break;
    case BOOT_HALT:
        g_string_append_printf(cmd, " -bios %s", halt_bios);
        break;
    case BOOT_UEFI:
        g_string_append_printf(cmd,
            " -drive if=pflash,format=raw,file=%s,readonly=on"
            " -drive if=pflash,format=raw,file=%s,snapshot=on -cdrom %s",
            s->code, s->vars, s->disk);
        break;
    case BOOT_NONE:
        break;
    }
    g_string_append_printf(cmd, " %s", s->args ?: "");
    vm->m = m;
    vm->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    vm->qts = qtest_init_ext(s->var ?: "QTEST_QEMU_BINARY", cmd->str, NULL,
                             !s->later);
    qtest_qmp_set_event_callback(vm->qts, on_event, vm);
    return vm;
}

void vm_quit(Vm *vm)
{
    qtest_quit(vm->qts);
    if (vm->bios_log) {
        unlink(vm->bios_log);
    }
    g_hash_table_destroy(vm->seen);
    g_free(vm->bios_log);
    g_free(vm->change_guid);
    g_free(vm->change_reason);
    g_free(vm);
}

/* The GUID in guest memory at @addr, in its text form. */
char *guest_guid(QTestState *qts, uint64_t addr)
{
    QemuUUID le;

    qtest_memread(qts, addr, &le, sizeof(le));
    le = qemu_uuid_bswap(le);
    return qemu_uuid_unparse_strdup(&le);
}

/* query-vm-generation-id, info vm-generation-id and the property agree. */
char *qemu_guid(Vm *vm)
{
    QDict *rsp = qtest_qmp(vm->qts, "{'execute': 'query-vm-generation-id'}");
    char *guid = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "return"),
                                        "guid"));
    g_autofree char *hmp = qtest_hmp(vm->qts, "info vm-generation-id");

    qobject_unref(rsp);
    rsp = qtest_qmp(vm->qts, "{'execute': 'qom-get', 'arguments':"
                    " {'path': '" VG "', 'property': 'guid'}}");
    g_assert_cmpstr(g_strchomp(hmp), ==, guid);
    g_assert_cmpstr(qdict_get_str(rsp, "return"), ==, guid);
    qobject_unref(rsp);
    return guid;
}

/*
 * Poll @vm for up to TIMEOUT seconds: with @event, until that event came
 * (NULL if it did not); else with @status, until query-status says
 * another; else until query-migrate says "completed" or "failed".
 */
char *vm_wait(Vm *vm, const char *event, const char *status)
{
    int i;

    for (i = 0; i < TIMEOUT * 100; i++) {
        QDict *rsp = qtest_qmp(vm->qts, event || status
                               ? "{'execute': 'query-status'}"
                               : "{'execute': 'query-migrate'}");
        const char *now = qdict_get_try_str(qdict_get_qdict(rsp, "return"),
                                            "status");
        char *done = NULL;

        if (event ? g_hash_table_remove(vm->seen, event)
            : status ? g_strcmp0(now, status)
            : !g_strcmp0(now, "completed") || !g_strcmp0(now, "failed")) {
            done = g_strdup(event ?: now);
        }
        qobject_unref(rsp);
        if (done) {
            return done;
        }
        g_usleep(10 * 1000);
    }
    return event ? NULL : g_strdup("timed out");
}

bool vm_event(Vm *vm, const char *event)
{
    g_autofree char *done = vm_wait(vm, event, NULL);

    return done;
}

char *run_status(Vm *vm)
{
    QDict *rsp = qtest_qmp(vm->qts, "{'execute': 'query-status'}");
    char *status = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "return"),
                                          "status"));

    qobject_unref(rsp);
    return status;
}

/* Configure a devicetree interrupt as the guest does: edge, rising. */
static void virt_spi_edge_one(Vm *vm, int intid)
{
    uint64_t icfgr = VIRT_GICD + 0xc00 + intid / 16 * 4;

    qtest_writel(vm->qts, icfgr, qtest_readl(vm->qts, icfgr) |
                 2u << (intid % 16 * 2));
}

void virt_spi_edge(Vm *vm)
{
    virt_spi_edge_one(vm, VIRT_INTID);
    virt_spi_edge_one(vm, VIRT_CLOCK_INTID);
}

/* Whether interrupt @intid is pending in the GIC; clears it. */
static bool gic_pending(Vm *vm, int intid)
{
    uint64_t ispendr = VIRT_GICD + 0x200 + intid / 32 * 4;
    uint32_t bit = 1u << (intid % 32);
    bool raised = qtest_readl(vm->qts, ispendr) & bit;

    qtest_writel(vm->qts, ispendr + 0x80, bit);       /* GICD_ICPENDR */
    return raised;
}

/* Whether QEMU's own page's interrupt is pending; clears it. */
bool dt_notified(Vm *vm)
{
    return gic_pending(vm, VIRT_INTID);
}

/* Whether the vmclock node's interrupt is pending; clears it. */
bool dt_clock_notified(Vm *vm)
{
    return gic_pending(vm, VIRT_CLOCK_INTID);
}

/*
 * The ACPI notifications the machine raised since the last call (NOTE_*):
 * GPE status bits (cleared by writing them) or the GED's event selector
 * (cleared by reading it).
 */
unsigned acpi_notes(Vm *vm)
{
    uint32_t sel;

    switch (vm->m->kind) {
    case PC:
        /* GPE 5 in the first status byte, GPE 8 in the second */
        sel = qtest_inb(vm->qts, vm->m->gpe0_sts) |
              qtest_inb(vm->qts, vm->m->gpe0_sts + 1) << 8;
        /* All ones: the PM device's I/O is not mapped (see notify_setup) */
        g_assert_cmphex(sel, !=, 0xffff);
        qtest_outb(vm->qts, vm->m->gpe0_sts, sel);
        qtest_outb(vm->qts, vm->m->gpe0_sts + 1, sel >> 8);
        return (sel & GPE_VMGENID ? NOTE_VMGENID : 0) |
               (sel & GPE_VMCLOCK ? NOTE_VMCLOCK : 0);
    case MICROVM:
    case VIRT:
        sel = qtest_readl(vm->qts, vm->m->kind == VIRT ? VIRT_GED_ESEL
                                                       : MICROVM_GED_ESEL);
        return (sel & GED_VMGENID_EVT ? NOTE_VMGENID : 0) |
               (sel & GED_VMCLOCK_EVT ? NOTE_VMCLOCK : 0);
    }
    g_assert_not_reached();
}

bool acpi_notified(Vm *vm)
{
    return acpi_notes(vm) & NOTE_VMGENID;
}

/* The vmclock page: where the machine has it, as the guest reads it. */
uint64_t clock_page(const Machine *m)
{
    return m->kind == VIRT ? VIRT_CLOCK_PAGE : X86_CLOCK_PAGE;
}

void clock_read(Vm *vm, ClockPage *c)
{
    uint64_t page = clock_page(vm->m);

    c->magic = qtest_readl(vm->qts, page);
    c->seq = qtest_readl(vm->qts, page + 12);
    c->marker = qtest_readq(vm->qts, page + 16);
    c->flags = qtest_readq(vm->qts, page + 24);
    c->counter = qtest_readq(vm->qts, page + 104);
}

/*
 * Set up what the notifications need, as firmware and guest would, where
 * no firmware ran: on PC the PM device's I/O base 0x600, enabled (PM1
 * control at 0x604); on virt the interrupts' trigger.
 */
void notify_setup(Vm *vm)
{
    if (vm->m->kind == PC) {
        pci_cfg_write(vm, vm->m->pm_devfn, 0x40, 0x601, 4);
        pci_cfg_write(vm, vm->m->pm_devfn, vm->m->pm_enable_reg,
                      vm->m->pm_enable, 1);
    } else if (vm->m->kind == VIRT) {
        virt_spi_edge(vm);
    }
}

/* How often SeaBIOS on microvm said it has nothing more to do. */
static int bios_done_count(Vm *vm)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) parts = NULL;

    g_file_get_contents(vm->bios_log, &text, NULL, NULL);
    parts = g_strsplit(text ?: "", "No bootable device.", -1);
    return g_strv_length(parts) - 1;
}

/*
 * Wait until the firmware placed the page: SeaBIOS booted the boot sector
 * (pc, q35) or reported that it is done (microvm; until then it uses
 * fw_cfg, which the test must not disturb). On virt, set up the interrupt
 * as the guest would.
 */
void wait_firmware(Vm *vm)
{
    int i;

    switch (vm->m->kind) {
    case PC:
        boot_sector_test(vm->qts);
        break;
    case MICROVM:
        for (i = 0; i < TIMEOUT * 10 && bios_done_count(vm) <= vm->bios_done;
             i++) {
            g_usleep(100 * 1000);
        }
        g_assert_cmpint(bios_done_count(vm), >, vm->bios_done);
        vm->bios_done++;
        break;
    case VIRT:
        virt_spi_edge(vm);
        break;
    }
}

/* --- fw_cfg, as a guest uses it (DMA, at a scratch address) --------- */

static uint64_t dma_scratch(Vm *vm)
{
    return vm->m->ram + 0x400000;
}

/* One DMA operation: @control on @len bytes; the control word after. */
static uint32_t fw_cfg_dma(Vm *vm, uint16_t key, uint32_t control,
                           uint32_t len)
{
    const uint64_t desc = dma_scratch(vm) + 0x1000;
    struct fw_cfg_dma_access access = {
        .control = cpu_to_be32(control | (uint32_t)key << 16),
        .length = cpu_to_be32(len),
        .address = cpu_to_be64(dma_scratch(vm)),
    };

    qtest_memwrite(vm->qts, desc, &access, sizeof(access));
    /* The address register, big endian: the high half, then the low. */
    if (vm->m->kind == VIRT) {
        qtest_writel(vm->qts, VIRT_FW_CFG + 16, cpu_to_be32(desc >> 32));
        qtest_writel(vm->qts, VIRT_FW_CFG + 20, cpu_to_be32(desc));
    } else {
        qtest_outl(vm->qts, FW_CFG_IO + 4, cpu_to_be32(desc >> 32));
        qtest_outl(vm->qts, FW_CFG_IO + 8, cpu_to_be32(desc));
    }
    return be32_to_cpu(qtest_readl(vm->qts, desc));
}

static void fw_cfg_read(Vm *vm, uint16_t key, void *buf, uint32_t len)
{
    g_assert_cmphex(fw_cfg_dma(vm, key, FW_CFG_DMA_CTL_SELECT |
                               FW_CFG_DMA_CTL_READ, len), ==, 0);
    qtest_memread(vm->qts, dma_scratch(vm), buf, len);
}

/* The selector of fw_cfg file @name, 0 if there is none. */
uint16_t fw_cfg_key(Vm *vm, const char *name)
{
    g_autofree struct fw_cfg_file *files = NULL;
    uint32_t count, i;

    fw_cfg_read(vm, FW_CFG_FILE_DIR, &count, sizeof(count));
    count = be32_to_cpu(count);
    files = g_new(struct fw_cfg_file, count + 1);
    /* A big-endian count, then the files. */
    fw_cfg_read(vm, FW_CFG_FILE_DIR, (uint8_t *)(files + 1) - 4,
                4 + count * sizeof(*files));
    for (i = 1; i <= count; i++) {
        if (!strcmp(files[i].name, name)) {
            return be16_to_cpu(files[i].select);
        }
    }
    return 0;
}

/* Write @len bytes of @data to etc/vmgenid_addr, @skip bytes into it. */
uint32_t write_addr_file(Vm *vm, const void *data, size_t len,
                         size_t skip)
{
    uint16_t key = fw_cfg_key(vm, "etc/vmgenid_addr");
    uint32_t ctl = FW_CFG_DMA_CTL_SELECT;

    g_assert_cmpint(key, !=, 0);
    if (skip) {
        g_assert_cmpint(fw_cfg_dma(vm, key, ctl | FW_CFG_DMA_CTL_SKIP, skip),
                        ==, 0);
        key = 0;
        ctl = 0;
    }
    qtest_memwrite(vm->qts, dma_scratch(vm), data, len);
    return fw_cfg_dma(vm, key, ctl | FW_CFG_DMA_CTL_WRITE, len);
}

/* Report the GUID's address as firmware does. */
void report_addr(Vm *vm, uint64_t addr)
{
    uint64_t le = cpu_to_le64(addr);

    g_assert_cmphex(write_addr_file(vm, &le, sizeof(le), 0), ==, 0);
}

/* What etc/vmgenid_addr holds, as firmware would read it back. */
uint64_t addr_file(Vm *vm)
{
    uint16_t key = fw_cfg_key(vm, "etc/vmgenid_addr");
    uint64_t le = 0;

    g_assert_cmpint(key, !=, 0);
    fw_cfg_read(vm, key, &le, sizeof(le));
    return le64_to_cpu(le);
}

/* Configuration space of device @devfn on bus 0, through ports CF8/CFC. */
void pci_cfg_write(Vm *vm, int devfn, uint8_t reg, uint32_t val, int size)
{
    qtest_outl(vm->qts, 0xcf8, 0x80000000 | devfn << 8 | (reg & ~3));
    if (size == 1) {
        qtest_outb(vm->qts, 0xcfc + (reg & 3), val);
    } else {
        qtest_outl(vm->qts, 0xcfc, val);
    }
}

void add_case(const Machine *m, const char *name, const void *data,
              void (*fn)(const void *))
{
    g_autofree char *path = g_strdup_printf("vmgenid/%s%s%s", m ? m->name : "",
                                            m ? "/" : "", name);

    qtest_add_data_func(path, data, fn);
}

/*
 * Firmware that only halts: HLT at the x86 reset vector; on Arm "wfi; b ."
 * at the start of flash (-bios also makes virt build its ACPI tables).
 */
static void make_halt_bios(bool arm)
{
    static const uint8_t wfi_loop[] = {
        0x7f, 0x20, 0x03, 0xd5, 0xff, 0xff, 0xff, 0x17,
    };
    g_autofree uint8_t *hlt = g_malloc(64 * 1024);

    memset(hlt, 0xf4, 64 * 1024);
    halt_bios = g_build_filename(tmp_dir, "halt.bin", NULL);
    g_assert_true(g_file_set_contents(halt_bios,
                                      arm ? (char *)wfi_loop : (char *)hlt,
                                      arm ? sizeof(wfi_loop) : 64 * 1024,
                                      NULL));
}

/* The scratch folder, the halting firmware and, on x86, the boot disk. */
void vm_setup(bool arm)
{
    tmp_dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    make_halt_bios(arm);
    if (!arm) {
        g_assert_cmpint(boot_sector_init(boot_disk), ==, 0);
    }
}

void vm_teardown(bool arm)
{
    if (!arm) {
        boot_sector_cleanup(boot_disk);
    }
    unlink(halt_bios);
    rmdir(tmp_dir);
}
