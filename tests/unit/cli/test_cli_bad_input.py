"""Bad input gives one clear error line and a non-zero exit, never a traceback (issue 2 #7)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OTWATCH = [sys.executable, "-m", "otwatch.cli"]


def run(data_dir: Path, *args: str, user: int | None = None) -> subprocess.CompletedProcess:
    cmd = [*OTWATCH, "--data-dir", str(data_dir), *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = {k: v for k, v in os.environ.items() if k != "OTWATCH_DEBUG"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def assert_one_error_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert re.search(needle, errors[0]), errors[0]


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


def test_non_pcap_file(data_dir, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a capture\n" * 10)
    result = run(data_dir, "agent", "replay", str(bogus))
    assert_one_error_line(result, "notes.txt", "not a pcap or pcapng file")


def test_missing_file(data_dir, tmp_path):
    result = run(data_dir, "agent", "replay", str(tmp_path / "nope.pcap"))
    assert_one_error_line(result, "nope.pcap")


def test_empty_file(data_dir, tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert_one_error_line(run(data_dir, "agent", "replay", str(empty)), "empty.pcap")


def test_truncated_file_counts_every_packet_and_fails(data_dir, pcaps):
    result = run(
        data_dir,
        "agent",
        "replay",
        str(pcaps / "malformed" / "melsec_tcp_cut_short.pcap"),
        "--format",
        "json",
    )
    assert_one_error_line(result, "melsec_tcp_cut_short.pcap", "truncated")
    import json

    summary = json.loads(result.stdout)
    assert summary["packets"] == 2042  # 2041 whole records and the partial one
    # what was read before the cut is committed and consistent
    listing = run(data_dir, "alerts", "list", "--format", "json")
    assert listing.returncode == 0


def test_bad_file_among_good_ones_fails_before_touching_the_store(data_dir, pcaps, tmp_path):
    bogus = tmp_path / "bogus.pcap"
    bogus.write_bytes(os.urandom(64))
    result = run(data_dir, "agent", "replay", str(pcaps / "modbus_fuzz.pcap"), str(bogus))
    assert_one_error_line(result, "bogus.pcap")
    assert run(data_dir, "alerts", "list", "--format", "json").stdout.strip() == "[]"


def test_malformed_duration(data_dir, pcaps):
    result = run(
        data_dir, "agent", "replay", str(pcaps / "modbus_fuzz.pcap"), "--learning-period", "10x"
    )
    assert result.returncode == 2
    assert "invalid duration '10x'" in result.stderr and "Traceback" not in result.stderr


def test_unknown_alert_id(data_dir):
    assert_one_error_line(run(data_dir, "alerts", "learn", "4242"), "alert 4242 does not exist")
    assert_one_error_line(run(data_dir, "alerts", "show", "4242"), "alert 4242 does not exist")


def test_illegal_transition_leaves_alert_unchanged(data_dir, pcaps):
    replayed = run(data_dir, "agent", "replay", str(pcaps / "modbus_writes_diag.pcap"))
    assert replayed.returncode == 0, replayed.stderr
    import json

    alerts = json.loads(run(data_dir, "alerts", "list", "--format", "json").stdout)
    exception = next(a for a in alerts if a["type"] == "modbus_exception")
    result = run(data_dir, "alerts", "learn", str(exception["id"]))
    assert_one_error_line(result, "not learnable")
    after = json.loads(
        run(data_dir, "alerts", "show", str(exception["id"]), "--format", "json").stdout
    )
    assert after["status"] == "new"
    assert [e["action"] for e in after["audit"]] == ["created"]


def test_invalid_status_is_a_usage_error(data_dir):
    result = run(data_dir, "alerts", "set-status", "resolved", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_data_directory_not_writable(tmp_path):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to switch to an unprivileged user with setpriv")
    probe = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            "import otwatch.cli.main",
        ],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("the unprivileged user cannot import otwatch from this checkout")
    import tempfile

    locked = Path(tempfile.mkdtemp(prefix="otwatch-locked-"))
    try:
        locked.chmod(0o755)  # owned by root: nobody can enter but not write
        result = run(locked, "alerts", "learn", "1", user=65534)
        assert_one_error_line(result, "not writable|permission denied")
        result = run(locked, "alerts", "list", user=65534)
        assert_one_error_line(result, "no sensor database in")
        assert not (locked / "otwatch.db").exists()
    finally:
        shutil.rmtree(locked)
