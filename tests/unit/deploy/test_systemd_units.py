"""The systemd units, sysusers.d and tmpfiles.d files under ``systemd/``.

``systemd-analyze verify`` and ``security --offline=yes`` run on copies whose ExecStart points
at an executable that exists here (the units name ``/opt/otwatch/bin/otwatch``, the installed
path); everything else is the shipped file, byte for byte.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SYSTEMD = REPO / "systemd"
UNITS = ("otwatch-agent.service", "otwatch-sync.service", "otwatch-central.service")
INSTALLED = "/opt/otwatch/bin/otwatch"
MAX_EXPOSURE = 3.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (scripts/ensure-system.sh installs Debian's systemd)",
)


def directives(unit: str) -> dict[tuple[str, str], list[str]]:
    """``(section, key) -> values`` in file order; keys may repeat (SystemCallFilter=)."""
    out: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in (SYSTEMD / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def one(unit: str, key: str, section: str = "Service") -> str:
    values = directives(unit).get((section, key))
    assert values, f"{unit}: {key}= missing"
    return values[-1]


def systemd_version() -> int:
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True)
    return int(re.match(r"systemd (\d+)", out.stdout).group(1))


def runnable_copy(unit: str, directory: Path, extra: str = "") -> Path:
    target = Path(sys.executable).with_name("otwatch")
    exe = target if target.exists() else Path(shutil.which("otwatch") or "/bin/true")
    text = (SYSTEMD / unit).read_text().replace(INSTALLED, str(exe))
    path = directory / unit
    path.write_text(text + extra)
    return path


def verify(path: Path) -> list[str]:
    """Problems ``systemd-analyze verify`` reports about this file (it exits 0 on unknown
    keys, so warnings naming the unit count too)."""
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    lines = [ln for ln in result.stderr.splitlines() if path.name in ln or str(path) in ln]
    if result.returncode != 0:
        lines.append(f"exit status {result.returncode}: {result.stderr.strip()}")
    return lines


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies_cleanly(unit, tmp_path):
    assert verify(runnable_copy(unit, tmp_path)) == []


@needs_analyze
def test_verify_catches_a_bad_key(tmp_path):
    """The check above can fail: a misspelt directive is reported."""
    bad = runnable_copy("otwatch-sync.service", tmp_path, "\n[Service]\nProtectSystm=strict\n")
    assert any("ProtectSystm" in line for line in verify(bad))


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_ok(unit, tmp_path):
    path = runnable_copy(unit, tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure, verdict = float(match.group(1)), match.group(2)
    assert exposure <= MAX_EXPOSURE and verdict in ("OK", "SAFE", "PERFECT"), match.group(0)


@needs_analyze
def test_restart_backoff_dropin_matches_the_systemd_version(tmp_path):
    """RestartSteps= needs systemd 254; on older ones it is warned about, hence a drop-in."""
    dropin = (SYSTEMD / "restart-backoff.conf").read_text()
    path = runnable_copy("otwatch-agent.service", tmp_path, "\n" + dropin)
    problems = verify(path)
    if systemd_version() >= 254:
        assert problems == []
    else:
        assert any("RestartSteps" in line for line in problems)
    for unit in UNITS:
        assert ("Service", "RestartSteps") not in directives(unit), unit


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_every_unit_has(unit):
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "SystemCallFilter": "@system-service",
        "Restart": "on-failure",
    }.items():
        assert value in directives(unit)[("Service", key)], (unit, key)
    assert one(unit, "RestartSec")
    assert one(unit, "ExecStart").startswith(INSTALLED + " ")
    assert one(unit, "User") != "root"


def test_agent_has_capture_capabilities_only_and_no_ip():
    unit = "otwatch-agent.service"
    assert one(unit, "Type") == "notify" and one(unit, "WatchdogSec")
    assert one(unit, "User") == "otwatch-agent"
    caps = {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(one(unit, "AmbientCapabilities").split()) == caps
    assert set(one(unit, "CapabilityBoundingSet").split()) == caps
    assert one(unit, "IPAddressDeny") == "any"
    families = set(one(unit, "RestrictAddressFamilies").split())
    assert families == {"AF_PACKET", "AF_UNIX", "AF_NETLINK"}
    assert directives(unit)[("Service", "ReadWritePaths")] == ["/var/lib/otwatch"]


@pytest.mark.parametrize("unit", UNITS)
def test_every_daemon_is_type_notify_with_a_watchdog(unit):
    """The daemons send READY/WATCHDOG (tests/integration/deploy/test_daemon_notify.py)."""
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert re.fullmatch(r"\d+s", one(unit, "WatchdogSec"))


def test_sync_has_network_but_no_capability_and_reads_the_ring_only():
    unit = "otwatch-sync.service"
    assert one(unit, "CapabilityBoundingSet") == ""
    assert one(unit, "AmbientCapabilities") == ""
    families = set(one(unit, "RestrictAddressFamilies").split())
    assert "AF_PACKET" not in families and {"AF_INET", "AF_INET6"} <= families
    assert directives(unit)[("Service", "ReadWritePaths")] == ["/var/lib/otwatch"]
    assert one(unit, "ReadOnlyPaths").lstrip("-") == "/var/lib/otwatch/pcap/ring"


def test_central_keeps_to_its_own_state_directory():
    unit = "otwatch-central.service"
    assert one(unit, "CapabilityBoundingSet") == ""
    assert one(unit, "StateDirectory") == "otwatch-central"
    assert ("Service", "ReadWritePaths") not in directives(unit)


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_and_tmpfiles_create_the_documented_layout(tmp_path):
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "sysusers.d/otwatch.conf")],
        check=True,
        capture_output=True,
    )
    groups = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    users = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    for role in ("otwatch-readers", "otwatch-analysts", "otwatch-admins"):
        assert role in groups
    assert set(groups["otwatch-analysts"][3].split(",")) == {"otwatch-agent", "otwatch-sync"}
    for user in ("otwatch-agent", "otwatch-sync", "otwatch-central"):
        assert users[user][6].endswith("nologin")

    subprocess.run(
        [
            "systemd-tmpfiles",
            f"--root={tmp_path}",
            "--create",
            str(SYSTEMD / "tmpfiles.d/otwatch.conf"),
        ],
        capture_output=True,
    )  # the ACL line needs the groups on the host and may fail here; test_roles.py covers it
    agent_uid, analysts_gid = int(users["otwatch-agent"][2]), int(groups["otwatch-analysts"][2])
    expected = {
        "var/lib/otwatch": 0o3770,
        "var/lib/otwatch/pcap": 0o2750,
        "var/lib/otwatch/pcap/ring": 0o2750,
        "var/lib/otwatch/pcap/evidence": 0o3770,
    }
    for rel, mode in expected.items():
        st = (tmp_path / rel).stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, agent_uid, analysts_gid), rel
    st = (tmp_path / "etc/otwatch").stat()
    assert (st.st_mode & 0o7777, st.st_gid) == (0o2775, int(groups["otwatch-admins"][2]))
