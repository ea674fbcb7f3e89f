#!/usr/bin/python3
"""Show the VM Generation ID from both sides, across a save and restore.

Boot a q35/SeaBIOS guest with a vmgenid device, compare the GUID the host
reports over QMP with the one the guest reads itself, save the VM to a
file, restore it into a new QEMU whose device has a fresh GUID, and show
that the guest noticed.  Exit status 1 when the two sides disagree."""

import signal
import sys
import time
import uuid
from pathlib import Path

from console import ACCEL, BUILD, GUEST, QEMU, ROOT, GuestMachine

STATE = BUILD / 'demo' / 'vm.state'
GPE = '/sys/firmware/acpi/interrupts/gpe05'
TRACE = '/sys/kernel/tracing/trace'
WATCH_LOG = '/tmp/watch.log'


def say(phase, text):
    print(f'{phase:<9} {text}', flush=True)


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start


def guest_counters(g):
    """gpe05 count and the number of add_vmfork_randomness kprobe hits."""
    gpe = g.run(f'cat {GPE}', check=False).split()
    gpe = gpe[0] if gpe and gpe[0].isdigit() else 'n/a'
    # grep -c prints 0 and fails when there is no hit: the count decides.
    hits = g.run(f'grep -c "vmfork:" {TRACE}', check=False).strip()
    return gpe, hits if hits.isdigit() else 'n/a'


def watch_lines(g, guid, timeout=10):
    """The watcher's output once it has a line with guid (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = g.run(f'cat {WATCH_LOG}', check=False).splitlines()
        if any(line.endswith(guid) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def compare(g, expected=None):
    """Print host and guest GUID side by side.

    Returns whether they agree (and the host has the expected GUID), the
    guest's GUID and the guest's gpe05 count."""
    host = g.cmd('query-vm-generation-id')['guid'].lower()
    with Timer() as t:
        guest = g.run('vmgenid-guest', check=False).strip()
    ok = g.console.rc == 0 and guest == host
    say('', f'host  (QMP query-vm-generation-id): {host}')
    say('', f'guest (vmgenid-guest over serial) : {guest}   '
        f'{"MATCH" if ok else "MISMATCH"} (read in {t.seconds * 1000:.0f} ms)')
    if expected and host != expected:
        say('', f'host GUID is not the requested {expected}')
        ok = False
    gpe, hits = guest_counters(g)
    say('', f'gpe05 count {gpe}, vmfork kprobe hits {hits}')
    return ok, guest, gpe


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    STATE.parent.mkdir(parents=True, exist_ok=True)
    ok = True

    version = (GUEST / 'vmlinuz.version').read_text().strip()
    say('setup', f'{Path(QEMU).name}, q35 + SeaBIOS, -accel {ACCEL}, '
        f'guest kernel {version}')

    with GuestMachine('demo-a', args=['-device', 'vmgenid,id=vmgenid0,guid=auto']) as a:
        boot = a.boot()
        say('boot', f'guest ready in {boot:.1f} s')
        good, first, gpe_before = compare(a)
        ok &= good
        # Left running across the save, it shows the guest noticing.
        watcher = a.run(f'vmgenid-guest --watch > {WATCH_LOG} 2>&1 & echo $!').split()[-1]
        watch_lines(a, first)
        with Timer() as t:
            info = a.save(STATE)
        size = STATE.stat().st_size / 2**20
        say('save', f'stop + migrate to {STATE.relative_to(ROOT)}: '
            f'{t.seconds:.1f} s, {size:.1f} MiB '
            f"(QEMU: {info.get('total-time', '?')} ms)")
        with Timer() as t:
            a.shutdown()
        say('quit', f'first QEMU gone in {t.seconds:.1f} s')

    fresh = str(uuid.uuid4())
    with Timer() as t:
        b = GuestMachine('demo-b', incoming=True,
                         args=['-device', f'vmgenid,id=vmgenid0,guid={fresh}'])
        b.launch()
    with b:
        say('restore', f'new QEMU with guid={fresh} started in {t.seconds:.1f} s')
        with Timer() as t:
            b.restore(STATE)
            b.cmd('cont')
        say('', f'migrate-incoming from the file + cont: {t.seconds:.1f} s, '
            f"now {b.cmd('query-status')['status']}")
        good, second, gpe_after = compare(b, expected=fresh)
        ok &= good
        if second == first:
            say('', 'the guest still reads the old GUID')
            ok = False
        if gpe_before.isdigit() and gpe_after.isdigit() and int(gpe_after) <= int(gpe_before):
            say('', 'note: gpe05 did not rise, the guest was not notified')
        lines = watch_lines(b, second)
        b.run(f'kill {watcher}', check=False)
        for line in lines:
            say('', f'guest watcher: {line}')

    say('result', 'OK: the guest reads what the host reports, before and '
        'after restore' if ok else 'FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
