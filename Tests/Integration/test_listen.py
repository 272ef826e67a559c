"""Where the worker listens when systemd does not hand it a socket: FCGI_LISTEN as a Unix socket
path (created with FCGI_SOCKET_MODE, a stale file from a crashed worker replaced, a live one or a
non-socket refused) or as host:port. The worker is started on its own, without nginx."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import fcgi_params, fcgi_request
from stack import DEFAULT_BINARY, free_port, wait_until

BINARY = Path(os.environ.get("S3CACHE_BIN") or DEFAULT_BINARY)


def start_worker(tmp_path: Path, **env: str) -> subprocess.Popen:
    environment = {"PATH": "/usr/bin:/bin", "S3_ENDPOINT": "127.0.0.1:9", "FCGI_THREADS": "4", **env}
    log = open(tmp_path / "worker.log", "ab")
    try:
        return subprocess.Popen([str(BINARY)], env=environment, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def stop(worker: subprocess.Popen) -> int:
    if worker.poll() is None:
        worker.terminate()
    return worker.wait(15)


def health(address) -> int:
    return fcgi_request(address, fcgi_params("GET", "/health")).status


def accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
            return True
        except OSError:
            return False


def test_unix_socket_with_the_configured_mode(tmp_path):
    path = tmp_path / "s3cache.sock"
    worker = start_worker(tmp_path, FCGI_LISTEN=str(path), FCGI_SOCKET_MODE="0640")
    try:
        wait_until(lambda: accepts(path), 15, "the worker's socket")
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert health(path) == 200
    finally:
        assert stop(worker) == 0


def test_a_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / "s3cache.sock"
    # What a crashed worker leaves behind: a socket file nobody listens on.
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    assert path.exists() and not accepts(path)
    worker = start_worker(tmp_path, FCGI_LISTEN=str(path))
    try:
        wait_until(lambda: accepts(path), 15, "the worker's socket")
        assert health(path) == 200
    finally:
        assert stop(worker) == 0


def test_a_socket_another_process_serves_is_not_taken(tmp_path):
    path = tmp_path / "s3cache.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    other.listen(8)
    try:
        worker = start_worker(tmp_path, FCGI_LISTEN=str(path))
        assert worker.wait(15) != 0
        assert "served by another running process" in (tmp_path / "worker.log").read_text()
        assert accepts(path), "the other process's socket must be left alone"
    finally:
        other.close()


def test_a_file_that_is_not_a_socket_is_not_replaced(tmp_path):
    path = tmp_path / "s3cache.sock"
    path.write_text("precious")
    worker = start_worker(tmp_path, FCGI_LISTEN=str(path))
    assert worker.wait(15) != 0
    assert "is not a socket" in (tmp_path / "worker.log").read_text()
    assert path.read_text() == "precious"


def test_tcp_host_and_port(tmp_path):
    port = free_port()
    worker = start_worker(tmp_path, FCGI_LISTEN=f"127.0.0.1:{port}")
    try:
        def answers():
            try:
                return health(("127.0.0.1", port)) == 200
            except OSError:
                return False

        wait_until(answers, 15, "the worker on TCP")
    finally:
        assert stop(worker) == 0


@pytest.mark.parametrize("value", ["nowhere", "127.0.0.1:0", "127.0.0.1:99999", ":"])
def test_a_bad_listen_address_stops_the_start(tmp_path, value):
    worker = start_worker(tmp_path, FCGI_LISTEN=value)
    assert worker.wait(15) == 78
    assert "FCGI_LISTEN" in (tmp_path / "worker.log").read_text()
