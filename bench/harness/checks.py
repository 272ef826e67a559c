"""What makes a number worth printing: each target answers 200 with the right bytes before it
is measured (never benchmark an error page), hits really are hits, and the logs stay clean."""

from __future__ import annotations

import gzip
import http.client
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .servers import PROXY_CACHE, S3CACHE, S3CACHE_HEAP, STATIC
from .workloads import Workload, gzip_bytes


class CheckFailed(RuntimeError):
    """A target does not answer as it must; the message says what it sent instead."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]   # lower-case names
    body: bytes


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, body)
    finally:
        connection.close()


def worker_stats(port: int) -> dict:
    """The worker's ``GET /stats`` (its cache counters)."""
    answer = fetch(port, "/stats")
    if answer.status != 200:
        raise CheckFailed(f"/stats answered {answer.status}: {answer.body[:200]!r}")
    return json.loads(answer.body)


def _cache_header(target: str) -> str | None:
    return {S3CACHE: "x-cache", S3CACHE_HEAP: "x-cache", PROXY_CACHE: "x-cache-status"}.get(target)


def verify(target: str, port: int, workload: Workload) -> Answer:
    """Warms the target (cache targets until they say HIT) and checks that its answer is 200
    with exactly the workload's bytes. Returns the last answer (its size sets what wrk must see)."""
    cache_header = _cache_header(target)
    answer = fetch(port, workload.path, workload.request_headers)
    for _ in range(5):
        if cache_header is None or workload.is_health or answer.headers.get(cache_header) == "HIT":
            break
        answer = fetch(port, workload.path, workload.request_headers)
    where = f"{target} {workload.path}"
    if answer.status != 200:
        raise CheckFailed(f"{where}: status {answer.status} (body {answer.body[:200]!r})")
    if "content-length" in answer.headers and int(answer.headers["content-length"]) != len(answer.body):
        raise CheckFailed(f"{where}: Content-Length {answer.headers['content-length']} but {len(answer.body)} bytes came")
    if workload.is_health:
        if json.loads(answer.body).get("status") != "ok":
            raise CheckFailed(f"{where}: unexpected body {answer.body[:200]!r}")
        return answer
    if cache_header is not None and answer.headers.get(cache_header) != "HIT":
        raise CheckFailed(f"{where}: {cache_header} is {answer.headers.get(cache_header)!r} after warming, not HIT")
    if workload.gzip:
        if answer.headers.get("content-encoding") != "gzip":
            raise CheckFailed(f"{where}: client accepts gzip but Content-Encoding is {answer.headers.get('content-encoding')!r}")
        original = gzip.decompress(answer.body)
        if target == STATIC and answer.body != gzip_bytes(workload.body):
            raise CheckFailed(f"{where}: not the precompressed file")
    else:
        if "content-encoding" in answer.headers:
            raise CheckFailed(f"{where}: unexpected Content-Encoding {answer.headers['content-encoding']!r}")
        original = answer.body
    if original != workload.body:
        raise CheckFailed(f"{where}: {len(original)} bytes that differ from the object's {len(workload.body)}")
    return answer


# ---------------------------------------------------------------------------------------------
# logs after the run

_NGINX_PROBLEM = re.compile(r"\[(warn|error|crit|alert|emerg)\]")
_WORKER_PROBLEM = re.compile(r'"level":"(warning|error|critical)"')


def log_problems(nginx_error_log: Path, worker_logs: list[Path], limit: int = 5) -> list[str]:
    """Warnings and errors nginx and the worker logged (first ``limit`` of each file, with a count)."""
    found: list[str] = []

    def scan(path: Path, pattern: re.Pattern[str], label: str) -> None:
        hits, shown = 0, []
        try:
            with open(path, errors="replace") as handle:
                for line in handle:
                    if pattern.search(line):
                        hits += 1
                        if len(shown) < limit:
                            shown.append(line.rstrip()[:300])
        except OSError:
            return
        if hits:
            found.append(f"{label}: {hits} line(s) at warning level or worse, e.g.\n    " + "\n    ".join(shown))

    scan(nginx_error_log, _NGINX_PROBLEM, f"nginx error log ({nginx_error_log.name})")
    for path in worker_logs:
        scan(path, _WORKER_PROBLEM, f"worker log ({path.name})")
        err = path.with_suffix(".err")
        if err.exists() and err.stat().st_size > 0:
            found.append(f"worker stderr ({err.name}) is not empty:\n    " + err.read_text(errors="replace")[:600])
    return found
