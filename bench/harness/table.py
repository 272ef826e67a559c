"""The Markdown report: machine, settings, the table, the ratios against the targets, warnings."""

from __future__ import annotations

from .servers import PROXY_CACHE, RESPONDER, S3CACHE, S3CACHE_HEAP, STATIC, TARGETS
from .workloads import Workload
from .wrk import WrkResult

# The issues' targets for this benchmark.
HIT_OVER_HEALTH_TARGET = 0.9
FILE_TIER_OVER_STATIC_TARGET = 0.9   # issue 9: 100 KiB and 1 MiB hits sent by nginx from the file tier
OVER_RESPONDER_TARGET = 0.9     # /health and 1 KiB hits against the bare C libfcgi responder


def _rate(result: WrkResult | None) -> str:
    if result is None:
        return "—"
    mark = " ⚠" if result.error_count else ""
    return f"{result.rate:,.0f}{mark}"


def _p99(result: WrkResult | None) -> str:
    return "—" if result is None else f"{result.p99_us / 1000:.2f} ms"


def _ratio(top: WrkResult | None, bottom: WrkResult | None) -> str:
    if top is None or bottom is None or bottom.rate == 0:
        return "—"
    return f"{top.rate / bottom.rate:.2f}"


def results_table(workloads: list[Workload], results: dict[tuple[str, str], WrkResult],
                  targets: tuple[str, ...] = TARGETS) -> str:
    """``targets`` with S3CACHE_HEAP adds its column and its ratio to static."""
    header = ["workload"]
    for target in targets:
        header += [f"{target} req/s", f"{target} p99"]
    header += ["s3cache / static", "s3cache / proxy_cache", f"s3cache / {RESPONDER}"]
    heap = S3CACHE_HEAP in targets
    if heap:
        header += [f"{S3CACHE_HEAP} / static", f"s3cache / {S3CACHE_HEAP}"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for workload in workloads:
        row = [workload.name]
        for target in targets:
            result = results.get((workload.slug, target))
            row += [_rate(result), _p99(result)]
        ours = results.get((workload.slug, S3CACHE))
        row += [_ratio(ours, results.get((workload.slug, other))) for other in (STATIC, PROXY_CACHE, RESPONDER)]
        if heap:
            theirs = results.get((workload.slug, S3CACHE_HEAP))
            row += [_ratio(theirs, results.get((workload.slug, STATIC))), _ratio(ours, theirs)]
        if any(cell != "—" for cell in row[1:]):
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def target_lines(results: dict[tuple[str, str], WrkResult]) -> list[str]:
    """The ratios the issue sets targets for, with the verdict."""
    lines = []
    hit, health = results.get(("1k", S3CACHE)), results.get(("health", S3CACHE))
    if hit and health and health.rate:
        ratio = hit.rate / health.rate
        verdict = "met" if ratio >= HIT_OVER_HEALTH_TARGET else "NOT met"
        lines.append(f"- 1 KiB cache hit / `GET /health`: **{ratio:.2f}** (target ≥ {HIT_OVER_HEALTH_TARGET}: {verdict})")
    for slug, name in (("health", "`GET /health`"), ("1k", "1 KiB cache hit")):
        ours, ceiling = results.get((slug, S3CACHE)), results.get((slug, RESPONDER))
        if ours and ceiling and ceiling.rate:
            ratio = ours.rate / ceiling.rate
            verdict = "met" if ratio >= OVER_RESPONDER_TARGET else "NOT met"
            lines.append(f"- {name}, s3cache / bare C libfcgi responder: **{ratio:.2f}** "
                         f"(target ≥ {OVER_RESPONDER_TARGET}: {verdict})")
    for slug, name in (("100k", "100 KiB"), ("1m", "1 MiB")):
        ours, ceiling, heap = results.get((slug, S3CACHE)), results.get((slug, STATIC)), results.get((slug, S3CACHE_HEAP))
        if ours and ceiling and ceiling.rate:
            ratio = ours.rate / ceiling.rate
            verdict = "met" if ratio >= FILE_TIER_OVER_STATIC_TARGET else "NOT met"
            before = f"; heap only: {heap.rate / ceiling.rate:.2f}" if heap and heap.rate else ""
            lines.append(f"- {name} hit, s3cache / static: **{ratio:.2f}** "
                         f"(issue 9's target ≥ {FILE_TIER_OVER_STATIC_TARGET}: {verdict}{before})")
    for slug, name in (("json100k", "JSON 100 KiB"), ("json1m", "JSON 1 MiB")):
        ours, theirs = results.get((slug, S3CACHE)), results.get((slug, PROXY_CACHE))
        if ours and theirs and theirs.rate:
            lines.append(f"- {name} with gzip, s3cache / proxy_cache + gzip: **{ours.rate / theirs.rate:.2f}** "
                         "(target: well ahead, i.e. clearly above 1)")
    return lines
