/*
 * QTest for the VM Generation ID device: what its parts share
 *
 * vmgenid-test.c checks what a table of cases can (firmware, ACPI,
 * devicetree, bad input, hostile addresses, upstream QEMU); vmgenid-seq.c
 * checks the rule for telling the guest with a model driven through
 * sequences of events; vmgenid-clock.c checks vmclock without vmgenid.
 * All start QEMU, and act and look as a guest would, through
 * vmgenid-vm.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef VMGENID_TEST_H
#define VMGENID_TEST_H

#include "libqtest.h"

#define ERR_REMOVE      "the vmgenid device cannot be removed"
#define NIL_GUID        "00000000-0000-0000-0000-000000000000"
#define GUID1           "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87"
#define GUID2           "f2d0a8c6-5b2e-4e7f-9a31-0c4d6e8b7a15"
#define UUID_TEXT       37
#define GUID_OFFSET     40          /* from the start of the page */
#define RAM_SIZE        (128 * 1024 * 1024)
#define VG              "/machine/peripheral/vg"
#define VIRT_DT_PAGE    0x0c000000  /* the platform bus, first device */
#define VIRT_GICD       0x08000000
#define VIRT_CLOCK_PAGE 0x090d0000  /* vmclock's page on virt */
#define X86_CLOCK_PAGE  0xfeffb000  /* ... on x86, as since QEMU 9.2 */
#define CLOCK_MAGIC     0x4b4c4356
#define CLOCK_FLAGS     (1 << 8 | 1 << 9)   /* counter, notification */

/*
 * How the guest finds the GUID and hears of a change: x86 machines run
 * firmware that places a page (SeaBIOS, OVMF) and raise GPE 5 (pc, q35)
 * or an event of the Generic Event Device (microvm); Arm virt also offers
 * QEMU's own page and its interrupt through the devicetree.
 */
typedef enum { PC, MICROVM, VIRT } MachineKind;

typedef struct {
    const char *name;
    MachineKind kind;
    const char *args;           /* for every QEMU of this machine */
    uint64_t ram;               /* where RAM starts */
    uint16_t gpe0_sts, pm1_cnt; /* PC: I/O ports, with the PM base 0x600 */
    uint8_t pam0, smram, esmramc;       /* ... host bridge registers */
    const char *s3_global;      /* ... enables S3 */
    uint8_t pm_devfn, pm_enable_reg, pm_enable;   /* ... the PM device */
    const char *extra;          /* a device a destination may lack */
    const char *uefi_arch;      /* the target distributions ship UEFI for */
    const char *uefi_type;      /* a type UEFI descriptors must match */
    const char *upstream[3];    /* machine types upstream 10.2.2 has too */
} Machine;

/* What a guest reads in the vmclock page. */
typedef struct {
    uint32_t magic, seq;
    uint64_t marker, flags, counter;
} ClockPage;

/* A QEMU process, and the events it sent. */
typedef struct {
    QTestState *qts;
    const Machine *m;
    char *bios_log;             /* microvm: SeaBIOS's debug console */
    int bios_done;              /* ... "done" messages seen so far */
    int changes;                /* VM_GENERATION_ID_CHANGED since cleared */
    char *change_guid, *change_reason;
    GHashTable *seen;           /* names of the other events */
} Vm;

typedef enum {
    BOOT_NONE,                  /* the machine's default, unobserved */
    BOOT_BIOS,                  /* SeaBIOS, to boot a boot sector */
    BOOT_HALT,                  /* a firmware that only halts */
    BOOT_UEFI,                  /* UEFI and QEMU's UEFI test image */
} Boot;

typedef struct {
    const Machine *m;
    Boot boot;
    const char *type;           /* machine type; NULL: m->name */
    const char *var;            /* the binary's variable; NULL: ours */
    const char *disk;           /* a qcow2 image: for savevm; UEFI's CD */
    const char *mem;            /* -m; NULL: 128M */
    const char *code, *vars;    /* UEFI firmware */
    const char *args;
    bool later;                 /* connect once a cpr-transfer began */
} Start;

extern char *tmp_dir;           /* scratch files of the whole run */
extern char *halt_bios;         /* firmware that only halts */
extern char boot_disk[];        /* x86: a raw disk with a boot sector */

void vm_setup(bool arm);
void vm_teardown(bool arm);

/* The one way the tests start QEMU: under TCG, as @s says. */
Vm *vm_start(const Start *s);
void vm_quit(Vm *vm);

/* What QEMU and the guest see. */
char *qemu_guid(Vm *vm);
char *guest_guid(QTestState *qts, uint64_t addr);
char *run_status(Vm *vm);
char *vm_wait(Vm *vm, const char *event, const char *status);
bool vm_event(Vm *vm, const char *event);
#define NOTE_VMGENID    1
#define NOTE_VMCLOCK    2
unsigned acpi_notes(Vm *vm);
bool acpi_notified(Vm *vm);
bool dt_notified(Vm *vm);
bool dt_clock_notified(Vm *vm);
uint64_t clock_page(const Machine *m);
void clock_read(Vm *vm, ClockPage *c);

/* What firmware and the guest do. */
void wait_firmware(Vm *vm);
void notify_setup(Vm *vm);
void virt_spi_edge(Vm *vm);
void pci_cfg_write(Vm *vm, int devfn, uint8_t reg, uint32_t val, int size);
uint16_t fw_cfg_key(Vm *vm, const char *name);
uint32_t write_addr_file(Vm *vm, const void *data, size_t len, size_t skip);
uint64_t addr_file(Vm *vm);
void report_addr(Vm *vm, uint64_t addr);

/* Register a case, vmgenid/<machine>/<name> (no machine: vmgenid/<name>). */
void add_case(const Machine *m, const char *name, const void *data,
              void (*fn)(const void *));
/* Register the sequence cases, and vmclock's own, for machine @m. */
void seq_add_cases(const Machine *m);
void clock_add_cases(const Machine *m);

#endif
