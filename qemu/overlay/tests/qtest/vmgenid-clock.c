/*
 * QTest for the VM Generation ID device: vmclock on its own
 *
 * vmclock's page without a vmgenid device: its generation counter's
 * default on each machine, what a load shows the guest and when, and the
 * streams a destination refuses; and a cpr-transfer, whose destination
 * shares the page with its source. With vmgenid, vmgenid-seq.c checks the
 * page after every step of its sequences.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qobject/qdict.h"
#include "vmgenid-test.h"

/* Whether the machine notified the guest of an update of vmclock's page. */
static bool clock_notified(Vm *vm)
{
    bool acpi = acpi_notes(vm) & NOTE_VMCLOCK;

    return vm->m->kind == VIRT ? dt_clock_notified(vm) && acpi : acpi;
}

/*
 * After a load of the state whose page was @snap: the page shows it (one
 * disruption more, and with the counter, @gen, a new generation) and the
 * guest was notified, or, without the counter, it is upstream's page.
 */
static uint64_t assert_clock_loaded(Vm *vm, const ClockPage *snap, bool gen)
{
    ClockPage now;

    clock_read(vm, &now);
    g_assert_cmphex(now.flags, ==, gen ? CLOCK_FLAGS : 0);
    g_assert_cmpuint(now.seq % 2, ==, 0);
    g_assert_cmpuint(now.marker, ==, snap->marker + 1);
    if (gen) {
        g_assert_cmpuint(now.counter, >, snap->counter);
    } else {
        g_assert_cmpuint(now.counter, ==, 0);
    }
    g_assert(clock_notified(vm) == gen);
    return now.counter;
}

/* @vm's stopped state into the file @path of the scratch folder. */
static void save_state(Vm *vm, const char *path)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *end = NULL;

    qtest_qmp_assert_success(vm->qts, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", uri);
    end = vm_wait(vm, NULL, NULL);
    g_assert_cmpstr(end, ==, "completed");
}

/*
 * Load @state, with the bytes @off bytes into @pattern changed to @bad (if
 * there is a pattern), into a new QEMU with @args: the load fails, saying
 * @expected.
 */
static void assert_bad_state(const Machine *m, const char *state,
                             const void *pattern, size_t len, size_t off,
                             const void *bad, size_t bad_len,
                             const char *args, const char *expected)
{
    g_autofree char *bad_path = g_strdup_printf("%s.bad", state);
    g_autofree char *uri = g_strdup_printf("file:%s", bad_path);
    g_autofree char *data = NULL, *end = NULL;
    g_autofree char *more = g_strdup_printf("-incoming defer %s", args);
    const char *desc;
    char *at;
    gsize size;
    QDict *rsp;
    Vm *vm;

    g_assert_true(g_file_get_contents(state, &data, &size, NULL));
    for (at = data; pattern && at + len <= data + size &&
         memcmp(at, pattern, len); at++) {
        /* look further */
    }
    if (pattern) {
        g_assert_true(at + len <= data + size);
        g_assert_true(at + off + bad_len <= data + size);
        memcpy(at + off, bad, bad_len);
    }
    g_assert_true(g_file_set_contents(bad_path, data, size, NULL));
    vm = vm_start(&(Start){ m, BOOT_HALT, .args = more });
    qtest_qmp_assert_success(vm->qts, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s,"
                             "  'exit-on-error': false}}", uri);
    end = vm_wait(vm, NULL, NULL);
    g_assert_cmpstr(end, ==, "failed");
    rsp = qtest_qmp(vm->qts, "{'execute': 'query-migrate'}");
    desc = qdict_get_str(qdict_get_qdict(rsp, "return"), "error-desc");
    if (!strstr(desc, expected)) {
        g_test_message("QEMU said: %s", desc);
    }
    g_assert_nonnull(strstr(desc, expected));
    qobject_unref(rsp);
    vm_quit(vm);
    unlink(bad_path);
}

typedef struct {
    const Machine *m;
    bool on;                    /* vm-generation-counter=on */
    bool from_none;             /* cpr-transfer from a source without one */
} ClockTest;

/*
 * vmclock without vmgenid. Its generation counter is on where no earlier
 * QEMU described vmclock (microvm, virt) and, on pc and q35, when asked
 * for; then a load moves the counter and the marker when the guest runs
 * (not while it is stopped) and notifies it. Otherwise the page is
 * upstream's: flags 0, the marker moved at once by a load, no
 * notification. A stream with the page elsewhere, a page that is not a
 * vmclock page, or one of another version than the state names (as when
 * the stream lost it), is refused.
 */
static void test_vmclock(const void *opaque)
{
    const ClockTest *t = opaque;
    const Machine *m = t->m;
    const bool gen = m->kind != PC || t->on;
    const char *args = t->on ? "-device vmclock,vm-generation-counter=on"
                             : "-device vmclock";
    /* The same, with the counter the other way */
    const char *other = gen ? "-device vmclock,vm-generation-counter=off"
                            : "-device vmclock,vm-generation-counter=on";
    g_autofree char *img = g_build_filename(tmp_dir, "clock.qcow2", NULL);
    g_autofree char *state = g_build_filename(tmp_dir, "clock.state", NULL);
    static const uint8_t section[] = "\x07vmclock\0\0\0\0\0\0\0\1";
    const uint8_t page[] = { 'V', 'C', 'L', 'K', 0, m->kind == VIRT ? 0 : 0x10,
                             m->kind == VIRT, 0 };       /* size: 4 or 64 KiB */
    static const uint8_t far[8] = { 0, 0, 0, 1 }, version[2] = { 2 };
    static const uint8_t zero[8];
    g_autofree char *msg = NULL;
    uint64_t counter[2];
    ClockPage snap, now;
    Vm *vm;
    int i;

    g_assert_true(mkimg(img, "qcow2", 1));
    vm = vm_start(&(Start){ m, BOOT_HALT, .disk = img, .args = args });
    notify_setup(vm);
    clock_read(vm, &snap);
    g_assert_cmphex(snap.magic, ==, CLOCK_MAGIC);
    g_assert_cmphex(snap.flags, ==, gen ? CLOCK_FLAGS : 0);
    g_assert_cmpuint(snap.seq, ==, 2);
    g_assert_cmpuint(snap.marker, ==, 1);
    g_assert_cmpuint(snap.counter, ==, 0);
    g_free(qtest_hmp(vm->qts, "savevm s1"));
    for (i = 0; i < 2; i++) {
        g_free(qtest_hmp(vm->qts, "loadvm s1"));
        counter[i] = assert_clock_loaded(vm, &snap, gen);
    }
    /* Two copies of one state do not count alike. */
    g_assert(!gen || counter[0] != counter[1]);

    /* Stopped, the guest sees the load when it runs (with the counter). */
    qtest_qmp_assert_success(vm->qts, "{'execute': 'stop'}");
    g_free(qtest_hmp(vm->qts, "loadvm s1"));
    if (gen) {
        clock_read(vm, &now);
        g_assert(!memcmp(&now, &snap, sizeof(now)));
        g_assert_false(clock_notified(vm));
        qtest_qmp_assert_success(vm->qts, "{'execute': 'cont'}");
        qtest_qmp_assert_success(vm->qts, "{'execute': 'stop'}");
    }
    assert_clock_loaded(vm, &snap, gen);

    clock_read(vm, &now);
    save_state(vm, state);
    vm_quit(vm);
    unlink(img);
    msg = g_strdup_printf("vmclock: the incoming state places the page at"
                          " 0x100000000, not at 0x%" PRIx64 " where this"
                          " machine has it", clock_page(m));
    assert_bad_state(m, state, section, sizeof(section) - 1,
                     sizeof(section) - 1, far, sizeof(far), args, msg);
    if (gen) {
        g_free(msg);
        msg = g_strdup_printf("vmclock: the incoming page is not a vmclock"
                              " page with the generation counter (magic"
                              " 0x4b4c4356, version 2, size %d, flags 0x300)",
                              m->kind == VIRT ? 65536 : 4096);
        assert_bad_state(m, state, page, sizeof(page), 8, version,
                         sizeof(version), args, msg);
        /* vm_generation_counter, at 104, as a fresh page has it */
        g_free(msg);
        msg = g_strdup_printf("vmclock: the incoming page is not the one the"
                              " incoming state describes (seq_count %u,"
                              " counter 0, not %u, %" PRIu64 "): the stream"
                              " lost or damaged it", now.seq, now.seq,
                              now.counter);
        assert_bad_state(m, state, page, sizeof(page), 104, zero,
                         sizeof(zero), args, msg);
    }
    /* Both ends must have the counter, or neither. */
    g_free(msg);
    msg = g_strdup_printf("vmclock: the incoming state has the generation"
                          " counter %s, this QEMU has it %s"
                          " (vm-generation-counter)", gen ? "on" : "off",
                          gen ? "off" : "on");
    assert_bad_state(m, state, NULL, 0, 0, NULL, 0, other, msg);
    unlink(state);
}

/*
 * cpr-transfer: the destination shares the page (as all RAM) with its
 * source, which must not find it reset when the destination starts. Given
 * the GUID the guest was last told of, the guest goes on in its
 * generation: the counter stays the source's, and the load shows as one
 * disruption once it runs. With @opaque's from_none, the source has no
 * vmclock: the destination's page is a new one, set up as at any start.
 */
static void test_cpr_transfer(const void *opaque)
{
    const ClockTest *t = opaque;
    const Machine *m = t->m;
    const uint64_t addr = m->ram + 0x200028;
    g_autofree char *cpr = g_build_filename(tmp_dir, "cpr.sock", NULL);
    g_autofree char *mig = g_build_filename(tmp_dir, "cpr-main.sock", NULL);
    g_autofree char *args = NULL, *clock = NULL, *to = NULL, *end = NULL;
    g_autofree char *guid = NULL;
    ClockPage before, after;
    Vm *src, *dst;
    int fd;

    args = g_strdup("-machine aux-ram-share=on,memory-backend=ram0"
                    " -object memory-backend-memfd,id=ram0,size=128M,"
                    "share=on -device vmgenid,guid=");
    clock = g_strdup_printf(" -device vmclock%s",
                            m->kind == PC ? ",vm-generation-counter=on" : "");
    to = g_strdup_printf("%s" GUID1 "%s", args, t->from_none ? "" : clock);
    src = vm_start(&(Start){ m, BOOT_HALT, .args = to });
    notify_setup(src);
    report_addr(src, addr);
    qtest_qmp_assert_success(src->qts, "{'execute': 'set-vm-generation-id',"
                             " 'arguments': {'guid': %s}}", GUID2);
    if (!t->from_none) {
        clock_read(src, &before);
        g_assert_cmpuint(before.counter, >, 0);
    }

    fd = qtest_socket_server(cpr);
    g_assert_cmpint(fd, >=, 0);
    g_free(to);
    to = g_strdup_printf("%s" GUID2 "%s -incoming cpr,addr.transport=socket,"
                         "addr.type=fd,addr.str=%d -incoming unix:%s", args,
                         clock, fd, mig);
    dst = vm_start(&(Start){ m, BOOT_HALT, .args = to, .later = true });
    close(fd);
    qtest_qmp_assert_success(src->qts, "{'execute': 'migrate-set-parameters',"
                             " 'arguments': {'mode': 'cpr-transfer'}}");
    qtest_qmp_assert_success(src->qts, "{'execute': 'migrate', 'arguments':"
        " {'channels': [{'channel-type': 'main', 'addr': {"
        "   'transport': 'socket', 'type': 'unix', 'path': %s}},"
        "  {'channel-type': 'cpr', 'addr': {"
        "   'transport': 'socket', 'type': 'unix', 'path': %s}}]}}",
        mig, cpr);
    qtest_connect(dst->qts);
    qtest_qmp_handshake(dst->qts, NULL);
    end = vm_wait(src, NULL, NULL);
    g_assert_cmpstr(end, ==, "completed");
    g_free(end);
    end = vm_wait(dst, NULL, "inmigrate");
    g_assert_cmpstr(end, ==, "running");

    clock_read(dst, &after);
    g_assert_cmphex(after.magic, ==, CLOCK_MAGIC);
    if (!t->from_none) {
        g_assert_cmpuint(after.counter, ==, before.counter);
        g_assert_cmpuint(after.marker, ==, before.marker + 1);
        g_assert_cmpuint(after.seq, ==, before.seq + 2);
    }
    guid = guest_guid(dst->qts, addr);
    g_assert_cmpstr(guid, ==, GUID2);
    g_assert_cmpint(dst->changes, ==, 0);
    vm_quit(dst);
    vm_quit(src);
    unlink(cpr);
    unlink(mig);
}

void clock_add_cases(const Machine *m)
{
    int on;

    for (on = 0; on <= (m->kind == PC); on++) {
        ClockTest *t = g_new(ClockTest, 1);

        *t = (ClockTest) { m, on };
        add_case(m, on ? "vmclock/counter-on" : "vmclock/default", t,
                 test_vmclock);
    }
    for (on = 0; on <= 1; on++) {
        ClockTest *t = g_new(ClockTest, 1);

        *t = (ClockTest) { m, .from_none = on };
        add_case(m, on ? "vmclock/cpr-transfer-from-none" :
                 "vmclock/cpr-transfer", t, test_cpr_transfer);
    }
}
