"""Operating the worker like a Debian service: metrics, readiness, configuration file and live
reload, the command line, systemd's notify protocol, and graceful stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import assert_json_error, raw_request, start_stack, unique
from stack import wait_until

# One sample line of the text exposition format: name{labels} value
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(stack) -> dict[tuple[str, frozenset], float]:
    """GET /metrics, parsed: (name, labels) -> value. Also checks the exposition's shape."""
    reply = raw_request(stack, "GET", "/metrics")
    assert reply.status == 200
    assert reply.content_type.startswith("text/plain; version=0.0.4")
    samples: dict[tuple[str, frozenset], float] = {}
    described = set()
    for line in reply.body.decode().splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            described.add(line.split()[2])
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    for name, _ in samples:
        family = re.sub(r"_(bucket|count|sum)$", "", name)
        assert name.startswith("s3cache_"), name
        assert family in described or name in described, f"{name} has no HELP/TYPE"
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name: str, **labels) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


# ---------------------------------------------------------------------------------------------
# metrics and readiness


@pytest.fixture(scope="module")
def fresh():
    """A stack of its own, so counters start from zero."""
    s = start_stack(extra_buckets=["other"])
    yield s
    s.stop()


def test_metrics_count_a_known_sequence(fresh):
    key = unique("metrics")
    fresh.boto3.put_object(Bucket="public", Key=key, Body=b"x" * 2000, ContentType="application/json")
    before = scrape(fresh)
    assert raw_request(fresh, "GET", f"/objects/public/{key}").headers["x-cache"] == "MISS"
    assert raw_request(fresh, "GET", f"/objects/public/{key}").headers["x-cache"] == "HIT"
    assert raw_request(fresh, "GET", f"/objects/public/{key}").headers["x-cache"] == "HIT"
    assert raw_request(fresh, "GET", f"/objects/public/{unique('missing')}").status == 404
    assert raw_request(fresh, "PUT", f"/objects/local/{key}", body=b"hello").status == 200
    assert raw_request(fresh, "DELETE", f"/objects/local/{key}").status == 204
    assert raw_request(fresh, "GET", f"/objects/other/{key}").status == 403
    after = scrape(fresh)

    def grew(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("s3cache_requests_total", method="GET", status="200", bucket="public") == 3
    assert grew("s3cache_requests_total", method="GET", status="404", bucket="public") == 1
    assert grew("s3cache_requests_total", method="PUT", status="200", bucket="local") == 1
    assert grew("s3cache_requests_total", method="DELETE", status="204", bucket="local") == 1
    # An unlisted bucket never becomes a label value.
    assert grew("s3cache_requests_total", method="GET", status="403", bucket="-") == 1
    assert not any(("bucket", "other") in labels for (_, labels) in after)
    assert grew("s3cache_request_duration_seconds_count", method="GET") >= 4
    assert grew("s3cache_cache_hits_total") == 2
    assert grew("s3cache_cache_misses_total") == 2          # the object and the 404
    assert grew("s3cache_cache_served_bytes_total") == 4000
    assert grew("s3cache_backend_requests_total", operation="get", outcome="ok") == 1
    assert grew("s3cache_backend_requests_total", operation="get", outcome="not_found") == 1
    assert grew("s3cache_backend_requests_total", operation="put", outcome="ok") == 1
    assert grew("s3cache_backend_requests_total", operation="delete", outcome="ok") == 1
    assert grew("s3cache_backend_request_duration_seconds_count", operation="get") == 2
    assert total(after, "s3cache_backend_errors_total") == 0
    assert value(after, "s3cache_cache_capacity_bytes") == 300 * 1024 * 1024
    assert 0 < value(after, "s3cache_cache_bytes") <= value(after, "s3cache_cache_capacity_bytes")
    assert value(after, "s3cache_cache_entries") >= 2
    assert value(after, "s3cache_build_info", version=fresh_version(fresh)) == 1


def fresh_version(stack) -> str:
    out = subprocess.run([str(stack.binary), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[-1]


def test_health_and_ready(fresh):
    health = raw_request(fresh, "GET", "/health")
    assert health.status == 200 and health.json() == {"status": "ok"}
    ready = raw_request(fresh, "GET", "/ready")
    assert ready.status == 200, ready.body
    assert ready.json()["status"] == "ready"
    assert_json_error(raw_request(fresh, "POST", "/ready", body=b""), 405, "method_not_allowed")


def test_ready_checks_s3_at_most_once_per_interval(fresh):
    before = fresh.backend_requests("HEAD")
    for _ in range(20):
        assert raw_request(fresh, "GET", "/ready").status == 200
    # Three buckets are checked per round; 20 probes within a few seconds make at most two rounds.
    assert fresh.backend_requests("HEAD") - before <= 6


def test_ready_fails_when_s3_is_down():
    s = start_stack()
    try:
        assert raw_request(s, "GET", "/ready").status == 200
        s.stop_backend()

        def not_ready():
            reply = raw_request(s, "GET", "/ready")
            return reply if reply.status == 503 else None

        reply = wait_until(not_ready, 15, "/ready to answer 503 once S3 is down", interval=0.5)
        assert reply.json()["status"] == "not_ready"
        assert "unreachable" in reply.json()["reason"]
        # Liveness does not depend on S3.
        assert raw_request(s, "GET", "/health").status == 200
    finally:
        s.stop()


# ---------------------------------------------------------------------------------------------
# configuration file, reload, command line


def write_config(path: Path, **values: str) -> None:
    lines = ["# written by test_operations.py", ""]
    lines += [f'{name}="{value}"' for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def configured(tmp_path):
    config = tmp_path / "s3cache.conf"
    write_config(config, ALLOWED_BUCKETS="public:read,local:all", CACHE_TTL="300")
    s = start_stack(worker_args=["--config", str(config)])
    s.config_path = config
    yield s
    s.stop()


def reload(stack, message: str) -> dict:
    """SIGHUP, then the log line that says how the reload went."""
    seen = len([r for r in stack.worker_log_lines() if r.get("msg") == message])
    os.kill(stack.worker_pid, signal.SIGHUP)
    return wait_until(lambda: ([r for r in stack.worker_log_lines() if r.get("msg") == message][seen:] or [None])[0],
                      10, f"log line {message!r}")


def test_reload_changes_a_bucket_rule_live(configured):
    key = unique("reload")
    assert_json_error(raw_request(configured, "PUT", f"/objects/public/{key}", body=b"v1"), 403, "forbidden")
    write_config(configured.config_path, ALLOWED_BUCKETS="public:all,local:all")
    record = reload(configured, "configuration reloaded")
    assert record["buckets"] == "local:all,public:all"
    assert raw_request(configured, "PUT", f"/objects/public/{key}", body=b"v1").status == 200
    assert configured.worker_alive()


def test_a_bad_reload_keeps_the_old_rules(configured):
    key = unique("badreload")
    write_config(configured.config_path, ALLOWED_BUCKETS="public:everything,local:all")
    record = reload(configured, "configuration reload refused; the current configuration stays")
    assert "ALLOWED_BUCKETS" in record["error"]
    assert_json_error(raw_request(configured, "PUT", f"/objects/public/{key}", body=b"x"), 403, "forbidden")
    assert raw_request(configured, "PUT", f"/objects/local/{key}", body=b"x").status == 200
    samples = scrape(configured)
    assert value(samples, "s3cache_config_reloads_total", result="refused") == 1


def test_reload_reports_settings_that_need_a_restart(configured):
    write_config(configured.config_path, ALLOWED_BUCKETS="public:read,local:all", FCGI_THREADS="99")
    record = reload(configured, "configuration reloaded")
    assert set(record["needs_restart"].split(",")) == {"FCGI_THREADS"}
    write_config(configured.config_path, ALLOWED_BUCKETS="public:read,local:all", FCGI_THREADS="99",
                 BACKEND_CONCURRENCY="7", UPLOAD_CONCURRENCY="5")
    record = reload(configured, "configuration reloaded")
    assert set(record["needs_restart"].split(",")) == {"FCGI_THREADS", "BACKEND_CONCURRENCY", "UPLOAD_CONCURRENCY"}


def run_binary(stack_or_binary, *args, env=None):
    binary = str(getattr(stack_or_binary, "binary", stack_or_binary))
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30,
                          env=env if env is not None else {"PATH": "/usr/bin:/bin"})


def test_check_config(configured, tmp_path):
    good = run_binary(configured, "--check-config", "--config", str(configured.config_path))
    assert good.returncode == 0, good.stderr
    assert "configuration OK" in good.stdout

    bad = tmp_path / "bad.conf"
    write_config(bad, FCGI_THREADS="lots", S3_SECRET_KEY="hunter2-very-secret")
    result = run_binary(configured, "--check-config", "--config", str(bad))
    assert result.returncode == 78
    assert "FCGI_THREADS" in result.stderr and "lots" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout

    broken = tmp_path / "broken.conf"
    broken.write_text("ALLOWED_BUCKETS=public:read\nthis line has no equals sign\n")
    result = run_binary(configured, "-t", "-c", str(broken))
    assert result.returncode == 78 and f"{broken}:2" in result.stderr

    missing = run_binary(configured, "--check-config", "--config", str(tmp_path / "absent.conf"))
    assert missing.returncode == 78 and "cannot open" in missing.stderr

    # The environment overrides the file.
    overridden = run_binary(configured, "--check-config", "--config", str(bad),
                            env={"PATH": "/usr/bin:/bin", "FCGI_THREADS": "16"})
    assert overridden.returncode == 0, overridden.stderr


def test_version_help_and_usage_errors(configured):
    version = run_binary(configured, "--version")
    assert version.returncode == 0 and re.fullmatch(r"s3cache \d+\.\d+\.\d+\n", version.stdout)
    help_text = run_binary(configured, "--help")
    assert help_text.returncode == 0 and "--check-config" in help_text.stdout and "--config" in help_text.stdout
    wrong = run_binary(configured, "--frobnicate")
    assert wrong.returncode == 64 and "unknown argument --frobnicate" in wrong.stderr


# ---------------------------------------------------------------------------------------------
# systemd's notify protocol


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; collects what the worker sends."""

    def __init__(self, directory: Path):
        self.path = directory / "notify.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.socket.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, predicate, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if predicate(message):
                    self.messages.remove(message)
                    return message
            try:
                self.messages.append(self.socket.recv(4096).decode())
            except socket.timeout:
                pass
        raise AssertionError(f"no matching notification; got {self.messages}")


def test_notify_protocol(tmp_path):
    os.chmod(tmp_path, 0o755)
    notify = NotifySocket(tmp_path)
    config = tmp_path / "s3cache.conf"
    write_config(config, ALLOWED_BUCKETS="public:read")
    s = start_stack(worker_args=["--config", str(config)],
                    worker_env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
    try:
        ready = notify.wait_for(lambda m: "READY=1" in m)
        assert f"MAINPID={s.worker_pid}" in ready
        assert re.search(r"STATUS=serving: \d+ entries", ready)
        notify.wait_for(lambda m: m == "WATCHDOG=1", timeout=2)
        notify.wait_for(lambda m: m == "WATCHDOG=1", timeout=2)

        os.kill(s.worker_pid, signal.SIGHUP)
        notify.wait_for(lambda m: m == "RELOADING=1")
        notify.wait_for(lambda m: m == "READY=1")

        os.kill(s.worker_pid, signal.SIGTERM)
        notify.wait_for(lambda m: m == "STOPPING=1")
        assert s.stop_worker() == 0
    finally:
        s.stop()
        notify.socket.close()


# ---------------------------------------------------------------------------------------------
# graceful stop and restart with the socket held the way systemd holds it


def test_sigterm_lets_a_request_in_flight_finish(fresh_stack_for_stop):
    s = fresh_stack_for_stop
    key = unique("inflight")
    body = os.urandom(512 * 1024)
    connection = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    connection.sendall(f"PUT /objects/local/{key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
                       f"Connection: close\r\n\r\n".encode() + body[:1000])
    # The worker has the request (its log would say so only at the end): wait until it reads the body.
    time.sleep(0.5)
    os.kill(s.worker_pid, signal.SIGTERM)
    time.sleep(0.3)
    assert s.worker_alive(), "the worker exited with a request in flight"
    connection.sendall(body[1000:])
    response = b""
    while chunk := connection.recv(65536):
        response += chunk
    connection.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:300]
    assert s.boto3.get_object(Bucket="local", Key=key)["Body"].read() == body
    assert s.worker.popen.wait(10) == 0


@pytest.fixture()
def fresh_stack_for_stop():
    s = start_stack()
    yield s
    s.stop()


class HeldSocket:
    """The listen socket held by this test, as systemd holds s3cache.socket: workers come and go,
    the socket (and the connections queued on it) stays."""

    def __init__(self, path: Path):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.bind(str(path))
        os.chmod(path, 0o666)
        self.socket.listen(1024)

    def start_worker(self, stack, log: Path) -> subprocess.Popen:
        env = stack.worker_environment()
        env.pop("FCGI_LISTEN")
        fd = self.socket.fileno()

        def as_systemd_does():
            os.setsid()
            os.dup2(fd, 3)
            os.set_inheritable(3, True)

        out = open(log, "ab")
        # LISTEN_PID must be the worker's own PID: the shell sets it to $$ and then execs the worker.
        # close_fds=False: the socket is dup'ed to fd 3 in the child, which closing would undo.
        return subprocess.Popen(
            ["/bin/sh", "-c", 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0"', str(stack.binary)],
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, preexec_fn=as_systemd_does, close_fds=False)


def test_restart_under_load_fails_no_request(tmp_path):
    s = Stack_without_worker()
    held = HeldSocket(s.socket_path)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    keys = [unique("restart") for _ in range(8)]
    for key in keys:
        s.boto3.put_object(Bucket="public", Key=key, Body=key.encode() * 100)
    first = held.start_worker(s, logs[0])
    failures: list[str] = []
    counts = {"ok": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def client(index: int):
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        n = 0
        while not stop.is_set():
            n += 1
            method, path = ("GET", f"/objects/public/{keys[n % len(keys)]}")
            if n % 7 == 0:
                method, path = "PUT", f"/objects/local/{unique('w')}"
            try:
                connection.request(method, path, body=b"data" if method == "PUT" else None)
                response = connection.getresponse()
                data = response.read()
                ok = response.status == 200 and (method == "PUT" or data.startswith(path.rsplit("/", 1)[1].encode()))
                with lock:
                    if ok:
                        counts["ok"] += 1
                    else:
                        failures.append(f"{method} {path}: {response.status} {data[:200]!r}")
            except Exception as error:  # noqa: BLE001 - every failure is counted
                with lock:
                    failures.append(f"{method} {path}: {error!r}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        connection.close()

    try:
        s.wait_healthy()
        clients = [threading.Thread(target=client, args=(i,)) for i in range(24)]
        for thread in clients:
            thread.start()
        time.sleep(1.5)
        served_before = counts["ok"]
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        time.sleep(0.2)                       # systemd's restart gap: connections queue meanwhile
        second = held.start_worker(s, logs[1])
        time.sleep(1.5)
        stop.set()
        for thread in clients:
            thread.join(30)
        assert not failures, f"{len(failures)} failed requests, e.g. {failures[:5]}"
        assert served_before > 50 and counts["ok"] > served_before + 50
        assert '"msg":"request"' in logs[1].read_text(), "the second worker served nothing"
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        stop.set()
        for process in ("first", "second"):
            worker = locals().get(process)
            if worker is not None and worker.poll() is None:
                worker.kill()
        s.stop()


def Stack_without_worker():
    """moto and nginx with the shipped snippets pointing at a socket this test holds."""
    return start_stack(start_worker=False, threads=48)
