"""Where a request's time goes in the worker: CPU time per request (from the scheduler's own
accounting), system calls per request (strace -c) and CPU samples by function (perf's
software clock, which works in VMs without hardware counters)."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

# Mangled-name prefixes of the worker's own modules (Swift: $s + length + module name).
OWN_MODULES = {
    "$s11S3CacheCore": "S3CacheCore", "$s7FastCGI": "FastCGI", "$s11ObjectCache": "ObjectCache",
    "$s4Gzip": "Gzip", "$s8S3Client": "S3Client",
}


def cpu_ns(pid: int) -> int:
    """Nanoseconds the process's threads have run on a CPU (sum of /proc/PID/task/*/schedstat)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[0])
    return total


@contextlib.contextmanager
def _background(argv: list[str], settle: float) -> Iterator[subprocess.Popen]:
    """Runs a tracer while the body runs; stops it with SIGINT (it writes its report then)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(settle)   # attaching to 60+ threads takes a moment
        if process.poll() is not None:
            raise RuntimeError(f"{argv[0]} stopped at once: {process.stderr.read()[:500]}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------------
# strace -c


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def syscall_counts(pid: int, output: Path, during: Callable[[], int]) -> tuple[Counter, int]:
    """System calls the process made (all threads) while ``during`` ran; returns the counts and
    what ``during`` returned (the number of requests)."""
    with _background(["strace", "-c", "-f", "-p", str(pid), "-o", str(output)], settle=1.5):
        requests = during()
        time.sleep(0.3)
    counts: Counter = Counter()
    for line in output.read_text().splitlines():
        match = _STRACE_ROW.match(line)
        if match and match.group(3) != "total":
            counts[match.group(3)] += int(match.group(1))
    return counts, requests


# ---------------------------------------------------------------------------------------------
# perf record -e cpu-clock


def perf_usable() -> bool:
    """Whether perf can sample on the software clock here (hardware counters are often missing in VMs)."""
    if not shutil.which("perf"):
        return False
    probe = subprocess.run(["perf", "stat", "-e", "cpu-clock", "true"], capture_output=True, text=True)
    return probe.returncode == 0 and "not supported" not in probe.stderr


@dataclass
class Profile:
    samples: int
    period_ns: float
    # inclusive: samples with the function anywhere on the stack
    inclusive: Counter = field(default_factory=Counter)
    # the innermost frame of our own code (what of ours the sample's work was done for)
    own: Counter = field(default_factory=Counter)
    # the leaf's library: kernel, libswiftCore, libc, ...
    leaf_dso: Counter = field(default_factory=Counter)


def perf_profile(pid: int, output: Path, frequency: int, during: Callable[[], int]) -> tuple[Profile, int]:
    """Samples the process's CPU time while ``during`` runs. Stacks are unwound from DWARF
    information: libc and libfcgi have no frame pointers, and frame-pointer stacks lost the
    caller of about 40% of the samples (every read, malloc and FCGX_GetParam)."""
    with _background(["perf", "record", "-e", "cpu-clock", "-F", str(frequency), "--call-graph", "dwarf,16384",
                      "-p", str(pid), "-o", str(output)], settle=1.0):
        requests = during()
    return read_profile(output, frequency), requests


def read_profile(output: Path, frequency: int) -> Profile:
    """The samples of a ``perf record -g`` file, attributed to the worker's functions."""
    script = subprocess.run(["perf", "script", "-i", str(output), "-F", "ip,sym,dso"], capture_output=True,
                            text=True, errors="replace", check=True).stdout
    stacks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in script.splitlines():
        if not line.strip():
            if current:
                stacks.append(current)
            current = []
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = ""
        if rest.endswith(")") and " (" in rest:
            rest, dso = rest.rsplit(" (", 1)
            dso = dso[:-1]
        current.append((rest.strip(), Path(dso).name))
    if current:
        stacks.append(current)
    names = _demangle({symbol for stack in stacks for symbol, _ in stack})
    profile = Profile(samples=len(stacks), period_ns=1e9 / frequency)
    for stack in stacks:
        leaf_dso = next((dso for _, dso in stack if dso != "inlined"), "")
        profile.leaf_dso["kernel" if "kernel" in leaf_dso else leaf_dso.split(".so")[0]] += 1
        seen: set[str] = set()
        innermost_own = None
        for symbol, _ in stack:
            name = names.get(symbol, symbol)
            if _is_own(symbol) or symbol.startswith("FCGX_"):
                if innermost_own is None:
                    innermost_own = name
                if name not in seen:
                    seen.add(name)
                    profile.inclusive[name] += 1
        profile.own[innermost_own or "(outside our code)"] += 1
    return profile


def _is_own(symbol: str) -> bool:
    return any(symbol.startswith(prefix) for prefix in OWN_MODULES)


def _demangle(symbols: set[str]) -> dict[str, str]:
    """Swift symbols in readable, short form (swift-demangle --simplified)."""
    ordered = sorted(symbol for symbol in symbols if symbol.startswith("$s"))
    tool = shutil.which("swift-demangle")
    if not ordered or tool is None:
        return {}
    text = subprocess.run([tool, "--simplified"], input="\n".join(ordered) + "\n", capture_output=True,
                          text=True, check=True).stdout
    readable = text.splitlines()
    if len(readable) != len(ordered):
        return {}
    return {symbol: _shorten(name) for symbol, name in zip(ordered, readable)}


def _shorten(name: str) -> str:
    """``specialized Gateway.log(_:method:...)`` -> ``Gateway.log``: enough to find it in Sources/."""
    name = re.sub(r"^(specialized |protocol witness for |merged |outlined \w+ of |closure #\d+ in |static |@objc )+", "", name)
    name = name.split(" in conformance")[0]
    depth, out = 0, []
    for char in name:   # drop argument lists and generic parameters
        if char in "(<":
            depth += 1
        elif char in ")>":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out).strip()
