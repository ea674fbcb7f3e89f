"""Drive a test guest: start QEMU, talk QMP, use the serial shell, save
and restore the VM through a migration file.

Standard library only, so the demo and the tests run with Debian's
/usr/bin/python3 and nothing else.  Every wait has a timeout.

    with VM(args=['-device', 'vmgenid,guid=auto']) as vm:
        vm.wait_ready()
        print(vm.qmp.cmd('query-vm-generation-id')['guid'])
        print(vm.run('vmgenid-guest'))
"""

import codecs
import json
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / 'build'
QEMU = os.environ.get('QEMU', str(BUILD / 'qemu-system-x86_64'))
KERNEL = BUILD / 'guest' / 'vmlinuz'
INITRD = BUILD / 'guest' / 'initramfs.cpio.gz'
OVMF_CODE = Path('/usr/share/OVMF/OVMF_CODE_4M.fd')
OVMF_VARS = Path('/usr/share/OVMF/OVMF_VARS_4M.fd')
ACCEL = os.environ.get('ACCEL', 'tcg')   # nested KVM here is unusable
# Appended to every QEMU command line, e.g. QEMU_ARGS='-d guest_errors'.
QEMU_ARGS = shlex.split(os.environ.get('QEMU_ARGS', ''))


class VMError(Exception):
    pass


class QMPError(VMError):
    def __init__(self, command, error):
        super().__init__(f"{command}: {error.get('class')}: {error.get('desc')}")
        self.command = command
        self.error = error


def _recv_some(sock, deadline, what):
    """One recv() that gives up at deadline; b'' never returned."""
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([sock], [], [], left)[0]:
        raise TimeoutError(f'{what}: nothing received in time')
    data = sock.recv(65536)
    if not data:
        raise VMError(f'{what}: connection closed by QEMU')
    return data


class QMP:
    """Line-based QMP client; events that arrive meanwhile are kept."""

    def __init__(self, sock, timeout=30):
        self.sock = sock
        self.buf = b''
        self.events = []
        greeting = self._read(time.monotonic() + timeout)
        if 'QMP' not in greeting:
            raise VMError(f'not a QMP greeting: {greeting}')
        self.cmd('qmp_capabilities')

    def _read(self, deadline):
        while b'\n' not in self.buf:
            self.buf += _recv_some(self.sock, deadline, 'QMP')
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, timeout=30, **args):
        """Run a command and return its 'return' value; QMPError on error.

        Arguments with dashes: cmd('x', **{'some-arg': 1})."""
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        deadline = time.monotonic() + timeout
        while True:
            resp = self._read(deadline)
            if 'event' in resp:
                self.events.append(resp)
            elif 'error' in resp:
                raise QMPError(name, resp['error'])
            elif 'return' in resp:
                return resp['return']

    def wait_event(self, name, timeout=30):
        """Return the first event called name, received earlier or now."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev['event'] == name:
                    return self.events.pop(i)
            resp = self._read(deadline)
            if 'event' in resp:
                self.events.append(resp)

    def close(self):
        self.sock.close()


class Console:
    """The guest's serial shell.  Everything received goes to a log file."""

    def __init__(self, sock, log_path):
        self.sock = sock
        self.buf = ''
        self.before = ''
        self.rc = None
        self.log = open(log_path, 'a', encoding='utf-8')
        self.decoder = codecs.getincrementaldecoder('utf-8')('replace')
        self.seq = 0

    def wait_for(self, pattern, timeout=60):
        """Consume output up to and including pattern (text or compiled
        regex); return the match and keep the text before it in .before."""
        literal = isinstance(pattern, str)
        regex = re.compile(re.escape(pattern)) if literal else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.buf)
            if m:
                self.before = self.buf[:m.start()]
                self.buf = self.buf[m.end():]
                return m
            try:
                text = self.decoder.decode(_recv_some(self.sock, deadline, 'serial'))
            except TimeoutError:
                tail = self.buf[-500:]
                want = pattern if literal else regex.pattern
                raise TimeoutError(f'serial: no {want!r} within {timeout} s; '
                                   f'last output:\n{tail}') from None
            self.log.write(text)
            self.log.flush()
            self.buf += text

    def send(self, text):
        self.sock.sendall(text.encode())

    def interrupt(self):
        """Ctrl-C, e.g. after a run() timed out on a command still going."""
        self.send('\x03')

    def run(self, cmd, timeout=30, check=True):
        """Run a shell command in the guest and return its output.

        The output is framed by two markers; they are written with an
        empty quote inside ("__B""EG") so the terminal's echo of the
        command line itself never matches.  eval keeps any command (even
        one ending in '&', or a syntax error) from breaking the frame.
        The exit status is in self.rc; with check, non-zero raises."""
        self.seq += 1
        n = self.seq
        self.send(f'echo __B""EG_{n}__; eval {shlex.quote(cmd)}; '
                  f'echo __E""ND_{n}_$?__\n')
        self.wait_for(re.compile(rf'__BEG_{n}__\r?\n'), timeout)
        m = self.wait_for(re.compile(rf'__END_{n}_(\d+)__'), timeout)
        out = self.before.replace('\r\n', '\n')
        self.rc = int(m.group(1))
        if check and self.rc:
            raise VMError(f'guest: {cmd!r} exited with {self.rc}:\n{out}')
        return out

    def close(self):
        self.sock.close()
        self.log.close()


class VM:
    """One QEMU process with a kernel+initramfs guest.

    firmware: 'seabios' (the machine's default) or 'ovmf' (pflash, with a
    private copy of the variable store).  args: extra QEMU arguments.
    append: extra kernel command line.  incoming: start with
    '-incoming defer', ready for restore()."""

    def __init__(self, name='vm', machine='q35', firmware='seabios', args=(),
                 append='', memory='256M', incoming=False, qemu=QEMU,
                 kernel=KERNEL, initrd=INITRD, accel=ACCEL, keep=False):
        self.name = name
        self.machine = machine
        self.firmware = firmware
        self.args = list(args)
        self.append = append
        self.memory = memory
        self.incoming = incoming
        self.qemu = str(qemu)
        self.kernel = Path(kernel)
        self.initrd = Path(initrd)
        self.accel = accel
        self.keep = keep
        self.proc = self.qmp = self.console = self.dir = None
        self.boot_time = None

    def command_line(self):
        d = Path(self.dir)
        cmd = [self.qemu, '-name', self.name,
               '-machine', self.machine, '-accel', self.accel,
               '-m', self.memory, '-smp', '1',
               '-nodefaults', '-display', 'none', '-no-reboot',
               # The serial socket first: wait=on holds QEMU until we are
               # connected, so no early console output is lost.
               '-chardev', f'socket,id=serial0,path={d}/serial.sock,server=on,wait=on',
               '-serial', 'chardev:serial0',
               '-chardev', f'socket,id=qmp0,path={d}/qmp.sock,server=on,wait=off',
               '-mon', 'chardev=qmp0,mode=control',
               '-kernel', str(self.kernel), '-initrd', str(self.initrd),
               '-append', f'console=ttyS0 panic=-1 quiet {self.append}'.strip()]
        if self.firmware == 'ovmf':
            shutil.copyfile(OVMF_VARS, d / 'OVMF_VARS.fd')
            cmd += ['-drive', f'if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}',
                    '-drive', f'if=pflash,format=raw,unit=1,file={d}/OVMF_VARS.fd']
        elif self.firmware != 'seabios':
            raise VMError(f'unknown firmware {self.firmware!r}')
        if self.incoming:
            cmd += ['-incoming', 'defer']
        return cmd + self.args + QEMU_ARGS

    def launch(self, timeout=30):
        for f in (self.kernel, self.initrd):
            if not f.exists():
                raise VMError(f'{f} is missing: run guest/build-initramfs.sh')
        (BUILD / 'vm').mkdir(parents=True, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f'{self.name}-', dir=BUILD / 'vm')
        cmd = self.command_line()
        with open(Path(self.dir) / 'cmdline', 'w') as f:
            f.write(' '.join(cmd) + '\n')
        self.qemu_log = Path(self.dir) / 'qemu.log'
        with open(self.qemu_log, 'w') as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        deadline = self.started + timeout
        try:
            self.console = Console(self._connect('serial.sock', deadline),
                                   Path(self.dir) / 'console.log')
            self.qmp = QMP(self._connect('qmp.sock', deadline),
                           deadline - time.monotonic())
        except BaseException as e:
            self.shutdown()
            if isinstance(e, OSError) and self.proc.returncode is not None:
                raise VMError(f'QEMU exited with status {self.proc.returncode} '
                              f'(logs in {self.dir}):\n{self.log_tail()}') from e
            raise
        return self

    def _connect(self, name, deadline):
        """Connect to a socket QEMU is about to create."""
        path = str(Path(self.dir) / name)
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            if self.proc.poll() is not None:
                raise VMError(f'QEMU exited with status {self.proc.returncode}:\n'
                              + self.log_tail())
            if time.monotonic() > deadline:
                raise TimeoutError(f'QEMU did not create {path} in time')
            time.sleep(0.02)

    def log_tail(self, lines=20):
        try:
            with open(self.qemu_log) as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''

    def wait_ready(self, timeout=180):
        """Wait for the guest's init to print GUEST-READY; return boot time."""
        try:
            self.console.wait_for('GUEST-READY', timeout)
        except TimeoutError as e:
            # A missing option ROM or firmware shows up only in QEMU's log.
            raise TimeoutError(f'{e}\nQEMU log:\n{self.log_tail()}') from None
        self.boot_time = time.monotonic() - self.started
        return self.boot_time

    def run(self, cmd, timeout=30, check=True):
        return self.console.run(cmd, timeout, check)

    def status(self):
        return self.qmp.cmd('query-status')['status']

    def stop(self):
        self.qmp.cmd('stop')

    def cont(self):
        self.qmp.cmd('cont')

    def wait_migration(self, timeout, poll=0.05):
        """Wait until query-migrate says completed; raise if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp.cmd('query-migrate')
            status = info.get('status')
            if status == 'completed':
                return info
            if status in ('failed', 'cancelled'):
                raise VMError(f"migration {status}: {info.get('error-desc', '')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f'migration still {status} after {timeout} s')
            time.sleep(poll)

    def save(self, path, timeout=120):
        """Stop the VM and write its state to path; return query-migrate."""
        if self.status() == 'running':
            self.stop()
        self.qmp.cmd('migrate', uri=f'file:{Path(path).resolve()}')
        return self.wait_migration(timeout)

    def restore(self, path, timeout=120, cont=True):
        """Load state saved by save() into this '-incoming defer' VM."""
        self.qmp.cmd('migrate-incoming', uri=f'file:{Path(path).resolve()}')
        info = self.wait_migration(timeout)
        if cont and self.status() != 'running':
            self.cont()
        return info

    def shutdown(self, timeout=10):
        """Quit through QMP, kill if that does not work, close sockets."""
        if self.proc and self.proc.poll() is None:
            try:
                # QEMU may close the socket before it answers: that is fine.
                self.qmp.cmd('quit', timeout=timeout)
            except (OSError, VMError, TimeoutError):
                pass
            except AttributeError:   # no QMP connection: nothing to ask
                self.kill()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        for c in (self.qmp, self.console):
            if c:
                c.close()
        self.qmp = self.console = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self):
        return self if self.proc else self.launch()

    def __exit__(self, exc_type, exc, tb):
        self.shutdown()
        # Keep the logs of a failed run; a clean one leaves nothing behind.
        if self.dir and exc_type is None and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            print(f'{self.name}: QEMU log, console log and command line '
                  f'kept in {self.dir}', file=sys.stderr)
        return False
