"""Reads with the cache off (MAX_CACHE_SIZE=0): every GET and HEAD is answered by S3 itself,
streamed through the worker, with the client's range and conditional headers forwarded."""

from __future__ import annotations

import pytest

from conftest import assert_json_error, raw_request, start_stack, unique

BODY = b"0123456789" * 1000
VOLATILE = {"date", "connection", "keep-alive"}


@pytest.fixture(scope="module")
def uncached():
    s = start_stack(worker_env={"MAX_CACHE_SIZE": "0"})
    try:
        s.object_key = f"{unique('pass')}/digits.txt"
        s.boto3.put_object(Bucket="public", Key=s.object_key, Body=BODY, ContentType="text/plain",
                           CacheControl="max-age=30", ContentDisposition="inline")
        head = s.boto3.head_object(Bucket="public", Key=s.object_key)
        s.object_etag = head["ETag"]
        s.object_last_modified = head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
        yield s
    finally:
        s.stop()


def target(stack) -> str:
    return f"/objects/public/{stack.object_key}"


def get_requests(stack) -> int:
    return stack.backend_requests("GET", f"/public/{stack.object_key}")


def test_every_get_is_answered_by_s3(uncached):
    before = get_requests(uncached)
    for _ in range(3):
        reply = raw_request(uncached, "GET", target(uncached))
        assert reply.status == 200 and reply.body == BODY
        assert "x-cache" not in reply.headers and "cache-status" not in reply.headers
    assert get_requests(uncached) == before + 3


def test_get_and_head_carry_s3s_headers(uncached):
    get = raw_request(uncached, "GET", target(uncached))
    head = raw_request(uncached, "HEAD", target(uncached))
    assert head.status == 200 and head.body == b""
    for reply in (get, head):
        assert reply.headers["content-type"] == "text/plain"
        assert reply.headers["content-length"] == str(len(BODY))
        assert reply.headers["etag"] == uncached.object_etag
        assert reply.headers["last-modified"] == uncached.object_last_modified
        assert reply.headers["cache-control"] == "max-age=30"
        assert reply.headers["content-disposition"] == "inline"
        assert not [name for name in reply.headers if name.startswith("x-amz-")]
    assert {k: v for k, v in head.headers.items() if k not in VOLATILE} == \
        {k: v for k, v in get.headers.items() if k not in VOLATILE}


@pytest.mark.parametrize("range_header, status, content_range, body", [
    ("bytes=10-19", 206, "bytes 10-19/10000", BODY[10:20]),
    ("bytes=-5", 206, "bytes 9995-9999/10000", BODY[-5:]),
    ("bytes=9990-", 206, "bytes 9990-9999/10000", BODY[9990:]),
])
def test_ranges_are_cut_by_s3(uncached, range_header, status, content_range, body):
    reply = raw_request(uncached, "GET", target(uncached), headers={"Range": range_header})
    assert reply.status == status
    assert reply.headers["content-range"] == content_range
    assert reply.headers["content-length"] == str(len(body))
    assert reply.body == body


def test_unsatisfiable_range_is_416_json(uncached):
    assert_json_error(raw_request(uncached, "GET", target(uncached), headers={"Range": "bytes=20000-"}),
                      416, "range_not_satisfiable")


def test_conditionals_are_answered_by_s3(uncached):
    for headers in ({"If-None-Match": uncached.object_etag}, {"If-Modified-Since": uncached.object_last_modified}):
        reply = raw_request(uncached, "GET", target(uncached), headers=headers)
        assert reply.status == 304 and reply.body == b"", headers
        assert reply.headers["etag"] == uncached.object_etag
    assert_json_error(raw_request(uncached, "GET", target(uncached), headers={"If-Match": '"other"'}),
                      412, "precondition_failed")
    changed = raw_request(uncached, "GET", target(uncached), headers={"If-None-Match": '"other"'})
    assert changed.status == 200 and changed.body == BODY


def test_missing_object_is_404_each_time(uncached):
    key = unique("missing")
    before = uncached.backend_requests(path_prefix=f"/public/{key}")
    assert_json_error(raw_request(uncached, "GET", f"/objects/public/{key}"), 404, "not_found")
    assert_json_error(raw_request(uncached, "HEAD", f"/objects/public/{key}"), 404, head=True)
    assert_json_error(raw_request(uncached, "GET", f"/objects/public/{key}"), 404, "not_found")
    assert uncached.backend_requests(path_prefix=f"/public/{key}") == before + 3


def test_write_then_read_sees_the_new_version(uncached):
    key = unique("version")
    for version in (b"first", b"second", b"third"):
        assert raw_request(uncached, "PUT", f"/objects/local/{key}", body=version).status == 200
        assert raw_request(uncached, "GET", f"/objects/local/{key}").body == version
