/*
 * QTest for the VM Generation ID device
 *
 * What a table of cases checks best: real firmware placing the page, the
 * ACPI tables and the devicetree as a guest decodes them, bad input,
 * hostile guest-written addresses, and upstream QEMU at the other end of
 * a migration. The rule for telling the guest, over orders of events, is
 * vmgenid-seq.c's. Every QEMU is started by vm_start().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/uuid.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"
#include "vmgenid-test.h"
#include "standard-headers/linux/qemu_fw_cfg.h"
#include "boot-sector.h"
#include "acpi-utils.h"

/*
 * The error messages the tests expect (ERR_REMOVE is in the header). A
 * startup refusal is QEMU's first line of error output, which must end in
 * ": " and the message; the rest of the line is QEMU's (its name, the
 * option).
 */
#define ERR_BAD_GUID    "' is not a valid GUID"     /* after the quote */
#define ERR_NO_DEVICE   "there is no vmgenid device"
#define ERR_HOTPLUG     "Device 'vmgenid' does not support hotplugging"
#define ERR_ACPI_OFF    "vmgenid needs ACPI, which is disabled (acpi=off)"
#define ERR_NOT_SYSBUS  "Parameter 'driver' expects a dynamic sysbus" \
                        " device type for the machine"

typedef struct {
    const char *name;           /* the case: vmgenid/refused/<name> */
    const char *machine;        /* it needs */
    const char *rom;            /* NULL, or a -bios file of this name */
    const char *args;
    const char *error;
} Refusal;

static const Refusal refusals[] = {
    { "one-only/pc", "pc", NULL, "-M pc -device vmgenid -device vmgenid",
      "only one vmgenid device is allowed" },
    { "one-only/virt", "virt", NULL,
      "-M virt -device vmgenid -device vmgenid",
      "only one vmgenid device is allowed" },
    { "acpi-off/pc", "pc", NULL, "-M pc,acpi=off -device vmgenid",
      ERR_ACPI_OFF },
    { "acpi-off/q35", "q35", NULL, "-M q35,acpi=off -device vmgenid",
      ERR_ACPI_OFF },
    /* Without ACPI microvm's default firmware is qboot: name another. */
    { "acpi-off/microvm", "microvm", "bios.bin",
      "-M microvm,acpi=off -device vmgenid", ERR_ACPI_OFF },
    { "no-fw-cfg-dma", "pc", NULL,
      "-M pc -global fw_cfg_io.dma_enabled=off -device vmgenid",
      "vmgenid needs fw_cfg with DMA, which this machine does not have or"
      " has disabled" },
    /* qboot stops at a WRITE_POINTER command: its name tells it. */
    { "qboot/microvm", "microvm", "qboot.rom", "-M microvm -device vmgenid",
      "vmgenid needs firmware that carries out ACPI WRITE_POINTER"
      " commands, which qboot does not" },
    { "qboot/pc", "pc", "qboot.rom", "-M pc -device vmgenid",
      "vmgenid needs firmware that carries out ACPI WRITE_POINTER"
      " commands, which qboot does not" },
    { "confidential", "q35", NULL, "-M q35,confidential-guest-support=sev0"
      " -object sev-guest,id=sev0,cbitpos=47,reduced-phys-bits=1"
      " -device vmgenid",
      "vmgenid cannot work with confidential guest support: QEMU cannot"
      " write into the guest's private memory" },
    { "isapc", "isapc", NULL, "-M isapc -device vmgenid", ERR_NOT_SYSBUS },
    { "none", "none", NULL, "-M none -device vmgenid", ERR_NOT_SYSBUS },
};

/* What a refused guest-written address logs (-d guest_errors). */
#define LOG_REFUSED     "vmgenid: GUID address 0x%" PRIx64 " %s;" \
                        " not writing it\n"
#define LOG_PARTIAL     "vmgenid: partial write of etc/vmgenid_addr" \
                        " (4 bytes at offset %d); ignoring it\n"
#define NOT_RAM         "is not in the machine's RAM"

#define GUID1 "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87"
#define GUID2 "f2d0a8c6-5b2e-4e7f-9a31-0c4d6e8b7a15"

#define GPE_VMGENID 0x20        /* bit 5 of the first GPE0 status byte */
#define EVENT       "VM_GENERATION_ID_CHANGED"
#define UPSTREAM    "VMGENID_TEST_UPSTREAM_QEMU"
#define TIMEOUT     60          /* seconds of TCG to wait for anything */

#define GED_VMGENID_EVT   0x40
#define MICROVM_GED_ESEL  0x0fea00000ULL   /* event selector, read clears */
#define VIRT_GED_ESEL     0x09080000
#define VIRT_GICD         0x08000000
#define VIRT_INTID        (112 + 32)  /* the platform bus' first SPI */
#define VIRT_FW_CFG       0x09020000
#define FW_CFG_IO         0x510

static const Machine machines[] = {
    { "pc", PC, "", 0, 0xafe0, 0x604, 0x59, 0x72, 0, "PIIX4_PM.disable_s3=0",
      1 << 3 | 3, 0x80, 0x01, "-device i6300esb",
      .upstream = { "pc-i440fx-9.2", "pc" } },
    { "q35", PC, "", 0, 0x620, 0x604, 0x90, 0x9d, 0x9e,
      "ICH9-LPC.disable_s3=0", 0x1f << 3, 0x44, 0x80, "-device i6300esb",
      "x86_64", "pc-q35-10.2", { "pc-q35-10.1", "pc-q35-10.2", "q35" } },
    { "microvm", MICROVM, "", .extra = "-device virtio-rng-device" },
    { "virt", VIRT, "-cpu cortex-a57", 0x40000000,
      .extra = "-device virtio-rng-pci", .uefi_arch = "aarch64",
      .uefi_type = "virt-10.2" },
};

static char *tmp_dir;           /* scratch files of the whole run */
static char *halt_bios;         /* firmware that only halts */
static char disk[] = "tests/vmgenid-test-disk-XXXXXX";  /* boot sector */

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
                                   "format=raw,snapshot=on,file=%s", disk);
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
                             true);
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

/* Run QEMU with @args to its end; its exit status, its output in @text. */
static int run_qemu(const char *args, char **text)
{
    g_autofree char *cmd = g_strdup_printf("%s -display none -accel qtest %s",
                                           qtest_qemu_binary(NULL), args);
    g_autofree char *out = NULL, *err = NULL;
    g_auto(GStrv) argv = NULL;
    int status;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, NULL));
    g_assert_true(WIFEXITED(status));
    *text = g_strconcat(out, err, NULL);
    return WEXITSTATUS(status);
}

/* QEMU with @args stops at startup; its first line ends in @expected. */
static void assert_startup_error(const char *args, const char *expected)
{
    g_autofree char *err = NULL;
    g_autofree char *tail = g_strdup_printf(": %s", expected);

    g_assert_cmpint(run_qemu(args, &err), ==, 1);
    *strchrnul(err, '\n') = '\0';
    if (!g_str_has_suffix(err, tail)) {
        g_test_message("QEMU said: %s", err);
    }
    g_assert_true(g_str_has_suffix(err, tail));
}

/* A host tool, or a skip that says what is missing. */
static bool have_tool(const char *tool)
{
    g_autofree char *path = g_find_program_in_path(tool);
    g_autofree char *msg = g_strdup_printf("%s is not installed", tool);

    if (!path) {
        g_test_skip(msg);
    }
    return path;
}

/* --- What the guest sees ------------------------------------------- */

/* The GUID in guest memory at @addr, in its text form. */
char *guest_guid(QTestState *qts, uint64_t addr)
{
    QemuUUID le;

    qtest_memread(qts, addr, &le, sizeof(le));
    le = qemu_uuid_bswap(le);
    return qemu_uuid_unparse_strdup(&le);
}

static void assert_guest_guid(Vm *vm, uint64_t addr, const char *expected)
{
    g_autofree char *guid = guest_guid(vm->qts, addr);

    g_assert_cmpstr(guid, ==, expected);
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

/*
 * The change events since the last call: exactly one, for @guid with
 * @reason, or none when @reason is NULL.
 */
static void assert_change(Vm *vm, const char *guid, const char *reason)
{
    g_free(run_status(vm));     /* pending events come with a reply */
    g_assert_cmpint(vm->changes, ==, reason != NULL);
    if (reason) {
        g_assert_cmpstr(vm->change_guid, ==, guid);
        g_assert_cmpstr(vm->change_reason, ==, reason);
    }
    vm->changes = 0;
}

/* Configure the devicetree's interrupt as the guest does: edge, rising. */
void virt_spi_edge(Vm *vm)
{
    uint64_t icfgr = VIRT_GICD + 0xc00 + VIRT_INTID / 16 * 4;

    qtest_writel(vm->qts, icfgr, qtest_readl(vm->qts, icfgr) |
                 2u << (VIRT_INTID % 16 * 2));
}

/* Whether QEMU's own page's interrupt is pending in the GIC; clears it. */
bool dt_notified(Vm *vm)
{
    uint64_t ispendr = VIRT_GICD + 0x200 + VIRT_INTID / 32 * 4;
    uint32_t bit = 1u << (VIRT_INTID % 32);
    bool raised = qtest_readl(vm->qts, ispendr) & bit;

    qtest_writel(vm->qts, ispendr + 0x80, bit);       /* GICD_ICPENDR */
    return raised;
}

/*
 * Whether the machine raised the ACPI notification since the last call:
 * the GPE status bit (cleared by writing it) or the GED's event selector
 * (cleared by reading it).
 */
bool acpi_notified(Vm *vm)
{
    bool raised;

    switch (vm->m->kind) {
    case PC:
        raised = qtest_inb(vm->qts, vm->m->gpe0_sts) & GPE_VMGENID;
        qtest_outb(vm->qts, vm->m->gpe0_sts, GPE_VMGENID);
        return raised;
    case MICROVM:
        return qtest_readl(vm->qts, MICROVM_GED_ESEL) & GED_VMGENID_EVT;
    case VIRT:
        return qtest_readl(vm->qts, VIRT_GED_ESEL) & GED_VMGENID_EVT;
    }
    g_assert_not_reached();
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
static void wait_firmware(Vm *vm)
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

/* --- ACPI tables, found as a guest finds them ---------------------- */

/* Address of a table, through the RSDP; 0 if there is none. */
static uint64_t find_table(Vm *vm, uint64_t rsdp_addr, const char *sig,
                           const char *id)
{
    uint8_t rsdp[36], hdr[36];
    uint64_t sdt, entry;
    uint32_t len;
    int size, i;

    acpi_fetch_rsdp_table(vm->qts, rsdp_addr, rsdp);
    size = rsdp[15] >= 2 && ldq_le_p(rsdp + 24) ? 8 : 4;    /* XSDT */
    sdt = size == 8 ? ldq_le_p(rsdp + 24) : ldl_le_p(rsdp + 16);
    len = qtest_readl(vm->qts, sdt + 4);
    for (i = 36; i + size <= len; i += size) {
        entry = size == 8 ? qtest_readq(vm->qts, sdt + i)
                          : qtest_readl(vm->qts, sdt + i);
        qtest_memread(vm->qts, entry, hdr, sizeof(hdr));
        if (!memcmp(hdr, sig, 4) && (!id || !memcmp(hdr + 16, id, 8))) {
            return entry;
        }
    }
    return 0;
}

/* The table's bytes, with its checksum verified. */
static uint8_t *fetch_table(Vm *vm, uint64_t addr, uint32_t *len)
{
    uint8_t *table;

    g_assert_cmphex(addr, !=, 0);
    *len = qtest_readl(vm->qts, addr + 4);
    table = g_malloc(*len);
    qtest_memread(vm->qts, addr, table, *len);
    g_assert_cmpint(acpi_calc_checksum(table, *len), ==, 0);
    return table;
}

/*
 * The address of the GUID, from the firmware-patched VGIA, which must be
 * the first AML object: NameOp "VGIA" DWordPrefix <value>; in RAM.
 */
static uint64_t acpi_guid_addr(Vm *vm, uint64_t rsdp, uint64_t ram_size)
{
    static const uint8_t name[] = { 0x08, 'V', 'G', 'I', 'A', 0x0c };
    g_autofree uint8_t *table = NULL;
    uint32_t len, vgia;

    table = fetch_table(vm, find_table(vm, rsdp, "SSDT", "VMGENID"), &len);
    g_assert_cmpint(len, >=, 36 + sizeof(name) + 4);
    g_assert(!memcmp(table + 36, name, sizeof(name)));
    vgia = ldl_le_p(table + 36 + sizeof(name));
    g_assert_cmphex(vgia & 0xfff, ==, 0);   /* the firmware gives a page */
    g_assert_cmphex(vgia, >, vm->m->ram);
    g_assert_cmphex(vgia, <, vm->m->ram + ram_size);
    return vgia + GUID_OFFSET;
}

/* Where the guest finds the GUID, once the firmware placed it. */
static uint64_t guid_addr(Vm *vm)
{
    return vm->m->kind == VIRT ? VIRT_DT_PAGE
           : acpi_guid_addr(vm, acpi_find_rsdp_address(vm->qts), RAM_SIZE);
}

/* iasl's disassembly of @table without banner, blanks at line ends, VGIA. */
static char *disassemble(const uint8_t *table, uint32_t len)
{
    g_autofree char *dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *aml = g_build_filename(dir, "table.aml", NULL);
    g_autofree char *dsl = g_build_filename(dir, "table.dsl", NULL);
    g_autofree char *out = NULL, *err = NULL, *text = NULL, *masked = NULL;
    g_autoptr(GRegex) vgia = g_regex_new("Name \\(VGIA, 0x[0-9A-F]{8}\\)",
                                         0, 0, NULL);
    g_autoptr(GRegex) blanks = g_regex_new("[ \t]+$", G_REGEX_MULTILINE,
                                           0, NULL);
    const char *argv[] = { "iasl", "-d", aml, NULL };
    int status;

    g_assert_true(g_file_set_contents(aml, (char *)table, len, NULL));
    g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, NULL));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_null(strstr(out, "Warning"));
    g_assert_null(strstr(err, "Warning"));
    g_assert_true(g_file_get_contents(dsl, &text, NULL, NULL));
    unlink(aml);
    unlink(dsl);
    rmdir(dir);
    g_assert_nonnull(strstr(text, "DefinitionBlock"));
    masked = g_regex_replace_literal(vgia, strstr(text, "DefinitionBlock"),
                                     -1, 0, "Name (VGIA, 0xXXXXXXXX)", 0,
                                     NULL);
    return g_strchomp(g_regex_replace_literal(blanks, masked, -1, 0, "", 0,
                                              NULL));
}

/* The SSDT, disassembled, with the firmware-patched VGIA masked. */
static const char expected_asl[] =
    "DefinitionBlock (\"\", \"SSDT\", 1, \"BOCHS \", \"VMGENID\", 0x00000001)\n"
    "{\n"
    "    Name (VGIA, 0xXXXXXXXX)\n"
    "    Scope (\\_SB)\n"
    "    {\n"
    "        Device (VGEN)\n"
    "        {\n"
    "            Name (_HID, \"QEMUVGID\")  // _HID: Hardware ID\n"
    "            Name (_CID, \"VM_Gen_Counter\")  // _CID: Compatible ID\n"
    "            Name (_DDN, \"VM_Gen_Counter\")  // _DDN: DOS Device Name\n"
    "            Method (_STA, 0, NotSerialized)  // _STA: Status\n"
    "            {\n"
    "                If ((VGIA == Zero))\n"
    "                {\n"
    "                    Return (Zero)\n"
    "                }\n"
    "\n"
    "                Return (0x0F)\n"
    "            }\n"
    "\n"
    "            Method (ADDR, 0, NotSerialized)\n"
    "            {\n"
    "                Local0 = Package (0x02)\n"
    "                    {\n"
    "                        Zero,\n"
    "                        Zero\n"
    "                    }\n"
    "                Local0 [Zero] = (VGIA + 0x28)\n"
    "                Return (Local0)\n"
    "            }\n"
    "        }\n"
    "    }\n";

/* PC machines notify through GPE 5; a GED has an event of its own. */
static const char expected_asl_gpe[] =
    "\n"
    "    Scope (\\_GPE)\n"
    "    {\n"
    "        Method (_E05, 0, NotSerialized)  // _Exx: Edge-Triggered GPE, xx=0x00-0xFF\n"
    "        {\n"
    "            Notify (\\_SB.VGEN, 0x80) // Status Change\n"
    "        }\n"
    "    }\n";

/*
 * The SSDT as iasl sees it, with \_GPE._E05 on PC machines only; with a
 * GED, its _EVT in the DSDT notifies \_SB.VGEN on event bit 0x40.
 */
static void assert_aml(Vm *vm, uint64_t rsdp)
{
    g_autoptr(GRegex) branch = g_regex_new(
        "Method \\(_EVT, 1, Serialized\\).*"
        "If \\(\\(\\(Local0 & 0x40\\) == 0x40\\)\\)\\s*\\{\\s*"
        "Notify \\(\\\\_SB\\.VGEN, 0x80\\)", G_REGEX_DOTALL, 0, NULL);
    g_autofree char *expected = g_strconcat(expected_asl,
        vm->m->kind == PC ? expected_asl_gpe : "", "}", NULL);
    g_autofree uint8_t *ssdt = NULL, *dsdt = NULL;
    g_autofree char *body = NULL, *dsdt_body = NULL;
    uint64_t fadt;
    uint32_t len;

    ssdt = fetch_table(vm, find_table(vm, rsdp, "SSDT", "VMGENID"), &len);
    body = disassemble(ssdt, len);
    g_assert_cmpstr(body, ==, expected);
    if (vm->m->kind == PC) {
        return;
    }
    /* The DSDT: the FADT's X_DSDT, else its DSDT. */
    fadt = find_table(vm, rsdp, "FACP", NULL);
    g_assert_cmphex(fadt, !=, 0);
    dsdt = fetch_table(vm, qtest_readl(vm->qts, fadt + 4) >= 148 &&
                       qtest_readq(vm->qts, fadt + 140)
                       ? qtest_readq(vm->qts, fadt + 140)
                       : qtest_readl(vm->qts, fadt + 40), &len);
    dsdt_body = disassemble(dsdt, len);
    g_assert_true(g_regex_match(branch, dsdt_body, 0, NULL));
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
static uint32_t write_addr_file(Vm *vm, const void *data, size_t len,
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

static uint64_t addr_file(Vm *vm)
{
    uint16_t key = fw_cfg_key(vm, "etc/vmgenid_addr");
    uint64_t le = 0;

    g_assert_cmpint(key, !=, 0);
    fw_cfg_read(vm, key, &le, sizeof(le));
    return le64_to_cpu(le);
}

/* --- Firmware ------------------------------------------------------ */

/*
 * Real firmware places the page and finds the current GUID: set before
 * it ran (kept, then placed, the change reported at cont but not
 * notified), set while running (written and notified), and, on PC,
 * placed anew after a reset, before which nothing is written. Devices
 * without a guid property or with "auto" draw GUIDs of their own.
 */
static void test_firmware(const void *opaque)
{
    const Machine *m = opaque;
    Vm *vm = vm_start(&(Start){ m, BOOT_BIOS,
                                .args = "-S -device vmgenid,id=vg,guid="
                                        GUID1 });
    Vm *a = vm_start(&(Start){ m, .args = "-device vmgenid,id=vg" });
    Vm *b = vm_start(&(Start){ m, .args = "-device vmgenid,id=vg,guid=auto" });
    g_autofree char *guid_a = qemu_guid(a), *guid_b = qemu_guid(b);
    uint8_t zero[16] = {}, mem[16];
    uint64_t addr;
    QemuUUID uuid;

    /* Without the property, or with "auto": random, and not the same. */
    g_assert_cmpint(qemu_uuid_parse(guid_a, &uuid), ==, 0);
    g_assert_false(qemu_uuid_is_null(&uuid));
    g_assert_cmpint(qemu_uuid_parse(guid_b, &uuid), ==, 0);
    g_assert_false(qemu_uuid_is_null(&uuid));
    g_assert_cmpstr(guid_a, !=, guid_b);
    vm_quit(a);
    vm_quit(b);
    if (m->kind == VIRT) {
        /* No firmware runs here: the sequences cover QEMU's own page. */
        vm_quit(vm);
        return;
    }

    g_assert_cmphex(addr_file(vm), ==, 0);
    qtest_qmp_assert_success(vm->qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", GUID2);
    assert_change(vm, NULL, NULL);
    qtest_qmp_assert_success(vm->qts, "{'execute': 'cont'}");
    assert_change(vm, GUID2, "set");
    wait_firmware(vm);
    addr = guid_addr(vm);
    assert_guest_guid(vm, addr, GUID2);
    g_assert_false(acpi_notified(vm));
    g_free(qemu_guid(vm));

    qtest_qmp_assert_success(vm->qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", GUID1);
    assert_guest_guid(vm, addr, GUID1);
    g_assert_true(acpi_notified(vm));
    assert_change(vm, GUID1, "set");
    g_assert_cmphex(addr_file(vm), ==, addr);
    if (m->kind == PC) {
        /* Reset while stopped, so that the firmware cannot run yet. */
        qtest_qmp_assert_success(vm->qts, "{'execute': 'stop'}");
        qtest_memwrite(vm->qts, addr, zero, sizeof(zero));
        qtest_qmp_assert_success(vm->qts, "{'execute': 'system_reset'}");
        g_assert_cmphex(addr_file(vm), ==, 0);
        qtest_qmp_assert_success(vm->qts, "{'execute':"
                                 " 'set-vm-generation-id', 'arguments':"
                                 " {'guid': %s}}", GUID2);
        qtest_memread(vm->qts, addr, mem, sizeof(mem));
        g_assert(!memcmp(mem, zero, sizeof(zero)));
        qtest_qmp_assert_success(vm->qts, "{'execute': 'cont'}");
        wait_firmware(vm);
        addr = guid_addr(vm);
        g_assert_cmphex(addr_file(vm), ==, addr);
        assert_guest_guid(vm, addr, GUID2);
    }
    vm_quit(vm);
}

/* The SSDT (and the GED's AML), as iasl disassembles them. */
static void test_ssdt(const void *opaque)
{
    Vm *vm;

    if (!have_tool("iasl")) {
        return;
    }
    vm = vm_start(&(Start){ opaque, BOOT_BIOS,
                            .args = "-device vmgenid,guid=" GUID1 });
    wait_firmware(vm);
    assert_aml(vm, acpi_find_rsdp_address(vm->qts));
    vm_quit(vm);
}

/*
 * A UEFI firmware for @arch and machine type @type, from the firmware
 * descriptors where docs/interop/firmware.json has them: without secure
 * boot or SMM, code and varstore template in flash.
 */
static bool find_uefi(const char *arch, const char *type, char **code,
                      char **vars)
{
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *xdg = g_build_filename(g_get_user_config_dir(), "qemu",
                                            "firmware", NULL);
    const char *dirs[] = { xdg, "/etc/qemu/firmware",
                           "/usr/share/qemu/firmware" };
    int i;

    for (i = 0; i < ARRAY_SIZE(dirs); i++) {
        const char *dir = dirs[i];
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
            g_ptr_array_add(files, g_build_filename(dir, name, NULL));
        }
    }
    for (i = 0; i < files->len; i++) {
        g_autofree char *text = NULL;
        g_autoptr(QDict) fw = NULL;
        QList *targets, *features;
        QDict *map;
        const QListEntry *e;
        bool ok = false;

        if (g_file_get_contents(files->pdata[i], &text, NULL, NULL)) {
            fw = qobject_to(QDict, qobject_from_json(text, NULL));
        }
        map = fw ? qdict_get_qdict(fw, "mapping") : NULL;
        if (!map || g_strcmp0(qdict_get_try_str(map, "device"), "flash") ||
            !qdict_get_qdict(map, "nvram-template")) {
            continue;
        }
        targets = qdict_get_qlist(fw, "targets");
        features = qdict_get_qlist(fw, "features");
        for (e = targets ? qlist_first(targets) : NULL; e;
             e = qlist_next(e)) {
            QDict *t = qobject_to(QDict, qlist_entry_obj(e));
            QList *types = qdict_get_qlist(t, "machines");
            const QListEntry *pat;

            for (pat = types && !g_strcmp0(qdict_get_try_str(t,
                     "architecture"), arch) ? qlist_first(types) : NULL;
                 pat; pat = qlist_next(pat)) {
                ok |= g_pattern_match_simple(qstring_get_str(qobject_to(
                                                 QString, pat->value)), type);
            }
        }
        for (e = features ? qlist_first(features) : NULL; e;
             e = qlist_next(e)) {
            const char *f = qstring_get_str(qobject_to(QString, e->value));

            ok &= strcmp(f, "secure-boot") && strcmp(f, "requires-smm") &&
                  strcmp(f, "enrolled-keys");
        }
        *code = g_strdup(qdict_get_str(qdict_get_qdict(map, "executable"),
                                       "filename"));
        *vars = g_strdup(qdict_get_str(qdict_get_qdict(map, "nvram-template"),
                                       "filename"));
        if (ok && g_file_test(*code, G_FILE_TEST_EXISTS) &&
            g_file_test(*vars, G_FILE_TEST_EXISTS)) {
            return true;
        }
        g_clear_pointer(code, g_free);
        g_clear_pointer(vars, g_free);
    }
    return false;
}

/*
 * UEFI firmware and QEMU's UEFI ACPI test image: the firmware places the
 * page, which holds the GUID, gets the new one and is notified of it; on
 * virt the SSDT has no GPE handler, the GED carries the notification, and
 * QEMU's own page holds the GUID too.
 */
static void test_uefi(const void *opaque)
{
    const Machine *m = opaque;
    const uint64_t ram = m->kind == VIRT ? 256 * 1024 * 1024 : RAM_SIZE;
    g_autofree char *code = NULL, *vars = NULL, *msg = NULL;
    g_autofree char *image = g_strdup_printf("%s/../data/uefi-boot-images/"
        "bios-tables-test.%s.iso.qcow2", g_test_get_dir(G_TEST_DIST),
        qtest_get_arch());
    uint64_t rsdp, addr;
    Vm *vm;

    if (!find_uefi(qtest_get_arch(), m->uefi_type, &code, &vars) ||
        !g_file_test(image, G_FILE_TEST_EXISTS)) {
        msg = g_strdup_printf("no UEFI firmware (descriptor) for %s %s, or"
                              " no %s", qtest_get_arch(), m->uefi_type,
                              image);
        g_test_skip(msg);
        return;
    }
    vm = vm_start(&(Start){ m, BOOT_UEFI, .disk = image, .code = code,
                            .vars = vars,
                            .mem = m->kind == VIRT ? "256M" : NULL,
                            .args = "-device vmgenid,id=vg,guid=" GUID1 });
    rsdp = acpi_find_rsdp_address_uefi(vm->qts, m->ram, ram);
    addr = acpi_guid_addr(vm, rsdp, ram);
    assert_guest_guid(vm, addr, GUID1);
    if (m->kind == VIRT) {
        assert_guest_guid(vm, VIRT_DT_PAGE, GUID1);
    }
    acpi_notified(vm);
    qtest_qmp_assert_success(vm->qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", GUID2);
    assert_guest_guid(vm, addr, GUID2);
    g_assert_true(acpi_notified(vm));
    if (m->kind == VIRT) {
        assert_guest_guid(vm, VIRT_DT_PAGE, GUID2);
        if (have_tool("iasl")) {
            assert_aml(vm, rsdp);
        }
    }
    vm_quit(vm);
}

/* --- Devicetree ---------------------------------------------------- */

/*
 * The devicetree node, as dtc decodes -machine dumpdtb: the page at the
 * start of the platform bus, the bus' first interrupt, rising edge.
 */
static void test_devicetree(const void *opaque)
{
    g_autofree char *dtb = g_build_filename(tmp_dir, "virt.dtb", NULL);
    g_autofree char *args = g_strdup_printf(
        "-machine virt,dumpdtb=%s -cpu cortex-a57 -device vmgenid", dtb);
    g_autofree char *err = NULL, *dts = NULL, *dtc_err = NULL;
    const char *dtc[] = { "dtc", "-I", "dtb", "-O", "dts", dtb, NULL };
    int status;

    if (!have_tool("dtc")) {
        return;
    }
    g_assert_cmpint(run_qemu(args, &err), ==, 0);
    g_assert_true(g_spawn_sync(NULL, (char **)dtc, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &dts, &dtc_err, &status, NULL));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unlink(dtb);
    g_assert_nonnull(strstr(dts, "\tplatform-bus@c000000 {\n"));
    g_assert_nonnull(strstr(dts,
        "\t\tranges = <0x00 0x00 0xc000000 0x2000000>;\n"));
    g_assert_nonnull(strstr(dts,
        "\t\tvmgenid@0 {\n"
        "\t\t\tinterrupts = <0x00 0x70 0x01>;\n"
        "\t\t\treg = <0x00 0x1000>;\n"
        "\t\t\tcompatible = \"microsoft,vmgenid\";\n"
        "\t\t};\n"));
}

/* --- Bad input ----------------------------------------------------- */

static void test_refused(const void *opaque)
{
    const Refusal *r = opaque;
    g_autofree char *rom = NULL, *args = NULL, *data = NULL;
    gsize len;

    if (r->rom) {
        /* The halt firmware, under the name the case needs. */
        rom = g_build_filename(tmp_dir, r->rom, NULL);
        g_assert_true(g_file_get_contents(halt_bios, &data, &len, NULL));
        g_assert_true(g_file_set_contents(rom, data, len, NULL));
    }
    args = g_strdup_printf("%s%s %s", rom ? "-bios " : "", rom ?: "",
                           r->args);
    assert_startup_error(args, r->error);
    if (rom) {
        unlink(rom);
    }
}

static void assert_error(QDict *rsp, const char *expected)
{
    g_assert(qdict_haskey(rsp, "error"));
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    expected);
    qobject_unref(rsp);
}

static char *bad_guid_error(const char *quote)
{
    return g_strdup_printf("'%s" ERR_BAD_GUID, quote);
}

static const char *const bad_guids[] = {
    "", "Auto", "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb8",
    "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb877",
    "324e6eafxd1d1-4bf6-bf41-b9bb6c91fb87",
    "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb8g",
    "+24e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87",
    "0x4e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87",
    "324e6eafd1d14bf6bf41b9bb6c91fb87",
};

/*
 * A bad GUID is refused, on the command line and over QMP; a long or odd
 * one is quoted only in part, and only printable: the first 40
 * characters, then "...".
 */
static void test_bad_guid(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *huge = g_strnfill(100 * 1024, 'a');
    g_autofree char *long_arg = g_strnfill(300, 'b');
    g_autofree char *prefix = g_strnfill(40, 'a');
    g_autofree char *expected = NULL, *guid = NULL, *now = NULL;
    Vm *vm;
    int i;

    for (i = 0; i <= ARRAY_SIZE(bad_guids); i++) {
        const char *bad = i < ARRAY_SIZE(bad_guids) ? bad_guids[i] : long_arg;
        g_autofree char *args = g_strdup_printf(
            "-M %s %s -device 'vmgenid,guid=%s'", m->name, m->args, bad);
        g_autofree char *b40 = g_strndup(bad, 40);
        g_autofree char *quote = g_strdup_printf("%s%s", b40,
                                                 strlen(bad) > 40 ? "..." : "");

        g_free(expected);
        expected = bad_guid_error(quote);
        assert_startup_error(args, expected);
    }

    vm = vm_start(&(Start){ m, .args = "-device vmgenid,id=vg" });
    guid = qemu_guid(vm);
    g_free(expected);
    expected = g_strdup_printf("'%s..." ERR_BAD_GUID, prefix);
    assert_error(qtest_qmp(vm->qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': %s}}", huge), expected);
    assert_error(qtest_qmp(vm->qts, "{'execute': 'qom-set', 'arguments':"
                           " {'path': '" VG "', 'property': 'guid',"
                           "  'value': %s}}", huge), expected);
    g_free(expected);
    expected = bad_guid_error("ab?cd?[1m");
    assert_error(qtest_qmp(vm->qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': %s}}", "ab\ncd\033[1m"),
                 expected);
    g_free(expected);
    expected = bad_guid_error("xyz");
    assert_error(qtest_qmp(vm->qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': 'xyz'}}"), expected);
    now = qemu_guid(vm);
    g_assert_cmpstr(now, ==, guid);
    vm_quit(vm);
}

/* No hotplug; without the device, the commands say there is none. */
static void test_hotplug(const void *opaque)
{
    Vm *vm = vm_start(&(Start){ opaque });

    assert_error(qtest_qmp(vm->qts, "{'execute': 'device_add',"
                           " 'arguments': {'driver': 'vmgenid'}}"),
                 ERR_HOTPLUG);
    assert_error(qtest_qmp(vm->qts, "{'execute': 'query-vm-generation-id'}"),
                 ERR_NO_DEVICE);
    assert_error(qtest_qmp(vm->qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': 'auto'}}"), ERR_NO_DEVICE);
    vm_quit(vm);
}

/* --- Hostile guest-written addresses ------------------------------- */

#define K_PC      (1 << PC)
#define K_ALL     (1 << PC | 1 << MICROVM | 1 << VIRT)
#define IN_RAM    1             /* relative to the start of RAM */
#define TSEG      2             /* q35 only, with TSEG closed */
#define VGA_BAR   0xe0000000ULL
#define MEM_DEV   0x100000000ULL    /* where -m maxmem puts devices */

/*
 * Addresses a misbehaving guest may report through etc/vmgenid_addr, on
 * the machines (K_) that have what they point to. None may make QEMU
 * write anywhere but plain guest RAM; each refusal is logged.
 */
static const struct {
    uint64_t addr;
    unsigned kinds, flags;
    const char *why;            /* NULL: nothing to log */
} hostile[] = {
    { 0, K_ALL, 0, NULL },
    { 0x300001, K_ALL, IN_RAM, "is not 8-byte aligned" },
    { 0x300004, K_ALL, IN_RAM, "is not 8-byte aligned" },
    { RAM_SIZE, K_ALL, IN_RAM, NOT_RAM },               /* a hole */
    { RAM_SIZE - 8, K_ALL, IN_RAM, "runs past the end of a RAM region" },
    { 0xfed00000, K_ALL, 0, NOT_RAM },                  /* x86 HPET */
    { 0xfffff000, K_ALL, 0, NOT_RAM },                  /* x86 BIOS ROM */
    { 0x180000000ULL, K_ALL, 0, NOT_RAM },              /* 6 GiB */
    { 0xfffffffffffffff8ULL, K_ALL, 0, "is out of range" },
    { 0xf0100, K_PC, 0, "is in read-only memory" },     /* PAM-protected */
    { 0xa0100, K_PC, 0, "is in SMRAM" },                /* opened SMRAM */
    { VGA_BAR + 0x100, K_PC, 0, NOT_RAM },               /* video RAM */
    { MEM_DEV + 0x28, K_PC, 0, NOT_RAM },                /* virtio-mem */
    { 0x1000, 1 << VIRT, 0, NOT_RAM },                  /* flash */
    { VIRT_GICD, 1 << VIRT, 0, NOT_RAM },               /* MMIO */
    { VIRT_DT_PAGE, 1 << VIRT, 0, NOT_RAM },            /* QEMU's page */
    { RAM_SIZE - 0x100000 + 0x28, K_PC, TSEG, NOT_RAM },  /* last */
};

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

/* Guest memory filled with a pattern, to check that it is untouched. */
static void fill(Vm *vm, GPtrArray *windows, uint64_t start, uint64_t len)
{
    GByteArray *w = g_byte_array_sized_new(len + 8);
    uint64_t i;

    g_byte_array_append(w, (uint8_t *)&start, 8);
    for (i = 0; i < len; i++) {
        uint8_t b = i * 7 + (start >> 12);

        g_byte_array_append(w, &b, 1);
    }
    qtest_memwrite(vm->qts, start, w->data + 8, len);
    g_ptr_array_add(windows, w);
}

static void test_hostile(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *log = g_build_filename(tmp_dir, "hostile.log", NULL);
    g_autofree char *args = g_strdup_printf(
        "-S -d guest_errors -D %s -device vmgenid,id=vg,guid=" GUID1 " %s",
        log, m->kind != PC ? "" : "-device VGA,addr=05.0"
        " -object memory-backend-ram,id=vmem,size=128M"
        " -device virtio-mem-pci,memdev=vmem,requested-size=0");
    g_autoptr(GPtrArray) windows = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_byte_array_unref);
    g_autoptr(GString) want = g_string_new("");
    g_autofree char *logged = NULL;
    uint8_t half[8] = { 0x28, 0, 0x20 }, over[16] = { 0x28, 0, 0x20 };
    Vm *vm = vm_start(&(Start){ m, BOOT_HALT, .args = args,
                                .mem = m->kind == PC ? "128M,maxmem=1G"
                                                     : NULL });
    int i;

    stq_le_p(half, m->ram + 0x200028);
    fill(vm, windows, m->ram, 0x2000);
    fill(vm, windows, m->ram + 0x300000, 0x2000);
    fill(vm, windows, m->ram + RAM_SIZE - 0x200000, 0x200000);
    if (m->kind == PC) {
        QDict *rsp = qtest_qmp(vm->qts,
                               "{'execute': 'query-memory-devices'}");
        QDict *dev = qobject_to(QDict, qlist_peek(qdict_get_qlist(rsp,
                                                                  "return")));

        /* The virtio-mem device sits where this test expects it. */
        g_assert_cmphex(qdict_get_int(qdict_get_qdict(dev, "data"),
                                      "memaddr"), ==, MEM_DEV);
        qobject_unref(rsp);
        /* The F segment: RAM, then read-only, as firmware leaves it. */
        pci_cfg_write(vm, 0, m->pam0, 0x30, 1);
        fill(vm, windows, 0xf0000, 0x1000);
        pci_cfg_write(vm, 0, m->pam0, 0x10, 1);
        /* SMRAM enabled and open: RAM shows at 0xa0000. */
        pci_cfg_write(vm, 0, m->smram, 0x4a, 1);
        fill(vm, windows, 0xa0000, 0x1000);
        /* The VGA's video RAM, mapped where the guest chose. */
        pci_cfg_write(vm, 5 << 3, 0x10, VGA_BAR, 4);
        pci_cfg_write(vm, 5 << 3, 0x04, 0x02, 1);
        fill(vm, windows, VGA_BAR, 0x1000);
    }

    for (i = 0; i < ARRAY_SIZE(hostile); i++) {
        uint64_t addr = hostile[i].addr +
                        (hostile[i].flags & IN_RAM ? m->ram : 0);

        if (!(hostile[i].kinds & 1 << m->kind) ||
            (hostile[i].flags & TSEG && !m->esmramc)) {
            continue;
        }
        if (hostile[i].flags & TSEG) {
            /* TSEG: the top MiB of RAM, hidden from all but SMM. */
            pci_cfg_write(vm, 0, m->esmramc, 0x01, 1);
        }
        report_addr(vm, addr);
        g_assert_cmphex(addr_file(vm), ==, addr);
        if (hostile[i].why) {
            g_string_append_printf(want, LOG_REFUSED, addr, hostile[i].why);
        }
        /* The device has no address now: a change reaches nothing. */
        qtest_qmp_assert_success(vm->qts, "{'execute':"
                                 " 'set-vm-generation-id', 'arguments':"
                                 " {'guid': %s}}", i & 1 ? GUID2 : GUID1);
    }

    /* A partial write, at either end, and an over-long one. */
    g_assert_cmphex(write_addr_file(vm, half, 4, 0), ==, 0);
    g_string_append_printf(want, LOG_PARTIAL, 0);
    g_assert_cmphex(write_addr_file(vm, half + 4, 4, 4), ==, 0);
    g_string_append_printf(want, LOG_PARTIAL, 4);
    /* fw_cfg itself refuses a write past the end of the file. */
    g_assert_cmphex(write_addr_file(vm, over, sizeof(over), 0), ==,
                    FW_CFG_DMA_CTL_ERROR);
    qtest_qmp_assert_success(vm->qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", GUID2);

    if (m->esmramc) {
        /* Out of TSEG's shadow, the top of RAM shows what it holds. */
        pci_cfg_write(vm, 0, m->esmramc, 0, 1);
    }
    for (i = 0; i < windows->len; i++) {
        GByteArray *w = windows->pdata[i];
        g_autofree uint8_t *now = g_malloc(w->len - 8);

        qtest_memread(vm->qts, ldq_he_p(w->data), now, w->len - 8);
        g_assert(!memcmp(now, w->data + 8, w->len - 8));
    }
    g_assert_true(g_file_get_contents(log, &logged, NULL, NULL));
    g_assert_cmpstr(logged, ==, want->str);
    g_free(qemu_guid(vm));

    /*
     * A sane address is still honoured. The VM never ran, so the changes
     * were only recorded: it gets the GUID the guest was told of.
     */
    report_addr(vm, m->ram + 0x200028);
    assert_guest_guid(vm, m->ram + 0x200028, GUID1);
    if (m->kind == VIRT) {
        assert_guest_guid(vm, VIRT_DT_PAGE, GUID1);
    }
    vm_quit(vm);
    unlink(log);
}

/* --- Upstream QEMU at the other end -------------------------------- */

typedef struct {
    const Machine *m;
    const char *type;           /* machine type or alias */
    bool to_upstream, savevm;
} UpstreamTest;

/*
 * Migration with upstream QEMU 10.2.2 (@UPSTREAM names its binary) on a
 * machine type both have, with default options: live, or savevm in one
 * and loadvm in the other. The destination runs with its own GUID.
 */
static void test_upstream(const void *opaque)
{
    const UpstreamTest *t = opaque;
    const char *up = g_getenv(UPSTREAM);
    g_autofree char *img = g_build_filename(tmp_dir, "up.qcow2", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/up.sock", tmp_dir);
    g_autofree char *cmd = NULL, *out = NULL, *src_end = NULL;
    g_autofree char *dst_end = NULL;
    Start src_s = { t->m, BOOT_BIOS, t->type,
                    t->to_upstream ? NULL : UPSTREAM,
                    .args = "-device vmgenid,id=vg,guid=" GUID1 };
    Start dst_s = src_s;
    uint64_t addr;
    Vm *src, *dst;
    QDict *rsp;

    if (!up || !g_file_test(up, G_FILE_TEST_IS_EXECUTABLE) ||
        !g_str_has_suffix(up, qtest_get_arch())) {
        g_test_skip(UPSTREAM " does not name an upstream QEMU for this"
                    " target to migrate with");
        return;
    }
    dst_s.var = t->to_upstream ? UPSTREAM : NULL;
    dst_s.args = t->savevm ? "-S -device vmgenid,id=vg,guid=" GUID2
                           : "-incoming defer -device vmgenid,id=vg,guid="
                             GUID2;
    if (t->savevm) {
        /* A qcow2 boot disk both processes open, to hold the snapshot. */
        cmd = g_strdup_printf("%s convert -f raw -O qcow2 %s %s",
                              g_getenv("QTEST_QEMU_IMG"), disk, img);
        g_assert_cmpint(system(cmd), ==, 0);
        src_s.disk = dst_s.disk = img;
    }
    src = vm_start(&src_s);
    wait_firmware(src);
    addr = guid_addr(src);
    assert_guest_guid(src, addr, GUID1);
    if (t->savevm) {
        out = qtest_hmp(src->qts, "savevm s1");
        g_assert_cmpstr(out, ==, "");
        vm_quit(src);
        dst = vm_start(&dst_s);
        g_free(out);
        out = qtest_hmp(dst->qts, "loadvm s1");
        g_assert_cmpstr(out, ==, "");
        unlink(img);
    } else {
        dst = vm_start(&dst_s);
        qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming',"
                                 " 'arguments': {'uri': %s}}", uri);
        qtest_qmp_assert_success(src->qts, "{'execute': 'migrate',"
                                 " 'arguments': {'uri': %s}}", uri);
        src_end = vm_wait(src, NULL, NULL);
        dst_end = vm_wait(dst, NULL, NULL);
        g_assert_cmpstr(src_end, ==, "completed");
        g_assert_cmpstr(dst_end, ==, "completed");
        g_free(vm_wait(dst, NULL, "inmigrate"));
        vm_quit(src);
    }
    qtest_qmp_assert_success(dst->qts, "{'execute': 'cont'}");
    assert_guest_guid(dst, addr, GUID2);
    g_assert_true(acpi_notified(dst));
    rsp = qtest_qmp(dst->qts, "{'execute': 'query-vm-generation-id'}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "return"), "guid"),
                    ==, GUID2);
    qobject_unref(rsp);
    if (!t->to_upstream) {
        assert_change(dst, GUID2, t->savevm ? "snapshot-load" : "migration");
    }
    vm_quit(dst);
    unlink(uri + 5);
}

/* --- Registration -------------------------------------------------- */

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

int main(int argc, char **argv)
{
    const char *arch = qtest_get_arch();
    const char *up = g_getenv(UPSTREAM);
    /* Unless an upstream QEMU is given for another target only. */
    bool upstream_here = !up || g_str_has_suffix(up, arch);
    const Machine *first = NULL;
    bool arm;
    g_autofree char *code = NULL, *vars = NULL, *objects = NULL;
    int ret, i, j, k;

    g_test_init(&argc, &argv, NULL);
    if (!qtest_has_device("vmgenid")) {
        g_test_skip("this QEMU has no vmgenid device");
        return g_test_run();
    }
    tmp_dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    arm = qtest_has_machine("virt");
    make_halt_bios(arm);
    if (!arm) {
        g_assert_cmpint(boot_sector_init(disk), ==, 0);
    }

    run_qemu("-machine none -object help", &objects);
    for (i = 0; i < ARRAY_SIZE(refusals); i++) {
        /* SEV's object exists where QEMU is built for x86_64 with KVM. */
        if (qtest_has_machine(refusals[i].machine) &&
            (!strstr(refusals[i].args, "sev-guest") ||
             strstr(objects, "sev-guest\n"))) {
            g_autofree char *name = g_strdup_printf("refused/%s",
                                                    refusals[i].name);

            add_case(NULL, name, &refusals[i], test_refused);
        }
    }
    for (i = 0; i < ARRAY_SIZE(machines); i++) {
        const Machine *m = &machines[i];

        if (!qtest_has_machine(m->name)) {
            continue;
        }
        if (!first) {
            first = m;
            add_case(NULL, "bad-guid", m, test_bad_guid);
        }
        add_case(m, "firmware", m, test_firmware);
        add_case(m, "hotplug", m, test_hotplug);
        add_case(m, "hostile-addr", m, test_hostile);
        seq_add_cases(m);
        if (m->kind != VIRT) {
            add_case(m, "ssdt", m, test_ssdt);
        } else {
            add_case(m, "devicetree", m, test_devicetree);
        }
        /*
         * UEFI where a firmware for this target is found, or where
         * distributions ship one (then a missing one is a skip).
         */
        if (m->uefi_arch && (find_uefi(arch, m->uefi_type, &code, &vars) ||
                             !strcmp(arch, m->uefi_arch))) {
            add_case(m, "uefi", m, test_uefi);
        }
        g_clear_pointer(&code, g_free);
        g_clear_pointer(&vars, g_free);
        for (j = 0; upstream_here && j < ARRAY_SIZE(m->upstream) &&
                    m->upstream[j]; j++) {
            for (k = 0; k < 4; k++) {
                UpstreamTest *t = g_new(UpstreamTest, 1);
                g_autofree char *name = g_strdup_printf(
                    "upstream/%s/%s-%s", m->upstream[j],
                    k & 1 ? "to" : "from", k & 2 ? "savevm" : "live");

                *t = (UpstreamTest) { m, m->upstream[j], k & 1, k & 2 };
                add_case(m, name, t, test_upstream);
            }
        }
    }

    ret = g_test_run();
    if (!arm) {
        boot_sector_cleanup(disk);
    }
    unlink(halt_bios);
    rmdir(tmp_dir);
    return ret;
}
