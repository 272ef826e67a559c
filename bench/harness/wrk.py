"""Running wrk and reading its result (through report.lua, not by scraping its text)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPORTER = Path(__file__).resolve().parent / "report.lua"
# The same reporter, after setting Accept-Encoding: gzip on every request.
GZIP_REPORTER = Path(__file__).resolve().parent / "gzip.lua"
_LINE = re.compile(r"^BENCH (.*)$", re.M)


class WrkError(RuntimeError):
    """wrk could not run or printed no result."""


@dataclass(frozen=True)
class WrkSettings:
    threads: int
    connections: int
    duration: int       # seconds (wrk accepts whole numbers only)
    timeout: int        # seconds before wrk counts a request as timed out

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections} -d{_seconds(self.duration)} --timeout {_seconds(self.timeout)}"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    bytes: int
    p50_us: int
    p99_us: int
    max_us: int
    errors: dict[str, int]
    output: str

    @property
    def rate(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def bytes_per_request(self) -> float:
        return self.bytes / self.requests if self.requests else 0.0


def _seconds(value: int) -> str:
    return f"{int(value)}s"


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise WrkError("wrk not found on PATH (Debian: apt-get install wrk)")
    return found


def run_wrk(url: str, settings: WrkSettings, *, accept_gzip: bool, log: Path | None = None,
            headers: dict[str, str] | None = None, script: Path | None = None,
            env: dict[str, str] | None = None) -> WrkResult:
    """One wrk run against ``url``; ``accept_gzip`` sends ``Accept-Encoding: gzip`` (gzip.lua),
    ``headers`` are sent with every request. ``script`` replaces the reporter (it must end by
    running report.lua); ``env`` is added to wrk's environment (for the script's os.getenv)."""
    script = script or (GZIP_REPORTER if accept_gzip else REPORTER)
    extra = [argument for name, value in (headers or {}).items() for argument in ("-H", f"{name}: {value}")]
    argv = [wrk_binary(), f"-t{settings.threads}", f"-c{settings.connections}", f"-d{_seconds(settings.duration)}",
            "--timeout", _seconds(settings.timeout), "--latency", *extra, "-s", str(script), url]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=settings.duration + 60,
                               env={**os.environ, **env} if env else None)
    output = completed.stdout + completed.stderr
    if log is not None:
        log.write_text(" ".join(argv) + "\n" + output)
    match = _LINE.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        raise WrkError(f"wrk failed (status {completed.returncode}) for {url}:\n{output}")
    fields = dict(item.split("=", 1) for item in match.group(1).split())
    values = {name: int(value) for name, value in fields.items()}
    errors = {name: values.pop(name) for name in ("connect", "read", "write", "status", "timeout")}
    return WrkResult(output=output, errors=errors, **values)
