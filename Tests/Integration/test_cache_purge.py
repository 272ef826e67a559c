"""PURGE through nginx: one key, a prefix, a bucket; hard (drop) and soft (expire, revalidate).

What happened is read in moto's request log: a hard purge is followed by a full GET (200), a
soft one by a conditional GET that moto answers 304.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from cache_support import assert_reported, get, start_cache_stack, stats, wait_for
from conftest import assert_json_error, raw_request, unique


@pytest.fixture(scope="module")
def cached():
    # A long TTL: everything that expires here was purged.
    c = start_cache_stack(slow_backend=True, worker_env={"CACHE_TTL": "600"})
    yield c
    c.stop()


def moto_gets(stack, bucket: str, key: str, status: int | None = None) -> int:
    return sum(1 for method, path, code in stack.backend_log()
               if method == "GET" and path == f"/{bucket}/{key}" and (status is None or code == status))


def cache(stack, key: str, body: bytes, bucket: str = "private") -> None:
    stack.boto3.put_object(Bucket=bucket, Key=key, Body=body)
    assert_reported(get(stack, bucket, key), "MISS")
    assert_reported(get(stack, bucket, key), "HIT")


def purge(stack, target: str, mode: str | None = None) -> dict:
    reply = raw_request(stack, "PURGE", target, headers={"Purge-Mode": mode} if mode else None)
    assert reply.status == 200, (reply.status, reply.body)
    assert reply.content_type == "application/json"
    return reply.json()


def test_a_hard_purge_drops_one_key_and_the_next_read_downloads_it(cached):
    stack = cached.stack
    key = f"{unique('hard')}.bin"
    cache(stack, key, b"v1" * 100)
    assert purge(stack, f"/objects/private/{key}") == {"bucket": "private", "key": key, "mode": "hard", "purged": 1}
    assert purge(stack, f"/objects/private/{key}")["purged"] == 0, "purging again finds nothing"
    before = moto_gets(stack, "private", key, 200)
    reply = get(stack, "private", key)
    assert reply.body == b"v1" * 100
    assert_reported(reply, "MISS")
    assert moto_gets(stack, "private", key, 200) == before + 1
    assert moto_gets(stack, "private", key, 304) == 0


def test_a_soft_purge_costs_a_304_not_a_download(cached):
    stack = cached.stack
    key = f"{unique('soft')}.bin"
    body = os.urandom(5000)
    cache(stack, key, body)
    assert purge(stack, f"/objects/private/{key}", mode="soft")["purged"] == 1
    downloads = moto_gets(stack, "private", key, 200)
    reply = get(stack, "private", key)
    assert reply.body == body
    assert_reported(reply, "REVALIDATED")
    assert moto_gets(stack, "private", key, 304) == 1
    assert moto_gets(stack, "private", key, 200) == downloads, "an unchanged object is not downloaded again"
    assert_reported(get(stack, "private", key), "HIT")


def test_a_soft_purge_of_a_changed_object_fetches_the_new_version(cached):
    stack = cached.stack
    key = f"{unique('soft-new')}.txt"
    cache(stack, key, b"old")
    stack.boto3.put_object(Bucket="private", Key=key, Body=b"new")
    assert_reported(get(stack, "private", key), "HIT")   # S3 changed behind our back
    purge(stack, f"/objects/private/{key}", mode="soft")
    reply = get(stack, "private", key)
    assert reply.body == b"new"
    assert_reported(reply, "MISS")


def test_a_soft_purged_copy_still_answers_when_s3_fails(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('soft-error')}.bin"
    cache(stack, key, b"kept for errors")
    purge(stack, f"/objects/private/{key}", mode="soft")
    rule = backend.add_rule(method="GET", path=f"/private/{key}", fail_status=503)
    try:
        reply = get(stack, "private", key)
    finally:
        backend.remove_rule(rule)
    assert reply.status == 200 and reply.body == b"kept for errors"
    assert_reported(reply, "STALE")


def test_a_prefix_purge_takes_exactly_the_keys_with_that_prefix(cached):
    stack = cached.stack
    base = unique("prefix")
    inside = [f"{base}/a/1", f"{base}/a/2", f"{base}/a/deep/3"]
    outside = [f"{base}/ab", f"{base}/b/1", f"{base}/A/1"]
    for key in inside + outside:
        cache(stack, key, key.encode())
    assert purge(stack, f"/objects/private/{base}/a/*") == {
        "bucket": "private", "prefix": f"{base}/a/", "mode": "hard", "purged": len(inside)}
    for key in inside:
        assert_reported(get(stack, "private", key), "MISS")
    for key in outside:
        assert_reported(get(stack, "private", key), "HIT")


def test_a_bucket_purge_takes_the_whole_bucket_and_no_other(cached):
    stack = cached.stack
    key = unique("bucket")
    cache(stack, key, b"in local", bucket="local")
    cache(stack, key, b"in private", bucket="private")
    result = purge(stack, "/objects/local/*", mode="soft")
    assert result["prefix"] == "" and result["purged"] >= 1
    assert_reported(get(stack, "local", key), "REVALIDATED")
    assert_reported(get(stack, "private", key), "HIT")


def test_an_escaped_star_is_part_of_the_key_not_a_wildcard(cached):
    stack = cached.stack
    base = unique("star")
    cache(stack, f"{base}*", b"literal star")
    cache(stack, f"{base}*x", b"longer key")
    assert purge(stack, f"/objects/private/{base}%2A") == {"bucket": "private", "key": f"{base}*", "mode": "hard", "purged": 1}
    assert_reported(get(stack, "private", f"{base}*x"), "HIT")


def test_purge_needs_write_access_and_a_known_mode(cached):
    stack = cached.stack
    key = unique("ro")
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"read only")
    get(stack, "public", key)
    assert_json_error(raw_request(stack, "PURGE", f"/objects/public/{key}"), 403, "forbidden")
    assert_json_error(raw_request(stack, "PURGE", "/objects/nope/x"), 403, "forbidden")
    assert_json_error(raw_request(stack, "PURGE", f"/objects/private/{key}", headers={"Purge-Mode": "later"}), 400)
    assert_json_error(raw_request(stack, "PURGE", "/objects/private/a/../b"), 400, "invalid_object")
    assert_reported(get(stack, "public", key), "HIT")


def test_a_purge_supersedes_a_fill_in_flight(cached):
    """The old body is being read from S3 when the object changes and a prefix purge comes: the
    fill must not land afterwards, so the next read gets the new body."""
    stack, backend = cached.stack, cached.backend
    base = unique("race")
    key = f"{base}/obj.bin"
    old, new = b"o" * 20_000, b"n" * 20_000
    stack.boto3.put_object(Bucket="private", Key=key, Body=old)
    rule = backend.add_rule(method="GET", path=f"/private/{key}", delay_response=1.5, times=1)
    results = {}
    reader = threading.Thread(target=lambda: results.setdefault("first", get(stack, "private", key)))
    reader.start()
    try:
        wait_for(lambda: rule.matched >= 1, 10, "the leader's GET to reach S3")
        time.sleep(0.2)   # moto has read the old body; its answer is held
        stack.boto3.put_object(Bucket="private", Key=key, Body=new)
        assert purge(stack, f"/objects/private/{base}/*")["purged"] == 0
    finally:
        reader.join(30)
        backend.remove_rule(rule)
    assert results["first"].body == old
    reply = get(stack, "private", key)
    assert reply.body == new, "the fill read before the purge was stored after it"
    assert_reported(reply, "MISS")


def test_purges_are_counted_by_mode(cached):
    stack = cached.stack
    before = stats(stack)
    key = unique("count")
    cache(stack, key, b"x")
    purge(stack, f"/objects/private/{key}", mode="soft")
    purge(stack, f"/objects/private/{key}")
    after = stats(stack)
    assert after["purges"]["soft"] == before["purges"]["soft"] + 1
    assert after["purges"]["hard"] == before["purges"]["hard"] + 1
    assert after["purged_entries"] == before["purged_entries"] + 2
    metrics = raw_request(stack, "GET", "/metrics").body.decode()
    assert 's3cache_purges_total{mode="soft"}' in metrics and 's3cache_purges_total{mode="hard"}' in metrics
    assert 's3cache_requests_total{method="PURGE",status="200",bucket="private"}' in metrics
