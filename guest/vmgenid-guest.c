/*
 * vmgenid-guest: read the VM Generation ID from inside a Linux guest.
 *
 * The device tells the guest where its GUID lives through an SSDT whose
 * OEM table id is "VMGENID": the named DWORD VGIA in that table holds the
 * guest-physical address of a page, and the GUID is the 16 bytes at
 * VGIA + 40.  Linux consumes the GUID in its vmgenid driver but does not
 * show it to user space, so we follow the same path by hand: table from
 * sysfs, address from the AML, bytes through /dev/mem.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define TABLES_DIR      "/sys/firmware/acpi/tables"
#define GPE_FILE        "/sys/firmware/acpi/interrupts/gpe05"
#define ACPI_HEADER_LEN 36
#define GUID_OFFSET     40
#define GUID_LEN        16
#define WATCH_PERIOD_MS 100

/* NameOp, the name VGIA, DWordPrefix: how "Name (VGIA, 0x...)" encodes. */
static const uint8_t vgia_aml[] = { 0x08, 'V', 'G', 'I', 'A', 0x0c };

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

/* Read a whole ACPI table; sysfs only lets root read them. */
static uint8_t *read_table(const char *path, size_t *len)
{
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    ssize_t r;
    int fd = open(path, O_RDONLY);

    if (fd < 0) {
        if (errno == EACCES || errno == EPERM) {
            die("cannot read %s: %s (run as root)", path, strerror(errno));
        }
        die("cannot read %s: %s", path, strerror(errno));
    }
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

/* Find the VMGENID SSDT and return the value of its VGIA. */
static uint32_t find_vgia(void)
{
    char path[512];
    DIR *dir = opendir(TABLES_DIR);
    struct dirent *de;
    uint8_t *t = NULL;
    size_t len = 0, i;

    if (!dir) {
        if (errno == ENOENT) {
            die("no ACPI tables in " TABLES_DIR ": is ACPI enabled?");
        }
        die("cannot open " TABLES_DIR ": %s", strerror(errno));
    }
    while ((de = readdir(dir))) {
        if (strncmp(de->d_name, "SSDT", 4)) {
            continue;
        }
        snprintf(path, sizeof(path), TABLES_DIR "/%s", de->d_name);
        t = read_table(path, &len);
        if (is_vmgenid_table(t, len)) {
            break;
        }
        free(t);
        t = NULL;
    }
    closedir(dir);
    if (!t) {
        die("no VM Generation ID device: no SSDT with OEM table id VMGENID");
    }

    /* Trust the header's length over the file's, in case of padding. */
    if (le32(t + 4) < len) {
        len = le32(t + 4);
    }
    for (i = ACPI_HEADER_LEN; i + sizeof(vgia_aml) + 4 <= len; i++) {
        if (!memcmp(t + i, vgia_aml, sizeof(vgia_aml))) {
            uint32_t vgia = le32(t + i + sizeof(vgia_aml));

            free(t);
            if (!vgia) {
                die("VGIA in %s is 0: the firmware has not placed the "
                    "VM Generation ID buffer (no ACPI linker/loader support?)",
                    path);
            }
            return vgia;
        }
    }
    die("%s has no VGIA named DWORD", path);
}

/*
 * Map the page(s) holding the GUID.  No O_SYNC: that asks for an uncached
 * mapping, which the kernel refuses (EAGAIN) because its vmgenid driver
 * already maps the page write-back, and memory types must agree.
 */
static const volatile uint8_t *map_guid(uint32_t vgia)
{
    uint64_t page = sysconf(_SC_PAGESIZE);
    uint64_t addr = (uint64_t)vgia + GUID_OFFSET;
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
                "which a kernel with strict /dev/mem refuses: boot with "
                "iomem=relaxed", addr, strerror(errno));
        }
        die("cannot map the GUID at 0x%" PRIx64 " from /dev/mem: %s",
            addr, strerror(errno));
    }
    close(fd);
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

static long gpe_count(int fd)
{
    char buf[128];
    ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/*
 * A change raises GPE 5.  Linux counts it in sysfs but does not wake
 * poll() on that file, so poll() mostly serves as the 100 ms timer and the
 * GUID is re-read on every tick.  The counter still earns its keep: a GPE
 * that comes with no GUID change since the previous one is worth a note.
 * The device writes the GUID before raising the GPE, so reading the
 * counter first and the GUID second never sees the GPE ahead of its GUID.
 */
static void __attribute__((noreturn)) watch(const volatile uint8_t *src)
{
    uint8_t cur[GUID_LEN], now[GUID_LEN];
    int fd = open(GPE_FILE, O_RDONLY);
    struct pollfd pfd = { .fd = fd, .events = POLLPRI };
    long count = gpe_count(fd), prev;
    bool changed = false;   /* GUID changed since the last GPE */

    read_guid(src, cur);
    print_guid(cur, false);
    for (;;) {
        if (fd >= 0) {
            poll(&pfd, 1, WATCH_PERIOD_MS);
        } else {
            usleep(WATCH_PERIOD_MS * 1000);
        }
        prev = count;
        count = gpe_count(fd);
        read_guid(src, now);
        if (memcmp(now, cur, GUID_LEN)) {
            memcpy(cur, now, GUID_LEN);
            print_guid(cur, true);
            changed = true;
        }
        if (count != prev) {
            if (!changed) {
                fprintf(stderr, "vmgenid-guest: gpe05 count is now %ld "
                        "but the GUID did not change\n", count);
            }
            changed = false;
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vmgenid-guest [--watch]\n"
            "Print the VM Generation ID GUID this guest currently sees.\n"
            "\n"
            "  --watch  keep running; print \"<unix time> <guid>\" on every\n"
            "           change (GPE 5 counter and a %d ms re-read)\n"
            "  --help   show this text\n"
            "\n"
            "Needs root, ACPI and /dev/mem; on firmware that puts the GUID\n"
            "in ACPI NVS (OVMF) also the kernel option iomem=relaxed.\n",
            WATCH_PERIOD_MS);
}

int main(int argc, char **argv)
{
    bool watching = false;
    uint8_t guid[GUID_LEN];
    const volatile uint8_t *src;

    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--watch")) {
        watching = true;
    } else if (argc > 1) {
        fprintf(stderr, "vmgenid-guest: unexpected argument '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }

    src = map_guid(find_vgia());
    if (watching) {
        watch(src);
    }
    read_guid(src, guid);
    print_guid(guid, false);
    return 0;
}
