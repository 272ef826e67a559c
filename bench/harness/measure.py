"""One wrk run with the checks that make its number mean what a table says: no errors, whole
responses, every request a cache hit (nothing reached S3, the worker counted only hits)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .checks import worker_stats
from .servers import WORKER_TARGETS
from .workloads import Workload
from .wrk import WrkResult, WrkSettings, run_wrk

if TYPE_CHECKING:
    from stack import Stack


def measure(target: str, workload: Workload, port: int, stack: "Stack", settings: WrkSettings,
            expected_bytes: int, log_dir: Path, redirects: bool | None = None) -> tuple[WrkResult, list[str]]:
    """One wrk run, with the checks that make its number mean what the table says.

    ``redirects`` True: every hit must be a file-tier hit that nginx sent (X-Accel-Redirect,
    the worker's ``files.redirects``); False: none may be; None: not checked."""
    problems: list[str] = []
    backend_before = stack.backend_requests()
    stats_before = worker_stats(port) if target in WORKER_TARGETS and not workload.is_health else None
    url = f"http://127.0.0.1:{port}{workload.path}"
    result = run_wrk(url, settings, accept_gzip=workload.gzip, log=log_dir / f"wrk-{workload.slug}-{target.replace(' ', '_')}-c{settings.connections}.txt")
    where = f"{workload.name} / {target} / -c{settings.connections}"
    if result.requests == 0:
        problems.append(f"{where}: no request completed")
    if result.error_count:
        problems.append(f"{where}: wrk counted errors {result.errors} (the rate is not trustworthy)")
    # Every response is at least as long as its body: a shorter average means error pages.
    if result.requests and result.bytes_per_request < expected_bytes:
        problems.append(f"{where}: {result.bytes_per_request:.0f} bytes per response, less than the "
                        f"{expected_bytes}-byte body checked before the run")
    fetched = stack.backend_requests() - backend_before
    if fetched:
        problems.append(f"{where}: {fetched} request(s) reached moto during the run (not all hits)")
    if stats_before is not None:
        after = worker_stats(port)
        for counter in ("misses", "revalidations", "stale_serves", "bypasses", "coalesced"):
            if after[counter] != stats_before[counter]:
                problems.append(f"{where}: the worker's '{counter}' went from {stats_before[counter]} to {after[counter]}")
        served = after["hits"] - stats_before["hits"]
        if served < result.requests:
            problems.append(f"{where}: wrk completed {result.requests} requests but the worker counted {served} hits")
        # /stats has a "files" section from the worker that counts redirects on; before it, the
        # caller checks the object is a file in CACHE_DIR (BenchStack.file_tier_holds).
        if redirects is not None and "redirects" in after.get("files", {}):
            sent = after["files"]["redirects"] - stats_before["files"]["redirects"]
            if redirects and sent < result.requests:
                problems.append(f"{where}: {result.requests} requests but only {sent} file-tier redirects (X-Accel-Redirect)")
            if not redirects and sent:
                problems.append(f"{where}: {sent} file-tier redirects where every hit should come from memory")
    return result, problems


def median_round(rounds: list[WrkResult]) -> WrkResult:
    """The round with the median rate: rounds interleave the cells, so a burst of load from
    elsewhere hits one round of every cell rather than one cell."""
    return sorted(rounds, key=lambda result: result.rate)[len(rounds) // 2]
