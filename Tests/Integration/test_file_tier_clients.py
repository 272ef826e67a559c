"""Real HTTP clients, none of them ours, reading objects of the file tier through nginx.

The file tier (issue 9) keeps large objects as files in CACHE_DIR, fills them slice by slice
from S3 (Range + If-Match per slice) and lets nginx send them itself (X-Accel-Redirect). A range
request on a miss asks S3 for the object's HEAD and fetches only the slices the range covers.
Clients that seek, resume and split are what this is for, so each is driven here the way people
use it:

- ``ffprobe`` and ``ffmpeg`` on an MP4 whose moov atom is at the end (no faststart): a
  request for the head, a seek to the end, a seek back, each an open-ended range;
- ``curl -C -`` resuming a download that ``curl -r`` began;
- ``wget -c`` continuing a partial file;
- ``aria2c -x4 -s4 -k1M``, one object over four ranged connections.

For each (the issue's words): the bytes are exact, and a second client reading the same object
costs zero bytes from S3. The first run of a client warms the cache; S3's cost is then read in
moto's request log (``stack.backend_log()``: every HEAD and GET of the object's path), the same
client runs again, and the log must not grow. Where the client shows response headers, the
second run's answers must say ``X-Cache: HIT``; /stats must count hits and no miss for it.

The stack runs with SLICE_SIZE=256K so that objects of a few MB span many slices.
scripts/install-deps installs the clients (Debian's ffmpeg, aria2, wget, curl).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from cache_support import start_cache_stack, stats
from conftest import unique

SLICE = 256 * 1024
BUCKET = "public"
CLIENT_TIMEOUT = 120


@pytest.fixture(scope="module")
def files():
    c = start_cache_stack(file_tier=True, worker_env={"SLICE_SIZE": "256K", "CACHE_TTL": "600"})
    yield c.stack
    c.stop()


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 10 s H.264 + AAC MP4 of about 3.4 MB (14 slices), moov atom after mdat."""
    ffmpeg = tool("ffmpeg")
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", "testsrc2=duration=10:size=640x360:rate=25,noise=alls=20:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
         "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2500k", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", str(path)])
    atoms = top_level_atoms(path.read_bytes())
    assert atoms.index("moov") > atoms.index("mdat"), f"moov must come last (no faststart): {atoms}"
    assert path.stat().st_size > 8 * SLICE, path.stat().st_size
    return path


# ---------------------------------------------------------------------------------------------
# helpers


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: scripts/install-deps installs it", pytrace=False)
    return found


def client_env() -> dict[str, str]:
    """The environment without proxies (every client here honours http_proxy)."""
    env = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
    env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=client_env(), stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=CLIENT_TIMEOUT)
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}\n--- stdout ---\n{result.stdout.decode(errors='replace')[-3000:]}"
        f"\n--- stderr ---\n{result.stderr.decode(errors='replace')[-3000:]}")
    return result


def top_level_atoms(data: bytes) -> list[str]:
    atoms, position = [], 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position:position + 4], "big")
        atoms.append(data[position + 4:position + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[position + 8:position + 16], "big")
        if size < 8:
            break
        position += size
    return atoms


def put(stack, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
    stack.boto3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)
    return stack.url(f"/objects/{BUCKET}/{key}")


def s3_requests(stack, key: str) -> list[tuple[str, str, int]]:
    """moto's log lines for the object (the PUT that stored it left out)."""
    return [entry for entry in stack.backend_log() if entry[1] == f"/{BUCKET}/{key}" and entry[0] != "PUT"]


def settled_s3_requests(stack, key: str, quiet: float = 0.5, timeout: float = 10) -> list[tuple[str, str, int]]:
    """As ``s3_requests`` once no new request came for ``quiet`` seconds: a slice fill the worker
    finishes after its client left is counted too."""
    deadline = time.monotonic() + timeout
    last = s3_requests(stack, key)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = s3_requests(stack, key)
        if now == last:
            return now
        last = now
    return last


def worker_lines(stack, key: str) -> list[dict]:
    return [line for line in stack.worker_log_lines() if line.get("key") == key]


def describe(stack, key: str, since_s3: int, since_worker: int) -> str:
    """What a run cost, for assertion messages: S3's requests and the worker's request lines."""
    lines = [f"S3: {s3_requests(stack, key)[since_s3:]}"]
    for line in worker_lines(stack, key)[since_worker:]:
        lines.append("worker: " + json.dumps({name: line.get(name) for name in (
            "status", "bytes_sent", "cache", "error", "duration_ms") if name in line}))
    return "\n".join(lines)


def counters(stack) -> dict[str, int]:
    """The cache's outcome counters and the file tier's (``files.*``) from /stats."""
    current = stats(stack)
    values = {name: current[name] for name in ("hits", "misses", "bypasses", "coalesced", "revalidations")}
    values.update({f"files.{name}": current["files"][name] for name in (
        "bytes_fetched", "redirects", "bytes_redirected", "bytes_streamed", "entries_created", "io_errors")})
    return values


class SecondRun:
    """Runs a client after a warming run and checks that it cost S3 nothing: moto's log for the
    key does not grow, the file tier fetched no byte and created no body, and /stats counts hits
    only (no miss, no bypass, no revalidation)."""

    def __init__(self, stack, key: str):
        self.stack, self.key = stack, key

    def __enter__(self):
        self.s3_before = len(settled_s3_requests(self.stack, self.key))
        self.worker_before = len(worker_lines(self.stack, self.key))
        self.counters_before = counters(self.stack)
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            return False
        new = settled_s3_requests(self.stack, self.key)[self.s3_before:]
        after = counters(self.stack)
        delta = {name: after[name] - self.counters_before[name] for name in after}
        cost = describe(self.stack, self.key, self.s3_before, self.worker_before) + f"\n/stats delta: {delta}"
        assert new == [], f"the second client cost {len(new)} request(s) to S3:\n{cost}"
        assert delta["files.bytes_fetched"] == 0 and delta["files.entries_created"] == 0, cost
        assert delta["files.io_errors"] == 0, cost
        assert delta["files.redirects"] >= 1, f"nginx sent nothing from the files:\n{cost}"
        assert delta["hits"] >= 1 and delta["misses"] == delta["bypasses"] == delta["revalidations"] == 0, cost
        return False


@pytest.fixture(autouse=True)
def _no_file_errors(files):
    """No test here may make the file tier fail a write (CACHE_DIR has room to spare)."""
    before = stats(files)["files"]["io_errors"]
    yield
    errors = [line for line in files.worker_log_lines() if line.get("msg", "").startswith("file tier")]
    assert stats(files)["files"]["io_errors"] == before, f"file tier I/O errors during this test: {errors}"


def slices(length: int, start: int = 0, end: int | None = None) -> int:
    """How many slices bytes start..end (inclusive) of a ``length``-byte object touch."""
    end = length - 1 if end is None else end
    return end // SLICE - start // SLICE + 1


def x_cache_values(text: str) -> list[str]:
    return re.findall(r"(?im)^\s*X-Cache:\s*(\S+)", text)


# ---------------------------------------------------------------------------------------------
# ffprobe / ffmpeg


def probe(url_or_path: str) -> dict:
    out = run([tool("ffprobe"), "-v", "error", "-show_format", "-show_streams", "-of", "json", url_or_path]).stdout
    result = json.loads(out)
    result["format"].pop("filename")
    return result


def frame_hashes(url_or_path: str) -> str:
    """Every packet of every stream, hashed: the demuxer reads the whole file, seeking as the
    index in moov says."""
    return run([tool("ffmpeg"), "-hide_banner", "-v", "error", "-nostdin", "-i", url_or_path,
                "-map", "0", "-c", "copy", "-f", "framemd5", "-"]).stdout.decode()


def test_ffprobe_reads_a_video_whose_index_is_at_the_end(files, video):
    key = f"{unique('probe')}.mp4"
    url = put(files, key, video.read_bytes(), "video/mp4")
    expected = probe(str(video))
    assert expected["format"]["format_name"].startswith("mov,mp4") and len(expected["streams"]) == 2

    assert probe(url) == expected
    assert s3_requests(files, key), "the first probe was answered without S3: the log is not read right"
    with SecondRun(files, key):
        assert probe(url) == expected


def test_ffmpeg_reads_every_packet_of_a_video_and_again_from_the_cache(files, video):
    key = f"{unique('remux')}.mp4"
    url = put(files, key, video.read_bytes(), "video/mp4")
    expected = frame_hashes(str(video))
    assert expected.count("\n") > 250, "10 s of video and audio: hundreds of packets"

    assert frame_hashes(url) == expected
    first = settled_s3_requests(files, key)
    heads = [entry for entry in first if entry[0] == "HEAD"]
    gets = [entry for entry in first if entry[0] == "GET"]
    # ffmpeg opens with "Range: bytes=0-": a range on a miss, so a HEAD and then slices.
    assert len(heads) == 1 and all(status == 206 for _, _, status in gets), first
    with SecondRun(files, key):
        assert frame_hashes(url) == expected
        assert probe(url)["format"]["size"] == str(video.stat().st_size)


# ---------------------------------------------------------------------------------------------
# curl


def curl(url: str, *args: str, cwd: Path) -> tuple[bytes, str]:
    """(stdout, the response headers curl saw) of one curl run."""
    headers = cwd / f"headers-{unique()}"
    result = run([tool("curl"), "-q", "-sS", "-f", "-D", str(headers), *args, url], cwd=cwd)
    return result.stdout, headers.read_text(errors="replace")


def test_curl_resumes_a_download_it_began(files, tmp_path):
    key = f"{unique('curl')}.bin"
    body = os.urandom(3_000_000 + 12_345)   # 12 slices, the last one short
    url = put(files, key, body)
    cut = 1_000_000                          # inside slice 3

    def download(directory: Path) -> tuple[str, str]:
        directory.mkdir()
        target = directory / "download.bin"
        _, began = curl(url, "-r", f"0-{cut - 1}", "-o", str(target), cwd=directory)
        assert target.read_bytes() == body[:cut]
        _, resumed = curl(url, "-C", "-", "-o", str(target), cwd=directory)
        assert target.read_bytes() == body, "the resumed file is not the object"
        assert re.search(rf"(?im)^content-range: bytes {cut}-{len(body) - 1}/{len(body)}\s*$", resumed), resumed
        return began, resumed

    began, resumed = download(tmp_path / "first")
    assert x_cache_values(began) == ["MISS"], began
    # A range on a miss: S3's HEAD, then each slice the ranges cover once (slice 3 by the first).
    first = settled_s3_requests(files, key)
    assert sorted(method for method, _, _ in first) == ["GET"] * slices(len(body)) + ["HEAD"], first
    assert all(status == 206 for method, _, status in first if method == "GET"), first

    with SecondRun(files, key):
        began, resumed = download(tmp_path / "second")
    assert x_cache_values(began) == ["HIT"] and x_cache_values(resumed) == ["HIT"], (began, resumed)


# ---------------------------------------------------------------------------------------------
# wget


def wget_continue(url: str, target: Path) -> str:
    """``wget -c`` on ``target``; returns the response headers it printed (-S)."""
    result = run([tool("wget"), "--no-config", "-nv", "-S", "-c", "-O", str(target), url], cwd=target.parent)
    return result.stderr.decode(errors="replace")


def test_wget_continues_a_partial_file(files, tmp_path):
    key = f"{unique('wget')}.bin"
    body = os.urandom(4 * 1024 * 1024 + 777)
    url = put(files, key, body)
    have = 1_500_000                          # what an interrupted download left

    first = tmp_path / "first.bin"
    first.write_bytes(body[:have])
    headers = wget_continue(url, first)
    assert first.read_bytes() == body
    assert re.search(r"HTTP/1\.1 206", headers) and x_cache_values(headers) == ["MISS"], headers
    # Only the slices from the one holding byte `have` on: S3's HEAD, then each once.
    fetched = settled_s3_requests(files, key)
    assert sorted(method for method, _, _ in fetched) == ["GET"] * slices(len(body), have) + ["HEAD"], fetched

    second = tmp_path / "second.bin"
    second.write_bytes(body[:have])
    with SecondRun(files, key):
        headers = wget_continue(url, second)
    assert second.read_bytes() == body
    assert re.search(r"HTTP/1\.1 206", headers) and x_cache_values(headers) == ["HIT"], headers


# ---------------------------------------------------------------------------------------------
# aria2c


def aria2c(url: str, directory: Path, name: str) -> tuple[bytes, str]:
    """One ``aria2c -x4 -s4 -k1M`` download: (the file, aria2's log with every request and
    response header)."""
    result = run([tool("aria2c"), "--no-conf", "-x4", "-s4", "-k1M", "--file-allocation=none",
                  "--allow-overwrite=true", "--auto-file-renaming=false", "--summary-interval=0",
                  "--console-log-level=warn", "--log=-", "--log-level=info", "-d", str(directory), "-o", name, url],
                 cwd=directory)
    return (directory / name).read_bytes(), result.stdout.decode(errors="replace")


def test_aria2c_splits_a_download_over_four_connections(files, tmp_path):
    key = f"{unique('aria2')}.bin"
    body = os.urandom(8_000_000)              # 31 slices, four 2 MB pieces
    url = put(files, key, body)

    data, log = aria2c(url, tmp_path, "first.bin")
    assert data == body
    ranges = re.findall(r"(?im)^Range: bytes=(\d+)-(\d*)", log)
    assert len(ranges) >= 3, f"aria2c did not split the download:\n{log[-3000:]}"
    assert s3_requests(files, key)

    with SecondRun(files, key):
        data, log = aria2c(url, tmp_path, "second.bin")
    assert data == body
    assert set(x_cache_values(log)) == {"HIT"}, log[-3000:]
