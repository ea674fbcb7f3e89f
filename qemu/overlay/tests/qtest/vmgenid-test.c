/*
 * QTest for the VM Generation ID device
 *
 * What a table of cases checks best: real firmware placing the page, the
 * ACPI tables and the devicetree as a guest decodes them, bad input,
 * hostile guest-written addresses, and upstream QEMU at the other end of
 * a migration. The rule for telling the guest, over orders of events, is
 * vmgenid-seq.c's, vmclock on its own vmgenid-clock.c's; how QEMU is
 * started and the guest acts is vmgenid-vm.c's.
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
#define ERR_CLOCK_NOTIFY "vmclock: the generation counter needs a way to" \
                        " notify the guest, which this machine does not" \
                        " give it (without ACPI)"

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
    { "vmclock/one-only/pc", "pc", NULL,
      "-M pc -device vmclock -device vmclock",
      "at most one vmclock device is permitted" },
    { "vmclock/one-only/virt", "virt", NULL,
      "-M virt -device vmclock -device vmclock",
      "at most one vmclock device is permitted" },
    { "vmclock/none", "none", NULL, "-M none -device vmclock",
      "this machine gives the guest no way to find the vmclock page" },
    { "vmclock/counter-acpi-off", "pc", NULL,
      "-M pc,acpi=off -device vmclock,vm-generation-counter=on",
      ERR_CLOCK_NOTIFY },
    { "vmclock/counter-isapc", "isapc", NULL,
      "-M isapc -device vmclock,vm-generation-counter=on", ERR_CLOCK_NOTIFY },
    { "vmclock/counter-confidential", "q35", NULL,
      "-M q35,confidential-guest-support=sev0"
      " -object sev-guest,id=sev0,cbitpos=47,reduced-phys-bits=1"
      " -device vmclock,vm-generation-counter=on",
      "vmclock: the generation counter cannot work with confidential guest"
      " support: QEMU cannot keep the page read-only for the guest" },
    { "vmclock/bad-value", "q35", NULL,
      "-M q35 -device vmclock,vm-generation-counter=maybe",
      "Parameter 'vm-generation-counter' does not accept value 'maybe'" },
};

/* What a refused guest-written address logs (-d guest_errors). */
#define LOG_REFUSED     "vmgenid: GUID address 0x%" PRIx64 " %s;" \
                        " not writing it\n"
#define LOG_PARTIAL     "vmgenid: partial write of etc/vmgenid_addr" \
                        " (4 bytes at offset %d); ignoring it\n"
#define NOT_RAM         "is not in the machine's RAM"

#define UPSTREAM    "VMGENID_TEST_UPSTREAM_QEMU"

static const Machine machines[] = {
    {
        .name = "pc", .kind = PC, .args = "",
        .gpe0_sts = 0xafe0, .pm1_cnt = 0x604,
        .pam0 = 0x59, .smram = 0x72,
        .s3_global = "PIIX4_PM.disable_s3=0",
        .pm_devfn = 1 << 3 | 3, .pm_enable_reg = 0x80, .pm_enable = 0x01,
        .extra = "-device i6300esb",
        .upstream = { "pc-i440fx-9.2", "pc" },
    }, {
        .name = "q35", .kind = PC, .args = "",
        .gpe0_sts = 0x620, .pm1_cnt = 0x604,
        .pam0 = 0x90, .smram = 0x9d, .esmramc = 0x9e,
        .s3_global = "ICH9-LPC.disable_s3=0",
        .pm_devfn = 0x1f << 3, .pm_enable_reg = 0x44, .pm_enable = 0x80,
        .extra = "-device i6300esb",
        .uefi_arch = "x86_64", .uefi_type = "pc-q35-10.2",
        .upstream = { "pc-q35-10.1", "pc-q35-10.2", "q35" },
    }, {
        .name = "microvm", .kind = MICROVM, .args = "",
        .extra = "-device virtio-rng-device",
    }, {
        .name = "virt", .kind = VIRT, .args = "-cpu cortex-a57",
        .ram = 0x40000000,
        .extra = "-device virtio-rng-pci",
        .uefi_arch = "aarch64", .uefi_type = "virt-10.2",
    },
};

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

static void assert_guest_guid(Vm *vm, uint64_t addr, const char *expected)
{
    g_autofree char *guid = guest_guid(vm->qts, addr);

    g_assert_cmpstr(guid, ==, expected);
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

/* Whether the DSDT's GED _EVT notifies @device on event bit @bit. */
static bool ged_notifies(const char *dsdt, int bit, const char *device)
{
    g_autofree char *pattern = g_strdup_printf(
        "Method \\(_EVT, 1, Serialized\\).*"
        "If \\(\\(\\(Local0 & 0x%02X\\) == 0x%02X\\)\\)\\s*\\{\\s*"
        "Notify \\(\\\\_SB\\.%s, 0x80\\)", bit, bit, device);
    g_autoptr(GRegex) branch = g_regex_new(pattern, G_REGEX_DOTALL, 0, NULL);

    return g_regex_match(branch, dsdt, 0, NULL);
}

/*
 * The SSDT as iasl sees it, with \_GPE._E05 on PC machines only; with a
 * GED, its _EVT in the DSDT notifies \_SB.VGEN on event bit 0x40. With
 * vmclock's generation counter (@clock), \_SB.VCLK is notified by
 * \_GPE._E08 in its SSDT, or on the GED's event bit 0x80.
 */
static void assert_aml(Vm *vm, uint64_t rsdp, bool clock)
{
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
        if (clock) {
            g_autofree uint8_t *vclk = NULL;
            g_autofree char *text = NULL;

            vclk = fetch_table(vm, find_table(vm, rsdp, "SSDT", "VMCLOCK"),
                               &len);
            text = disassemble(vclk, len);
            g_assert_nonnull(strstr(text, "Method (_E08, 0, NotSerialized)"
                                    "  // _Exx: Edge-Triggered GPE,"));
            g_assert_nonnull(strstr(text, "Notify (\\_SB.VCLK, 0x80)"));
        }
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
    g_assert_true(ged_notifies(dsdt_body, 0x40, "VGEN"));
    g_assert_true(ged_notifies(dsdt_body, 0x80, "VCLK") == clock);
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

/* The SSDTs (and the GED's AML), as iasl disassembles them. */
static void test_ssdt(const void *opaque)
{
    Vm *vm;

    if (!have_tool("iasl")) {
        return;
    }
    vm = vm_start(&(Start){ opaque, BOOT_BIOS,
                            .args = "-device vmgenid,guid=" GUID1
                                    " -device vmclock,vm-generation-counter=on"
                          });
    wait_firmware(vm);
    assert_aml(vm, acpi_find_rsdp_address(vm->qts), true);
    vm_quit(vm);
}

/*
 * A UEFI firmware for @arch and machine type @type, code and varstore
 * template in flash: QEMU's own edk2 build where its pc-bios has one (the
 * test runs in the build tree), else one from the firmware descriptors
 * where docs/interop/firmware.json has them, without secure boot or SMM.
 */
static bool find_uefi(const char *arch, const char *type, char **code,
                      char **vars)
{
    static const char *const own[][3] = {
        { "x86_64", "pc-bios/edk2-x86_64-code.fd",
          "pc-bios/edk2-i386-vars.fd" },
        { "aarch64", "pc-bios/edk2-aarch64-code.fd",
          "pc-bios/edk2-arm-vars.fd" },
    };
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *xdg = g_build_filename(g_get_user_config_dir(), "qemu",
                                            "firmware", NULL);
    const char *dirs[] = { xdg, "/etc/qemu/firmware",
                           "/usr/share/qemu/firmware" };
    int i;

    for (i = 0; i < ARRAY_SIZE(own); i++) {
        if (!strcmp(arch, own[i][0]) &&
            g_file_test(own[i][1], G_FILE_TEST_EXISTS) &&
            g_file_test(own[i][2], G_FILE_TEST_EXISTS)) {
            *code = g_strdup(own[i][1]);
            *vars = g_strdup(own[i][2]);
            return true;
        }
    }
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
            assert_aml(vm, rsdp, false);
        }
    }
    vm_quit(vm);
}

/* --- Devicetree ---------------------------------------------------- */

/*
 * The devicetree nodes, as dtc decodes -machine dumpdtb: vmgenid's page
 * at the start of the platform bus, the bus' first interrupt, rising
 * edge; vmclock's 64 KiB page in the memory map, with SPI 10.
 */
static void test_devicetree(const void *opaque)
{
    g_autofree char *dtb = g_build_filename(tmp_dir, "virt.dtb", NULL);
    g_autofree char *args = g_strdup_printf(
        "-machine virt,dumpdtb=%s -cpu cortex-a57 -device vmgenid"
        " -device vmclock", dtb);
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
    g_assert_nonnull(strstr(dts,
        "\tptp@90d0000 {\n"
        "\t\tinterrupts = <0x00 0x0a 0x01>;\n"
        "\t\treg = <0x00 0x90d0000 0x00 0x10000>;\n"
        "\t\tcompatible = \"amazon,vmclock\";\n"
        "\t};\n"));
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
    /* Where it can, the main RAM is two NUMA nodes' backends. */
    const bool numa = m->kind != MICROVM;
    g_autofree char *log = g_build_filename(tmp_dir, "hostile.log", NULL);
    g_autofree char *args = g_strdup_printf(
        "-S -d guest_errors -D %s -device vmgenid,id=vg,guid=" GUID1 " %s%s",
        log, !numa ? "" : "-object memory-backend-ram,id=n0,size=64M"
        " -object memory-backend-ram,id=n1,size=64M"
        " -numa node,memdev=n0 -numa node,memdev=n1 ",
        m->kind != PC ? "" : "-device VGA,addr=05.0"
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
    if (numa) {
        report_addr(vm, m->ram + RAM_SIZE / 2 + 0x1028);
        assert_guest_guid(vm, m->ram + RAM_SIZE / 2 + 0x1028, GUID1);
    }
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

/* Whether @UPSTREAM names an upstream QEMU for this target; else skip. */
static bool have_upstream(void)
{
    const char *up = g_getenv(UPSTREAM);

    if (!up || !g_file_test(up, G_FILE_TEST_IS_EXECUTABLE) ||
        !g_str_has_suffix(up, qtest_get_arch())) {
        g_test_skip(UPSTREAM " does not name an upstream QEMU for this"
                    " target to migrate with");
        return false;
    }
    return true;
}

/*
 * With vmclock's generation counter off, as by default on pc and q35, the
 * guest finds what upstream gives it: the same VMCLOCK SSDT, the same page.
 */
static void test_upstream_vmclock(const void *opaque)
{
    const UpstreamTest *t = opaque;
    Start s = { t->m, BOOT_BIOS, t->type, .args = "-device vmclock" };
    g_autofree uint8_t *table[2] = {};
    uint8_t page[2][112];
    uint32_t len[2];
    Vm *vm;
    int i;

    if (!have_upstream()) {
        return;
    }
    for (i = 0; i < 2; i++) {
        s.var = i ? UPSTREAM : NULL;
        vm = vm_start(&s);
        wait_firmware(vm);
        table[i] = fetch_table(vm, find_table(vm,
                                              acpi_find_rsdp_address(vm->qts),
                                              "SSDT", "VMCLOCK"), &len[i]);
        qtest_memread(vm->qts, X86_CLOCK_PAGE, page[i], sizeof(page[i]));
        vm_quit(vm);
    }
    g_assert_cmpuint(len[0], ==, len[1]);
    g_assert(!memcmp(table[0], table[1], len[0]));
    g_assert(!memcmp(page[0], page[1], sizeof(page[0])));
}

/*
 * Migration with upstream QEMU 10.2.2 (@UPSTREAM names its binary) on a
 * machine type both have, with default options: live, or savevm in one
 * and loadvm in the other. The destination runs with its own GUID. Both
 * have vmclock too, whose page shows the load as upstream's does.
 */
static void test_upstream(const void *opaque)
{
    const UpstreamTest *t = opaque;
    g_autofree char *img = g_build_filename(tmp_dir, "up.qcow2", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/up.sock", tmp_dir);
    g_autofree char *cmd = NULL, *out = NULL, *src_end = NULL;
    g_autofree char *dst_end = NULL;
    Start src_s = { t->m, BOOT_BIOS, t->type,
                    t->to_upstream ? NULL : UPSTREAM,
                    .args = "-device vmgenid,id=vg,guid=" GUID1
                            " -device vmclock" };
    Start dst_s = src_s;
    uint64_t addr;
    Vm *src, *dst;
    QDict *rsp;
    ClockPage clock;

    if (!have_upstream()) {
        return;
    }
    dst_s.var = t->to_upstream ? UPSTREAM : NULL;
    dst_s.args = t->savevm ? "-S -device vmgenid,id=vg,guid=" GUID2
                             " -device vmclock"
                           : "-incoming defer -device vmgenid,id=vg,guid="
                             GUID2 " -device vmclock";
    if (t->savevm) {
        /* A qcow2 boot disk both processes open, to hold the snapshot. */
        cmd = g_strdup_printf("%s convert -f raw -O qcow2 %s %s",
                              g_getenv("QTEST_QEMU_IMG"), boot_disk, img);
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
    g_assert_cmpuint(acpi_notes(dst), ==, NOTE_VMGENID);
    clock_read(dst, &clock);
    g_assert_cmpuint(clock.flags, ==, 0);
    g_assert_cmpuint(clock.marker, ==, 2);     /* booted, then loaded */
    g_assert_cmpuint(clock.counter, ==, 0);
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
    if (!qtest_has_accel("tcg")) {
        /* Firmware and the sequences' guest run; qtest alone cannot. */
        g_test_skip("this QEMU has no TCG, which the cases run on");
        return g_test_run();
    }
    arm = qtest_has_machine("virt");
    vm_setup(arm);

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
        clock_add_cases(m);
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
            /* Four migrations, then vmclock's ABI. */
            for (k = 0; k < 5; k++) {
                UpstreamTest *t = g_new(UpstreamTest, 1);
                g_autofree char *name = k == 4
                    ? g_strdup_printf("upstream/%s/vmclock-abi",
                                      m->upstream[j])
                    : g_strdup_printf("upstream/%s/%s-%s", m->upstream[j],
                                      k & 1 ? "to" : "from",
                                      k & 2 ? "savevm" : "live");

                *t = (UpstreamTest) { m, m->upstream[j], k & 1, k & 2 };
                add_case(m, name, t,
                         k == 4 ? test_upstream_vmclock : test_upstream);
            }
        }
    }

    ret = g_test_run();
    vm_teardown(arm);
    return ret;
}
