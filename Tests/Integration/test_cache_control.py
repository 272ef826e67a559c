"""S3's Cache-Control and Expires decide freshness; stale-while-revalidate answers at once.

The objects carry their metadata in moto (set with boto3's put_object), and moto's request log
shows what the gateway asked: a 200 GET is a download, a 304 GET a revalidation.
"""

from __future__ import annotations

import email.utils
import os
import time

import pytest

from cache_support import assert_reported, cache_status, concurrent_gets, get, start_cache_stack, stats_delta, x_cache
from conftest import unique

TTL = 2
TTL_MAX = 4
SWR = 3


@pytest.fixture(scope="module")
def cached():
    c = start_cache_stack(slow_backend=True, threads=16, worker_env={
        "CACHE_TTL": str(TTL), "CACHE_TTL_MAX": str(TTL_MAX), "CACHE_SWR": str(SWR), "STALE_IF_ERROR": "60"})
    yield c
    c.stop()


def moto_gets(stack, key: str, status: int | None = None) -> int:
    return sum(1 for method, path, code in stack.backend_log()
               if method == "GET" and path == f"/public/{key}" and (status is None or code == status))


def put(stack, key: str, body: bytes = b"x" * 3000, **metadata) -> bytes:
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, **metadata)
    return body


def test_no_store_is_never_cached_and_reaches_the_client(cached):
    stack = cached.stack
    key = unique("no-store")
    body = put(stack, key, CacheControl="no-store")
    for _ in range(2):
        reply = get(stack, "public", key)
        assert reply.body == body and reply.headers["cache-control"] == "no-store"
        assert cache_status(reply)[1].get("detail") == "no-store"
        assert_reported(reply, "BYPASS")
    assert moto_gets(stack, key, 200) == 2


def test_private_is_not_kept_by_a_shared_cache(cached):
    stack = cached.stack
    key = unique("private")
    put(stack, key, CacheControl="private, max-age=600")
    assert_reported(get(stack, "public", key), "BYPASS")
    assert_reported(get(stack, "public", key), "BYPASS")


def test_no_cache_revalidates_on_every_read(cached):
    stack = cached.stack
    key = unique("no-cache")
    body = put(stack, key, CacheControl="no-cache")
    assert_reported(get(stack, "public", key), "MISS")
    for _ in range(2):
        reply = get(stack, "public", key)
        assert reply.body == body and reply.headers["cache-control"] == "no-cache"
        assert_reported(reply, "REVALIDATED")
    assert moto_gets(stack, key, 304) == 2 and moto_gets(stack, key, 200) == 1


def test_max_age_overrides_cache_ttl_both_ways(cached):
    stack = cached.stack
    short, long = unique("max-age-1"), unique("max-age-3")
    put(stack, short, CacheControl="max-age=1")
    put(stack, long, CacheControl="public, max-age=3")
    get(stack, "public", short)
    get(stack, "public", long)
    time.sleep(1.3)
    assert_reported(get(stack, "public", short), "REVALIDATED")   # before CACHE_TTL (2 s) ends
    time.sleep(1.0)
    parameters = assert_reported(get(stack, "public", long), "HIT")   # after CACHE_TTL, within max-age
    assert parameters["ttl"] <= 1


def test_s_maxage_wins_and_cache_ttl_max_caps(cached):
    stack = cached.stack
    shared, capped = unique("s-maxage"), unique("capped")
    put(stack, shared, CacheControl="max-age=1, s-maxage=600")
    put(stack, capped, CacheControl="max-age=86400")
    get(stack, "public", shared)
    reply = get(stack, "public", capped)
    reply = get(stack, "public", capped)
    assert assert_reported(reply, "HIT")["ttl"] <= TTL_MAX
    time.sleep(1.3)
    assert_reported(get(stack, "public", shared), "HIT")
    time.sleep(TTL_MAX - 1.3 + 0.3)
    assert_reported(get(stack, "public", capped), "REVALIDATED")


def test_expires_counts_without_max_age(cached):
    stack = cached.stack
    key, past = unique("expires"), unique("expired")
    put(stack, key, Expires=email.utils.formatdate(time.time() + 3.5, usegmt=True))
    put(stack, past, Expires=email.utils.formatdate(time.time() - 60, usegmt=True))
    get(stack, "public", key)
    get(stack, "public", past)
    assert_reported(get(stack, "public", past), "REVALIDATED")
    time.sleep(TTL + 0.3)
    assert_reported(get(stack, "public", key), "HIT")
    assert get(stack, "public", key).headers.get("expires")


def test_stale_while_revalidate_answers_49_of_50_at_once_with_one_conditional_request(cached):
    stack, backend = cached.stack, cached.backend
    key = unique("swr")
    body = put(stack, key, os.urandom(4000))
    assert_reported(get(stack, "public", key), "MISS")
    time.sleep(TTL + 0.2)
    # The revalidation takes a second: everyone else arrives while it is under way.
    rule = backend.add_rule(method="GET", path=f"/public/{key}", delay_request=1.0)
    try:
        with stats_delta(stack) as delta:
            results = concurrent_gets(stack, "public", key, 50)
    finally:
        backend.remove_rule(rule)
    replies = [reply for _, _, reply in results]
    assert all(reply.status == 200 and reply.body == body for reply in replies)
    revalidated = [reply for reply in replies if x_cache(reply) == "REVALIDATED"]
    stale = [(seconds, reply) for _, seconds, reply in results if x_cache(reply) == "STALE"]
    assert len(revalidated) == 1 and len(stale) == 49, [x_cache(reply) for reply in replies]
    for seconds, reply in stale:
        assert cache_status(reply)[1].get("detail") == "stale-while-revalidate"
        assert_reported(reply, "STALE")
        assert seconds < 0.5, f"a stale answer waited {seconds:.2f} s for the revalidation"
    assert moto_gets(stack, key, 304) == 1 and moto_gets(stack, key, 200) == 1
    assert delta["stale_while_revalidate"] == 49 and delta["revalidations"] == 1
    assert_reported(get(stack, "public", key), "HIT")


def test_past_the_window_requests_wait_for_the_revalidation(cached):
    stack, backend = cached.stack, cached.backend
    key = unique("swr-over")
    put(stack, key)
    get(stack, "public", key)
    time.sleep(TTL + SWR + 0.3)
    rule = backend.add_rule(method="GET", path=f"/public/{key}", delay_request=0.5)
    try:
        results = concurrent_gets(stack, "public", key, 5)
    finally:
        backend.remove_rule(rule)
    outcomes = sorted(x_cache(reply) for _, _, reply in results)
    assert "STALE" not in outcomes, outcomes
    assert moto_gets(stack, key, 304) == 1


def test_a_changed_object_counts_as_a_revalidation_that_downloaded(cached):
    stack = cached.stack
    key = unique("changed")
    put(stack, key, b"one")
    get(stack, "public", key)
    put(stack, key, b"two")
    time.sleep(TTL + 0.2)
    with stats_delta(stack) as delta:
        reply = get(stack, "public", key)
    assert reply.body == b"two"
    assert delta["revalidations_changed"] == 1 and delta.get("revalidations", 0) == 0
