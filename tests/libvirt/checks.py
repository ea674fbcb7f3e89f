"""The libvirt checks of the vmgenid device; run.sh starts the daemons
and then runs this with the private libvirt folder and the x86_64 and
aarch64 emulator wrappers as arguments (virsh finds the daemon through
LIBVIRT_DEFAULT_URI).

Every check prints one line, 'PASS: <what>' or 'FAIL: <what> (<why>)',
and compares values read from libvirt, QEMU and the guest at run time.
The run ends with 'N passed, N failed' and exits 1 if any check failed.
"""

import json
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'guest'))
# The guest's serial shell; console also puts QEMU's python library on the path.
from console import APPEND, BUILD, GUEST, READY, Console  # noqa: E402
from qemu.machine.console_socket import ConsoleSocket  # noqa: E402

WORK = Path(sys.argv[1])
EMULATOR = sys.argv[2]
ARM_EMULATOR = sys.argv[3]
DOMAINS = WORK / 'domains'
QEMU_IMG = BUILD / 'qemu-img'
BOOT_TIMEOUT = 240
UUID_RE = re.compile(r'[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}')
SOURCES = 'QEMU command line, dumpxml, QMP and guest'
# The Arm guest: Debian's Linux 6.12, whose vmgenid driver also binds to
# the devicetree node that virt has when QEMU loads the kernel itself.
# Its console is the PL011; the driver claims the GUID's page, which a
# strict /dev/mem then refuses to the guest tool: iomem=relaxed.
ARM_GUEST = GUEST / 'arm64'
ARM_APPEND = APPEND.replace('console=ttyS0', 'console=ttyAMA0') + \
    ' iomem=relaxed'
ARM_DRIVER = '/sys/bus/platform/drivers/vmgenid'


class Mismatch(Exception):
    """A check's values are not what they should be."""


def run(*cmd, timeout=300):
    """Run a command; its standard output, or RuntimeError with its errors."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: {r.stderr.strip()}")
    return r.stdout


def virsh(*args):
    return run('virsh', *args)


def timed(label, fn, *args):
    t = time.monotonic()
    result = fn(*args)
    print(f'time: {label} {time.monotonic() - t:.1f} s', flush=True)
    return result


class Domain:
    """A persistent libvirt domain: q35 under TCG, direct kernel boot of the
    test guest, serial console on a unix socket that libvirt binds, and
    <genid/> or <genid>UUID</genid>.  The optional qcow2 disk is virtio: on
    q35's SATA, SeaBIOS under TCG waits out a 32 s AHCI command timeout
    before it boots the kernel."""

    arch, machine, emulator, memory = 'x86_64', 'q35', EMULATOR, 256
    kernel, initrd = GUEST / 'vmlinuz', GUEST / 'initramfs.cpio.gz'
    cmdline = APPEND
    features = '<features><acpi/></features>'
    cpu = ''
    namespaces = ''         # attributes of <domain>
    qemu_options = ''       # elements after <devices>

    def __init__(self, name, genid=None, disk=False):
        self.name = name
        self.genid = genid
        self.disk = DOMAINS / f'{name}.qcow2' if disk else None
        self.serial = DOMAINS / f'{name}.serial'
        self.console_log = DOMAINS / f'{name}.console.log'
        self.console = None
        self.defined = False

    def xml(self):
        genid = f'<genid>{self.genid}</genid>' if self.genid else '<genid/>'
        disk = f"""
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{self.disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>""" if self.disk else ''
        return f"""<domain type='qemu'{self.namespaces}>
  <name>{self.name}</name>
  <memory unit='MiB'>{self.memory}</memory>
  <vcpu>1</vcpu>
  {genid}
  <os>
    <type arch='{self.arch}' machine='{self.machine}'>hvm</type>
    <kernel>{self.kernel}</kernel>
    <initrd>{self.initrd}</initrd>
    <cmdline>{self.cmdline}</cmdline>
  </os>
  {self.features}{self.cpu}
  <devices>
    <emulator>{self.emulator}</emulator>{disk}
    <serial type='unix'>
      <source mode='bind' path='{self.serial}'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>{self.qemu_options}
</domain>
"""

    def define(self):
        if self.disk:
            run(QEMU_IMG, 'create', '-q', '-f', 'qcow2', self.disk, '64M')
        path = DOMAINS / f'{self.name}.xml'
        path.write_text(self.xml())
        virsh('define', path)
        self.defined = True

    def start(self):
        """Start the domain and wait for the guest's shell."""
        if not self.defined:
            self.define()
        t = time.monotonic()
        virsh('start', self.name)
        self.connect()
        self.console.wait(READY, 0, BOOT_TIMEOUT)
        print(f'time: boot {self.name} {time.monotonic() - t:.1f} s', flush=True)

    def connect(self):
        """(Re)connect to the serial socket of the current QEMU process."""
        self.disconnect()
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = ConsoleSocket(address=str(self.serial))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.console = Console(self.console_log, sock=sock)

    def disconnect(self):
        if self.console:
            self.console.close()
            self.console = None

    def guest(self, cmd):
        """Run cmd in the guest's shell; its output, stripped."""
        if not self.console:
            self.connect()
        return self.console.run(cmd).strip()

    def destroy(self):
        """Stop QEMU; a domain that is not running is fine."""
        self.disconnect()
        if virsh('domstate', self.name).strip() != 'shut off':
            virsh('destroy', self.name)

    # The GUID as seen by each party.
    def vmgenid_device(self):
        """The properties of the running QEMU's -device vmgenid, and that
        argument as libvirt wrote it; ({}, None) if it has none."""
        pid = int((WORK / 'run' / 'qemu' / f'{self.name}.pid').read_text())
        args = Path(f'/proc/{pid}/cmdline').read_bytes().decode().split('\0')
        for opt, val in zip(args, args[1:]):
            if opt != '-device':
                continue
            if val.startswith('{'):                  # -device {"driver": ...}
                props = json.loads(val)
            else:                                    # -device vmgenid,guid=...
                driver, *rest = val.split(',')
                props = dict(p.split('=', 1) for p in rest if '=' in p)
                props['driver'] = driver
            if props.get('driver') == 'vmgenid':
                return props, val
        return {}, None

    def cmdline_guid(self):
        return self.vmgenid_device()[0].get('guid')

    def xml_guid(self):
        return ET.fromstring(virsh('dumpxml', self.name)).findtext('genid')

    def qmp_guid(self):
        out = virsh('qemu-monitor-command', self.name,
                    '{"execute": "query-vm-generation-id"}')
        return json.loads(out)['return']['guid']

    def guids(self):
        return {'QEMU command line': self.cmdline_guid(),
                'dumpxml': self.xml_guid(),
                'QMP': self.qmp_guid(),
                'guest': self.guest('vmgenid-guest')}


class ArmDomain(Domain):
    """The same on aarch64: virt under TCG with a CPU that TCG offers,
    Debian's Linux 6.12 booted directly, so that it finds the device in
    the devicetree.

    No <acpi/>: libvirt 9.0 accepts it on aarch64 only with UEFI firmware.
    Without it, libvirt 9.0 passes -no-acpi, an option QEMU 9.0 removed
    (for -machine acpi=off), so QEMU would refuse to start; libvirt 9.0
    assumes that option on x86 and aarch64 instead of probing it.  Its
    documented switch for capability bits turns that one off: then QEMU
    runs with its default ACPI setting, unused by a kernel it loads
    itself.  libvirt taints the domain (custom-hypervisor-feature)."""

    arch, machine, emulator, memory = 'aarch64', 'virt', ARM_EMULATOR, 512
    kernel = ARM_GUEST / 'vmlinuz-6.12'
    initrd = ARM_GUEST / 'initramfs.cpio.gz'
    cmdline = ARM_APPEND
    features = ''
    cpu = """<cpu mode='custom' match='exact'>
    <model fallback='forbid'>cortex-a57</model>
  </cpu>"""
    namespaces = " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
    qemu_options = """
  <qemu:capabilities>
    <qemu:del capability='no-acpi'/>
  </qemu:capabilities>"""


def agreed(values, expect=None):
    """The one GUID all sources in values report (lower case), or Mismatch."""
    seen = {str(v).lower() for v in values.values()}
    listing = ', '.join(f'{k} {v}' for k, v in values.items())
    if len(seen) != 1:
        raise Mismatch(f'sources differ: {listing}')
    guid = seen.pop()
    if not UUID_RE.fullmatch(guid):
        raise Mismatch(f'not a GUID: {listing}')
    if expect and guid != expect.lower():
        raise Mismatch(f'all report {guid}, not the configured {expect}')
    return guid


# --- the checks: each returns what it found equal, or raises ---------------

def check_domcaps(emulator, arch=None, machine=None):
    opts = ['--virttype', 'qemu']
    if arch:
        opts += ['--arch', arch, '--machine', machine]
    caps = ET.fromstring(virsh('domcapabilities', '--emulatorbin', emulator,
                               *opts))
    genid = caps.find('features/genid')
    supported = None if genid is None else genid.get('supported')
    if supported != 'yes':
        raise Mismatch(f'<genid supported={supported!r}>, expected yes')
    # libvirt names the machine type that the alias (virt) stands for,
    # virt-10.2.
    found = (caps.findtext('arch'), caps.findtext('machine') or '')
    if arch and (found[0] != arch or
                 found[1] != machine and
                 not found[1].startswith(f'{machine}-')):
        raise Mismatch(f'domcapabilities of {found}, not of {(arch, machine)}')
    return (f"virsh domcapabilities {' '.join(opts)}: "
            "<genid supported='yes'/>")


def check_boot(dom, what, expect=None):
    dom.start()
    guid = agreed(dom.guids(), expect)
    extra = ' = the configured UUID' if expect else ''
    return f'{what}: {SOURCES} agree on {guid}{extra}'


def check_save_restore(dom, state_file):
    before = agreed(dom.guids())
    token = uuid.uuid4().hex
    dom.guest(f'echo {token} > /tmp/saved-token')
    dom.disconnect()
    timed('virsh save', virsh, 'save', dom.name, str(state_file))
    timed('virsh restore', virsh, 'restore', str(state_file))
    dom.connect()
    kept = dom.guest('cat /tmp/saved-token')
    if kept != token:
        raise Mismatch(f'guest state not restored: token {kept!r}, wrote {token}')
    after = agreed(dom.guids())
    if after == before:
        raise Mismatch(f'GUID unchanged by restore: {after}')
    return (f'<genid/> save + restore: {SOURCES} agree on a new GUID '
            f'{after} (was {before}); guest memory restored')


def check_snapshot(dom):
    before = agreed(dom.guids())
    timed('snapshot-create-as', virsh, 'snapshot-create-as', dom.name, 'snap1')
    # Internal: the snapshot is inside the qcow2 (-U: QEMU holds the lock).
    listing = run(QEMU_IMG, 'snapshot', '-l', '-U', dom.disk)
    if not re.search(r'\bsnap1\b', listing):
        raise Mismatch(f'no snap1 in qemu-img snapshot -l: {listing.strip()!r}')
    dom.guest('touch /tmp/after-snapshot')
    dom.disconnect()
    timed('snapshot-revert', virsh, 'snapshot-revert', dom.name, 'snap1')
    dom.connect()
    if dom.guest('test -e /tmp/after-snapshot && echo yes || echo no') != 'no':
        raise Mismatch('a file made after the snapshot is still in the guest')
    after = agreed(dom.guids())
    if after == before:
        raise Mismatch(f'GUID unchanged by snapshot-revert: {after}')
    return (f'<genid/> internal snapshot (qcow2) + snapshot-revert: {SOURCES} '
            f'agree on a new GUID {after} (was {before}); guest state reverted')


def check_arm_boot(dom):
    """The Arm domain: libvirt wrote -device vmgenid with a GUID, which
    dumpxml, QMP and the guest (its driver bound to the devicetree node)
    agree on."""
    dom.start()
    props, arg = dom.vmgenid_device()
    if not props.get('guid'):
        raise Mismatch(f'no -device vmgenid,guid=... on the QEMU command '
                       f'line ({arg!r})')
    guid = agreed(dom.guids())
    bound = dom.guest(f'ls {ARM_DRIVER}').split()
    if not any(d.endswith('.vmgenid') for d in bound):
        raise Mismatch(f'the guest\'s vmgenid driver is not bound to the '
                       f'devicetree node: ls {ARM_DRIVER}: {bound}')
    return (f'<genid/> on aarch64 virt (devicetree): -device {arg}; '
            f'{SOURCES} agree on {guid}')


def check_restart(dom, expect):
    dom.destroy()
    dom.start()
    guid = agreed(dom.guids(), expect)
    return f'<genid>UUID</genid> destroy + start: {SOURCES} still report {guid}'


def stop(dom):
    """Stop a domain after its checks, which reported any error already;
    run.sh kills what is left by PID in any case."""
    try:
        dom.destroy()
    except Exception:
        pass


def main():
    results = []

    def report(what, fn, *args):
        """Run one check; one PASS/FAIL line, whatever happens in it."""
        try:
            line = f'PASS: {fn(*args)}'
            results.append(True)
        except Exception as e:      # any error is this check's failure
            why = ' | '.join(str(e).strip().splitlines()[-6:])
            line = f'FAIL: {what} ({type(e).__name__}: {why})'
            results.append(False)
        print(line, flush=True)

    report('virsh domcapabilities reports genid supported', check_domcaps,
           EMULATOR)

    auto = Domain('vg-auto', disk=True)
    report(f'<genid/>: {SOURCES} agree', check_boot, auto, '<genid/>')
    report(f'<genid/> save + restore: {SOURCES} agree on a new GUID',
           check_save_restore, auto, DOMAINS / 'vg-auto.state')
    report(f'<genid/> snapshot-revert: {SOURCES} agree on a new GUID',
           check_snapshot, auto)
    stop(auto)              # frees the CPU for the next guest

    given = str(uuid.uuid4())
    fixed = Domain('vg-fixed', genid=given)
    report(f'<genid>UUID</genid>: {SOURCES} agree on the UUID',
           check_boot, fixed, f'<genid>{given}</genid>', given)
    report(f'<genid>UUID</genid> destroy + start: {SOURCES} keep the UUID',
           check_restart, fixed, given)
    stop(fixed)

    report("virsh domcapabilities for aarch64 virt reports genid supported",
           check_domcaps, ARM_EMULATOR, 'aarch64', 'virt')
    arm = ArmDomain('vg-arm')
    report(f'<genid/> on aarch64 virt: {SOURCES} agree',
           check_arm_boot, arm)
    stop(arm)

    passed = results.count(True)
    print(f'{passed} passed, {len(results) - passed} failed')
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
