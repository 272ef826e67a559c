"""Single flight: however many requests miss on one key at the same time, S3 sees one GET;
requests for other keys never wait for it.

The slow backend holds moto's answer for a while, so the concurrent requests really overlap
(checked, not assumed: every request starts before the first one ends)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from cache_support import assert_reported, cache_status, concurrent_gets, get, start_cache_stack, timed_get, wait_for
from conftest import assert_json_error, unique

CLIENTS = 50
HOLD = 1.0


@pytest.fixture(scope="module")
def cached():
    # Enough threads and backend permits for every client: followers hold a permit while they
    # wait (they hold a thread while S3 works), and here none of them may be turned away.
    c = start_cache_stack(slow_backend=True, threads=CLIENTS + 40, worker_env={"BACKEND_CONCURRENCY": str(CLIENTS + 10)})
    yield c
    c.stop()


def stampede(stack, bucket: str, key: str, clients: int = CLIENTS):
    results = concurrent_gets(stack, bucket, key, clients)
    starts = [started for started, _, _ in results]
    ends = [started + seconds for started, seconds, _ in results]
    assert max(starts) < min(ends), "the requests did not overlap; the test proves nothing"
    return [reply for _, _, reply in results]


def test_concurrent_misses_of_one_key_make_one_backend_get(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('stampede')}.bin"
    body = os.urandom(300_000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    backend.add_rule(method="GET", path=f"/public/{key}", delay_response=HOLD)

    replies = stampede(stack, "public", key)

    assert [reply.status for reply in replies] == [200] * CLIENTS
    assert all(reply.body == body for reply in replies), "every client must get the object's exact bytes"
    assert stack.backend_requests("GET", f"/public/{key}") == 1
    assert backend.requests_seen("GET", f"/public/{key}") == 1
    leaders = [reply for reply in replies if not cache_status(reply)[1].get("collapsed")]
    assert len(leaders) == 1, [reply.headers.get("cache-status") for reply in leaders]
    assert_reported(leaders[0], "MISS")
    for reply in replies:
        assert_reported(reply, "MISS")
        assert reply.headers["etag"] == leaders[0].headers["etag"]

    after = get(stack, "public", key)
    assert after.body == body
    assert_reported(after, "HIT")
    assert stack.backend_requests("GET", f"/public/{key}") == 1


def test_concurrent_misses_of_a_missing_key_make_one_backend_get(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('absent')}.txt"
    backend.add_rule(method="GET", path=f"/public/{key}", delay_response=HOLD)

    replies = stampede(stack, "public", key, clients=20)

    for reply in replies:
        assert_json_error(reply, 404, "not_found")
    assert stack.backend_requests("GET", f"/public/{key}") == 1


def test_a_slow_key_does_not_delay_another_keys_miss(cached):
    stack, backend = cached.stack, cached.backend
    slow_key, fast_key = f"{unique('slow')}.bin", f"{unique('fast')}.bin"
    stack.boto3.put_object(Bucket="public", Key=slow_key, Body=b"slow" * 1000)
    stack.boto3.put_object(Bucket="public", Key=fast_key, Body=b"fast" * 1000)
    backend.add_rule(method="GET", path=f"/public/{slow_key}", delay_request=3.0)

    slow: dict[str, object] = {}
    leader = threading.Thread(target=lambda: slow.update(result=timed_get(stack, "public", slow_key)))
    leader.start()
    wait_for(lambda: backend.requests_seen("GET", f"/public/{slow_key}") == 1, 5, "the slow key's fetch to start")
    # A follower of the slow key, so both a leader and a waiter are parked on it.
    follower = threading.Thread(target=lambda: slow.update(follower=timed_get(stack, "public", slow_key)))
    follower.start()
    time.sleep(0.2)

    _, seconds, reply = timed_get(stack, "public", fast_key)
    assert reply.status == 200 and reply.body == b"fast" * 1000
    assert_reported(reply, "MISS")
    assert seconds < 1.0, f"a miss on another key took {seconds:.2f} s while the slow key was being fetched"
    assert leader.is_alive(), "the slow fetch ended before the fast one was measured; the test proves nothing"

    leader.join(30)
    follower.join(30)
    assert slow["result"][2].body == b"slow" * 1000 and slow["result"][1] >= 3.0
    assert slow["follower"][2].body == b"slow" * 1000
    assert stack.backend_requests("GET", f"/public/{slow_key}") == 1


@pytest.fixture(scope="module")
def short_timeouts():
    """S3 timeouts of 1 s (connect) and 2 s (read): a follower used to give up after
    connect + 2 × read = 5 s whatever its leader was doing."""
    c = start_cache_stack(slow_backend=True, threads=16, worker_env={
        "S3_CONNECT_TIMEOUT": "1", "S3_READ_TIMEOUT": "2", "BACKEND_CONCURRENCY": "8"})
    yield c
    c.stop()


def test_followers_wait_for_a_slow_download_that_keeps_moving(short_timeouts):
    stack, backend = short_timeouts.stack, short_timeouts.backend
    key = f"{unique('trickle')}.bin"
    body = os.urandom(20_000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    # 20 pieces of 1000 bytes, 0.475 s apart: 9.5 s in all, never 2 s without a byte.
    backend.add_rule(method="GET", path=f"/public/{key}", trickle=(1000, 0.475), times=1)
    started = time.monotonic()
    replies = stampede(stack, "public", key, clients=3)
    assert time.monotonic() - started > 8, "the download was not slow: the test proves nothing"
    for reply in replies:
        assert reply.status == 200, (reply.status, reply.body[:200])
        assert reply.body == body
    assert backend.requests_seen("GET", f"/public/{key}") == 1
