"""The stack that bench/run and bench/profile measure: moto, the worker and ONE nginx with the
shipped snippets (scripts/stack.py's Stack) plus the comparison servers (servers.py), with the
workloads' objects in moto and as files on tmpfs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from stack import REPO, Stack, _Process, free_port, upstream_keepalive, wait_until  # noqa: E402

from .servers import Ports, heap_config, heap_fastcgi, http_config, responder_fastcgi  # noqa: E402
from .workloads import BUCKET, Workload, gzip_bytes  # noqa: E402

RESPONDER_SOURCE = Path(__file__).resolve().parent / "responder.c"

# What the worker answers on /health (the static column answers the same bytes itself).
HEALTH_BODY = '{"status":"ok"}'


def default_worker_threads(nproc: int) -> int:
    """The worker's own default (Configuration.defaultThreadCount): max(8, 4 x CPUs)."""
    return max(8, 4 * nproc)


def responder_threads(threads: int, keepalive: int | None, nginx_workers: int, clients: int | None) -> tuple[int, str]:
    """The C responder's thread count, and the sentence for the report.

    The worker parks idle kept connections (they hold no thread), so its thread count needs no
    rule. The C responder keeps a thread per connection, as libfcgi's threaded example does: it
    needs more threads than nginx keeps connections open to it, or kept connections tie up
    every thread while new ones wait. nginx keeps at most keepalive x worker_processes, and
    never more than it ever had open at once, which is at most the benchmark's ``clients``.
    It gets that many plus 32, or the worker's count if more: enough, and no idle excess."""
    if keepalive is None:
        return threads, f"FCGI_THREADS={threads}, and as many C responder threads (the upstream keeps no connections)"
    kept = keepalive * nginx_workers if clients is None else min(keepalive * nginx_workers, clients)
    count = max(threads, kept + 32)
    return count, (f"FCGI_THREADS={threads}; {count} C responder threads (a thread per connection nginx may keep: "
                   f"min(keepalive {keepalive} x worker_processes {nginx_workers}, clients"
                   f"{'' if clients is None else f' {clients}'}) + 32)")


class BenchStack:
    """Use as a context manager; ``ports`` says where each column's server listens."""

    def __init__(self, workloads: list[Workload], *, binary: str | None, threads: int, log_level: str,
                 proxy_gzip_level: int | None, keep: bool, nginx_workers: int, keepalive: int | None = None,
                 clients: int | None = None, file_tier: bool = False, file_min_size: str | None = None,
                 heap_worker: bool = False, worker_env: dict[str, str] | None = None):
        """``keepalive`` replaces the shipped upstream's ``keepalive N`` (an operator's tuning);
        ``clients`` is the most concurrent clients the benchmark will use (sizes the C responder).
        ``file_tier`` gives the s3cache column the file tier (CACHE_DIR in the stack's directory,
        ``FILE_MIN_SIZE=file_min_size`` when given); ``heap_worker`` adds the s3cache-heap
        column, a second worker with the file tier off. ``worker_env`` goes to both workers."""
        self.workloads = workloads
        self.heap_worker = heap_worker
        self.heap: _Process | None = None
        self.threads = threads
        self.nginx_workers = nginx_workers
        self.memory = _tmpfs_directory()
        snippets = REPO / "nginx"
        if keepalive is not None:
            snippets = self.memory / "snippets"
            shutil.copytree(REPO / "nginx", snippets)
            upstream = snippets / "s3cache-upstream.conf"
            text, count = re.subn(r"^(\s*keepalive)\s+\d+;", rf"\1 {keepalive};", upstream.read_text(), flags=re.M)
            if count != 1:
                raise RuntimeError("the shipped s3cache-upstream.conf has no single 'keepalive N;' line to replace")
            upstream.write_text(text)
        self.keepalive = upstream_keepalive(snippets)
        self.responder_threads, self.rule = responder_threads(threads, self.keepalive, nginx_workers, clients)
        static_root, proxy_cache_dir = self.memory / "static", self.memory / "proxy_cache"
        _write_static_files(static_root, workloads)
        self.responder_binary = _build_responder(self.memory)
        self.responder_socket = self.memory / "responder.sock"
        self.responder_body = self.memory / "responder-body"
        one_kib = next((workload for workload in workloads if workload.slug == "1k"), None)
        self.responder_body.write_bytes(one_kib.body if one_kib else os.urandom(1024))
        responder_snippet = self.memory / "responder-fastcgi.conf"
        responder_snippet.write_text(responder_fastcgi((snippets / "s3cache-fastcgi.conf").read_text()))
        self.responder: subprocess.Popen | None = None
        self.ports = Ports(static=free_port(), proxy_cache=free_port(), responder=free_port(), s3cache=free_port(),
                           s3cache_heap=free_port() if heap_worker else 0)
        moto_port = free_port()
        env = {
            "ALLOWED_BUCKETS": f"{BUCKET}:read",
            # Nothing may expire during the run: an expired entry would be revalidated against
            # moto (a few hundred requests/s) and the row would measure moto, not the cache.
            "CACHE_TTL": "86400",
            "LOG_LEVEL": log_level,
            **(worker_env or {}),
        }
        if file_tier and file_min_size:
            env["FILE_MIN_SIZE"] = file_min_size
        extra = http_config(self.ports, static_root=static_root, proxy_cache_dir=proxy_cache_dir,
                            moto_port=moto_port, proxy_gzip_level=proxy_gzip_level, health_body=HEALTH_BODY,
                            responder_socket=self.responder_socket, responder_snippet=responder_snippet,
                            keepalive=self.keepalive)
        self.heap_socket = self.memory / "heap.sock"
        if heap_worker:
            heap_snippet = self.memory / "heap-fastcgi.conf"
            heap_snippet.write_text(heap_fastcgi((snippets / "s3cache-fastcgi.conf").read_text()))
            extra += heap_config(self.ports.s3cache_heap, self.heap_socket, heap_snippet, self.keepalive)
        self.stack = Stack(
            binary=binary, moto_port=moto_port, buckets=(BUCKET,), threads=threads, keep=keep,
            nginx_workers=nginx_workers, snippets_dir=snippets, worker_env=env, file_tier=file_tier,
            http_extra=extra)

    def __enter__(self) -> "BenchStack":
        try:
            self._start_responder()
            self.stack.start()
            if self.heap_worker:
                self._start_heap_worker()
            self._put_objects()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.heap is not None:
            self.heap.stop()
        self.stack.stop()
        if self.responder is not None and self.responder.poll() is None:
            self.responder.terminate()
            self.responder.wait(timeout=10)
        shutil.rmtree(self.memory, ignore_errors=True)

    def file_tier_holds(self, length: int) -> bool:
        """Whether the s3cache worker's CACHE_DIR holds a complete data file of ``length`` bytes
        (the file tier's object files are ``objects/<xx>/<name>``, beside ``<name>.meta``)."""
        folder = self.stack.cache_dir / "objects"
        return folder.is_dir() and any(path.is_file() and not path.name.endswith(".meta") and path.stat().st_size == length
                                       for path in folder.rglob("*"))

    def heap_alive(self) -> bool:
        return self.heap is not None and self.heap.alive()

    def worker_logs(self) -> list[Path]:
        """Every worker log to scan for warnings: the stack's worker and the heap-only one."""
        logs = [self.stack.worker_log_path()]
        if self.heap is not None:
            logs.append(self.heap.stdout_path)
        return logs

    def _start_heap_worker(self) -> None:
        """The s3cache-heap column's worker: the stack's own environment, the file tier off."""
        env = self.stack.worker_environment()
        env["FCGI_LISTEN"] = str(self.heap_socket)
        env["CACHE_DIR"] = ""
        env["CACHE_DIR_SIZE"] = "0"   # also off on a worker that reads a blank CACHE_DIR as its default
        env.pop("FILE_MIN_SIZE", None)
        self.heap = _Process("worker (heap only)", [str(self.stack.binary)], env=env,
                             stdout=self.stack.logs / "worker-heap.log", stderr=self.stack.logs / "worker-heap.err")
        wait_until(self.heap_socket.exists, 30, f"heap-only worker socket {self.heap_socket}",
                   check=self.heap.ensure_alive)

    def responder_alive(self) -> bool:
        return self.responder is not None and self.responder.poll() is None

    def _start_responder(self) -> None:
        """The bare C responder (a thread per kept connection, see `responder_threads`)."""
        self.responder = subprocess.Popen(
            [str(self.responder_binary), str(self.responder_socket), str(self.responder_threads),
             str(self.responder_body)],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.responder_socket.exists():
            if self.responder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the C responder did not start (status {self.responder.poll()})")
            time.sleep(0.02)

    def nginx_worker_pids(self) -> list[int]:
        """nginx's worker processes (the children of its master)."""
        master = self.stack.nginx.pid
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
        return [int(pid) for pid in text.split()]

    def _put_objects(self) -> None:
        s3 = self.stack.boto3
        for workload in self.workloads:
            if not workload.is_health:
                s3.put_object(Bucket=BUCKET, Key=workload.file, Body=workload.body, ContentType=workload.content_type)
        # moto refuses unsigned GETs unless a bucket policy allows them (NOTES.md): proxy_cache
        # fetches anonymously, as it would from a public bucket.
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))


def _build_responder(directory: Path) -> Path:
    """Compiles responder.c against libfcgi (libfcgi-dev, which the worker's build needs too)."""
    compiler = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc, clang or gcc) on PATH to build bench/harness/responder.c")
    binary = directory / "responder"
    completed = subprocess.run([compiler, "-O2", "-pthread", "-o", str(binary), str(RESPONDER_SOURCE), "-lfcgi"],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"building the C responder failed:\n{completed.stderr}")
    return binary


def _tmpfs_directory() -> Path:
    """A fresh directory on tmpfs for the static files and proxy_cache's files."""
    base = Path("/dev/shm")
    if not base.is_dir():
        raise RuntimeError("/dev/shm (tmpfs) is missing; the static ceiling needs its files in memory")
    directory = Path(tempfile.mkdtemp(prefix="s3cache-bench-", dir=base))
    os.chmod(directory, 0o755)   # nginx's workers run as nobody when nginx starts as root
    return directory


def _write_static_files(root: Path, workloads: list[Workload]) -> None:
    """Each object as a file under ``root/objects/bench/``, JSON also as ``.gz`` for gzip_static."""
    folder = root / "objects" / BUCKET
    folder.mkdir(parents=True)
    for directory in (root, root / "objects", folder):
        os.chmod(directory, 0o755)
    for workload in workloads:
        if workload.is_health:
            continue
        files = [(folder / workload.file, workload.body)]
        if workload.gzip:
            files.append((folder / (workload.file + ".gz"), gzip_bytes(workload.body)))
        for path, data in files:
            path.write_bytes(data)
            os.chmod(path, 0o644)
