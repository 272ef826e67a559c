"""The byte bound holds in the process, not only in the cache's own accounting.

MAX_CACHE_SIZE=16 MB; the test pours many times that through the cache and checks /stats
(bytes within the bound, evictions) and the worker's resident memory: RSS must stay within
idle RSS + the bound + RSS_MARGIN. The margin covers what is not cache content: malloc's
free lists and per-arena slack, libfcgi's and libcurl's per-thread buffers as they warm up,
and the in-flight copies of objects being filled (at most BACKEND_CONCURRENCY x
MAX_OBJECT_SIZE, here 8 x 2 MiB when the clients below run 8 at a time).

CLEANUP_INTERVAL=1: the cleanup thread hands freed memory back to the system (malloc_trim)
every second, so RSS is read after one cleanup round.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache_support import assert_reported, get, start_cache_stack, stats
from conftest import unique

BOUND_MB = 16
BOUND = BOUND_MB << 20
OBJECT = 1 << 20
MAX_OBJECT = BOUND // 8
RSS_MARGIN = 24 << 20
PARALLEL = 8


@pytest.fixture(scope="module")
def cached():
    # FILL_BUDGET: room for every parallel fill (each compressible one counts twice), so that
    # every object here is cached; the budget itself is tested in test_load.py.
    c = start_cache_stack(threads=40, worker_env={
        "MAX_CACHE_SIZE": str(BOUND_MB), "CLEANUP_INTERVAL": "1", "BACKEND_CONCURRENCY": "16",
        "FILL_BUDGET": str(2 * PARALLEL * OBJECT // (1 << 20)) + "M"})
    stack = c.stack
    # Warm every path a request takes (threads, curl handles, zlib) before the idle baseline.
    stack.boto3.put_object(Bucket="public", Key="warmup.json", Body=b'{"warm": "up"}' * 200, ContentType="application/json")
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda _: get(stack, "public", "warmup.json", headers={"Accept-Encoding": "gzip"}), range(64)))
    time.sleep(1.5)
    c.idle_rss = stack.worker_memory()["VmRSS"]
    yield c
    c.stop()


def semi_compressible_json(seed: int, size: int = OBJECT) -> bytes:
    """JSON that gzip shrinks to roughly a quarter: structure compresses, random tokens do not."""
    count = size // 70 + 1
    tokens = random.Random(seed).randbytes(12 * count).hex()
    rows = ",".join(f'{{"id":{index},"kind":"measurement","token":"{tokens[24 * index:24 * index + 24]}","unit":"ms"}}'
                    for index in range(count))
    return f"[{rows}]".encode()[:size]


def fill(stack, keys: list[str]) -> None:
    def read(key):
        reply = get(stack, "public", key)
        assert reply.status == 200 and len(reply.body) == OBJECT
        assert reply.headers.get("x-cache") == "MISS"

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(read, keys))


def put_many(stack, objects: dict[str, tuple[bytes, str]]) -> None:
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda item: stack.boto3.put_object(
            Bucket="public", Key=item[0], Body=item[1][0], ContentType=item[1][1]), objects.items()))


def settled_rss(stack) -> int:
    time.sleep(1.5)   # one cleanup round (malloc_trim)
    return stack.worker_memory()["VmRSS"]


def check_bound(c, what: str) -> dict:
    stack = c.stack
    document = stats(stack)
    assert document["bound_bytes"] == BOUND
    assert 0 < document["bytes"] <= BOUND, document
    assert document["evictions"] > 0, document
    rss = settled_rss(stack)
    print(f"\n{what}: idle {c.idle_rss / 2**20:.1f} MiB, now {rss / 2**20:.1f} MiB, peak {stack.worker_memory()['VmHWM'] / 2**20:.1f} MiB, "
          f"cache {document['bytes'] / 2**20:.1f} MiB / {document['entries']} entries, ratio {document['compression_ratio']:.3f}")
    limit = c.idle_rss + BOUND + RSS_MARGIN
    assert rss <= limit, (
        f"after {what}: RSS {rss / 2**20:.1f} MiB > idle {c.idle_rss / 2**20:.1f} MiB + bound {BOUND_MB} MiB "
        f"+ margin {RSS_MARGIN / 2**20:.0f} MiB (cache holds {document['bytes'] / 2**20:.1f} MiB in "
        f"{document['entries']} entries)")
    return document


def test_incompressible_objects_far_beyond_the_bound(cached):
    stack = cached.stack
    prefix = unique("bulk")
    objects = {f"{prefix}/{index}.bin": (os.urandom(OBJECT), "application/octet-stream") for index in range(200)}
    put_many(stack, objects)
    fill(stack, list(objects))
    document = check_bound(cached, "200 x 1 MiB incompressible")
    assert document["entries"] <= BOUND // OBJECT
    assert document["evictions"] >= 200 - document["entries"] - 1


def test_compressible_objects_are_charged_what_they_really_hold(cached):
    """Compressed entries are small, so many more fit: the memory each one keeps alive must be
    its compressed size, not the size of the buffer the compressor wrote into."""
    stack = cached.stack
    prefix = unique("json")
    objects = {f"{prefix}/{index}.json": (semi_compressible_json(index), "application/json") for index in range(120)}
    put_many(stack, objects)
    before = stats(stack)
    fill(stack, list(objects))
    document = check_bound(cached, "120 x 1 MiB JSON")
    assert document["compression_ratio"] < 0.5, document
    assert document["evictions"] > before["evictions"]


def test_objects_above_max_object_size_stream_through_and_are_never_stored(cached):
    stack = cached.stack
    key = f"{unique('huge')}.bin"
    body = os.urandom(24 << 20)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    before = stats(stack)
    stack.reset_worker_peak_rss()
    resident = stack.worker_memory()["VmRSS"]
    for _ in range(2):
        reply = get(stack, "public", key, timeout=60)
        assert reply.status == 200 and reply.body == body
        parameters = assert_reported(reply, "BYPASS")
        assert parameters.get("detail") == "too-large" and "stored" not in parameters
    peak = stack.worker_memory()["VmHWM"]
    after = stats(stack)
    assert stack.backend_requests("GET", f"/public/{key}") == 2, "an object that is never stored is fetched each time"
    assert after["bypasses"] - before["bypasses"] == 2
    assert after["original_bytes"] - before["original_bytes"] <= 0 and after["entries"] <= before["entries"]
    # Streamed, not buffered: the worker never held anything like the whole 24 MiB.
    assert peak - resident <= 8 << 20, f"peak RSS grew {(peak - resident) / 2**20:.1f} MiB while streaming 24 MiB"
