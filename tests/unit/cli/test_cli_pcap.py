"""`otwatch pcap …` and `otwatch agent replay --ring` through click's runner on a real store."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from otwatch.agent.capture.pcapfile import open_capture, pcap_record, write_pcap_header
from otwatch.cli.main import cli
from tests.factories import T0, eth

SEC = 1_000_000_000


def invoke(data_dir, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)


@pytest.fixture
def capture(tmp_path):
    """A port scan by 192.0.2.5 plus unrelated chatter, 2 minutes of traffic (ns pcap)."""
    from scapy.layers.inet import IP, TCP, UDP

    path = tmp_path / "scan.pcap"
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=True)
        for i in range(120):
            ts = T0 + i * SEC
            if 30 <= i < 60:
                pkt = eth() / IP(src="192.0.2.5", dst="192.0.2.9") / TCP(dport=i, flags="S")
            else:
                pkt = eth() / IP(src="192.0.2.7", dst="192.0.2.8") / UDP(dport=53)
            data = bytes(pkt)
            f.write(pcap_record(ts, len(data), data))
    return path


def test_replay_with_ring_then_get_and_status(tmp_path, capture):
    data = tmp_path / "data"
    result = invoke(data, "agent", "replay", "--ring", str(capture))
    assert result.exit_code == 0, result.output
    assert "PCAP ring: 120 frames written" in result.output
    alerts = json.loads(invoke(data, "alerts", "list", "--format", "json").output)
    scan = next(a for a in alerts if a["type"] == "port_scan_detected")
    out = tmp_path / "scan-evidence.pcap"
    got = invoke(data, "pcap", "get", str(scan["id"]), "-o", str(out))
    assert got.exit_code == 0, got.output
    assert "from the evidence file" in got.output
    with open_capture(out) as cap:
        frames = list(cap)
        assert cap.nanosecond
    # the 25th SYN raised it (T0+54 s): 30 s before and after hold all 30 SYNs, nothing else
    assert len(frames) == 30 and all(b"\xc0\x00\x02\x05" in f[3] for f in frames)
    if shutil.which("tshark"):
        run = subprocess.run(["tshark", "-r", str(out)], capture_output=True, text=True)
        assert run.returncode == 0 and len(run.stdout.splitlines()) == 30
    status = json.loads(invoke(data, "pcap", "status", "--format", "json").output)
    assert status["ring"]["packets"] == 120 and status["ring"]["segments"] == 1
    assert status["ring"]["oldest_ns"] == T0
    assert status["evidence"]["files"] >= 1
    assert status["capture"]["state"] == "never run"
    table = invoke(data, "pcap", "status").output
    assert "120 packets" in table and "oldest 20" in table


def test_replay_without_ring_writes_no_pcap(tmp_path, capture):
    data = tmp_path / "data"
    result = invoke(data, "agent", "replay", str(capture))
    assert result.exit_code == 0 and "PCAP ring" not in result.output
    assert not (data / "pcap").exists()
    alerts = json.loads(invoke(data, "alerts", "list", "--format", "json").output)
    got = invoke(data, "pcap", "get", str(alerts[0]["id"]), "-o", str(tmp_path / "x.pcap"))
    assert got.exit_code == 1
    assert "PCAP not available: the ring is empty" in got.output
    assert not (tmp_path / "x.pcap").exists()


def test_unknown_alert_and_bad_sizes_are_one_line_errors(tmp_path, capture):
    data = tmp_path / "data"
    got = invoke(data, "pcap", "get", "42", "-o", str(tmp_path / "x.pcap"))
    assert got.exit_code == 1 and f"no sensor database in {data}" in got.output
    assert invoke(data, "alerts", "learn", "42").exit_code == 1  # creates the database
    got = invoke(data, "pcap", "get", "42", "-o", str(tmp_path / "x.pcap"))
    assert got.exit_code == 1 and "alert 42 does not exist" in got.output
    bad = invoke(data, "agent", "replay", "--ring", "--ring-max-size", "lots", str(capture))
    assert bad.exit_code == 2 and "invalid size 'lots'" in bad.output


def test_agent_run_without_an_interface_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.setenv("OTWATCH_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    result = invoke(tmp_path / "data", "agent", "run")
    assert result.exit_code == 2
    assert "no capture interface: give --interface IF or set capture.interfaces" in result.output
