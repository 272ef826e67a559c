"""A slow S3 never starves cache hits, and the first client of a miss gets bytes as they come.

The worker runs with BACKEND_CONCURRENCY=4 of 48 threads behind a slow backend: four held
misses fill the gate, further misses must be refused at once (503 + Retry-After, not after the
backend's delay), and hits on other keys must keep answering quickly all the while.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache_support import (assert_reported, first_byte_timing, get, percentile, start_cache_stack, stats, stats_delta,
                           timed_get, wait_for)
from conftest import assert_json_error, unique

GATE = 4
HOLD = 4.0


@pytest.fixture(scope="module")
def cached():
    c = start_cache_stack(slow_backend=True, threads=48, worker_env={
        "BACKEND_CONCURRENCY": str(GATE), "MAX_CACHE_SIZE": "64", "MAX_OBJECT_SIZE": "16M"})
    yield c
    c.stop()


def test_a_saturated_backend_refuses_misses_at_once_and_hits_stay_fast(cached):
    stack, backend = cached.stack, cached.backend
    prefix = unique("pressure")
    hot = [f"{prefix}/hot-{index}.bin" for index in range(8)]
    hot_bodies = {key: os.urandom(4096) for key in hot}
    for key, body in hot_bodies.items():
        stack.boto3.put_object(Bucket="public", Key=key, Body=body)
        assert get(stack, "public", key).body == body
    slow = [f"{prefix}/slow-{index}.bin" for index in range(GATE + 6)]
    for key in slow:
        stack.boto3.put_object(Bucket="public", Key=key, Body=b"slow object " + key.encode())
    backend.add_rule(method="GET", path=f"/public/{prefix}/slow-*", delay_request=HOLD)

    # Fill the gate with GATE misses that S3 takes HOLD seconds to answer.
    held: list = [None] * GATE

    def hold(index):
        held[index] = timed_get(stack, "public", slow[index])

    holders = [threading.Thread(target=hold, args=(index,)) for index in range(GATE)]
    for thread in holders:
        thread.start()
    wait_for(lambda: all(backend.requests_seen("GET", f"/public/{key}") for key in slow[:GATE]), 5, "the gate to fill")

    with stats_delta(stack) as delta:
        # Further misses: refused at once, with a reason and a hint when to retry.
        refusals = []
        for key in slow[GATE:]:
            _, seconds, reply = timed_get(stack, "public", key)
            refusals.append(seconds)
            assert_json_error(reply, 503, "backend_busy")
            assert reply.headers.get("retry-after", "").isdigit(), reply.headers
        # Hits on other keys, from 8 concurrent clients, while the gate is still full.
        def hits(key):
            samples = []
            for _ in range(25):
                _, seconds, reply = timed_get(stack, "public", key)
                assert reply.status == 200 and reply.body == hot_bodies[key]
                assert_reported(reply, "HIT")
                samples.append(seconds)
            return samples

        with ThreadPoolExecutor(len(hot)) as pool:
            latencies = [sample for samples in pool.map(hits, hot) for sample in samples]
    assert all(thread.is_alive() for thread in holders), "the held misses ended early; the gate was not full throughout"
    assert max(refusals) < 0.5, f"a refused miss took {max(refusals):.2f} s: it waited instead of failing fast"
    p99 = percentile(latencies, 0.99)
    print(f"\nhits while S3 saturated: {len(latencies)}, p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms; refused misses answered in at most {max(refusals) * 1000:.1f} ms")
    assert p99 < 0.2, f"hits slowed down while S3 was saturated: p99 {p99 * 1000:.0f} ms over {len(latencies)} hits"
    assert delta["backend_rejections"] == len(slow) - GATE
    assert delta["hits"] == len(latencies)

    for thread in holders:
        thread.join(30)
    for index, (_, seconds, reply) in enumerate(held):
        assert reply.status == 200 and reply.body == b"slow object " + slow[index].encode()
        assert seconds >= HOLD
    # The refused misses never reached S3.
    for key in slow[GATE:]:
        assert stack.backend_requests("GET", f"/public/{key}") == 0


def test_a_stampede_beyond_the_gate_still_makes_one_backend_get(cached):
    """Followers wait without a backend permit (the leader holds the one their key needs): with
    more concurrent requests for one key than the gate, every one is answered with the exact
    bytes, and S3 sees one GET."""
    stack, backend = cached.stack, cached.backend
    key = f"{unique('hot-stampede')}.bin"
    body = os.urandom(100_000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    backend.add_rule(method="GET", path=f"/public/{key}", delay_response=1.5)
    barrier = threading.Barrier(20)

    def one(_):
        barrier.wait()
        return get(stack, "public", key)

    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(one, range(20)))
    assert [reply.status for reply in replies] == [200] * 20
    assert all(reply.body == body for reply in replies)
    assert stack.backend_requests("GET", f"/public/{key}") == 1


def test_the_first_client_of_a_miss_receives_bytes_while_s3_is_still_sending(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('streamed')}.bin"
    body = os.urandom(4 << 20)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    # 128 KiB every 0.1 s: about 3.2 s for the whole object.
    backend.add_rule(method="GET", path=f"/public/{key}", trickle=(128 << 10, 0.1))

    first_byte, total, received, status, headers = first_byte_timing(stack, f"/objects/public/{key}")
    assert status == 200 and received == body
    assert headers.get("x-cache") == "MISS"
    print(f"\n4 MiB miss trickled by S3: first byte after {first_byte * 1000:.0f} ms, last after {total * 1000:.0f} ms")
    assert total > 2.5, f"the trickle took only {total:.2f} s; the test proves nothing"
    assert first_byte < 1.0 and first_byte < total / 3, \
        f"first byte after {first_byte:.2f} s of {total:.2f} s: the miss was not streamed"

    _, seconds, hit = timed_get(stack, "public", key)
    assert hit.body == body
    assert_reported(hit, "HIT")
    assert seconds < 1.0


def test_a_client_that_leaves_mid_miss_does_not_waste_the_fetch(cached):
    """The leader's client goes away after the first bytes: the download goes on for the cache
    and for the requests waiting on it, and S3 is asked once."""
    stack, backend = cached.stack, cached.backend
    key = f"{unique('abandoned')}.bin"
    body = os.urandom(2 << 20)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    backend.add_rule(method="GET", path=f"/public/{key}", trickle=(128 << 10, 0.1))

    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    connection.request("GET", f"/objects/public/{key}")
    response = connection.getresponse()
    assert response.status == 200 and response.read(1000) == body[:1000]
    connection.close()
    time.sleep(0.2)

    reply = get(stack, "public", key)
    assert reply.status == 200 and reply.body == body
    assert reply.headers.get("x-cache") in ("MISS", "HIT"), reply.headers   # a collapsed follower, or a hit
    assert stack.backend_requests("GET", f"/public/{key}") == 1
    assert_reported(get(stack, "public", key), "HIT")


def test_no_backend_permit_is_left_behind(cached):
    """After everything above (refusals, waits, abandoned clients), every permit came back."""
    wait_for(lambda: stats(cached.stack)["backend_in_flight"] == 0, 5, "backend_in_flight to return to 0")
