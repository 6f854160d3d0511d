"""The replay benchmark runs end to end on tiny captures and prints every line it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "replay.py"


def test_bench_prints_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--packets", "3000", "--flows", "3000",
         "--naive-packets", "300", "--rounds", "1", "--cache", str(tmp_path),
         "--no-evidence"],
        capture_output=True, text=True, timeout=600, cwd=BENCH.parents[1], check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = [
        "plain 10M-iteration Python loop:",
        "captures: modbus_polling_3000.pcap",
        "naive Scapy loop",
        "Modbus polling: otwatch agent replay (all engines, --ring",
        "mixed plant: otwatch agent replay (all engines, --ring",
        "ratio otwatch/naive (one-core rates, Modbus polling)",
        "CPU per packet, Modbus polling: otwatch",
        "CPU per packet, mixed plant: otwatch",
        "peak RSS, Modbus polling replay of 3,000 packets",
        "peak RSS, mixed plant replay of 3,000 packets",
        "3,000 distinct flows: peak RSS",
        "ring overhead:",
        "ring write alone (no dissection, CPU):",
    ]
    assert [line.split(maxsplit=1)[0] for line in lines] == [e.split()[0] for e in expected]
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), line
    lines = lines[1:]  # the machine-speed line is checked above
    modbus = lines[2]
    assert "pkt/s on one core over 3,000 packets" in modbus and "one-core target" in modbus
    assert ("meets the 250,000" in modbus) != ("BELOW the 250,000" in modbus)
    assert "x target)" in lines[4] and ("meets" in lines[4]) != ("BELOW" in lines[4])
    for line in lines[5:7]:
        assert "tcpdump -r X -w Y" in line or "tcpdump not installed" in line
    for line in lines[7:10]:
        assert " MB (meets the " in line or " MB (BELOW the " in line
    assert "frames written" in lines[10]
    # the generated captures were cached where asked, at the requested size
    assert sorted(p.name for p in tmp_path.glob("*.pcap")) == [
        "distinct_port_flows_3000.pcap",
        "mixed_plant_3000.pcap",
        "modbus_polling_3000.pcap",
    ]
