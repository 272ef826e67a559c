"""GET /stats after a known sequence of requests on a fresh worker: every counter exact.

The sequence touches each outcome a known number of times (miss, hit, negative hit, collapsed
followers, bypass, revalidation, stale serve), so a counter that is not incremented, counted
twice or counted in the wrong place shows up as a wrong number.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache_support import assert_reported, get, start_cache_stack, stats
from conftest import unique

TTL = 2
BOUND_MB = 8


@pytest.fixture(scope="module")
def cached():
    c = start_cache_stack(slow_backend=True, threads=48, worker_env={
        "CACHE_TTL": str(TTL), "MAX_CACHE_SIZE": str(BOUND_MB)})
    yield c
    c.stop()


def test_stats_count_a_known_sequence_exactly(cached):
    stack, backend = cached.stack, cached.backend
    fresh = stats(stack)
    for name in ("entries", "bytes", "hits", "misses", "revalidations", "stale_serves", "evictions",
                 "backend_fetches_saved", "negative_hits", "coalesced", "bypasses", "bytes_served_from_cache"):
        assert fresh[name] == 0, (name, fresh)
    assert fresh["bound_bytes"] == BOUND_MB << 20

    prefix = unique("stats")
    a = json.dumps([{"row": index, "text": "compressible"} for index in range(2000)]).encode()
    b, c, big = os.urandom(10_000), os.urandom(30_000), os.urandom(2 << 20)
    for name, body, content_type in (("a.json", a, "application/json"), ("b.bin", b, "application/octet-stream"),
                                     ("c.bin", c, "application/octet-stream"), ("big.bin", big, "application/octet-stream")):
        stack.boto3.put_object(Bucket="public", Key=f"{prefix}/{name}", Body=body, ContentType=content_type)

    # 5 concurrent misses of c: one leader, 4 collapsed followers.
    backend.add_rule(method="GET", path=f"/public/{prefix}/c.bin", delay_response=1.0)
    barrier = threading.Barrier(5)
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: (barrier.wait(), get(stack, "public", f"{prefix}/c.bin"))[1], range(5)))
    assert all(reply.body == c for reply in replies)

    assert_reported(get(stack, "public", f"{prefix}/a.json"), "MISS")
    for _ in range(3):
        assert_reported(get(stack, "public", f"{prefix}/a.json"), "HIT")
    assert_reported(get(stack, "public", f"{prefix}/b.bin"), "MISS")
    assert_reported(get(stack, "public", f"{prefix}/b.bin"), "HIT")
    assert_reported(get(stack, "public", f"{prefix}/missing"), "MISS")
    assert_reported(get(stack, "public", f"{prefix}/missing"), "HIT")
    assert_reported(get(stack, "public", f"{prefix}/big.bin"), "BYPASS")
    ranged = get(stack, "public", f"{prefix}/a.json", headers={"Range": "bytes=0-99"})
    assert ranged.status == 206
    assert_reported(ranged, "HIT")

    time.sleep(TTL + 0.2)
    assert_reported(get(stack, "public", f"{prefix}/a.json"), "REVALIDATED")
    assert_reported(get(stack, "public", f"{prefix}/a.json", method="HEAD"), "HIT")
    backend.add_rule(method="GET", path=f"/public/{prefix}/b.bin", fail_status=500)
    stale = get(stack, "public", f"{prefix}/b.bin")
    assert stale.body == b
    assert_reported(stale, "STALE")

    document = stats(stack)
    expected = {
        "hits": 6,                 # a x3, b, the range of a, HEAD of a
        "misses": 4,               # c (leader), a, b, missing
        "negative_hits": 1,
        "coalesced": 4,
        "bypasses": 1,             # big.bin, above MAX_OBJECT_SIZE (1 MiB = 8 MB / 8)
        "revalidations": 1,
        "stale_serves": 1,
        "evictions": 0,
        "backend_rejections": 0,
        "entries": 4,              # a, b, c and the remembered 404
        "backend_fetches_saved": 6 + 1 + 4,   # hits, negative hits, coalesced: no request to S3 at all
        # Body bytes answered from memory: hits, the range, the revalidated and stale answers,
        # the followers' copies of c (HEAD and 404 send no object bytes).
        "bytes_served_from_cache": 3 * len(a) + len(b) + 100 + len(a) + len(b) + 4 * len(c),
        "original_bytes": len(a) + len(b) + len(c),
    }
    assert {name: document[name] for name in expected} == expected, document
    assert 0 < document["bytes"] <= document["bound_bytes"]
    assert document["bytes"] > document["stored_body_bytes"], "keys and metadata are charged too"
    assert document["stored_body_bytes"] < document["original_bytes"]
    assert len(b) + len(c) < document["stored_body_bytes"] < len(b) + len(c) + len(gzip.compress(a)) * 2
    assert document["compression_ratio"] == pytest.approx(document["stored_body_bytes"] / document["original_bytes"], rel=1e-6)
    assert document["compression_ratio"] < 1
    assert document["hit_ratio"] == pytest.approx(6 / 10)
    # What reached S3 agrees: GETs for c once, a twice (miss, revalidation), b twice (miss, the failed revalidation), missing once, big once.
    for name, count in (("c.bin", 1), ("a.json", 2), ("missing", 1), ("big.bin", 1)):
        assert stack.backend_requests("GET", f"/public/{prefix}/{name}") == count, name
