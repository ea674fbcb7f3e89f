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
#include "qemu/uuid.h"
#include "qobject/qdict.h"
#include "libqtest.h"
#include "libqos/libqos-pc.h"
#include "libqos/fw_cfg.h"
#include "boot-sector.h"
#include "acpi-utils.h"

#define GUID1 "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87"
#define GUID2 "f2d0a8c6-5b2e-4e7f-9a31-0c4d6e8b7a15"

#define GUID_OFFSET 40          /* from the start of the page */
#define GPE_VMGENID 0x20        /* bit 5 of the first GPE0 status byte */
#define RAM_SIZE    (128 * 1024 * 1024)

typedef struct {
    const char *name;
    uint16_t gpe0_sts;          /* I/O port of the first GPE0 status byte */
} Machine;

static const Machine machines[] = {
    { "pc", 0xafe0 },           /* PIIX4 PM */
    { "q35", 0x620 },           /* ICH9 LPC: PMBASE 0x600 + 0x20 */
};

static char disk[] = "tests/vmgenid-test-disk-XXXXXX";

/*
 * Start QEMU under TCG with our boot sector on a disk, from the binary in
 * environment variable @var (NULL: the one under test).
 */
static QTestState *start_vm(const Machine *m, const char *var,
                            const char *args)
{
    g_autofree char *cmd = g_strdup_printf(
        "-machine %s -accel tcg -nodefaults -net none -m 128M"
        " -drive id=hd0,if=none,file=%s,format=raw,snapshot=on"
        " -device ide-hd,drive=hd0 %s", m->name, disk, args);

    return qtest_init_ext(var ?: "QTEST_QEMU_BINARY", cmd, NULL, true);
}

/* ... and wait until SeaBIOS has booted the boot sector. */
static QTestState *boot(const Machine *m, const char *args)
{
    QTestState *qts = start_vm(m, NULL, args);

    boot_sector_test(qts);
    return qts;
}

/* Read a table header at @addr and return whether it is the VMGENID SSDT. */
static bool is_vmgenid_ssdt(QTestState *qts, uint64_t addr)
{
    uint8_t hdr[36];

    qtest_memread(qts, addr, hdr, sizeof(hdr));
    return !memcmp(hdr, "SSDT", 4) && !memcmp(hdr + 16, "VMGENID", 8);
}

/* Address of the VMGENID SSDT, found through the RSDP as a guest would. */
static uint64_t find_ssdt(QTestState *qts, uint64_t rsdp_addr)
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
        if (is_vmgenid_ssdt(qts, entry)) {
            return entry;
        }
    }
    g_assert_not_reached();
}

/* The table's bytes, with its checksum verified. */
static uint8_t *fetch_ssdt(QTestState *qts, uint64_t ssdt, uint32_t *len)
{
    uint8_t *table;

    *len = qtest_readl(qts, ssdt + 4);
    table = g_malloc(*len);
    qtest_memread(qts, ssdt, table, *len);
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

/* Address of the GUID as the guest finds it, for a SeaBIOS boot. */
static uint64_t guid_addr(QTestState *qts, uint64_t rsdp_addr)
{
    g_autofree uint8_t *table = NULL;
    uint32_t len, vgia;

    table = fetch_ssdt(qts, find_ssdt(qts, rsdp_addr), &len);
    vgia = vgia_of(table, len);
    g_assert_cmphex(vgia, !=, 0);
    g_assert_cmphex(vgia & 0xfff, ==, 0);   /* the firmware gives a page */
    g_assert_cmphex(vgia, <, RAM_SIZE);
    return vgia + GUID_OFFSET;
}

static uint64_t seabios_guid_addr(QTestState *qts)
{
    return guid_addr(qts, acpi_find_rsdp_address(qts));
}

/* The GUID in guest memory, in its text form. */
static char *guest_guid(QTestState *qts, uint64_t addr)
{
    QemuUUID le;

    qtest_memread(qts, addr, &le, sizeof(le));
    le = qemu_uuid_bswap(le);
    return qemu_uuid_unparse_strdup(&le);
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

static uint8_t gpe_status(QTestState *qts, const Machine *m)
{
    return qtest_inb(qts, m->gpe0_sts);
}

/* The command-line GUID is what the guest reads and what QEMU reports. */
static void test_cmdline(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=" GUID1);
    g_autofree char *guest = guest_guid(qts, seabios_guid_addr(qts));
    g_autofree char *qmp = qmp_guid(qts);
    g_autofree char *hmp = hmp_guid(qts);
    g_autofree char *qom = qom_guid(qts);

    g_assert_cmpstr(guest, ==, GUID1);
    g_assert_cmpstr(qmp, ==, GUID1);
    g_assert_cmpstr(hmp, ==, GUID1);
    g_assert_cmpstr(qom, ==, GUID1);
    qtest_quit(qts);
}

/* "auto" draws a random GUID, the same one everywhere. */
static void test_auto(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=auto");
    QTestState *other;
    g_autofree char *guest = guest_guid(qts, seabios_guid_addr(qts));
    g_autofree char *qmp = qmp_guid(qts);
    g_autofree char *hmp = hmp_guid(qts);
    g_autofree char *qom = qom_guid(qts);
    g_autofree char *other_guid = NULL;
    QemuUUID uuid;

    g_assert_cmpint(qemu_uuid_parse(guest, &uuid), ==, 0);
    g_assert_false(qemu_uuid_is_null(&uuid));
    g_assert_cmpstr(qmp, ==, guest);
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
    "    }\n"
    "\n"
    "    Scope (\\_GPE)\n"
    "    {\n"
    "        Method (_E05, 0, NotSerialized)  // _Exx: Edge-Triggered GPE, xx=0x00-0xFF\n"
    "        {\n"
    "            Notify (\\_SB.VGEN, 0x80) // Status Change\n"
    "        }\n"
    "    }\n"
    "}";

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

static void test_ssdt(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,guid=" GUID1);
    g_autofree char *dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *aml_path = g_build_filename(dir, "ssdt.aml", NULL);
    g_autofree char *dsl_path = g_build_filename(dir, "ssdt.dsl", NULL);
    g_autofree uint8_t *table = NULL;
    g_autofree char *out = NULL, *err = NULL, *dsl = NULL, *body = NULL;
    const char *argv[] = { "iasl", "-d", aml_path, NULL };
    uint32_t len;
    int status;

    table = fetch_ssdt(qts, find_ssdt(qts, acpi_find_rsdp_address(qts)), &len);
    qtest_quit(qts);
    g_assert_true(g_file_set_contents(aml_path, (char *)table, len, NULL));

    g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, NULL));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_null(strstr(out, "Warning"));
    g_assert_null(strstr(err, "Warning"));
    g_assert_true(g_file_get_contents(dsl_path, &dsl, NULL, NULL));
    body = asl_body(dsl);
    g_assert_cmpstr(body, ==, expected_asl);

    unlink(aml_path);
    unlink(dsl_path);
    rmdir(dir);
}

static uint64_t fw_cfg_addr_file(QTestState *qts)
{
    QFWCFG *fw_cfg = pc_fw_cfg_init(qts);
    uint64_t addr_le = 0;

    g_assert_cmpint(qfw_cfg_get_file(fw_cfg, "etc/vmgenid_addr", &addr_le,
                                     sizeof(addr_le)), ==, sizeof(addr_le));
    pc_fw_cfg_uninit(fw_cfg);
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
    g_autofree char *guid = NULL;
    uint64_t addr;

    qts = start_vm(m, NULL, "-S -device vmgenid,guid=" GUID1);
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
    qtest_memread(qts, addr, mem, sizeof(mem));
    g_assert(!memcmp(mem, zero, sizeof(zero)));

    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    boot_sector_test(qts);
    addr = seabios_guid_addr(qts);
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, addr);
    guid = guest_guid(qts, addr);
    g_assert_cmpstr(guid, ==, GUID1);
    assert_qmp_guid(qts, GUID1);
    qtest_quit(qts);
}

/* Forget the events seen so far. */
static void drop_events(QTestState *qts)
{
    QDict *ev;

    while ((ev = qtest_qmp_event_ref(qts, "VM_GENERATION_ID_CHANGED"))) {
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
    ev = qtest_qmp_event_ref(qts, "VM_GENERATION_ID_CHANGED");
    if (!reason) {
        g_assert_null(ev);
        return;
    }
    g_assert_nonnull(ev);
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "guid"), ==, guid);
    g_assert_cmpstr(qdict_get_str(data, "reason"), ==, reason);
    qobject_unref(ev);
    g_assert_null(qtest_qmp_event_ref(qts, "VM_GENERATION_ID_CHANGED"));
}

/* GPE status bits are cleared by writing ones. */
static void clear_gpe(QTestState *qts, const Machine *m)
{
    qtest_outb(qts, m->gpe0_sts, GPE_VMGENID);
    g_assert_cmphex(gpe_status(qts, m) & GPE_VMGENID, ==, 0);
}

/* Wait for the end of a migration; return "completed" or "failed". */
static const char *wait_migration(QTestState *qts)
{
    const char *result = NULL;
    QDict *rsp;
    int i;

    for (i = 0; i < 600 && !result; i++) {
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

/*
 * A migration from a QEMU started with @src_props to one started with
 * @dst_props, either ours or (@src_var, @dst_var name an environment
 * variable holding the binary) upstream's.
 */
typedef struct {
    const char *name;
    const char *src_var, *src_props;
    const char *dst_var, *dst_props;
    enum { KEEP_SOURCE, DST_GUID2, DST_OWN, FAILS } expect;
    bool notify;                /* GPE 5 and, on ours, the change event */
} MigrateCase;

static const MigrateCase migrate_cases[] = {
    { "migrate", NULL, "guid=" GUID1, NULL, "guid=" GUID2, DST_GUID2, true },
    { "migrate-same", NULL, "guid=" GUID1, NULL, "guid=" GUID1,
      KEEP_SOURCE, false },
    { "migrate-auto", NULL, "guid=auto", NULL, "guid=auto",
      KEEP_SOURCE, false },
    { "migrate-auto-to-fixed", NULL, "guid=auto", NULL, "guid=" GUID2,
      DST_GUID2, true },
    { "from-upstream", "VMGENID_TEST_UPSTREAM_QEMU", "guid=" GUID1,
      NULL, "guid=" GUID2, DST_GUID2, true },
    { "from-upstream-auto", "VMGENID_TEST_UPSTREAM_QEMU", "guid=" GUID1,
      NULL, "guid=auto", DST_OWN, true },
    { "to-upstream", NULL, "guid=" GUID1,
      "VMGENID_TEST_UPSTREAM_QEMU", "guid=" GUID2, FAILS, false },
    { "to-upstream-compat", NULL, "guid=" GUID1 ",migrate-guid=off",
      "VMGENID_TEST_UPSTREAM_QEMU", "guid=" GUID2, DST_GUID2, true },
};

typedef struct {
    const Machine *m;
    const MigrateCase *c;
} MigrateTest;

static void test_migrate(const void *opaque)
{
    const MigrateTest *t = opaque;
    const Machine *m = t->m;
    const MigrateCase *c = t->c;
    g_autofree char *tmp = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/migsock", tmp);
    g_autofree char *src_args = g_strdup_printf("-device vmgenid,%s",
                                                c->src_props);
    g_autofree char *dst_args = g_strdup_printf(
        "-incoming defer -device vmgenid,%s", c->dst_props);
    g_autofree char *before = NULL, *after = NULL;
    g_autofree char *src_qmp = NULL, *dst_qmp = NULL;
    QTestState *src, *dst;
    uint64_t addr;

    if ((c->src_var && !g_getenv(c->src_var)) ||
        (c->dst_var && !g_getenv(c->dst_var))) {
        g_test_skip("set VMGENID_TEST_UPSTREAM_QEMU to an upstream QEMU");
        return;
    }

    src = start_vm(m, c->src_var, src_args);
    boot_sector_test(src);
    addr = seabios_guid_addr(src);
    before = guest_guid(src, addr);
    src_qmp = qmp_guid(src);
    g_assert_cmpstr(before, ==, src_qmp);
    g_assert_cmphex(gpe_status(src, m) & GPE_VMGENID, ==, 0);

    dst = start_vm(m, c->dst_var, dst_args);
    if (c->expect == FAILS) {
        /* The destination gives up on the stream it cannot read. */
        qtest_set_expected_status(dst, 1);
    }
    qtest_qmp_assert_success(dst, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s}}", uri);
    qtest_qmp_assert_success(src, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", uri);

    if (c->expect == FAILS) {
        /*
         * The source may finish sending before the destination gives up;
         * then management resumes the source, as after any failed
         * migration, and its guest still holds its GUID.
         */
        wait_migration(src);
        qtest_wait_qemu(dst);
        qtest_qmp_assert_success(src, "{'execute': 'cont'}");
        after = guest_guid(src, addr);
        g_assert_cmpstr(after, ==, before);
        qtest_quit(src);
        goto out;
    }

    g_assert_cmpstr(wait_migration(src), ==, "completed");
    g_assert_cmpstr(wait_migration(dst), ==, "completed");
    after = guest_guid(dst, addr);
    dst_qmp = qmp_guid(dst);
    g_assert_cmpstr(after, ==, dst_qmp);
    switch (c->expect) {
    case KEEP_SOURCE:
        g_assert_cmpstr(after, ==, before);
        break;
    case DST_GUID2:
        g_assert_cmpstr(after, ==, GUID2);
        break;
    default:
        g_assert_cmpstr(after, !=, before);
        break;
    }
    g_assert_cmphex(gpe_status(dst, m) & GPE_VMGENID, ==,
                    c->notify ? GPE_VMGENID : 0);
    if (!c->dst_var) {
        assert_event(dst, after, c->notify ? "migration" : NULL);
    }
    qtest_quit(src);
    qtest_quit(dst);
out:
    unlink(uri + strlen("unix:"));
    rmdir(tmp);
}

/*
 * loadvm runs the guest again from an earlier state: "auto" answers with a
 * new GUID and tells the guest, a fixed GUID stays as it is.
 */
static void test_loadvm(const Machine *m, const char *prop, bool fresh)
{
    g_autofree char *tmp = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *img = g_build_filename(tmp, "snap.qcow2", NULL);
    g_autofree char *args = NULL, *out = NULL;
    g_autofree char *before = NULL, *after = NULL, *qmp = NULL;
    QTestState *qts;
    uint64_t addr;

    g_assert_true(mkimg(img, "qcow2", 1));
    args = g_strdup_printf("-drive if=none,id=snap,file=%s,format=qcow2"
                           " -device vmgenid,guid=%s", img, prop);
    qts = start_vm(m, NULL, args);
    boot_sector_test(qts);
    addr = seabios_guid_addr(qts);
    before = qmp_guid(qts);

    out = qtest_hmp(qts, "savevm s1");
    g_assert_cmpstr(out, ==, "");
    g_free(out);
    clear_gpe(qts, m);
    drop_events(qts);
    out = qtest_hmp(qts, "loadvm s1");
    g_assert_cmpstr(out, ==, "");

    after = guest_guid(qts, addr);
    qmp = qmp_guid(qts);
    g_assert_cmpstr(after, ==, qmp);
    if (fresh) {
        g_assert_cmpstr(after, !=, before);
    } else {
        g_assert_cmpstr(after, ==, before);
    }
    g_assert_cmphex(gpe_status(qts, m) & GPE_VMGENID, ==,
                    fresh ? GPE_VMGENID : 0);
    assert_event(qts, after, fresh ? "snapshot-load" : NULL);
    qtest_quit(qts);
    unlink(img);
    rmdir(tmp);
}

static void test_loadvm_auto(const void *opaque)
{
    test_loadvm(opaque, "auto", true);
}

static void test_loadvm_fixed(const void *opaque)
{
    test_loadvm(opaque, GUID1, false);
}

static void set_guid(QTestState *qts, const char *guid)
{
    qtest_qmp_assert_success(qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", guid);
}

/* set-vm-generation-id: running, unchanged, paused, HMP, and bad input. */
static void test_set(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = boot(m, "-device vmgenid,id=vg,guid=" GUID1);
    uint64_t addr = seabios_guid_addr(qts);
    g_autofree char *guid = NULL, *paused = NULL, *out = NULL;
    QDict *rsp;

    /* Running: in guest memory, the guest notified, the change reported. */
    clear_gpe(qts, m);
    drop_events(qts);
    set_guid(qts, GUID2);
    guid = guest_guid(qts, addr);
    g_assert_cmpstr(guid, ==, GUID2);
    assert_qmp_guid(qts, GUID2);
    g_assert_cmphex(gpe_status(qts, m) & GPE_VMGENID, ==, GPE_VMGENID);
    assert_event(qts, GUID2, "set");

    /* The same value again is no change. */
    clear_gpe(qts, m);
    set_guid(qts, GUID2);
    g_assert_cmphex(gpe_status(qts, m) & GPE_VMGENID, ==, 0);
    assert_event(qts, NULL, NULL);

    /* Paused: in memory before the guest runs another instruction. */
    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    set_guid(qts, "auto");
    paused = guest_guid(qts, addr);
    g_assert_cmpstr(paused, !=, GUID2);
    assert_qmp_guid(qts, paused);
    g_assert_cmphex(gpe_status(qts, m) & GPE_VMGENID, ==, GPE_VMGENID);
    assert_event(qts, paused, "set");
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");

    /* HMP */
    out = qtest_hmp(qts, "set_vm_generation_id " GUID1);
    g_assert_cmpstr(out, ==, "");
    g_free(guid);
    guid = guest_guid(qts, addr);
    g_assert_cmpstr(guid, ==, GUID1);
    assert_event(qts, GUID1, "set");

    rsp = qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                    " 'arguments': {'guid': 'xyz'}}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    "'xyz' is not a valid GUID");
    qobject_unref(rsp);
    assert_qmp_guid(qts, GUID1);
    qtest_quit(qts);
}

/* Set before the firmware placed the page: kept, then placed. */
static void test_set_early(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = start_vm(m, NULL, "-S -device vmgenid,guid=" GUID1);
    g_autofree char *guid = NULL;

    drop_events(qts);
    set_guid(qts, GUID2);
    assert_event(qts, GUID2, "set");
    g_assert_cmphex(fw_cfg_addr_file(qts), ==, 0);
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    boot_sector_test(qts);
    guid = guest_guid(qts, seabios_guid_addr(qts));
    g_assert_cmpstr(guid, ==, GUID2);
    g_assert_cmphex(gpe_status(qts, m) & GPE_VMGENID, ==, 0);
    qtest_quit(qts);
}

/* One UEFI boot: q35 with Debian's OVMF and QEMU's UEFI ACPI test image. */
static void test_uefi(const void *opaque)
{
    const char *code = g_getenv("VMGENID_TEST_OVMF_CODE") ?:
                       "/usr/share/OVMF/OVMF_CODE_4M.fd";
    const char *vars = g_getenv("VMGENID_TEST_OVMF_VARS") ?:
                       "/usr/share/OVMF/OVMF_VARS_4M.fd";
    g_autofree char *image = g_test_build_filename(G_TEST_DIST, "..", "data",
        "uefi-boot-images", "bios-tables-test.x86_64.iso.qcow2", NULL);
    g_autofree char *guid = NULL;
    QTestState *qts;
    uint64_t rsdp;

    if (!g_file_test(code, G_FILE_TEST_EXISTS) ||
        !g_file_test(vars, G_FILE_TEST_EXISTS)) {
        g_test_skip("no OVMF: install Debian's ovmf package");
        return;
    }
    qts = qtest_initf("-machine q35 -accel tcg -nodefaults -net none -m 128M"
                      " -drive if=pflash,format=raw,file=%s,readonly=on"
                      " -drive if=pflash,format=raw,file=%s,snapshot=on"
                      " -cdrom %s -device vmgenid,guid=" GUID1,
                      code, vars, image);
    rsdp = acpi_find_rsdp_address_uefi(qts, 0, RAM_SIZE);
    guid = guest_guid(qts, guid_addr(qts, rsdp));
    g_assert_cmpstr(guid, ==, GUID1);
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

static void test_bad_guid(void)
{
    static const char *const bad[] = {
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
    int i;

    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autofree char *args = g_strdup_printf("-M pc -device vmgenid,guid=%s",
                                                bad[i]);
        g_autofree char *expected = g_strdup_printf(
            "-device vmgenid,guid=%s: '%s' is not a valid GUID",
            bad[i], bad[i]);

        assert_startup_error(args, expected);
    }
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
    assert_startup_error("-M microvm -device vmgenid",
        "-device vmgenid: Parameter 'driver' expects a dynamic sysbus device"
        " type for the machine");
    assert_startup_error("-M none -device vmgenid",
        "-device vmgenid: Parameter 'driver' expects a dynamic sysbus device"
        " type for the machine");
}

static void test_hotplug(const void *opaque)
{
    const Machine *m = opaque;
    QTestState *qts = qtest_initf("-machine %s", m->name);
    QDict *rsp;

    rsp = qtest_qmp(qts, "{'execute': 'device_add',"
                    " 'arguments': {'driver': 'vmgenid'}}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    "Device 'vmgenid' does not support hotplugging");
    qobject_unref(rsp);

    rsp = qtest_qmp(qts, "{'execute': 'query-vm-generation-id'}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    "there is no vmgenid device");
    qobject_unref(rsp);
    rsp = qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                    " 'arguments': {'guid': 'auto'}}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    "there is no vmgenid device");
    qobject_unref(rsp);
    qtest_quit(qts);
}

/*
 * GUID addresses a misbehaving guest may report through etc/vmgenid_addr.
 * None may make QEMU write anywhere: each leaves the windows below
 * untouched.
 */
static const struct {
    uint64_t addr;
    const char *why;            /* NULL: nothing to log */
} hostile[] = {
    { 0, NULL },
    { 0x300001, "is not 8-byte aligned" },
    { RAM_SIZE, "is not in guest RAM" },
    { RAM_SIZE - 8, "runs past the end of guest RAM" },
    { 0xfed00000, "is not in guest RAM" },               /* HPET */
    { 0xfffff000, "is not in guest RAM" },               /* BIOS ROM */
    { 0x100001000ULL, "is not in guest RAM" },           /* 4G + 4K */
    { 0xfffffffffffffff8ULL, "is out of range" },
};

static const struct {
    uint64_t start, len;
} windows[] = {
    { 0, 0x2000 },
    { 0x300000, 0x2000 },
    { RAM_SIZE - 0x1000, 0x1000 },
};

static void test_hostile(const void *opaque)
{
    const Machine *m = opaque;
    g_autofree char *tmp = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(tmp, "log", NULL);
    g_autofree char *logged = NULL, *expected = NULL, *guid = NULL;
    g_autoptr(GString) want = g_string_new("");
    uint8_t *before[ARRAY_SIZE(windows)];
    QOSState *qs;
    QFWCFG *fw_cfg;
    int i, j;

    qs = qtest_pc_boot("-machine %s -m 128M -d guest_errors -D %s"
                       " -device vmgenid,guid=" GUID1, m->name, log);
    fw_cfg = pc_fw_cfg_init(qs->qts);

    for (j = 0; j < ARRAY_SIZE(windows); j++) {
        before[j] = g_malloc(windows[j].len);
        for (i = 0; i < windows[j].len; i++) {
            before[j][i] = i * 7 + j;
        }
        qtest_memwrite(qs->qts, windows[j].start, before[j], windows[j].len);
    }

    for (i = 0; i < ARRAY_SIZE(hostile); i++) {
        uint64_t le = cpu_to_le64(hostile[i].addr);

        qfw_cfg_write_file(fw_cfg, qs, "etc/vmgenid_addr", &le, sizeof(le));
        qtest_qmp_assert_success(qs->qts, "{'execute': 'query-status'}");
        if (hostile[i].why) {
            g_string_append_printf(want, "vmgenid: GUID address 0x%" PRIx64
                                   " %s; not writing it\n",
                                   hostile[i].addr, hostile[i].why);
        }
    }
    for (j = 0; j < ARRAY_SIZE(windows); j++) {
        g_autofree uint8_t *after = g_malloc(windows[j].len);

        qtest_memread(qs->qts, windows[j].start, after, windows[j].len);
        g_assert(!memcmp(after, before[j], windows[j].len));
        g_free(before[j]);
    }
    g_assert_true(g_file_get_contents(log, &logged, NULL, NULL));
    g_assert_cmpstr(logged, ==, want->str);

    /* A sane address is still honoured afterwards. */
    {
        uint64_t le = cpu_to_le64(0x200028);

        qfw_cfg_write_file(fw_cfg, qs, "etc/vmgenid_addr", &le, sizeof(le));
        guid = guest_guid(qs->qts, 0x200028);
        g_assert_cmpstr(guid, ==, GUID1);
    }

    pc_fw_cfg_uninit(fw_cfg);
    qtest_shutdown(qs);
    unlink(log);
    rmdir(tmp);
}

static void add_test(const Machine *m, const char *name, const void *data,
                     void (*fn)(const void *))
{
    g_autofree char *path = g_strdup_printf("vmgenid/%s/%s", m->name, name);

    qtest_add_data_func(path, data, fn);
}

int main(int argc, char **argv)
{
    int ret, i, j;

    g_test_init(&argc, &argv, NULL);

    if (!qtest_has_device("vmgenid")) {
        g_test_skip("this QEMU has no vmgenid device");
        return g_test_run();
    }

    g_assert_cmpint(boot_sector_init(disk), ==, 0);

    for (i = 0; i < ARRAY_SIZE(machines); i++) {
        const Machine *m = &machines[i];

        if (!qtest_has_machine(m->name)) {
            continue;
        }
        add_test(m, "cmdline", m, test_cmdline);
        add_test(m, "auto", m, test_auto);
        add_test(m, "ssdt", m, test_ssdt);
        add_test(m, "reset", m, test_reset);
        add_test(m, "loadvm-auto", m, test_loadvm_auto);
        add_test(m, "loadvm-fixed", m, test_loadvm_fixed);
        add_test(m, "set", m, test_set);
        add_test(m, "set-early", m, test_set_early);
        for (j = 0; j < ARRAY_SIZE(migrate_cases); j++) {
            MigrateTest *t = g_new(MigrateTest, 1);

            *t = (MigrateTest) { m, &migrate_cases[j] };
            add_test(m, migrate_cases[j].name, t, test_migrate);
        }
        add_test(m, "hotplug", m, test_hotplug);
        add_test(m, "hostile-addr", m, test_hostile);
    }
    if (qtest_has_machine("q35")) {
        qtest_add_data_func("vmgenid/q35/uefi", NULL, test_uefi);
    }
    qtest_add_func("vmgenid/bad-guid", test_bad_guid);
    qtest_add_func("vmgenid/refused", test_refused);

    ret = g_test_run();
    boot_sector_cleanup(disk);
    return ret;
}
