"""What the client gets when S3 fails: unreachable (502), silent (504), refusing the gateway's
credentials (502 ``backend_denied``), each within a bounded time, with the worker still up
and no secret in any answer or log line.

Each failure has a stack of its own: moto stopped; a backend that accepts connections and never
answers; one whose accept queue is full (connects time out); moto verifying signatures.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import assert_json_error, raw_request, start_stack, unique

READ_TIMEOUT = 1
CONNECT_TIMEOUT = 0.5


def assert_worker_fine(stack) -> None:
    assert stack.worker_alive(), stack.worker_output()[-3000:]
    assert raw_request(stack, "GET", "/health").status == 200
    assert stack.secret_key not in stack.worker_output()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def request_log(stack, key: str) -> dict:
    return stack.wait_for_log(lambda record: record.get("key") == key)


# ---------------------------------------------------------------------------------------------
# S3 down: connection refused


@pytest.fixture(scope="module")
def backend_down():
    s = start_stack()
    try:
        s.stop_backend()
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_unreachable_backend_is_502_at_once(backend_down, method):
    key = unique("down")
    reply, elapsed = timed(lambda: raw_request(backend_down, method, f"/objects/local/{key}",
                                               body=b"x" * 100_000 if method == "PUT" else None))
    assert_json_error(reply, 502, "bad_gateway", head=method == "HEAD")
    assert elapsed < 2, f"{method} took {elapsed:.1f} s to report a refused connection"
    record = request_log(backend_down, key)
    assert record["level"] == "error" and record["status"] == 502
    assert "unreachable" in record["error"], record
    assert_worker_fine(backend_down)


def test_unreachable_backend_never_ties_up_threads(backend_down):
    """More failing requests than threads in a row: each answered at once, none left hanging."""
    started = time.monotonic()
    for _ in range(100):
        assert_json_error(raw_request(backend_down, "GET", f"/objects/public/{unique('down')}"), 502, "bad_gateway")
    assert time.monotonic() - started < 20
    assert_worker_fine(backend_down)


# ---------------------------------------------------------------------------------------------
# S3 accepts connections and never answers: read timeout


class SilentBackend:
    """A TCP listener that accepts every connection, reads nothing and never answers."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture(scope="module")
def silent_backend():
    backend = SilentBackend()
    s = start_stack(worker_env={"S3_ENDPOINT": f"127.0.0.1:{backend.port}", "S3_READ_TIMEOUT": str(READ_TIMEOUT),
                                "S3_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
                                "BACKEND_CONCURRENCY": str(SILENT_BACKEND_CONCURRENCY)})
    s.silent = backend
    try:
        yield s
    finally:
        s.stop()
        backend.close()


SILENT_BACKEND_CONCURRENCY = 2


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_silent_backend_is_504_after_the_read_timeout(silent_backend, method):
    key = unique("silent")
    reply, elapsed = timed(lambda: raw_request(silent_backend, method, f"/objects/local/{key}"))
    assert_json_error(reply, 504, "gateway_timeout", head=method == "HEAD")
    assert READ_TIMEOUT <= elapsed < READ_TIMEOUT + 4, f"{method} answered after {elapsed:.1f} s"
    assert request_log(silent_backend, key)["status"] == 504
    assert_worker_fine(silent_backend)


def test_silent_backend_put_is_504(silent_backend):
    """The body went out before the silence, so libcurl's low-speed check (a read timeout
    measured as an average over its last few seconds) fires a few seconds later than for a
    GET; still far inside nginx's fastcgi_read_timeout."""
    key = unique("silentput")
    reply, elapsed = timed(lambda: raw_request(silent_backend, "PUT", f"/objects/local/{key}", body=b"tiny"))
    assert_json_error(reply, 504, "gateway_timeout")
    assert elapsed < READ_TIMEOUT + 9, f"PUT answered after {elapsed:.1f} s"
    assert_worker_fine(silent_backend)


# ---------------------------------------------------------------------------------------------
# S3 does not complete the TCP handshake: connect timeout


class FullBacklogBackend:
    """A listener whose accept queue is full, so further connection attempts get no answer."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port = self.listener.getsockname()[1]
        # Linux queues one connection with backlog 0 and drops SYNs beyond it.
        self.filler = socket.socket()
        self.filler.setblocking(False)
        self.filler.connect_ex(("127.0.0.1", self.port))
        time.sleep(0.1)

    def close(self) -> None:
        self.filler.close()
        self.listener.close()


@pytest.fixture(scope="module")
def unresponsive_backend():
    backend = FullBacklogBackend()
    s = start_stack(worker_env={"S3_ENDPOINT": f"127.0.0.1:{backend.port}", "S3_READ_TIMEOUT": str(READ_TIMEOUT),
                                "S3_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)})
    try:
        yield s
    finally:
        s.stop()
        backend.close()


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_connect_timeout_is_504(unresponsive_backend, method):
    key = unique("noconnect")
    reply, elapsed = timed(lambda: raw_request(unresponsive_backend, method, f"/objects/local/{key}",
                                               body=b"body" if method == "PUT" else None))
    assert_json_error(reply, 504, "gateway_timeout")
    assert elapsed < CONNECT_TIMEOUT + 3, f"{method} answered after {elapsed:.1f} s"
    assert_worker_fine(unresponsive_backend)


# ---------------------------------------------------------------------------------------------
# S3 refuses the gateway's credentials


@pytest.fixture(scope="module")
def verifying():
    """moto verifying SigV4 (NOTES.md): an IAM user with s3:* and a generated key pair. The
    object ``private/plain.txt`` is put before verification starts."""
    s = start_stack()
    try:
        s.boto3.put_object(Bucket="private", Key="plain.txt", Body=b"signed read")
        iam = boto3.client("iam", endpoint_url=s.s3_url, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="gateway")
        iam.put_user_policy(UserName="gateway", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="gateway")["AccessKey"]
        connection = http.client.HTTPConnection("127.0.0.1", s.moto_port, timeout=10)
        connection.request("POST", "/moto-api/reset-auth", body=b"0", headers={"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
        connection.close()
        s.iam_access_key, s.iam_secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        s.signed_boto3 = boto3.client(
            "s3", endpoint_url=s.s3_url, region_name="us-east-1", aws_access_key_id=s.iam_access_key,
            aws_secret_access_key=s.iam_secret_key, config=Config(s3={"addressing_style": "path"}))
        yield s
    finally:
        s.stop()


def test_right_credentials_are_accepted_by_the_verifying_backend(verifying):
    """The control for the test below: with the generated pair everything works."""
    verifying.restart_worker({"S3_ACCESS_KEY": verifying.iam_access_key, "S3_SECRET_KEY": verifying.iam_secret_key})
    assert raw_request(verifying, "GET", "/objects/private/plain.txt").body == b"signed read"
    key = unique("signed")
    assert raw_request(verifying, "PUT", f"/objects/private/{key}", body=b"signed write").status == 200
    assert verifying.signed_boto3.get_object(Bucket="private", Key=key)["Body"].read() == b"signed write"
    assert raw_request(verifying, "DELETE", f"/objects/private/{key}").status == 204
    assert verifying.iam_secret_key not in verifying.worker_output()


@pytest.mark.parametrize("access_key", ["generated", "unknown"])
def test_wrong_credentials_are_502_backend_denied_without_the_secret(verifying, access_key):
    """A known access key with a wrong secret (SignatureDoesNotMatch) or an unknown key
    (InvalidAccessKeyId): our misconfiguration, so 502, never a 403 the client could act on."""
    wrong_secret = verifying.secret_key    # distinctive, and not the generated key's secret
    verifying.restart_worker({
        "S3_ACCESS_KEY": verifying.iam_access_key if access_key == "generated" else "AKIANOTKNOWNTOMOTO00",
        "S3_SECRET_KEY": wrong_secret})
    new_key = unique("denied")
    for method, target, body in [("GET", "/objects/private/plain.txt", None), ("HEAD", "/objects/private/plain.txt", None),
                                 ("PUT", f"/objects/private/{new_key}", b"must not be stored"),
                                 ("DELETE", "/objects/private/plain.txt", None)]:
        reply, elapsed = timed(lambda: raw_request(verifying, method, target, body=body))
        document = assert_json_error(reply, 502, "backend_denied", head=method == "HEAD")
        assert elapsed < 5
        if document is not None:
            assert wrong_secret not in document["message"] and verifying.iam_secret_key not in document["message"]
        assert wrong_secret.encode() not in reply.body and wrong_secret not in str(reply.header_list)
    assert verifying.signed_boto3.get_object(Bucket="private", Key="plain.txt")["Body"].read() == b"signed read"
    with pytest.raises(ClientError) as caught:
        verifying.signed_boto3.head_object(Bucket="private", Key=new_key)
    assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    output = verifying.worker_output()
    assert wrong_secret not in output and verifying.iam_secret_key not in output
    assert verifying.worker_alive()


def test_requests_past_backend_concurrency_are_refused_at_once(silent_backend):
    """While BACKEND_CONCURRENCY requests wait on the silent backend, the next read or DELETE
    gets 503 with Retry-After at once instead of queueing behind them, and the worker keeps
    answering what needs no S3. (PUTs count against UPLOAD_CONCURRENCY instead: test_load.py.)"""
    waiting = []
    connected = len(silent_backend.silent.held)
    threads = [threading.Thread(target=lambda: waiting.append(
        raw_request(silent_backend, "GET", f"/objects/local/{unique('holder')}").status))
        for _ in range(SILENT_BACKEND_CONCURRENCY)]
    for thread in threads:
        thread.start()
    try:
        # Both hold a permit once their requests reached the backend (they then wait a READ_TIMEOUT).
        deadline = time.monotonic() + 5
        while len(silent_backend.silent.held) < connected + SILENT_BACKEND_CONCURRENCY:
            assert time.monotonic() < deadline, "the requests holding the permits never reached the backend"
            time.sleep(0.01)
        for method in ("GET", "DELETE"):
            reply, elapsed = timed(lambda: raw_request(silent_backend, method, f"/objects/local/{unique('busy')}"))
            assert_json_error(reply, 503, "backend_busy")
            assert reply.headers.get("retry-after") == "1"
            assert elapsed < 0.5, f"{method} waited {elapsed:.2f} s for a permit"
        health, elapsed = timed(lambda: raw_request(silent_backend, "GET", "/health"))
        assert health.status == 200 and elapsed < 0.5
    finally:
        for thread in threads:
            thread.join(timeout=30)
    assert waiting == [504] * SILENT_BACKEND_CONCURRENCY
    assert_worker_fine(silent_backend)
