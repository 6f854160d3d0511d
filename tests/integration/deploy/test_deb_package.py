"""The Debian package (``make package``): build, install, upgrade, remove and purge on this machine.

The package is built once for the module with ``packaging/deb/build-deb.sh``; the upgrade
installs a newer build made from it (version bumped, a file changed) over a configuration an
operator has edited. The test holds the same lock as ``test_roles.py`` (both create the
``otwatch-*`` users and groups) and leaves the machine as it found it: no package, files,
users or groups.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otwatch import __version__

REPO = Path(__file__).resolve().parents[3]
LOCK = Path("/tmp/otwatch-roles-test.lock")  # shared with test_roles.py
UNITS = ("otwatch-agent.service", "otwatch-sync.service", "otwatch-central.service")
USERS = ("otwatch-agent", "otwatch-sync", "otwatch-central")
GROUPS = (*USERS, "otwatch-readers", "otwatch-analysts", "otwatch-admins")
CONFFILE = Path("/etc/otwatch/otwatch.toml")
DATA = Path("/var/lib/otwatch")
INSTALLED_PATHS = (Path("/opt/otwatch"), Path("/usr/bin/otwatch"), CONFFILE, DATA,
                   *(Path("/lib/systemd/system") / u for u in UNITS))  # fmt: skip

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not all(shutil.which(t) for t in ("dpkg", "dpkg-deb", "systemd-sysusers", "userdel")),
    reason="needs root, dpkg, systemd-sysusers and userdel to install a package on this machine",
)


def _run(*cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run with stdin closed: a dpkg conffile prompt fails the step instead of hanging it."""
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _ok(*cmd: str) -> str:
    result = _run(*cmd)
    assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def _accounts() -> tuple[set[str], set[str]]:
    return ({p.pw_name for p in pwd.getpwall() if p.pw_name.startswith("otwatch")},
            {g.gr_name for g in grp.getgrall() if g.gr_name.startswith("otwatch")})  # fmt: skip


def _installed_version() -> str | None:
    result = _run("dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", "otwatch")
    if result.returncode != 0 or not result.stdout.startswith("ii"):
        return None
    return result.stdout.split()[-1]


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> tuple[Path, Path]:
    """The package as ``make package`` builds it, and a newer build made from it."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        ["bash", str(REPO / "packaging/deb/build-deb.sh"), str(out)],
        capture_output=True, text=True, timeout=1500,
        env={**os.environ, "DEB_COMPRESSION": "none"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    first = Path(result.stdout.strip().splitlines()[-1])
    assert first.name == f"otwatch_{__version__}-1_amd64.deb"
    tree = tmp_path_factory.mktemp("tree") / "root"
    _ok("dpkg-deb", "-R", str(first), str(tree))
    control = tree / "DEBIAN/control"
    control.write_text(control.read_text().replace(f"{__version__}-1", f"{__version__}-2"))
    (tree / "opt/otwatch/share/doc/otwatch/deploy.md").write_text("# newer build\n")
    second = out / f"otwatch_{__version__}-2_amd64.deb"
    _ok("dpkg-deb", "--root-owner-group", "-Znone", "-b", str(tree), str(second))
    return first, second


@pytest.fixture
def clean_machine() -> Iterator[None]:
    """Hold the shared lock; refuse to run over an existing install; purge whatever is left."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users, groups = _accounts()
        present = [str(p) for p in INSTALLED_PATHS if p.exists() or p.is_symlink()]
        if _installed_version() or present or users or groups:
            pytest.skip(f"otwatch already on this machine: {present, users, groups}")
        try:
            yield
        finally:
            if _run("dpkg-query", "-W", "otwatch").returncode == 0:
                _run("dpkg", "--purge", "otwatch")


def test_install_upgrade_remove_purge(debs, clean_machine):
    first, second = debs
    info = _ok("dpkg-deb", "-f", str(first), "Depends", "Recommends")
    assert "python3." in info and "libpcap0.8" in info and "mosquitto" in info

    # Install: the CLI works, units verify, the shipped configuration checks, nothing starts.
    _ok("dpkg", "-i", str(first))
    assert _installed_version() == f"{__version__}-1"
    assert _ok("/usr/bin/otwatch", "--version").strip() == f"otwatch, version {__version__}"
    assert set(USERS) <= _accounts()[0] and set(GROUPS) <= _accounts()[1]
    assert DATA.stat().st_uid == pwd.getpwnam("otwatch-agent").pw_uid
    assert grp.getgrgid(CONFFILE.stat().st_gid).gr_name == "otwatch-admins"
    units = [str(Path("/lib/systemd/system") / u) for u in UNITS]
    verify = _run("systemd-analyze", "verify", *units)
    problems = [ln for ln in verify.stderr.splitlines() if "otwatch" in ln]
    assert verify.returncode == 0 and problems == [], verify.stderr
    check = _run("/usr/bin/otwatch", "config", "check")
    assert check.returncode == 0 and f"{CONFFILE} is valid" in check.stdout, check.stderr
    assert not list(Path("/etc/systemd/system").glob("*.wants/otwatch-*")), "enabled on install"

    # Upgrade over an operator's edit: the edit stays, without a prompt.
    edited = CONFFILE.read_text().replace('id = "plant1-sensor1"', 'id = "edited-sensor"')
    assert "edited-sensor" in edited
    CONFFILE.write_text(edited)
    _ok("dpkg", "-i", str(second))
    assert _installed_version() == f"{__version__}-2"
    assert CONFFILE.read_text() == edited
    assert Path("/opt/otwatch/share/doc/otwatch/deploy.md").read_text() == "# newer build\n"
    assert "sensor.id" not in _ok("/usr/bin/otwatch", "config", "check")
    (DATA / "kept.db").write_bytes(b"alerts")

    # Remove: the program goes; data, configuration and users stay.
    _ok("dpkg", "--remove", "otwatch")
    assert not Path("/opt/otwatch").exists() and not Path("/usr/bin/otwatch").is_symlink()
    assert CONFFILE.read_text() == edited and (DATA / "kept.db").read_bytes() == b"alerts"
    assert set(USERS) <= _accounts()[0]

    # Purge: nothing of it is left.
    _ok("dpkg", "--purge", "otwatch")
    assert _run("dpkg-query", "-W", "otwatch").returncode != 0
    assert [str(p) for p in INSTALLED_PATHS if p.exists() or p.is_symlink()] == []
    assert not Path("/etc/otwatch").exists() and not Path("/var/lib/otwatch-central").exists()
    assert _accounts() == (set(), set())
