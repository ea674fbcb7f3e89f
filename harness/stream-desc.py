#!/usr/bin/env python3
"""Print the vmgenid entry of a migration stream's description.

    stream-desc.py QEMU [MACHINE]

Starts QEMU (a qemu-system-x86_64) paused with -device vmgenid on MACHINE
(q35 by default), saves its state to a file and prints, as sorted JSON,
the device entry named vmgenid that QEMU's scripts/analyze-migration.py
-d desc finds in the stream. make check compares ours with upstream's.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / 'build' / 'src'
sys.path.insert(0, str(SRC / 'python'))
from qemu.machine import QEMUMachine  # noqa: E402


def save_state(qemu, machine, path):
    vm = QEMUMachine(qemu, args=['-machine', machine, '-accel', 'tcg',
                                 '-nodefaults', '-S', '-device',
                                 'vmgenid,guid=auto'])
    vm.launch()
    try:
        vm.cmd('migrate', uri=f'file:{path}')
        for _ in range(600):
            status = vm.cmd('query-migrate').get('status')
            if status in ('completed', 'failed'):
                break
            time.sleep(0.1)
        if status != 'completed':
            sys.exit(f'{qemu}: migration to {path}: {status}')
    finally:
        vm.shutdown()


def main():
    qemu = sys.argv[1]
    machine = sys.argv[2] if len(sys.argv) > 2 else 'q35'
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, 'state')
        save_state(qemu, machine, state)
        desc = subprocess.run([sys.executable,
                               str(SRC / 'scripts' / 'analyze-migration.py'),
                               '-d', 'desc', '-f', state],
                              check=True, capture_output=True, text=True)
    found = [d for d in json.loads(desc.stdout)['devices']
             if d.get('name') == 'vmgenid']
    if len(found) != 1:
        sys.exit(f'{qemu}: {len(found)} vmgenid entries in the description')
    print(json.dumps(found[0], indent=1, sort_keys=True))


if __name__ == '__main__':
    main()
