"""HTTP semantics on cache hits and on misses: single ranges (206/416), If-Range,
If-None-Match / If-Modified-Since (304), If-Match (412), HEAD from memory.

Each case runs twice: ``miss`` on a key the cache has never seen (the leader's path, or S3
cutting the range), ``hit`` after a plain GET stored the object. Runs on the shared stack.
"""

from __future__ import annotations

import email.utils
import os
from datetime import timezone

import pytest

from cache_support import assert_reported, get, stats_delta, x_cache
from conftest import assert_json_error, no_backend_requests, unique

SIZE = 10_000
RANGES = [("bytes=0-99", 0, 99), ("bytes=-100", SIZE - 100, SIZE - 1), ("bytes=100-", 100, SIZE - 1),
          ("bytes=9990-20000", 9990, SIZE - 1)]


@pytest.fixture(params=["miss", "hit"])
def state(request):
    return request.param


def object_in(stack, state: str, body: bytes | None = None, content_type: str = "application/octet-stream"):
    """A fresh key holding ``body`` in moto; with state ``hit`` also stored in the cache."""
    key = f"{unique('http')}.bin"
    body = body if body is not None else os.urandom(SIZE)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType=content_type)
    if state == "hit":
        assert get(stack, "public", key).body == body
    return key, body


def expect_outcome(reply, state: str, miss_outcomes=("MISS", "BYPASS")) -> None:
    if state == "hit":
        assert_reported(reply, "HIT")
    else:
        assert x_cache(reply) in miss_outcomes, reply.headers


@pytest.mark.parametrize("header,start,end", RANGES)
def test_single_ranges_are_206_with_the_exact_bytes(stack, state, header, start, end):
    key, body = object_in(stack, state)
    reply = get(stack, "public", key, headers={"Range": header})
    assert reply.status == 206, (reply.status, reply.body[:200])
    assert reply.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert int(reply.headers["content-length"]) == end - start + 1
    assert reply.body == body[start:end + 1]
    expect_outcome(reply, state)


@pytest.mark.parametrize("header", ["bytes=10000-", "bytes=20000-30000"])
def test_an_unsatisfiable_range_is_416_with_the_length(stack, state, header):
    key, _ = object_in(stack, state)
    reply = get(stack, "public", key, headers={"Range": header})
    assert_json_error(reply, 416, "range_not_satisfiable")
    assert reply.headers.get("content-range") == f"bytes */{SIZE}", reply.headers


def test_if_range_with_the_current_validator_gets_the_range_else_everything(stack, state):
    key, body = object_in(stack, state)
    etag = stack.boto3.head_object(Bucket="public", Key=key)["ETag"]
    last_modified = get(stack, "public", key, method="HEAD").headers["last-modified"]
    ranged = get(stack, "public", key, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert ranged.status == 206 and ranged.body == body[:10]
    # A date validator: a hit compares it with what it holds; on a miss S3 (which ignores
    # If-Range) cannot be trusted with it, so the whole object is the safe, allowed answer.
    dated = get(stack, "public", key, headers={"Range": "bytes=0-9", "If-Range": last_modified})
    if state == "hit":
        assert dated.status == 206 and dated.body == body[:10]
    else:
        assert dated.status == 200 and dated.body == body
    for validator in ('"outdated"', "W/" + etag, "Wed, 01 Jan 2020 00:00:00 GMT"):
        whole = get(stack, "public", key, headers={"Range": "bytes=0-9", "If-Range": validator})
        assert whole.status == 200 and whole.body == body, validator


def test_if_none_match_is_304(stack, state):
    key, body = object_in(stack, state)
    etag = stack.boto3.head_object(Bucket="public", Key=key)["ETag"]
    for value in (etag, "*", f'"other", {etag}'):
        reply = get(stack, "public", key, headers={"If-None-Match": value})
        assert reply.status == 304 and reply.body == b"", value
        assert reply.headers["etag"] == etag
        expect_outcome(reply, state if value == etag else "hit")
    assert get(stack, "public", key, headers={"If-None-Match": '"other"'}).body == body


def test_if_modified_since_is_304_unless_modified(stack, state):
    key, body = object_in(stack, state)
    last_modified = stack.boto3.head_object(Bucket="public", Key=key)["LastModified"].astimezone(timezone.utc)
    current = email.utils.format_datetime(last_modified, usegmt=True)
    earlier = email.utils.format_datetime(last_modified.replace(year=last_modified.year - 1), usegmt=True)
    reply = get(stack, "public", key, headers={"If-Modified-Since": current})
    assert reply.status == 304 and reply.body == b""
    expect_outcome(reply, state)
    changed = get(stack, "public", key, headers={"If-Modified-Since": earlier})
    assert changed.status == 200 and changed.body == body
    # If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
    overruled = get(stack, "public", key, headers={"If-None-Match": '"other"', "If-Modified-Since": current})
    assert overruled.status == 200 and overruled.body == body


def test_a_conditional_miss_still_stores_the_object(stack):
    key, body = object_in(stack, "miss")
    etag = stack.boto3.head_object(Bucket="public", Key=key)["ETag"]
    assert get(stack, "public", key, headers={"If-None-Match": etag}).status == 304
    with no_backend_requests(stack):
        reply = get(stack, "public", key)
    assert reply.body == body
    assert_reported(reply, "HIT")


def test_if_match_that_fails_is_412(stack, state):
    key, body = object_in(stack, state)
    assert_json_error(get(stack, "public", key, headers={"If-Match": '"other"'}), 412, "precondition_failed")
    etag = stack.boto3.head_object(Bucket="public", Key=key)["ETag"]
    assert get(stack, "public", key, headers={"If-Match": etag}).body == body


def test_head_from_the_cache_makes_no_backend_request_and_matches_get(stack):
    key, body = object_in(stack, "hit", content_type="text/plain")
    with no_backend_requests(stack):
        get_reply = get(stack, "public", key)
        head = get(stack, "public", key, method="HEAD")
        ranged = get(stack, "public", key, method="HEAD", headers={"Range": "bytes=0-99"})
    assert head.status == 200 and head.body == b""
    assert_reported(head, "HIT")
    for name in ("content-type", "content-length", "etag", "last-modified", "vary", "accept-ranges"):
        assert head.headers.get(name) == get_reply.headers.get(name), name
    assert ranged.status == 206 and ranged.body == b"" and ranged.headers["content-length"] == "100"


def test_head_on_a_miss_asks_s3_and_answers_like_get(stack):
    key, body = object_in(stack, "miss")
    before = stack.backend_requests("HEAD", f"/public/{key}")
    head = get(stack, "public", key, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == len(body)
    assert stack.backend_requests("HEAD", f"/public/{key}") == before + 1
    assert_reported(head, "MISS")
    full = get(stack, "public", key)
    for name in ("content-type", "content-length", "etag", "last-modified"):
        assert head.headers.get(name) == full.headers.get(name), name


@pytest.mark.parametrize("size", [20 * 1024, 64 * 1024, 1024 * 1024])
def test_a_miss_is_stored_before_its_response_completes(stack, size):
    """Once a client has the whole response of a miss, the cache holds the object: the worker
    holds back the end of the response until the fill is stored. (Large bodies bypass
    libfcgi's buffer; without the hold-back the last byte could reach the client first, and a
    /stats or a second GET right after it would not see the object yet. A compressible type of
    random bytes widens that window: the worker tries gzip on it after the last byte.)"""
    for _ in range(10):
        key = f"{unique('ordered')}.bin"
        body = os.urandom(size)
        stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="text/plain")
        with stats_delta(stack) as delta:
            first = get(stack, "public", key)
        assert x_cache(first) == "MISS" and first.body == body
        assert delta["original_bytes"] == size, delta
