/*
 * QTest for the VM Generation ID device: the rule for telling the guest,
 * over orders of events
 *
 * A reference model of docs/specs/vmgenid.rst ("Telling the guest"),
 * written from that text and not from the device: guest memory only ever
 * holds a GUID the guest was told of or is being told of. The model is
 * driven alongside QEMU through sequences of events: fixed ones, every
 * sequence up to a bounded length, and seeded random longer ones. After
 * each step QEMU's GUID (QMP, HMP, QOM), the test page, QEMU's own page
 * (virt), the machine's notification and the change events must be what
 * the model says. So must the vmclock page every process has, with its
 * generation counter on: the counter moves exactly when the guest is told
 * of a new GUID, the disruption marker once the guest runs after a load,
 * and each update is notified.
 *
 * No firmware runs: x86 machines get a BIOS that halts, virt one that
 * waits, and the test reports the GUID's address itself, as firmware
 * would, whenever the sequence says so. Every process has a qcow2 disk
 * for savevm, shared by the processes one sequence migrates through.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qobject/qdict.h"
#include "vmgenid-test.h"

typedef enum {
    EV_NONE,
    /* Those explored in every order. */
    EV_STOP, EV_CONT, EV_SET_NEW, EV_SET_SAME, EV_SET_AUTO, EV_SAVEVM,
    EV_LOADVM, EV_MIGRATE_AUTO, EV_MIGRATE_SAME, EV_MIGRATE_OTHER,
    EV_MIGRATE_FAILED, EV_S3, EV_WAKEUP, EV_RESET, EV_REPORT,
    EV_REPORT_BAD, EV__EXPLORED,
    /* Those only fixed sequences use. */
    EV_SET_HMP = EV__EXPLORED, EV_SET_QOM, EV_SET_TOLD, EV_UNREALIZE,
    EV_MIGRATE_KEEP_SOURCE, EV_SAVE_FILE, EV_RESTORE, EV_SHARED_AUTO,
    EV_SHARED_OTHER, EV_SHARED_FAILED, EV__MAX
} SeqEvent;

typedef enum {
    ST_RUNNING, ST_PAUSED, ST_PRELAUNCH, ST_SUSPENDED, ST_POSTMIGRATE
} SeqStatus;

static const char *const seq_status_names[] = {
    "running", "paused", "prelaunch", "suspended", "postmigrate",
};

/* A fixed sequence, and how its first QEMU starts. */
typedef struct {
    const char *name;
    bool auto_start;            /* guid=auto, not a fixed GUID */
    bool prelaunch;             /* -S, no address reported yet */
    bool shared;                /* RAM in a shared memory backend */
    bool no_acpi;               /* acpi=off, so no address ever (virt) */
    SeqEvent ev[12];            /* up to the first EV_NONE */
} SeqCase;

static const SeqCase seq_cases[] = {
    { "set", .ev = { EV_SET_NEW, EV_SET_SAME, EV_SET_AUTO, EV_SET_HMP,
                     EV_SET_QOM } },
    { "auto", true, .ev = { EV_SET_NEW } },
    /* While paused only recorded, told at cont, unless set back. */
    { "set-paused", .ev = { EV_STOP, EV_SET_AUTO, EV_SET_NEW, EV_CONT,
      EV_STOP, EV_SET_NEW, EV_SET_TOLD, EV_CONT, EV_STOP, EV_CONT,
      EV_RESET, EV_REPORT } },
    { "set-early", .prelaunch = true, .ev = { EV_SET_NEW, EV_CONT,
                                              EV_REPORT } },
    { "reset", .ev = { EV_RESET, EV_SET_NEW, EV_REPORT, EV_SET_NEW } },
    { "loadvm-auto", true, .ev = { EV_SAVEVM, EV_LOADVM } },
    { "loadvm-fixed", .ev = { EV_SAVEVM, EV_LOADVM } },
    { "loadvm-fixed-set", .ev = { EV_SAVEVM, EV_SET_NEW, EV_LOADVM } },
    { "loadvm-paused", true, .ev = { EV_SAVEVM, EV_STOP, EV_LOADVM,
                                     EV_CONT } },
    { "migrate", .ev = { EV_MIGRATE_OTHER } },
    { "migrate-same", .ev = { EV_MIGRATE_SAME } },
    { "migrate-auto", true, .ev = { EV_MIGRATE_AUTO } },
    { "migrate-auto-to-fixed", true, .ev = { EV_MIGRATE_OTHER } },
    { "migrate-fixed-to-auto", .ev = { EV_MIGRATE_AUTO } },
    { "migrate-paused-cont", true, .ev = { EV_STOP, EV_MIGRATE_AUTO,
                                           EV_CONT } },
    { "migrate-paused-keep", true, .ev = { EV_STOP, EV_MIGRATE_AUTO,
                                           EV_SET_TOLD, EV_CONT } },
    { "migrate-source-resumes", true, .ev = { EV_MIGRATE_KEEP_SOURCE,
                                              EV_CONT } },
    { "migrate-failed", .ev = { EV_MIGRATE_FAILED, EV_SET_NEW } },
    { "restore-twice", true, .ev = { EV_STOP, EV_SAVE_FILE, EV_RESTORE,
                                     EV_CONT, EV_RESTORE, EV_CONT } },
    { "s3", .ev = { EV_S3, EV_SET_NEW, EV_WAKEUP } },
    /* Told only when it landed in memory: not with a refused address. */
    { "hostile-addr-running", .ev = { EV_REPORT_BAD, EV_SET_NEW, EV_REPORT,
                                      EV_SET_NEW } },
    /* Unrealizing is ignored: the device, its section, go on working. */
    { "unrealize", true, .ev = { EV_UNREALIZE, EV_SET_NEW, EV_SAVEVM,
                                 EV_LOADVM, EV_MIGRATE_AUTO } },
    /*
     * On memory shared with the source as on a copy: guid=auto draws a
     * new GUID; a failed destination writes nothing the source resumes
     * on; one given another GUID tells the guest when it runs.
     */
    { "shared-memory", .shared = true, .ev = { EV_SHARED_AUTO,
      EV_SHARED_FAILED, EV_SHARED_OTHER } },
    /* Without ACPI the devicetree is the only way, and enough. */
    { "acpi-off", .no_acpi = true, .ev = { EV_SET_NEW } },
    /* Orders that once went wrong: not in memory before cont... */
    { "sequences/paused-set-migrate", .ev = { EV_STOP, EV_SET_NEW,
      EV_MIGRATE_SAME, EV_CONT } },
    { "sequences/paused-set-savevm", .ev = { EV_STOP, EV_SET_NEW,
      EV_SAVEVM, EV_CONT, EV_LOADVM } },
    /* ... a reset during S3 leaves the guest awake... */
    { "sequences/s3-reset-set", .ev = { EV_S3, EV_RESET, EV_CONT, EV_REPORT,
      EV_SET_NEW } },
    /* ... and resumes it from S3: a change made meanwhile is told... */
    { "sequences/s3-set-reset", .ev = { EV_S3, EV_SET_NEW, EV_RESET,
      EV_CONT } },
    /* ... also after a second reset before it ran. */
    { "sequences/s3-set-reset-reset", .ev = { EV_S3, EV_SET_NEW, EV_RESET,
      EV_RESET, EV_CONT } },
    /* A state saved in S3 loads asleep: a reset, cont or loadvm wakes it. */
    { "sequences/s3-saved-reset", true, .ev = { EV_S3, EV_SAVEVM, EV_WAKEUP,
      EV_STOP, EV_LOADVM, EV_RESET, EV_CONT } },
    { "sequences/s3-saved-cont", true, .ev = { EV_S3, EV_SAVEVM, EV_WAKEUP,
      EV_STOP, EV_LOADVM, EV_CONT, EV_WAKEUP } },
    { "sequences/s3-saved-loadvm", true, .ev = { EV_S3, EV_SAVEVM,
      EV_WAKEUP, EV_LOADVM } },
    /* ... also after the guest was reset in S3 and ran again. */
    { "sequences/s3-saved-reset-loadvm", .ev = { EV_S3, EV_SAVEVM,
      EV_RESET, EV_CONT, EV_LOADVM } },
};

static const SeqCase seq_default = { "default" };

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
    bool inactive;              /* disks not (yet) this process' */
    bool out_failed;            /* an outgoing migration failed */
    bool snap, snap_addr;       /* a snapshot exists, holding: */
    bool snap_asleep;
    char snap_mem[UUID_TEXT], snap_dt[UUID_TEXT];
    bool file_addr;             /* the state saved to a file holds: */
    char file_mem[UUID_TEXT], file_dt[UUID_TEXT];
    int fixed;                  /* fixed GUIDs handed out so far */
    bool clock_pending;         /* a load vmclock has not shown yet */
} Model;

/* The n-th fixed GUID a sequence uses: all different. */
static void fixed_guid(char *buf, int n)
{
    g_snprintf(buf, UUID_TEXT, "5e000000-0000-4000-8000-%012x", n);
}

static void model_init(Model *md, const Machine *m, const SeqCase *c)
{
    *md = (Model) { .status = c->prelaunch ? ST_PRELAUNCH : ST_RUNNING,
                    .addr = !c->prelaunch && !c->no_acpi,
                    .policy_auto = c->auto_start };
    fixed_guid(md->guid, md->fixed++);
    strcpy(md->told, md->guid);
    strcpy(md->mem, md->addr ? md->guid : NIL_GUID);
    strcpy(md->dt, m->kind == VIRT ? md->guid : NIL_GUID);
}

/* Whether the event can happen in the model's state. */
static bool model_can(const Model *md, const Machine *m, SeqEvent ev)
{
    switch (ev) {
    case EV_SAVEVM:
        return (!md->asleep || md->status == ST_SUSPENDED) && !md->inactive;
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
    md->clock_pending = true;
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
        if (md->status == ST_PAUSED || md->status == ST_PRELAUNCH ||
            md->status == ST_POSTMIGRATE) {
            md->status = md->was_suspended ? ST_SUSPENDED : ST_RUNNING;
        }
        /* Running, a guest reset during S3 was resumed by the firmware. */
        md->asleep &= md->status != ST_RUNNING;
        break;
    case EV_SET_NEW:
    case EV_SET_HMP:
    case EV_SET_QOM:
        fixed_guid(md->guid, md->fixed++);
        /* fall through */
    case EV_SET_SAME:
        md->reason = "set";
        break;
    case EV_SET_AUTO:
        md->fresh = true;
        md->reason = "set";
        break;
    case EV_SET_TOLD:
        strcpy(md->guid, md->told);
        md->reason = "set";
        break;
    case EV_SAVEVM:
        md->snap = true;
        strcpy(md->snap_mem, md->mem);
        strcpy(md->snap_dt, md->dt);
        md->snap_addr = md->addr;
        md->snap_asleep = md->asleep;
        break;
    case EV_LOADVM:
        model_load(md, m, md->snap_mem, md->snap_dt, md->snap_addr,
                   "snapshot-load");
        /*
         * A guest saved in S3 loads asleep; loadvm in a running VM wakes
         * it at once.
         */
        md->asleep = md->snap_asleep && md->status != ST_RUNNING;
        md->was_suspended = md->asleep;
        break;
    case EV_MIGRATE_OTHER:
    case EV_SHARED_OTHER:
        fixed_guid(md->guid, md->fixed++);
        /* fall through */
    case EV_MIGRATE_AUTO:
    case EV_MIGRATE_SAME:
    case EV_SHARED_AUTO:
        md->policy_auto = ev == EV_MIGRATE_AUTO || ev == EV_SHARED_AUTO;
        model_load(md, m, md->mem, md->dt, md->addr, "migration");
        md->out_failed = false;
        /* A destination that does not run leaves the disks to the source. */
        md->inactive = md->status != ST_RUNNING;
        break;
    case EV_MIGRATE_FAILED:
    case EV_SHARED_FAILED:
        md->out_failed = true;
        break;
    case EV_MIGRATE_KEEP_SOURCE:
    case EV_SAVE_FILE:
        md->status = ST_POSTMIGRATE;
        md->inactive = true;
        md->file_addr = md->addr;
        strcpy(md->file_mem, md->mem);
        strcpy(md->file_dt, md->dt);
        break;
    case EV_RESTORE:
        md->policy_auto = true;
        model_load(md, m, md->file_mem, md->file_dt, md->file_addr,
                   "migration");
        md->status = ST_PAUSED;
        md->was_suspended = false;
        md->inactive = true;
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
            /*
             * Firmware resumes the guest from S3: a wakeup to it, when it
             * runs; until then, a reset again is one too.
             */
            break;
        }
        /* Awake, nothing pending, no address until firmware reports it. */
        strcpy(md->told, md->guid);
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
    case EV_UNREALIZE:
        break;
    default:
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

/*
 * After model_tell(): whether vmclock updates its page (and notifies) now.
 * Telling the guest of a GUID moves the counter; a load not shown yet is
 * shown then, or once the guest runs.
 */
static bool model_clock(Model *md, bool told)
{
    bool update = told || (md->clock_pending && md->status == ST_RUNNING);

    if (update) {
        md->clock_pending = false;
    }
    return update;
}

/* A sequence under way: the model, QEMU, and what it found wrong. */
typedef struct {
    const Machine *m;
    const SeqCase *c;
    Model md;
    Vm *vm;
    char *dir, *uri, *img;      /* its folder, socket, and disk */
    GHashTable *guids;          /* every GUID seen, to tell fresh ones */
    ClockPage clock;            /* the vmclock page after the last step */
    ClockPage snap_clock;       /* ... when the snapshot was taken */
    ClockPage file_clock;       /* ... when the state was saved to a file */
    GString *why;               /* "": all agreed */
} Seq;

/*
 * Start a process of the sequence: the machine, its disk, and
 * -device vmgenid,guid=@guid. All have the machine's extra device,
 * except a destination that is to fail, which logs its vmgenid trace.
 */
static Vm *seq_start(Seq *q, const char *guid, const char *more, bool fail)
{
    g_autoptr(GString) args = g_string_new("");
    Vm *vm;

    /* The device a failing destination lacks comes after vmgenid. */
    g_string_printf(args, "-device vmgenid,id=vg,guid=%s"
                    " -device vmclock,vm-generation-counter=on %s %s", guid,
                    fail ? "" : q->m->extra, more);
    if (q->m->s3_global) {
        g_string_append_printf(args, " -global %s", q->m->s3_global);
    }
    if (q->c->no_acpi) {
        g_string_append(args, " -machine acpi=off");
    }
    if (q->c->shared) {
        g_string_append_printf(args, " -machine memory-backend=ram0"
                               " -object memory-backend-file,id=ram0,"
                               "size=128M,share=on,mem-path=%s/ram", q->dir);
    }
    if (fail) {
        g_string_append_printf(args, " -trace vmgenid_post_load -D %s/trace",
                               q->dir);
    }
    vm = vm_start(&(Start){ q->m, BOOT_HALT, .disk = q->img,
                            .args = args->str });
    qtest_qmp_assert_success(vm->qts, "{'execute': 'migrate-set-capabilities',"
                             " 'arguments': {'capabilities': [{"
                             "  'capability': 'return-path',"
                             "  'state': true}]}}");
    return vm;
}

/* Where the test reports the page to be: 2 MiB into RAM, plus 40. */
static uint64_t seq_addr(const Machine *m)
{
    return m->ram + 0x200000 + GUID_OFFSET;
}

/* Note the error of a QMP response, if any. */
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

#define MIG             1       /* a live migration */
#define MIG_FAIL        2       /* ... to a destination that lacks a device */
#define MIG_SHARED      4       /* ... with x-ignore-shared */
#define MIG_KEEP_SOURCE 8       /* ... after which the source goes on */
#define MIG_FILE        16      /* restore the state saved to a file */

/* What QEMU is told to make each event happen. */
typedef struct {
    const char *name;
    const char *qmp, *wait;     /* a QMP command, then an event */
    const char *hmp;            /* an HMP command */
    int mig;                    /* a migration, MIG_* */
    bool to_auto;               /* ... to guid=auto, not the model's */
} SeqHow;

static const SeqHow seq_how[EV__MAX] = {
    [EV_STOP] = { "stop", "stop" },
    [EV_CONT] = { "cont", "cont" },
    [EV_SET_NEW] = { "set-new" },
    [EV_SET_SAME] = { "set-same" },
    [EV_SET_AUTO] = { "set-auto" },
    [EV_SAVEVM] = { "savevm", .hmp = "savevm s1" },
    [EV_LOADVM] = { "loadvm", .hmp = "loadvm s1" },
    [EV_MIGRATE_AUTO] = { "migrate-to-auto", .mig = MIG, .to_auto = true },
    [EV_MIGRATE_SAME] = { "migrate-to-source-guid", .mig = MIG },
    [EV_MIGRATE_OTHER] = { "migrate-to-other-guid", .mig = MIG },
    [EV_MIGRATE_FAILED] = { "migrate-failed", .mig = MIG_FAIL,
                            .to_auto = true },
    [EV_S3] = { "s3" },
    [EV_WAKEUP] = { "wakeup", "system_wakeup", "WAKEUP" },
    [EV_RESET] = { "reset", "system_reset", "RESET" },
    [EV_REPORT] = { "report-addr" },
    [EV_REPORT_BAD] = { "report-bad-addr" },
    [EV_SET_HMP] = { "set-hmp" },
    [EV_SET_QOM] = { "set-qom" },
    [EV_SET_TOLD] = { "set-told" },
    [EV_UNREALIZE] = { "unrealize" },
    [EV_MIGRATE_KEEP_SOURCE] = { "migrate-keep-source",
                                 .mig = MIG_KEEP_SOURCE, .to_auto = true },
    [EV_SAVE_FILE] = { "save-file" },
    [EV_RESTORE] = { "restore", .mig = MIG_FILE, .to_auto = true },
    [EV_SHARED_AUTO] = { "shared-migrate-to-auto", .mig = MIG_SHARED,
                         .to_auto = true },
    [EV_SHARED_OTHER] = { "shared-migrate-to-other-guid", .mig = MIG_SHARED },
    [EV_SHARED_FAILED] = { "shared-migrate-failed",
                           .mig = MIG_SHARED | MIG_FAIL, .to_auto = true },
};

/*
 * Migrate to a new process started with guid=@guid. With MIG_FAIL, its
 * load fails at the section of the device it lacks, which comes after
 * vmgenid's (the devices' order on the command line): its trace must show
 * that vmgenid's section was loaded. The survivor goes on.
 */
static bool seq_migrate(Seq *q, const char *guid, int flags)
{
    g_autofree char *img = q->img, *trace = NULL, *text = NULL;
    g_autofree char *before = NULL;
    g_autofree char *src_end = NULL, *dst_end = NULL;
    g_autofree char *file = g_strdup_printf("file:%s/state", q->dir);
    const char *want = flags & MIG_FAIL ? "failed" : "completed";
    Vm *dst;

    if (flags & MIG_FAIL) {
        /* A destination that is to fail does not touch the disk. */
        q->img = g_build_filename(q->dir, "other.qcow2", NULL);
        g_assert_true(mkimg(q->img, "qcow2", 1));
    }
    dst = seq_start(q, guid, "-incoming defer", flags & MIG_FAIL);
    if (flags & MIG_FAIL) {
        unlink(q->img);
        g_free(q->img);
    }
    q->img = g_steal_pointer(&img);
    before = qemu_guid(dst);
    g_hash_table_add(q->guids, g_strdup(before));
    if (flags & MIG_SHARED) {
        qtest_qmp_assert_success(dst->qts, "{'execute':"
            " 'migrate-set-capabilities', 'arguments': {'capabilities':"
            " [{'capability': 'x-ignore-shared', 'state': true}]}}");
        qtest_qmp_assert_success(q->vm->qts, "{'execute':"
            " 'migrate-set-capabilities', 'arguments': {'capabilities':"
            " [{'capability': 'x-ignore-shared', 'state': true}]}}");
    }
    if (flags & MIG_FILE) {
        qtest_qmp_assert_success(dst->qts, "{'execute':"
            " 'migrate-set-capabilities', 'arguments': {'capabilities':"
            " [{'capability': 'return-path', 'state': false}]}}");
    }
    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming',"
                             " 'arguments': {'uri': %s,"
                             "  'exit-on-error': false}}",
                             flags & MIG_FILE ? file : q->uri);
    if (!(flags & MIG_FILE)) {
        qtest_qmp_assert_success(q->vm->qts, "{'execute': 'migrate',"
                                 " 'arguments': {'uri': %s}}", q->uri);
        src_end = vm_wait(q->vm, NULL, NULL);
    }
    dst_end = vm_wait(dst, NULL, NULL);
    if ((src_end && strcmp(src_end, want)) || strcmp(dst_end, want)) {
        g_string_append_printf(q->why, "migration: source %s, destination"
                               " %s, expected %s", src_end, dst_end, want);
        vm_quit(dst);
        return false;
    }
    if (flags & MIG_FAIL) {
        trace = g_build_filename(q->dir, "trace", NULL);
        g_free(run_status(dst));
        if (!g_file_get_contents(trace, &text, NULL, NULL) ||
            !strstr(text, "vmgenid_post_load")) {
            g_string_append(q->why, "the failed destination did not load the"
                            " vmgenid section");
        } else if (dst->changes) {
            g_string_append_printf(q->why, "the failed destination reported"
                                   " a change to %s", dst->change_guid);
        }
        unlink(trace);
    }
    if (flags & (MIG_FAIL | MIG_KEEP_SOURCE)) {
        g_hash_table_add(q->guids, qemu_guid(dst));
        vm_quit(dst);
        /* The source goes on as it was. */
        g_free(vm_wait(q->vm, NULL, "finish-migrate"));
        return !q->why->len;
    }
    vm_quit(q->vm);
    q->vm = dst;
    g_free(vm_wait(dst, NULL, "inmigrate"));
    return true;
}

/* Save the stopped VM's state to a file; the process goes on. */
static bool seq_save_file(Seq *q)
{
    g_autofree char *file = g_strdup_printf("file:%s/state", q->dir);
    g_autofree char *end = NULL;

    qtest_qmp_assert_success(q->vm->qts, "{'execute':"
        " 'migrate-set-capabilities', 'arguments': {'capabilities':"
        " [{'capability': 'return-path', 'state': false}]}}");
    qtest_qmp_assert_success(q->vm->qts, "{'execute': 'migrate',"
                             " 'arguments': {'uri': %s}}", file);
    end = vm_wait(q->vm, NULL, NULL);
    if (strcmp(end, "completed")) {
        g_string_append_printf(q->why, "saving to a file: %s", end);
    }
    return !strcmp(end, "completed");
}

/*
 * The vmclock page a load starts from is the saved one: what it was at
 * savevm, or when the state was saved to a file.
 */
static void seq_clock_base(Seq *q, SeqEvent ev)
{
    switch (ev) {
    case EV_SAVEVM:
        q->snap_clock = q->clock;
        break;
    case EV_SAVE_FILE:
        q->file_clock = q->clock;
        break;
    case EV_LOADVM:
        q->clock = q->snap_clock;
        break;
    case EV_RESTORE:
        q->clock = q->file_clock;
        break;
    default:
        break;
    }
}

/* Make QEMU do @ev. */
static bool seq_do(Seq *q, SeqEvent ev)
{
    const SeqHow *how = &seq_how[ev];
    QTestState *qts = q->vm->qts;
    g_autofree char *line = NULL;
    QDict *rsp;

    if (how->qmp) {
        if (!seq_ok(q, qtest_qmp(qts, "{'execute': %s}", how->qmp),
                    how->qmp) || (how->wait && !vm_event(q->vm, how->wait))) {
            return false;
        }
        if (how->wait) {
            notify_setup(q->vm);
        }
        return true;
    } else if (how->hmp) {
        if (!seq_hmp(q, how->hmp)) {
            return false;
        }
        /*
         * A state saved in S3, loaded into a running VM, wakes at once:
         * the wakeup resets the PM device, which firmware sets up again.
         */
        if (ev == EV_LOADVM && q->md.snap_asleep &&
            q->md.status == ST_RUNNING) {
            if (!vm_event(q->vm, "WAKEUP")) {
                g_string_append(q->why, "loadvm did not wake the guest");
                return false;
            }
            notify_setup(q->vm);
        }
        return true;
    } else if (how->mig) {
        return seq_migrate(q, how->to_auto ? "auto" : q->md.guid, how->mig);
    }
    switch (ev) {
    case EV_SET_HMP:
        line = g_strdup_printf("set_vm_generation_id %s", q->md.guid);
        return seq_hmp(q, line);
    case EV_SET_QOM:
        return seq_ok(q, qtest_qmp(qts, "{'execute': 'qom-set', 'arguments':"
                                   " {'path': '" VG "', 'property': 'guid',"
                                   "  'value': %s}}", q->md.guid), "qom-set");
    case EV_UNREALIZE:
        /* Refused as an unplug; ignored as an unrealize. */
        rsp = qtest_qmp(qts, "{'execute': 'device_del', 'arguments':"
                        " {'id': 'vg'}}");
        if (g_strcmp0(qdict_get_try_str(qdict_get_qdict(rsp, "error"),
                                        "desc"), ERR_REMOVE)) {
            g_string_append(q->why, "device_del was not refused");
        }
        qobject_unref(rsp);
        return !q->why->len &&
               seq_ok(q, qtest_qmp(qts, "{'execute': 'qom-set', 'arguments':"
                                   " {'path': '" VG "', 'property':"
                                   " 'realized', 'value': false}}"),
                      "qom-set realized=false") &&
               seq_ok(q, qtest_qmp(qts, "{'execute': 'qom-set', 'arguments':"
                                   " {'path': '" VG "', 'property':"
                                   " 'realized', 'value': true}}"),
                      "qom-set realized=true");
    case EV_SAVE_FILE:
        return seq_save_file(q);
    case EV_S3:
        /* SLP_TYP 1 (QEMU's S3) and SLP_EN, as an OS suspending does. */
        qtest_outw(qts, q->m->pm1_cnt, (1 << 10) | (1 << 13));
        return vm_event(q->vm, "SUSPEND");
    case EV_REPORT:
    case EV_REPORT_BAD:
        /* A bad one: past the end of RAM. */
        report_addr(q->vm, seq_addr(q->m) +
                           (ev == EV_REPORT_BAD ? RAM_SIZE : 0));
        return true;
    default:
        return seq_ok(q, qtest_qmp(qts, "{'execute': 'set-vm-generation-id',"
                                   " 'arguments': {'guid': %s}}",
                                   ev == EV_SET_AUTO ? "auto" : q->md.guid),
                      "set-vm-generation-id");
    }
}

#define SEQ_EXPECT(cond, ...) \
    do { \
        if (!(cond)) { \
            g_string_append_printf(q->why, __VA_ARGS__); \
            return false; \
        } \
    } while (0)

/*
 * The vmclock page: whole and at rest, its counter moved by what the GUID
 * gives (1 plus its last 32 bits) if the guest was @told of one, its
 * marker by one if a load was shown.
 */
static bool seq_check_clock(Seq *q, bool told, bool disrupted)
{
    const char *last = q->md.guid + UUID_TEXT - 9;
    uint64_t step = told ? 1 + g_ascii_strtoull(last, NULL, 16) : 0;
    ClockPage now;

    clock_read(q->vm, &now);
    SEQ_EXPECT(now.magic == CLOCK_MAGIC && now.flags == CLOCK_FLAGS &&
               !(now.seq & 1), "the vmclock page has magic 0x%" PRIx32
               ", flags 0x%" PRIx64 ", seq_count %" PRIu32, now.magic,
               now.flags, now.seq);
    SEQ_EXPECT(now.counter == q->clock.counter + step, "vmclock's counter"
               " went from %" PRIu64 " to %" PRIu64 ", the model says +%"
               PRIu64, q->clock.counter, now.counter, step);
    SEQ_EXPECT(now.marker == q->clock.marker + disrupted, "vmclock's"
               " disruption marker went from %" PRIu64 " to %" PRIu64
               ", the model says +%d", q->clock.marker, now.marker,
               disrupted);
    q->clock = now;
    return true;
}

/* After a step: does QEMU agree with the model? */
static bool seq_check(Seq *q)
{
    const Machine *m = q->m;
    Model *md = &q->md;
    g_autofree char *status = run_status(q->vm);
    g_autofree char *guid = qemu_guid(q->vm);
    g_autofree char *mem = guest_guid(q->vm->qts, seq_addr(m));
    bool told, acpi, irq, clock, clock_pending;
    unsigned notes;

    if (md->fresh) {
        SEQ_EXPECT(!g_hash_table_contains(q->guids, guid),
                   "QEMU's new GUID %s is not new", guid);
        g_strlcpy(md->guid, guid, UUID_TEXT);
        md->fresh = false;
    }
    g_hash_table_add(q->guids, g_strdup(guid));
    told = model_tell(md, m);
    clock_pending = md->clock_pending;
    clock = model_clock(md, told);

    SEQ_EXPECT(!strcmp(status, seq_status_names[md->status]),
               "status %s, the model says %s", status,
               seq_status_names[md->status]);
    SEQ_EXPECT(!strcmp(guid, md->guid), "QEMU reports %s, the model %s",
               guid, md->guid);
    SEQ_EXPECT(!strcmp(mem, md->mem), "the page holds %s, the model says %s",
               mem, md->mem);
    if (m->kind == VIRT) {
        g_autofree char *dt = guest_guid(q->vm->qts, VIRT_DT_PAGE);

        SEQ_EXPECT(!strcmp(dt, md->dt), "QEMU's page holds %s, the model"
                   " says %s", dt, md->dt);
        irq = dt_notified(q->vm);
        SEQ_EXPECT(irq == told, "the devicetree interrupt is %s, the model"
                   " says %s", irq ? "pending" : "not pending",
                   told ? "pending" : "not pending");
        irq = dt_clock_notified(q->vm);
        SEQ_EXPECT(irq == clock, "vmclock's devicetree interrupt is %s, the"
                   " model says %s", irq ? "pending" : "not pending",
                   clock ? "pending" : "not pending");
    }
    notes = acpi_notes(q->vm);
    acpi = notes & NOTE_VMGENID;
    SEQ_EXPECT(acpi == (told && md->addr), "the ACPI notification was %s,"
               " the model says %s", acpi ? "raised" : "not raised",
               told && md->addr ? "raised" : "not raised");
    acpi = notes & NOTE_VMCLOCK;
    SEQ_EXPECT(acpi == (clock && !q->c->no_acpi), "vmclock's ACPI"
               " notification was %s, the model says %s",
               acpi ? "raised" : "not raised",
               clock && !q->c->no_acpi ? "raised" : "not raised");
    if (!seq_check_clock(q, told, clock && clock_pending)) {
        return false;
    }
    SEQ_EXPECT(q->vm->changes == told, "%d change events, the model says %d",
               q->vm->changes, told);
    SEQ_EXPECT(!told || (!strcmp(q->vm->change_guid, md->guid) &&
                         !strcmp(q->vm->change_reason, md->reason)),
               "the change event says %s (%s), the model %s (%s)",
               q->vm->change_guid, q->vm->change_reason, md->guid,
               md->reason);
    q->vm->changes = 0;
    return true;
}

/* Start the sequence's first QEMU: booted, unless c says otherwise. */
static void seq_init(Seq *q, const Machine *m, const SeqCase *c)
{
    *q = (Seq) { .m = m, .c = c };
    q->dir = g_dir_make_tmp("vmgenid-test-XXXXXX", NULL);
    q->uri = g_strdup_printf("unix:%s/sock", q->dir);
    q->img = g_build_filename(q->dir, "disk.qcow2", NULL);
    q->guids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    q->why = g_string_new("");
    g_assert_true(mkimg(q->img, "qcow2", 1));
    model_init(&q->md, m, c);
    q->vm = seq_start(q, c->auto_start ? "auto" : q->md.guid,
                      c->prelaunch ? "-S" : "", false);
    notify_setup(q->vm);
    if (c->auto_start) {
        /* Drawn at start: the guest boots with it. */
        g_autofree char *guid = qemu_guid(q->vm);

        strcpy(q->md.guid, guid);
        strcpy(q->md.told, guid);
        strcpy(q->md.dt, m->kind == VIRT ? guid : NIL_GUID);
        strcpy(q->md.mem, q->md.addr ? guid : NIL_GUID);
    }
    if (c->no_acpi) {
        /* fw_cfg is there, with no file of the device's. */
        g_assert_cmpint(fw_cfg_key(q->vm, "etc/smbios/smbios-tables"), !=, 0);
        g_assert_cmpint(fw_cfg_key(q->vm, "etc/vmgenid_addr"), ==, 0);
        g_assert_cmpint(fw_cfg_key(q->vm, "etc/vmgenid_guid"), ==, 0);
    } else if (q->md.addr) {
        report_addr(q->vm, seq_addr(m));
    }
    clock_read(q->vm, &q->clock);
}

static void seq_free(Seq *q)
{
    g_autofree char *state = g_build_filename(q->dir, "state", NULL);
    g_autofree char *ram = g_build_filename(q->dir, "ram", NULL);

    vm_quit(q->vm);
    unlink(q->img);
    unlink(q->uri + strlen("unix:"));
    unlink(state);
    unlink(ram);
    rmdir(q->dir);
    g_free(q->dir);
    g_free(q->uri);
    g_free(q->img);
    g_hash_table_destroy(q->guids);
    g_string_free(q->why, true);
}

/*
 * Run the @n events of @seq from a fresh start. At the first disagreement
 * between QEMU and the model, fail the test if @report, saying after which
 * events and why.
 */
static bool seq_run(const Machine *m, const SeqCase *c, const SeqEvent *seq,
                    int n, const char *seed, bool report)
{
    g_autoptr(GString) text = g_string_new("");
    bool ok;
    Seq q;
    int i;

    seq_init(&q, m, c);
    ok = seq_check(&q);
    for (i = 0; ok && i < n; i++) {
        g_string_append_printf(text, "%s%s", i ? ", " : "",
                               seq_how[seq[i]].name);
        g_assert_true(model_can(&q.md, m, seq[i]));
        model_apply(&q.md, m, seq[i]);
        seq_clock_base(&q, seq[i]);
        ok = seq_do(&q, seq[i]) && seq_check(&q);
    }
    if (!ok && report) {
        g_test_message("%s: QEMU and the model disagree after [%s]%s%s%s: %s",
                       m->name, text->str, seed ? " (seed " : "", seed ?: "",
                       seed ? ")" : "", q.why->str);
        g_test_fail();
    }
    seq_free(&q);
    return ok;
}

/* Whether @seq can happen, event after event, in the model alone. */
static bool seq_possible(const Machine *m, const SeqCase *c,
                         const SeqEvent *seq, int n)
{
    Model md;
    int i;

    if (c->no_acpi && m->kind != VIRT) {
        return false;
    }
    model_init(&md, m, c);
    for (i = 0; i < n; i++) {
        if (!model_can(&md, m, seq[i])) {
            return false;
        }
        model_apply(&md, m, seq[i]);
        md.fresh = false;
        model_clock(&md, model_tell(&md, m));
    }
    return true;
}

static int seq_len(const SeqCase *c)
{
    int n = 0;

    while (n < ARRAY_SIZE(c->ev) && c->ev[n]) {
        n++;
    }
    return n;
}

typedef struct {
    const Machine *m;
    const SeqCase *c;
} SeqTest;

static void test_seq_case(const void *opaque)
{
    const SeqTest *t = opaque;

    seq_run(t->m, t->c, t->c->ev, seq_len(t->c), NULL, true);
}

static int env_int(const char *name, int def)
{
    const char *v = g_getenv(name);

    return v ? atoi(v) : def;
}

/*
 * Every possible sequence of VMGENID_SEQ_DEPTH events: 1 by default, so
 * that the whole test fits the time meson gives it in one process; the
 * project's own runs ask for 2 or 3, a machine per process.
 */
static void test_seq_bounded(const void *opaque)
{
    const Machine *m = opaque;
    const int depth = env_int("VMGENID_SEQ_DEPTH", 1);
    g_autofree SeqEvent *seq = g_new(SeqEvent, depth);
    int runs = 0, i;

    for (i = 0; i < depth; i++) {
        seq[i] = EV_NONE + 1;
    }
    while (i >= 0) {
        if (seq_possible(m, &seq_default, seq, depth)) {
            runs++;
            if (!seq_run(m, &seq_default, seq, depth, NULL, true)) {
                break;
            }
        }
        /* The next sequence, in lexical order. */
        for (i = depth - 1; i >= 0 && ++seq[i] == EV__EXPLORED; i--) {
            seq[i] = EV_NONE + 1;
        }
    }
    g_test_message("%s: %d sequences of %d events", m->name, runs, depth);
}

/*
 * Drop events from the failing @seq of @n, one at a time, while what is
 * left can happen and still fails; return how many are left.
 */
static int seq_shrink(const Machine *m, SeqEvent *seq, int n)
{
    g_autofree SeqEvent *shorter = g_new(SeqEvent, MAX(n, 1));
    bool dropped = true;
    int i;

    while (dropped && n > 1) {
        dropped = false;
        for (i = 0; i < n && !dropped; i++) {
            memcpy(shorter, seq, i * sizeof(*seq));
            memcpy(shorter + i, seq + i + 1, (n - i - 1) * sizeof(*seq));
            if (seq_possible(m, &seq_default, shorter, n - 1) &&
                !seq_run(m, &seq_default, shorter, n - 1, NULL, false)) {
                n--;
                memcpy(seq, shorter, n * sizeof(*seq));
                dropped = true;
            }
        }
    }
    return n;
}

/*
 * VMGENID_SEQ_RANDOM random sequences (1 by default) of
 * VMGENID_SEQ_LENGTH events (12), from VMGENID_SEQ_SEED: by default a
 * fixed seed, so that a CI run fails or passes alike every time.
 */
static void test_seq_random(const void *opaque)
{
    const Machine *m = opaque;
    const int count = env_int("VMGENID_SEQ_RANDOM", 1);
    const int len = env_int("VMGENID_SEQ_LENGTH", 12);
    const char *seed_env = g_getenv("VMGENID_SEQ_SEED");
    g_autofree char *seed = g_strdup(seed_env ? seed_env : "20161214");
    g_autofree SeqEvent *seq = g_new(SeqEvent, MAX(len, 1));
    g_autoptr(GRand) rand = NULL;
    unsigned int seed_value;
    int i, j;
    Model md;

    g_assert_cmpint(qemu_strtoui(seed, NULL, 0, &seed_value), ==, 0);
    rand = g_rand_new_with_seed(seed_value);
    g_test_message("%s: seed %s", m->name, seed);
    for (i = 0; i < count; i++) {
        model_init(&md, m, &seq_default);
        for (j = 0; j < len; j++) {
            do {
                seq[j] = g_rand_int_range(rand, EV_NONE + 1, EV__EXPLORED);
            } while (!model_can(&md, m, seq[j]));
            model_apply(&md, m, seq[j]);
            md.fresh = false;
            model_clock(&md, model_tell(&md, m));
        }
        if (!seq_run(m, &seq_default, seq, len, seed, false)) {
            g_autofree SeqEvent *orig = g_memdup2(seq, len * sizeof(*seq));
            int n = seq_shrink(m, seq, len);

            g_test_message("%s: a failing sequence of %d events, shrunk to %d",
                           m->name, len, n);
            /* Report the short one, or the long one if it passes now. */
            if (seq_run(m, &seq_default, seq, n, seed, true)) {
                seq_run(m, &seq_default, orig, len, seed, true);
            }
            break;
        }
    }
}

void seq_add_cases(const Machine *m)
{
    int i;

    add_case(m, "sequences/bounded", m, test_seq_bounded);
    add_case(m, "sequences/random", m, test_seq_random);
    for (i = 0; i < ARRAY_SIZE(seq_cases); i++) {
        const SeqCase *c = &seq_cases[i];
        SeqTest *t;

        if (seq_possible(m, c, c->ev, seq_len(c))) {
            t = g_new(SeqTest, 1);
            *t = (SeqTest) { m, c };
            add_case(m, c->name, t, test_seq_case);
        }
    }
}
