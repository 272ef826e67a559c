"""The file tier through nginx with the shipped snippets: large objects stored in CACHE_DIR,
filled slice by slice with ``Range`` + ``If-Match``, and sent by nginx itself
(``X-Accel-Redirect`` to the internal ``/_s3cache_files/`` locations).

What reached S3 is read in moto's request log; what is on disk, in the stack's CACHE_DIR.
"""

from __future__ import annotations

import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cache_support import assert_reported, get, start_cache_stack, stats, wait_for
from conftest import raw_request, unique

SLICE = 256 * 1024
# A few slices and a partial last one: slice arithmetic is exercised at both ends.
LENGTH = 4 * SLICE + 12345


def files_env(**extra: str) -> dict[str, str]:
    env = {"CACHE_TTL": "600", "SLICE_SIZE": "256K", "FILE_MIN_SIZE": "64K",
           "CORS_ORIGINS": "private:https://app.example"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tiered():
    c = start_cache_stack(file_tier=True, worker_env=files_env())
    yield c.stack
    c.stop()


@pytest.fixture(scope="module")
def heap_only():
    """The same settings without a file tier: what the file tier's answers must look like."""
    c = start_cache_stack(worker_env=files_env(MAX_OBJECT_SIZE="8M"))
    yield c.stack
    c.stop()


def put(stack, key: str, body: bytes, bucket: str = "private", content_type: str = "application/octet-stream") -> None:
    stack.boto3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                           CacheControl="max-age=600", ContentDisposition='attachment; filename="x.bin"')


def s3_gets(stack, key: str, bucket: str = "private") -> list[tuple[str, str, int]]:
    return [entry for entry in stack.backend_log()
            if entry[0] in ("GET", "HEAD") and entry[1].split("?")[0] == f"/{bucket}/{key}"]


def data_files(stack) -> list[Path]:
    root = Path(stack.cache_dir) / "objects"
    return sorted(path for path in root.rglob("*") if path.is_file() and not path.name.endswith(".meta"))


def disk_bytes(stack) -> int:
    root = Path(stack.cache_dir) / "objects"
    return sum(path.stat().st_blocks * 512 for path in root.rglob("*") if path.is_file())


def warm(stack, key: str, body: bytes) -> None:
    """Caches ``key`` whole (the first read streams it into the slices) and checks a hit."""
    reply = get(stack, "private", key)
    assert reply.status == 200 and reply.body == body
    assert_reported(reply, "MISS")
    reply = get(stack, "private", key)
    assert reply.body == body
    assert_reported(reply, "HIT")


# Requests whose answers must be the same from both tiers, header by header.
CASES: list[tuple[str, dict[str, str]]] = [
    ("GET", {}),
    ("GET", {"Range": "bytes=0-99"}),
    ("GET", {"Range": f"bytes={SLICE - 10}-{SLICE + 10}"}),
    ("GET", {"Range": "bytes=-1000"}),
    ("GET", {"Range": f"bytes={LENGTH - 5}-"}),
    ("GET", {"Range": "bytes=0-1,5-6"}),
    ("GET", {"Range": f"bytes={LENGTH}-"}),
    ("GET", {"Range": "bytes=10-20", "If-Range": "ETAG"}),
    ("GET", {"Range": "bytes=10-20", "If-Range": '"stale"'}),
    ("GET", {"Range": "bytes=10-20", "If-Match": "ETAG"}),
    ("GET", {"If-Match": "ETAG"}),
    ("GET", {"If-Match": '"other"'}),
    ("GET", {"If-None-Match": "ETAG"}),
    ("GET", {"If-None-Match": '"other"'}),
    ("GET", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    ("GET", {"Accept-Encoding": "gzip"}),
    ("GET", {"Origin": "https://app.example"}),
    ("HEAD", {}),
    ("HEAD", {"Range": "bytes=0-99"}),
]

# Differ by nature: the moment of the answer, and S3's own Last-Modified (two moto servers).
VOLATILE = {"date", "last-modified", "connection"}


def comparable(reply, etag: str) -> tuple[int, list[tuple[str, str]], bytes]:
    lines = sorted((name.lower(), value.replace(etag, "ETAG")) for name, value in reply.header_list
                   if name.lower() not in VOLATILE)
    return reply.status, lines, reply.body


def test_a_file_hit_carries_exactly_the_headers_of_a_heap_hit(tiered, heap_only):
    key = f"{unique('same')}.bin"
    body = os.urandom(LENGTH)
    for stack in (tiered, heap_only):
        put(stack, key, body)
        warm(stack, key, body)
    etag = tiered.boto3.head_object(Bucket="private", Key=key)["ETag"]
    assert etag == heap_only.boto3.head_object(Bucket="private", Key=key)["ETag"]
    before = stats(tiered)["files"]
    for method, headers in CASES:
        headers = {name: value.replace("ETAG", etag) for name, value in headers.items()}
        replies = [raw_request(stack, method, f"/objects/private/{key}", headers=headers) for stack in (tiered, heap_only)]
        files, heap = (comparable(reply, etag) for reply in replies)
        assert files == heap, (method, headers, files[:2], heap[:2])
        assert [name for name, _ in replies[0].header_list].count("ETag") <= 1
    after = stats(tiered)["files"]
    assert after["redirects"] - before["redirects"] >= 8, "nginx sent most of these from the file"
    assert after["hits"] > before["hits"]
    # Every answer was S3's validators, never nginx's "mtime-size" ETag or the file's own time.
    reply = get(tiered, "private", key)
    assert reply.headers["etag"] == etag
    assert reply.headers["last-modified"] == tiered.boto3.head_object(Bucket="private", Key=key)["ResponseMetadata"]["HTTPHeaders"]["last-modified"]


def test_the_internal_locations_cannot_be_reached_from_outside(tiered):
    key = f"{unique('internal')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    warm(tiered, key, body)
    name = data_files(tiered)[-1].relative_to(Path(tiered.cache_dir) / "objects")
    for location in ("whole", "range"):
        for target in (f"/_s3cache_files/{location}/{name}", f"/_s3cache_files/{location}/", f"/_s3cache_files/{location}/../{name}"):
            reply = raw_request(tiered, "GET", target, headers={"Range": "bytes=0-9"})
            assert reply.status in (404, 400), (target, reply.status)
            assert body[:10] not in reply.body


def test_a_range_on_a_miss_fetches_only_its_slice_once_however_many_ask(tiered):
    key = f"{unique('range')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    start = 2 * SLICE + 100
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(
            lambda _: raw_request(tiered, "GET", f"/objects/private/{key}", headers={"Range": f"bytes={start}-{start + 65535}"}),
            range(8)))
    for reply in replies:
        assert reply.status == 206 and reply.body == body[start:start + 65536]
        assert reply.headers["content-range"] == f"bytes {start}-{start + 65535}/{LENGTH}"
    gets = [entry for entry in s3_gets(tiered, key) if entry[0] == "GET"]
    assert len(gets) == 1, gets
    # The rest of the object comes slice by slice, each once, the stored one not again.
    reply = get(tiered, "private", key)
    assert reply.body == body
    assert len([entry for entry in s3_gets(tiered, key) if entry[0] == "GET"]) == 5
    before = len(s3_gets(tiered, key))
    assert get(tiered, "private", key).body == body
    assert len(s3_gets(tiered, key)) == before


def test_a_write_through_the_gateway_removes_every_file_of_the_key_before_it_answers(tiered):
    key = f"{unique('write')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    warm(tiered, key, body)
    files_before = set(data_files(tiered))
    new = os.urandom(LENGTH - 1000)
    reply = raw_request(tiered, "PUT", f"/objects/private/{key}", body=new, headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200
    gone = files_before - set(data_files(tiered))
    assert len(gone) == 1, "the old version's file is gone once the PUT answered"
    assert not any(Path(str(path) + ".meta").exists() for path in gone)
    reply = get(tiered, "private", key)
    assert reply.body == new
    assert_reported(reply, "MISS")
    assert raw_request(tiered, "DELETE", f"/objects/private/{key}").status == 204
    assert get(tiered, "private", key).status == 404
    assert len(data_files(tiered)) == len(files_before) - 1


def test_an_object_changed_behind_the_gateway_is_never_mixed(tiered):
    """Half of v1 is cached; v2 replaces it in S3 directly. The next slice fetch is pinned to
    v1's ETag (If-Match), S3 refuses it, and the reader gets v2 whole, never v1's slices with
    v2's."""
    key = f"{unique('changed')}.bin"
    v1 = os.urandom(LENGTH)
    put(tiered, key, v1)
    reply = raw_request(tiered, "GET", f"/objects/private/{key}", headers={"Range": "bytes=0-99"})
    assert reply.body == v1[:100]
    v2 = os.urandom(LENGTH)
    put(tiered, key, v2)
    reply = get(tiered, "private", key)
    assert reply.status == 200
    assert reply.body == v2, "the whole answer is the new version"
    assert any(status == 412 for method, _, status in s3_gets(tiered, key) if method == "GET"), \
        "the slice fetch was pinned to the old version"
    assert get(tiered, "private", key).body == v2


def test_if_match_ranged_reads_are_answered_not_refused_by_nginx(tiered):
    """SDK downloaders send If-Match with their ranges; nginx would answer 412 to those from a
    file, so the worker sends them itself."""
    key = f"{unique('ifmatch')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    warm(tiered, key, body)
    etag = tiered.boto3.head_object(Bucket="private", Key=key)["ETag"]
    reply = raw_request(tiered, "GET", f"/objects/private/{key}", headers={"Range": "bytes=100-199", "If-Match": etag})
    assert reply.status == 206 and reply.body == body[100:200]
    reply = raw_request(tiered, "GET", f"/objects/private/{key}", headers={"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert reply.status == 200 and reply.body == body


def test_a_restart_keeps_the_cache(tiered):
    key = f"{unique('restart')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    warm(tiered, key, body)
    partial = f"{unique('partial')}.bin"
    put(tiered, partial, body)
    assert raw_request(tiered, "GET", f"/objects/private/{partial}", headers={"Range": "bytes=0-9"}).status == 206
    tiered.restart_worker()
    before = len(tiered.backend_log())
    reply = get(tiered, "private", key)
    assert reply.body == body
    assert_reported(reply, "HIT")
    reply = raw_request(tiered, "GET", f"/objects/private/{partial}", headers={"Range": "bytes=0-9"})
    assert reply.status == 206 and reply.body == body[:10]
    assert len(tiered.backend_log()) == before, "nothing was asked of S3 after the restart"
    assert stats(tiered)["files"]["restored_entries"] >= 2


def test_a_crash_in_a_fill_leaves_nothing_that_can_be_served(tiered):
    key = f"{unique('crash')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    warm(tiered, key, body)
    (newest,) = sorted(data_files(tiered), key=lambda path: path.stat().st_ctime)[-1:]
    record = Path(str(newest) + ".meta")
    # What a crash can leave: a torn record, a temporary record, a data file nobody recorded.
    record.write_bytes(record.read_bytes()[:-7])
    Path(str(newest) + ".meta.tmp").write_bytes(b"torn")
    orphan = newest.with_name("0" * 32 + "-ffff")
    orphan.write_bytes(b"x" * 100)
    tiered.restart_worker()
    assert not newest.exists() and not record.exists() and not orphan.exists()
    reply = get(tiered, "private", key)
    assert reply.body == body
    assert_reported(reply, "MISS")


def test_the_directory_never_exceeds_its_bound(tmp_path):
    c = start_cache_stack(file_tier=True, worker_env=files_env(CACHE_DIR_SIZE="2M"))
    stack = c.stack
    try:
        keys = []
        for index in range(10):  # five times the bound
            key = f"bound-{index}.bin"
            body = os.urandom(1024 * 1024)
            put(stack, key, body)
            reply = get(stack, "private", key)
            assert reply.status == 200 and reply.body == body
            keys.append((key, body))
            assert disk_bytes(stack) <= 2 * 1024 * 1024, f"after {index + 1} objects"
        files = stats(stack)["files"]
        assert files["evictions"] >= 7 and files["bytes"] <= files["bound_bytes"]
        for key, body in keys[-1:]:
            assert_reported(get(stack, "private", key), "HIT")
    finally:
        c.stop()


def test_a_full_disk_streams_uncached_logs_once_and_counts(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    c = None
    mount_point = None
    try:
        c = start_cache_stack(file_tier=True, worker_env=files_env(CACHE_DIR_SIZE="100M"))
        stack = c.stack
        stack.stop_worker()
        mount_point = Path(stack.cache_dir)
        mount_point.mkdir(parents=True, exist_ok=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            mount_point = None
            pytest.skip(f"cannot mount a 1 MiB tmpfs here: {mounted.stderr.strip()}")
        stack.restart_worker()
        bodies = {f"full-{index}.bin": os.urandom(LENGTH) for index in range(3)}
        for key, body in bodies.items():
            put(stack, key, body)
            for _ in range(2):
                reply = get(stack, "private", key)
                assert reply.status == 200 and reply.body == body
        files = stats(stack)["files"]
        assert files["io_errors"] >= 1
        logged = [line for line in stack.worker_log_lines() if "writing failed" in line.get("msg", "")]
        assert len(logged) == 1, logged
        assert "No space left" in logged[0]["error"]
    finally:
        if c is not None:
            c.stop()
        if mount_point is not None:
            subprocess.run(["umount", str(mount_point)], check=False)


def test_the_heaps_memory_bound_holds_while_the_file_tier_holds_much_more():
    """MAX_CACHE_SIZE=16 MB and 384 MiB poured through the file tier: the worker's peak RSS grows
    by the heap's bound and a margin at most (file bytes pass through 256 KiB buffers, never
    held), while the directory holds twenty times the heap's bound."""
    c = start_cache_stack(file_tier=True, worker_env=files_env(
        MAX_CACHE_SIZE="16", CACHE_DIR_SIZE="1024", SLICE_SIZE="1M", CLEANUP_INTERVAL="1"))
    stack = c.stack
    try:
        body = os.urandom(32 << 20)
        keys = [f"rss-{index}.bin" for index in range(12)]
        for key in keys:
            put(stack, key, body)
        get(stack, "private", keys[0])  # threads, buffers and connections warmed up
        idle = stack.worker_memory()["VmRSS"]
        stack.reset_worker_peak_rss()
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda key: get(stack, "private", key), keys))
        assert all(reply.status == 200 and reply.body == body for reply in replies)
        for key in keys:  # hits, partly sent by the worker, partly by nginx
            assert get(stack, "private", key, headers={"Range": "bytes=1000-5000000"}).status == 206
        peak = stack.worker_memory()["VmHWM"]
        files = stats(stack)["files"]
        assert files["bytes"] >= 12 * (32 << 20) > 20 * (16 << 20)
        assert peak - idle <= (16 << 20) + (48 << 20), f"peak RSS grew by {(peak - idle) >> 20} MiB"
    finally:
        c.stop()


def test_a_file_removed_under_nginx_is_answered_by_the_worker_without_an_error(tiered):
    """The worker redirects to a file that is gone by the time nginx opens it (deleted here
    behind the worker's back; in service, an eviction or a write at that very moment): nginx's
    404 goes back to the worker, which streams the answer, with no header doubled."""
    key = f"{unique('gone')}.bin"
    body = os.urandom(LENGTH)
    put(tiered, key, body)
    warm(tiered, key, body)
    reference = get(tiered, "private", key)
    (path,) = [p for p in data_files(tiered) if p.stat().st_size == LENGTH and p.read_bytes() == body]
    path.unlink()
    for headers, status, expected in (({}, 200, body), ({"Range": "bytes=100-199"}, 206, body[100:200])):
        reply = raw_request(tiered, "GET", f"/objects/private/{key}", headers=headers)
        assert reply.status == status and reply.body == expected, (headers, reply.status)
        names = [name.lower() for name, _ in reply.header_list]
        assert all(names.count(name) == 1 for name in set(names) if name != "vary"), reply.header_list
        for name in ("etag", "content-type", "cache-control", "content-disposition", "last-modified"):
            assert reply.headers[name] == reference.headers[name], name
