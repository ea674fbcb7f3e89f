"""The test guest under QEMU's own python library (build/src/python).

GuestMachine is a qemu.machine.QEMUMachine that boots the test guest
(build/guest: Debian's kernel and our initramfs) with its serial console
on a socket pair; QMP is QEMUMachine's own (vm.cmd, vm.event_wait).
Console adds what QEMU's library does not have: every line the guest
prints, stamped with the host's clock on arrival, and commands run in
the guest's shell with their output and exit status framed.

    with GuestMachine('demo', args=['-device', 'vmgenid,guid=auto']) as vm:
        vm.launch()
        vm.console.wait(READY, timeout=180)
        print(vm.cmd('query-vm-generation-id')['guid'])
        print(vm.console.run('vmgenid-guest'))

Standard library and QEMU's python library only.
"""

import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / 'build'
sys.path.insert(0, str(BUILD / 'src' / 'python'))
from qemu.machine import QEMUMachine  # noqa: E402

QEMU = os.environ.get('QEMU', str(BUILD / 'qemu-system-x86_64'))
GUEST = BUILD / 'guest'
KERNEL = GUEST / 'vmlinuz'                # Linux 6.1
KERNEL7 = GUEST / 'vmlinuz-7'             # Linux 7, whose ptp_vmclock is in INITRD
INITRD = GUEST / 'initramfs.cpio.gz'
APPEND = 'console=ttyS0 panic=-1 quiet'
ACCEL = os.environ.get('ACCEL', 'tcg')   # KVM only when asked
# Appended to every QEMU command line, e.g. QEMU_ARGS='-d guest_errors'.
QEMU_ARGS = shlex.split(os.environ.get('QEMU_ARGS', ''))
READY = re.compile(r'GUEST-READY')       # printed by guest/init
GUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'


class GuestError(Exception):
    pass


class Console:
    """A serial console: a thread reads it, logs it and keeps its lines as
    (host monotonic time of arrival, text).  Either a connected socket, or
    a listening one that QEMU connects to (again after each restart)."""

    def __init__(self, log_path, sock=None, listener=None):
        self.lines = []
        self.cond = threading.Condition()
        self.sock = sock
        self.listener = listener
        self.seq = 0
        self.rc = None
        self.log = open(log_path, 'a', encoding='utf-8', errors='replace')
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        if not self.listener:
            self._read(self.sock)
            return
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.cond:
                self.sock = conn
            self._read(conn)
            conn.close()

    def _read(self, sock):
        partial = b''
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b''
            now = time.monotonic()
            if not data:
                return
            try:
                self.log.write(data.decode('utf-8', 'replace'))
                self.log.flush()
            except ValueError:      # closed: nobody wants the log any more
                pass
            partial += data
            with self.cond:
                while b'\n' in partial:
                    line, partial = partial.split(b'\n', 1)
                    self.lines.append((now, line.decode('utf-8', 'replace').rstrip('\r')))
                self.cond.notify_all()

    def mark(self):
        """Where the next line will be; wait(..., start=mark) sees it."""
        with self.cond:
            return len(self.lines)

    def wait(self, regex, start=0, timeout=60, pred=None):
        """The first line from index start on that regex matches (and
        pred(match) accepts): (index, arrival time, match)."""
        if isinstance(regex, str):
            regex = re.compile(re.escape(regex))
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    at, text = self.lines[i]
                    m = regex.search(text)
                    if m and (pred is None or pred(m)):
                        return i, at, m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = '\n'.join(t for _, t in self.lines[-8:])
                    raise TimeoutError(f'serial: no {regex.pattern!r} within '
                                       f'{timeout} s; last lines:\n{tail}')
                self.cond.wait(left)

    def send(self, text):
        with self.cond:
            sock = self.sock
        sock.sendall(text.encode())

    def run(self, cmd, timeout=30, check=True):
        """Run cmd in the guest's shell; its output ('\\n' line ends).

        Two markers frame the output; each is written with an empty quote
        inside (__B""EG) so that the terminal's echo of the command line
        never matches, and eval keeps any command (one ending in '&', a
        syntax error) inside the frame.  The exit status is in self.rc;
        with check, a non-zero one raises GuestError."""
        self.seq += 1
        n = self.seq
        mark = self.mark()
        self.send(f'echo __B""EG_{n}__; eval {shlex.quote(cmd)}; '
                  f'echo __E""ND_{n}_$?__\n')
        begin = self.wait(re.compile(rf'^__BEG_{n}__$'), mark, timeout)[0]
        end, _, m = self.wait(re.compile(rf'__END_{n}_(\d+)__$'), begin + 1, timeout)
        with self.cond:
            body = [text for _, text in self.lines[begin + 1:end]]
            last = self.lines[end][1][:m.start()]
        out = ''.join(line + '\n' for line in body) + last
        self.rc = int(m.group(1))
        if check and self.rc:
            raise GuestError(f'guest: {cmd!r} exited with {self.rc}:\n{out}')
        return out

    def close(self):
        """Stop reading (QEMU may be gone already), close the sockets and
        the log."""
        socks = [s for s in (self.sock, self.listener) if s]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)
        for s in socks:
            s.close()
        self.log.close()


class GuestMachine(QEMUMachine):
    """QEMU running the test guest: q35, 1 vCPU, SeaBIOS, direct kernel
    boot, the serial console on .console.  incoming: start with
    '-incoming defer', ready for restore().  Logs (QEMU's output, the
    console, the command line) go to build/vm/NAME-*/ and are kept when
    the `with` block ends in an exception, or with keep=True."""

    def __init__(self, name, qemu=QEMU, args=(), incoming=False,
                 memory='256M', append='', keep=False, kernel=KERNEL):
        for f in (kernel, INITRD):
            if not f.exists():
                raise GuestError(f'{f} is missing: run guest/build-initramfs.sh')
        (BUILD / 'vm').mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f'{name}-', dir=BUILD / 'vm'))
        super().__init__(str(qemu), name=name, log_dir=str(self.dir), args=[
            '-name', name, '-machine', 'q35', '-accel', ACCEL,
            '-m', memory, '-smp', '1', '-nodefaults', '-no-reboot',
            '-kernel', str(kernel), '-initrd', str(INITRD),
            '-append', f'{APPEND} {append}'.strip(),
            *(['-incoming', 'defer'] if incoming else []),
            *args, *QEMU_ARGS])
        self.set_console()
        self.keep = keep
        self.started = None
        self.console = None

    def _post_launch(self):
        self.started = time.monotonic()       # QEMU's process exists
        super()._post_launch()
        (self.dir / 'cmdline').write_text(shlex.join(self._qemu_full_args) + '\n')
        self.console = Console(self.dir / 'console.log', sock=self.console_socket)

    def boot(self, timeout=240):
        """Launch if not yet done, wait for the guest's shell; the seconds
        from QEMU's start to the guest's GUEST-READY."""
        if not self.is_running():
            self.launch()
        return self.console.wait(READY, 0, timeout)[1] - self.started

    def run(self, cmd, timeout=30, check=True):
        return self.console.run(cmd, timeout, check)

    def hmp(self, line):
        """An HMP command that prints nothing when it works."""
        out = self.cmd('human-monitor-command', command_line=line)
        if out.strip():
            raise GuestError(f'HMP {line!r}: {out.strip()}')

    def wait_migration(self, timeout=180, poll=0.01):
        """Wait until query-migrate says completed; raise if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.cmd('query-migrate')
            status = info.get('status')
            if status == 'completed':
                return info
            if status in ('failed', 'cancelled'):
                raise GuestError(f"migration {status}: {info.get('error-desc', '')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f'migration still {status} after {timeout} s')
            time.sleep(poll)

    def save(self, path, timeout=180):
        """Stop the guest and write its state to path; query-migrate."""
        if self.cmd('query-status')['status'] == 'running':
            self.cmd('stop')
        self.cmd('migrate', uri=f'file:{Path(path).resolve()}')
        return self.wait_migration(timeout)

    def restore(self, path, timeout=180):
        """Load a state file into this '-incoming defer' QEMU (left paused)."""
        self.cmd('migrate-incoming', uri=f'file:{Path(path).resolve()}')
        return self.wait_migration(timeout)

    def shutdown(self, hard=False, timeout=30):
        try:
            super().shutdown(hard=hard, timeout=timeout)
        finally:
            if self.console:
                self.console.close()
                self.console = None

    def __exit__(self, exc_type, exc, tb):
        try:
            self.shutdown()
        finally:
            if exc_type is None and not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                print(f'{self._name}: QEMU log, console log and command line '
                      f'kept in {self.dir}', file=sys.stderr)
