#!/usr/bin/env python3
"""A complete local s3cache stack on loopback: moto (S3 stand-in), the worker, nginx.

One module for two users, so the stack is described in one place:

* ``.venv/bin/python scripts/stack.py run [--port 8080]`` (what ``make run`` calls) starts everything in
  the foreground with a few demo objects, prints URLs and curl examples, tails the worker's
  log, and stops everything on Ctrl-C or SIGTERM.
* the integration tests (``Tests/Integration/conftest.py``) build ``Stack`` objects with the
  options they need and use its accessors to look behind nginx (moto's request log, the
  worker's JSON log, its PID).

nginx runs with the SHIPPED snippets: every ``nginx/s3cache-*.conf`` is copied into
``<prefix>/snippets/`` and the only change made is the socket path
(``unix:/run/s3cache/s3cache.sock`` -> the test socket); the generated ``nginx.conf`` includes
them exactly as an operator's site would (``include snippets/s3cache-upstream.conf;`` in
``http {}``, ``include snippets/s3cache-locations.conf;`` in ``server {}``).

Everything lives under one directory (a fresh one in /tmp unless ``root`` is given); every
process is started by us, in its own session, and stopped by PID (SIGTERM, then SIGKILL after
a timeout) whatever happened during startup.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = REPO / ".build" / "release" / "s3cache"
SHIPPED_SOCKET = "unix:/run/s3cache/s3cache.sock"
# The file tier's directory as the shipped snippets name it (alias …/objects/): replaced by
# the stack's own CACHE_DIR.
SHIPPED_CACHE_DIR = "/var/cache/s3cache/"
DEFAULT_BUCKETS = ("public", "private", "local")
SOCKET_ACTIVATE = "systemd-socket-activate"

DEMO_OBJECTS = {
    ("public", "hello.txt"): (b"Hello from s3cache!\n", "text/plain; charset=utf-8"),
    ("public", "data/sample.json"): (
        json.dumps({"name": "sample", "items": [1, 2, 3], "nested": {"ok": True}}, indent=2).encode() + b"\n",
        "application/json",
    ),
    ("private", "secret.txt"): (b"only the gateway's clients with access to 'private' see this\n", "text/plain"),
    ("local", "readme.md"): (b"# local\n\nA bucket with full access (GET/HEAD/PUT/DELETE).\n", "text/markdown"),
}

# werkzeug access log line: 127.0.0.1 - - [date] "GET /bucket/key HTTP/1.1" 200 -
_MOTO_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) ')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class StackError(RuntimeError):
    """The stack could not be started (the message says which part and why)."""


# ---------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: new session (Ctrl-C in a terminal reaches only us, and we stop the children
    in order) and SIGKILL if the Python process dies without cleaning up."""
    os.setsid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no file)"
    return text[-limit:] if text else "(empty)"


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02,
               check: Callable[[], None] | None = None):
    """Polls ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes.
    ``check`` runs on every round and may raise early (e.g. when a process exited)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (usable as its own trust anchor)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


class _Process:
    """One child process we started: its Popen, log files, and an orderly stop."""

    def __init__(self, name: str, argv: list[str], *, env: Mapping[str, str] | None, stdout: Path,
                 stderr: Path, cwd: Path | None = None, umask: int | None = None):
        self.name = name
        self.argv = argv
        self.stdout_path = stdout
        self.stderr_path = stderr
        out = open(stdout, "ab")
        err = open(stderr, "ab")

        def preexec() -> None:
            _die_with_parent()
            if umask is not None:
                os.umask(umask)

        try:
            self.popen = subprocess.Popen(argv, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=err, cwd=cwd, preexec_fn=preexec)
        except FileNotFoundError as error:
            raise StackError(f"cannot start {name}: {error}") from error
        finally:
            out.close()
            err.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def ensure_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StackError(
                f"{self.name} exited with status {code} during startup\n"
                f"--- {self.stderr_path.name} ---\n{_tail(self.stderr_path)}\n"
                f"--- {self.stdout_path.name} ---\n{_tail(self.stdout_path)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Sends ``sig``, waits up to ``timeout``, then SIGKILLs the process group we created for it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # nginx's workers (same process group) must not outlive their master.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


# ---------------------------------------------------------------------------------------------
# the stack


class Stack:
    """moto + s3cache worker + nginx on loopback, in a private directory.

    Use as a context manager (``with Stack(...) as stack:``) or call ``start()``/``stop()``;
    ``stop()`` is safe to call at any point, including after a failed ``start()``.

    Options:
      root            directory for every file (default: a fresh ``/tmp/s3cache-stack-*``,
                      removed on stop unless ``keep=True``)
      binary          worker executable (default ``.build/release/s3cache`` or ``$S3CACHE_BIN``)
      worker_env      extra/overriding worker variables (value ``None`` removes a variable)
      threads         ``FCGI_THREADS`` (``None``: the worker's default)
      tls             also serve HTTPS with a self-signed certificate (``tls_base_url``, ``cert_path``)
      launcher        ``None`` (the worker opens ``FCGI_LISTEN``) or ``"systemd-socket-activate"``
      port, tls_port, moto_port   fixed ports (default: free ones)
      buckets         buckets created in moto (default public, private, local) + ``extra_buckets``
      demo_objects    put the demo objects of ``make run``
      nginx_workers   nginx ``worker_processes`` (default 2, as on a 2-core machine with ``auto``)
      start_worker    False starts moto and nginx only (for checking the harness itself)
      snippets_dir    where the shipped ``s3cache-*.conf`` files are (default ``nginx/`` of the repo)
      worker_args     extra command-line arguments for the worker (``["--config", path]``)
      file_tier       turn the file tier on, in ``<root>/cache`` (``cache_dir``)
      http_extra      configuration text added at the end of nginx's ``http {}`` (more servers,
                      e.g. the benchmark's comparison servers in bench/run)
    """

    def __init__(self, *, root: str | Path | None = None, binary: str | Path | None = None,
                 worker_env: Mapping[str, str | None] | None = None, threads: int | None = None,
                 tls: bool = False, launcher: str | None = None, port: int | None = None,
                 tls_port: int | None = None, moto_port: int | None = None,
                 buckets: Iterable[str] = DEFAULT_BUCKETS, extra_buckets: Iterable[str] = (),
                 demo_objects: bool = False, nginx_workers: int = 2, start_worker: bool = True,
                 keep: bool = False, secret_key: str | None = None, startup_timeout: float = 30.0,
                 snippets_dir: str | Path | None = None, worker_args: Iterable[str] = (),
                 http_extra: str = "", file_tier: bool = False):
        if launcher not in (None, SOCKET_ACTIVATE):
            raise ValueError(f"launcher must be None or {SOCKET_ACTIVATE!r}")
        self.binary = Path(binary or os.environ.get("S3CACHE_BIN") or DEFAULT_BINARY)
        self.snippets_dir = Path(snippets_dir) if snippets_dir else REPO / "nginx"
        self.http_extra = http_extra
        self.worker_overrides: dict[str, str | None] = dict(worker_env or {})
        self.worker_args = list(worker_args)
        self.threads = threads
        self.tls = tls
        self.launcher = launcher
        self.port = port or free_port()
        self.tls_port = (tls_port or free_port()) if tls else None
        self.moto_port = moto_port or free_port()
        self.buckets = list(dict.fromkeys([*buckets, *extra_buckets]))
        self.demo_objects = demo_objects
        self.nginx_workers = nginx_workers
        self.start_worker = start_worker
        self.startup_timeout = startup_timeout
        self.access_key = "s3cache-test-access"
        # Distinctive, so a test can prove it never appears in any output.
        self.secret_key = secret_key or f"s3cache-secret-{secrets.token_hex(12)}"
        self._own_root = root is None
        self.keep = keep
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="s3cache-stack-"))
        self.run_dir = self.root / "run"          # the worker's socket (0755 so nginx's user can reach it)
        self.logs = self.root / "logs"
        self.nginx_prefix = self.root / "nginx"
        self.socket_path = self.run_dir / "s3cache.sock"
        # The file tier's CACHE_DIR when a test turns it on (worker_env CACHE_DIR=stack.cache_dir).
        self.cache_dir = self.root / "cache"
        self.file_tier = file_tier
        self.cert_path: Path | None = None
        self.moto: _Process | None = None
        self.worker: _Process | None = None
        self.nginx: _Process | None = None
        self._worker_generation = 0
        self._worker_logs: list[Path] = []
        self._boto3 = None

    # -- URLs -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_base_url(self) -> str | None:
        return f"https://127.0.0.1:{self.tls_port}" if self.tls else None

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Stack":
        try:
            for directory in (self.root, self.run_dir, self.logs, self.nginx_prefix, self.root / "spool"):
                directory.mkdir(parents=True, exist_ok=True)
            # nginx's workers run as nobody when nginx starts as root: they must reach the socket.
            for directory in (self.root, self.run_dir):
                os.chmod(directory, 0o755)
            if self.start_worker and not self.binary.is_file():
                raise StackError(
                    f"worker binary not found at {self.binary}: build it first (swift build -c release) "
                    "or set S3CACHE_BIN")
            self._write_nginx_config()        # fails early and clearly if the snippets are missing
            self._start_moto()
            self._create_buckets()
            if self.start_worker:
                self._start_worker()
            self._start_nginx()
            if self.start_worker:
                self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops nginx, the worker and moto (each: SIGTERM, SIGKILL after a timeout)."""
        for attr in ("nginx", "worker", "moto"):
            process = getattr(self, attr)
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        if self._own_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- moto -------------------------------------------------------------------------------------

    def _start_moto(self) -> None:
        self.moto_log = self.logs / "moto.log"
        self.moto = _Process("moto_server", [moto_server(), "-H", "127.0.0.1", "-p", str(self.moto_port)],
                             env=None, stdout=self.logs / "moto.out", stderr=self.moto_log)

        def answers() -> bool:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=1)
                connection.request("GET", "/")
                connection.getresponse().read()
                connection.close()
                return True
            except OSError:
                return False

        wait_until(answers, self.startup_timeout, f"moto_server on port {self.moto_port}",
                   check=self.moto.ensure_alive)

    def stop_backend(self) -> None:
        """Stops moto (to test what the gateway does when S3 is unreachable)."""
        if self.moto is not None:
            self.moto.stop()

    @property
    def boto3(self):
        """A boto3 S3 client talking to moto directly (independent of the worker)."""
        if self._boto3 is None:
            import boto3
            from botocore.config import Config

            self._boto3 = boto3.client(
                "s3", endpoint_url=self.s3_url, region_name="us-east-1",
                aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
        return self._boto3

    def _create_buckets(self) -> None:
        for bucket in self.buckets:
            self.boto3.create_bucket(Bucket=bucket)
        if self.demo_objects:
            for (bucket, key), (body, content_type) in DEMO_OBJECTS.items():
                if bucket in self.buckets:
                    self.boto3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def backend_log(self) -> list[tuple[str, str, int]]:
        """Every request moto has logged so far: (method, path-with-query, status)."""
        entries = []
        try:
            text = self.moto_log.read_text(errors="replace")
        except OSError:
            return entries
        for line in text.splitlines():
            match = _MOTO_LINE.search(_ANSI.sub("", line))
            if match:
                entries.append((match.group(1), match.group(2), int(match.group(3))))
        return entries

    def backend_requests(self, method: str | None = None, path_prefix: str | None = None) -> int:
        """How many requests moto received (optionally only ``method`` and/or paths starting with
        ``path_prefix``). moto logs a request before it sends the status line, so anything the
        worker asked before answering our client is already counted when the answer arrives."""
        return sum(1 for m, path, _ in self.backend_log()
                   if (method is None or m == method) and (path_prefix is None or path.startswith(path_prefix)))

    # -- worker -----------------------------------------------------------------------------------

    def worker_environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "TMPDIR": str(self.root / "spool"),
            "S3_ENDPOINT": f"127.0.0.1:{self.moto_port}",
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_USE_SSL": "false",
            "S3_REGION": "us-east-1",
            "FCGI_LISTEN": str(self.socket_path),
            "FCGI_SOCKET_MODE": "0666",
            "LOG_LEVEL": "info",
            # Off unless a test asks for it (CACHE_DIR=str(stack.cache_dir)): most tests are
            # about the heap tier, and the default /var/cache/s3cache is not the stack's.
            "CACHE_DIR": str(self.cache_dir) if self.file_tier else "",
        }
        if self.threads is not None:
            env["FCGI_THREADS"] = str(self.threads)
        for name, value in self.worker_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def _start_worker(self) -> None:
        self._worker_generation += 1
        stdout = self.logs / f"worker-{self._worker_generation}.log"
        stderr = self.logs / f"worker-{self._worker_generation}.err"
        self._worker_logs.append(stdout)
        env = self.worker_environment()
        if self.launcher == SOCKET_ACTIVATE:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            argv = [_which(SOCKET_ACTIVATE), f"--listen={self.socket_path}"]
            # systemd-socket-activate gives the daemon only LISTEN_* and the -E variables.
            argv += [f"--setenv={name}={value}" for name, value in env.items() if name != "FCGI_LISTEN"]
            argv += [str(self.binary), *self.worker_args]
            self.worker = _Process("worker (systemd-socket-activate)", argv, env=env, stdout=stdout, stderr=stderr)
            # It binds now and execs the worker (same PID) on the first connection. The file's
            # mode is 0644; a real install sets SocketMode/SocketGroup in s3cache.socket.
            wait_until(self.socket_path.exists, self.startup_timeout, f"socket {self.socket_path}",
                       check=self.worker.ensure_alive)
            os.chmod(self.socket_path, 0o666)
        else:
            self.worker = _Process("worker", [str(self.binary), *self.worker_args], env=env, stdout=stdout, stderr=stderr)
            wait_until(self._socket_accepts, self.startup_timeout, f"worker socket {self.socket_path}",
                       check=self.worker.ensure_alive)

    def _socket_accepts(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
                return True
            except OSError:
                return False

    @property
    def worker_pid(self) -> int:
        assert self.worker is not None, "no worker in this stack"
        return self.worker.pid

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.alive()

    def restart_worker(self, env: Mapping[str, str | None] | None = None, *, replace_env: bool = False) -> None:
        """Stops the worker (SIGTERM) and starts it again, with ``env`` merged into (or, with
        ``replace_env``, replacing) the overrides; waits until /health answers through nginx."""
        if self.worker is not None:
            self.worker.stop()
        if env is not None:
            if replace_env:
                self.worker_overrides = dict(env)
            else:
                self.worker_overrides.update(env)
        self._start_worker()
        self.wait_healthy()

    def stop_worker(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the worker; returns its exit status."""
        assert self.worker is not None
        return self.worker.stop(timeout=timeout)

    def worker_log_path(self) -> Path:
        return self._worker_logs[-1]

    def worker_log_lines(self, all_generations: bool = False) -> list[dict]:
        """The worker's stdout parsed as JSON lines (non-JSON lines are returned as
        ``{"_unparsed": line}`` so a test can notice them)."""
        paths = self._worker_logs if all_generations else self._worker_logs[-1:]
        records = []
        for path in paths:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                    records.append(value if isinstance(value, dict) else {"_unparsed": line})
                except ValueError:
                    records.append({"_unparsed": line})
        return records

    def worker_output(self) -> str:
        """Everything the worker wrote to stdout and stderr, all generations."""
        parts = []
        for path in self._worker_logs:
            for candidate in (path, path.with_suffix(".err")):
                with contextlib.suppress(OSError):
                    parts.append(candidate.read_text(errors="replace"))
        return "\n".join(parts)

    def wait_for_log(self, predicate: Callable[[dict], bool], timeout: float = 5.0) -> dict:
        """The first worker log record matching ``predicate``, waiting for it to be written."""
        def find():
            for record in self.worker_log_lines():
                if predicate(record):
                    return record
            return None
        return wait_until(find, timeout, "a matching worker log line")

    def worker_memory(self) -> dict[str, int]:
        """VmRSS/VmHWM/... of the worker from /proc, in bytes."""
        values = {}
        for line in Path(f"/proc/{self.worker_pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.startswith("Vm") and rest.strip().endswith("kB"):
                values[name] = int(rest.split()[0]) * 1024
        return values

    def reset_worker_peak_rss(self) -> None:
        """Resets VmHWM to the current RSS (Linux: ``echo 5 > /proc/PID/clear_refs``)."""
        Path(f"/proc/{self.worker_pid}/clear_refs").write_text("5")

    # -- nginx ------------------------------------------------------------------------------------

    def shipped_snippets(self) -> list[Path]:
        snippets = sorted(self.snippets_dir.glob("s3cache-*.conf"))
        names = {path.name for path in snippets}
        missing = [name for name in ("s3cache-upstream.conf", "s3cache-locations.conf") if name not in names]
        if missing:
            raise StackError(
                f"shipped nginx snippet(s) missing in {self.snippets_dir}: {', '.join(missing)} "
                f"(the stack uses the files the project ships, copied to snippets/)")
        return snippets

    def upstream_keepalive(self) -> int | None:
        return upstream_keepalive(self.snippets_dir)

    def _write_nginx_config(self) -> None:
        prefix = self.nginx_prefix
        snippets_dir = prefix / "snippets"
        snippets_dir.mkdir(parents=True, exist_ok=True)
        substituted = False
        for source in self.shipped_snippets():
            text = source.read_text()
            if SHIPPED_SOCKET in text:
                substituted = True
                text = text.replace(SHIPPED_SOCKET, f"unix:{self.socket_path}")
            text = text.replace(f"alias {SHIPPED_CACHE_DIR}", f"alias {self.cache_dir}/")
            (snippets_dir / source.name).write_text(text)
        if not substituted:
            raise StackError(f"no shipped snippet names the socket {SHIPPED_SOCKET}; cannot point nginx at the test worker")
        # What a stock Debian /etc/nginx holds next to nginx.conf, in case a snippet includes it.
        for name in ("fastcgi_params", "fastcgi.conf", "mime.types"):
            if Path("/etc/nginx", name).is_file():
                shutil.copy(Path("/etc/nginx", name), prefix / name)
        temp = prefix / "temp"
        for name in ("client_body", "fastcgi", "proxy", "uwsgi", "scgi"):
            (temp / name).mkdir(parents=True, exist_ok=True)
        tls_server = ""
        if self.tls:
            self.cert_path, key_path = make_self_signed_cert(prefix)
            tls_server = f"""
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        server_name localhost;
        ssl_certificate {self.cert_path};
        ssl_certificate_key {key_path};
        include snippets/s3cache-locations.conf;
    }}"""
        self.nginx_error_log = self.logs / "nginx-error.log"
        self.nginx_access_log = self.logs / "nginx-access.log"
        config = f"""# generated by scripts/stack.py; the s3cache parts are the shipped snippets
daemon off;
master_process on;
worker_processes {self.nginx_workers};
error_log {self.nginx_error_log} info;
pid {prefix / "nginx.pid"};
events {{ worker_connections 4096; }}
http {{
    log_format s3cache '$remote_addr "$request" $status $body_bytes_sent rt=$request_time '
                       'us=$upstream_status urt=$upstream_response_time';
    access_log {self.nginx_access_log} s3cache;
    client_body_temp_path {temp / "client_body"};
    fastcgi_temp_path {temp / "fastcgi"};
    proxy_temp_path {temp / "proxy"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    include snippets/s3cache-upstream.conf;
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        include snippets/s3cache-locations.conf;
    }}{tls_server}
{self.http_extra}
}}
"""
        self.nginx_conf = prefix / "nginx.conf"
        self.nginx_conf.write_text(config)

    def _nginx_argv(self, *extra: str) -> list[str]:
        return [_which("nginx"), "-p", f"{self.nginx_prefix}/", "-c", str(self.nginx_conf),
                "-e", str(self.logs / "nginx-startup.log"), *extra]

    def _start_nginx(self) -> None:
        check = subprocess.run(self._nginx_argv("-t"), capture_output=True, text=True)
        if check.returncode != 0:
            raise StackError(f"nginx rejects the configuration built from the shipped snippets:\n{check.stderr}")
        self.nginx = _Process("nginx", self._nginx_argv(), env=None, stdout=self.logs / "nginx.out",
                              stderr=self.logs / "nginx.err")

        def listening() -> bool:
            with socket.socket() as probe:
                probe.settimeout(0.5)
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        def alive() -> None:
            try:
                self.nginx.ensure_alive()
            except StackError as error:
                raise StackError(f"{error}\n--- error log ---\n{_tail(self.nginx_error_log)}") from None

        wait_until(listening, self.startup_timeout, f"nginx on port {self.port}", check=alive)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Until ``GET /health`` through nginx answers 200 (raises with the logs otherwise)."""
        last = {"status": None}

        def healthy() -> bool:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/health")
                response = connection.getresponse()
                response.read()
                connection.close()
                last["status"] = response.status
                return response.status == 200
            except OSError as error:
                last["status"] = repr(error)
                return False

        def check() -> None:
            if self.worker is not None:
                self.worker.ensure_alive()

        try:
            wait_until(healthy, timeout or self.startup_timeout, "GET /health through nginx", interval=0.05, check=check)
        except StackError as error:
            raise StackError(
                f"{error} (last answer: {last['status']})\n--- nginx error log ---\n{_tail(self.nginx_error_log)}"
                f"\n--- worker stderr ---\n{_tail(self.worker_log_path().with_suffix('.err')) if self._worker_logs else ''}"
                f"\n--- worker stdout ---\n{_tail(self.worker_log_path()) if self._worker_logs else ''}") from None

    def describe(self) -> str:
        lines = [f"files:  {self.root}",
                 f"nginx:  {self.base_url}" + (f"  and {self.tls_base_url} (cert {self.cert_path})" if self.tls else ""),
                 f"moto:   {self.s3_url}  (S3 stand-in, any credentials)"]
        if self.worker is not None:
            lines.append(f"worker: pid {self.worker_pid}, socket {self.socket_path}, log {self.worker_log_path()}")
        return "\n".join(lines)


def moto_server() -> str:
    """moto's S3 server: ``$MOTO_SERVER`` if set, else the one installed beside the running
    Python (``.venv/bin/`` when run with the tree's virtual environment, as ``make`` does), else
    the first on ``PATH``."""
    if os.environ.get("MOTO_SERVER"):
        return os.environ["MOTO_SERVER"]
    beside = Path(sys.executable).parent / "moto_server"   # not resolved: a venv's python is a symlink
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("moto_server")
    if not found:
        raise StackError(f"moto_server not found beside {sys.executable} nor on PATH: run scripts/install-deps "
                         "and use the tree's virtual environment (.venv/bin/python)")
    return found


def _which(program: str) -> str:
    found = shutil.which(program) or (shutil.which(program, path="/usr/sbin:/sbin") if program == "nginx" else None)
    if not found:
        raise StackError(f"{program} not found on PATH")
    return found


def upstream_keepalive(snippets_dir: str | Path | None = None) -> int | None:
    """``keepalive N`` of the shipped upstream block (idle connections each nginx worker keeps)."""
    text = (Path(snippets_dir or REPO / "nginx") / "s3cache-upstream.conf").read_text()
    match = re.search(r"^\s*keepalive\s+(\d+)\s*;", _strip_comments(text), re.M)
    return int(match.group(1)) if match else None


def _strip_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


# ---------------------------------------------------------------------------------------------
# CLI: make run


def _follow(path_of: Callable[[], Path], stop: threading.Event) -> None:
    """Prints the worker's log lines as they are written (across worker restarts)."""
    current, handle = None, None
    while not stop.is_set():
        path = path_of()
        if path != current:
            if handle:
                handle.close()
            handle, current = None, path
        if handle is None:
            try:
                handle = open(path, "r", errors="replace")
            except OSError:
                time.sleep(0.2)
                continue
        line = handle.readline()
        if line:
            sys.stdout.write("worker | " + line)
            sys.stdout.flush()
        else:
            time.sleep(0.1)
    if handle:
        handle.close()


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve() if args.dir else None
    if root is not None:
        # Only what a previous run of ours left there; never the directory itself.
        for name in ("run", "logs", "nginx", "spool"):
            shutil.rmtree(root / name, ignore_errors=True)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # A token for POST /notifications and a gateway key, made for this run only. Anonymous
    # clients may read public and use local; private needs the key.
    notify_token = secrets.token_hex(16)
    key_id = "S3CDEMO" + secrets.token_hex(7).upper()
    key_secret = secrets.token_urlsafe(30)
    keys_dir = Path(tempfile.mkdtemp(prefix="s3cache-keys-"))
    keys_file = keys_dir / "keys"
    keys_file.write_text(f"{key_id} {key_secret} public:read,private:all,local:all\n")
    keys_file.chmod(0o600)
    stack = Stack(root=root, port=args.port, moto_port=args.s3_port or None, demo_objects=True,
                  tls=args.tls, keep=root is not None, binary=args.binary, file_tier=True, worker_env={
                      "NOTIFY_TOKEN": notify_token, "ACCESS_KEYS_FILE": str(keys_file),
                      "ANONYMOUS_BUCKETS": "public:read,local:all"})
    stop = threading.Event()
    try:
        stack.start()
        # A large object for the file tier: nginx sends it from CACHE_DIR once cached.
        stack.boto3.put_object(Bucket="public", Key="video.bin", Body=os.urandom(8 << 20), ContentType="video/mp4")
        base = stack.base_url
        print(f"""
s3cache is running.
{stack.describe()}

Try:
  curl -i {base}/health
  curl -i {base}/objects/public/hello.txt
  curl -I {base}/objects/public/data/sample.json
  curl -i -T README.md {base}/objects/local/README.md                # PUT (not --data-binary: see README)
  curl -i {base}/objects/local/README.md
  curl -i -X DELETE {base}/objects/local/README.md
  curl -i -X PUT --data 'nope' {base}/objects/public/hello.txt        # 403: public is read-only
  curl -i {base}/objects/private/secret.txt                           # 403: private needs a key
  curl -i --path-as-is {base}/objects/public/../private/secret.txt     # 400: never another bucket

Signed requests with the demo key (README "Keys, signing and presigned URLs"):
  export AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={key_secret} AWS_DEFAULT_REGION=us-east-1
  {REPO}/.venv/bin/aws --endpoint-url {base}/objects s3api get-object --bucket private --key secret.txt /dev/stdout
  {REPO}/.venv/bin/aws --endpoint-url {base}/objects s3api put-object --bucket private --key signed.txt --body README.md
  ACCESS_KEYS_FILE={keys_file} {stack.binary} presign --key-id {key_id} {base}/objects/private/signed.txt   # a URL for curl

The file tier (README "The file tier"; files in {stack.cache_dir}/objects):
  curl -s -o /dev/null -w '%{{http_code}} %{{size_download}}\n' {base}/objects/public/video.bin   # MISS: streamed and stored slice by slice
  curl -sI {base}/objects/public/video.bin | grep -i -e x-cache -e content-length           # HIT: nginx sends the file
  curl -s -r 1000000-1000099 -D - -o /dev/null {base}/objects/public/video.bin              # 206 cut by nginx from the file
  curl -s {base}/stats | python3 -m json.tool | grep -A16 '"files"'

Freshness (README "Freshness and invalidation"):
  curl -i -X PURGE {base}/objects/local/README.md                     # drop one cached key
  curl -i -X PURGE -H 'Purge-Mode: soft' '{base}/objects/local/*'     # expire a whole bucket: next reads revalidate
  curl -i -H 'Authorization: Bearer {notify_token}' \\
       --data '{{"Records":[{{"eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"public"}},"object":{{"key":"hello.txt"}}}}}}]}}' {base}/notifications   # a bucket event: hello.txt is dropped

Ctrl-C stops everything. Worker log follows:
""", flush=True)
        follower = threading.Thread(target=_follow, args=(stack.worker_log_path, stop), daemon=True)
        follower.start()
        while True:
            time.sleep(0.5)
            for process in (stack.moto, stack.worker, stack.nginx):
                if process is not None and not process.alive():
                    print(f"\n{process.name} exited with status {process.popen.returncode}; stopping.", file=sys.stderr)
                    return 1
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
        return 0
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not abort the cleanup
        stack.stop()
        shutil.rmtree(keys_dir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start moto + worker + nginx in the foreground (make run)")
    run_parser.add_argument("--port", type=int, default=8080, help="nginx HTTP port on 127.0.0.1 (default 8080)")
    run_parser.add_argument("--s3-port", type=int, default=0, help="moto port (default: a free one)")
    run_parser.add_argument("--tls", action="store_true", help="also serve HTTPS with a self-signed certificate")
    run_parser.add_argument("--dir", default=None,
                            help="directory for sockets, logs and config (default: a fresh one in /tmp, removed on exit)")
    run_parser.add_argument("--binary", default=None, help=f"worker binary (default {DEFAULT_BINARY.relative_to(REPO)})")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
