/*
 * vmgenid-guest: read the VM Generation ID from inside a Linux guest.
 *
 * The device tells the guest where its GUID lives in one of two ways.
 * With ACPI, through an SSDT whose OEM table id is "VMGENID": the named
 * integer VGIA in that table holds the guest-physical address of a page,
 * and the GUID is the 16 bytes at VGIA + 40.  With a devicetree (Arm
 * without firmware), through a node compatible with "microsoft,vmgenid":
 * its reg is the page, and the GUID its first 16 bytes.  Linux consumes
 * the GUID in its vmgenid driver but does not show it to user space, so
 * we follow the same path by hand: the address from the SSDT's AML (or
 * the devicetree's reg and ranges), the bytes through /dev/mem.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TABLES_DIR      "/sys/firmware/acpi/tables"
#define DT_BASE         "/proc/device-tree"
#define DT_COMPATIBLE   "microsoft,vmgenid"
#define GPE_FILE        "/sys/firmware/acpi/interrupts/gpe05"
#define TRACEFS         "/sys/kernel/tracing"
#define NOTIFY_FUNC     "add_vmfork_randomness"
#define UEVENT_NEW_ID   "NEW_VMGENID=1"
#define VMCLOCK_DEV     "/dev/vmclock0"
/* struct vmclock_abi (linux/vmclock-abi.h): the fields we read */
#define VMCLOCK_SEQ_OFFSET     12
#define VMCLOCK_FLAGS_OFFSET   24
#define VMCLOCK_GEN_OFFSET     104
#define VMCLOCK_FLAG_GEN       (1ULL << 8)
#define VMCLOCK_FLAG_NOTIFY    (1ULL << 9)
#define ACPI_HEADER_LEN 36
#define GUID_OFFSET     40
#define GUID_LEN        16
#define WATCH_PERIOD_MS 100
#define ARRAY_LEN(a)    (sizeof(a) / sizeof((a)[0]))

/*
 * Linux's driver: an ACPI driver in 6.1, a platform driver in 6.12 (which
 * also binds to the devicetree node from 6.10 on).
 */
static const char *const driver_dirs[] = {
    "/sys/bus/acpi/drivers/vmgenid",
    "/sys/bus/platform/drivers/vmgenid",
};

/*
 * NameOp and the name VGIA: how "Name (VGIA, 0x...)" begins; then comes
 * DWordPrefix and 4 bytes, or QWordPrefix and 8.
 */
static const uint8_t vgia_aml[] = { 0x08, 'V', 'G', 'I', 'A' };
#define AML_DWORD_PREFIX 0x0c
#define AML_QWORD_PREFIX 0x0e

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
    va_list ap;

    fputs("vmgenid-guest: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/*
 * Read a whole file (an ACPI table, a devicetree property); NULL if it
 * does not exist.  sysfs only lets root read the ACPI tables.
 */
static uint8_t *read_file(const char *path, size_t *len)
{
    size_t cap = 4096, n = 0;
    uint8_t *buf;
    ssize_t r;
    int fd = open(path, O_RDONLY);

    if (fd < 0) {
        if (errno == ENOENT) {
            return NULL;
        }
        if (errno == EACCES || errno == EPERM) {
            die("cannot read %s: %s (run as root)", path, strerror(errno));
        }
        die("cannot read %s: %s", path, strerror(errno));
    }
    buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (!buf) {
            die("out of memory");
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0) {
            die("cannot read %s: %s", path, strerror(errno));
        }
        if (r == 0) {
            break;
        }
        n += r;
    }
    close(fd);
    *len = n;
    return buf;
}

/*
 * The OEM table id is 8 bytes, padded after "VMGENID" with a space or a
 * NUL depending on who built the table; accept either.
 */
static bool is_vmgenid_table(const uint8_t *t, size_t len)
{
    return len >= ACPI_HEADER_LEN && !memcmp(t, "SSDT", 4) &&
           !memcmp(t + 16, "VMGENID", 7) && (t[23] == ' ' || t[23] == '\0');
}

/*
 * Find the VMGENID SSDT and the value of its VGIA: the address of the
 * GUID is VGIA + 40.  False if there is no such table (or no ACPI).
 */
static bool find_acpi_guid(uint64_t *addr)
{
    char path[512];
    DIR *dir = opendir(TABLES_DIR);
    struct dirent *de;
    uint8_t *t = NULL, *v;
    uint64_t vgia;
    size_t len = 0, i;

    if (!dir) {
        if (errno == ENOENT) {
            return false;
        }
        die("cannot open " TABLES_DIR ": %s", strerror(errno));
    }
    while ((de = readdir(dir))) {
        if (strncmp(de->d_name, "SSDT", 4)) {
            continue;
        }
        snprintf(path, sizeof(path), TABLES_DIR "/%s", de->d_name);
        t = read_file(path, &len);
        if (t && is_vmgenid_table(t, len)) {
            break;
        }
        free(t);
        t = NULL;
    }
    closedir(dir);
    if (!t) {
        return false;
    }

    /* Trust the header's length over the file's, in case of padding. */
    if (le32(t + 4) < len) {
        len = le32(t + 4);
    }
    for (i = ACPI_HEADER_LEN; i + sizeof(vgia_aml) + 5 <= len; i++) {
        if (memcmp(t + i, vgia_aml, sizeof(vgia_aml))) {
            continue;
        }
        v = t + i + sizeof(vgia_aml);
        if (v[0] == AML_DWORD_PREFIX) {
            vgia = le32(v + 1);
        } else if (v[0] == AML_QWORD_PREFIX && v + 9 <= t + len) {
            vgia = le64(v + 1);
        } else {
            break;
        }
        free(t);
        if (!vgia) {
            die("VGIA in %s is 0: the firmware has not placed the "
                "VM Generation ID buffer (no ACPI linker/loader support?)",
                path);
        }
        *addr = vgia + GUID_OFFSET;
        return true;
    }
    die("%s has no VGIA named DWORD or QWORD", path);
}

/*
 * The devicetree: each node is a directory of DT_BASE, each property a
 * file in it.  Numbers are big-endian 32-bit cells.
 */

/* dir/name as path, which has room for PATH_MAX bytes. */
static void dt_path(char *path, const char *dir, const char *name)
{
    if (snprintf(path, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
        die("devicetree path too long: %s/%s", dir, name);
    }
}

/* The property name of node as a malloc'ed buffer; NULL if absent. */
static uint8_t *dt_prop(const char *node, const char *name, size_t *len)
{
    char path[PATH_MAX];

    dt_path(path, node, name);
    return read_file(path, len);
}

/* A one-cell property such as #address-cells, or dflt if absent. */
static uint32_t dt_cell(const char *node, const char *name, uint32_t dflt)
{
    size_t len;
    uint8_t *p = dt_prop(node, name, &len);
    uint32_t val = dflt;

    if (p && len == 4) {
        val = be32(p);
    } else if (p) {
        die("%s/%s is %zu bytes long, not 4", node, name, len);
    }
    free(p);
    return val;
}

/* #address-cells or #size-cells (name) of the children of node. */
static uint32_t dt_cells(const char *node, const char *name, uint32_t dflt)
{
    uint32_t n = dt_cell(node, name, dflt);

    if (n > 2) {
        die("%s/%s is %" PRIu32 ": more than 64 bits are not supported",
            node, name, n);
    }
    return n;
}

/* A number of n cells (0, 1 or 2). */
static uint64_t dt_number(const uint8_t *p, uint32_t n)
{
    uint64_t val = 0;
    uint32_t i;

    for (i = 0; i < n; i++) {
        val = val << 32 | be32(p + 4 * i);
    }
    return val;
}

/* Does the string list prop hold str? */
static bool dt_has_string(const uint8_t *prop, size_t len, const char *str)
{
    size_t i;

    for (i = 0; i < len; i += strnlen((const char *)prop + i, len - i) + 1) {
        if (!strncmp((const char *)prop + i, str, len - i)) {
            return true;
        }
    }
    return false;
}

/* The parent of a node: its path up to the last slash. */
static void dt_parent(char *node)
{
    char *slash = strrchr(node, '/');

    if (!slash) {
        die("no parent for devicetree node %s", node);
    }
    *slash = '\0';
}

/*
 * The CPU physical address of the first reg entry of node: reg is in the
 * address space of node's parent bus, which each ancestor's ranges maps
 * into its own parent's, up to the root.
 */
static uint64_t dt_address(const char *node)
{
    char bus[PATH_MAX], up[PATH_MAX];
    uint32_t na, ns, pna, pns, entry;
    uint64_t addr, child, parent, size;
    uint8_t *p;
    size_t len, i;

    snprintf(bus, sizeof(bus), "%s", node);
    dt_parent(bus);
    na = dt_cells(bus, "#address-cells", 2);
    ns = dt_cells(bus, "#size-cells", 1);
    p = dt_prop(node, "reg", &len);
    if (!p || len < 4 * (na + ns) || !na) {
        die("%s has no reg of %" PRIu32 " address and %" PRIu32 " size cells",
            node, na, ns);
    }
    addr = dt_number(p, na);
    free(p);

    /* Up through the buses between node and the root. */
    while (strcmp(bus, DT_BASE)) {
        snprintf(up, sizeof(up), "%s", bus);
        dt_parent(up);
        pna = dt_cells(up, "#address-cells", 2);
        pns = dt_cells(up, "#size-cells", 1);
        p = dt_prop(bus, "ranges", &len);
        if (!p) {
            die("%s has no ranges: %s is not in the CPU's address space",
                bus, node);
        }
        entry = 4 * (na + pna + ns);
        /* An empty ranges maps the bus one to one. */
        for (i = 0; len && i + entry <= len; i += entry) {
            child = dt_number(p + i, na);
            parent = dt_number(p + i + 4 * na, pna);
            size = dt_number(p + i + 4 * (na + pna), ns);
            if (addr >= child && addr - child < size) {
                addr = addr - child + parent;
                break;
            }
        }
        free(p);
        if (len && i + entry > len) {
            die("0x%" PRIx64 " is in none of the ranges of %s", addr, bus);
        }
        snprintf(bus, sizeof(bus), "%s", up);
        na = pna;
        ns = pns;
    }
    return addr;
}

/*
 * Find the enabled node compatible with DT_COMPATIBLE under node (a
 * depth-first walk); its path goes to found.
 */
static bool dt_find(const char *node, char *found, size_t size)
{
    char path[PATH_MAX];
    struct dirent *de;
    struct stat st;
    uint8_t *compat, *status;
    size_t len, slen;
    bool hit = false;
    DIR *dir;

    compat = dt_prop(node, "compatible", &len);
    if (compat && dt_has_string(compat, len, DT_COMPATIBLE)) {
        status = dt_prop(node, "status", &slen);
        hit = !status || dt_has_string(status, slen, "okay") ||
              dt_has_string(status, slen, "ok");
        free(status);
    }
    free(compat);
    if (hit) {
        snprintf(found, size, "%s", node);
        return true;
    }

    dir = opendir(node);
    while (dir && !hit && (de = readdir(dir))) {
        if (de->d_name[0] == '.') {
            continue;
        }
        dt_path(path, node, de->d_name);
        if (de->d_type == DT_DIR ||
            (de->d_type == DT_UNKNOWN && !lstat(path, &st) &&
             S_ISDIR(st.st_mode))) {
            hit = dt_find(path, found, size);
        }
    }
    if (dir) {
        closedir(dir);
    }
    return hit;
}

/*
 * Find the devicetree node of the device; the GUID is the first 16 bytes
 * of its reg.  False if there is none (or no devicetree).
 */
static bool find_dt_guid(uint64_t *addr)
{
    char node[PATH_MAX];

    if (!dt_find(DT_BASE, node, sizeof(node))) {
        return false;
    }
    *addr = dt_address(node);
    return true;
}

/*
 * Map the page(s) holding the GUID.  No O_SYNC: that asks for an uncached
 * mapping, which the kernel refuses (EAGAIN) because its vmgenid driver
 * already maps the page write-back, and memory types must agree.
 */
static const volatile uint8_t *map_guid(uint64_t addr)
{
    uint64_t page = sysconf(_SC_PAGE_SIZE);
    uint64_t base = addr & ~(page - 1);
    size_t len = (addr + GUID_LEN - base + page - 1) & ~(page - 1);
    void *p;
    int fd = open("/dev/mem", O_RDONLY);

    if (fd < 0) {
        if (errno == EACCES || errno == EPERM) {
            die("cannot open /dev/mem: %s (run as root)", strerror(errno));
        }
        die("cannot open /dev/mem: %s", strerror(errno));
    }
    p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, base);
    if (p == MAP_FAILED) {
        if (errno == EPERM || errno == EINVAL) {
            die("cannot map the GUID at 0x%" PRIx64 " from /dev/mem: %s; "
                "the page is probably ACPI NVS or other firmware memory, "
                "or claimed by the kernel's driver, which a kernel with "
                "strict /dev/mem refuses: boot with iomem=relaxed",
                addr, strerror(errno));
        }
        die("cannot map the GUID at 0x%" PRIx64 " from /dev/mem: %s",
            addr, strerror(errno));
    }
    close(fd);
    /* volatile: the device rewrites the GUID behind our back */
    return (const volatile uint8_t *)p + (addr - base);
}

/* Byte by byte through volatile, so every call really reads the page. */
static void read_guid(const volatile uint8_t *src, uint8_t *dst)
{
    int i;

    for (i = 0; i < GUID_LEN; i++) {
        dst[i] = src[i];
    }
}

/* The first three fields are stored little-endian, the rest as is. */
static void format_guid(const uint8_t *g, char *out)
{
    sprintf(out,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
            g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

static void print_guid(const uint8_t *g, bool stamped)
{
    char text[37];
    struct timespec ts;

    format_guid(g, text);
    if (stamped) {
        clock_gettime(CLOCK_REALTIME, &ts);
        printf("%lld.%03ld ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
    }
    printf("%s\n", text);
    fflush(stdout);
}

/*
 * --watch: sleep until the kernel handles a change, then re-read the
 * GUID.  Where QEMU's vmclock carries the generation (Linux 7's
 * ptp_vmclock serves it as /dev/vmclock0, and its page says QEMU
 * notifies), the watcher sleeps in poll() on that device, which wakes
 * on every update of the page, a new generation among them; QEMU writes
 * the GUID before it updates the page.  That needs no tracing.
 *
 * Otherwise: a change raises GPE 5 (x86 PCs), an event of the ACPI
 * Generic Event Device (Arm virt and x86 microvm with ACPI) or the
 * device's own interrupt (devicetree), which Linux's vmgenid driver
 * handles by calling add_vmfork_randomness().  The watcher waits for
 * that call through a kprobe, read from the trace_pipe of a tracefs
 * instance of its own (so that other readers of the trace buffer miss
 * nothing).
 *
 * Without /dev/vmclock0, tracefs, kprobes or the driver it polls: it
 * re-reads the GUID every WATCH_PERIOD_MS, and says so.  A uevent with
 * NEW_VMGENID=1 then wakes it at once; but only Linux 6.8 sends one (6.9
 * reverted it), so that alone cannot be waited for.
 *
 * The GUID is read only once the wake-up source is ready, so no change
 * slips in between.
 */

/* The tracefs instance of the kprobe watcher, removed when it ends. */
static char trace_instance[128];
static int trace_fd = -1;

/* Async-signal-safe: the signal handler runs it too. */
static void remove_trace_instance(void)
{
    if (trace_fd >= 0) {
        close(trace_fd);
        trace_fd = -1;
    }
    if (trace_instance[0]) {
        rmdir(trace_instance);
        trace_instance[0] = '\0';
    }
}

/* Installed with SA_RESETHAND: raise() then ends the process. */
static void on_signal(int sig)
{
    remove_trace_instance();
    raise(sig);
}

/*
 * sysfs links each device the driver is bound to, e.g. QEMUVGID:00 (ACPI)
 * or c000000.vmgenid (devicetree); the only other link is module.
 */
static bool driver_bound(void)
{
    struct dirent *de;
    bool bound = false;
    size_t i;
    DIR *dir;

    for (i = 0; !bound && i < ARRAY_LEN(driver_dirs); i++) {
        dir = opendir(driver_dirs[i]);
        while (dir && !bound && (de = readdir(dir))) {
            bound = de->d_type == DT_LNK && strcmp(de->d_name, "module");
        }
        if (dir) {
            closedir(dir);
        }
    }
    return bound;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    int ret = 0;

    if (fd < 0) {
        return -1;
    }
    if (write(fd, text, strlen(text)) < 0) {
        ret = -1;
    }
    close(fd);
    return ret;
}

/*
 * The "group/event" of a kprobe on NOTIFY_FUNC in kprobe_events, listed
 * as e.g. "p:kprobes/vmfork add_vmfork_randomness".
 */
static bool find_kprobe(char *event, size_t size)
{
    FILE *f = fopen(TRACEFS "/kprobe_events", "r");
    char line[512], name[128], target[128];
    bool found = false;

    if (!f) {
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        found = sscanf(line, "p:%127s %127s", name, target) == 2 &&
                !strcmp(target, NOTIFY_FUNC);
    }
    fclose(f);
    if (found) {
        snprintf(event, size, "%s", name);
    }
    return found;
}

/*
 * Enable a kprobe on NOTIFY_FUNC (one already defined, else our own) in
 * a new tracefs instance; return the instance's trace_pipe, or -1 with
 * the reason in why.
 */
static int open_kprobe(char *why, size_t size)
{
    char event[128], path[320];

    if (!driver_bound()) {
        snprintf(why, size, "the kernel's vmgenid driver is not bound");
        return -1;
    }
    if (access(TRACEFS "/kprobe_events", W_OK)) {
        snprintf(why, size, "cannot write " TRACEFS "/kprobe_events: %s",
                 strerror(errno));
        return -1;
    }
    if (!find_kprobe(event, sizeof(event)) &&
        (write_file(TRACEFS "/kprobe_events",
                    "p:vmgenid_guest/" NOTIFY_FUNC " " NOTIFY_FUNC "\n") ||
         !find_kprobe(event, sizeof(event)))) {
        snprintf(why, size, "cannot add a kprobe on " NOTIFY_FUNC ": %s",
                 strerror(errno));
        return -1;
    }
    snprintf(trace_instance, sizeof(trace_instance),
             TRACEFS "/instances/vmgenid-guest-%d", (int)getpid());
    if (mkdir(trace_instance, 0700)) {
        snprintf(why, size, "cannot create %s: %s", trace_instance,
                 strerror(errno));
        trace_instance[0] = '\0';
        return -1;
    }
    snprintf(path, sizeof(path), "%s/events/%s/enable", trace_instance, event);
    if (write_file(path, "1\n")) {
        snprintf(why, size, "cannot enable %s: %s", path, strerror(errno));
        remove_trace_instance();
        return -1;
    }
    snprintf(path, sizeof(path), "%s/trace_pipe", trace_instance);
    trace_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (trace_fd < 0) {
        snprintf(why, size, "cannot open %s: %s", path, strerror(errno));
        remove_trace_instance();
    }
    return trace_fd;
}

/* Each line of the trace pipe is one call of NOTIFY_FUNC. */
static void wait_kprobe(int fd)
{
    char buf[4096];
    ssize_t n;

    do {
        n = read(fd, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        die("reading the trace pipe: %s", n ? strerror(errno) : "end of file");
    }
}

/*
 * /dev/vmclock0 if its page says QEMU notifies of updates, or -1 with
 * the reason in why.  The read marks the page as seen by this open
 * file: poll() then sleeps until the next update.
 */
static int open_vmclock(char *why, size_t size)
{
    uint8_t head[VMCLOCK_FLAGS_OFFSET + 8];
    int fd = open(VMCLOCK_DEV, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(why, size, "no " VMCLOCK_DEV ": %s", strerror(errno));
        return -1;
    }
    if (pread(fd, head, sizeof(head), 0) != sizeof(head)) {
        snprintf(why, size, "cannot read " VMCLOCK_DEV);
    } else if (!(le64(head + VMCLOCK_FLAGS_OFFSET) & VMCLOCK_FLAG_NOTIFY)) {
        snprintf(why, size, VMCLOCK_DEV " has no notifications");
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* A little-endian number of @n bytes that the host may rewrite. */
static uint64_t volatile_le(const volatile uint8_t *p, int n)
{
    uint64_t v = 0;

    while (n--) {
        v = v << 8 | p[n];
    }
    return v;
}

/*
 * vm_generation_counter from the vmclock page mapped at @page, by the
 * page's seq_count protocol: odd while QEMU updates the page, and changed
 * if it did while we read.
 */
static uint64_t read_generation(const volatile uint8_t *page)
{
    uint32_t seq;
    uint64_t gen;

    do {
        seq = volatile_le(page + VMCLOCK_SEQ_OFFSET, 4);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        gen = volatile_le(page + VMCLOCK_GEN_OFFSET, 8);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    } while ((seq & 1) || seq != volatile_le(page + VMCLOCK_SEQ_OFFSET, 4));
    return gen;
}

/*
 * The vmclock page of @fd mapped as any process may map it, if it has the
 * generation counter; NULL otherwise.
 */
static const volatile uint8_t *map_vmclock(int fd)
{
    void *p = mmap(NULL, sysconf(_SC_PAGE_SIZE), PROT_READ, MAP_SHARED, fd, 0);
    const volatile uint8_t *page = p;

    if (p == MAP_FAILED) {
        return NULL;
    }
    if (!(volatile_le(page + VMCLOCK_FLAGS_OFFSET, 8) & VMCLOCK_FLAG_GEN)) {
        munmap(p, sysconf(_SC_PAGE_SIZE));
        return NULL;
    }
    return page;
}

/* Sleep until the vmclock page changed since fd last read it; read it. */
static void wait_vmclock(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    uint8_t byte;
    int n;

    do {
        n = poll(&pfd, 1, -1);
    } while (n < 0 && errno == EINTR);
    if (n < 0 || !(pfd.revents & POLLIN)) {
        die("poll() on " VMCLOCK_DEV ": %s", n < 0 ? strerror(errno) :
            "it will not wake (no notifications)");
    }
    if (pread(fd, &byte, 1, 0) != 1) {
        die("reading " VMCLOCK_DEV ": %s", strerror(errno));
    }
}

/* The kernel's uevents (multicast group 1), or -1. */
static int open_uevent(void)
{
    struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    NETLINK_KOBJECT_UEVENT);

    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/*
 * Read the uevents queued on fd: did one carry UEVENT_NEW_ID?  Each is
 * "ACTION@DEVPATH" followed by "KEY=VALUE" strings.  A lost one (ENOBUFS)
 * might have: the caller re-reads the GUID anyway.
 */
static bool new_id_uevent(int fd)
{
    char buf[8192];
    bool seen = false;
    ssize_t n, i;

    for (;;) {
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0) {
            return seen || errno == ENOBUFS;
        }
        buf[n] = '\0';
        for (i = 0; i < n; i += strlen(buf + i) + 1) {
            seen = seen || !strcmp(buf + i, UEVENT_NEW_ID);
        }
    }
}

static long gpe_count(int fd)
{
    char buf[128];
    ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf) - 1, 0);
    long count;

    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    return sscanf(buf, "%ld", &count) == 1 ? count : -1;
}

/*
 * Sleep WATCH_PERIOD_MS, or less if a uevent comes; was the guest
 * notified?  Linux counts GPE 5 in sysfs but does not wake poll() on that
 * file, so the count is only compared.  The device writes the GUID before
 * it raises the GPE, so reading the count first and the GUID second never
 * sees the GPE ahead of its GUID.
 */
static bool wait_poll(int uevent_fd, int gpe_fd, long *count)
{
    struct pollfd pfd = { .fd = uevent_fd, .events = POLLIN };
    long prev = *count;
    bool uevent = false;

    if (poll(&pfd, 1, WATCH_PERIOD_MS) > 0) {
        uevent = new_id_uevent(uevent_fd);
    }
    *count = gpe_count(gpe_fd);
    return uevent || *count != prev;
}

/*
 * src is volatile: see map_guid().  way is "vmclock", "kprobe" or "poll"
 * to wait only that way (an error if it cannot), NULL for the best one
 * the guest has.
 */
static void __attribute__((noreturn)) watch(const volatile uint8_t *src,
                                            const char *way)
{
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
    uint8_t cur[GUID_LEN], now[GUID_LEN];
    bool notified, changed = false;     /* GUID changed since the last one */
    int uevent_fd = -1, gpe_fd = -1, clock_fd;
    char why[512], why_not_clock[256];
    const volatile uint8_t *clock = NULL;
    uint64_t gen = 0, new_gen;
    long count = -1;

    atexit(remove_trace_instance);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    snprintf(why_not_clock, sizeof(why_not_clock), "vmclock not asked for");
    snprintf(why, sizeof(why), "kprobe not asked for");
    clock_fd = way && strcmp(way, "vmclock") ? -1 :
               open_vmclock(why_not_clock, sizeof(why_not_clock));
    if (clock_fd < 0 && way && !strcmp(way, "vmclock")) {
        die("cannot watch through vmclock: %s", why_not_clock);
    }
    if (clock_fd < 0 && (!way || !strcmp(way, "kprobe")) &&
        open_kprobe(why, sizeof(why)) < 0 && way) {
        die("cannot watch through a kprobe: %s", why);
    }
    if (clock_fd >= 0) {
        clock = map_vmclock(clock_fd);
        fprintf(stderr, "vmgenid-guest: waiting in poll() on " VMCLOCK_DEV
                "%s\n", clock ? "; its generation counter through mmap" :
                "");
    } else if (trace_fd >= 0) {
        fprintf(stderr, "vmgenid-guest: waiting for " NOTIFY_FUNC
                " (kprobe, %s/trace_pipe; %s)\n", trace_instance,
                why_not_clock);
    } else {
        uevent_fd = open_uevent();
        gpe_fd = open(GPE_FILE, O_RDONLY | O_CLOEXEC);
        count = gpe_count(gpe_fd);
        fprintf(stderr, "vmgenid-guest: polling every %d ms (%s; %s)%s\n",
                WATCH_PERIOD_MS, why_not_clock, why, uevent_fd < 0 ? "" :
                "; a uevent " UEVENT_NEW_ID " (Linux 6.8) wakes it at once");
    }

    read_guid(src, cur);
    print_guid(cur, false);
    if (clock) {
        gen = read_generation(clock);
        printf("generation %" PRIu64 "\n", gen);
        fflush(stdout);
    }
    for (;;) {
        if (clock_fd >= 0) {
            wait_vmclock(clock_fd);
            notified = false;   /* the clock's own updates wake it too */
        } else if (trace_fd >= 0) {
            wait_kprobe(trace_fd);
            notified = true;
        } else {
            notified = wait_poll(uevent_fd, gpe_fd, &count);
        }
        read_guid(src, now);
        if (memcmp(now, cur, GUID_LEN)) {
            memcpy(cur, now, GUID_LEN);
            print_guid(cur, true);
            changed = true;
        }
        new_gen = clock ? read_generation(clock) : gen;
        if (new_gen != gen) {
            gen = new_gen;
            printf("generation %" PRIu64 "\n", gen);
            fflush(stdout);
        }
        if (notified) {
            if (!changed) {
                fprintf(stderr, "vmgenid-guest: notified of a change, "
                        "but the GUID is the same\n");
            }
            changed = false;
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vmgenid-guest [--watch[=vmclock|kprobe|poll]]\n"
            "Print the VM Generation ID GUID this guest currently sees.\n"
            "\n"
            "  --watch  keep running; print \"<unix time> <guid>\" on every\n"
            "           change, woken by poll() on " VMCLOCK_DEV " (Linux 7\n"
            "           with QEMU's vmclock), else by a kprobe on\n"
            "           " NOTIFY_FUNC " (tracefs); failing both, it\n"
            "           re-reads the GUID every %d ms (said on stderr);\n"
            "           =WAY waits that way only, or fails; through\n"
            "           vmclock it also prints \"generation <n>\", the\n"
            "           page's vm_generation_counter, on each change\n"
            "  --help   show this text\n"
            "\n"
            "It finds the GUID through ACPI (the VMGENID SSDT) or else the\n"
            "devicetree (a node compatible with " DT_COMPATIBLE "), and\n"
            "reads it through /dev/mem, so it needs root; where the page is\n"
            "firmware memory (OVMF, AAVMF) or claimed by the kernel's\n"
            "driver (devicetree), also the kernel option iomem=relaxed.\n",
            WATCH_PERIOD_MS);
}

int main(int argc, char **argv)
{
    bool watching = false;
    const char *way = NULL;
    uint8_t guid[GUID_LEN];
    const volatile uint8_t *src;        /* see map_guid() */
    uint64_t addr;

    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--watch")) {
        watching = true;
    } else if (argc == 2 && (!strcmp(argv[1], "--watch=vmclock") ||
                             !strcmp(argv[1], "--watch=kprobe") ||
                             !strcmp(argv[1], "--watch=poll"))) {
        watching = true;
        way = argv[1] + strlen("--watch=");
    } else if (argc > 1) {
        fprintf(stderr, "vmgenid-guest: unexpected argument '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }

    if (!find_acpi_guid(&addr) && !find_dt_guid(&addr)) {
        die("no VM Generation ID device: no ACPI SSDT with OEM table id "
            "VMGENID in " TABLES_DIR ", no node compatible with "
            DT_COMPATIBLE " in " DT_BASE);
    }
    src = map_guid(addr);
    if (watching) {
        watch(src, way);
    }
    read_guid(src, guid);
    print_guid(guid, false);
    return 0;
}
