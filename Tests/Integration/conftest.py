"""Fixtures and helpers for the integration tests: real nginx (with the shipped snippets), the
worker binary and moto's S3 server on loopback, all started by ``scripts/stack.py``.

Stacks are slow to start (~1-2 s each), so they are shared: ``stack`` for the whole session,
the special-purpose ones per module (in the test modules). Every one is torn down at the end
of its scope, also when a test or the startup fails.

Requests go through nginx over HTTP. ``raw_request`` sends the request target byte for byte
(``requests`` would normalise ``/../`` and re-encode escapes, which is exactly what must be
tested); ``fcgi_request`` talks FastCGI to the worker's socket directly, for inputs nginx
itself refuses before the worker could see them.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import Stack, StackError, upstream_keepalive  # noqa: E402

NGINX_WORKERS = 2

# Content put into moto by the session fixture, read back through the gateway by the tests.
SENTINEL = b"SENTINEL: private/x must never be served from another bucket\n"
HELLO = b"hello, world\n"


# ---------------------------------------------------------------------------------------------
# sizing (see NOTES.md and nginx/s3cache-upstream.conf)


def shipped_keepalive() -> int:
    keepalive = upstream_keepalive()
    assert keepalive, "nginx/s3cache-upstream.conf has no 'keepalive N;' line"
    return keepalive


def tight_thread_count() -> int:
    """FCGI_THREADS for the shared stack: fewer than the idle connections nginx may keep.

    Each nginx worker process keeps up to ``keepalive`` idle connections to the worker. Before
    the worker parked idle kept connections (ConnectionPark), each held a thread, and a pool no
    larger than keepalive x worker_processes could stall with every thread on an idle
    connection. The shared stack runs below that line, so any regression stalls it
    (test_concurrency.py); test_load.py runs a pool of four threads.
    """
    threads = 40
    assert threads < shipped_keepalive() * NGINX_WORKERS, "the shared stack must have fewer threads than kept connections"
    return threads


# ---------------------------------------------------------------------------------------------
# stacks


def start_stack(**options) -> Stack:
    options.setdefault("nginx_workers", NGINX_WORKERS)
    try:
        return Stack(**options).start()
    except StackError as error:
        pytest.fail(f"cannot start the test stack: {error}", pytrace=False)


@pytest.fixture(scope="session")
def stack():
    """The shared stack: default bucket rules, bucket ``other`` exists in moto but is not
    listed, TLS on, fewer FCGI_THREADS than the connections nginx may keep idle."""
    s = start_stack(tls=True, threads=tight_thread_count(), extra_buckets=["other"])
    try:
        s.boto3.put_object(Bucket="private", Key="x", Body=SENTINEL, ContentType="text/plain")
        s.boto3.put_object(Bucket="public", Key="private/x", Body=b"decoy: public/private/x")
        s.boto3.put_object(Bucket="public", Key="hello.txt", Body=HELLO, ContentType="text/plain")
        s.boto3.put_object(Bucket="other", Key="x", Body=b"other bucket, not listed in ALLOWED_BUCKETS")
        s.initial_worker_pid = s.worker_pid
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def _worker_still_up(request):
    """After every test on the shared stack: the worker is the same, live process."""
    yield
    if "stack" in request.fixturenames:
        s = request.getfixturevalue("stack")
        assert s.worker_alive(), f"the worker died during this test; stderr:\n{s.worker_output()[-3000:]}"
        assert s.worker_pid == s.initial_worker_pid


# ---------------------------------------------------------------------------------------------
# HTTP helpers


@dataclass
class Reply:
    status: int
    headers: dict[str, str]              # lower-case names; repeated headers joined with ", "
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def json(self):
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def raw_request(stack: Stack, method: str, target: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, tls: bool = False, timeout: float = 30) -> Reply:
    """Sends ``target`` exactly as given (no normalisation, no re-encoding) through nginx."""
    if tls:
        context = ssl.create_default_context(cafile=str(stack.cert_path))
        connection = http.client.HTTPSConnection("127.0.0.1", stack.tls_port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        all_headers = {"User-Agent": "s3cache-integration-tests"}
        all_headers.update(headers or {})
        if body is not None and "Content-Length" not in all_headers:
            all_headers["Content-Length"] = str(len(body))
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        pairs = response.getheaders()
        merged: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return Reply(response.status, merged, data, pairs)
    finally:
        connection.close()


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Writes ``request`` on a fresh TCP connection and returns every byte until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def assert_json_error(reply: Reply, status: int, error: str | None = None, head: bool = False) -> dict | None:
    """``reply`` is ``status`` with the JSON error shape ``{"error": ..., "message": ...}``
    (for HEAD: the status and no body)."""
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body[:300]!r}"
    if head:
        assert reply.body == b""
        return None
    assert reply.content_type.split(";")[0].strip() == "application/json", reply.headers
    document = reply.json()
    assert isinstance(document, dict), document
    assert isinstance(document.get("error"), str) and document["error"], document
    assert isinstance(document.get("message"), str) and document["message"], document
    if error is not None:
        assert document["error"] == error, document
    return document


@contextmanager
def no_backend_requests(stack: Stack):
    """Asserts that moto received no request at all inside the block."""
    before = stack.backend_log()
    yield
    after = stack.backend_log()
    assert after[len(before):] == [], f"requests reached S3: {after[len(before):]}"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------
# a minimal FastCGI client (responder role), to reach the worker without nginx


def _fcgi_record(kind: int, request_id: int, content: bytes) -> bytes:
    padding = (-len(content)) % 8
    return struct.pack(">BBHHBx", 1, kind, request_id, len(content), padding) + content + b"\0" * padding


def _fcgi_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def fcgi_request(socket_path: str | Path | tuple[str, int], params: dict[str, str | bytes], body: bytes = b"",
                 timeout: float = 10) -> Reply:
    """One FastCGI request on a new connection (keep-conn off); parses the CGI-style response.
    ``socket_path`` is a Unix socket path, or a (host, port) pair for a worker listening on TCP."""
    encoded = b""
    for name, value in params.items():
        name_b = name.encode()
        value_b = value if isinstance(value, bytes) else value.encode()
        encoded += _fcgi_length(len(name_b)) + _fcgi_length(len(value_b)) + name_b + value_b
    message = _fcgi_record(1, 1, struct.pack(">HB5x", 1, 0))   # BEGIN_REQUEST, RESPONDER, no keep-conn
    for offset in range(0, len(encoded), 65535):
        message += _fcgi_record(4, 1, encoded[offset:offset + 65535])
    message += _fcgi_record(4, 1, b"")
    for offset in range(0, len(body), 65535):
        message += _fcgi_record(5, 1, body[offset:offset + 65535])
    message += _fcgi_record(5, 1, b"")
    stdout = b""
    family = socket.AF_INET if isinstance(socket_path, tuple) else socket.AF_UNIX
    with socket.socket(family, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(socket_path if isinstance(socket_path, tuple) else str(socket_path))
        connection.sendall(message)
        buffer = b""
        ended = False
        while not ended:
            chunk = connection.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 8:
                _, kind, _, length, padding = struct.unpack(">BBHHBx", buffer[:8])
                if len(buffer) < 8 + length + padding:
                    break
                content = buffer[8:8 + length]
                buffer = buffer[8 + length + padding:]
                if kind == 6:
                    stdout += content
                elif kind == 3:
                    ended = True
    head, _, data = stdout.partition(b"\r\n\r\n")
    status = 200
    headers: dict[str, str] = {}
    pairs = []
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        value = value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers[name.lower()] = value
            pairs.append((name, value))
    return Reply(status, headers, data, pairs)


def fcgi_params(method: str, request_uri: str, **extra: str) -> dict[str, str]:
    params = {"REQUEST_METHOD": method, "REQUEST_URI": request_uri, "QUERY_STRING": "", "CONTENT_TYPE": "",
              "CONTENT_LENGTH": "", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
              "HTTP_USER_AGENT": "s3cache-fcgi-test"}
    params.update(extra)
    return params
