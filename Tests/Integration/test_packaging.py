"""The systemd units, `make install` and the Debian package.

No systemd runs as PID 1 here (``systemctl`` says "offline"), so the units are judged by
``systemd-analyze`` and the package by ``dpkg`` itself: the .deb is built with ``make deb``
(a no-op when dist/ already holds one newer than the sources), installed with ``dpkg -i``,
checked in place, and purged.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from systemd_units import (MAX_EXPOSURE, REPO, SERVICE_UNIT, SOCKET_UNIT, copy_units, exposure, read_unit,
                           setting, verify)

sys.path.insert(0, str(REPO / "scripts"))
from stack import DEFAULT_BINARY  # noqa: E402

PROCESS_SWIFT = REPO / "Sources" / "S3CacheCore" / "Server" / "Process.swift"
SNIPPETS = sorted(path.name for path in (REPO / "nginx").glob("s3cache-*.conf"))
# `make deb` builds the static binary from scratch when there is none: minutes on 2 cores.
DEB_BUILD_TIMEOUT = 1800


def worker_binary() -> Path:
    binary = Path(os.environ.get("S3CACHE_BIN") or DEFAULT_BINARY)
    assert binary.is_file(), f"worker binary not found at {binary}: build it first or set S3CACHE_BIN"
    return binary


def source_version() -> str:
    """``S3CacheVersion.current``, the one place the version is written."""
    match = re.search(r'static let current = "([^"]+)"', PROCESS_SWIFT.read_text())
    assert match, f"no S3CacheVersion.current in {PROCESS_SWIFT}"
    return match.group(1)


def run(*argv: str, timeout: float = 120, check: bool = True, **options) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **options)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited with status {result.returncode}\n"
                    f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}", pytrace=False)
    return result


# ---------------------------------------------------------------------------------------------
# the unit files


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    socket_unit, service_unit = copy_units(tmp_path, worker_binary())
    # Documentation=man:s3cache(8) is checked once the page is installed (the .deb test).
    assert verify(socket_unit, service_unit, man=False) == ""


def test_verify_reports_what_systemd_would_ignore(tmp_path):
    """The check above can fail: a misspelt key and a bad value are reported (status 0 or not)."""
    socket_unit, service_unit = copy_units(tmp_path, worker_binary())
    service_unit.write_text(service_unit.read_text()
                            .replace("ProtectSystem=strict", "ProtectSystem=stricter")
                            .replace("WatchdogSec=", "WatchdogSecs="))
    output = verify(socket_unit, service_unit, man=False)
    assert "ProtectSystem" in output or "protect system" in output, output
    assert "WatchdogSecs" in output, output


def test_units_agree_with_each_other_and_with_nginx():
    socket_unit, service = read_unit(SOCKET_UNIT), read_unit(SERVICE_UNIT)
    path = setting(socket_unit, "Socket", "ListenStream")
    assert path == "/run/s3cache/s3cache.sock"
    # nginx's workers (www-data) connect; nobody else may.
    assert setting(socket_unit, "Socket", "SocketUser") == setting(service, "Service", "User") == "s3cache"
    assert setting(socket_unit, "Socket", "SocketGroup") == "www-data"
    assert setting(socket_unit, "Socket", "SocketMode") == "0660"
    assert setting(socket_unit, "Install", "WantedBy") == "sockets.target"
    upstream = (REPO / "nginx" / "s3cache-upstream.conf").read_text()
    assert re.search(rf"^\s*server\s+unix:{re.escape(path)}\s*;", upstream, re.M), \
        "nginx/s3cache-upstream.conf must point at the socket's ListenStream="

    assert "s3cache.socket" in setting(service, "Unit", "Requires").split()
    assert "s3cache.socket" in setting(service, "Unit", "After").split()
    assert setting(service, "Service", "Type") == "notify"
    assert setting(service, "Service", "NotifyAccess") == "main"
    assert setting(service, "Service", "ExecStart") == "/usr/bin/s3cache"
    # Like `nginx -t`: the configuration is checked before the worker is told to load it.
    assert service["Service"]["ExecReload"] == ["/usr/bin/s3cache --check-config", "/bin/kill -HUP $MAINPID"]
    assert setting(service, "Service", "EnvironmentFile") == "-/etc/default/s3cache"
    assert "78" in setting(service, "Service", "RestartPreventExitStatus").split()
    assert setting(service, "Service", "Restart") == "on-failure"
    # Gzip uploads are spooled to $TMPDIR: it must be a private, writable directory.
    assert setting(service, "Service", "PrivateTmp") == "yes"
    assert "TMPDIR=/var/tmp" in service["Service"]["Environment"]
    # A RuntimeDirectory= would be /run/s3cache, removed when the service stops: with the
    # socket file in it, every restart would cut nginx off until the socket is restarted too.
    assert "RuntimeDirectory" not in service["Service"]


def test_exposure_is_ok_or_better():
    level, rating, report = exposure(SERVICE_UNIT)
    assert level <= MAX_EXPOSURE, f"exposure {level} {rating}:\n{report}"
    # The number written in the unit's comment is the one measured.
    assert f"rates this {level} ({rating})" in SERVICE_UNIT.read_text(), \
        f"update the exposure figure in {SERVICE_UNIT.name}'s comment to {level} ({rating})"


def test_exposure_without_hardening_is_not_ok(tmp_path):
    """The check above can fail: the same unit without its sandbox rates far worse."""
    bare = tmp_path / "s3cache.service"
    kept = []
    hardening = re.compile(r"^(Protect|Private|Restrict|NoNewPrivileges|Capability|Ambient|LockPersonality|"
                           r"MemoryDeny|RemoveIPC|UMask|SystemCall|DevicePolicy|KeyringMode|ProcSubset)")
    for line in SERVICE_UNIT.read_text().splitlines():
        if not hardening.match(line):
            kept.append(line)
    bare.write_text("\n".join(kept) + "\n")
    level, _, _ = exposure(bare)
    assert level > MAX_EXPOSURE


# ---------------------------------------------------------------------------------------------
# make install / make uninstall


def test_make_install_and_uninstall_into_destdir(tmp_path):
    root = tmp_path / "root"
    # -o: install the binary under test as it is (make would rebuild one older than the sources).
    install = ("make", "-C", str(REPO), "--no-print-directory", "install", f"DESTDIR={root}",
               f"BINARY={worker_binary()}", "-o", str(worker_binary()))
    run(*install)
    expected = ["usr/local/bin/s3cache", "etc/systemd/system/s3cache.socket", "etc/systemd/system/s3cache.service",
                "usr/local/share/doc/s3cache/example-site.conf", "usr/local/share/man/man8/s3cache.8",
                "etc/s3cache/s3cache.conf", "etc/s3cache/keys", *(f"etc/nginx/snippets/{name}" for name in SNIPPETS)]
    for name in expected:
        assert (root / name).is_file(), f"make install did not install /{name}"
    assert os.access(root / "usr/local/bin/s3cache", os.X_OK)
    # The configuration holds the S3 secret.
    assert (root / "etc/s3cache/s3cache.conf").stat().st_mode & 0o777 == 0o640
    assert (root / "etc/s3cache/keys").stat().st_mode & 0o777 == 0o640   # the gateway keys too
    service = read_unit(root / "etc/systemd/system/s3cache.service")
    assert setting(service, "Service", "ExecStart") == "/usr/local/bin/s3cache"
    assert service["Service"]["ExecReload"][0] == "/usr/local/bin/s3cache --check-config"

    # An edited configuration and allow list survive a second install.
    (root / "etc/s3cache/s3cache.conf").write_text("S3_ENDPOINT=s3.example.net\n")
    (root / "etc/nginx/snippets/s3cache-monitoring.conf").write_text("allow 10.0.0.0/8;\n")
    run(*install)
    assert (root / "etc/s3cache/s3cache.conf").read_text() == "S3_ENDPOINT=s3.example.net\n"
    assert (root / "etc/nginx/snippets/s3cache-monitoring.conf").read_text() == "allow 10.0.0.0/8;\n"

    run("make", "-C", str(REPO), "--no-print-directory", "uninstall", f"DESTDIR={root}")
    left = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    # The operator's files stay: the settings and the allow lists of the service endpoints.
    assert left == ["etc/nginx/snippets/s3cache-monitoring.conf", "etc/nginx/snippets/s3cache-notify-senders.conf",
                    "etc/s3cache/keys", "etc/s3cache/s3cache.conf"], left


# ---------------------------------------------------------------------------------------------
# the Debian package


@pytest.fixture(scope="module")
def deb() -> Path:
    """dist/s3cache_<version>-1_<arch>.deb, built (or found up to date) by `make deb`."""
    arch = run("dpkg", "--print-architecture").stdout.strip()
    path = REPO / "dist" / f"s3cache_{source_version()}-1_{arch}.deb"
    run("make", "-C", str(REPO), "--no-print-directory", "deb", timeout=DEB_BUILD_TIMEOUT)
    assert path.is_file(), f"make deb did not produce {path}"
    return path


def test_deb_metadata_and_contents(deb, tmp_path):
    fields = {name: run("dpkg-deb", "--field", str(deb), name).stdout.strip()
              for name in ("Package", "Version", "Architecture", "Depends")}
    assert fields["Package"] == "s3cache"
    assert fields["Version"] == f"{source_version()}-1"
    depends = {entry.split()[0] for entry in fields["Depends"].split(",")}
    assert {"libfcgi0ldbl", "libcurl4", "zlib1g", "libssl3", "libc6", "adduser"} <= depends, fields["Depends"]
    assert not any("swift" in name for name in depends), fields["Depends"]

    listing = run("dpkg-deb", "--contents", str(deb)).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for path in ["/usr/bin/s3cache", "/lib/systemd/system/s3cache.socket", "/lib/systemd/system/s3cache.service",
                 "/etc/s3cache/s3cache.conf", "/etc/s3cache/keys", "/usr/share/doc/s3cache/copyright",
                 "/usr/share/doc/s3cache/changelog.Debian.gz", "/usr/share/doc/s3cache/example-site.conf",
                 *(f"/etc/nginx/snippets/{name}" for name in SNIPPETS)]:
        assert path in paths, f"{path} is not in the package"
    # Every file in /etc is the admin's to edit: all of them are conffiles.
    control = tmp_path / "control"
    run("dpkg-deb", "--control", str(deb), str(control))
    etc_files = sorted(path for path in paths if path.startswith("/etc/") and not path.endswith("/"))
    assert sorted((control / "conffiles").read_text().split()) == etc_files

    # The binary carries Swift's runtime: nothing it needs lives under /opt/swift.
    unpacked = tmp_path / "root"
    run("dpkg-deb", "--extract", str(deb), str(unpacked))
    ldd = run("ldd", str(unpacked / "usr/bin/s3cache")).stdout
    assert "not found" not in ldd and "/opt/swift" not in ldd and "libswift" not in ldd, ldd


def test_lintian_reports_no_errors(deb):
    if shutil.which("lintian") is None:
        pytest.fail("lintian not found: scripts/install-deps installs it", pytrace=False)
    result = run("lintian", "--fail-on", "error", str(deb), check=False, timeout=300)
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert result.returncode == 0 and not errors, result.stdout + result.stderr


def _installed_files() -> list[str]:
    result = subprocess.run(["dpkg-query", "-L", "s3cache"], capture_output=True, text=True)
    return result.stdout.split() if result.returncode == 0 else []


def test_deb_installs_and_purges(deb):
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root (CI runs the tests as root)")
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "s3cache"], capture_output=True, text=True).stdout
    if "installed" in status.split():
        pytest.fail("an s3cache package is already installed on this machine; this test would replace it. "
                    "Remove it first (dpkg --purge s3cache).", pytrace=False)
    for path in ["/usr/bin/s3cache", "/etc/s3cache/s3cache.conf", *(f"/etc/nginx/snippets/{name}" for name in SNIPPETS)]:
        if os.path.exists(path):
            pytest.fail(f"{path} exists (from make install?); this test would take it over. "
                        "Run make uninstall first.", pytrace=False)
    try:
        run("dpkg", "-i", str(deb), env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        _check_installed(deb)
    finally:
        purge = subprocess.run(["dpkg", "--purge", "s3cache"], capture_output=True, text=True, timeout=120)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    _check_purged()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _check_installed(deb: Path) -> None:
    for path in ["/usr/bin/s3cache", "/lib/systemd/system/s3cache.socket", "/lib/systemd/system/s3cache.service",
                 "/etc/s3cache/s3cache.conf", "/usr/share/doc/s3cache/copyright",
                 *(f"/etc/nginx/snippets/{name}" for name in SNIPPETS)]:
        assert os.path.isfile(path), f"{path} is missing after dpkg -i"
    assert run("/usr/bin/s3cache", "--version").stdout.strip() == f"s3cache {source_version()}"

    # postinst: a system user and group, nothing added to www-data.
    user = pwd.getpwnam("s3cache")
    assert user.pw_uid < 1000 and user.pw_shell.endswith("nologin"), user
    assert grp.getgrgid(user.pw_gid).gr_name == "s3cache"
    assert "s3cache" not in grp.getgrnam("www-data").gr_mem
    # The configuration holds the S3 secret: root:s3cache 0640, readable by the worker's user only.
    conf = os.stat("/etc/s3cache/s3cache.conf")
    assert (conf.st_uid, grp.getgrgid(conf.st_gid).gr_name, conf.st_mode & 0o777) == (0, "s3cache", 0o640)
    assert run("runuser", "-u", "s3cache", "--", "cat", "/etc/s3cache/s3cache.conf", check=False).returncode == 0
    assert run("runuser", "-u", "www-data", "--", "cat", "/etc/s3cache/s3cache.conf", check=False).returncode != 0
    keys = os.stat("/etc/s3cache/keys")
    assert (keys.st_uid, grp.getgrgid(keys.st_gid).gr_name, keys.st_mode & 0o777) == (0, "s3cache", 0o640)
    assert run("runuser", "-u", "www-data", "--", "cat", "/etc/s3cache/keys", check=False).returncode != 0
    # The shipped configuration is valid as it is (once the worker has --check-config: the
    # unit's ExecReload= needs it).
    if "--check-config" in run("/usr/bin/s3cache", "--help").stdout:
        check = run("runuser", "-u", "s3cache", "--", "/usr/bin/s3cache", "--check-config", check=False)
        assert check.returncode == 0, check.stdout + check.stderr

    # The socket is enabled (offline: the link exists); nothing was started without systemd.
    link = Path("/etc/systemd/system/sockets.target.wants/s3cache.socket")
    assert link.is_symlink() and os.readlink(link) == "/lib/systemd/system/s3cache.socket"

    # The installed units, as systemd would read them.
    assert verify(Path("/lib/systemd/system/s3cache.socket"), Path("/lib/systemd/system/s3cache.service")) == ""
    level, rating, report = exposure(Path("/lib/systemd/system/s3cache.service"))
    assert level <= MAX_EXPOSURE, report


def _check_purged() -> None:
    assert _installed_files() == []
    for path in ["/usr/bin/s3cache", "/lib/systemd/system/s3cache.socket", "/lib/systemd/system/s3cache.service",
                 "/etc/s3cache", "/usr/share/doc/s3cache", "/etc/systemd/system/s3cache.socket",
                 "/etc/systemd/system/sockets.target.wants/s3cache.socket",
                 *(f"/etc/nginx/snippets/{name}" for name in SNIPPETS)]:
        assert not os.path.lexists(path), f"{path} is left after dpkg --purge"
    overrides = run("dpkg-statoverride", "--list", check=False).stdout
    assert "/etc/s3cache" not in overrides, overrides
    assert not _user_exists("s3cache"), "postrm purge left the s3cache user"
    with pytest.raises(KeyError):
        grp.getgrnam("s3cache")
