#!/usr/bin/python3
"""The vmgenid device as a Linux guest sees it.

A. On pc+SeaBIOS, q35+SeaBIOS and q35+OVMF: the kernel's driver binds,
   the guest reads the GUID the host reports, a restore into a QEMU with
   another GUID notifies the guest, one with the same GUID does not.
B. On q35+SeaBIOS: loadvm with guid=auto and with a fixed guid, live
   migration between two guid=auto QEMUs, set-vm-generation-id while
   running, while paused and to the value it already has, and
   vmgenid-guest --watch.

Every check prints one PASS or FAIL line; the exit status is 1 if any
failed.  Each case boots its own VMs; -j runs cases side by side.

    /usr/bin/python3 tests/guest/run.py [-j N] [-k] [case-filter ...]
"""

import argparse
import concurrent.futures
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time

from guestlib import (NULL_GUID, SETTLE, Case, counters, drain_events,
                      driver_bound, emit, event_is, event_text, guest_guid,
                      guid_address, harness, hmp, memory_guid, new_guid, norm,
                      qmp_guid, rose, running, same, wait_counters, wait_event,
                      wait_status)

ROOT = harness.ROOT
QEMU_IMG = harness.BUILD / 'qemu-img'

CONFIGS = {
    'pc-seabios': dict(machine='pc', firmware='seabios', append=''),
    'q35-seabios': dict(machine='q35', firmware='seabios', append=''),
    # OVMF puts the page in ACPI NVS, which strict /dev/mem refuses.
    'q35-ovmf': dict(machine='q35', firmware='ovmf', append='iomem=relaxed'),
}
# The configuration whose VMs also run the B checks.
GENERATION = 'q35-seabios'

WATCH_LOG = '/tmp/watch.log'


class Context:
    def __init__(self, work):
        self.work = work
        self.auto_guids = []      # (case name, GUID) of every guid=auto boot


def make_vm(cfg, name, guid, extra=(), incoming=False):
    return harness.VM(name=name, incoming=incoming,
                      args=['-device', f'vmgenid,id=vmgenid0,guid={guid}',
                            *extra], **CONFIGS[cfg])


def snapshot_drive(ctx, name):
    """A small qcow2 of its own for savevm/loadvm."""
    path = ctx.work / f'{name}.qcow2'
    subprocess.run([str(QEMU_IMG), 'create', '-q', '-f', 'qcow2', str(path), '16M'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return ['-drive', f'if=none,id=snap,file={path},format=qcow2']


def hmp_ok(vm, line):
    """An HMP command that prints nothing on success."""
    out = hmp(vm, line).strip()
    if out:
        raise harness.VMError(f'HMP {line!r}: {out}')


def values(guest, qmp, want=None, want_label='expected'):
    text = f'guest {guest}, QMP {qmp}'
    return text + (f', {want_label} {want}' if want else '')


# ---------------------------------------------------------------- checks

def check_driver(case, vm):
    ok, listing = driver_bound(vm)
    case.check('A1', ok, 'kernel vmgenid driver bound: /sys/bus/acpi/drivers/'
               f'vmgenid lists QEMUVGID:00 ({listing})',
               f'/sys/bus/acpi/drivers/vmgenid: {listing or "empty"}')


def check_fixed_boot(case, vm, guid):
    g, q = guest_guid(vm), qmp_guid(vm)
    case.check('A2', g == q == norm(guid),
               f'fixed GUID after boot: guest == QMP == -device guid ({guid})',
               values(g, q, guid, '-device guid'))


def check_auto_boot(ctx, case, vm):
    g, q = guest_guid(vm), qmp_guid(vm)
    ok = g == q and q != NULL_GUID and not g.startswith('!')
    case.check('A2', ok, f'guid=auto after boot: guest == QMP, not null ({q})',
               values(g, q))
    if ok:
        ctx.auto_guids.append((case.name, q))
    return q


def observe(vm, base, changed):
    """Wait for the guest's reaction to a change, or give it SETTLE seconds
    to show there is none; return the counters then and the events."""
    if changed:
        ev = wait_event(vm)
        after = wait_counters(vm, lambda c: rose(base, c, 'gpe')
                              and rose(base, c, 'hits'))
        return after, [ev] if ev else []
    time.sleep(SETTLE)
    return counters(vm), drain_events(vm)


def check_notice(case, cid, what, base, after, evs, changed, guid, reason):
    """gpe05, the vmfork kprobe and VM_GENERATION_ID_CHANGED show a change
    on `what` exactly when there was one."""
    if changed:
        ev = evs[0] if evs else None
        case.check(f'{cid}.gpe', rose(base, after, 'gpe'),
                   f'gpe05 rose on {what}: {base.gpe} -> {after.gpe}',
                   f'gpe05 {base.gpe} -> {after.gpe}')
        case.check(f'{cid}.vmfork', rose(base, after, 'hits'),
                   f'vmfork kprobe hits rose on {what}: '
                   f'{base.hits} -> {after.hits}',
                   f'vmfork hits {base.hits} -> {after.hits}')
        case.check(f'{cid}.event', event_is(ev, guid, reason),
                   f'VM_GENERATION_ID_CHANGED on {what}: {event_text(ev)}',
                   f'want guid={guid} reason={reason}, got {event_text(ev)}')
    else:
        case.check(f'{cid}.gpe', same(base, after, 'gpe'),
                   f'gpe05 unchanged on {what}: {base.gpe} -> {after.gpe}',
                   f'gpe05 {base.gpe} -> {after.gpe}: the guest was notified')
        case.check(f'{cid}.vmfork', same(base, after, 'hits'),
                   f'no vmfork kprobe hit on {what}: '
                   f'{base.hits} -> {after.hits}',
                   f'vmfork hits {base.hits} -> {after.hits}')
        case.check(f'{cid}.event', not evs,
                   f'no VM_GENERATION_ID_CHANGED on {what}',
                   'got ' + '; '.join(event_text(e) for e in evs))


def check_restore(case, vm, cid, base, guid, changed):
    """After a restore into a QEMU started with guid: the guest reads it,
    and is notified (gpe05, vmfork, event) exactly when changed."""
    after, evs = observe(vm, base, changed)
    g, q = guest_guid(vm), qmp_guid(vm)
    how = 'new' if changed else 'same'
    case.check(f'{cid}.guid', g == q == norm(guid),
               f'restore into guid=<{how} UUID>: guest == QMP == {guid}',
               values(g, q, guid, '-device guid'))
    check_notice(case, cid, 'restore', base, after, evs, changed, guid,
                 'migration')


def check_loadvm(case, vm, cid, auto, fixed=None):
    """savevm, then loadvm: guid=auto must draw a new GUID and notify the
    guest; a fixed guid keeps the value and stays quiet."""
    g0, base = qmp_guid(vm), counters(vm)
    drain_events(vm)
    with case.phase('savevm'):
        hmp_ok(vm, f'savevm {cid}')
    with case.phase('loadvm'):
        hmp_ok(vm, f'loadvm {cid}')
    if vm.status() != 'running':
        raise harness.VMError(f'VM is {vm.status()} after loadvm')
    after, evs = observe(vm, base, auto)
    g, q = guest_guid(vm), qmp_guid(vm)
    if auto:
        case.check(f'{cid}.guid', g == q and q not in (g0, NULL_GUID),
                   f'loadvm with guid=auto: guest reads a new GUID == QMP '
                   f'({g0} -> {q})', values(g, q, g0, 'before loadvm'))
    else:
        case.check(f'{cid}.guid', g == q == g0 == norm(fixed),
                   f'loadvm with a fixed guid: guest == QMP == current GUID '
                   f'({fixed})', values(g, q, g0, 'before loadvm'))
    check_notice(case, cid, 'loadvm', base, after, evs, auto, q,
                 'snapshot-load')


def live_migrate(ctx, case, stack, src, cfg, slug):
    """B7: migrate src (guid=auto) to a new guid=auto QEMU over a unix
    socket; the guest keeps its GUID and hears nothing.  Returns dest."""
    g, base = qmp_guid(src), counters(src)
    dest = make_vm(cfg, f'{slug}-dest', 'auto', incoming=True)
    stack.enter_context(running(case, dest, 'start dest', ready=False))
    own = qmp_guid(dest)
    sock = ctx.work / f'{slug}-migrate.sock'
    with case.phase('live migration'):
        src.qmp.cmd('migrate-set-parameters', **{'max-bandwidth': 1 << 30})
        dest.qmp.cmd('migrate-incoming', uri=f'unix:{sock}')
        src.qmp.cmd('migrate', uri=f'unix:{sock}')
        src.wait_migration(180)
        dest.wait_migration(180)
        wait_status(dest, 'running')
    src.shutdown()
    time.sleep(SETTLE)
    after = counters(dest)
    evs = drain_events(dest)
    gg, q = guest_guid(dest), qmp_guid(dest)
    case.check('B7.guid', gg == q == g,
               f'live migration to a guid=auto QEMU: guest == dest QMP == '
               f'source GUID ({g}; dest drew {own} before)',
               values(gg, q, g, 'source'))
    case.check('B7.gpe', same(base, after, 'gpe'),
               f'gpe05 unchanged by live migration: {base.gpe} -> {after.gpe}',
               f'gpe05 {base.gpe} -> {after.gpe}: the guest was notified')
    case.check('B7.vmfork', same(base, after, 'hits'),
               f'no vmfork kprobe hit on live migration: {base.hits} -> {after.hits}',
               f'vmfork hits {base.hits} -> {after.hits}')
    case.check('B7.event', not evs,
               'no VM_GENERATION_ID_CHANGED on the dest of a live migration',
               'got ' + '; '.join(event_text(e) for e in evs))
    return dest


def watch_output(vm):
    return vm.run(f'cat {WATCH_LOG}', check=False).splitlines()


def start_watcher(vm):
    vm.run(f'vmgenid-guest --watch > {WATCH_LOG} 2>&1 &')
    deadline = time.monotonic() + 10
    while not watch_output(vm) and time.monotonic() < deadline:
        time.sleep(0.2)


def check_set_running(case, vm):
    """B8 running + B9: set a new GUID while the guest runs."""
    start_watcher(vm)
    base = counters(vm)
    drain_events(vm)
    u = new_guid()
    vm.qmp.cmd('set-vm-generation-id', guid=u)
    q = qmp_guid(vm)
    ev = wait_event(vm)
    after = wait_counters(vm, lambda c: rose(base, c, 'gpe') and rose(base, c, 'hits'))
    g = guest_guid(vm)
    case.check('B8.run.guid', g == q == u,
               f'set-vm-generation-id while running: guest == QMP == {u}',
               values(g, q, u, 'set'))
    case.check('B8.run.notify', rose(base, after, 'gpe') and rose(base, after, 'hits'),
               f'set while running notified the guest: gpe05 {base.gpe} -> '
               f'{after.gpe}, vmfork {base.hits} -> {after.hits}',
               f'gpe05 {base.gpe} -> {after.gpe}, vmfork {base.hits} -> {after.hits}')
    case.check('B8.run.event', event_is(ev, u, 'set'),
               f'VM_GENERATION_ID_CHANGED on set: {event_text(ev)}',
               f'want guid={u} reason=set, got {event_text(ev)}')
    deadline = time.monotonic() + 10
    while True:
        lines = watch_output(vm)
        hit = [line for line in lines if line.split()[-1:] == [u]]
        if hit or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    case.check('B9', bool(hit),
               f'vmgenid-guest --watch printed the new GUID: {hit[0] if hit else ""}',
               f'watch output: {" | ".join(lines) or "nothing"}')


def check_set_paused(case, vm):
    """B8 paused: the value is in guest memory when the command returns."""
    addr = guid_address(vm)
    base = counters(vm)
    drain_events(vm)
    u = new_guid()
    vm.stop()
    vm.qmp.cmd('set-vm-generation-id', guid=u)
    mem, q, status = memory_guid(vm, addr), qmp_guid(vm), vm.status()
    ev = wait_event(vm)
    case.check('B8.paused.memory', mem == q == u and status == 'paused',
               f'set while paused: guest memory at {addr:#x} == QMP == {u} '
               f'before cont ({status})',
               f'memory {mem}, QMP {q}, set {u}, status {status}')
    vm.cont()
    after = wait_counters(vm, lambda c: rose(base, c, 'gpe') and rose(base, c, 'hits'))
    g = guest_guid(vm)
    case.check('B8.paused.guid', g == u,
               f'after cont the guest reads the value set while paused ({u})',
               values(g, qmp_guid(vm), u, 'set'))
    case.check('B8.paused.notify', rose(base, after, 'gpe') and rose(base, after, 'hits'),
               f'set while paused notified the guest on cont: gpe05 {base.gpe} -> '
               f'{after.gpe}, vmfork {base.hits} -> {after.hits}',
               f'gpe05 {base.gpe} -> {after.gpe}, vmfork {base.hits} -> {after.hits}')
    case.check('B8.paused.event', event_is(ev, u, 'set'),
               f'VM_GENERATION_ID_CHANGED on set while paused: {event_text(ev)}',
               f'want guid={u} reason=set, got {event_text(ev)}')


def check_set_same(case, vm):
    """B8 same value: no notification, no event."""
    u = qmp_guid(vm)
    base = counters(vm)
    drain_events(vm)
    vm.qmp.cmd('set-vm-generation-id', guid=u)
    time.sleep(SETTLE)
    after = counters(vm)
    evs = drain_events(vm)
    g, q = guest_guid(vm), qmp_guid(vm)
    case.check('B8.same.guid', g == q == u,
               f'set to the current value again: guest == QMP == {u}',
               values(g, q, u, 'set'))
    case.check('B8.same.notify', same(base, after, 'gpe') and same(base, after, 'hits'),
               f'set to the current value did not notify: gpe05 {base.gpe} -> '
               f'{after.gpe}, vmfork {base.hits} -> {after.hits}',
               f'gpe05 {base.gpe} -> {after.gpe}, vmfork {base.hits} -> {after.hits}')
    case.check('B8.same.event', not evs,
               'no VM_GENERATION_ID_CHANGED on a set to the current value',
               'got ' + '; '.join(event_text(e) for e in evs))


def check_set_auto_and_invalid(case, vm):
    """B8 auto: a random new value; invalid: refused, value kept."""
    u = qmp_guid(vm)
    base = counters(vm)
    drain_events(vm)
    vm.qmp.cmd('set-vm-generation-id', guid='auto')
    q = qmp_guid(vm)
    ev = wait_event(vm)
    after = wait_counters(vm, lambda c: rose(base, c, 'hits'))
    g = guest_guid(vm)
    case.check('B8.auto', g == q and q not in (u, NULL_GUID) and rose(base, after, 'hits')
               and event_is(ev, q, 'set'),
               f'set "auto": guest == QMP == new random {q} (was {u}), vmfork '
               f'{base.hits} -> {after.hits}, {event_text(ev)}',
               f'{values(g, q, u, "before")}, vmfork {base.hits} -> {after.hits}, '
               f'{event_text(ev)}')
    try:
        vm.qmp.cmd('set-vm-generation-id', guid='1234-not-a-guid')
        err = None
    except harness.QMPError as e:
        err = e.error.get('desc')
    q2 = qmp_guid(vm)
    case.check('B8.invalid', err is not None and q2 == q,
               f'set "1234-not-a-guid" refused ({err}), QMP still {q2}',
               f'error {err!r}, QMP {q2}, before {q}')


# ---------------------------------------------------------------- cases

def plan_fixed(cfg):
    restore = [f'{c}.{x}' for c in ('A3', 'A4') for x in ('guid', 'gpe', 'vmfork', 'event')]
    b6 = [f'B6.{x}' for x in ('guid', 'gpe', 'vmfork', 'event')]
    return ['A1', 'A2'] + (b6 if cfg == GENERATION else []) + restore


def case_fixed(ctx, case, cfg):
    """A1, A2 on a guid=UUID boot (and B6 there), then A3 and A4."""
    slug = f'{cfg}-fixed'
    gen = cfg == GENERATION
    u1, u2 = new_guid(), new_guid()
    extra = snapshot_drive(ctx, slug) if gen else []
    states = [ctx.work / f'{slug}-{i}.state' for i in (1, 2)]
    with running(case, make_vm(cfg, slug, u1, extra), 'boot') as vm:
        with case.section('boot checks', ['A1', 'A2']):
            check_driver(case, vm)
            check_fixed_boot(case, vm, u1)
        if gen:
            with case.section('loadvm', [c for c in case.plan if c.startswith('B6')]):
                check_loadvm(case, vm, 'B6', auto=False, fixed=u1)
        base = counters(vm)
        with case.phase('save'):
            vm.save(states[0])
    # A3: same state, new GUID; A4: that state again, the GUID it now has.
    for i, (cid, changed) in enumerate((('A3', True), ('A4', False))):
        vm = make_vm(cfg, f'{slug}-{cid}', u2, incoming=True)
        with running(case, vm, f'start {cid}', ready=False):
            with case.phase(f'restore {cid}'):
                vm.restore(states[i])
            states[i].unlink()
            check_restore(case, vm, cid, base, u2, changed)
            if i == 0:
                base = counters(vm)
                with case.phase('save'):
                    vm.save(states[1])


def plan_auto(cfg):
    if cfg != GENERATION:
        return ['A1', 'A2']
    return (['A1', 'A2'] + [f'B5.{x}' for x in ('guid', 'gpe', 'vmfork', 'event')]
            + [f'B7.{x}' for x in ('guid', 'gpe', 'vmfork', 'event')]
            + ['B8.run.guid', 'B8.run.notify', 'B8.run.event', 'B9',
               'B8.paused.memory', 'B8.paused.guid', 'B8.paused.notify',
               'B8.paused.event', 'B8.same.guid', 'B8.same.notify',
               'B8.same.event', 'B8.auto', 'B8.invalid'])


def case_auto(ctx, case, cfg):
    """A1, A2 on a guid=auto boot; for GENERATION also B5, B7, B8, B9."""
    slug = f'{cfg}-auto'
    gen = cfg == GENERATION
    extra = snapshot_drive(ctx, slug) if gen else []
    with contextlib.ExitStack() as stack:
        vm = stack.enter_context(running(case, make_vm(cfg, slug, 'auto', extra),
                                         'boot'))
        with case.section('boot checks', ['A1', 'A2']):
            check_driver(case, vm)
            check_auto_boot(ctx, case, vm)
        if not gen:
            return
        ids = case.plan
        with case.section('loadvm', [c for c in ids if c.startswith('B5')]):
            check_loadvm(case, vm, 'B5', auto=True)
        with case.section('live migration', [c for c in ids if c.startswith('B7')]):
            vm = live_migrate(ctx, case, stack, vm, cfg, slug)
        with case.section('set while running', ['B8.run.guid', 'B8.run.notify',
                                                'B8.run.event', 'B9']):
            check_set_running(case, vm)
        with case.section('set while paused', [c for c in ids if c.startswith('B8.paused')]):
            check_set_paused(case, vm)
        with case.section('set to the same value', [c for c in ids if c.startswith('B8.same')]):
            check_set_same(case, vm)
        with case.section('set auto / invalid', ['B8.auto', 'B8.invalid']):
            check_set_auto_and_invalid(case, vm)


# ---------------------------------------------------------------- main

def preflight():
    """Guest built, QEMU there with the device; a problem is one FAIL."""
    if not (harness.KERNEL.exists() and harness.INITRD.exists()):
        emit('# building the guest: guest/build-initramfs.sh')
        r = subprocess.run(['bash', str(ROOT / 'guest' / 'build-initramfs.sh')],
                           capture_output=True, text=True)
        if r.returncode:
            return f'guest/build-initramfs.sh failed: {r.stderr.strip()[-500:]}'
    for tool in (harness.QEMU, QEMU_IMG):
        if not shutil.which(str(tool)):
            return f'{tool} is missing: build QEMU first'
    r = subprocess.run([harness.QEMU, '-device', 'help'], capture_output=True,
                       text=True, timeout=60)
    if 'name "vmgenid"' not in r.stdout:
        return f'{harness.QEMU} has no vmgenid device'
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('-j', '--jobs', type=int, default=1,
                    help='cases to run at once (default 1)')
    ap.add_argument('-k', '--keep', action='store_true',
                    help='keep the work folder (snapshots, states)')
    ap.add_argument('filter', nargs='*',
                    help='run only cases whose name contains one of these')
    opts = ap.parse_args()
    t0 = time.monotonic()

    problem = preflight()
    if problem:
        emit(f'FAIL: preflight ({problem})')
        return 1
    (harness.BUILD / 'vm').mkdir(parents=True, exist_ok=True)
    ctx = Context(harness.Path(tempfile.mkdtemp(prefix='guest-tests-',
                                                dir=harness.BUILD / 'vm')))
    cases = []
    for cfg in CONFIGS:
        cases.append((Case(f'{cfg} guid=UUID', plan_fixed(cfg)), case_fixed, cfg))
        cases.append((Case(f'{cfg} guid=auto', plan_auto(cfg)), case_auto, cfg))
    if opts.filter:
        cases = [c for c in cases if any(f in c[0].name for f in opts.filter)]
    kernel = (harness.BUILD / 'guest' / 'vmlinuz.version').read_text().strip()
    emit(f'# {len(cases)} cases, -accel {harness.ACCEL}, guest kernel {kernel}, '
         f'-j {opts.jobs}')

    def run_case(item):
        case, fn, cfg = item
        t = time.monotonic()
        try:
            fn(ctx, case, cfg)
        except Exception as e:   # noqa: BLE001 - reported as a FAIL
            case.abort(e)
        case.seconds = time.monotonic() - t

    with concurrent.futures.ThreadPoolExecutor(max(1, opts.jobs)) as pool:
        list(pool.map(run_case, cases))

    # A2 with guid=auto: every boot drew a GUID of its own.
    failed = sum(c.failed for c, _, _ in cases)
    passed = sum(c.passed for c, _, _ in cases)
    autos = ctx.auto_guids
    if len(autos) >= 2:
        distinct = len({g for _, g in autos}) == len(autos)
        listing = ', '.join(f'{n}: {g}' for n, g in autos)
        if distinct:
            passed += 1
            emit(f'PASS: [all] A2 guid=auto GUIDs of {len(autos)} boots all differ ({listing})')
        else:
            failed += 1
            emit(f'FAIL: [all] A2 guid=auto GUIDs of {len(autos)} boots all differ '
                 f'(repeated: {listing})')

    emit('timings:')
    for case, _, _ in cases:
        emit(f'  {case.timing()}')
    total = time.monotonic() - t0
    emit(f'total {total:.1f} s: {passed} passed, {failed} failed')
    if failed or opts.keep:
        emit(f'# work folder kept: {ctx.work.relative_to(ROOT)}')
    else:
        shutil.rmtree(ctx.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
