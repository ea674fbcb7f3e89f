"""Turn the samples bench/bench.py wrote into a Markdown report (medians
with min-max, ratios ours/upstream and ours/libvirt) and a PNG plot of the
latency distributions made with gnuplot.

    report.py SAMPLES.json --md OUT.md [--png OUT.png]

The report links the plot by its file name, so keep the two side by side.
Standard library only; gnuplot is run as a program.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

UPSTREAM = 'upstream 10.2.2'
LIBVIRT = 'libvirt 9.0'

# (label, ours key, upstream key, libvirt key); None: nothing to compare.
ROWS = [
    ('**1. Latency**: restore into a QEMU started with a new GUID; `cont` '
     'sent → the guest kernel\'s vmgenid handler ran',
     'latency/restore/ours', 'latency/restore/upstream', None),
    ('**1. Latency**: `set-vm-generation-id` on the running guest → the '
     'handler ran (upstream has no such command)',
     'latency/set/ours', None, None),
    ('**1. Latency**: `loadvm` with `guid=auto`; guest resumes (RESUME) → '
     'the handler ran (upstream keeps the old GUID)',
     'latency/loadvm/ours', None, None),
    ('**1. Latency**, Linux 7 with vmclock: `set-vm-generation-id` → the '
     'handler ran (driver level: the kprobe)',
     'latency/set/linux7-kprobe', None, None),
    ('**1. Latency**, Linux 7 with vmclock: `set-vm-generation-id` → '
     '`poll()` on `/dev/vmclock0` woke (userspace, no tracing)',
     'latency/set/linux7-vmclock', None, None),
    ('**2. Boot** to userspace, with the device',
     'boot/ours/dev', 'boot/upstream/dev', None),
    ('**2. Boot** to userspace, without the device',
     'boot/ours/nodev', 'boot/upstream/nodev', None),
    ('**2. Restore** (start QEMU, load the state file, `cont`), with the device',
     'restore/ours/dev', 'restore/upstream/dev', None),
    ('**2. Restore**, without the device',
     'restore/ours/nodev', 'restore/upstream/nodev', None),
    ('**2. Restore**, with the device and vmclock with the generation counter',
     'restore/ours/vmclock', None, None),
    ('**3. Revert** a running guest to its snapshot with a fresh ID → the '
     'guest reads it: ours `loadvm` (`guid=auto`) in the same QEMU; libvirt '
     '`virsh snapshot-revert` (new QEMU)',
     'revert/ours/loadvm', None, 'revert/libvirt/snapshot-revert'),
    ('**3. Revert**, both in the same libvirt domain: ours `virsh '
     'qemu-monitor-command` `loadvm` + `set-vm-generation-id`; libvirt '
     '`virsh snapshot-revert`',
     'revert/ours/libvirt-domain', None, 'revert/libvirt/snapshot-revert'),
    ('**3.** … of which the `loadvm` command (ours) or `virsh '
     'snapshot-revert` returning (libvirt)',
     'loadvm-command/ours', None, 'revert/libvirt/virsh'),
]

# Device overhead: with / without the device, per build.
OVERHEAD = [
    ('**2. Device overhead on boot**: with / without the device, medians '
     '(and minimums)', 'boot'),
    ('**2. Device overhead on restore**: with / without the device, medians '
     '(and minimums)', 'restore'),
]

# One measurement over another, both ours: (label, key, key).
RATIOS = [
    ('**1. Userspace / driver level**, Linux 7: `poll()` on `/dev/vmclock0` '
     '/ kprobe, medians (and minimums); the target is at most 1.2',
     'latency/set/linux7-vmclock', 'latency/set/linux7-kprobe'),
    ('**2. vmclock overhead on restore**: vmgenid and vmclock / vmgenid '
     'alone, medians (and minimums)', 'restore/ours/vmclock', 'restore/ours/dev'),
]

# The plot: (label, key) per panel.
LATENCY_PLOT = [
    ('restore\\nupstream', 'latency/restore/upstream'),
    ('restore\\nours', 'latency/restore/ours'),
    ('set command\\nours', 'latency/set/ours'),
    ('loadvm, auto\\nours', 'latency/loadvm/ours'),
    ('Linux 7 set\\nkprobe', 'latency/set/linux7-kprobe'),
    ('Linux 7 set\\npoll vmclock0', 'latency/set/linux7-vmclock'),
]
REVERT_PLOT = [
    ('ours: loadvm\\n(own QEMU)', 'revert/ours/loadvm'),
    ('ours: loadvm + set\\n(libvirt domain)', 'revert/ours/libvirt-domain'),
    ('libvirt 9.0\\nsnapshot-revert', 'revert/libvirt/snapshot-revert'),
]


def median(values):
    return statistics.median(values) if values else None


def fmt(seconds, ms):
    return f'{seconds * 1000:.0f}' if ms else f'{seconds:.2f}'


def cell(values, ms):
    """'median (min–max) unit', or '—'."""
    if not values:
        return '—'
    unit = 'ms' if ms else 's'
    if len(values) == 1:
        return f'{fmt(values[0], ms)} {unit}'
    return (f'{fmt(median(values), ms)} {unit} '
            f'({fmt(min(values), ms)}–{fmt(max(values), ms)})')


def ratio(a, b, of=median):
    if not a or not b or not of(b):
        return '—'
    return f'{of(a) / of(b):.2f}'


def overhead(samples, what, build):
    """Median and minimum of with / without the device.  On a shared
    machine the minimums, the runs least disturbed, say more."""
    dev = samples.get(f'{what}/{build}/dev', [])
    nodev = samples.get(f'{what}/{build}/nodev', [])
    return f'{ratio(dev, nodev)} ({ratio(dev, nodev, min)})'


def table(samples):
    get = lambda k: samples.get(k, []) if k else []
    out = [f'| measurement | ours | {UPSTREAM} | {LIBVIRT} | ours / upstream | ours / libvirt |',
           '|---|---|---|---|---|---|']
    for label, ours, up, lv in ROWS:
        values = get(ours) + get(up) + get(lv)
        ms = bool(values) and max(values) < 1
        out.append(f'| {label} | {cell(get(ours), ms)} | '
                   f'{cell(get(up), ms) if up else "—"} | '
                   f'{cell(get(lv), ms) if lv else "—"} | '
                   f'{ratio(get(ours), get(up)) if up else "—"} | '
                   f'{ratio(get(ours), get(lv)) if lv else "—"} |')
    for label, what in OVERHEAD:
        out.append(f'| {label} | {overhead(samples, what, "ours")} | '
                   f'{overhead(samples, what, "upstream")} | — | — | — |')
    for label, a, b in RATIOS:
        out.append(f'| {label} | {ratio(get(a), get(b))} '
                   f'({ratio(get(a), get(b), min)}) | — | — | — | — |')
    return out


def plot(samples, png, title):
    """Two panels of the individual samples, each with its median as a bar."""
    def block(name, rows, scale):
        lines = [f'${name} << EOD']
        meds = [f'${name}med << EOD']
        for i, (_, key) in enumerate(rows, 1):
            values = samples.get(key, [])
            n = len(values)
            for j, v in enumerate(sorted(values)):
                # Spread the points sideways, the same way every time.
                dx = 0 if n == 1 else (j / (n - 1) - 0.5) * 0.3
                lines.append(f'{i + dx:.3f} {v * scale:.4f}')
            if values:
                meds.append(f'{i - 0.25} {median(values) * scale:.4f} 0.5 0')
        lines.append('EOD')
        meds.append('EOD')
        return lines + meds

    def xtics(rows):
        return ', '.join(f'"{label}" {i}' for i, (label, _) in enumerate(rows, 1))

    script = [
        "set terminal pngcairo size 1120,420 font 'Sans,9' noenhanced",
        f"set output '{png}'",
        *block('lat', LATENCY_PLOT, 1000),
        *block('rev', REVERT_PLOT, 1),
        'set multiplot layout 1,2 title ' + json.dumps(title),
        'set grid ytics lc rgb "#dddddd"',
        'set key off',
        'set bmargin 4',
        'set yrange [0:*]',
        'set style line 1 pt 7 ps 0.9 lc rgb "#1f77b4"',
        'set style line 2 lw 2.5 lc rgb "#d62728"',
        f'set xrange [0.4:{len(LATENCY_PLOT) + 0.6}]',
        f'set xtics ({xtics(LATENCY_PLOT)}) nomirror',
        'set title "1. host command -> guest kernel handled the change (ms)"',
        'set ylabel "ms"',
        'plot $lat using 1:2 with points ls 1, '
        '$latmed using 1:2:3:4 with vectors nohead ls 2',
        f'set xrange [0.4:{len(REVERT_PLOT) + 0.6}]',
        f'set xtics ({xtics(REVERT_PLOT)}) nomirror',
        'set title "3. revert a running guest with a fresh ID -> guest reads it (s)"',
        'set ylabel "s"',
        'plot $rev using 1:2 with points ls 1, '
        '$revmed using 1:2:3:4 with vectors nohead ls 2',
        'unset multiplot',
    ]
    subprocess.run(['gnuplot'], input='\n'.join(script) + '\n', text=True, check=True)


def report(data, png_name):
    m, samples = data['meta'], data['samples']
    load0 = ' '.join(map(str, m['loadavg_start']))
    load1 = ' '.join(map(str, m['loadavg_end']))
    out = [
        f"# vmgenid benchmark, {m['date']}",
        '',
        f"Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']} (/proc/cpuinfo), "
        f"host kernel {m['host_kernel']}, accelerator **{m['accel'].upper()}** "
        f"(no KVM). Load average {load0} at the start, {load1} at the end: the "
        'machine was shared with other work, so read the ratios rather than '
        'the absolute times.',
        '',
        f"Guest: {m['guest']}; kernel {m['guest_kernel']}, and for the "
        f"Linux 7 rows {m.get('guest_kernel7', '?')}. "
        f"ours: {m['qemu_ours']} with this project's device (commit "
        f"{m['commit']}); upstream: {m['qemu_upstream']}, the same Debian "
        f"source with upstream's own vmgenid; libvirt {m['libvirt'] or 'not run'}.",
        '',
        f"{m['runs']} run(s) of each measurement{' (smoke mode)' if m['smoke'] else ''}, "
        f"{m['seconds']} s in all. Each cell: median (min–max).",
        '',
        *table(samples),
        '',
        'How each number is taken (host clocks only): the guest runs '
        '`vmgenid-guest --watch` in the foreground on its serial console. '
        'It sleeps in a read of tracefs\'s `trace_pipe` until a kprobe on '
        '`add_vmfork_randomness` fires (the call with which the guest '
        'kernel\'s vmgenid driver handles the notification), then reads the '
        'GUID and prints `<time> <guid>`: no poll period is in the way. A '
        'latency ends when that line arrives on the host side of the '
        'console (stamped on arrival by a reader thread) and starts when the '
        'host sent the command (`cont`, set, virsh) or, for loadvm, at the '
        'QMP timestamp of the RESUME event. '
        'Boot: QEMU started → `GUEST-READY` from the guest\'s /init. Restore: '
        'a new QEMU with `-incoming defer` started → `migrate-incoming` from '
        'the file completed → `cont` returned. Revert: the command sent → the '
        'guest\'s line with the new GUID (libvirt: after it started the new '
        'QEMU, which connects to the same console socket). Ours saves a '
        'snapshot of its own before each `loadvm`; libvirt reverts to one '
        'snapshot, taken once. '
        'The Linux 7 rows use one guest with vmgenid and vmclock (the '
        'generation counter on) and two watchers in turns: '
        '`--watch=kprobe` as above, and `--watch=vmclock`, which sleeps in '
        '`poll()` on `/dev/vmclock0` as any process may, woken by QEMU\'s '
        'vmclock notification that follows vmgenid\'s.',
    ]
    if m.get('notes'):
        out += [''] + [f'Note: {n}.' for n in m['notes']]
    if data['errors']:
        out += ['', f"Errors ({len(data['errors'])}), their runs left out:", '']
        out += [f'- {e}' for e in data['errors']]
    if png_name:
        out += ['', f'![latency distributions]({png_name})']
    return '\n'.join(out) + '\n'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('samples')
    p.add_argument('--md', required=True)
    p.add_argument('--png')
    args = p.parse_args()
    data = json.loads(Path(args.samples).read_text())

    png = Path(args.png) if args.png else None
    if png and not shutil.which('gnuplot'):
        print('gnuplot not installed: no plot', file=sys.stderr)
        png = None
    if png:
        tmp = png.with_name(png.name + '.tmp')
        plot(data['samples'], tmp, f"vmgenid under TCG, {data['meta']['date']}, "
             f"{data['meta']['runs']} run(s) each; bars: medians")
        tmp.replace(png)
    text = report(data, png.name if png else None)
    tmp = Path(args.md + '.tmp')
    tmp.write_text(text)
    tmp.replace(args.md)
    print(text, end='')


if __name__ == '__main__':
    sys.exit(main())
