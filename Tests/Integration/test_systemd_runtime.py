"""The worker as systemd runs it: socket activation, and the sandbox of s3cache.service.

There is no systemd as PID 1 here, so:

* socket activation is done by ``systemd-socket-activate`` (Debian's systemd package), which
  binds the socket, waits for the first connection, and execs the worker with ``LISTEN_FDS=1``
  and the socket as fd 3, as PID 1 does for s3cache.socket;
* the sandbox is checked by tracing the worker (``strace -f``) through every kind of request
  while the kernel enforces ``MemoryDenyWriteExecute=`` and ``NoNewPrivileges=`` (mdwe_exec.py),
  then comparing what it did with what the unit allows: the system calls against
  ``SystemCallFilter=`` (expanded by ``systemd-analyze syscall-filter``), the socket families
  against ``RestrictAddressFamilies=``, and the files it wrote, the /proc and /dev entries it
  opened against ``ProtectSystem=strict``, ``ProcSubset=pid`` and ``PrivateDevices=``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import raw_request, start_stack, unique
from systemd_units import SERVICE_UNIT, allowed_address_families, allowed_syscalls, read_unit, setting

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from stack import SOCKET_ACTIVATE, wait_until  # noqa: E402

MDWE_EXEC = Path(__file__).resolve().parent / "mdwe_exec.py"
EXIT_UNSUPPORTED = 95


# ---------------------------------------------------------------------------------------------
# socket activation


def _listening_unix_sockets() -> dict[int, str]:
    """inode -> path of every listening Unix socket (/proc/net/unix, flag __SO_ACCEPTCON)."""
    sockets = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 7 and int(fields[3], 16) & 0x10000:
            sockets[int(fields[6])] = fields[7] if len(fields) > 7 else ""
    return sockets


def _listening_tcp_inodes() -> set[int]:
    inodes = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":   # TCP_LISTEN
                    inodes.add(int(fields[9]))
    return inodes


def _socket_fds(pid: int) -> dict[int, int]:
    """fd -> socket inode for every socket the process holds."""
    fds = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            fds[int(entry.name)] = int(match.group(1))
    return fds


def test_worker_serves_the_socket_systemd_passes_it():
    if shutil.which(SOCKET_ACTIVATE) is None:
        pytest.fail(f"{SOCKET_ACTIVATE} not found: install Debian's systemd package", pytrace=False)
    stack = start_stack(launcher=SOCKET_ACTIVATE)
    try:
        # Through nginx: a PUT, and the same bytes back.
        key = unique("activated")
        body = os.urandom(64 * 1024)
        put = raw_request(stack, "PUT", f"/objects/local/{key}", body=body,
                          headers={"Content-Type": "application/octet-stream"})
        assert put.status == 200, put.body
        got = raw_request(stack, "GET", f"/objects/local/{key}")
        assert got.status == 200 and got.body == body

        # systemd-socket-activate exec'd the worker in its own process (LISTEN_PID is that PID).
        pid = stack.worker_pid
        assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(stack.binary)
        started = stack.wait_for_log(lambda record: record.get("msg") == "started")
        assert started.get("listen") == "systemd", started

        # fd 3 is the socket systemd-socket-activate bound, and it is the only socket the
        # worker listens on: it opened none of its own (FCGI_LISTEN is not even set).
        listening = _listening_unix_sockets()
        fds = _socket_fds(pid)
        assert 3 in fds, f"the worker has no socket at fd 3: {fds}"
        assert listening.get(fds[3]) == str(stack.socket_path), (fds[3], listening.get(fds[3]))
        listeners = {fd for fd, inode in fds.items() if inode in listening or inode in _listening_tcp_inodes()}
        assert listeners == {3}, f"listening sockets held by the worker: fds {sorted(listeners)}"
    finally:
        stack.stop()


# ---------------------------------------------------------------------------------------------
# the sandbox of s3cache.service


# strace -f lines: "PID name(args) = result" (or "<unfinished ...>"; the "<... resumed>"
# halves and signal lines do not start a call).
_CALL = re.compile(r"^(\d+)\s+([a-z0-9_]+)\((.*)$")
_PATH_CALLS = {"open", "openat", "openat2", "creat", "mkdir", "mkdirat", "unlink", "unlinkat", "rmdir",
               "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod",
               "fchmodat", "chown", "fchownat", "lchown", "truncate", "mknod", "mknodat", "utimensat"}
_READ_ONLY_OPEN = re.compile(r"^O_RDONLY(\|O_(CLOEXEC|NOCTTY|NONBLOCK|DIRECTORY|NOFOLLOW|LARGEFILE|PATH))*$")
# What PrivateDevices= leaves in /dev.
_PRIVATE_DEV = re.compile(r"^/dev/(null|zero|full|random|urandom|tty|ptmx|pts(/.*)?|shm(/.*)?|mqueue(/.*)?|"
                          r"hugepages(/.*)?|log|stdin|stdout|stderr|fd(/.*)?)$")
# What ProcSubset=pid and ProtectProc=invisible leave in /proc: the process's own entries.
_PROC_PID = re.compile(r"^/proc/(self|thread-self|\d+)(/.*)?$")
# Reads outside that subset whose failure under the unit is known to be harmless. glibc's
# malloc reads overcommit_memory once, the first time it shrinks a thread arena's heap
# (check_may_shrink_heap); when it cannot open the file it releases the pages with
# MADV_DONTNEED, as it does anyway unless overcommit is strict. Whether a run shrinks a
# thread arena at all depends on timing, so the read shows up in some traces only.
_PROC_HARMLESS_READS = {"/proc/sys/vm/overcommit_memory"}


class Trace:
    """What ``strace -f -s 512`` recorded: the calls by name, and the calls themselves."""

    def __init__(self, text: str):
        self.calls: list[tuple[str, str]] = []
        for line in text.splitlines():
            match = _CALL.match(line)
            if match:
                self.calls.append((match.group(2), match.group(3)))

    def names(self) -> set[str]:
        return {name for name, _ in self.calls}

    def socket_families(self) -> set[str]:
        return {args.split(",")[0].strip() for name, args in self.calls if name == "socket"}

    def paths(self) -> list[tuple[str, str, str]]:
        """(call, path, flags) of every call that names a file: openat's flags, else ''."""
        found = []
        for name, args in self.calls:
            if name not in _PATH_CALLS:
                continue
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
            if not strings:
                continue
            flags = ""
            if name in ("open", "openat"):
                after = args[args.index('"') + len(strings[0]) + 2:]
                match = re.match(r"\s*,\s*(O_[A-Z0-9_|]+)", after)
                flags = match.group(1) if match else after
            found.append((name, strings[0], flags))
        return found

    def write_execute_requests(self) -> list[str]:
        """Calls that systemd 252's MemoryDenyWriteExecute= filter refuses (it uses seccomp,
        stricter than the kernel's MDWE in one respect: any mprotect() asking for PROT_EXEC),
        and any mapping the kernel refused."""
        found = []
        for name, args in self.calls:
            if name == "mmap" and "PROT_WRITE" in args and "PROT_EXEC" in args:
                found.append(f"{name}({args}")
            elif name in ("mprotect", "pkey_mprotect") and "PROT_EXEC" in args:
                found.append(f"{name}({args}")
            elif name == "shmat" and "SHM_EXEC" in args:
                found.append(f"{name}({args}")
            elif name in ("mmap", "mprotect", "pkey_mprotect") and "EACCES" in args:
                found.append(f"{name}({args}")
        return found


def _drain(receiver: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(receiver.recv(4096).decode(errors="replace"))
        except BlockingIOError:
            return messages


def _traced_worker(directory: Path, binary: Path, trace: Path) -> Path:
    """A launcher for the stack: the worker under strace, MDWE and no-new-privs enforced."""
    launcher = directory / "traced-s3cache"
    launcher.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} {MDWE_EXEC} strace -f -qq -s 512 -o {trace} -- {binary} \"$@\"\n")
    launcher.chmod(0o755)
    return launcher


def test_worker_stays_within_the_units_sandbox(tmp_path):
    if shutil.which("strace") is None:
        pytest.fail("strace not found: scripts/install-deps installs it", pytrace=False)
    probe = subprocess.run([sys.executable, str(MDWE_EXEC), "true"], capture_output=True, text=True)
    if probe.returncode == EXIT_UNSUPPORTED:
        pytest.skip(f"this kernel cannot enforce MemoryDenyWriteExecute without systemd: {probe.stderr.strip()}")
    assert probe.returncode == 0, probe.stderr
    # The enforcement is real: a W+X mapping is refused under it.
    wx = subprocess.run([sys.executable, str(MDWE_EXEC), sys.executable, "-c",
                         "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"],
                        capture_output=True, text=True)
    assert wx.returncode != 0 and "PermissionError" in wx.stderr, wx.stderr

    service = read_unit(SERVICE_UNIT)
    assert setting(service, "Service", "MemoryDenyWriteExecute") == "yes"
    binary = Path(os.environ.get("S3CACHE_BIN") or REPO / ".build" / "release" / "s3cache")
    trace_path = tmp_path / "worker.strace"
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    stack = start_stack(
        binary=_traced_worker(tmp_path, binary, trace_path), demo_objects=True,
        # The cleanup thread runs during the test; the notify messages and watchdog pings go
        # to a socket of ours, as they would to systemd's.
        worker_env={"CLEANUP_INTERVAL": "1", "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"})
    try:
        spool = stack.root / "spool"
        key = unique("sandbox")
        assert raw_request(stack, "GET", "/objects/public/hello.txt").status == 200          # miss: S3
        assert raw_request(stack, "GET", "/objects/public/hello.txt").status == 200          # hit
        assert raw_request(stack, "HEAD", "/objects/public/data/sample.json").status == 200
        assert raw_request(stack, "GET", "/objects/public/nothing-here").status == 404
        assert raw_request(stack, "PUT", f"/objects/local/{key}", body=b"plain " * 1000).status == 200
        packed = gzip.compress(b"spooled to TMPDIR " * 20000)
        assert raw_request(stack, "PUT", f"/objects/local/{key}.gz", body=packed,
                           headers={"Content-Encoding": "gzip"}).status == 200
        assert raw_request(stack, "GET", f"/objects/local/{key}.gz", headers={"Accept-Encoding": "gzip"}).status == 200
        assert raw_request(stack, "DELETE", f"/objects/local/{key}").status == 204
        for path in ("/health", "/ready", "/metrics", "/stats"):
            assert raw_request(stack, "GET", path).status == 200, path

        # The traced process is strace; the worker is its child.
        tracer = stack.worker_pid
        children = Path(f"/proc/{tracer}/task/{tracer}/children").read_text().split()
        assert len(children) == 1, children
        worker = int(children[0])
        os.kill(worker, signal.SIGHUP)                 # systemctl reload
        time.sleep(1.5)                                # a cleanup round
        assert raw_request(stack, "GET", "/objects/public/hello.txt").status == 200
        os.kill(worker, signal.SIGTERM)                # systemctl stop
        wait_until(lambda: not stack.worker_alive(), 30, "the traced worker to exit")
        assert stack.worker.popen.returncode == 0, stack.worker_output()[-3000:]
        messages = _drain(notify)
    finally:
        stack.stop()
        notify.close()

    # What Type=notify and WatchdogSec= in the unit rely on: without READY=1 systemd would
    # fail the start, without WATCHDOG=1 it would kill a healthy worker.
    for state in ("READY=1", "WATCHDOG=1", "STOPPING=1"):
        assert any(state in message.split("\n") for message in messages), f"no {state} among {messages[:10]}"

    trace = Trace(trace_path.read_text(errors="replace"))
    assert trace.calls and trace.calls[0][0] == "execve", "the trace does not start at the worker's execve"

    forbidden = sorted(trace.names() - allowed_syscalls(service))
    assert not forbidden, f"system calls that SystemCallFilter= refuses: {forbidden}"
    families = trace.socket_families() - allowed_address_families(service)
    assert not families, f"socket families that RestrictAddressFamilies= refuses: {families}"
    assert not trace.write_execute_requests(), trace.write_execute_requests()

    problems = []
    for call, path, flags in trace.paths():
        if path.startswith("/proc/") and not _PROC_PID.match(path) \
                and not (path in _PROC_HARMLESS_READS and _READ_ONLY_OPEN.match(flags)):
            problems.append(f"{call} {path}: hidden by ProcSubset=pid")
        elif path.startswith("/dev/") and not _PRIVATE_DEV.match(path):
            problems.append(f"{call} {path}: not in PrivateDevices=' /dev")
        elif path.startswith(("/home/", "/root/", "/run/user/")):
            problems.append(f"{call} {path}: hidden by ProtectHome=")
        writes = call not in ("open", "openat") or not _READ_ONLY_OPEN.match(flags)
        # Under the unit TMPDIR is PrivateTmp's /var/tmp; here it is the stack's spool. The
        # socket file is the worker's own only here: under systemd it is never created.
        if writes and not (path.startswith(f"{spool}/") or path == str(stack.socket_path)
                           or path in ("/dev/null", "/dev/zero", "/dev/full")):
            problems.append(f"{call} {path} {flags}: read-only under ProtectSystem=strict")
    assert not problems, "\n".join(problems)
