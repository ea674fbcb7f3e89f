/*
 * QTest for the VM Generation ID device
 *
 * The GUID is looked up the way a guest does it: RSDP, then RSDT or XSDT,
 * then the SSDT whose OEM table id is VMGENID, then its VGIA name, which the
 * firmware patched with the address of the page that holds the GUID.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/uuid.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "libqtest.h"
#include "libqos/libqos-pc.h"
#include "libqos/fw_cfg.h"
#include "standard-headers/linux/qemu_fw_cfg.h"
#include "boot-sector.h"
#include "acpi-utils.h"

#define GUID1 "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87"
#define GUID2 "f2d0a8c6-5b2e-4e7f-9a31-0c4d6e8b7a15"

#define GUID_OFFSET 40          /* from the start of the page */
#define GPE_VMGENID 0x20        /* bit 5 of the first GPE0 status byte */
#define RAM_SIZE    (128 * 1024 * 1024)
#define EVENT       "VM_GENERATION_ID_CHANGED"
#define UPSTREAM    "VMGENID_TEST_UPSTREAM_QEMU"

/*
 * How the guest finds the GUID and hears of a change: PC machines boot
 * SeaBIOS, which places the page, and raise GPE 5; microvm boots SeaBIOS
 * too and raises an event of its Generic Event Device; Arm virt, without
 * firmware, offers QEMU's own page and its interrupt through the
 * devicetree.
 */
typedef enum { PC, MICROVM, VIRT } MachineKind;

typedef struct {
    const char *name;
    MachineKind kind;
    uint16_t gpe0_sts;          /* PC: I/O port of the first GPE0 status */
    uint16_t pm1_cnt;           /* ... and of PM1 control, as SeaBIOS sets */
    uint8_t pam0, smram;        /* ... host bridge config registers */
    const char *s3_global;      /* ... enables S3 */
    uint8_t pm_devfn;           /* ... the PM device, which firmware sets */
    uint8_t pm_enable_reg, pm_enable;   /* ... up with base 0x600 */
    const char *extra;          /* a device a destination may lack */
} Machine;

static const Machine x86_machines[] = {
    { "pc", PC, 0xafe0, 0x604, 0x59, 0x72, "PIIX4_PM.disable_s3=0",
      1 << 3 | 3, 0x80, 0x01, "-device i6300esb" },
    { "q35", PC, 0x620, 0x604, 0x90, 0x9d, "ICH9-LPC.disable_s3=0",
      0x1f << 3, 0x44, 0x80, "-device i6300esb" },
    { "microvm", MICROVM, .extra = "-device virtio-rng-device" },
};

static const Machine arm_machines[] = {
    { "virt", VIRT, .extra = "-device virtio-rng-pci" },
};

#define MICROVM_GED_ESEL  0xfea00000  /* event selector, cleared on read */
#define GED_VMGENID_EVT   0x40
#define VIRT_GED_ESEL     0x09080000
#define VIRT_DT_PAGE      0x0c000000  /* the platform bus, first device */
#define VIRT_GICD         0x08000000
#define VIRT_SPI          112         /* the platform bus' first SPI */
#define VIRT_INTID        (VIRT_SPI + 32)

/* Debian's AAVMF, unless VMGENID_TEST_AAVMF_CODE and _VARS say otherwise. */
#define AAVMF_CODE        "/usr/share/AAVMF/AAVMF_CODE.fd"
#define AAVMF_VARS        "/usr/share/AAVMF/AAVMF_VARS.fd"

/* The disk SeaBIOS boots from; a qcow2 copy for savevm across processes. */
static char disk[] = "tests/vmgenid-test-disk-XXXXXX";

/* Seconds of TCG a test may wait for something that should happen. */
#define TIMEOUT 60

/*
 * Start QEMU under TCG: machine @machine (a type or alias), the boot
 * sector on @drive (the shared raw disk when NULL, with snapshot=on), the
 * binary in environment variable @var (NULL: the one under test).
 */
static QTestState *start_on(const char *machine, const char *var,
                            const char *drive, const char *args)
{
    g_autofree char *cmd = g_strdup_printf(
        "-machine %s -accel tcg -nodefaults -net none -m 128M"
        " -drive id=hd0,if=none,file=%s,format=%s"
        " -device ide-hd,drive=hd0 %s", machine, drive ?: disk,
        drive ? "qcow2" : "raw,snapshot=on", args);

    return qtest_init_ext(var ?: "QTEST_QEMU_BINARY", cmd, NULL, true);
}

/*
 * On microvm, SeaBIOS's debug console, to learn when it is done: it uses
 * fw_cfg until then, which the test must not disturb.
 */
typedef struct {
    char *path;
    int seen;                   /* "done" messages wait_ready() saw */
} BiosLog;

static char *bios_log_dir;
static GHashTable *bios_logs;   /* QTestState -> BiosLog */

static QTestState *start_vm(const Machine *m, const char *args)
{
    g_autofree char *cmd = NULL;
    static int count;
    QTestState *qts;
    BiosLog *log;

    switch (m->kind) {
    case PC:
        return start_on(m->name, NULL, NULL, args);
    case MICROVM:
        /* SeaBIOS finds nothing to boot: let it wait, not reboot. */
        log = g_new0(BiosLog, 1);
        log->path = g_strdup_printf("%s/bios-%d.log", bios_log_dir, count++);
        cmd = g_strdup_printf("-machine microvm -accel tcg -nodefaults"
                              " -net none -m 128M -boot reboot-timeout=-1"
                              " -chardev file,id=bios,path=%s"
                              " -device isa-debugcon,iobase=0x402,chardev=bios"
                              " %s", log->path, args);
        qts = qtest_init(cmd);
        /* A new QTestState may reuse a finished one's address. */
        g_hash_table_insert(bios_logs, qts, log);
        return qts;
    case VIRT:
        /* No firmware and no CPU that runs: QEMU's page is all there is. */
        cmd = g_strdup_printf("-machine virt -cpu cortex-a57 -nodefaults"
                              " -net none -m 128M %s", args);
        break;
    }
    return qtest_init(cmd);
}

/* How often SeaBIOS has said that it has nothing more to do. */
static int bios_done_count(QTestState *qts)
{
    BiosLog *log = g_hash_table_lookup(bios_logs, qts);
    static const char done[] = "No bootable device.";
    g_autofree char *text = NULL;
    gsize len = 0;
    const char *p;
    int n = 0;

    g_file_get_contents(log->path, &text, &len, NULL);
    for (p = text; p && (p = memmem(p, len - (p - text), done,
                                    strlen(done))); p++) {
        n++;
    }
    return n;
}

static uint64_t fw_cfg_addr_file(QTestState *qts);
static void virt_spi_edge(QTestState *qts);

/*
 * Wait until the guest can find the GUID: on PC machines until SeaBIOS
 * has booted the boot sector, on microvm until it has reported where it
 * placed the GUID. On virt, set up the interrupt as the guest would.
 */
static void wait_ready(QTestState *qts, const Machine *m)
{
    BiosLog *log;
    int i;

    switch (m->kind) {
    case PC:
        boot_sector_test(qts);
        break;
    case MICROVM:
        log = g_hash_table_lookup(bios_logs, qts);
        for (i = 0; i < TIMEOUT * 10 && bios_done_count(qts) <= log->seen;
             i++) {
            g_usleep(100 * 1000);
        }
        g_assert_cmpint(bios_done_count(qts), >, log->seen);
        log->seen++;
        break;
    case VIRT:
        virt_spi_edge(qts);
        break;
    }
}

/* Start QEMU and wait until the guest can find the GUID. */
static QTestState *boot(const Machine *m, const char *args)
{
    QTestState *qts = start_vm(m, args);

    wait_ready(qts, m);
    return qts;
}

/*
 * Read a table header at @addr: is it table @sig, with OEM table id @id
 * (NULL: any)?
 */
static bool is_table(QTestState *qts, uint64_t addr, const char *sig,
                     const char *id)
{
    uint8_t hdr[36];

    qtest_memread(qts, addr, hdr, sizeof(hdr));
    return !memcmp(hdr, sig, 4) && (!id || !memcmp(hdr + 16, id, 8));
}

/* Address of a table, found through the RSDP as a guest would. */
static uint64_t find_table(QTestState *qts, uint64_t rsdp_addr,
                           const char *sig, const char *id)
{
    uint8_t rsdp[36];
    uint64_t sdt, entry;
    uint32_t len;
    int size, i;

    acpi_fetch_rsdp_table(qts, rsdp_addr, rsdp);
    if (rsdp[15] >= 2 && ldq_le_p(rsdp + 24)) {
        sdt = ldq_le_p(rsdp + 24);      /* XSDT */
        size = 8;
    } else {
        sdt = ldl_le_p(rsdp + 16);      /* RSDT */
        size = 4;
    }
    len = qtest_readl(qts, sdt + 4);
    for (i = 36; i + size <= len; i += size) {
        entry = size == 8 ? qtest_readq(qts, sdt + i)
                          : qtest_readl(qts, sdt + i);
        if (is_table(qts, entry, sig, id)) {
            return entry;
        }
    }
    g_assert_not_reached();
}

static uint64_t find_ssdt(QTestState *qts, uint64_t rsdp_addr)
{
    return find_table(qts, rsdp_addr, "SSDT", "VMGENID");
}

/* The DSDT, which the FADT points to (X_DSDT, else DSDT). */
static uint64_t find_dsdt(QTestState *qts, uint64_t rsdp_addr)
{
    uint64_t fadt = find_table(qts, rsdp_addr, "FACP", NULL);

    return qtest_readl(qts, fadt + 4) >= 148 && qtest_readq(qts, fadt + 140)
           ? qtest_readq(qts, fadt + 140) : qtest_readl(qts, fadt + 40);
}

/* The table's bytes, with its checksum verified. */
static uint8_t *fetch_table(QTestState *qts, uint64_t addr, uint32_t *len)
{
    uint8_t *table;

    *len = qtest_readl(qts, addr + 4);
    table = g_malloc(*len);
    qtest_memread(qts, addr, table, *len);
    g_assert_cmpint(acpi_calc_checksum(table, *len), ==, 0);
    return table;
}

/* VGIA must be the first AML object: NameOp "VGIA" DWordPrefix <value>. */
static uint32_t vgia_of(const uint8_t *table, uint32_t len)
{
    static const uint8_t name[] = { 0x08, 'V', 'G', 'I', 'A', 0x0c };

    g_assert_cmpint(len, >=, 36 + sizeof(name) + 4);
    g_assert(!memcmp(table + 36, name, sizeof(name)));
    return ldl_le_p(table + 36 + sizeof(name));
}

/* Address of the GUID as the guest finds it, in RAM at @ram. */
static uint64_t guid_addr_in(QTestState *qts, uint64_t rsdp_addr,
                             uint64_t ram, uint64_t ram_size)
{
    g_autofree uint8_t *table = NULL;
    uint32_t len, vgia;

    table = fetch_table(qts, find_ssdt(qts, rsdp_addr), &len);
    vgia = vgia_of(table, len);
    g_assert_cmphex(vgia & 0xfff, ==, 0);   /* the firmware gives a page */
    g_assert_cmphex(vgia, >=, ram);
    g_assert_cmphex(vgia, <, ram + ram_size);
    return vgia + GUID_OFFSET;
}

static uint64_t guid_addr(QTestState *qts, uint64_t rsdp_addr)
{
    return guid_addr_in(qts, rsdp_addr, 0x1000, RAM_SIZE - 0x1000);
}

static uint64_t seabios_guid_addr(QTestState *qts)
{
    return guid_addr(qts, acpi_find_rsdp_address(qts));
}

/* Where the guest finds the GUID, after boot(). */
static uint64_t machine_guid_addr(QTestState *qts, const Machine *m)
{
    return m->kind == VIRT ? VIRT_DT_PAGE : seabios_guid_addr(qts);
}

/* The GUID in guest memory, in its text form. */
static char *guest_guid(QTestState *qts, uint64_t addr)
{
    QemuUUID le;

    qtest_memread(qts, addr, &le, sizeof(le));
    le = qemu_uuid_bswap(le);
    return qemu_uuid_unparse_strdup(&le);
}

static void assert_guest_guid(QTestState *qts, uint64_t addr,
                              const char *expected)
{
    g_autofree char *guid = guest_guid(qts, addr);

    g_assert_cmpstr(guid, ==, expected);
}

static char *qmp_guid(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-vm-generation-id'}");
    char *guid;

    g_assert(qdict_haskey(rsp, "return"));
    guid = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "return"), "guid"));
    qobject_unref(rsp);
    return guid;
}

static void assert_qmp_guid(QTestState *qts, const char *expected)
{
    g_autofree char *guid = qmp_guid(qts);

    g_assert_cmpstr(guid, ==, expected);
}

static char *hmp_guid(QTestState *qts)
{
    char *out = qtest_hmp(qts, "info vm-generation-id");

    g_strchomp(out);
    return out;
}

static char *qom_guid(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                           " {'path': '/machine/peripheral/vg',"
                           "  'property': 'guid'}}");
    char *guid = g_strdup(qdict_get_str(rsp, "return"));

    qobject_unref(rsp);
    return guid;
}

/* Configure the devicetree's interrupt as the guest does: edge, rising. */
static void virt_spi_edge(QTestState *qts)
{
    uint64_t icfgr = VIRT_GICD + 0xc00 + VIRT_INTID / 16 * 4;

    qtest_writel(qts, icfgr, qtest_readl(qts, icfgr) |
                 2u << (VIRT_INTID % 16 * 2));
}

/* Whether QEMU's own page's interrupt is pending in the GIC; clears it. */
static bool dt_notified(QTestState *qts)
{
    uint64_t ispendr = VIRT_GICD + 0x200 + VIRT_INTID / 32 * 4;
    uint32_t bit = 1u << (VIRT_INTID % 32);
    bool raised = qtest_readl(qts, ispendr) & bit;

    qtest_writel(qts, ispendr + 0x80, bit);       /* GICD_ICPENDR */
    return raised;
}

/*
 * Whether the machine raised the ACPI notification since the last call:
 * the GPE status bit (cleared by writing it) or the GED's event selector
 * (cleared by reading it).
 */
static bool acpi_notified(QTestState *qts, const Machine *m)
{
    bool raised;

    switch (m->kind) {
    case PC:
        raised = qtest_inb(qts, m->gpe0_sts) & GPE_VMGENID;
        qtest_outb(qts, m->gpe0_sts, GPE_VMGENID);
        return raised;
    case MICROVM:
        return qtest_readl(qts, MICROVM_GED_ESEL) & GED_VMGENID_EVT;
    case VIRT:
        return qtest_readl(qts, VIRT_GED_ESEL) & GED_VMGENID_EVT;
    }
    g_assert_not_reached();
}

/*
 * Whether the machine notified the guest of a change since the last call,
 * the way the guest of these tests listens: through ACPI on x86, through
 * the devicetree on virt.
 */
static bool notified(QTestState *qts, const Machine *m)
{
    return m->kind == VIRT ? dt_notified(qts) : acpi_notified(qts, m);
}

/* The error text of a QMP response, which must be an error. */
static void assert_error(QDict *rsp, const char *expected)
{
    g_assert(qdict_haskey(rsp, "error"));
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    expected);
    qobject_unref(rsp);
}

static void set_guid(QTestState *qts, const char *guid)
{
    qtest_qmp_assert_success(qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", guid);
}

static void hmp_ok(QTestState *qts, const char *line)
{
    g_autofree char *out = qtest_hmp(qts, "%s", line);

    g_assert_cmpstr(out, ==, "");
}

/* Forget the events seen so far. */
static void drop_events(QTestState *qts)
{
    QDict *ev;

    qtest_qmp_assert_success(qts, "{'execute': 'query-status'}");
    while ((ev = qtest_qmp_event_ref(qts, EVENT))) {
        qobject_unref(ev);
    }
}

/*
 * Check the change events since drop_events(): exactly one for @guid with
 * @reason, or none when @reason is NULL. Pending events arrive with the
 * reply to any command, so ask for one first.
 */
static void assert_event(QTestState *qts, const char *guid, const char *reason)
{
    QDict *ev, *data;

    qtest_qmp_assert_success(qts, "{'execute': 'query-status'}");
    ev = qtest_qmp_event_ref(qts, EVENT);
    if (!reason) {
        g_assert_null(ev);
        return;
    }
    g_assert_nonnull(ev);
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "guid"), ==, guid);
    g_assert_cmpstr(qdict_get_str(data, "reason"), ==, reason);
    qobject_unref(ev);
    g_assert_null(qtest_qmp_event_ref(qts, EVENT));
}

/*
 * The guest was told of a change to @guid for @reason (GPE 5 and the
 * event), or of nothing when @reason is NULL. Clears what it saw.
 */
static void assert_told(QTestState *qts, const Machine *m, const char *guid,
                        const char *reason)
{
    g_assert_cmpint(notified(qts, m), ==, reason != NULL);
    assert_event(qts, guid, reason);
}

static char *run_status(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-status'}");
    char *status = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "return"),
                                          "status"));

    qobject_unref(rsp);
    return status;
}

static void wait_status(QTestState *qts, const char *want)
{
    int i;

    for (i = 0; i < TIMEOUT * 10; i++) {
        g_autofree char *status = run_status(qts);

        if (!strcmp(status, want)) {
            return;
        }
        g_usleep(100 * 1000);
    }
    g_assert_not_reached();
}

/* The command-line GUID is what the guest reads and what QEMU reports. */
static void test_cmdline(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=" GUID1);
    g_autofree char *hmp = hmp_guid(qts);
    g_autofree char *qom = qom_guid(qts);

    assert_guest_guid(qts, machine_guid_addr(qts, m), GUID1);
    assert_qmp_guid(qts, GUID1);
    g_assert_cmpstr(hmp, ==, GUID1);
    g_assert_cmpstr(qom, ==, GUID1);
    g_assert_false(notified(qts, m));
    assert_event(qts, NULL, NULL);
    qtest_quit(qts);
}

/* "auto" draws a random GUID, the same one everywhere. */
static void test_auto(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=auto");
    QTestState *other;
    g_autofree char *guest = guest_guid(qts, machine_guid_addr(qts, m));
    g_autofree char *hmp = hmp_guid(qts);
    g_autofree char *qom = qom_guid(qts);
    g_autofree char *other_guid = NULL;
    QemuUUID uuid;

    g_assert_cmpint(qemu_uuid_parse(guest, &uuid), ==, 0);
    g_assert_false(qemu_uuid_is_null(&uuid));
    assert_qmp_guid(qts, guest);
    g_assert_cmpstr(hmp, ==, guest);
    g_assert_cmpstr(qom, ==, guest);

    /* Without the property the device draws one too, a different one. */
    other = qtest_initf("-machine %s -device vmgenid", m->name);
    other_guid = qmp_guid(other);
    g_assert_cmpstr(other_guid, !=, guest);
    qtest_quit(other);
    qtest_quit(qts);
}

/*
 * The SSDT, disassembled by iasl, is exactly the expected ASL (with the
 * firmware-patched VGIA value masked), and iasl warns about nothing.
 */
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
 * iasl's output without its banner comments, trailing blanks and the
 * firmware-patched VGIA value.
 */
static char *asl_body(const char *dsl)
{
    g_autoptr(GRegex) vgia = g_regex_new("Name \\(VGIA, 0x[0-9A-F]{8}\\)",
                                         0, 0, NULL);
    g_autoptr(GRegex) blanks = g_regex_new("[ \t]+$", G_REGEX_MULTILINE,
                                           0, NULL);
    const char *start = strstr(dsl, "DefinitionBlock");
    g_autofree char *masked = NULL;

    g_assert_nonnull(start);
    masked = g_regex_replace_literal(vgia, start, -1, 0,
                                     "Name (VGIA, 0xXXXXXXXX)", 0, NULL);
    return g_strchomp(g_regex_replace_literal(blanks, masked, -1, 0, "", 0,
                                              NULL));
}

/* iasl's disassembly of @table, trimmed by asl_body(). */
static char *disassemble(const uint8_t *table, uint32_t len)
{
    g_autofree char *dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *aml_path = g_build_filename(dir, "table.aml", NULL);
    g_autofree char *dsl_path = g_build_filename(dir, "table.dsl", NULL);
    g_autofree char *out = NULL, *err = NULL, *dsl = NULL;
    const char *argv[] = { "iasl", "-d", aml_path, NULL };
    int status;

    g_assert_true(g_file_set_contents(aml_path, (char *)table, len, NULL));
    g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, NULL));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_null(strstr(out, "Warning"));
    g_assert_null(strstr(err, "Warning"));
    g_assert_true(g_file_get_contents(dsl_path, &dsl, NULL, NULL));
    unlink(aml_path);
    unlink(dsl_path);
    rmdir(dir);
    return asl_body(dsl);
}

/* The SSDT as iasl sees it: with \_GPE._E05 on PC machines only. */
static void assert_ssdt(QTestState *qts, uint64_t rsdp, bool gpe)
{
    g_autofree uint8_t *table = NULL;
    g_autofree char *body = NULL;
    g_autofree char *expected = g_strconcat(expected_asl,
                                            gpe ? expected_asl_gpe : "",
                                            "}", NULL);
    uint32_t len;

    table = fetch_table(qts, find_ssdt(qts, rsdp), &len);
    body = disassemble(table, len);
    g_assert_cmpstr(body, ==, expected);
}

/*
 * A Generic Event Device's _EVT in the DSDT notifies \_SB.VGEN on event
 * bit 0x40, which GED_VMGENID_EVT tests read back.
 */
static void assert_ged_aml(QTestState *qts, uint64_t rsdp)
{
    g_autoptr(GRegex) branch = g_regex_new(
        "Method \\(_EVT, 1, Serialized\\).*"
        "If \\(\\(\\(Local0 & 0x40\\) == 0x40\\)\\)\\s*\\{\\s*"
        "Notify \\(\\\\_SB\\.VGEN, 0x80\\)", G_REGEX_DOTALL, 0, NULL);
    uint64_t dsdt = find_dsdt(qts, rsdp);
    g_autofree uint8_t *table = NULL;
    g_autofree char *body = NULL;
    uint32_t len;

    table = fetch_table(qts, dsdt, &len);
    body = disassemble(table, len);
    g_assert_true(g_regex_match(branch, body, 0, NULL));
}

static void test_ssdt(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,guid=" GUID1);
    uint64_t rsdp = acpi_find_rsdp_address(qts);

    assert_ssdt(qts, rsdp, m->kind == PC);
    if (m->kind == MICROVM) {
        assert_ged_aml(qts, rsdp);
    }
    qtest_quit(qts);
}

/*
 * fw_cfg as a guest uses it: I/O ports on x86, MMIO on Arm virt; DMA
 * without the allocator that qfw_cfg_write_file needs.
 */
#define FW_CFG_IO        0x510
#define VIRT_FW_CFG      0x09020000
#define VIRT_RAM         0x40000000

static bool arm(void)
{
    return !strcmp(qtest_get_arch(), "aarch64");
}

/* Guest memory the fw_cfg helpers may clobber. */
static uint64_t dma_scratch(void)
{
    return (arm() ? VIRT_RAM : 0) + 0x400000;
}

/*
 * One fw_cfg DMA operation, as a guest issues it: @control with @len
 * bytes at dma_scratch(). Returns the control word QEMU leaves behind.
 */
static uint32_t fw_cfg_dma(QTestState *qts, uint16_t key, uint32_t control,
                           uint32_t len)
{
    const uint64_t desc = dma_scratch() + 0x1000;
    struct fw_cfg_dma_access access = {
        .control = cpu_to_be32(control | (uint32_t)key << 16),
        .length = cpu_to_be32(len),
        .address = cpu_to_be64(dma_scratch()),
    };

    qtest_memwrite(qts, desc, &access, sizeof(access));
    /* The address register, big endian: the high half, then the low. */
    if (arm()) {
        qtest_writel(qts, VIRT_FW_CFG + 16, cpu_to_be32(desc >> 32));
        qtest_writel(qts, VIRT_FW_CFG + 20, cpu_to_be32((uint32_t)desc));
    } else {
        qtest_outl(qts, FW_CFG_IO + 4, cpu_to_be32(desc >> 32));
        qtest_outl(qts, FW_CFG_IO + 8, cpu_to_be32((uint32_t)desc));
    }
    return be32_to_cpu(qtest_readl(qts, desc));
}

/* Read @len bytes of fw_cfg item @key, by DMA as a guest does. */
static void fw_cfg_read(QTestState *qts, uint16_t key, void *buf,
                        uint32_t len)
{
    g_assert_cmphex(fw_cfg_dma(qts, key, FW_CFG_DMA_CTL_SELECT |
                               FW_CFG_DMA_CTL_READ, len), ==, 0);
    qtest_memread(qts, dma_scratch(), buf, len);
}

/* The selector of fw_cfg file @name, 0 if there is none. */
static uint16_t fw_cfg_file_key(QTestState *qts, const char *name)
{
    g_autofree uint8_t *dir = NULL;
    struct fw_cfg_file *files;
    uint32_t count, i;

    /* A big-endian count, then the files. */
    fw_cfg_read(qts, FW_CFG_FILE_DIR, &count, sizeof(count));
    count = be32_to_cpu(count);
    dir = g_malloc(sizeof(count) + count * sizeof(*files));
    fw_cfg_read(qts, FW_CFG_FILE_DIR, dir,
                sizeof(count) + count * sizeof(*files));
    files = (struct fw_cfg_file *)(dir + sizeof(count));
    for (i = 0; i < count; i++) {
        if (!strcmp(files[i].name, name)) {
            return be16_to_cpu(files[i].select);
        }
    }
    return 0;
}

/* Write @len bytes of @data to etc/vmgenid_addr, @skip bytes into it. */
static uint32_t write_addr_file(QTestState *qts, const void *data, size_t len,
                                size_t skip)
{
    uint16_t key = fw_cfg_file_key(qts, "etc/vmgenid_addr");
    uint32_t ctl = FW_CFG_DMA_CTL_SELECT;

    g_assert_cmpint(key, !=, 0);
    if (skip) {
        g_assert_cmpint(fw_cfg_dma(qts, key, ctl | FW_CFG_DMA_CTL_SKIP, skip),
                        ==, 0);
        key = 0;
        ctl = 0;
    }
    qtest_memwrite(qts, dma_scratch(), data, len);
    return fw_cfg_dma(qts, key, ctl | FW_CFG_DMA_CTL_WRITE, len);
}

static uint32_t report_addr(QTestState *qts, uint64_t addr)
{
    uint64_t le = cpu_to_le64(addr);

    return write_addr_file(qts, &le, sizeof(le), 0);
}

static uint64_t fw_cfg_addr_file(QTestState *qts)
{
    uint16_t key = fw_cfg_file_key(qts, "etc/vmgenid_addr");
    uint64_t addr_le = 0;

    g_assert_cmpint(key, !=, 0);
    fw_cfg_read(qts, key, &addr_le, sizeof(addr_le));
    return le64_to_cpu(addr_le);
}

/*
 * Nothing is written before the firmware reports the page; a reset forgets
 * the page until the firmware, run again, reports it again.
 */
static void test_reset(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts;
    uint8_t zero[16] = {}, mem[16];
    uint64_t addr;

    qts = start_vm(m, "-S -device vmgenid,guid=" GUID1);
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, 0);
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    boot_sector_test(qts);
    addr = seabios_guid_addr(qts);
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, addr);

    /* Reset while stopped, so the firmware cannot run yet. */
    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    qtest_memwrite(qts, addr, zero, sizeof(zero));
    qtest_qmp_assert_success(qts, "{'execute': 'system_reset'}");
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, 0);
    set_guid(qts, GUID2);
    qtest_memread(qts, addr, mem, sizeof(mem));
    g_assert(!memcmp(mem, zero, sizeof(zero)));

    /* The firmware places the page again and finds the current GUID. */
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    boot_sector_test(qts);
    addr = seabios_guid_addr(qts);
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, addr);
    assert_guest_guid(qts, addr, GUID2);
    assert_qmp_guid(qts, GUID2);
    qtest_quit(qts);
}

/*
 * savevm, then loadvm: "auto" answers with a new GUID, a fixed GUID stays
 * as it is. @set_after: a set between the two, so that the snapshot holds
 * another value than QEMU. @paused: load into a stopped VM, which hears of
 * the change only when it runs again.
 */
static void test_loadvm(const Machine *m, const char *prop, bool set_after,
                        bool paused)
{
    g_autofree char *tmp = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *img = g_build_filename(tmp, "snap.qcow2", NULL);
    g_autofree char *args = NULL, *before = NULL, *after = NULL;
    g_autofree char *saved = NULL;
    bool fresh = !strcmp(prop, "auto");
    QTestState *qts;
    uint64_t addr;

    g_assert_true(mkimg(img, "qcow2", 1));
    args = g_strdup_printf("-drive if=none,id=snap,file=%s,format=qcow2"
                           " -device vmgenid,guid=%s", img, prop);
    qts = boot(m, args);
    addr = machine_guid_addr(qts, m);

    saved = qmp_guid(qts);
    hmp_ok(qts, "savevm s1");
    if (set_after) {
        set_guid(qts, GUID2);
        g_assert_true(notified(qts, m));
    }
    before = qmp_guid(qts);
    drop_events(qts);
    if (paused) {
        qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    }
    hmp_ok(qts, "loadvm s1");

    after = qmp_guid(qts);
    if (fresh) {
        g_assert_cmpstr(after, !=, before);
    } else {
        g_assert_cmpstr(after, ==, before);
    }
    if (paused) {
        /* Memory holds what the saved guest was told of, until cont. */
        assert_guest_guid(qts, addr, saved);
        assert_told(qts, m, NULL, NULL);
        qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    }
    assert_guest_guid(qts, addr, after);
    /* The guest had the snapshot's GUID: is the current one another? */
    assert_told(qts, m, after,
                fresh || set_after ? "snapshot-load" : NULL);
    qtest_quit(qts);
    unlink(img);
    rmdir(tmp);
}

static void test_loadvm_auto(const void *opaque)
{
    test_loadvm(opaque, "auto", false, false);
}

static void test_loadvm_fixed(const void *opaque)
{
    test_loadvm(opaque, GUID1, false, false);
}

static void test_loadvm_fixed_set(const void *opaque)
{
    test_loadvm(opaque, GUID1, true, false);
}

static void test_loadvm_paused(const void *opaque)
{
    test_loadvm(opaque, "auto", false, true);
}

/* set-vm-generation-id while running: unchanged, HMP, and bad input. */
static void test_set(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=" GUID1);
    uint64_t addr = machine_guid_addr(qts, m);
    g_autofree char *drawn = NULL;

    /* Running: in guest memory, the guest notified, the change reported. */
    drop_events(qts);
    set_guid(qts, GUID2);
    assert_guest_guid(qts, addr, GUID2);
    assert_qmp_guid(qts, GUID2);
    assert_told(qts, m, GUID2, "set");

    /* The same value again is no change. */
    set_guid(qts, GUID2);
    assert_told(qts, m, NULL, NULL);

    /* "auto" draws a new one. */
    set_guid(qts, "auto");
    drawn = qmp_guid(qts);
    g_assert_cmpstr(drawn, !=, GUID2);
    assert_guest_guid(qts, addr, drawn);
    assert_told(qts, m, drawn, "set");

    /* HMP, and qom-set of the property. */
    hmp_ok(qts, "set_vm_generation_id " GUID1);
    assert_guest_guid(qts, addr, GUID1);
    assert_told(qts, m, GUID1, "set");
    qtest_qmp_assert_success(qts, "{'execute': 'qom-set', 'arguments':"
                             " {'path': '/machine/peripheral/vg',"
                             "  'property': 'guid', 'value': %s}}", GUID2);
    assert_guest_guid(qts, addr, GUID2);
    assert_told(qts, m, GUID2, "set");
    qtest_quit(qts);
}

/*
 * While paused, QEMU reports the value at once; guest memory gets it, and
 * the guest hears of it, once, when it runs again, and not at all if the
 * value is back to the one it was told of.
 */
static void test_set_paused(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,guid=" GUID1);
    uint64_t addr = machine_guid_addr(qts, m);

    drop_events(qts);
    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    set_guid(qts, "auto");
    set_guid(qts, GUID2);
    assert_qmp_guid(qts, GUID2);
    assert_guest_guid(qts, addr, GUID1);
    assert_told(qts, m, NULL, NULL);
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    assert_guest_guid(qts, addr, GUID2);
    assert_told(qts, m, GUID2, "set");

    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    set_guid(qts, GUID1);
    set_guid(qts, GUID2);
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    assert_told(qts, m, NULL, NULL);

    /* stop/cont and a reset change nothing. */
    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    qtest_qmp_assert_success(qts, "{'execute': 'system_reset'}");
    wait_ready(qts, m);
    assert_guest_guid(qts, machine_guid_addr(qts, m), GUID2);
    assert_told(qts, m, NULL, NULL);
    qtest_quit(qts);
}

/* Set before the firmware placed the page: kept, then placed. */
static void test_set_early(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = start_vm(m, "-S -device vmgenid,guid=" GUID1);

    drop_events(qts);
    set_guid(qts, GUID2);
    assert_event(qts, NULL, NULL);
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, 0);
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    /* No page yet, so no GPE; management hears of it all the same. */
    assert_event(qts, GUID2, "set");
    wait_ready(qts, m);
    assert_guest_guid(qts, seabios_guid_addr(qts), GUID2);
    g_assert_false(notified(qts, m));
    qtest_quit(qts);
}

/* Wait for the end of a migration; return "completed" or "failed". */
static const char *wait_migration(QTestState *qts)
{
    const char *result = NULL;
    QDict *rsp;
    int i;

    for (i = 0; i < TIMEOUT * 10 && !result; i++) {
        const char *status;

        rsp = qtest_qmp(qts, "{'execute': 'query-migrate'}");
        status = qdict_get_try_str(qdict_get_qdict(rsp, "return"), "status");
        if (!g_strcmp0(status, "completed")) {
            result = "completed";
        } else if (!g_strcmp0(status, "failed")) {
            result = "failed";
        }
        qobject_unref(rsp);
        if (!result) {
            g_usleep(100 * 1000);
        }
    }
    g_assert_nonnull(result);
    return result;
}

/* Migrate @src to @dst, started with -incoming defer, through @uri. */
static void migrate_vm(QTestState *src, QTestState *dst, const char *uri)
{
    qtest_qmp_assert_success(dst, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s}}", uri);
    qtest_qmp_assert_success(src, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", uri);
    g_assert_cmpstr(wait_migration(src), ==, "completed");
    g_assert_cmpstr(wait_migration(dst), ==, "completed");
}

/*
 * Migrations between two of our QEMUs: the source started with
 * @src_guid, the destination with @dst_guid.
 */
typedef struct {
    const char *name;
    const char *src_guid, *dst_guid;
    enum { SAME, DST_FIXED, FRESH } expect;
} MigrateCase;

static const MigrateCase migrate_cases[] = {
    { "migrate", GUID1, GUID2, DST_FIXED },
    { "migrate-same", GUID1, GUID1, SAME },
    { "migrate-auto", "auto", "auto", FRESH },
    { "migrate-auto-to-fixed", "auto", GUID2, DST_FIXED },
    { "migrate-fixed-to-auto", GUID1, "auto", FRESH },
};

typedef struct {
    const Machine *m;
    const MigrateCase *c;
} MigrateTest;

typedef struct {
    char *dir, *uri, *file;
} Scratch;

static void scratch_init(Scratch *s)
{
    s->dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    s->uri = g_strdup_printf("unix:%s/migsock", s->dir);
    s->file = g_build_filename(s->dir, "state", NULL);
}

static void scratch_free(Scratch *s)
{
    unlink(s->uri + strlen("unix:"));
    unlink(s->file);
    rmdir(s->dir);
    g_free(s->dir);
    g_free(s->uri);
    g_free(s->file);
}

static void test_migrate(const void *opaque)
{
    const MigrateTest *t = opaque;
    const Machine *m = t->m;
    const MigrateCase *c = t->c;
    g_autofree char *src_args = g_strdup_printf("-device vmgenid,guid=%s",
                                                c->src_guid);
    g_autofree char *dst_args = g_strdup_printf(
        "-incoming defer -device vmgenid,guid=%s", c->dst_guid);
    g_autofree char *before = NULL, *own = NULL, *after = NULL;
    QTestState *src, *dst;
    Scratch tmp;
    uint64_t addr;

    scratch_init(&tmp);
    src = boot(m, src_args);
    addr = machine_guid_addr(src, m);
    before = qmp_guid(src);
    assert_guest_guid(src, addr, before);

    dst = start_vm(m, dst_args);
    own = qmp_guid(dst);
    migrate_vm(src, dst, tmp.uri);
    wait_status(dst, "running");

    after = qmp_guid(dst);
    assert_guest_guid(dst, addr, after);
    switch (c->expect) {
    case SAME:
        g_assert_cmpstr(after, ==, before);
        assert_told(dst, m, NULL, NULL);
        break;
    case DST_FIXED:
        g_assert_cmpstr(after, ==, c->dst_guid);
        assert_told(dst, m, after, "migration");
        break;
    case FRESH:
        /* Neither the source's nor one anybody saw before the load. */
        g_assert_cmpstr(after, !=, before);
        g_assert_cmpstr(after, !=, own);
        assert_told(dst, m, after, "migration");
        break;
    }
    qtest_quit(src);
    qtest_quit(dst);
    scratch_free(&tmp);
}

/*
 * Boot a guid=auto source, and migrate it to a guid=auto destination
 * started with @dst_opts. Returns the source; the destination, the GUID's
 * address and the source's GUID come back through the pointers.
 */
static QTestState *migrate_auto(const Machine *m, const char *dst_opts,
                                Scratch *tmp, QTestState **dst,
                                uint64_t *addr, char **src_guid)
{
    g_autofree char *args = g_strdup_printf(
        "%s -incoming defer -device vmgenid,guid=auto", dst_opts);
    QTestState *src = boot(m, "-device vmgenid,guid=auto");

    *addr = machine_guid_addr(src, m);
    *src_guid = qmp_guid(src);
    *dst = start_vm(m, args);
    drop_events(src);
    migrate_vm(src, *dst, tmp->uri);
    return src;
}

/*
 * A destination started with -S: it has its new GUID in memory when the
 * migration ends and hears of it at cont; unless management gave it the
 * source's GUID meanwhile, which continues the generation.
 */
static void test_migrate_paused(const Machine *m, bool keep_source_guid)
{
    g_autofree char *before = NULL, *after = NULL;
    QTestState *dst;
    Scratch tmp;
    uint64_t addr;

    scratch_init(&tmp);
    qtest_quit(migrate_auto(m, "-S", &tmp, &dst, &addr, &before));

    after = qmp_guid(dst);
    g_assert_cmpstr(after, !=, before);
    /* Memory holds what the guest was told of, until it runs. */
    assert_guest_guid(dst, addr, before);
    assert_told(dst, m, NULL, NULL);
    if (keep_source_guid) {
        set_guid(dst, before);
    }
    qtest_qmp_assert_success(dst, "{'execute': 'cont'}");
    if (keep_source_guid) {
        assert_told(dst, m, NULL, NULL);
    } else {
        assert_told(dst, m, after, "migration");
    }
    qtest_quit(dst);
    scratch_free(&tmp);
}

static void test_migrate_paused_cont(const void *opaque)
{
    test_migrate_paused(opaque, false);
}

static void test_migrate_paused_keep(const void *opaque)
{
    test_migrate_paused(opaque, true);
}

/* The source, resumed after its migration, goes on as it was. */
static void test_migrate_source_resumes(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *before = NULL;
    QTestState *src, *dst;
    Scratch tmp;
    uint64_t addr;

    scratch_init(&tmp);
    src = migrate_auto(m, "", &tmp, &dst, &addr, &before);
    qtest_quit(dst);

    qtest_qmp_assert_success(src, "{'execute': 'cont'}");
    wait_status(src, "running");
    assert_qmp_guid(src, before);
    assert_guest_guid(src, addr, before);
    assert_told(src, m, NULL, NULL);
    qtest_quit(src);
    scratch_free(&tmp);
}

/*
 * A state saved to a file and restored twice with "auto": two copies of
 * one guest, each with a GUID of its own, each told.
 */
static void test_restore_twice(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *uri = NULL, *saved = NULL;
    char *restored[2];
    QTestState *src, *dst;
    Scratch tmp;
    uint64_t addr;
    int i;

    scratch_init(&tmp);
    uri = g_strdup_printf("file:%s", tmp.file);
    src = boot(m, "-device vmgenid,guid=auto");
    addr = machine_guid_addr(src, m);
    saved = qmp_guid(src);
    qtest_qmp_assert_success(src, "{'execute': 'stop'}");
    qtest_qmp_assert_success(src, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", uri);
    g_assert_cmpstr(wait_migration(src), ==, "completed");
    qtest_quit(src);

    for (i = 0; i < 2; i++) {
        dst = start_vm(m, "-incoming defer -device vmgenid,guid=auto");
        qtest_qmp_assert_success(dst, "{'execute': 'migrate-incoming',"
                                 " 'arguments': {'uri': %s}}", uri);
        g_assert_cmpstr(wait_migration(dst), ==, "completed");
        qtest_qmp_assert_success(dst, "{'execute': 'cont'}");
        restored[i] = qmp_guid(dst);
        g_assert_cmpstr(restored[i], !=, saved);
        assert_guest_guid(dst, addr, restored[i]);
        assert_told(dst, m, restored[i], "migration");
        qtest_quit(dst);
    }
    g_assert_cmpstr(restored[0], !=, restored[1]);
    g_free(restored[0]);
    g_free(restored[1]);
    scratch_free(&tmp);
}

/*
 * An incoming migration that fails after the device's state was loaded
 * (the source has a device the destination lacks): QEMU stays up and
 * reports no change.
 */
static void test_migrate_failed(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *src, *dst;
    Scratch tmp;

    scratch_init(&tmp);
    src = boot(m, m->kind == PC ? "-device vmgenid,guid=" GUID1
                                  " -device i6300esb"
                  : m->kind == MICROVM ? "-device vmgenid,guid=" GUID1
                                         " -device virtio-rng-device"
                  : "-device vmgenid,guid=" GUID1 " -device virtio-rng-pci");
    dst = start_vm(m, "-incoming defer -device vmgenid,guid=" GUID2);
    drop_events(dst);
    qtest_qmp_assert_success(dst, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s,"
                             "  'exit-on-error': false}}", tmp.uri);
    qtest_qmp_assert_success(src, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", tmp.uri);
    g_assert_cmpstr(wait_migration(dst), ==, "failed");
    assert_told(dst, m, NULL, NULL);
    assert_qmp_guid(dst, GUID2);
    qtest_quit(src);
    qtest_quit(dst);
    scratch_free(&tmp);
}

/*
 * Migration with upstream QEMU 10.2.2 (@UPSTREAM names its binary) on a
 * machine type both have, with default options: live, or savevm in one
 * and loadvm in the other. The destination runs with its own GUID.
 */
typedef struct {
    const Machine *m;
    const char *type;           /* machine type or alias */
    bool to_upstream;
    bool savevm;
} UpstreamTest;

static void test_upstream(const void *opaque)
{
    const UpstreamTest *t = opaque;
    const char *src_var = t->to_upstream ? NULL : UPSTREAM;
    const char *dst_var = t->to_upstream ? UPSTREAM : NULL;
    g_autofree char *img = NULL;
    QTestState *src, *dst;
    Scratch tmp;
    uint64_t addr;

    g_assert_nonnull(g_getenv(UPSTREAM));
    scratch_init(&tmp);
    if (t->savevm) {
        /* A qcow2 boot disk both processes open, to hold the snapshot. */
        g_autofree char *cmd = NULL;

        img = g_build_filename(tmp.dir, "disk.qcow2", NULL);
        cmd = g_strdup_printf("%s convert -f raw -O qcow2 %s %s",
                              g_getenv("QTEST_QEMU_IMG"), disk, img);
        g_assert_cmpint(system(cmd), ==, 0);
    }
    src = start_on(t->type, src_var, img, "-device vmgenid,guid=" GUID1);
    boot_sector_test(src);
    addr = seabios_guid_addr(src);
    assert_guest_guid(src, addr, GUID1);

    if (t->savevm) {
        hmp_ok(src, "savevm s1");
        qtest_quit(src);
        dst = start_on(t->type, dst_var, img, "-S -device vmgenid,guid=" GUID2);
        hmp_ok(dst, "loadvm s1");
    } else {
        dst = start_on(t->type, dst_var, NULL,
                       "-incoming defer -device vmgenid,guid=" GUID2);
        migrate_vm(src, dst, tmp.uri);
        qtest_quit(src);
    }
    qtest_qmp_assert_success(dst, "{'execute': 'cont'}");
    assert_guest_guid(dst, addr, GUID2);
    assert_qmp_guid(dst, GUID2);
    g_assert_true(notified(dst, t->m));
    if (!dst_var) {
        assert_event(dst, GUID2, t->savevm ? "snapshot-load" : "migration");
    }
    qtest_quit(dst);
    if (img) {
        unlink(img);
    }
    scratch_free(&tmp);
}

/* A change while the guest sleeps in S3 is announced when it wakes up. */
static void test_s3(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *args = g_strdup_printf(
        "-global %s -device vmgenid,guid=" GUID1, m->s3_global);
    QTestState *qts = boot(m, args);
    uint64_t addr = seabios_guid_addr(qts);

    drop_events(qts);
    /* SLP_TYP 1 (QEMU's \_S3) and SLP_EN, as an OS suspending does. */
    qtest_outw(qts, m->pm1_cnt, (1 << 10) | (1 << 13));
    qtest_qmp_eventwait(qts, "SUSPEND");
    wait_status(qts, "suspended");

    set_guid(qts, GUID2);
    assert_guest_guid(qts, addr, GUID1);
    assert_event(qts, NULL, NULL);
    /* QEMU wakes the guest before it reads the next command. */
    qtest_qmp_assert_success(qts, "{'execute': 'system_wakeup'}");
    assert_event(qts, GUID2, "set");
    assert_guest_guid(qts, addr, GUID2);
    /*
     * SeaBIOS, finding no OS waking vector, reboots now: that a Linux
     * guest hears of the change is tests/functional's to show.
     */
    qtest_quit(qts);
}

/* A firmware file: the one the environment variable env names, else path. */
static const char *firmware_file(const char *env, const char *path)
{
    const char *file = g_getenv(env) ?: path;

    g_assert_true(g_file_test(file, G_FILE_TEST_EXISTS));
    return file;
}

/*
 * Start a machine (its arguments) that boots QEMU's UEFI ACPI test image
 * for arch through UEFI firmware: code read-only, a throwaway copy of the
 * varstore template vars.
 */
static QTestState *uefi_start(const char *machine, const char *arch,
                              const char *code, const char *vars)
{
    g_autofree char *name = g_strdup_printf("bios-tables-test.%s.iso.qcow2",
                                            arch);
    g_autofree char *image = g_test_build_filename(G_TEST_DIST, "..", "data",
                                                   "uefi-boot-images", name,
                                                   NULL);

    return qtest_initf("%s -accel tcg -nodefaults -net none"
                       " -drive if=pflash,format=raw,file=%s,readonly=on"
                       " -drive if=pflash,format=raw,file=%s,snapshot=on"
                       " -cdrom %s -device vmgenid,guid=" GUID1,
                       machine, code, vars, image);
}

/* One UEFI boot: q35 with Debian's OVMF and QEMU's UEFI ACPI test image. */
static void test_uefi(const void *opaque)
{
    QTestState *qts;
    uint64_t rsdp;

    qts = uefi_start("-machine q35 -m 128M", "x86_64",
                     firmware_file("VMGENID_TEST_OVMF_CODE",
                                   "/usr/share/OVMF/OVMF_CODE_4M.fd"),
                     firmware_file("VMGENID_TEST_OVMF_VARS",
                                   "/usr/share/OVMF/OVMF_VARS_4M.fd"));
    rsdp = acpi_find_rsdp_address_uefi(qts, 0, RAM_SIZE);
    assert_guest_guid(qts, guid_addr(qts, rsdp), GUID1);
    qtest_quit(qts);
}

/* Run QEMU to its startup error and check the first line it prints. */
static void assert_startup_error(const char *args, const char *expected)
{
    g_autofree char *cmd = g_strdup_printf("%s -display none -accel qtest %s",
                                           qtest_qemu_binary(NULL), args);
    g_autofree char *out = NULL, *err = NULL;
    g_auto(GStrv) argv = NULL;
    const char *line;
    int status;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, NULL));
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    line = strstr(err, ": ");
    g_assert_nonnull(line);
    *strchrnul(err, '\n') = '\0';
    g_assert_cmpstr(line + 2, ==, expected);
}

static const char *const bad_guids[] = {
    "",
    "Auto",
    "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb8",
    "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb877",
    "324e6eafxd1d1-4bf6-bf41-b9bb6c91fb87",
    "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb8g",
    "+24e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87",
    "0x4e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87",
    "324e6eafd1d14bf6bf41b9bb6c91fb87",
};

static void test_bad_guid(void)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(bad_guids); i++) {
        g_autofree char *args = g_strdup_printf(
            "-M pc -device 'vmgenid,guid=%s'", bad_guids[i]);
        g_autofree char *expected = g_strdup_printf(
            "-device vmgenid,guid=%s: '%s' is not a valid GUID",
            bad_guids[i], bad_guids[i]);

        assert_startup_error(args, expected);
    }
}

/*
 * A long or odd string is quoted only in part, and only printable: the
 * first 40 characters, then "...".
 */
static void test_bad_guid_long(void)
{
    QTestState *qts = qtest_init("-M pc -device vmgenid,id=vg");
    g_autofree char *huge = g_strnfill(100 * 1024, 'a');
    g_autofree char *prefix = g_strnfill(40, 'a');
    g_autofree char *expected = g_strdup_printf("'%s...' is not a valid GUID",
                                                prefix);
    g_autofree char *guid = qmp_guid(qts);

    assert_error(qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': %s}}", huge), expected);
    assert_error(qtest_qmp(qts, "{'execute': 'qom-set', 'arguments':"
                           " {'path': '/machine/peripheral/vg',"
                           "  'property': 'guid', 'value': %s}}", huge),
                 expected);
    assert_error(qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': %s}}", "ab\ncd\033[1m"),
                 "'ab?cd?[1m' is not a valid GUID");
    assert_error(qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': 'xyz'}}"),
                 "'xyz' is not a valid GUID");
    assert_qmp_guid(qts, guid);
    qtest_quit(qts);
}

/* Whether QEMU has QOM type @type. */
static bool qtest_has_type(const char *type)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *rsp = qtest_qmp(qts, "{'execute': 'qom-list-types',"
                           " 'arguments': {'abstract': false}}");
    const QListEntry *e;
    bool found = false;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
        QDict *t = qobject_to(QDict, qlist_entry_obj(e));

        found |= !strcmp(qdict_get_str(t, "name"), type);
    }
    qobject_unref(rsp);
    qtest_quit(qts);
    return found;
}

/*
 * Confidential guests: their memory is not QEMU's to write. (SEV's object
 * exists where QEMU is built with KVM; SEV-SNP and TDX need KVM before any
 * device is created.)
 */
static void test_refused_confidential(void)
{
    if (!qtest_has_type("sev-guest")) {
        g_test_skip("this QEMU has no sev-guest");
        return;
    }
    assert_startup_error("-M q35,confidential-guest-support=sev0"
                         " -object sev-guest,id=sev0,cbitpos=47,"
                         "reduced-phys-bits=1 -device vmgenid",
        "-device vmgenid: vmgenid cannot work with confidential guest"
        " support: QEMU cannot write into the guest's private memory");
}

static void test_refused(void)
{
    assert_startup_error("-M pc -device vmgenid -device vmgenid",
        "-device vmgenid: only one vmgenid device is allowed");
    assert_startup_error("-M pc,acpi=off -device vmgenid",
        "-device vmgenid: vmgenid needs ACPI, which is disabled (acpi=off)");
    assert_startup_error("-M q35,acpi=off -device vmgenid",
        "-device vmgenid: vmgenid needs ACPI, which is disabled (acpi=off)");
    assert_startup_error("-M pc -global fw_cfg_io.dma_enabled=off"
                         " -device vmgenid",
        "-device vmgenid: vmgenid needs fw_cfg with DMA, which this machine"
        " does not have or has disabled");
    assert_startup_error("-M isapc -device vmgenid",
        "-device vmgenid: Parameter 'driver' expects a dynamic sysbus device"
        " type for the machine");
    /* (Without ACPI microvm's default firmware is qboot: name SeaBIOS.) */
    assert_startup_error("-M microvm,acpi=off"
                         " -bios /usr/share/seabios/bios-microvm.bin"
                         " -device vmgenid",
        "-device vmgenid: vmgenid needs ACPI, which is disabled (acpi=off)");
    assert_startup_error("-M none -device vmgenid",
        "-device vmgenid: Parameter 'driver' expects a dynamic sysbus device"
        " type for the machine");
}

/* qboot stops at a WRITE_POINTER command: refused, whatever the machine. */
static void test_refused_qboot(void)
{
    g_autofree char *dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *rom = g_build_filename(dir, "qboot.rom", NULL);
    g_autofree char *args = NULL;
    g_autofree char *data = NULL;
    gsize len;
    int i;
    static const char *const machines[] = { "microvm", "pc" };

    /* Any ROM image will do: the name is what says it is qboot. */
    g_assert_true(g_file_get_contents("/usr/share/seabios/bios-microvm.bin",
                                      &data, &len, NULL));
    g_assert_true(g_file_set_contents(rom, data, len, NULL));
    for (i = 0; i < ARRAY_SIZE(machines); i++) {
        g_free(args);
        args = g_strdup_printf("-M %s -bios %s -device vmgenid",
                               machines[i], rom);
        assert_startup_error(args,
            "-device vmgenid: vmgenid needs firmware that carries out ACPI"
            " WRITE_POINTER commands, which qboot does not");
    }
    unlink(rom);
    rmdir(dir);
}

static void test_hotplug(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = qtest_initf("-machine %s", m->name);

    assert_error(qtest_qmp(qts, "{'execute': 'device_add',"
                           " 'arguments': {'driver': 'vmgenid'}}"),
                 "Device 'vmgenid' does not support hotplugging");
    assert_error(qtest_qmp(qts, "{'execute': 'query-vm-generation-id'}"),
                 "there is no vmgenid device");
    assert_error(qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                           " 'arguments': {'guid': 'auto'}}"),
                 "there is no vmgenid device");
    qtest_quit(qts);
}

/* The device cannot be taken away, by device_del or by unrealizing it. */
static void test_unrealize(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=" GUID1);
    uint64_t addr = machine_guid_addr(qts, m);

    assert_error(qtest_qmp(qts, "{'execute': 'qom-set', 'arguments':"
                           " {'path': '/machine/peripheral/vg',"
                           "  'property': 'realized', 'value': false}}"),
                 "the vmgenid device cannot be removed");
    assert_error(qtest_qmp(qts, "{'execute': 'device_del',"
                           " 'arguments': {'id': 'vg'}}"),
                 "the vmgenid device cannot be removed");
    qtest_qmp_assert_success(qts, "{'execute': 'qom-set', 'arguments':"
                             " {'path': '/machine/peripheral/vg',"
                             "  'property': 'realized', 'value': true}}");
    set_guid(qts, GUID2);
    assert_guest_guid(qts, addr, GUID2);
    assert_told(qts, m, GUID2, "set");
    qtest_quit(qts);
}

/* Configuration space of device @devfn on bus 0, through ports CF8/CFC. */
static void pci_cfg_writeb(QTestState *qts, int devfn, uint8_t reg,
                           uint8_t val)
{
    qtest_outl(qts, 0xcf8, 0x80000000 | devfn << 8 | (reg & ~3));
    qtest_outb(qts, 0xcfc + (reg & 3), val);
}

static void pci_cfg_writel(QTestState *qts, int devfn, uint8_t reg,
                           uint32_t val)
{
    qtest_outl(qts, 0xcf8, 0x80000000 | devfn << 8 | reg);
    qtest_outl(qts, 0xcfc, val);
}

/* A window of guest memory filled with a pattern, to check afterwards. */
typedef struct {
    uint64_t start, len;
    uint8_t *data;
} Window;

static void window_fill(QTestState *qts, Window *w, uint64_t start,
                        uint64_t len)
{
    uint64_t i;

    w->start = start;
    w->len = len;
    w->data = g_malloc(len);
    for (i = 0; i < len; i++) {
        w->data[i] = i * 7 + (start >> 12);
    }
    qtest_memwrite(qts, start, w->data, len);
}

static void window_check(QTestState *qts, Window *w)
{
    g_autofree uint8_t *now = g_malloc(w->len);

    qtest_memread(qts, w->start, now, w->len);
    g_assert(!memcmp(now, w->data, w->len));
    g_free(w->data);
}

#define VGA_DEVFN     (5 << 3)
#define VGA_BAR       0xe0000000ULL
#define MEM_DEV_BASE  0x100000000ULL    /* where -m maxmem puts devices */
#define Q35_ESMRAMC   0x9e
#define TSEG_BASE     (RAM_SIZE - 0x100000)

/*
 * Addresses a misbehaving guest may report through etc/vmgenid_addr.
 * None may make QEMU write anywhere but plain guest RAM; each refusal is
 * logged.
 */
static void test_hostile(const void *opaque)
{
    const Machine *m = opaque;
    const bool q35 = !strcmp(m->name, "q35");
    g_autofree char *tmp = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(tmp, "log", NULL);
    g_autofree char *args = NULL, *logged = NULL;
    g_autoptr(GString) want = g_string_new("");
    const struct {
        uint64_t addr;
        const char *why;        /* NULL: nothing to log */
    } cases[] = {
        { 0, NULL },
        { 0x300001, "is not 8-byte aligned" },
        { RAM_SIZE, "is not in the machine's RAM" },          /* a hole */
        { RAM_SIZE - 8, "runs past the end of a RAM region" },
        { 0xfed00000, "is not in the machine's RAM" },        /* HPET */
        { 0xfffff000, "is not in the machine's RAM" },        /* BIOS ROM */
        { 0x180000000ULL, "is not in the machine's RAM" },    /* 6 GiB */
        { 0xfffffffffffffff8ULL, "is out of range" },
        { 0xf0100, "is in read-only memory" },   /* PAM-protected shadow */
        { 0xa0100, "is in SMRAM" },              /* opened SMRAM */
        { VGA_BAR + 0x100, "is not in the machine's RAM" },   /* vram BAR */
        { MEM_DEV_BASE + 0x28, "is not in the machine's RAM" }, /* virtio-mem */
        { TSEG_BASE + 0x28, "is not in the machine's RAM" },  /* last */
    };
    Window windows[6];
    QTestState *qts;
    QDict *rsp;
    QList *devs;
    int i;

    args = g_strdup_printf(
        "-S -d guest_errors -D %s -m 128M,maxmem=1G -device VGA,addr=05.0"
        " -object memory-backend-ram,id=vmem,size=128M"
        " -device virtio-mem-pci,memdev=vmem,requested-size=0"
        " -device vmgenid,id=vg,guid=" GUID1, log);
    qts = start_vm(m, args);

    /* The virtio-mem device sits where this test expects it. */
    rsp = qtest_qmp(qts, "{'execute': 'query-memory-devices'}");
    devs = qdict_get_qlist(rsp, "return");
    g_assert_cmpint(qlist_size(devs), ==, 1);
    g_assert_cmphex(qdict_get_int(qdict_get_qdict(qobject_to(QDict,
                        qlist_peek(devs)), "data"), "memaddr"), ==,
                    MEM_DEV_BASE);
    qobject_unref(rsp);

    window_fill(qts, &windows[0], 0, 0x2000);
    window_fill(qts, &windows[1], 0x300000, 0x2000);
    window_fill(qts, &windows[2], RAM_SIZE - 0x200000, 0x200000);
    /* The F segment: RAM, then read-only, as firmware leaves it. */
    pci_cfg_writeb(qts, 0, m->pam0, 0x30);
    window_fill(qts, &windows[3], 0xf0000, 0x1000);
    pci_cfg_writeb(qts, 0, m->pam0, 0x10);
    /* SMRAM enabled and open: RAM shows at 0xa0000. */
    pci_cfg_writeb(qts, 0, m->smram, 0x4a);
    window_fill(qts, &windows[4], 0xa0000, 0x1000);
    /* The VGA's video RAM, mapped where the guest chose. */
    pci_cfg_writel(qts, VGA_DEVFN, 0x10, VGA_BAR);
    pci_cfg_writeb(qts, VGA_DEVFN, 0x04, 0x02);
    window_fill(qts, &windows[5], VGA_BAR, 0x1000);

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        if (cases[i].addr == TSEG_BASE + 0x28) {
            if (!q35) {
                continue;       /* plain RAM on pc */
            }
            /* TSEG: the top MiB of RAM, hidden from all but SMM. */
            pci_cfg_writeb(qts, 0, Q35_ESMRAMC, 0x01);
        }
        g_assert_cmphex(report_addr(qts, cases[i].addr), ==, 0);
        g_assert_cmphex(fw_cfg_addr_file(qts), ==, cases[i].addr);
        if (cases[i].why) {
            g_string_append_printf(want, "vmgenid: GUID address 0x%" PRIx64
                                   " %s; not writing it\n",
                                   cases[i].addr, cases[i].why);
        }
        /* The device has no address now: a change reaches nothing. */
        set_guid(qts, i & 1 ? GUID2 : GUID1);
    }

    /* A partial write, at either end, and an over-long one. */
    {
        uint8_t half[4] = { 0x28, 0, 0x20, 0 }, over[16] = { 0x28, 0, 0x20 };

        g_assert_cmphex(write_addr_file(qts, half, sizeof(half), 0), ==, 0);
        g_string_append(want, "vmgenid: partial write of etc/vmgenid_addr"
                        " (4 bytes at offset 0); ignoring it\n");
        g_assert_cmphex(write_addr_file(qts, half, sizeof(half), 4), ==, 0);
        g_string_append(want, "vmgenid: partial write of etc/vmgenid_addr"
                        " (4 bytes at offset 4); ignoring it\n");
        /* fw_cfg itself refuses a write past the end of the file. */
        g_assert_cmphex(write_addr_file(qts, over, sizeof(over), 0), ==,
                        FW_CFG_DMA_CTL_ERROR);
        set_guid(qts, GUID2);
    }

    if (q35) {
        /* Out of TSEG's shadow, the top of RAM shows what it holds. */
        pci_cfg_writeb(qts, 0, Q35_ESMRAMC, 0);
    }
    for (i = 0; i < ARRAY_SIZE(windows); i++) {
        window_check(qts, &windows[i]);
    }
    g_assert_true(g_file_get_contents(log, &logged, NULL, NULL));
    g_assert_cmpstr(logged, ==, want->str);
    assert_qmp_guid(qts, GUID2);

    /*
     * A sane address is still honoured afterwards. The VM never ran, so
     * the changes were only recorded: it gets the GUID the guest was told
     * of, the first one.
     */
    g_assert_cmphex(report_addr(qts, 0x200028), ==, 0);
    assert_guest_guid(qts, 0x200028, GUID1);

    qtest_quit(qts);
    unlink(log);
    rmdir(tmp);
}

/*
 * In a running guest, a change is notified only when it landed in guest
 * memory: not with a refused address (the RSDP, in the F segment that
 * SeaBIOS made read-only), which stays untouched.
 */
static void test_hostile_running(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,guid=" GUID1);
    uint64_t addr = seabios_guid_addr(qts);
    uint64_t rsdp = acpi_find_rsdp_address(qts);
    uint8_t before[20], after[20];

    qtest_memread(qts, rsdp, before, sizeof(before));
    g_assert(!memcmp(before, "RSD PTR ", 8));
    drop_events(qts);
    g_assert_cmphex(report_addr(qts, rsdp), ==, 0);
    set_guid(qts, GUID2);
    /* QEMU's value changed, so management hears of it; the guest not. */
    g_assert_false(notified(qts, m));
    assert_event(qts, GUID2, "set");
    qtest_memread(qts, rsdp, after, sizeof(after));
    g_assert(!memcmp(after, before, sizeof(before)));

    /* The firmware's address again: the next change lands, and is told. */
    g_assert_cmphex(report_addr(qts, addr), ==, 0);
    assert_guest_guid(qts, addr, GUID2);
    g_assert_false(notified(qts, m));
    set_guid(qts, GUID1);
    assert_guest_guid(qts, addr, GUID1);
    assert_told(qts, m, GUID1, "set");
    qtest_quit(qts);
}

/* Run QEMU with @args to its end; return its exit status and stderr. */
static int run_qemu(const char *args, char **err)
{
    g_autofree char *cmd = g_strdup_printf("%s -display none -accel qtest %s",
                                           qtest_qemu_binary(NULL), args);
    g_autofree char *out = NULL;
    g_auto(GStrv) argv = NULL;
    int status;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, err, &status, NULL));
    g_assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/*
 * The devicetree node, as dtc decodes -machine dumpdtb: the page at the
 * start of the platform bus, the bus' first interrupt, rising edge.
 */
static void test_virt_dt(const void *opaque)
{
    g_autofree char *dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *dtb = g_build_filename(dir, "virt.dtb", NULL);
    g_autofree char *args = g_strdup_printf(
        "-machine virt,dumpdtb=%s -cpu cortex-a57 -device vmgenid", dtb);
    g_autofree char *err = NULL, *dts = NULL, *dtc_err = NULL;
    const char *dtc[] = { "dtc", "-I", "dtb", "-O", "dts", dtb, NULL };
    int status;

    g_assert_cmpint(run_qemu(args, &err), ==, 0);
    g_assert_true(g_spawn_sync(NULL, (char **)dtc, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &dts, &dtc_err, &status, NULL));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_nonnull(strstr(dts, "\tplatform-bus@c000000 {\n"));
    g_assert_nonnull(strstr(dts,
        "\t\tranges = <0x00 0x00 0xc000000 0x2000000>;\n"));
    g_assert_nonnull(strstr(dts,
        "\t\tvmgenid@0 {\n"
        "\t\t\tinterrupts = <0x00 0x70 0x01>;\n"
        "\t\t\treg = <0x00 0x1000>;\n"
        "\t\t\tcompatible = \"microsoft,vmgenid\";\n"
        "\t\t};\n"));
    unlink(dtb);
    rmdir(dir);
}

/* Without ACPI the devicetree is the only way, and enough. */
static void test_virt_acpi_off(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-machine acpi=off -device vmgenid,guid=" GUID1);

    /* fw_cfg is there, with no file of the device's. */
    g_assert_cmpint(fw_cfg_file_key(qts, "etc/smbios/smbios-tables"), !=, 0);
    g_assert_cmpint(fw_cfg_file_key(qts, "etc/vmgenid_addr"), ==, 0);
    g_assert_cmpint(fw_cfg_file_key(qts, "etc/vmgenid_guid"), ==, 0);
    assert_guest_guid(qts, VIRT_DT_PAGE, GUID1);
    drop_events(qts);
    set_guid(qts, GUID2);
    assert_guest_guid(qts, VIRT_DT_PAGE, GUID2);
    assert_told(qts, m, GUID2, "set");
    qtest_quit(qts);
}

/*
 * UEFI (Debian's AAVMF) and QEMU's UEFI ACPI test image: the firmware
 * places the page as on PC, the SSDT has no GPE handler, and the GED
 * carries the notification; QEMU's own page holds the GUID too.
 */
static void test_virt_uefi(const void *opaque)
{
    QTestState *qts;
    uint64_t rsdp;

    qts = uefi_start("-machine virt -cpu cortex-a57 -m 256M", "aarch64",
                     firmware_file("VMGENID_TEST_AAVMF_CODE", AAVMF_CODE),
                     firmware_file("VMGENID_TEST_AAVMF_VARS", AAVMF_VARS));
    rsdp = acpi_find_rsdp_address_uefi(qts, 0x40000000, 256 * 1024 * 1024);
    assert_guest_guid(qts, guid_addr_in(qts, rsdp, 0x40000000,
                                        256 * 1024 * 1024), GUID1);
    assert_guest_guid(qts, VIRT_DT_PAGE, GUID1);
    assert_ssdt(qts, rsdp, false);
    assert_ged_aml(qts, rsdp);

    qtest_readl(qts, VIRT_GED_ESEL);
    set_guid(qts, GUID2);
    g_assert_cmphex(qtest_readl(qts, VIRT_GED_ESEL) & GED_VMGENID_EVT, ==,
                    GED_VMGENID_EVT);
    assert_guest_guid(qts, guid_addr_in(qts, rsdp, 0x40000000,
                                        256 * 1024 * 1024), GUID2);
    assert_guest_guid(qts, VIRT_DT_PAGE, GUID2);
    qtest_quit(qts);
}

/*
 * The same hostile addresses on Arm virt, with the firmware page in use:
 * AAVMF loaded, but no CPU runs, so the test plays the firmware.
 */
static void test_virt_hostile(const void *opaque)
{
    g_autofree char *tmp = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(tmp, "log", NULL);
    g_autofree char *logged = NULL;
    g_autoptr(GString) want = g_string_new("");
    const uint64_t ram_end = VIRT_RAM + RAM_SIZE;
    const struct {
        uint64_t addr;
        const char *why;
    } cases[] = {
        { 0x1000, "is not in the machine's RAM" },            /* flash */
        { VIRT_GICD, "is not in the machine's RAM" },         /* MMIO */
        { VIRT_DT_PAGE, "is not in the machine's RAM" },      /* QEMU's */
        { VIRT_RAM + 0x300004, "is not 8-byte aligned" },
        { ram_end, "is not in the machine's RAM" },
        { ram_end - 8, "runs past the end of a RAM region" },
        { 0xfffffffffffffff8ULL, "is out of range" },
    };
    Window windows[2];
    QTestState *qts;
    int i;

    qts = qtest_initf("-machine virt -cpu cortex-a57 -nodefaults -m 128M"
                      " -drive if=pflash,format=raw,readonly=on,file=%s"
                      " -d guest_errors -D %s -device vmgenid,guid=" GUID1,
                      firmware_file("VMGENID_TEST_AAVMF_CODE", AAVMF_CODE),
                      log);
    window_fill(qts, &windows[0], VIRT_RAM, 0x2000);
    window_fill(qts, &windows[1], ram_end - 0x2000, 0x2000);
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_assert_cmphex(report_addr(qts, cases[i].addr), ==, 0);
        g_string_append_printf(want, "vmgenid: GUID address 0x%" PRIx64
                               " %s; not writing it\n",
                               cases[i].addr, cases[i].why);
        set_guid(qts, i & 1 ? GUID2 : GUID1);
    }
    {
        uint8_t half[4] = { 0x28, 0, 0x20, 0x40 };

        g_assert_cmphex(write_addr_file(qts, half, sizeof(half), 0), ==, 0);
        g_string_append(want, "vmgenid: partial write of etc/vmgenid_addr"
                        " (4 bytes at offset 0); ignoring it\n");
    }
    set_guid(qts, GUID2);
    for (i = 0; i < ARRAY_SIZE(windows); i++) {
        window_check(qts, &windows[i]);
    }
    assert_guest_guid(qts, VIRT_DT_PAGE, GUID2);
    g_assert_true(g_file_get_contents(log, &logged, NULL, NULL));
    g_assert_cmpstr(logged, ==, want->str);

    /* The page the firmware would choose: used. */
    g_assert_cmphex(report_addr(qts, VIRT_RAM + 0x200028), ==, 0);
    assert_guest_guid(qts, VIRT_RAM + 0x200028, GUID2);
    qtest_quit(qts);
    unlink(log);
    rmdir(tmp);
}

static void test_refused_virt(void)
{
    assert_startup_error("-M virt -device vmgenid -device vmgenid",
        "-device vmgenid: only one vmgenid device is allowed");
}

static void add_test(const Machine *m, const char *name, const void *data,
                     void (*fn)(const void *))
{
    g_autofree char *path = g_strdup_printf("vmgenid/%s/%s", m->name, name);

    qtest_add_data_func(path, data, fn);
}

/* Machine types that upstream 10.2.2 has too, per machine family. */
static const char *const upstream_types[][3] = {
    { "pc-i440fx-9.2", "pc", NULL },
    { "pc-q35-10.1", "pc-q35-10.2", "q35" },
};

static void add_upstream_tests(const Machine *m, const char *const *types)
{
    int i, dir, savevm;

    for (i = 0; i < 3 && types[i]; i++) {
        for (dir = 0; dir < 2; dir++) {
            for (savevm = 0; savevm < 2; savevm++) {
                UpstreamTest *t = g_new(UpstreamTest, 1);
                g_autofree char *name = g_strdup_printf(
                    "upstream/%s/%s-%s", types[i], dir ? "to" : "from",
                    savevm ? "savevm" : "live");

                *t = (UpstreamTest) { m, types[i], dir, savevm };
                add_test(m, name, t, test_upstream);
            }
        }
    }
}

/*
 * The rule for telling the guest, over orders of events
 * =====================================================
 *
 * A reference model of docs/specs/vmgenid.rst ("Telling the guest"),
 * written from that text and not from the device: guest memory only ever
 * holds a GUID the guest was told of or is being told of. The model is
 * driven alongside QEMU through sequences of events: every sequence up to
 * a bounded length, and seeded random longer ones. After each step QEMU's
 * GUID, the test page, QEMU's own page (virt), the machine's notification
 * and the change events must be what the model says.
 *
 * No firmware runs: x86 machines get a BIOS that halts, virt none, and the
 * test reports the GUID's address itself, as firmware would, whenever the
 * sequence says so. Every process has a qcow2 disk for savevm, shared by
 * the processes one sequence migrates through.
 */

typedef enum {
    EV_STOP, EV_CONT, EV_SET_NEW, EV_SET_SAME, EV_SET_AUTO, EV_SAVEVM,
    EV_LOADVM, EV_MIGRATE_AUTO, EV_MIGRATE_SAME, EV_MIGRATE_OTHER,
    EV_MIGRATE_FAILED, EV_S3, EV_WAKEUP, EV_RESET, EV_REPORT,
    EV_REPORT_BAD, EV__MAX
} SeqEvent;

static const char *const seq_event_names[EV__MAX] = {
    [EV_STOP] = "stop",
    [EV_CONT] = "cont",
    [EV_SET_NEW] = "set-new",
    [EV_SET_SAME] = "set-same",
    [EV_SET_AUTO] = "set-auto",
    [EV_SAVEVM] = "savevm",
    [EV_LOADVM] = "loadvm",
    [EV_MIGRATE_AUTO] = "migrate-to-auto",
    [EV_MIGRATE_SAME] = "migrate-to-source-guid",
    [EV_MIGRATE_OTHER] = "migrate-to-other-guid",
    [EV_MIGRATE_FAILED] = "migrate-failed",
    [EV_S3] = "s3",
    [EV_WAKEUP] = "wakeup",
    [EV_RESET] = "reset",
    [EV_REPORT] = "report-addr",
    [EV_REPORT_BAD] = "report-bad-addr",
};

typedef enum { ST_RUNNING, ST_PAUSED, ST_PRELAUNCH, ST_SUSPENDED } SeqStatus;

static const char *const seq_status_names[] = {
    "running", "paused", "prelaunch", "suspended",
};

#define NIL_GUID "00000000-0000-0000-0000-000000000000"
#define UUID_TEXT 37

/* The model: what the spec says QEMU and the guest's memory hold. */
typedef struct {
    char guid[UUID_TEXT];       /* what QEMU reports */
    bool fresh;                 /* ... a new random one, drawn this step */
    bool policy_auto;           /* the process was started with guid=auto */
    char told[UUID_TEXT];       /* what the guest was told of; "": unknown */
    const char *reason;         /* of the latest change */
    bool addr;                  /* QEMU knows the test page's address */
    char mem[UUID_TEXT];        /* what the test page holds */
    char dt[UUID_TEXT];         /* what QEMU's own page holds (virt) */
    SeqStatus status;
    bool was_suspended;         /* stopped while suspended */
    bool asleep;
    bool inactive;              /* disks not yet taken over after migration */
    bool out_failed;            /* an outgoing migration failed (see below) */
    bool snap;                  /* a snapshot exists, holding: */
    char snap_mem[UUID_TEXT], snap_dt[UUID_TEXT];
    bool snap_addr;
    int fixed;                  /* fixed GUIDs handed out so far */
} Model;

/* The n-th fixed GUID a sequence uses: all different. */
static void fixed_guid(char *buf, int n)
{
    g_snprintf(buf, UUID_TEXT, "5e000000-0000-4000-8000-%012x", n);
}

/* Booted, running, the firmware has reported the page. */
static void model_init(Model *md, const Machine *m)
{
    *md = (Model) { .status = ST_RUNNING, .addr = true };
    fixed_guid(md->guid, md->fixed++);
    strcpy(md->told, md->guid);
    strcpy(md->mem, md->guid);
    strcpy(md->dt, m->kind == VIRT ? md->guid : NIL_GUID);
}

/* Whether the event can happen in the model's state. */
static bool model_can(const Model *md, const Machine *m, SeqEvent ev)
{
    switch (ev) {
    case EV_SAVEVM:
        return !md->asleep && !md->inactive;
    case EV_MIGRATE_AUTO:
    case EV_MIGRATE_SAME:
    case EV_MIGRATE_OTHER:
    case EV_MIGRATE_FAILED:
        return !md->asleep;
    case EV_LOADVM:
        /*
         * QEMU 10.2's loadvm fails ("Error while loading vmstate") in a
         * process whose outgoing migration failed, with or without vmgenid.
         */
        return md->snap && !md->asleep && !md->inactive && !md->out_failed;
    case EV_S3:
        return m->s3_global && md->status == ST_RUNNING;
    case EV_WAKEUP:
        return md->status == ST_SUSPENDED;
    default:
        return true;
    }
}

/*
 * A state was loaded (snapshot or incoming migration): guest memory is the
 * saved guest's, which holds what that guest was told of.
 */
static void model_load(Model *md, const Machine *m, const char *mem,
                       const char *dt, bool addr, const char *reason)
{
    strcpy(md->mem, mem);
    strcpy(md->dt, dt);
    md->addr = addr;
    md->asleep = false;
    if (addr) {
        strcpy(md->told, mem);
    } else if (m->kind == VIRT) {
        strcpy(md->told, dt);
    } else {
        md->told[0] = 0;
    }
    md->fresh = md->policy_auto;
    md->reason = reason;
}

/* The event's effect on the model, before QEMU is told of it. */
static void model_apply(Model *md, const Machine *m, SeqEvent ev)
{
    switch (ev) {
    case EV_STOP:
        if (md->status == ST_RUNNING || md->status == ST_SUSPENDED) {
            md->was_suspended = md->status == ST_SUSPENDED;
            md->status = ST_PAUSED;
        }
        break;
    case EV_CONT:
        /* cont takes the disks over from the source, unless suspended. */
        if (md->status != ST_SUSPENDED) {
            md->inactive = false;
        }
        if (md->status == ST_PAUSED) {
            md->status = md->was_suspended ? ST_SUSPENDED : ST_RUNNING;
        } else if (md->status == ST_PRELAUNCH) {
            md->status = ST_RUNNING;
        }
        break;
    case EV_SET_NEW:
        fixed_guid(md->guid, md->fixed++);
        md->reason = "set";
        break;
    case EV_SET_SAME:
        md->reason = "set";
        break;
    case EV_SET_AUTO:
        md->fresh = true;
        md->reason = "set";
        break;
    case EV_SAVEVM:
        md->snap = true;
        strcpy(md->snap_mem, md->mem);
        strcpy(md->snap_dt, md->dt);
        md->snap_addr = md->addr;
        break;
    case EV_LOADVM:
        model_load(md, m, md->snap_mem, md->snap_dt, md->snap_addr,
                   "snapshot-load");
        break;
    case EV_MIGRATE_AUTO:
    case EV_MIGRATE_OTHER:
        md->policy_auto = ev == EV_MIGRATE_AUTO;
        if (ev == EV_MIGRATE_OTHER) {
            fixed_guid(md->guid, md->fixed++);
        }
        /* fall through */
    case EV_MIGRATE_SAME:
        if (ev == EV_MIGRATE_SAME) {
            md->policy_auto = false;
        }
        model_load(md, m, md->mem, md->dt, md->addr, "migration");
        md->out_failed = false;
        /* A destination that does not run leaves the disks to the source. */
        md->inactive = md->status != ST_RUNNING;
        break;
    case EV_MIGRATE_FAILED:
        md->out_failed = true;
        break;
    case EV_S3:
        md->status = ST_SUSPENDED;
        md->asleep = true;
        break;
    case EV_WAKEUP:
        md->status = ST_RUNNING;
        md->asleep = false;
        break;
    case EV_RESET:
        if (md->status != ST_RUNNING) {
            md->status = ST_PRELAUNCH;
        }
        md->was_suspended = false;
        if (md->asleep) {
            /* Firmware resumes the guest from S3: a wakeup to it. */
            md->asleep = false;
            break;
        }
        /* Awake, nothing pending, no address until firmware reports it. */
        strcpy(md->told, md->guid);
        md->asleep = false;
        md->addr = false;
        if (m->kind == VIRT) {
            strcpy(md->dt, md->guid);
        }
        break;
    case EV_REPORT:
        md->addr = true;
        if (md->told[0]) {
            strcpy(md->mem, md->told);
        }
        break;
    case EV_REPORT_BAD:
        md->addr = false;
        break;
    case EV__MAX:
        g_assert_not_reached();
    }
}

/*
 * After the step, with any fresh GUID resolved: the guest is told when it
 * runs with a GUID other than the one it was last told of. Returns whether
 * it is told now.
 */
static bool model_tell(Model *md, const Machine *m)
{
    if (md->status != ST_RUNNING ||
        (md->told[0] && !strcmp(md->told, md->guid))) {
        return false;
    }
    strcpy(md->told, md->guid);
    if (md->addr) {
        strcpy(md->mem, md->guid);
    }
    if (m->kind == VIRT) {
        strcpy(md->dt, md->guid);
    }
    return true;
}

/* One QEMU process of a sequence, and the events it sent. */
typedef struct {
    QTestState *qts;
    int changes;                /* VM_GENERATION_ID_CHANGED since cleared */
    char *change_guid, *change_reason;
    GHashTable *seen;           /* names of the other events since cleared */
} SeqVm;

static bool seq_on_event(QTestState *qts, const char *name, QDict *ev,
                         void *opaque)
{
    SeqVm *vm = opaque;

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

/* A sequence under way: the model, QEMU, and what it found wrong. */
typedef struct {
    const Machine *m;
    Model md;
    SeqVm *vm;
    Scratch tmp;                /* its folder, migration socket, ... */
    char *img;                  /* ... and the disk all its processes use */
    const char *more;           /* for every process of the sequence */
    GHashTable *guids;          /* every GUID seen, to tell fresh ones */
    GString *why;               /* "": all agreed */
} Seq;

static char *halt_bios;         /* x86: a BIOS that only halts */

/*
 * Start a process of the sequence: the machine, its disk, and
 * -device vmgenid,guid=@guid. All have the machine's extra device,
 * except a destination that is to fail (@extra false).
 */
static SeqVm *seq_start(Seq *q, const char *guid, const char *more,
                        bool extra)
{
    const Machine *m = q->m;
    SeqVm *vm = g_new0(SeqVm, 1);
    g_autofree char *fw = g_strdup_printf("%s -bios %s",
        m->kind == VIRT ? "-cpu cortex-a57" : "", halt_bios);
    g_autofree char *s3 = m->s3_global
        ? g_strdup_printf("-global %s", m->s3_global) : g_strdup("");

    vm->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    vm->qts = qtest_initf("-machine %s -accel tcg -nodefaults -net none"
                          " -m 128M %s %s"
                          " -drive if=none,id=snap,format=qcow2,file=%s,"
                          "file.locking=off"
                          " -device vmgenid,guid=%s %s %s %s",
                          m->name, fw, s3, q->img, guid,
                          extra ? m->extra : "", q->more ?: "", more);
    qtest_qmp_set_event_callback(vm->qts, seq_on_event, vm);
    qtest_qmp_assert_success(vm->qts, "{'execute': 'migrate-set-capabilities',"
                             " 'arguments': {'capabilities': [{"
                             "  'capability': 'return-path',"
                             "  'state': true}]}}");
    return vm;
}

static void seq_quit(SeqVm *vm)
{
    qtest_quit(vm->qts);
    g_hash_table_destroy(vm->seen);
    g_free(vm->change_guid);
    g_free(vm->change_reason);
    g_free(vm);
}

/* Where the test reports the page to be: 2 MiB into RAM, plus 40. */
static uint64_t seq_addr(const Machine *m)
{
    return (m->kind == VIRT ? VIRT_RAM : 0) + 0x200000 + GUID_OFFSET;
}

/* Set up what the notification needs, as firmware and guest would. */
static void seq_firmware(Seq *q)
{
    QTestState *qts = q->vm->qts;

    if (q->m->kind == PC) {
        /* The PM device's I/O base 0x600, enabled (PM1 control at 0x604). */
        pci_cfg_writel(qts, q->m->pm_devfn, 0x40, 0x601);
        pci_cfg_writeb(qts, q->m->pm_devfn, q->m->pm_enable_reg,
                       q->m->pm_enable);
    } else if (q->m->kind == VIRT) {
        virt_spi_edge(qts);
    }
}

/* Ask QEMU something, so that the events before the answer arrive. */
static QDict *seq_qmp(SeqVm *vm, const char *cmd)
{
    return qtest_qmp(vm->qts, "{'execute': %s}", cmd);
}

/* Wait for event @name; false after TIMEOUT seconds. */
static bool seq_wait_event(SeqVm *vm, const char *name)
{
    int i;

    for (i = 0; i < TIMEOUT * 100; i++) {
        qobject_unref(seq_qmp(vm, "query-status"));
        if (g_hash_table_remove(vm->seen, name)) {
            return true;
        }
        g_usleep(10 * 1000);
    }
    return false;
}

/* Wait until the status is no longer @status. */
static char *seq_wait_status_leaves(SeqVm *vm, const char *status)
{
    int i;

    for (i = 0; i < TIMEOUT * 100; i++) {
        char *now = run_status(vm->qts);

        if (strcmp(now, status)) {
            return now;
        }
        g_free(now);
        g_usleep(10 * 1000);
    }
    return g_strdup(status);
}

/* Run a QMP command; note its error, if any. */
static bool seq_ok(Seq *q, QDict *rsp, const char *what)
{
    bool ok = qdict_haskey(rsp, "return");

    if (!ok) {
        g_string_append_printf(q->why, "%s failed: %s", what,
            qdict_get_try_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    qobject_unref(rsp);
    return ok;
}

static bool seq_hmp(Seq *q, const char *line)
{
    g_autofree char *out = qtest_hmp(q->vm->qts, "%s", line);

    if (*out) {
        g_string_append_printf(q->why, "%s said: %s", line, out);
    }
    return !*out;
}

static bool seq_set(Seq *q, const char *guid)
{
    return seq_ok(q, qtest_qmp(q->vm->qts, "{'execute': "
                               "'set-vm-generation-id', 'arguments':"
                               " {'guid': %s}}", guid),
                  "set-vm-generation-id");
}

/* A migration's end as the process sees it: "completed" or "failed". */
static char *seq_migration_end(SeqVm *vm)
{
    int i;

    for (i = 0; i < TIMEOUT * 100; i++) {
        QDict *rsp = seq_qmp(vm, "query-migrate");
        const char *st = qdict_get_try_str(qdict_get_qdict(rsp, "return"),
                                           "status");
        char *end = NULL;

        if (!g_strcmp0(st, "completed") || !g_strcmp0(st, "failed")) {
            end = g_strdup(st);
        }
        qobject_unref(rsp);
        if (end) {
            return end;
        }
        g_usleep(10 * 1000);
    }
    return g_strdup("timed out");
}

/*
 * Migrate to a new process started with guid=@guid; with @fail, one that
 * lacks a device of the source's, so that its load fails after it loaded
 * the vmgenid section. The survivor goes on; returns false on trouble.
 */
static bool seq_migrate(Seq *q, const char *guid, bool fail)
{
    g_autofree char *img = q->img;
    g_autofree char *before = NULL, *after = NULL;
    g_autofree char *src_end = NULL, *dst_end = NULL;
    const char *want = fail ? "failed" : "completed";
    SeqVm *dst;

    /* A destination that is to fail does not touch the disk. */
    if (fail) {
        q->img = g_build_filename(q->tmp.dir, "other.qcow2", NULL);
        g_assert_true(mkimg(q->img, "qcow2", 1));
    }
    dst = seq_start(q, guid, "-incoming defer", !fail);
    if (fail) {
        unlink(q->img);
        g_free(q->img);
    }
    q->img = g_steal_pointer(&img);
    before = qmp_guid(dst->qts);

    g_hash_table_add(q->guids, g_strdup(before));
    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s,"
                             "  'exit-on-error': false}}", q->tmp.uri);
    qtest_qmp_assert_success(q->vm->qts, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", q->tmp.uri);
    src_end = seq_migration_end(q->vm);
    dst_end = seq_migration_end(dst);
    if (strcmp(src_end, want) || strcmp(dst_end, want)) {
        g_string_append_printf(q->why, "migration: source %s, destination"
                               " %s, expected %s", src_end, dst_end, want);
        seq_quit(dst);
        return false;
    }
    if (!fail) {
        seq_quit(q->vm);
        q->vm = dst;
        g_free(seq_wait_status_leaves(dst, "inmigrate"));
        return true;
    }
    /* The destination loaded the vmgenid section: guid=auto drew anew. */
    after = qmp_guid(dst->qts);
    if (!strcmp(after, before)) {
        g_string_append(q->why, "the failed destination kept its GUID: its"
                        " vmgenid section was not loaded");
    } else if (dst->changes) {
        g_string_append_printf(q->why, "the failed destination reported a"
                               " change to %s", dst->change_guid);
    }
    g_hash_table_add(q->guids, g_strdup(after));
    seq_quit(dst);
    /* The source resumes as it was. */
    g_free(seq_wait_status_leaves(q->vm, "finish-migrate"));
    return !q->why->len;
}

/* Make QEMU do @ev. */
static bool seq_do(Seq *q, SeqEvent ev)
{
    QTestState *qts = q->vm->qts;

    switch (ev) {
    case EV_STOP:
        return seq_ok(q, seq_qmp(q->vm, "stop"), "stop");
    case EV_CONT:
        return seq_ok(q, seq_qmp(q->vm, "cont"), "cont");
    case EV_SET_NEW:
    case EV_SET_SAME:
        return seq_set(q, q->md.guid);
    case EV_SET_AUTO:
        return seq_set(q, "auto");
    case EV_SAVEVM:
        return seq_hmp(q, "savevm s1");
    case EV_LOADVM:
        return seq_hmp(q, "loadvm s1");
    case EV_MIGRATE_AUTO:
        return seq_migrate(q, "auto", false);
    case EV_MIGRATE_SAME:
    case EV_MIGRATE_OTHER:
        return seq_migrate(q, q->md.guid, false);
    case EV_MIGRATE_FAILED:
        return seq_migrate(q, "auto", true);
    case EV_S3:
        /* SLP_TYP 1 (QEMU's S3) and SLP_EN, as an OS suspending does. */
        qtest_outw(qts, q->m->pm1_cnt, (1 << 10) | (1 << 13));
        return seq_wait_event(q->vm, "SUSPEND");
    case EV_WAKEUP:
        if (!seq_ok(q, seq_qmp(q->vm, "system_wakeup"), "system_wakeup")) {
            return false;
        }
        if (!seq_wait_event(q->vm, "WAKEUP")) {
            return false;
        }
        seq_firmware(q);
        return true;
    case EV_RESET:
        if (!seq_ok(q, seq_qmp(q->vm, "system_reset"), "system_reset") ||
            !seq_wait_event(q->vm, "RESET")) {
            return false;
        }
        seq_firmware(q);
        return true;
    case EV_REPORT:
        return report_addr(qts, seq_addr(q->m)) == 0;
    case EV_REPORT_BAD:
        /* Past the end of RAM, so refused. */
        return report_addr(qts, seq_addr(q->m) + RAM_SIZE) == 0;
    case EV__MAX:
        break;
    }
    g_assert_not_reached();
}

#define SEQ_EXPECT(cond, ...) \
    do { \
        if (!(cond)) { \
            g_string_append_printf(q->why, __VA_ARGS__); \
            return false; \
        } \
    } while (0)

/* After a step: does QEMU agree with the model? */
static bool seq_check(Seq *q)
{
    const Machine *m = q->m;
    Model *md = &q->md;
    QTestState *qts = q->vm->qts;
    g_autofree char *status = run_status(q->vm->qts);
    g_autofree char *guid = qmp_guid(qts);
    g_autofree char *mem = guest_guid(qts, seq_addr(m));
    bool told, acpi, irq;

    if (md->fresh) {
        SEQ_EXPECT(!g_hash_table_contains(q->guids, guid),
                   "QEMU's new GUID %s is not new", guid);
        g_strlcpy(md->guid, guid, UUID_TEXT);
        md->fresh = false;
    }
    g_hash_table_add(q->guids, g_strdup(guid));
    told = model_tell(md, m);

    SEQ_EXPECT(!strcmp(status, seq_status_names[md->status]),
               "status %s, the model says %s", status,
               seq_status_names[md->status]);
    SEQ_EXPECT(!strcmp(guid, md->guid), "QEMU reports %s, the model %s",
               guid, md->guid);
    SEQ_EXPECT(!strcmp(mem, md->mem), "the page holds %s, the model says %s",
               mem, md->mem);
    if (m->kind == VIRT) {
        g_autofree char *dt = guest_guid(qts, VIRT_DT_PAGE);

        SEQ_EXPECT(!strcmp(dt, md->dt), "QEMU's page holds %s, the model"
                   " says %s", dt, md->dt);
        irq = dt_notified(qts);
        SEQ_EXPECT(irq == told, "the devicetree interrupt is %s, the model"
                   " says %s", irq ? "pending" : "not pending",
                   told ? "pending" : "not pending");
    }
    acpi = acpi_notified(qts, m);
    SEQ_EXPECT(acpi == (told && md->addr), "the ACPI notification was %s,"
               " the model says %s", acpi ? "raised" : "not raised",
               told && md->addr ? "raised" : "not raised");
    SEQ_EXPECT(q->vm->changes == told, "%d change events, the model says %d",
               q->vm->changes, told);
    if (told) {
        SEQ_EXPECT(!strcmp(q->vm->change_guid, md->guid) &&
                   !strcmp(q->vm->change_reason, md->reason),
                   "the change event says %s (%s), the model %s (%s)",
                   q->vm->change_guid, q->vm->change_reason, md->guid,
                   md->reason);
    }
    q->vm->changes = 0;
    return true;
}

static void seq_init(Seq *q, const Machine *m, const char *more)
{
    *q = (Seq) { .m = m, .more = more };
    scratch_init(&q->tmp);
    q->img = g_build_filename(q->tmp.dir, "disk.qcow2", NULL);
    q->guids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    q->why = g_string_new("");
    g_assert_true(mkimg(q->img, "qcow2", 1));
    model_init(&q->md, m);
    q->vm = seq_start(q, q->md.guid, "", true);
    seq_firmware(q);
    /* Booted: the firmware reported the page. */
    g_assert_cmphex(report_addr(q->vm->qts, seq_addr(m)), ==, 0);
}

static void seq_free(Seq *q)
{
    seq_quit(q->vm);
    unlink(q->img);
    g_free(q->img);
    scratch_free(&q->tmp);
    g_hash_table_destroy(q->guids);
    g_string_free(q->why, true);
}

/*
 * Run @seq from a fresh start. Returns -1 if QEMU agreed with the model
 * all along, else the index of the step after which it did not (@n for
 * the start), with the reason in @why.
 */
static int seq_run(const Machine *m, const SeqEvent *seq, int n, char **why)
{
    Seq q;
    int i, failed = -1;

    seq_init(&q, m, NULL);
    if (!seq_check(&q)) {
        failed = n;
    }
    for (i = 0; failed < 0 && i < n; i++) {
        g_assert_true(model_can(&q.md, m, seq[i]));
        model_apply(&q.md, m, seq[i]);
        if (!seq_do(&q, seq[i]) || !seq_check(&q)) {
            failed = i;
        }
    }
    *why = failed < 0 ? NULL : g_strdup(q.why->str);
    seq_free(&q);
    return failed;
}

static char *seq_text(const SeqEvent *seq, int n)
{
    GString *s = g_string_new("");
    int i;

    for (i = 0; i < n; i++) {
        g_string_append_printf(s, "%s%s", i ? ", " : "",
                               seq_event_names[seq[i]]);
    }
    return g_string_free(s, false);
}

/* Whether @seq can happen, event after event, in the model alone. */
static bool seq_possible(const Machine *m, const SeqEvent *seq, int n)
{
    Model md;
    int i;

    model_init(&md, m);
    for (i = 0; i < n; i++) {
        if (!model_can(&md, m, seq[i])) {
            return false;
        }
        model_apply(&md, m, seq[i]);
        md.fresh = false;
        model_tell(&md, m);
    }
    return true;
}

/* The shortest failure found so far. */
typedef struct {
    SeqEvent *seq;
    int len;                    /* -1: none */
    char *why;
} SeqFailure;

static void seq_note(SeqFailure *f, const SeqEvent *seq, int failed,
                     int n, char *why)
{
    int len = failed == n ? 0 : failed + 1;

    if (f->len < 0 || len < f->len) {
        g_free(f->seq);
        g_free(f->why);
        f->seq = g_memdup2(seq, sizeof(*seq) * MAX(len, 1));
        f->len = len;
        f->why = why;
    } else {
        g_free(why);
    }
}

static void G_GNUC_PRINTF(1, 2) seq_fail(const char *fmt, ...)
{
    g_autofree char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_test_message("%s", text);
    g_test_fail();
}

static void seq_report(const Machine *m, SeqFailure *f, const char *seed)
{
    g_autofree char *text = NULL;

    if (f->len < 0) {
        return;
    }
    text = seq_text(f->seq, f->len);
    seq_fail("%s: QEMU and the model disagree after [%s]%s%s%s: %s",
             m->name, text, seed ? " (seed " : "", seed ? seed : "",
             seed ? ")" : "", f->why);
    g_free(f->seq);
    g_free(f->why);
}

static int env_int(const char *name, int def)
{
    const char *v = g_getenv(name);

    return v ? atoi(v) : def;
}

/*
 * Every possible sequence of VMGENID_SEQ_DEPTH events (2 by default); a
 * sequence whose prefix failed is not run again.
 */
static void test_seq_bounded(const void *opaque)
{
    const Machine *m = opaque;
    const int depth = env_int("VMGENID_SEQ_DEPTH", 2);
    SeqFailure f = { .len = -1 };
    g_autofree SeqEvent *seq = g_new0(SeqEvent, depth);
    int runs = 0, i;

    for (;;) {
        char *why;
        int failed;

        if (seq_possible(m, seq, depth) &&
            (f.len < 0 || memcmp(seq, f.seq, sizeof(*seq) * f.len))) {
            failed = seq_run(m, seq, depth, &why);
            runs++;
            if (failed >= 0) {
                seq_note(&f, seq, failed, depth, why);
            }
        }
        /* The next sequence, in lexical order. */
        for (i = depth - 1; i >= 0 && ++seq[i] == EV__MAX; i--) {
            seq[i] = 0;
        }
        if (i < 0) {
            break;
        }
    }
    g_test_message("%s: %d sequences of %d events", m->name, runs, depth);
    seq_report(m, &f, NULL);
}

/* A random possible sequence of @n events. */
static void seq_random(const Machine *m, GRand *rand, SeqEvent *seq, int n)
{
    Model md;
    int i;

    model_init(&md, m);
    for (i = 0; i < n; i++) {
        do {
            seq[i] = g_rand_int_range(rand, 0, EV__MAX);
        } while (!model_can(&md, m, seq[i]));
        model_apply(&md, m, seq[i]);
        md.fresh = false;
        model_tell(&md, m);
    }
}

/*
 * Make a failing sequence shorter: drop one event at a time while the
 * rest still fails.
 */
static void seq_shrink(const Machine *m, SeqFailure *f)
{
    g_autofree SeqEvent *shorter = g_new(SeqEvent, MAX(f->len, 1));
    bool again = true;
    int i;

    while (again) {
        again = false;
        for (i = 0; i < f->len; i++) {
            char *why;
            int failed, n = f->len - 1;

            memcpy(shorter, f->seq, sizeof(*shorter) * i);
            memcpy(shorter + i, f->seq + i + 1, sizeof(*shorter) * (n - i));
            if (!seq_possible(m, shorter, n)) {
                continue;
            }
            failed = seq_run(m, shorter, n, &why);
            if (failed >= 0) {
                f->len = -1;
                seq_note(f, shorter, failed, n, why);
                again = true;
                break;
            }
        }
    }
}

/*
 * VMGENID_SEQ_RANDOM random sequences (3 by default) of
 * VMGENID_SEQ_LENGTH events (12), from VMGENID_SEQ_SEED or a new seed.
 */
static void test_seq_random(const void *opaque)
{
    const Machine *m = opaque;
    const int count = env_int("VMGENID_SEQ_RANDOM", 3);
    const int len = env_int("VMGENID_SEQ_LENGTH", 12);
    const char *seed_env = g_getenv("VMGENID_SEQ_SEED");
    g_autofree char *seed = seed_env ? g_strdup(seed_env)
        : g_strdup_printf("%u", g_random_int());
    g_autoptr(GRand) rand = NULL;
    g_autofree SeqEvent *seq = g_new(SeqEvent, len);
    SeqFailure f = { .len = -1 };
    unsigned int seed_value;
    int i;

    g_assert_cmpint(qemu_strtoui(seed, NULL, 0, &seed_value), ==, 0);
    rand = g_rand_new_with_seed(seed_value);
    g_test_message("%s: seed %s", m->name, seed);
    for (i = 0; i < count && f.len < 0; i++) {
        char *why;
        int failed;

        seq_random(m, rand, seq, len);
        failed = seq_run(m, seq, len, &why);
        if (failed >= 0) {
            seq_note(&f, seq, failed, len, why);
            seq_shrink(m, &f);
        }
    }
    seq_report(m, &f, seed);
}

/* Sequences named for what once went wrong. */
typedef struct {
    const Machine *m;
    const char *name;
    SeqEvent seq[8];
    int len;
} SeqCase;

static const SeqCase seq_cases[] = {
    /* A change made while paused must not be in memory before cont. */
    { NULL, "paused-set-migrate", { EV_STOP, EV_SET_NEW, EV_MIGRATE_SAME,
      EV_CONT }, 4 },
    { NULL, "paused-set-savevm", { EV_STOP, EV_SET_NEW, EV_SAVEVM, EV_CONT,
      EV_LOADVM }, 5 },
    /* A reset during S3 leaves the guest awake... */
    { NULL, "s3-reset-set", { EV_S3, EV_RESET, EV_CONT, EV_REPORT,
      EV_SET_NEW }, 5 },
    /* ... and resumes it from S3: a change made meanwhile is told. */
    { NULL, "s3-set-reset", { EV_S3, EV_SET_NEW, EV_RESET, EV_CONT }, 4 },
};

static void test_seq_case(const void *opaque)
{
    const SeqCase *c = opaque;
    SeqFailure f = { .len = -1 };
    char *why;
    int failed;

    g_assert_true(seq_possible(c->m, c->seq, c->len));
    failed = seq_run(c->m, c->seq, c->len, &why);
    if (failed >= 0) {
        seq_note(&f, c->seq, failed, c->len, why);
    }
    seq_report(c->m, &f, NULL);
}


#define IGNORE_SHARED "{'execute': 'migrate-set-capabilities'," \
    " 'arguments': {'capabilities': [{" \
    "  'capability': 'x-ignore-shared', 'state': true}]}}"

/* The migration's end as @vm sees it is @want. */
static void seq_assert_end(SeqVm *vm, const char *want)
{
    g_autofree char *end = seq_migration_end(vm);

    g_assert_cmpstr(end, ==, want);
}

/*
 * Guest memory that the destination shares with the source (a shared
 * memory backend and x-ignore-shared): the same VM goes on, so guid=auto
 * keeps the GUID the guest was told of, and the guest hears nothing. A
 * destination given another GUID tells the guest when it runs. A
 * destination that fails leaves the memory the source resumes on as it
 * was.
 */
static void test_shared_memory(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *dir = g_dir_make_tmp("vmgenid-shm-XXXXXX", NULL);
    g_autofree char *mem = g_build_filename(dir, "ram", NULL);
    g_autofree char *more = g_strdup_printf(
        "-object memory-backend-file,id=ram0,size=128M,mem-path=%s,share=on"
        " -machine memory-backend=ram0", mem);
    g_autofree char *guid = NULL;
    char other[UUID_TEXT];
    SeqVm *dst;
    Seq q;

    seq_init(&q, m, more);
    guid = qmp_guid(q.vm->qts);
    assert_guest_guid(q.vm->qts, seq_addr(m), guid);

    /* guid=auto, shared: kept, nothing told. */
    qtest_qmp_assert_success(q.vm->qts, IGNORE_SHARED);
    dst = seq_start(&q, "auto", "-incoming defer", true);
    qtest_qmp_assert_success(dst->qts, IGNORE_SHARED);
    {
        SeqVm *src = q.vm;

        qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming',"
                                 " 'arguments': {'uri': %s}}", q.tmp.uri);
        qtest_qmp_assert_success(src->qts, "{'execute': 'migrate',"
                                 " 'arguments': {'uri': %s}}", q.tmp.uri);
        seq_assert_end(src, "completed");
        seq_assert_end(dst, "completed");
        seq_quit(src);
        q.vm = dst;
        g_free(seq_wait_status_leaves(dst, "inmigrate"));
    }
    q.md.reason = "migration";
    q.md.policy_auto = true;
    if (!seq_check(&q)) {
        seq_fail("guid=auto on shared memory: %s", q.why->str);
    }
    assert_qmp_guid(q.vm->qts, guid);

    /* A failed destination writes nothing the source resumes on. */
    qtest_qmp_assert_success(q.vm->qts, IGNORE_SHARED);
    fixed_guid(other, 100);
    dst = seq_start(&q, other, "-incoming defer", false);
    qtest_qmp_assert_success(dst->qts, IGNORE_SHARED);
    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s,"
                             "  'exit-on-error': false}}", q.tmp.uri);
    qtest_qmp_assert_success(q.vm->qts, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", q.tmp.uri);
    seq_assert_end(q.vm, "failed");
    seq_assert_end(dst, "failed");
    g_assert_cmpint(dst->changes, ==, 0);
    seq_quit(dst);
    g_free(seq_wait_status_leaves(q.vm, "finish-migrate"));
    if (!seq_check(&q)) {
        seq_fail("after a failed migration on shared memory: %s",
                 q.why->str);
    }

    /* guid=UUID, shared: that GUID, told when the guest runs. */
    dst = seq_start(&q, other, "-incoming defer", true);
    qtest_qmp_assert_success(dst->qts, IGNORE_SHARED);
    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s}}", q.tmp.uri);
    qtest_qmp_assert_success(q.vm->qts, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", q.tmp.uri);
    seq_assert_end(q.vm, "completed");
    seq_assert_end(dst, "completed");
    seq_quit(q.vm);
    q.vm = dst;
    g_free(seq_wait_status_leaves(dst, "inmigrate"));
    strcpy(q.md.guid, other);
    q.md.policy_auto = false;
    if (!seq_check(&q)) {
        seq_fail("guid=UUID on shared memory: %s", q.why->str);
    }
    seq_free(&q);
    unlink(mem);
    rmdir(dir);
}

static void add_seq_tests(const Machine *m)
{
    int i;

    add_test(m, "sequences/bounded", m, test_seq_bounded);
    add_test(m, "shared-memory", m, test_shared_memory);
    add_test(m, "sequences/random", m, test_seq_random);
    for (i = 0; i < ARRAY_SIZE(seq_cases); i++) {
        SeqCase *c;
        g_autofree char *name = NULL;

        if (!seq_possible(m, seq_cases[i].seq, seq_cases[i].len)) {
            continue;
        }
        c = g_memdup2(&seq_cases[i], sizeof(*c));
        c->m = m;
        name = g_strdup_printf("sequences/%s", c->name);
        add_test(m, name, c, test_seq_case);
    }
}

/*
 * Firmware that only halts: HLT at the x86 reset vector; on Arm "wfi; b ."
 * at the start of flash (-bios also makes virt build its ACPI tables).
 */
static void make_halt_bios(bool x86)
{
    static const uint8_t wfi_loop[] = {
        0x7f, 0x20, 0x03, 0xd5, 0xff, 0xff, 0xff, 0x17,
    };
    g_autofree uint8_t *hlt = g_malloc(64 * 1024);

    memset(hlt, 0xf4, 64 * 1024);
    halt_bios = g_build_filename(bios_log_dir, "halt.bin", NULL);
    g_assert_true(g_file_set_contents(halt_bios,
                                      x86 ? (char *)hlt : (char *)wfi_loop,
                                      x86 ? 64 * 1024 : sizeof(wfi_loop),
                                      NULL));
}

int main(int argc, char **argv)
{
    const char *arch = qtest_get_arch();
    const bool x86 = !strcmp(arch, "x86_64");
    const Machine *machines = x86 ? x86_machines : arm_machines;
    const int count = x86 ? ARRAY_SIZE(x86_machines)
                          : ARRAY_SIZE(arm_machines);
    int ret, i, j;

    g_test_init(&argc, &argv, NULL);

    if (!qtest_has_device("vmgenid")) {
        g_test_skip("this QEMU has no vmgenid device");
        return g_test_run();
    }

    bios_log_dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    make_halt_bios(x86);
    if (x86) {
        g_assert_cmpint(boot_sector_init(disk), ==, 0);
        bios_logs = g_hash_table_new(NULL, NULL);
    }
    for (i = 0; i < count; i++) {
        const Machine *m = &machines[i];

        if (!qtest_has_machine(m->name)) {
            continue;
        }
        add_test(m, "cmdline", m, test_cmdline);
        add_test(m, "auto", m, test_auto);
        add_test(m, "loadvm-auto", m, test_loadvm_auto);
        add_test(m, "loadvm-fixed", m, test_loadvm_fixed);
        add_test(m, "loadvm-fixed-set", m, test_loadvm_fixed_set);
        add_test(m, "loadvm-paused", m, test_loadvm_paused);
        add_test(m, "set", m, test_set);
        add_test(m, "set-paused", m, test_set_paused);
        for (j = 0; j < ARRAY_SIZE(migrate_cases); j++) {
            MigrateTest *t = g_new(MigrateTest, 1);

            *t = (MigrateTest) { m, &migrate_cases[j] };
            add_test(m, migrate_cases[j].name, t, test_migrate);
        }
        add_test(m, "migrate-paused-cont", m, test_migrate_paused_cont);
        add_test(m, "migrate-paused-keep", m, test_migrate_paused_keep);
        add_test(m, "migrate-source-resumes", m, test_migrate_source_resumes);
        add_test(m, "restore-twice", m, test_restore_twice);
        add_test(m, "migrate-failed", m, test_migrate_failed);
        add_seq_tests(m);
        add_test(m, "hotplug", m, test_hotplug);
        add_test(m, "unrealize", m, test_unrealize);
        if (m->kind != VIRT) {
            add_test(m, "ssdt", m, test_ssdt);
            add_test(m, "set-early", m, test_set_early);
        }
        if (m->kind == PC) {
            add_test(m, "reset", m, test_reset);
            add_test(m, "s3", m, test_s3);
            add_test(m, "hostile-addr", m, test_hostile);
            add_test(m, "hostile-addr-running", m, test_hostile_running);
            if (g_getenv(UPSTREAM)) {
                add_upstream_tests(m, upstream_types[i]);
            }
        }
        if (m->kind == VIRT) {
            add_test(m, "devicetree", m, test_virt_dt);
            add_test(m, "acpi-off", m, test_virt_acpi_off);
            add_test(m, "uefi", m, test_virt_uefi);
            add_test(m, "hostile-addr", m, test_virt_hostile);
        }
    }
    if (x86) {
        if (qtest_has_machine("q35")) {
            qtest_add_data_func("vmgenid/q35/uefi", NULL, test_uefi);
        }
        qtest_add_func("vmgenid/bad-guid", test_bad_guid);
        qtest_add_func("vmgenid/bad-guid-long", test_bad_guid_long);
        qtest_add_func("vmgenid/refused", test_refused);
        qtest_add_func("vmgenid/refused-confidential",
                       test_refused_confidential);
        qtest_add_func("vmgenid/refused-qboot", test_refused_qboot);
    } else {
        qtest_add_func("vmgenid/refused", test_refused_virt);
    }

    ret = g_test_run();
    if (x86) {
        boot_sector_cleanup(disk);
    }
    {
        g_autoptr(GDir) dir = g_dir_open(bios_log_dir, 0, NULL);
        const char *name;

        while (dir && (name = g_dir_read_name(dir))) {
            g_autofree char *path = g_build_filename(bios_log_dir, name, NULL);

            unlink(path);
        }
        rmdir(bios_log_dir);
    }
    return ret;
}
