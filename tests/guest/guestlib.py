"""Helpers for the guest tests: PASS/FAIL reporting, the guest's view of
the generation ID (vmgenid-guest, gpe05, vmfork kprobe hits) and the host's
(QMP, events, guest memory through HMP).  Standard library only."""

import contextlib
import re
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / 'harness'))
import vm as harness  # noqa: E402

GPE = '/sys/firmware/acpi/interrupts/gpe05'
TRACE = '/sys/kernel/tracing/trace'
DRIVER_DIR = '/sys/bus/acpi/drivers/vmgenid'
DRIVER_DEV = 'QEMUVGID:00'
NULL_GUID = '00000000-0000-0000-0000-000000000000'
EVENT = 'VM_GENERATION_ID_CHANGED'
# How long a guest gets to react to a GPE (TCG is slow), and how long we
# wait before concluding that nothing happened.
REACT = 20.0
SETTLE = 2.0

_print_lock = threading.Lock()


def emit(line):
    with _print_lock:
        print(line, flush=True)


def norm(guid):
    """Canonical lower-case text of a GUID; anything else unchanged."""
    try:
        return str(uuid.UUID(str(guid).strip()))
    except ValueError:
        return str(guid).strip()


def new_guid():
    return str(uuid.uuid4())


class Case:
    """One group of checks sharing VMs.  plan: the check ids it will
    report, so that an aborted case still accounts for every one."""

    def __init__(self, name, plan):
        self.name = name
        self.plan = list(plan)
        self.done = set()
        self.passed = self.failed = 0
        self.phases = []          # (label, seconds)
        self.seconds = None
        self.where = 'start'

    def check(self, cid, ok, what, details=''):
        self.done.add(cid)
        if ok:
            self.passed += 1
            emit(f'PASS: [{self.name}] {cid} {what}')
        else:
            self.failed += 1
            emit(f'FAIL: [{self.name}] {cid} {what} ({details})')
        return ok

    @contextlib.contextmanager
    def phase(self, label):
        """Time a step; an exception in it is reported as where it broke."""
        self.where = label
        t = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((label, time.monotonic() - t))

    def abort(self, exc, ids=None, label=None):
        """Report an exception as one FAIL naming the checks it skipped."""
        missing = [c for c in (ids or self.plan) if c not in self.done]
        self.done.update(missing)
        text = ' | '.join(f'{type(exc).__name__}: {exc}'.strip().split('\n'))
        self.failed += 1
        emit(f'FAIL: [{self.name}] {label or self.where} broke off, '
             f'checks not run: {", ".join(missing) or "none"} ({text})')

    @contextlib.contextmanager
    def section(self, label, ids):
        """Checks that go together: an exception skips the rest of them
        (reported as one FAIL), and the case goes on with what follows."""
        try:
            yield
        except Exception as e:   # noqa: BLE001 - reported, not hidden
            self.abort(e, ids, label)

    def timing(self):
        rest = self.seconds - sum(s for _, s in self.phases)
        parts = ', '.join(f'{label} {s:.1f}' for label, s in self.phases)
        parts += f'; checks {rest:.1f}'
        return f'{self.name}: {self.seconds:.1f} s ({parts})'


@contextlib.contextmanager
def running(case, vm, label, ready=True):
    """Launch vm (and wait for GUEST-READY unless ready is False), timed
    under label; on the way out quit it, keeping its logs if anything in
    the case failed."""
    try:
        with case.phase(label):
            vm.launch()
            if ready:
                vm.wait_ready()
        yield vm
    except BaseException:
        vm.keep = True
        vm.__exit__(*sys.exc_info())
        raise
    vm.keep = vm.keep or case.failed > 0
    vm.__exit__(None, None, None)


def hmp(vm, line, timeout=120):
    return vm.qmp.cmd('human-monitor-command', timeout=timeout,
                      **{'command-line': line})


def qmp_guid(vm):
    return norm(vm.qmp.cmd('query-vm-generation-id')['guid'])


def guest_guid(vm):
    """What vmgenid-guest prints, or its error text prefixed with '!'."""
    out = vm.run('vmgenid-guest 2>&1', check=False).strip()
    if vm.console.rc != 0:
        return '!' + ' '.join(out.split())
    return norm(out)


def driver_bound(vm):
    out = vm.run(f'ls {DRIVER_DIR} 2>&1', check=False)
    return vm.console.rc == 0 and DRIVER_DEV in out.split(), ' '.join(out.split())


class Counters:
    """gpe05 count and vmfork kprobe hits (None when not readable)."""

    def __init__(self, gpe, hits):
        self.gpe, self.hits = gpe, hits

    def __str__(self):
        return f'gpe05={self.gpe}, vmfork={self.hits}'


def counters(vm):
    out = vm.run(f'echo "gpe=$(cat {GPE} 2>/dev/null)"; '
                 f'echo "hits=$(grep -c "vmfork:" {TRACE} 2>/dev/null)"',
                 check=False)
    gpe = re.search(r'gpe=\s*(\d+)', out)
    hits = re.search(r'hits=(\d+)', out)
    return Counters(int(gpe.group(1)) if gpe else None,
                    int(hits.group(1)) if hits else None)


def wait_counters(vm, pred, timeout=REACT):
    """Poll the counters until pred(c) or the timeout; return the last."""
    deadline = time.monotonic() + timeout
    while True:
        c = counters(vm)
        if pred(c) or time.monotonic() > deadline:
            return c
        time.sleep(0.3)


def rose(before, after, field):
    a, b = getattr(before, field), getattr(after, field)
    return a is not None and b is not None and b > a


def same(before, after, field):
    a, b = getattr(before, field), getattr(after, field)
    return a is not None and a == b


def drain_events(vm, name=EVENT):
    """Every event called name received so far (a QMP round trip first,
    so that anything QEMU sent before now is in)."""
    vm.qmp.cmd('query-status')
    got = [e for e in vm.qmp.events if e['event'] == name]
    vm.qmp.events = [e for e in vm.qmp.events if e['event'] != name]
    return got


def wait_event(vm, name=EVENT, timeout=10):
    try:
        return vm.qmp.wait_event(name, timeout)
    except TimeoutError:
        return None


def event_text(ev):
    if ev is None:
        return 'no event'
    d = ev.get('data', {})
    return f"event guid={norm(d.get('guid'))} reason={d.get('reason')}"


def event_is(ev, guid, reason):
    return (ev is not None and norm(ev['data'].get('guid')) == norm(guid)
            and ev['data'].get('reason') == reason)


def wait_status(vm, want, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        status = vm.status()
        if status == want:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f'VM is {status}, not {want}, after {timeout} s')
        time.sleep(0.1)


def guid_address(vm):
    """Guest-physical address of the GUID: VGIA from the VMGENID SSDT + 40,
    the same path vmgenid-guest takes, parsed here from a hex dump."""
    out = vm.run('for f in /sys/firmware/acpi/tables/SSDT*; do '
                 'echo "TABLE $f"; od -An -tx1 -v "$f"; done')
    for chunk in out.split('TABLE ')[1:]:
        lines = chunk.splitlines()
        data = bytes.fromhex(''.join(''.join(lines[1:]).split()))
        if data[:4] == b'SSDT' and data[16:23] == b'VMGENID':
            i = data.find(b'\x08VGIA\x0c')
            if i >= 0:
                return int.from_bytes(data[i + 6:i + 10], 'little') + 40
    raise harness.VMError('no VGIA in any SSDT of the guest')


def memory_guid(vm, addr):
    """The GUID in guest memory at addr, read by the host (HMP xp)."""
    out = hmp(vm, f'xp /16xb {addr:#x}')
    values = []
    for line in out.splitlines():
        if ':' in line:
            values += re.findall(r'0x([0-9a-fA-F]{2})\b', line.split(':', 1)[1])
    if len(values) != 16:
        raise harness.VMError(f'cannot parse xp output: {out!r}')
    return str(uuid.UUID(bytes_le=bytes(int(v, 16) for v in values)))
