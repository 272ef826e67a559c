"""PUT bodies: gzip uploads (inflated, bounded), broken and refused bodies, clients that go
away mid-body, and a large object streamed both ways without the worker holding it.

Two stacks of this module's own: one with a 1 MiB MAX_UPLOAD_SIZE (for the limits), one with a
cache too small to keep a large object (so its GET streams from S3 through the worker).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import socket
import time
import zlib

import pytest

from checks import assert_absent, backend_writes
from conftest import assert_json_error, fcgi_params, fcgi_request, no_backend_requests, raw_request, start_stack, \
    unique

UPLOAD_LIMIT = 1 << 20
LARGE_OBJECT = 256 << 20
# Worker peak RSS may grow by at most this much while it moves LARGE_OBJECT bytes either way.
STREAMING_RSS_BOUND = 64 << 20


@pytest.fixture(scope="module")
def limited():
    # A bare number would be megabytes (the seed's convention for every size variable).
    s = start_stack(worker_env={"MAX_UPLOAD_SIZE": f"{UPLOAD_LIMIT}b"})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def streaming():
    s = start_stack(worker_env={"MAX_CACHE_SIZE": "8M", "MAX_OBJECT_SIZE": "1M"})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def _workers_still_up(request):
    yield
    for name in ("limited", "streaming"):
        if name in request.fixturenames:
            s = request.getfixturevalue(name)
            assert s.worker_alive(), s.worker_output()[-3000:]
            assert raw_request(s, "GET", "/health").status == 200


def text_body(size: int) -> bytes:
    line = b'{"id": 12345, "name": "compressible", "tags": ["a", "b", "c"]}\n'
    return (line * (size // len(line) + 1))[:size]


def put(stack, key: str, body: bytes, **headers: str):
    return raw_request(stack, "PUT", f"/objects/local/{key}", body=body,
                       headers={name.replace("_", "-"): value for name, value in headers.items()})


# ---------------------------------------------------------------------------------------------
# gzip uploads


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "GZIP", " gzip "])
def test_gzip_upload_is_stored_inflated(limited, coding):
    key = unique("gz") + ".json"
    original = text_body(200_000)
    reply = put(limited, key, gzip.compress(original), Content_Encoding=coding, Content_Type="application/json")
    assert reply.status == 200, reply.body
    assert reply.json()["size"] == len(original)
    stored = limited.boto3.get_object(Bucket="local", Key=key)
    assert stored["Body"].read() == original
    # The stored object is the plain bytes: S3 must not be told they are gzip.
    assert stored.get("ContentEncoding") in (None, ""), stored.get("ContentEncoding")
    assert stored["ContentType"] == "application/json"
    assert stored["ETag"] == f'"{hashlib.md5(original).hexdigest()}"'


def test_gzip_upload_of_several_members_is_their_concatenation(limited):
    key = unique("members")
    first, second = b"first member\n" * 100, b"second member\n" * 100
    reply = put(limited, key, gzip.compress(first) + gzip.compress(second), Content_Encoding="gzip")
    assert reply.status == 200, reply.body
    assert limited.boto3.get_object(Bucket="local", Key=key)["Body"].read() == first + second


def test_chunked_gzip_upload_needs_no_content_length(limited):
    """A chunked PUT without gzip gets 411 (test_objects.py); with gzip the worker inflates
    to a spool file first and so knows the length S3 needs."""
    key = unique("chunkedgz")
    original = os.urandom(300_000)
    compressed = gzip.compress(original)
    connection = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=30)
    try:
        connection.request("PUT", f"/objects/local/{key}", body=iter([compressed[:100_000], compressed[100_000:]]),
                           headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
                           encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 200, response.read()
    finally:
        connection.close()
    assert limited.boto3.get_object(Bucket="local", Key=key)["Body"].read() == original


def test_gzip_upload_up_to_the_limit_is_stored(limited):
    key = unique("atlimit")
    original = os.urandom(UPLOAD_LIMIT)
    reply = put(limited, key, gzip.compress(original), Content_Encoding="gzip")
    assert reply.status == 200, reply.body
    assert limited.boto3.head_object(Bucket="local", Key=key)["ContentLength"] == UPLOAD_LIMIT


@pytest.mark.parametrize("inflated", [UPLOAD_LIMIT + 1, 64 * UPLOAD_LIMIT])
def test_gzip_bomb_is_413_and_nothing_reaches_s3(limited, inflated):
    key = unique("bomb")
    bomb = gzip.compress(b"\0" * inflated, 9)
    assert len(bomb) < 80 * 1024   # a few KiB on the wire
    started = time.monotonic()
    with no_backend_requests(limited):
        reply = put(limited, key, bomb, Content_Encoding="gzip")
    assert_json_error(reply, 413, "payload_too_large")
    assert time.monotonic() - started < 10
    assert_absent(limited, "local", key)


def test_plain_upload_over_the_limit_is_413_before_reading(limited):
    key = unique("toolarge")
    with no_backend_requests(limited):
        reply = put(limited, key, b"a" * (UPLOAD_LIMIT + 1))
    assert_json_error(reply, 413, "payload_too_large")
    assert_absent(limited, "local", key)


def _corrupt_crc(data: bytes) -> bytes:
    broken = bytearray(data)
    broken[-8] ^= 0xFF
    return bytes(broken)


VALID_GZIP = gzip.compress(b"valid content " * 1000)
BROKEN_GZIP = {
    "not-gzip": b"this is plain text, not gzip",
    "truncated": VALID_GZIP[:len(VALID_GZIP) // 2],
    "no-trailer": VALID_GZIP[:-8],
    "bad-crc": _corrupt_crc(VALID_GZIP),
    "trailing-garbage": VALID_GZIP + b"garbage after the member",
    "raw-deflate": zlib.compress(b"zlib, not gzip"),
    "empty": b"",
}


@pytest.mark.parametrize("name", BROKEN_GZIP)
def test_broken_gzip_is_400_and_nothing_reaches_s3(limited, name):
    key = unique(name)
    with no_backend_requests(limited):
        reply = put(limited, key, BROKEN_GZIP[name], Content_Encoding="gzip")
    assert_json_error(reply, 400, "bad_request")
    assert_absent(limited, "local", key)


@pytest.mark.parametrize("coding", ["br", "deflate", "compress", "zstd", "gzip, br", "gzip, gzip", "chunked"])
def test_unsupported_content_encoding_is_415(limited, coding):
    key = unique("coding")
    with no_backend_requests(limited):
        reply = put(limited, key, b"body", Content_Encoding=coding)
    assert_json_error(reply, 415, "unsupported_encoding")
    assert_absent(limited, "local", key)


def test_identity_encoding_is_stored_as_sent(limited):
    key = unique("identity")
    assert put(limited, key, b"as sent", Content_Encoding="identity").status == 200
    assert limited.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"as sent"


# ---------------------------------------------------------------------------------------------
# clients that go away


def abandon_upload(stack, key: str, declared: int, sent: bytes, headers: str = "") -> None:
    """Sends a PUT announcing ``declared`` bytes, then only ``sent``, then closes."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as connection:
        connection.sendall(f"PUT /objects/local/{key} HTTP/1.1\r\nHost: localhost\r\n"
                           f"Content-Length: {declared}\r\n{headers}\r\n".encode())
        connection.sendall(sent)
        time.sleep(0.2)   # let nginx pass the bytes on before the connection ends


def wait_for_request_log(stack, key: str) -> dict:
    return stack.wait_for_log(lambda record: record.get("key") == key and record.get("method") == "PUT", timeout=15)


@pytest.mark.parametrize("declared, sent", [(1_000_000, 300_000), (100, 0)])
def test_body_shorter_than_content_length_stores_nothing(limited, declared, sent):
    """The client disconnects mid-body: the worker abandons the upload (whatever S3 had
    received is not an object), stays up, and serves the next request."""
    key = unique("short")
    abandon_upload(limited, key, declared, os.urandom(sent))
    record = wait_for_request_log(limited, key)
    assert record["status"] != 200, record
    assert_absent(limited, "local", key)


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "0x10", " "])
def test_worker_refuses_a_content_length_that_is_no_number(limited, length):
    """nginx validates Content-Length itself; the worker must not trust a FastCGI client that does not."""
    key = unique("badlength")
    with no_backend_requests(limited):
        reply = fcgi_request(limited.socket_path, fcgi_params("PUT", f"/objects/local/{key}", CONTENT_LENGTH=length),
                             body=b"body")
    assert_json_error(reply, 400, "bad_request")
    assert_absent(limited, "local", key)


def test_worker_stores_nothing_when_stdin_ends_before_content_length(limited):
    key = unique("shortstdin")
    reply = fcgi_request(limited.socket_path, fcgi_params("PUT", f"/objects/local/{key}", CONTENT_LENGTH="100000"),
                         body=os.urandom(10_000))
    assert_json_error(reply, 400, "bad_request")
    assert_absent(limited, "local", key)


def test_large_body_cut_short_stores_nothing(streaming):
    key = unique("shortlarge")
    abandon_upload(streaming, key, 32 << 20, os.urandom(8 << 20))
    record = wait_for_request_log(streaming, key)
    assert record["status"] != 200, record
    assert_absent(streaming, "local", key)


def test_gzip_body_cut_short_stores_nothing(limited):
    key = unique("shortgz")
    compressed = gzip.compress(os.urandom(200_000))
    since = len(limited.backend_log())
    abandon_upload(limited, key, len(compressed), compressed[:len(compressed) // 2], "Content-Encoding: gzip\r\n")
    record = wait_for_request_log(limited, key)
    assert record["status"] != 200, record
    assert backend_writes(limited, since) == []
    assert_absent(limited, "local", key)


# ---------------------------------------------------------------------------------------------
# a large object, streamed both ways


def random_chunks(total: int, chunk: int = 1 << 20):
    remaining = total
    while remaining:
        size = min(chunk, remaining)
        yield os.urandom(size)
        remaining -= size


def test_large_object_streams_both_ways(streaming):
    """LARGE_OBJECT random bytes PUT and GET through nginx and the worker, byte-exact (sha256),
    while the worker's peak RSS grows by far less than the object (STREAMING_RSS_BOUND)."""
    key = unique("large") + ".bin"
    target = f"/objects/local/{key}"
    sent = hashlib.sha256()

    streaming.reset_worker_peak_rss()
    baseline = streaming.worker_memory()["VmRSS"]
    connection = http.client.HTTPConnection("127.0.0.1", streaming.port, timeout=120)
    try:
        connection.putrequest("PUT", target)
        connection.putheader("Content-Length", str(LARGE_OBJECT))
        connection.putheader("Content-Type", "application/octet-stream")
        connection.endheaders()
        for chunk in random_chunks(LARGE_OBJECT):
            sent.update(chunk)
            connection.send(chunk)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
        put_growth = streaming.worker_memory()["VmHWM"] - baseline
        assert streaming.boto3.head_object(Bucket="local", Key=key)["ContentLength"] == LARGE_OBJECT

        streaming.reset_worker_peak_rss()
        baseline = streaming.worker_memory()["VmRSS"]
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("X-Cache") == "BYPASS"
        assert response.getheader("Content-Length") == str(LARGE_OBJECT)
        received = hashlib.sha256()
        count = 0
        while chunk := response.read(1 << 20):
            received.update(chunk)
            count += len(chunk)
        get_growth = streaming.worker_memory()["VmHWM"] - baseline
    finally:
        connection.close()

    assert count == LARGE_OBJECT
    assert received.hexdigest() == sent.hexdigest()
    assert put_growth < STREAMING_RSS_BOUND, f"PUT grew the worker's peak RSS by {put_growth >> 20} MiB"
    assert get_growth < STREAMING_RSS_BOUND, f"GET grew the worker's peak RSS by {get_growth >> 20} MiB"
