"""Load: stampedes never become errors, followers of an object too large to keep are released
as soon as S3's head says so, and cache fills in flight share a byte budget.

Each test starts the stack with the worker's defaults except where the property needs a
setting (a small FILL_BUDGET, a small MAX_OBJECT_SIZE)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache_support import cache_status, concurrent_gets, get, start_cache_stack, stats, wait_for
from conftest import raw_request, unique


@pytest.fixture(scope="module")
def default_stack():
    """The worker's defaults (64 threads, BACKEND_CONCURRENCY 48), the shipped nginx snippets."""
    c = start_cache_stack(slow_backend=True)
    yield c
    c.stop()


@pytest.mark.parametrize("size", [1024, 1 << 20, 10 << 20], ids=["1KiB", "1MiB", "10MiB"])
def test_a_stampede_of_200_gets_200_answers_and_makes_one_backend_get(default_stack, size):
    stack, backend = default_stack.stack, default_stack.backend
    key = f"{unique('stampede')}.bin"
    body = os.urandom(size)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    # S3 takes a moment to answer, so that every client arrives while the fetch is in flight.
    backend.add_rule(method="GET", path=f"/public/{key}", delay_request=1.0, times=1)
    replies = [reply for _, _, reply in concurrent_gets(stack, "public", key, 200, timeout=90)]
    statuses: dict[int, int] = {}
    for reply in replies:
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
    assert statuses == {200: 200}, statuses
    digest = hashlib.sha256(body).digest()
    assert all(hashlib.sha256(reply.body).digest() == digest for reply in replies)
    assert backend.requests_seen("GET", f"/public/{key}") == 1


@pytest.fixture(scope="module")
def small_objects():
    """Objects over 256 KiB are not kept; fills share 2 MiB."""
    c = start_cache_stack(slow_backend=True, worker_env={
        "MAX_CACHE_SIZE": "8M", "MAX_OBJECT_SIZE": "256K", "FILL_BUDGET": "2M"})
    yield c
    c.stop()


def test_followers_of_a_too_large_object_get_bytes_before_the_leader_finishes(small_objects):
    stack, backend = small_objects.stack, small_objects.backend
    key = f"{unique('large')}.bin"
    body = os.urandom(1 << 20)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    # The leader's download trickles for about 8 s; the followers' own downloads are fast.
    backend.add_rule(method="GET", path=f"/public/{key}", trickle=(64 * 1024, 0.5), times=1)
    results: list[tuple[float, float, bytes]] = []
    lock = threading.Lock()

    def fetch():
        started = time.monotonic()
        reply = get(stack, "public", key, timeout=60)
        with lock:
            results.append((started, time.monotonic() - started, reply.body))

    leader = threading.Thread(target=fetch)
    leader.start()
    wait_for(lambda: backend.requests_seen("GET", f"/public/{key}") >= 1, 10, "the leader's GET")
    time.sleep(0.5)
    followers = [threading.Thread(target=fetch) for _ in range(3)]
    for follower in followers:
        follower.start()
    for thread in [leader, *followers]:
        thread.join(60)
    assert len(results) == 4 and all(body_ == body for _, _, body_ in results)
    slowest = max(seconds for _, seconds, _ in results)
    fastest = min(seconds for _, seconds, _ in results)
    assert slowest > 6, f"the leader's download was not slow ({slowest:.1f} s): the test proves nothing"
    assert fastest < 3, f"followers waited for the leader's whole download ({fastest:.1f} s)"


def test_fills_in_flight_share_the_fill_budget(small_objects):
    """Sixteen concurrent misses of 200 KiB objects (each cacheable) need 3.2 MiB of fill
    buffers; with FILL_BUDGET=2M ten fit, the rest stream through uncached, all bytes are right,
    and the budget is all given back."""
    stack, backend = small_objects.stack, small_objects.backend
    keys = [f"{unique('fill')}.bin" for _ in range(16)]
    bodies = {key: os.urandom(200 * 1024) for key in keys}
    for key, body in bodies.items():
        stack.boto3.put_object(Bucket="public", Key=key, Body=body)
        # Each body takes about 2 s, so that every fill is open when the last head arrives.
        backend.add_rule(method="GET", path=f"/public/{key}", trickle=(50 * 1024, 0.5), times=1)
    barrier = threading.Barrier(len(keys))

    def one(key):
        barrier.wait()
        return key, get(stack, "public", key, timeout=60)

    with ThreadPoolExecutor(len(keys)) as pool:
        results = list(pool.map(one, keys))
    details = []
    for key, reply in results:
        assert reply.status == 200 and reply.body == bodies[key]
        _, parameters = cache_status(reply)
        details.append(parameters.get("detail"))
    assert details.count("fill-budget") >= 4, details
    assert details.count(None) >= 8, details
    wait_for(lambda: stats(stack)["fill_bytes_in_flight"] == 0, 10, "the fill budget to be given back")
    assert stats(stack)["fill_budget_bytes"] == 2 << 20


@pytest.fixture(scope="module")
def upload_bound():
    c = start_cache_stack(threads=32, worker_env={"UPLOAD_CONCURRENCY": "4", "BACKEND_CONCURRENCY": "16"})
    yield c
    c.stop()


class SlowUpload:
    """A PUT whose body trickles at about 1 KiB/s on its own connection; ``finish`` reads the answer."""

    def __init__(self, port: int, key: str, size: int = 64 * 1024):
        import socket
        self.size = size
        self.key = key
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.socket.sendall((f"PUT /objects/local/{key} HTTP/1.1\r\nHost: localhost\r\n"
                             f"Content-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n").encode())
        self.sent = 0
        self.answer = b""

    def trickle(self, count: int = 1024) -> None:
        if self.sent < self.size:
            try:
                self.socket.sendall(b"u" * min(count, self.size - self.sent))
                self.sent += min(count, self.size - self.sent)
            except OSError:
                self.sent = self.size

    def status_if_answered(self) -> int | None:
        self.socket.setblocking(False)
        try:
            self.answer += self.socket.recv(65536)
        except BlockingIOError:
            pass
        except OSError:
            return -1
        finally:
            self.socket.setblocking(True)
        if self.answer.startswith(b"HTTP/1.1 "):
            return int(self.answer[9:12])
        return None

    def close(self) -> None:
        self.socket.close()


def test_slow_uploads_leave_misses_and_hits_working(upload_bound):
    stack = upload_bound.stack
    hot = f"{unique('hot')}.bin"
    stack.boto3.put_object(Bucket="public", Key=hot, Body=b"hot" * 100)
    assert get(stack, "public", hot).status == 200
    uploads = [SlowUpload(stack.port, f"{unique('slow-up')}.bin") for _ in range(40)]
    try:
        for _ in range(3):       # a few seconds of trickling: every upload is under way
            for upload in uploads:
                upload.trickle()
            time.sleep(0.5)
        refused = [upload for upload in uploads if upload.status_if_answered() == 503]
        assert len(refused) >= 30, f"only {len(refused)} of 40 uploads were refused past UPLOAD_CONCURRENCY=4"
        assert all(b"uploads_busy" in upload.answer for upload in refused)
        for _ in range(10):
            started = time.monotonic()
            hit = get(stack, "public", hot)
            miss_key = f"{unique('miss')}.bin"
            stack.boto3.put_object(Bucket="public", Key=miss_key, Body=b"miss")
            miss = get(stack, "public", miss_key)
            assert hit.status == 200 and miss.status == 200 and miss.body == b"miss"
            assert time.monotonic() - started < 2, "a hit and a miss took more than 2 s beside slow uploads"
            for upload in uploads:
                upload.trickle()
    finally:
        for upload in uploads:
            upload.close()


def test_refused_uploads_trickling_their_body_are_answered_at_once(upload_bound):
    """A refused upload's unread body is discarded for a moment in all, not a moment per read
    nor per 8 KiB: clients sending a few bytes every 10 ms once held a thread each, their 503
    unsent, until 64 KiB had come (10 s here), and with enough of them every thread
    (bench/slow-clients); reading 8 KiB at a time still held each for 1.3 s."""
    stack = upload_bound.stack
    hot = f"{unique('hot')}.bin"
    stack.boto3.put_object(Bucket="public", Key=hot, Body=b"hot" * 100)
    assert get(stack, "public", hot).status == 200
    uploads = [SlowUpload(stack.port, f"{unique('fast-trickle')}.bin", size=1 << 20) for _ in range(40)]
    try:
        slowest_hit = 0.0
        began = time.monotonic()
        refused: list[SlowUpload] = []
        while time.monotonic() < began + 3:
            for _ in range(5):
                for upload in uploads:
                    upload.trickle(64)
                time.sleep(0.01)
            started = time.monotonic()
            assert get(stack, "public", hot).status == 200
            slowest_hit = max(slowest_hit, time.monotonic() - started)
            if not refused and time.monotonic() >= began + 0.6:
                refused = [upload for upload in uploads if upload.status_if_answered() == 503]
        assert len(refused) >= 30, f"only {len(refused)} of 40 trickling uploads had their 503 within 0.6 s"
        assert slowest_hit < 1, f"a hit took {slowest_hit:.2f} s beside trickling uploads"
        # A refusal is load, not a failure: logged at warning, with its reason.
        lines = wait_for(lambda: [r for r in stack.worker_log_lines() if r.get("msg") == "request"
                                    and r.get("status") == 503 and "fast-trickle" in r.get("key", "")], 5,
                           "the refusals' log lines")
        assert all(r["level"] == "warning" and "uploads_busy" in r["error"] for r in lines), lines[:3]
    finally:
        for upload in uploads:
            upload.close()


def worker_threads(stack) -> int:
    for line in open(f"/proc/{stack.worker_pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def settled_threads(stack, timeout: float = 20) -> int:
    """The worker's thread count once threads started for earlier waits have ended (a surplus
    thread ends after 2 s without work): unchanged over 2.5 s."""
    deadline = time.monotonic() + timeout
    count = worker_threads(stack)
    while time.monotonic() < deadline:
        time.sleep(2.5)
        now = worker_threads(stack)
        if now == count:
            return count
        count = now
    raise AssertionError(f"the worker's thread count did not settle in {timeout} s (last {count})")


def test_stop_continue_and_stray_signals_leave_every_thread_serving(upload_bound):
    """SIGSTOP/SIGCONT (a debugger, a container freeze) and a stray SIGUSR2 (the pool's own wake
    signal) interrupt the threads' waits with EINTR: that must never end a thread."""
    import signal
    stack = upload_bound.stack
    key = f"{unique('signals')}.bin"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"still here")
    assert get(stack, "public", key).status == 200
    before = settled_threads(stack)
    for _ in range(3):
        os.kill(stack.worker_pid, signal.SIGSTOP)
        time.sleep(0.2)
        os.kill(stack.worker_pid, signal.SIGCONT)
        time.sleep(0.2)
        os.kill(stack.worker_pid, signal.SIGUSR2)
        time.sleep(0.2)
    assert stack.worker_alive()
    time.sleep(0.5)
    assert worker_threads(stack) == before, "worker threads ended on EINTR"
    # Every thread still takes work: more concurrent clients than threads, all answered.
    replies = [reply for _, _, reply in concurrent_gets(stack, "public", key, 48, timeout=90)]
    assert [reply.status for reply in replies] == [200] * 48
    assert worker_threads(stack) == before


@pytest.fixture(scope="module")
def four_threads():
    """Four worker threads behind nginx's shipped keepalive (256 idle connections per nginx
    worker): far more kept connections than threads."""
    c = start_cache_stack(threads=4)
    yield c
    c.stop()


def test_idle_kept_connections_hold_no_thread(four_threads):
    """64 clients on keep-alive connections, ten requests each, against four threads: every
    request is answered, none waits for nginx to drop an idle connection (keepalive_timeout)."""
    import http.client
    stack = four_threads.stack
    key = f"{unique('kept')}.bin"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"k" * 1024)
    assert get(stack, "public", key).status == 200
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(64)

    def client(_):
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
        barrier.wait()
        for _ in range(10):
            started = time.monotonic()
            try:
                connection.request("GET", f"/objects/public/{key}")
                response = connection.getresponse()
                body = response.read()
                ok = response.status == 200 and body == b"k" * 1024
            except OSError as error:
                ok, body = False, repr(error).encode()
            with lock:
                latencies.append(time.monotonic() - started)
                if not ok:
                    failures.append(body[:100].decode(errors="replace"))
            time.sleep(0.05)    # the connection idles between requests, as a browser's does
        connection.close()

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(client, range(64)))
    assert not failures, failures[:5]
    assert len(latencies) == 640
    assert max(latencies) < 5, f"a request waited {max(latencies):.1f} s for a thread"


@pytest.fixture(scope="module")
def short_nginx_wait():
    """The worker told that nginx waits 8 s for a silent request (NGINX_READ_TIMEOUT) and S3's
    timeouts are 1 + 2 s: a follower waits for its leader 5 s at most."""
    c = start_cache_stack(slow_backend=True, threads=16, worker_env={
        "NGINX_READ_TIMEOUT": "8", "S3_CONNECT_TIMEOUT": "1", "S3_READ_TIMEOUT": "2"})
    yield c
    c.stop()


def test_followers_of_a_fetch_slower_than_nginx_waits_fetch_for_themselves(short_nginx_wait):
    stack, backend = short_nginx_wait.stack, short_nginx_wait.backend
    key = f"{unique('slowfill')}.bin"
    body = os.urandom(24_000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    # The leader's download: 24 pieces 0.5 s apart, 12 s in all, never 2 s without a byte.
    backend.add_rule(method="GET", path=f"/public/{key}", trickle=(1000, 0.5), times=1)
    results: list[tuple[float, object]] = []
    lock = threading.Lock()

    def fetch():
        started = time.monotonic()
        reply = get(stack, "public", key, timeout=60)
        with lock:
            results.append((time.monotonic() - started, reply))

    leader = threading.Thread(target=fetch)
    leader.start()
    wait_for(lambda: backend.requests_seen("GET", f"/public/{key}") >= 1, 10, "the leader's GET")
    followers = [threading.Thread(target=fetch) for _ in range(2)]
    for follower in followers:
        follower.start()
    for thread in [leader, *followers]:
        thread.join(60)
    assert len(results) == 3 and all(reply.status == 200 and reply.body == body for _, reply in results)
    seconds = sorted(elapsed for elapsed, _ in results)
    assert seconds[-1] > 10, f"the leader's download was not slow ({seconds[-1]:.1f} s): the test proves nothing"
    assert seconds[0] < 8, f"a follower stayed silent {seconds[0]:.1f} s, past what nginx waits"
    details = [cache_status(reply)[1].get("detail") for _, reply in results]
    assert details.count("slow-fetch") == 2, details


@pytest.fixture(scope="module")
def idle_uploads():
    c = start_cache_stack(threads=16, worker_env={"UPLOAD_IDLE_TIMEOUT": "2", "UPLOAD_CONCURRENCY": "2"})
    yield c
    c.stop()


def test_an_upload_that_stops_sending_is_aborted_and_frees_its_permit(idle_uploads):
    stack = idle_uploads.stack
    stalled = [SlowUpload(stack.port, f"{unique('stalled')}.bin", size=100_000) for _ in range(2)]
    keys = []
    try:
        for upload in stalled:
            upload.trickle(1000)
            keys.append(upload)
        started = time.monotonic()
        statuses = [wait_for(upload.status_if_answered, 10, "the stalled upload's answer") for upload in stalled]
        elapsed = time.monotonic() - started
        assert statuses == [408, 408], [upload.answer[:300] for upload in stalled]
        assert all(b"request_timeout" in upload.answer for upload in stalled)
        assert 1.5 < elapsed < 6, f"answered after {elapsed:.1f} s with UPLOAD_IDLE_TIMEOUT=2"
    finally:
        for upload in stalled:
            upload.close()
    # Nothing was stored, and both upload permits are free again.
    for upload in stalled:
        key = upload.key
        assert get(stack, "local", key).status == 404
    for _ in range(2):
        key = f"{unique('after')}.bin"
        reply = raw_request(stack, "PUT", f"/objects/local/{key}", body=b"fine")
        assert reply.status == 200, reply.body
        assert get(stack, "local", key).body == b"fine"


@pytest.fixture(scope="module")
def sixteen_threads():
    """Sixteen threads to start with (so at most 64), twelve S3 fetches and twelve uploads at once."""
    c = start_cache_stack(slow_backend=True, threads=16,
                          worker_env={"BACKEND_CONCURRENCY": "12", "UPLOAD_CONCURRENCY": "12"})
    yield c
    c.stop()


def test_hits_never_wait_behind_requests_waiting_on_s3(sixteen_threads):
    """A stampede of 40 on a key S3 takes 4 s to answer, 8 other slow misses and 8 slow uploads:
    56 requests waiting, on a pool of 16 threads. Hits keep their speed (the pool grows while
    requests wait), every waiting request gets its answer, and the pool shrinks back after."""
    stack, backend = sixteen_threads.stack, sixteen_threads.backend
    base = settled_threads(stack)
    hot = f"{unique('hot')}.bin"
    stack.boto3.put_object(Bucket="public", Key=hot, Body=b"hot" * 300)
    assert get(stack, "public", hot).status == 200
    prefix = unique("slow-s3")
    stampede_key, body = f"{prefix}/stampede.bin", os.urandom(64 * 1024)
    stack.boto3.put_object(Bucket="public", Key=stampede_key, Body=body)
    others = {f"{prefix}/other-{index}.bin": os.urandom(4096) for index in range(8)}
    for key, data in others.items():
        stack.boto3.put_object(Bucket="public", Key=key, Body=data)
    backend.add_rule(method="GET", path=f"/public/{prefix}/*", delay_response=4)

    replies: dict[str, list] = {"stampede": [], "others": []}
    lock = threading.Lock()

    def fetch(kind: str, key: str) -> None:
        reply = get(stack, "public", key, timeout=30)
        with lock:
            replies[kind].append((key, reply))

    clients = [threading.Thread(target=fetch, args=("stampede", stampede_key)) for _ in range(40)]
    clients += [threading.Thread(target=fetch, args=("others", key)) for key in others]
    uploads = [SlowUpload(stack.port, f"{unique('slow-up')}.bin", size=8 * 1024) for _ in range(8)]
    try:
        began = time.monotonic()
        for client in clients:
            client.start()
        # Hits while S3 holds every miss back (4 s): from 1 s after the start to 3 s.
        time.sleep(1)
        slowest = 0.0
        while time.monotonic() < began + 3:
            for upload in uploads:
                upload.trickle(256)
            started = time.monotonic()
            reply = get(stack, "public", hot, timeout=10)
            slowest = max(slowest, time.monotonic() - started)
            assert reply.status == 200 and reply.headers.get("x-cache") == "HIT"
            time.sleep(0.1)
        grown = worker_threads(stack)
        waiting_on_s3 = backend.requests_seen("GET", f"/public/{stampede_key}") + sum(
            backend.requests_seen("GET", f"/public/{key}") for key in others)
        for client in clients:
            client.join(30)
    finally:
        for upload in uploads:
            upload.close()
    assert slowest < 0.5, f"a hit took {slowest:.2f} s while requests waited on S3"
    assert waiting_on_s3 == 9, f"{waiting_on_s3} of the 9 slow fetches had reached S3 after 3 s"
    assert grown > base + 40, f"the pool did not grow while requests waited ({base} -> {grown} threads)"
    assert len(replies["stampede"]) == 40 and all(reply.status == 200 and reply.body == body
                                                  for _, reply in replies["stampede"])
    assert all(reply.status == 200 and reply.body == others[key] for key, reply in replies["others"])
    assert backend.requests_seen("GET", f"/public/{stampede_key}") == 1
    assert settled_threads(stack) == base, "the threads started for the waits did not end"
