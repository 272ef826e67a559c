"""Stored once, compressed when worth it: gzip negotiation on cache hits, byte-exact both ways.

Runs on the shared stack (default cache settings). What the cache stored is read from /stats
deltas (stored body bytes against original bytes) around the one request that stored it.
"""

from __future__ import annotations

import gzip
import json
import os

import pytest

from cache_support import assert_reported, get, stats_delta
from conftest import no_backend_requests, unique


def json_document(size: int) -> bytes:
    """At least ``size`` bytes of JSON, as compressible as real API output."""
    def row(number: int) -> dict:
        return {"id": number, "name": f"item {number}", "tags": ["alpha", "beta"], "ok": number % 3 == 0}

    per_row = len(json.dumps([row(10_000)], indent=1))
    return json.dumps([row(number) for number in range(size // per_row + 1)], indent=1).encode()


def cache(stack, key: str, body: bytes, content_type: str) -> dict:
    """Puts the object into moto, reads it once through the gateway (a miss, stored), and
    returns the /stats deltas of that read."""
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType=content_type)
    with stats_delta(stack) as delta:
        first = get(stack, "public", key, headers={"Accept-Encoding": "gzip"})
    assert first.status == 200
    # The miss streams S3's own bytes (identity) while it stores them.
    assert first.body == body and "content-encoding" not in first.headers
    assert_reported(first, "MISS")
    assert delta["original_bytes"] == len(body)
    return delta


def gzip_etag(etag: str) -> str:
    return etag[:-1] + '-gzip"'


def test_a_compressible_object_is_stored_gzipped_and_served_both_ways(stack):
    key = f"{unique('doc')}.json"
    body = json_document(64 * 1024)
    delta = cache(stack, key, body, "application/json")
    assert 0 < delta["stored_body_bytes"] < len(body) * 0.5, delta
    moto_etag = stack.boto3.head_object(Bucket="public", Key=key)["ETag"]

    with no_backend_requests(stack):
        zipped = get(stack, "public", key, headers={"Accept-Encoding": "gzip"})
        plain = get(stack, "public", key)
        wildcard = get(stack, "public", key, headers={"Accept-Encoding": "*"})
        refused = get(stack, "public", key, headers={"Accept-Encoding": "gzip;q=0, br"})
        head = get(stack, "public", key, headers={"Accept-Encoding": "gzip"}, method="HEAD")

    assert_reported(zipped, "HIT")
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "accept-encoding" in zipped.headers.get("vary", "").lower()
    assert int(zipped.headers["content-length"]) == len(zipped.body) == delta["stored_body_bytes"]
    assert gzip.decompress(zipped.body) == body
    assert zipped.headers["etag"] == gzip_etag(moto_etag) != moto_etag

    assert_reported(plain, "HIT")
    assert "content-encoding" not in plain.headers
    assert plain.body == body == stack.boto3.get_object(Bucket="public", Key=key)["Body"].read()
    assert int(plain.headers["content-length"]) == len(body)
    assert plain.headers["etag"] == moto_etag
    assert "accept-encoding" in plain.headers.get("vary", "").lower()

    assert wildcard.headers.get("content-encoding") == "gzip" and gzip.decompress(wildcard.body) == body
    assert "content-encoding" not in refused.headers and refused.body == body

    assert head.status == 200 and head.body == b""
    for name in ("content-encoding", "content-length", "etag", "content-type", "vary"):
        assert head.headers.get(name) == zipped.headers.get(name), name


@pytest.mark.parametrize("accept", [None, "gzip"])
@pytest.mark.parametrize("which", ["identity", "gzip", "weak-identity", "list"])
def test_if_none_match_matches_either_validator(stack, accept, which):
    key = f"{unique('validators')}.json"
    body = json_document(8 * 1024)
    cache(stack, key, body, "application/json")
    etag = stack.boto3.head_object(Bucket="public", Key=key)["ETag"]
    candidates = {"identity": etag, "gzip": gzip_etag(etag), "weak-identity": "W/" + etag,
                  "list": f'"nope", {gzip_etag(etag)}'}
    headers = {"If-None-Match": candidates[which]}
    if accept:
        headers["Accept-Encoding"] = accept
    with no_backend_requests(stack):
        reply = get(stack, "public", key, headers=headers)
    assert reply.status == 304 and reply.body == b""
    assert reply.headers["etag"] == (gzip_etag(etag) if accept else etag), "a 304 names the representation it confirms"
    assert "accept-encoding" in reply.headers.get("vary", "").lower()
    assert_reported(reply, "HIT")
    other = get(stack, "public", key, headers={"If-None-Match": '"something-else"'})
    assert other.status == 200


@pytest.mark.parametrize("name,content_type,body", [
    ("image.png", "image/png", os.urandom(64 * 1024)),
    ("noise.txt", "text/plain", os.urandom(64 * 1024)),          # compressible type, incompressible bytes
    ("tiny.json", "application/json", b'{"small": true}'),       # below the minimum worth compressing
], ids=["png", "noise-txt", "tiny-json"])  # not the bodies: a 64 KiB test id would land in PYTEST_CURRENT_TEST
def test_objects_that_do_not_compress_are_stored_raw(stack, name, content_type, body):
    key = f"{unique('raw')}-{name}"
    delta = cache(stack, key, body, content_type)
    assert delta["stored_body_bytes"] == len(body), delta
    with no_backend_requests(stack):
        reply = get(stack, "public", key, headers={"Accept-Encoding": "gzip"})
    assert_reported(reply, "HIT")
    assert "content-encoding" not in reply.headers
    assert reply.body == body
    assert "-gzip" not in reply.headers["etag"]


def test_ranges_over_a_compressed_entry_are_cut_from_the_original_bytes(stack):
    key = f"{unique('ranged')}.json"
    body = json_document(200 * 1024)
    delta = cache(stack, key, body, "application/json")
    assert delta["stored_body_bytes"] < len(body) // 2
    with no_backend_requests(stack):
        for header, start, end in [("bytes=0-99", 0, 99), ("bytes=-100", len(body) - 100, len(body) - 1),
                                   ("bytes=100-", 100, len(body) - 1), ("bytes=150000-150999", 150000, 150999)]:
            reply = get(stack, "public", key, headers={"Range": header, "Accept-Encoding": "gzip"})
            assert reply.status == 206, (header, reply.status)
            assert "content-encoding" not in reply.headers
            assert reply.headers["content-range"] == f"bytes {start}-{end}/{len(body)}"
            assert reply.body == body[start:end + 1], header
            assert int(reply.headers["content-length"]) == end - start + 1
            assert_reported(reply, "HIT")
