"""Never stale after a write: once a client has the 200 of a PUT (or the 204 of a DELETE)
through the gateway, no GET that starts afterwards sees an older version.

The hard case is a fetch that read the old version from S3 before the write and finishes
after it: the slow backend makes that happen on purpose (it lets moto answer, then holds the
answer), and the cache must neither insert that old body nor let new requests join that fetch.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass

import pytest

from cache_support import assert_reported, get, start_cache_stack, wait_for, x_cache
from conftest import assert_json_error, raw_request, unique

BUCKET = "local"


@pytest.fixture(scope="module")
def cached():
    c = start_cache_stack(slow_backend=True, threads=64, worker_env={"CACHE_TTL": "2", "BACKEND_CONCURRENCY": "40"})
    yield c
    c.stop()


@dataclass
class Version:
    number: int
    body: bytes
    etag: str
    acknowledged_at: float   # monotonic time the client had the PUT's 200


def put(stack, key: str, number: int) -> Version:
    body = f"version {number} of {key}\n".encode() * 50 + os.urandom(16)
    reply = raw_request(stack, "PUT", f"/objects/{BUCKET}/{key}", body=body, headers={"Content-Type": "text/plain"})
    acknowledged = time.monotonic()
    assert reply.status == 200, reply.body
    return Version(number, body, reply.headers["etag"], acknowledged)


def race(stack, key: str, writes: int, readers: int = 6, gap: tuple[float, float] = (0.0, 0.08)):
    """PUTs ``writes`` versions in order while ``readers`` threads GET the key in a loop.
    Returns (versions, reads) with reads as (started, status, etag, body)."""
    versions = [put(stack, key, 0)]
    reads: list[tuple[float, int, str, bytes]] = []
    lock = threading.Lock()
    done = threading.Event()
    failures: list[BaseException] = []

    def reader():
        try:
            while not done.is_set():
                started = time.monotonic()
                reply = get(stack, BUCKET, key)
                with lock:
                    reads.append((started, reply.status, reply.headers.get("etag", ""), reply.body))
        except BaseException as error:   # surfaced below, not lost in a thread
            failures.append(error)

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads:
        thread.start()
    try:
        for number in range(1, writes + 1):
            time.sleep(random.uniform(*gap))
            versions.append(put(stack, key, number))
        time.sleep(0.3)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures
    return versions, reads


def check_never_stale(versions: list[Version], reads) -> int:
    """Every read that started after a PUT's 200 saw that version or a later one, byte-exact.
    Returns how many reads were constrained by some PUT (so a caller can see the test bit)."""
    by_etag = {version.etag: version for version in versions}
    assert len(by_etag) == len(versions), "two versions share an ETag; the check would be blind"
    constrained = 0
    for started, status, etag, body in reads:
        assert status == 200, (status, body[:200])
        seen = by_etag.get(etag)
        assert seen is not None, f"unknown ETag {etag!r}"
        assert body == seen.body, f"body does not match ETag {etag} (version {seen.number})"
        newest_acknowledged = max((v for v in versions if v.acknowledged_at < started), key=lambda v: v.number, default=None)
        if newest_acknowledged is not None and newest_acknowledged.number > 0:
            constrained += 1
            assert seen.number >= newest_acknowledged.number, (
                f"a GET that started {started - newest_acknowledged.acknowledged_at:.3f} s after the 200 of version "
                f"{newest_acknowledged.number} was answered with version {seen.number}")
    return constrained


def test_gets_racing_puts_never_see_an_acknowledged_version_replaced(cached):
    stack = cached.stack
    key = f"{unique('race')}.txt"
    versions, reads = race(stack, key, writes=20)
    constrained = check_never_stale(versions, reads)
    assert constrained > 100, f"only {constrained} reads started after a write; too few to mean anything"
    hits = sum(1 for read in reads if read[1] == 200)
    assert hits == len(reads)


def test_gets_racing_puts_with_fetches_in_flight_across_each_write(cached):
    """Every backend GET of the key is held 0.25 s after moto answered, so most writes land
    while a fetch of the previous version is still on its way: the superseded-flight path."""
    stack, backend = cached.stack, cached.backend
    key = f"{unique('race-slow')}.txt"
    backend.add_rule(method="GET", path=f"/{BUCKET}/{key}", delay_response=0.25)
    versions, reads = race(stack, key, writes=12, readers=10, gap=(0.05, 0.2))
    constrained = check_never_stale(versions, reads)
    assert constrained > 30, f"only {constrained} reads started after a write"
    # Writes did land while a fetch was held (moto had answered with the previous version).
    fetches = backend.request_times("GET", f"/{BUCKET}/{key}")
    overlapping = [v for v in versions[1:] if any(start < v.acknowledged_at < start + 0.25 for start in fetches)]
    assert len(overlapping) >= 3, f"only {len(overlapping)} writes landed during a fetch; the race was not exercised"


def test_a_fetch_that_read_the_old_version_before_a_put_never_inserts_it(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('superseded')}.txt"
    old = put(stack, key, 1)
    # The next backend GET of the key: moto answers with version 1 at once, the answer is held.
    backend.add_rule(method="GET", path=f"/{BUCKET}/{key}", delay_response=1.5, times=1)
    held: dict[str, object] = {}
    reader = threading.Thread(target=lambda: held.update(reply=get(stack, BUCKET, key)))
    reader.start()
    wait_for(lambda: backend.requests_seen("GET", f"/{BUCKET}/{key}") >= 1, 5, "the held fetch to reach S3")
    time.sleep(0.1)   # moto has answered it (with version 1) by now

    new = put(stack, key, 2)
    during = get(stack, BUCKET, key)
    assert reader.is_alive(), "the held fetch finished before the write; the race was not set up"
    assert during.body == new.body, "a GET after the PUT's 200 joined the fetch of the old version"
    assert during.headers["etag"] == new.etag

    reader.join(10)
    assert held["reply"].body == old.body, "the held fetch should have read version 1 (it started before the write)"
    for _ in range(3):
        after = get(stack, BUCKET, key)
        assert after.headers["etag"] == new.etag and after.body == new.body, \
            f"the superseded fetch inserted version 1 after the write ({x_cache(after)})"


def test_a_revalidation_in_flight_across_a_put_does_not_renew_the_old_entry(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('revalidation')}.txt"
    old = put(stack, key, 1)
    assert get(stack, BUCKET, key).body == old.body
    assert_reported(get(stack, BUCKET, key), "HIT")
    time.sleep(2.2)   # CACHE_TTL=2: expired, within the stale grace
    # moto answers the conditional GET with 304 (version 1 is current), the answer is held.
    backend.add_rule(method="GET", path=f"/{BUCKET}/{key}", delay_response=1.5, times=1)
    held: dict[str, object] = {}
    reader = threading.Thread(target=lambda: held.update(reply=get(stack, BUCKET, key)))
    reader.start()
    wait_for(lambda: backend.requests_seen("GET", f"/{BUCKET}/{key}") >= 2, 5, "the revalidation to reach S3")
    time.sleep(0.1)
    new = put(stack, key, 2)
    reader.join(10)
    assert_reported(held["reply"], "REVALIDATED")
    assert held["reply"].body == old.body
    after = get(stack, BUCKET, key)
    assert after.body == new.body, f"the old entry was renewed after the write ({x_cache(after)})"


def test_delete_then_get_is_404_also_with_a_fetch_in_flight(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('deleted')}.txt"
    version = put(stack, key, 1)
    assert get(stack, BUCKET, key).body == version.body
    assert_reported(get(stack, BUCKET, key), "HIT")

    assert raw_request(stack, "DELETE", f"/objects/{BUCKET}/{key}").status == 204
    assert_json_error(get(stack, BUCKET, key), 404, "not_found")

    # Again, with a fetch of the object held across the DELETE.
    version = put(stack, key, 2)
    backend.add_rule(method="GET", path=f"/{BUCKET}/{key}", delay_response=1.5, times=1)
    held: dict[str, object] = {}
    seen_before = backend.requests_seen("GET", f"/{BUCKET}/{key}")
    reader = threading.Thread(target=lambda: held.update(reply=get(stack, BUCKET, key)))
    reader.start()
    wait_for(lambda: backend.requests_seen("GET", f"/{BUCKET}/{key}") > seen_before, 5, "the held fetch")
    time.sleep(0.1)
    assert raw_request(stack, "DELETE", f"/objects/{BUCKET}/{key}").status == 204
    assert_json_error(get(stack, BUCKET, key), 404, "not_found")
    reader.join(10)
    assert held["reply"].body == version.body
    assert_json_error(get(stack, BUCKET, key), 404, "not_found")
