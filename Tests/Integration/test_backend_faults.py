"""S3 failing in every way ``SlowBackend`` can inject, for every kind of read and write.

Faults: a reset or a truncation mid-body (against ``Content-Length``, or a chunked body without
its last chunk), a stall mid-body, 500, 503 SlowDown, an error whose XML does not parse, a
reset before any answer, and a connection S3 accepts and never answers. Each meets a cache
miss with no stale copy, an expired entry with a stale copy, a read that bypasses the cache (a
range on a miss), a HEAD with and without a stale copy, and a PUT, wherever it applies (a HEAD
has no body to break; a PUT's answer has none either).

What the client must get: a clear JSON error with the right status, or the stale copy marked as
such; once the response head went out, a response that is visibly incomplete (the connection
closes before ``Content-Length`` bytes, or a chunked body without its terminating chunk), at
once rather than after somebody's timeout. Never wrong bytes, never a short response that
looks complete. Afterwards, with the fault gone, the same request gets the right bytes (nothing
wrong was cached) and the worker still answers /health.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from cache_support import assert_reported, start_cache_stack, x_cache
from conftest import assert_json_error, raw_request, unique

READ_TIMEOUT = 1
CONNECT_TIMEOUT = 0.5
TTL = 1
SIZE = 256 * 1024             # large enough that the head and the first bytes reach the client
CUT = 100 * 1024              # body bytes relayed before a mid-body fault
RANGE_LENGTH = 200 * 1024     # the bypassed read: bytes=0-(RANGE_LENGTH-1)
CLIENT_TIMEOUT = 12           # well below nginx's fastcgi_read_timeout (60 s)
QUICK = 4                     # seconds within which a broken response must have ended

FAULTS = {
    "reset-mid-body": {"reset_body": CUT},
    "truncated-length": {"cut_body": CUT},
    "truncated-chunked": {"cut_body": CUT, "chunked": True},
    "reset-mid-chunked": {"reset_body": CUT, "chunked": True},
    "stall-mid-body": {"stall_body": CUT},
    "status-500": {"fail_status": 500},
    "slowdown-503": {"fail_status": 503, "fail_code": "SlowDown"},
    "malformed-xml": {"fail_status": 500, "malformed_xml": True},
    "reset": {"reset": True},
    "hang": {"hang": True},
}
MID_BODY = {"reset-mid-body", "truncated-length", "truncated-chunked", "reset-mid-chunked", "stall-mid-body"}
# What the client gets when S3 fails before any byte of the answer reached it.
EXPECTED_ERROR = {
    "status-500": (502, "bad_gateway"),
    "slowdown-503": (503, "backend_unavailable"),
    "malformed-xml": (502, "bad_gateway"),
    "reset": (502, "bad_gateway"),
    "hang": (504, "gateway_timeout"),
}
SCENARIOS = ["miss", "stale", "bypass", "head", "head-stale", "put"]


def applies(fault: str, scenario: str) -> bool:
    if fault in MID_BODY:
        return scenario in ("miss", "stale", "bypass")     # HEAD and PUT answers have no body
    if fault == "malformed-xml":
        return not scenario.startswith("head")              # no body, so no XML, in a HEAD answer
    return True


CASES = [pytest.param(fault, scenario, id=f"{fault}-{scenario}")
         for fault in FAULTS for scenario in SCENARIOS if applies(fault, scenario)]


@pytest.fixture(scope="module")
def faulty():
    cache = start_cache_stack(slow_backend=True, worker_env={
        "S3_READ_TIMEOUT": str(READ_TIMEOUT), "S3_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT), "CACHE_TTL": str(TTL),
        "STALE_IF_ERROR": "3600"})
    try:
        yield cache
    finally:
        cache.stop()


@pytest.fixture(autouse=True)
def _no_rules_left(faulty):
    yield
    faulty.backend.clear()


# ---------------------------------------------------------------------------------------------
# a client that tells a complete response from a broken one


@dataclass
class Received:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool          # every byte the framing promised arrived (and the chunked terminator)
    timed_out: bool         # the client gave up waiting (nobody closed the connection)
    elapsed: float

    def json(self):
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def fetch(stack, method: str, target: str, headers: dict[str, str] | None = None, body: bytes | None = None,
          timeout: float = CLIENT_TIMEOUT) -> Received:
    """One request on a new kept-alive connection, as a browser or a proxy sends it; read until
    the response is complete by its framing, nginx closes the connection, or ``timeout``."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: s3cache-fault-tests"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    started = time.monotonic()
    data = b""
    timed_out = False
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as connection:
        connection.sendall(request)
        while True:
            try:
                chunk = connection.recv(65536)
            except socket.timeout:
                timed_out = True
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            parsed = parse(method, data)
            if parsed is not None and parsed.complete:
                break
    parsed = parse(method, data) or Received(0, {}, b"", False, False, 0)
    parsed.timed_out = timed_out
    parsed.elapsed = time.monotonic() - started
    return parsed


def parse(method: str, data: bytes) -> Received | None:
    """The response in ``data`` so far; None before its head is complete."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if method == "HEAD" or status in (204, 304):
        return Received(status, headers, b"", rest == b"", False, 0)
    if "chunked" in headers.get("transfer-encoding", ""):
        decoded, complete = dechunk(rest)
        return Received(status, headers, decoded, complete, False, 0)
    length = int(headers.get("content-length", "-1"))
    return Received(status, headers, rest[:length] if length >= 0 else rest, 0 <= length <= len(rest), False, 0)


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """(the body so far, whether the terminating zero-size chunk arrived)."""
    body = b""
    while True:
        size_line, separator, data = data.partition(b"\r\n")
        if not separator:
            return body, False
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body, True
        if len(data) < size + 2:
            return body + data[:size], False
        body += data[:size]
        data = data[size + 2:]


def assert_error(reply: Received, status: int, error: str, head: bool = False) -> None:
    assert reply.complete and not reply.timed_out, reply
    assert_json_error(reply, status, error, head=head)


def assert_broken_off(reply: Received, status: int, fault: str) -> None:
    """The head went out, then the body broke off: visibly incomplete, and promptly."""
    assert reply.status == status, f"{reply.status}: {reply.body[:200]!r}"
    assert not reply.timed_out, f"the client waited {reply.elapsed:.1f} s for bytes that never came ({fault})"
    assert not reply.complete, f"a broken body ({len(reply.body)} bytes) reached the client as complete ({fault})"
    limit = QUICK + (READ_TIMEOUT if fault == "stall-mid-body" else 0)
    assert reply.elapsed < limit, f"the broken response took {reply.elapsed:.1f} s to end ({fault})"


def assert_worker_serves(cache) -> None:
    assert cache.stack.worker_alive(), cache.stack.worker_output()[-3000:]
    assert raw_request(cache.stack, "GET", "/health").status == 200


# ---------------------------------------------------------------------------------------------
# the matrix


@pytest.mark.parametrize("fault,scenario", CASES)
def test_backend_fault(faulty, fault, scenario):
    stack, backend = faulty.stack, faulty.backend
    key = unique(f"{fault}-{scenario}")
    path = f"/objects/local/{key}"
    original = os.urandom(SIZE)
    stack.boto3.put_object(Bucket="local", Key=key, Body=original, ContentType="application/octet-stream")
    expected = original

    if scenario in ("stale", "head-stale"):
        primed = fetch(stack, "GET", path)
        assert primed.complete and primed.body == original and primed.headers.get("x-cache") == "MISS"
        time.sleep(TTL + 0.3)
        if fault in MID_BODY:
            # Unchanged, S3 would answer the revalidation with a bodiless 304: give it a body to break.
            expected = os.urandom(SIZE)
            stack.boto3.put_object(Bucket="local", Key=key, Body=expected, ContentType="application/octet-stream")
    if scenario == "put":
        primed = fetch(stack, "GET", path)
        assert primed.complete and primed.body == original

    method = {"head": "HEAD", "head-stale": "HEAD", "put": "PUT"}.get(scenario, "GET")
    request_headers = {"Range": f"bytes=0-{RANGE_LENGTH - 1}"} if scenario == "bypass" else {}
    upload = os.urandom(SIZE) if scenario == "put" else None
    rule = backend.add_rule(method=method, path=f"/local/{key}", **FAULTS[fault])

    reply = fetch(stack, method, path, headers=request_headers, body=upload)

    assert rule.matched >= 1, "the fault was never injected"
    if fault in MID_BODY:
        assert_broken_off(reply, 206 if scenario == "bypass" else 200, fault)
        wanted = expected[:RANGE_LENGTH] if scenario == "bypass" else expected
        assert wanted.startswith(reply.body), "the bytes before the break are not the object's"
        record = stack.wait_for_log(lambda r: r.get("key") == key and r.get("method") == "GET" and r.get("error"))
        assert record["level"] == "error", record
    elif scenario == "stale":
        assert reply.complete and reply.status == 200 and reply.body == original, reply
        assert_reported(reply, "STALE")
    elif scenario == "head-stale":
        assert reply.complete and reply.status == 200 and int(reply.headers["content-length"]) == SIZE, reply
        assert_reported(reply, "STALE")
    else:
        status, error = EXPECTED_ERROR[fault]
        assert_error(reply, status, error, head=method == "HEAD")
        if fault == "slowdown-503":
            assert reply.headers.get("retry-after") == "1", reply.headers
        if fault == "hang":
            limit = READ_TIMEOUT + (9 if method == "PUT" else 3)   # see test_silent_backend_put_is_504
            assert reply.elapsed < limit, f"{method} answered after {reply.elapsed:.1f} s"
        else:
            assert reply.elapsed < 2, f"{method} answered after {reply.elapsed:.1f} s"

    backend.remove_rule(rule)
    assert_worker_serves(faulty)

    # With the fault gone, the same request gets the right bytes: nothing wrong was kept.
    if scenario == "put":
        unchanged = fetch(stack, "GET", path)
        assert unchanged.complete and unchanged.status == 200 and unchanged.body == original, \
            "a failed PUT changed what a GET returns"
        stored = fetch(stack, "PUT", path, body=upload)
        assert stored.complete and stored.status == 200, stored
        expected = upload
    again = fetch(stack, method if method == "HEAD" else "GET", path, headers=request_headers)
    assert again.complete and not again.timed_out, again
    if method == "HEAD":
        assert again.status == 200 and int(again.headers["content-length"]) == len(expected)
    elif scenario == "bypass":
        assert again.status == 206 and again.body == expected[:RANGE_LENGTH]
    else:
        assert again.status == 200 and again.body == expected
        if scenario == "miss":
            assert x_cache(again) == "MISS", "the failed fetch left something in the cache"
    assert_worker_serves(faulty)


def test_short_body_is_never_served_from_the_cache(faulty):
    """A body cut short on a miss is not stored: while the fault lasts every request goes to S3
    and breaks off again (no cached short copy answers instead), and afterwards the object is
    fetched whole and then served whole from the cache."""
    stack, backend = faulty.stack, faulty.backend
    key = unique("short")
    body = os.urandom(SIZE)
    stack.boto3.put_object(Bucket="local", Key=key, Body=body, ContentType="application/octet-stream")
    rule = backend.add_rule(method="GET", path=f"/local/{key}", cut_body=CUT)
    for _ in range(2):
        assert_broken_off(fetch(stack, "GET", f"/objects/local/{key}"), 200, "truncated-length")
    assert rule.matched == 2
    backend.remove_rule(rule)
    fetched = fetch(stack, "GET", f"/objects/local/{key}")
    assert fetched.complete and fetched.body == body and fetched.headers.get("x-cache") == "MISS"
    hit = fetch(stack, "GET", f"/objects/local/{key}")
    assert hit.complete and hit.body == body and hit.headers.get("x-cache") == "HIT"


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_body_broken_off_before_any_byte_reached_nginx_is_a_502(faulty, chunked):
    """S3 breaks off after a few bytes, while the head and those bytes still sit in the
    worker's output buffer: nginx sees the connection close before any response head and
    answers 502 itself (its error page for a worker that failed), after retrying the GET once
    on a new connection. A clear error, never a short 200."""
    stack, backend = faulty.stack, faulty.backend
    key = unique("early")
    body = os.urandom(SIZE)
    stack.boto3.put_object(Bucket="local", Key=key, Body=body, ContentType="application/octet-stream")
    rule = backend.add_rule(method="GET", path=f"/local/{key}", cut_body=10, chunked=chunked)
    reply = fetch(stack, "GET", f"/objects/local/{key}")
    assert_error(reply, 502, "bad_gateway")
    assert reply.elapsed < QUICK
    assert 1 <= rule.matched <= 2, "nginx retries a request whose kept connection closed unanswered, once"
    backend.remove_rule(rule)
    again = fetch(stack, "GET", f"/objects/local/{key}")
    assert again.complete and again.status == 200 and again.body == body and x_cache(again) == "MISS"
    assert_worker_serves(faulty)


@pytest.mark.parametrize("with_stale", [False, True], ids=["no-stale", "stale"])
def test_followers_of_a_fetch_that_breaks_off_get_an_error_or_the_stale_copy(faulty, with_stale):
    """A request that joins the leader's fetch while S3 stalls mid-body never gets the leader's
    short body: it gets 504 (the leader's read timeout), or the stale copy; the leader's own
    response is broken off."""
    stack, backend = faulty.stack, faulty.backend
    key = unique("follow")
    path = f"/objects/local/{key}"
    original = os.urandom(SIZE)
    stack.boto3.put_object(Bucket="local", Key=key, Body=original, ContentType="application/octet-stream")
    current = original
    if with_stale:
        assert fetch(stack, "GET", path).body == original
        time.sleep(TTL + 0.3)
        current = os.urandom(SIZE)
        stack.boto3.put_object(Bucket="local", Key=key, Body=current, ContentType="application/octet-stream")
    rule = backend.add_rule(method="GET", path=f"/local/{key}", stall_body=CUT)
    replies: dict[str, Received] = {}
    leader = threading.Thread(target=lambda: replies.update(leader=fetch(stack, "GET", path)))
    leader.start()
    deadline = time.monotonic() + 5
    while rule.matched < 1:
        assert time.monotonic() < deadline, "the leader's fetch never reached S3"
        time.sleep(0.01)
    time.sleep(0.2)   # the leader is streaming; S3 is stalling
    replies["follower"] = fetch(stack, "GET", path)
    leader.join(timeout=CLIENT_TIMEOUT + 5)
    assert_broken_off(replies["leader"], 200, "stall-mid-body")
    follower = replies["follower"]
    if with_stale:
        assert follower.complete and follower.status == 200 and follower.body == original, follower
        assert_reported(follower, "STALE")
    else:
        assert_error(follower, 504, "gateway_timeout")
    assert rule.matched == 1, "the follower joined the leader's fetch"
    backend.remove_rule(rule)
    again = fetch(stack, "GET", path)
    assert again.complete and again.status == 200 and again.body == current
    assert_worker_serves(faulty)
