"""Reading the shipped systemd units and asking systemd's own tools about them.

No systemd runs as PID 1 on the test machines, so everything here is offline: the unit files
are parsed as text, and ``systemd-analyze`` judges them (``verify``, ``security --offline``,
``syscall-filter`` to expand the groups a ``SystemCallFilter=`` names).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
SOCKET_UNIT = UNIT_DIR / "s3cache.socket"
SERVICE_UNIT = UNIT_DIR / "s3cache.service"
# The path the shipped units name; `make install` rewrites it to $(BINDIR)/s3cache.
SHIPPED_BINARY = "/usr/bin/s3cache"
# What the issue asks of `systemd-analyze security`: "OK" or better.
MAX_EXPOSURE = 2.0

_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)")


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze not found: install Debian's systemd package (scripts/install-deps does)"
    return found


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}``; a key may repeat (ExecReload=, SystemCallFilter=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: setting outside a section: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def setting(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    """The effective (last) value of a setting that must be present."""
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def copy_units(directory: Path, binary: Path | str) -> tuple[Path, Path]:
    """The shipped units in ``directory``, the worker's path replaced by ``binary`` (as
    ``make install`` does for its prefix): ``systemd-analyze verify`` checks it exists."""
    directory.mkdir(parents=True, exist_ok=True)
    socket_copy = directory / SOCKET_UNIT.name
    service_copy = directory / SERVICE_UNIT.name
    socket_copy.write_text(SOCKET_UNIT.read_text())
    service_copy.write_text(SERVICE_UNIT.read_text().replace(SHIPPED_BINARY, str(binary)))
    return socket_copy, service_copy


def verify(*units: Path, man: bool = True) -> str:
    """Everything ``systemd-analyze verify`` says about ``units`` ('' when it accepts them).

    Its exit status alone is not enough: an unknown key or a value that does not parse is
    reported as "..., ignoring" with status 0, and systemd would then run the unit without
    that setting. So the caller checks that nothing was said at all. ``man=False`` skips the
    check that the ``Documentation=man:`` pages are installed (for units not installed yet).
    """
    result = subprocess.run([systemd_analyze(), "verify", f"--man={'yes' if man else 'no'}", *map(str, units)],
                            capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 and not output:
        output = f"systemd-analyze verify exited with status {result.returncode}"
    return output


def exposure(service: Path) -> tuple[float, str, str]:
    """``systemd-analyze security --offline=true``: (exposure level, its rating, full report)."""
    result = subprocess.run([systemd_analyze(), "security", "--offline=true", "--no-pager", str(service)],
                            capture_output=True, text=True, timeout=60)
    report = result.stdout + result.stderr
    match = _EXPOSURE.search(report)
    assert match, f"no exposure level in the report (status {result.returncode}):\n{report}"
    return float(match.group(1)), match.group(2), report


@functools.cache
def syscall_group(name: str) -> frozenset[str]:
    """The system calls in ``@name``, nested groups expanded (systemd-analyze syscall-filter)."""
    result = subprocess.run([systemd_analyze(), "syscall-filter", name], capture_output=True, text=True,
                            check=True, timeout=60)
    calls: set[str] = set()
    for line in result.stdout.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        calls |= syscall_group(entry) if entry.startswith("@") else {entry}
    assert calls, f"systemd-analyze knows no system call group {name}"
    return frozenset(calls)


def _names(value: str) -> frozenset[str]:
    calls: set[str] = set()
    for entry in value.split():
        calls |= syscall_group(entry) if entry.startswith("@") else {entry}
    return frozenset(calls)


def allowed_syscalls(service: dict[str, dict[str, list[str]]]) -> frozenset[str]:
    """What the service's ``SystemCallFilter=`` lines let through, with systemd's semantics:
    the first line decides between an allow list and a deny list (``~``); later allow lines
    add to an allow list, later ``~`` lines take away from it."""
    lines = service["Service"].get("SystemCallFilter", [])
    assert lines and not lines[0].startswith("~"), "expected SystemCallFilter= to start with an allow list"
    allowed = set(_names(lines[0]))
    for line in lines[1:]:
        if line.startswith("~"):
            allowed -= _names(line[1:])
        else:
            allowed |= _names(line)
    return frozenset(allowed)


def allowed_address_families(service: dict[str, dict[str, list[str]]]) -> frozenset[str]:
    families = setting(service, "Service", "RestrictAddressFamilies")
    assert not families.startswith("~"), "expected RestrictAddressFamilies= to be an allow list"
    return frozenset(families.split())
