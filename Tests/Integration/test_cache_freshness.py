"""Freshness, negative caching and stale-if-error, with TTLs short enough to watch expire.

moto answers ``If-None-Match`` with 304 (checked here through its request log), so
revalidation is tested against the real conditional GET, not assumed.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import pytest

from cache_support import assert_reported, get, start_cache_stack, stats_delta
from conftest import assert_json_error, raw_request, unique

TTL = 1.0
NEGATIVE_TTL = 2.0
GRACE = 3.0
READ_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def cached():
    c = start_cache_stack(slow_backend=True, threads=48, worker_env={
        "CACHE_TTL": str(int(TTL)), "NEGATIVE_TTL": str(int(NEGATIVE_TTL)), "STALE_IF_ERROR": str(int(GRACE)),
        "S3_READ_TIMEOUT": str(int(READ_TIMEOUT)), "S3_CONNECT_TIMEOUT": "1"})
    yield c
    c.stop()


def backend_gets(stack, bucket: str, key: str, status: int | None = None) -> int:
    return sum(1 for method, path, code in stack.backend_log()
               if method == "GET" and path == f"/{bucket}/{key}" and (status is None or code == status))


def cached_object(stack, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    """Puts ``body`` into moto directly and reads it once through the gateway (now cached)."""
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType=content_type)
    first = get(stack, "public", key)
    assert first.status == 200 and first.body == body
    assert_reported(first, "MISS")


# ---------------------------------------------------------------------------------------------
# negative caching


def test_a_404_is_remembered_for_the_negative_ttl(cached):
    stack = cached.stack
    key = f"{unique('absent')}.txt"
    first = get(stack, "public", key)
    assert_json_error(first, 404, "not_found")
    parameters = assert_reported(first, "MISS")
    assert parameters.get("fwd-status") == 404 and parameters.get("stored") is True
    assert backend_gets(stack, "public", key) == 1

    with stats_delta(stack) as delta:
        again = get(stack, "public", key)
        head = get(stack, "public", key, method="HEAD")
    assert_json_error(again, 404, "not_found")
    assert_reported(again, "HIT")
    assert_json_error(head, 404, head=True)
    assert_reported(head, "HIT")
    assert stack.backend_requests(path_prefix=f"/public/{key}") == 1, "a remembered 404 must not reach S3 (GET or HEAD)"
    assert delta["negative_hits"] == 2

    time.sleep(NEGATIVE_TTL + 0.2)
    assert_json_error(get(stack, "public", key), 404, "not_found")
    assert backend_gets(stack, "public", key) == 2, "after NEGATIVE_TTL the 404 must be asked again"


def test_a_remembered_404_is_forgotten_at_once_on_a_put(cached):
    stack = cached.stack
    key = f"{unique('created')}.txt"
    assert_json_error(get(stack, "local", key), 404, "not_found")
    assert_json_error(get(stack, "local", key), 404, "not_found")
    assert backend_gets(stack, "local", key) == 1

    put = raw_request(stack, "PUT", f"/objects/local/{key}", body=b"now it exists")
    assert put.status == 200
    reply = get(stack, "local", key)
    assert reply.status == 200 and reply.body == b"now it exists"
    assert_reported(reply, "MISS")


# ---------------------------------------------------------------------------------------------
# expiry and revalidation


def test_an_expired_entry_is_revalidated_with_a_conditional_get(cached):
    stack = cached.stack
    key = f"{unique('fresh')}.bin"
    body = os.urandom(50_000)
    cached_object(stack, key, body)
    hit = get(stack, "public", key)
    assert hit.body == body
    assert_reported(hit, "HIT")
    assert backend_gets(stack, "public", key) == 1

    time.sleep(TTL + 0.2)
    with stats_delta(stack) as delta:
        revalidated = get(stack, "public", key)
    assert revalidated.status == 200 and revalidated.body == body
    assert_reported(revalidated, "REVALIDATED")
    assert revalidated.headers["etag"] == hit.headers["etag"]
    assert backend_gets(stack, "public", key) == 2
    assert backend_gets(stack, "public", key, status=304) == 1, \
        "the revalidation must be a conditional GET that S3 answered with 304 (no body downloaded)"
    assert delta["revalidations"] == 1

    renewed = get(stack, "public", key)
    assert_reported(renewed, "HIT")
    assert renewed.body == body
    assert backend_gets(stack, "public", key) == 2


def test_an_object_changed_behind_the_gateway_is_replaced_after_expiry(cached):
    stack = cached.stack
    key = f"{unique('changed')}.txt"
    old, new = b"old contents\n" * 100, b"new contents, written around the gateway\n" * 100
    cached_object(stack, key, old, "text/plain")
    stack.boto3.put_object(Bucket="public", Key=key, Body=new, ContentType="text/plain")
    within_ttl = get(stack, "public", key)
    assert within_ttl.body == old, "within CACHE_TTL the cached copy is served (S3 is not asked)"
    assert_reported(within_ttl, "HIT")

    time.sleep(TTL + 0.2)
    replaced = get(stack, "public", key)
    assert replaced.status == 200 and replaced.body == new
    parameters = assert_reported(replaced, "MISS")
    assert parameters.get("fwd-status") == 200 and parameters.get("stored") is True
    assert backend_gets(stack, "public", key, status=200) == 2
    stored = get(stack, "public", key)
    assert stored.body == new and stored.headers["etag"] == replaced.headers["etag"]
    assert_reported(stored, "HIT")


def test_every_outcome_reports_the_same_facts_in_x_cache_and_cache_status(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('report')}.txt"
    body = b"report me\n" * 300
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="text/plain")
    assert_reported(get(stack, "public", key), "MISS")
    assert_reported(get(stack, "public", key), "HIT")
    bypass = get(stack, "public", f"{unique('uncached')}-{key}", headers={"Range": "bytes=0-9"})
    assert bypass.status == 404   # a range on a miss is S3's to cut: not cached, said so
    assert_reported(get(stack, "public", key, headers={"Range": "bytes=0-9"}), "HIT")
    time.sleep(TTL + 0.2)
    assert_reported(get(stack, "public", key), "REVALIDATED")
    time.sleep(TTL + 0.2)
    rule = backend.add_rule(method="GET", path=f"/public/{key}", fail_status=500)
    stale = get(stack, "public", key)
    backend.remove_rule(rule)
    assert stale.body == body
    assert_reported(stale, "STALE")
    stack.boto3.put_object(Bucket="public", Key=f"{key}.bypass", Body=body, ContentType="text/plain")
    ranged = get(stack, "public", f"{key}.bypass", headers={"Range": "bytes=0-9"})
    assert ranged.status == 206 and ranged.body == body[:10]
    assert_reported(ranged, "BYPASS")


# ---------------------------------------------------------------------------------------------
# stale if error


@contextmanager
def failing(backend, key: str, failure: str):
    """S3 fails for GETs of ``key`` inside the block: 503, a reset connection, no answer within
    S3_READ_TIMEOUT, or (``refused``) nothing listening at all."""
    if failure == "refused":
        backend.stop()
        try:
            yield
        finally:
            backend.start()
        return
    options = {"503": {"fail_status": 503}, "reset": {"reset": True}, "timeout": {"delay_request": READ_TIMEOUT + 3}}[failure]
    rule = backend.add_rule(method="GET", path=f"/public/{key}", **options)
    try:
        yield
    finally:
        backend.remove_rule(rule)


@pytest.mark.parametrize("failure", ["503", "reset", "timeout", "refused"])
def test_an_expired_copy_is_served_when_s3_fails(cached, failure):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('stale-' + failure)}.bin"
    body = os.urandom(20_000)
    cached_object(stack, key, body)
    time.sleep(TTL + 0.2)
    with stats_delta(stack) as delta:
        with failing(backend, key, failure):
            started = time.monotonic()
            reply = get(stack, "public", key)
            seconds = time.monotonic() - started
    assert reply.status == 200 and reply.body == body, (reply.status, reply.body[:200])
    parameters = assert_reported(reply, "STALE")
    assert parameters.get("detail") == "stale-if-error"
    assert delta["stale_serves"] == 1
    assert seconds < READ_TIMEOUT + 2, f"the stale answer took {seconds:.1f} s"


@pytest.mark.parametrize("failure,status,code", [
    ("503", 503, "backend_unavailable"), ("reset", 502, "bad_gateway"), ("timeout", 504, "gateway_timeout"),
    ("refused", 502, "bad_gateway")])
def test_without_a_copy_an_s3_failure_is_a_json_error(cached, failure, status, code):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('down-' + failure)}.bin"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"never fetched")
    with failing(backend, key, failure):
        reply = get(stack, "public", key)
    assert_json_error(reply, status, code)
    if status == 503:
        assert reply.headers.get("retry-after")
    # Failures are not cached: once S3 is back, the object is served.
    assert get(stack, "public", key).body == b"never fetched"


def test_past_the_grace_window_no_stale_copy_is_served(cached):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('too-old')}.bin"
    cached_object(stack, key, b"expired for too long")
    time.sleep(TTL + GRACE + 0.3)
    with failing(backend, key, "refused"):
        reply = get(stack, "public", key)
    assert_json_error(reply, 502, "bad_gateway")


@pytest.mark.parametrize("failure", ["503", "refused"])
@pytest.mark.parametrize("kind", ["range", "head"])
def test_ranges_and_heads_are_served_from_the_expired_copy_when_s3_fails(cached, failure, kind):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('stale-' + kind)}.bin"
    body = os.urandom(5_000)
    cached_object(stack, key, body)
    time.sleep(TTL + 0.2)
    rule = None
    if failure == "refused":
        backend.stop()
    else:
        rule = backend.add_rule(path=f"/public/{key}", fail_status=503)
    try:
        if kind == "range":
            reply = get(stack, "public", key, headers={"Range": "bytes=10-19"})
            assert reply.status == 206 and reply.body == body[10:20], (reply.status, reply.body[:200])
        else:
            reply = get(stack, "public", key, method="HEAD")
            assert reply.status == 200 and reply.headers["content-length"] == str(len(body)), reply.headers
    finally:
        if rule is not None:
            backend.remove_rule(rule)
        else:
            backend.start()
    assert assert_reported(reply, "STALE").get("detail") == "stale-if-error"


@pytest.mark.parametrize("failure,status", [("503", 503), ("refused", 502)])
def test_read_errors_carry_x_cache_and_cache_status(cached, failure, status):
    stack, backend = cached.stack, cached.backend
    key = f"{unique('report')}.bin"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"x")
    for headers, method, expected in [({}, "GET", "MISS"), ({"Range": "bytes=0-0"}, "GET", "BYPASS"),
                                      ({}, "HEAD", "MISS")]:
        with failing(backend, key, failure) if method == "GET" else _failing_head(backend, key, failure):
            reply = get(stack, "public", key, headers=headers, method=method)
        assert reply.status == status, (method, headers, reply.status)
        assert reply.headers.get("x-cache") == expected, (method, headers, reply.headers)
        assert reply.headers.get("cache-status", "").startswith("s3cache; fwd="), reply.headers


@contextmanager
def _failing_head(backend, key: str, failure: str):
    if failure == "refused":
        with failing(backend, key, failure):
            yield
        return
    rule = backend.add_rule(method="HEAD", path=f"/public/{key}", fail_status=503)
    try:
        yield
    finally:
        backend.remove_rule(rule)


def test_a_metadata_change_in_place_is_picked_up_on_revalidation(cached):
    """A copy in place changes Content-Type and Cache-Control and keeps the bytes (and the entity
    tag): S3 answers the revalidation with 304, whose metadata replaces the stored headers."""
    stack = cached.stack
    key = f"{unique('meta')}.bin"
    body = os.urandom(3_000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="application/octet-stream",
                           CacheControl="max-age=1")
    assert get(stack, "public", key).headers["content-type"] == "application/octet-stream"
    time.sleep(1.1)   # Last-Modified has one-second resolution
    stack.boto3.copy_object(Bucket="public", Key=key, CopySource={"Bucket": "public", "Key": key},
                            MetadataDirective="REPLACE", ContentType="image/png", CacheControl="no-cache")
    time.sleep(TTL + 0.2)
    reply = get(stack, "public", key)
    assert reply.body == body
    assert_reported(reply, "REVALIDATED")
    assert reply.headers["content-type"] == "image/png", reply.headers
    assert reply.headers.get("cache-control") == "no-cache", reply.headers
    # no-cache now: every read revalidates, with the new metadata.
    again = get(stack, "public", key)
    assert_reported(again, "REVALIDATED")
    assert again.headers["content-type"] == "image/png" and again.headers.get("cache-control") == "no-cache"
    assert get(stack, "public", key, method="HEAD").headers["content-type"] == "image/png"
