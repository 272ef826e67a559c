"""Far more concurrent clients than worker threads, on the shared stack whose FCGI_THREADS is
below nginx's keepalive x worker_processes (conftest.tight_thread_count).

The failure this guards against does not show as an error count: with too few threads, every
thread sits on a connection nginx keeps idle, new connections wait in the listen queue, and a
request completes only after nginx drops an idle connection (keepalive_timeout) or gives up
(504 after fastcgi_read_timeout). So every single request is timed, and each must finish
fast; the client timeout is far below nginx's so a stall fails the test instead of waiting.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from dataclasses import dataclass, field

from conftest import NGINX_WORKERS, shipped_keepalive, tight_thread_count, unique

CLIENTS = 200
GETS_PER_CLIENT = 5
REQUEST_BOUND = 5.0          # seconds; a stall costs tens of seconds
CLIENT_TIMEOUT = 15.0


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def timed_request(connection, method: str, target: str, outcome: Outcome, body: bytes | None = None,
                  expect_status: int = 200, expect_body: bytes | None = None) -> None:
    started = time.monotonic()
    try:
        connection.request(method, target, body=body)
        response = connection.getresponse()
        data = response.read()
    except OSError as error:
        outcome.failures.append(f"{method} {target}: {error!r} after {time.monotonic() - started:.1f} s")
        return
    outcome.latencies.append(time.monotonic() - started)
    if response.status != expect_status:
        outcome.failures.append(f"{method} {target}: {response.status} {data[:120]!r}")
    elif expect_body is not None and data != expect_body:
        outcome.failures.append(f"{method} {target}: wrong body ({len(data)} bytes)")


def run_clients(count: int, work) -> list[Outcome]:
    """Starts ``count`` threads at once (barrier); ``work(index, outcome)`` runs in each."""
    outcomes = [Outcome() for _ in range(count)]
    barrier = threading.Barrier(count)

    def client(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index, outcomes[index])
        except Exception as error:  # noqa: BLE001 - reported as a failure of this client
            outcomes[index].failures.append(repr(error))

    threads = [threading.Thread(target=client, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a client never finished"
    return outcomes


def assert_all_fast(outcomes: list[Outcome], expected_requests: int) -> None:
    failures = [failure for outcome in outcomes for failure in outcome.failures]
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:5]}"
    latencies = sorted(latency for outcome in outcomes for latency in outcome.latencies)
    assert len(latencies) == expected_requests
    slow = [latency for latency in latencies if latency >= REQUEST_BOUND]
    assert not slow, f"{len(slow)} requests took >= {REQUEST_BOUND} s (slowest {latencies[-1]:.1f} s): a stall"


def test_stack_runs_with_fewer_threads_than_kept_connections(stack):
    assert stack.threads == tight_thread_count()
    assert stack.threads < shipped_keepalive() * NGINX_WORKERS
    assert CLIENTS > 4 * stack.threads


def test_many_more_keepalive_clients_than_threads_never_stall(stack):
    objects = {}
    for index in range(8):
        key = f"{unique('burst')}/small-{index}.txt"
        objects[f"/objects/public/{key}"] = f"small object {index}\n".encode() * 20
        stack.boto3.put_object(Bucket="public", Key=key, Body=objects[f"/objects/public/{key}"])
    targets = list(objects)
    for target in targets:   # cached before the burst: the burst measures the transport
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=CLIENT_TIMEOUT)
        connection.request("GET", target)
        assert connection.getresponse().read() == objects[target]
        connection.close()

    def work(index: int, outcome: Outcome) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=CLIENT_TIMEOUT)
        try:
            for round_ in range(GETS_PER_CLIENT):
                target = targets[(index + round_) % len(targets)]
                timed_request(connection, "GET", target, outcome, expect_body=objects[target])
            timed_request(connection, "GET", "/health", outcome)
        finally:
            connection.close()

    outcomes = run_clients(CLIENTS, work)
    assert_all_fast(outcomes, CLIENTS * (GETS_PER_CLIENT + 1))


def test_mixed_burst_with_writes_never_stalls(stack):
    """Writers (PUT, GET of their own object, which misses, DELETE) among cached readers. Fewer
    writers than BACKEND_CONCURRENCY (3/4 of the threads by default), so none may be refused."""
    writers, readers = 24, 80
    assert writers < stack.threads * 3 // 4   # UPLOAD_CONCURRENCY's default, apart from reads' BACKEND_CONCURRENCY
    reader_key = f"{unique('mixed')}/shared.txt"
    shared = b"shared, cached\n" * 50
    stack.boto3.put_object(Bucket="public", Key=reader_key, Body=shared)
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=CLIENT_TIMEOUT)
    connection.request("GET", f"/objects/public/{reader_key}")
    assert connection.getresponse().read() == shared
    connection.close()
    prefix = unique("mixed")

    def work(index: int, outcome: Outcome) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=CLIENT_TIMEOUT)
        try:
            if index < writers:
                target = f"/objects/local/{prefix}/writer-{index}.bin"
                body = os.urandom(32_000)
                timed_request(connection, "PUT", target, outcome, body=body)
                timed_request(connection, "GET", target, outcome, expect_body=body)
                timed_request(connection, "DELETE", target, outcome, expect_status=204)
            else:
                for _ in range(3):
                    timed_request(connection, "GET", f"/objects/public/{reader_key}", outcome, expect_body=shared)
        finally:
            connection.close()

    outcomes = run_clients(writers + readers, work)
    assert_all_fast(outcomes, writers * 3 + readers * 3)
    assert stack.boto3.list_objects_v2(Bucket="local", Prefix=prefix).get("KeyCount") == 0
