"""Helpers shared by the cache's integration tests (``test_cache_*.py``).

Each cache module starts its own stack with the settings its property needs (short TTLs, a
small bound, a small backend gate), usually with ``SlowBackend`` between the worker and moto.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from conftest import Reply, raw_request, start_stack
from slow_backend import SlowBackend
from stack import free_port


@dataclass
class CacheStack:
    """A started stack and, when asked for, the slow backend its worker talks to."""

    stack: object
    backend: SlowBackend | None

    def stop(self) -> None:
        self.stack.stop()
        if self.backend is not None:
            self.backend.stop()


def start_cache_stack(*, worker_env: dict[str, str] | None = None, slow_backend: bool = False, **options) -> CacheStack:
    """A stack whose worker runs with ``worker_env``; with ``slow_backend`` its S3_ENDPOINT is a
    ``SlowBackend`` in front of the stack's moto."""
    env = dict(worker_env or {})
    backend = None
    if slow_backend:
        moto_port = free_port()
        backend = SlowBackend(moto_port).start()
        env["S3_ENDPOINT"] = backend.endpoint
        options["moto_port"] = moto_port
    try:
        stack = start_stack(worker_env=env, **options)
    except BaseException:
        if backend is not None:
            backend.stop()
        raise
    return CacheStack(stack, backend)


def stats(stack) -> dict:
    reply = raw_request(stack, "GET", "/stats")
    assert reply.status == 200, reply.body
    return reply.json()


@contextmanager
def stats_delta(stack):
    """Yields a dict that, after the block, holds how much each numeric /stats field changed."""
    before = stats(stack)
    delta: dict[str, float] = {}
    yield delta
    after = stats(stack)
    for name, value in after.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            delta[name] = value - before.get(name, 0)


def x_cache(reply: Reply) -> str:
    return reply.headers.get("x-cache", "")


def cache_status(reply: Reply) -> tuple[str, dict[str, object]]:
    """``Cache-Status`` (RFC 9211) as (cache name, parameters); a bare parameter is True."""
    value = reply.headers.get("cache-status")
    assert value, f"no Cache-Status header: {reply.headers}"
    members = [member.strip() for member in value.split(",")]
    assert len(members) == 1, f"one cache, one member expected: {value!r}"
    name, *parameters = [part.strip() for part in members[0].split(";")]
    parsed: dict[str, object] = {}
    for parameter in parameters:
        key, sep, raw = parameter.partition("=")
        assert key and key == key.lower(), f"bad parameter {parameter!r} in {value!r}"
        parsed[key] = (int(raw) if raw.lstrip("-").isdigit() else raw) if sep else True
    return name, parsed


def assert_reported(reply: Reply, expected: str) -> dict[str, object]:
    """``X-Cache`` is ``expected`` and ``Cache-Status`` states the same facts (RFC 9211):
    HIT is ``hit`` without ``fwd``; the other outcomes name why the request was forwarded."""
    assert x_cache(reply) == expected, f"X-Cache {x_cache(reply)!r}, expected {expected!r}; headers {reply.headers}"
    name, parameters = cache_status(reply)
    assert name == "s3cache"
    forward = {"MISS": "uri-miss", "REVALIDATED": "stale", "STALE": "stale", "BYPASS": "bypass"}
    if expected == "HIT":
        assert parameters.get("hit") is True and "fwd" not in parameters, parameters
        assert isinstance(parameters.get("ttl"), int) and parameters["ttl"] >= 0, parameters
    else:
        assert "hit" not in parameters, parameters
        assert parameters.get("fwd") == forward[expected], parameters
    if expected == "REVALIDATED":
        assert parameters.get("fwd-status") == 304 and parameters.get("stored") is True, parameters
    if expected == "STALE":
        assert "stored" not in parameters, parameters
    return parameters


def get(stack, bucket: str, key: str, headers: dict[str, str] | None = None, method: str = "GET", **kwargs) -> Reply:
    return raw_request(stack, method, f"/objects/{bucket}/{key}", headers=headers, **kwargs)


def timed_get(stack, bucket: str, key: str, headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[float, float, Reply]:
    """(started, seconds, reply) of one GET on a fresh connection, ``started`` on the monotonic clock."""
    started = time.monotonic()
    reply = get(stack, bucket, key, headers=headers, timeout=timeout)
    return started, time.monotonic() - started, reply


def concurrent_gets(stack, bucket: str, key: str, clients: int, timeout: float = 60) -> list[tuple[float, float, Reply]]:
    """``clients`` GETs of one key, each on its own connection, released together by a barrier:
    (started, seconds, reply) of each, as ``timed_get`` gives them."""
    barrier = threading.Barrier(clients)

    def one(_):
        barrier.wait()
        return timed_get(stack, bucket, key, timeout=timeout)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def first_byte_timing(stack, path: str, timeout: float = 60) -> tuple[float, float, bytes, int, dict[str, str]]:
    """(seconds to the first body byte, seconds to the last, body, status, headers) of one GET."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
    try:
        started = time.monotonic()
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        first = response.read(1)
        first_at = time.monotonic() - started
        rest = response.read()
        return first_at, time.monotonic() - started, first + rest, response.status, headers
    finally:
        connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    assert ordered, "no samples"
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
