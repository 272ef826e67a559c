"""A deliberately misbehaving S3 in front of moto, for the cache's integration tests.

``SlowBackend`` is a threaded HTTP/1.1 forwarder: the worker's ``S3_ENDPOINT`` points at it and
it relays every request, unchanged, to moto. Rules added by a test make chosen requests slow or
broken in the ways a real S3 can be:

* ``delay_request``: hold the request before moto sees it (S3 slow to answer);
* ``delay_response``: let moto answer at once, then hold its answer (the body read from S3
  is *older* than anything that happens during the hold: the superseded-fetch race);
* ``trickle``: relay the body in small pieces with pauses (a slow transfer);
* ``fail_status``: answer with an S3 XML error without asking moto (S3 failing); ``fail_code``
  names the error's ``<Code>`` (default ``InternalError``, ``ServiceUnavailable`` for 503; for
  example ``SlowDown``), ``malformed_xml`` sends a body that is not XML at all instead;
* ``reset``: drop the connection without answering (S3 unreachable);
* ``hang``: read the request and never answer; the connection stays open until the worker
  closes it (S3 accepting and falling silent);
* ``cut_body=N``: relay moto's head and the first N body bytes, then close the connection
  (FIN): a body truncated against its ``Content-Length``;
* ``reset_body=N``: the same, then reset the connection (RST): S3 dying mid-body;
* ``stall_body=N``: the same, then send nothing more until the worker closes the connection
  (S3 stalling mid-body);
* ``chunked``: send moto's body with ``Transfer-Encoding: chunked`` instead of its
  ``Content-Length`` (same bytes, other framing), so that with ``cut_body``/``reset_body``/
  ``stall_body`` the body breaks off without the terminating zero-size chunk.

moto still logs every request the proxy forwards, so ``Stack.backend_requests`` keeps counting
what really reached S3. Nothing here parses or rewrites the S3 protocol: requests and answers
pass through byte-exact (headers in order, body as sent); the rules only change their timing,
cut them short or replace them (``chunked`` changes the framing only, never a body byte).
"""

from __future__ import annotations

import http.client
import select
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass

MAX_HEADER_BYTES = 64 * 1024
RELAY_CHUNK = 64 * 1024
HOLD_LIMIT = 120.0   # longest ``hang``/``stall_body`` hold a connection the worker never closes


@dataclass
class Rule:
    """What to do with requests whose method and path match (``None`` matches anything).

    ``path`` matches the request path without its query, exactly, or as a prefix when it ends
    with ``*``. ``times`` limits how many requests the rule applies to (``None``: all).
    """

    method: str | None = None
    path: str | None = None
    delay_request: float = 0.0
    delay_response: float = 0.0
    trickle: tuple[int, float] | None = None      # (bytes per piece, seconds between pieces)
    fail_status: int | None = None
    fail_code: str | None = None
    malformed_xml: bool = False
    reset: bool = False
    hang: bool = False
    cut_body: int | None = None
    reset_body: int | None = None
    stall_body: int | None = None
    chunked: bool = False
    times: int | None = None
    matched: int = 0

    @property
    def body_limit(self) -> int | None:
        """Body bytes relayed before a ``*_body`` rule breaks the body off."""
        limits = [n for n in (self.cut_body, self.reset_body, self.stall_body) if n is not None]
        assert len(limits) <= 1, "one of cut_body, reset_body, stall_body"
        return limits[0] if limits else None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.path is None:
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


class SlowBackend:
    """The forwarder. ``start()`` binds a free loopback port; ``endpoint`` is the value for
    ``S3_ENDPOINT``. Rules are checked newest first; the first match decides."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port = 0   # after the first start, restarts listen on the same port
        self.seen: list[tuple[float, str, str]] = []   # (monotonic time, method, path) of every request

    @property
    def port(self) -> int:
        assert self._bound_port, "not started"
        return self._bound_port

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "SlowBackend":
        """Listens (again, on the same port after a ``stop``: S3 coming back)."""
        self._server = _Server(("127.0.0.1", self._bound_port), _Handler)
        self._bound_port = self._server.server_address[1]
        self._server.backend = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="slow-backend", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Closes the listening socket and every connection: from now on connecting to
        ``endpoint`` is refused (S3 unreachable) until ``start`` is called again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
            self._server.server_close()
            self._server = None

    def add_rule(self, **options) -> Rule:
        rule = Rule(**options)
        with self._lock:
            self._rules.insert(0, rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def requests_seen(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, m, p in self.seen if (method is None or m == method) and (path is None or p == path))

    def request_times(self, method: str | None = None, path: str | None = None) -> list[float]:
        """Monotonic times (this process's clock) at which matching requests arrived."""
        with self._lock:
            return [at for at, m, p in self.seen if (method is None or m == method) and (path is None or p == path)]

    def _decide(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.seen.append((time.monotonic(), method, path))
            for rule in self._rules:
                if rule.matches(method, path) and (rule.times is None or rule.matched < rule.times):
                    rule.matched += 1
                    return rule
        return None


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    backend: SlowBackend

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(socketserver.StreamRequestHandler):
    """One client connection (keep-alive: many requests), one upstream connection to moto."""

    def handle(self) -> None:
        backend: SlowBackend = self.server.backend
        upstream = http.client.HTTPConnection(*backend.target, timeout=120)
        try:
            while self._relay_one(backend, upstream):
                pass
        except (OSError, http.client.HTTPException):
            pass   # either side went away: nothing to relay to any more
        finally:
            upstream.close()

    @staticmethod
    def _forward(upstream: http.client.HTTPConnection, method: str, target: str, headers: list[tuple[str, str]],
                 body: bytes) -> http.client.HTTPResponse:
        upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            upstream.putheader(name, value)
        upstream.endheaders(body if body else None)
        return upstream.getresponse()

    def _relay_one(self, backend: SlowBackend, upstream: http.client.HTTPConnection) -> bool:
        request_line = self.rfile.readline(MAX_HEADER_BYTES)
        if not request_line.strip():
            return False
        method, target, _version = request_line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        total = len(request_line)
        while True:
            line = self.rfile.readline(MAX_HEADER_BYTES)
            total += len(line)
            if total > MAX_HEADER_BYTES:
                raise http.client.HTTPException("request head too large")
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        lowered = {name.lower(): value for name, value in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            raise http.client.HTTPException("chunked request bodies are not relayed")
        body = self.rfile.read(int(lowered.get("content-length", "0") or 0))

        rule = backend._decide(method, target.split("?", 1)[0])
        if rule is not None and rule.delay_request:
            time.sleep(rule.delay_request)
        if rule is not None and rule.reset:
            # RST instead of FIN: the worker sees a dead connection, not an answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if rule is not None and rule.hang:
            self._hold()
            return False
        if rule is not None and rule.fail_status is not None:
            self._send_error(rule, bodyless=method == "HEAD")
            return True

        try:
            response = self._forward(upstream, method, target, headers, body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # moto closed this kept-alive connection while it sat idle, and the request went out
            # on a dead socket: send it again on a new one, as any client of moto would. The
            # forwarder must stay invisible; the worker's own handling of a backend that drops
            # connections is tested with the `reset` rule.
            upstream.close()
            response = self._forward(upstream, method, target, headers, body)
        if rule is not None and rule.delay_response:
            time.sleep(rule.delay_response)

        bodyless = method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        length = response.getheader("Content-Length")
        pairs = [(name, value) for name, value in response.getheaders() if name.lower() != "transfer-encoding"]
        if rule is not None and not bodyless and (rule.chunked or rule.body_limit is not None):
            return self._relay_faulty(response, pairs, rule)
        if bodyless or length is not None:
            self._send_head(response, pairs)
            remaining = 0 if bodyless else int(length)
            piece, pause = rule.trickle if rule is not None and rule.trickle else (RELAY_CHUNK, 0.0)
            first = True
            while remaining > 0:
                chunk = response.read(min(piece, remaining))
                if not chunk:
                    raise http.client.IncompleteRead(b"")
                if pause and not first:
                    time.sleep(pause)
                first = False
                self.wfile.write(chunk)
                self.wfile.flush()
                remaining -= len(chunk)
            response.read()   # nothing left; lets http.client reuse the connection
        else:
            data = response.read()
            pairs = [(name, value) for name, value in pairs if name.lower() != "content-length"]
            self._send_head(response, pairs + [("Content-Length", str(len(data)))])
            self.wfile.write(data)
            self.wfile.flush()
        return True   # http.client reconnects to moto by itself if moto closed its side

    def _send_head(self, response: http.client.HTTPResponse, pairs: list[tuple[str, str]]) -> None:
        head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in pairs)
        self.wfile.write(head.encode("latin-1") + b"\r\n")
        self.wfile.flush()

    def _relay_faulty(self, response: http.client.HTTPResponse, pairs: list[tuple[str, str]], rule: Rule) -> bool:
        """Relays a body under ``chunked`` and the ``*_body`` rules: the first ``body_limit``
        bytes (all without a limit), then the rule's ending. False: the connection is done."""
        if rule.chunked:
            pairs = [(name, value) for name, value in pairs if name.lower() != "content-length"]
            pairs.append(("Transfer-Encoding", "chunked"))
        self._send_head(response, pairs)
        limit = rule.body_limit
        sent = 0
        while limit is None or sent < limit:
            chunk = response.read(RELAY_CHUNK if limit is None else min(RELAY_CHUNK, limit - sent))
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if rule.chunked else chunk)
            self.wfile.flush()
            sent += len(chunk)
        if limit is None:
            if rule.chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            return True
        if rule.stall_body is not None:
            self._hold()
        elif rule.reset_body is not None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False   # closing: FIN after cut_body and stall_body, RST after reset_body

    def _hold(self) -> None:
        """Sends nothing until the worker closes the connection (or HOLD_LIMIT passes)."""
        deadline = time.monotonic() + HOLD_LIMIT
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            if readable:
                try:
                    if not self.connection.recv(65536):
                        return
                except OSError:
                    return

    def _send_error(self, rule: Rule, bodyless: bool = False) -> None:
        status = rule.fail_status
        code = rule.fail_code or {503: "ServiceUnavailable", 500: "InternalError"}.get(status, "InternalError")
        if rule.malformed_xml:
            body = b"<?xml version=\"1.0\"?><Error><Code>Internal</Co\x00<<not xml at all"
        else:
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>injected by the slow backend</Message><RequestId>slow-backend</RequestId></Error>").encode()
        head = (f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        # An answer to HEAD has the headers of the answer to GET and no body.
        self.wfile.write(head if bodyless else head + body)
        self.wfile.flush()
