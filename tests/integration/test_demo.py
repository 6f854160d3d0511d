"""The README's first command, `otwatch demo`, runs end to end and shows what it promises."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_raises_every_attack_step_and_triages(tmp_path):
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "otwatch.cli",
            "--data-dir",
            str(workdir / "sensor"),
            "alerts",
            "list",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    alerts = json.loads(listing.stdout)
    types = {a["type"] for a in alerts}
    assert {
        "new_asset_detected",
        "port_scan_detected",
        "illegal_connection_attempt_on_port_0",
        "unpermitted_usage_of_modbus_function_code",
        "modbus_exception",
    } <= types
    by_status = {(a["type"], a["status"], a["close_reason"]) for a in alerts}
    assert ("port_scan_detected", "active", None) in by_status
    assert ("modbus_exception", "closed", "muted") in by_status
    assert ("unpermitted_usage_of_modbus_function_code", "closed", "learned") in by_status
    assert "is not learnable" in result.stderr + result.stdout
