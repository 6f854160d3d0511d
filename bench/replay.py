"""Replay throughput: ``otwatch agent replay`` against a naive Scapy loop, in one run.

Generates (once, cached under bench/.cache/) a Modbus/TCP polling capture of ``--packets``
packets, replays it through the real pipeline in a child process (fresh data directory, a
learning period for the first minute of traffic, then every engine on), and compares
packets/s with a naive loop — Scapy ``PcapReader`` with full dissection — measured in this same
run on a prefix of the same file. Prints the ratio, the child's CPU µs/packet and peak RSS.

Also measured in the same run: the rolling PCAP ring's overhead (the same replay with
``--ring``; evidence cutting at the end is reported apart), the raw ring write cost per frame,
and peak RSS on a capture of ``--flows`` distinct flows (the flow table is bounded).

    python bench/replay.py [--packets 1000000] [--naive-packets 20000] [--flows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_capture import modbus_polling

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET_RATIO = 20.0  # issue 2; the capture issue raises it to 40x and 250k packets/s


def capture(packets: int) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"modbus_polling_{packets}.pcap"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        modbus_polling(str(tmp), packets=packets)
        tmp.rename(path)
    return path


def naive_scapy(path: Path, limit: int) -> float:
    """Packets/s of a full Scapy dissection loop over the first ``limit`` packets."""
    from scapy.contrib.modbus import ModbusADURequest  # noqa: F401 - binds port 502
    from scapy.utils import PcapReader

    count = 0
    started = time.perf_counter()
    with PcapReader(str(path)) as reader:
        for _pkt in reader:  # PcapReader dissects every layer of every packet as it reads
            count += 1
            if count >= limit:
                break
    return count / (time.perf_counter() - started)


def otwatch_replay(path: Path, extra: list[str]) -> tuple[dict, float, float]:
    """Run the CLI in a child; returns its JSON summary, CPU seconds and peak RSS (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as data_dir:
        result = subprocess.run(
            [sys.executable, "-m", "otwatch.cli", "--data-dir", data_dir, "agent", "replay",
             str(path), "--learning-period", "60s", "--format", "json", *extra],
            capture_output=True, text=True, check=False,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"replay failed: {result.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(result.stdout), cpu, after.ru_maxrss / 1024


def distinct_flows(packets: int) -> Path:
    """A capture where every packet opens a new UDP flow (cached like ``capture``)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"distinct_port_flows_{packets}.pcap"
    if path.exists():
        return path
    from otwatch.agent.capture.pcapfile import pcap_record, write_pcap_header

    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    ip_hdr = struct.Struct("!BBHHHBBH4s4s")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        write_pcap_header(f, 1, nanosecond=True)
        out = []
        src, dst = bytes((192, 0, 2, 10)), bytes((192, 0, 2, 20))
        ip = ip_hdr.pack(0x45, 0, 20 + 8 + 4, 0, 0, 64, 17, 0, src, dst)
        for i in range(packets):
            # one client, one server: flows differ by port pair, so detections stay few
            sport, dport = 1024 + i % 64_000, 5000 + i // 64_000
            udp = struct.pack("!HHHH", sport, dport, 12, 0) + b"ping"
            frame = eth + ip + udp
            out.append(pcap_record(1_767_225_600_000_000_000 + i * 10_000, len(frame), frame))
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    tmp.rename(path)
    return path


def replay_peak_rss(path: Path, extra: list[str]) -> tuple[dict, float]:
    """Replay in a child and return its JSON summary and its own peak RSS (MiB)."""
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as data_dir:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otwatch.cli", "--data-dir", data_dir, "agent", "replay",
             str(path), "--format", "json", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"replay failed: {err.strip()}")
    return json.loads(out), usage.ru_maxrss / 1024


def ring_write_cost(path: Path, limit: int = 300_000) -> float:
    """µs per frame to append frames to the ring (no dissection), in this process."""
    from otwatch.agent.capture.config import RingConfig
    from otwatch.agent.capture.pcapfile import open_capture
    from otwatch.agent.capture.ring import RingWriter
    from otwatch.agent.store.db import open_store

    with open_capture(path) as cap:
        frames = [f for _, f in zip(range(limit), cap, strict=False)]
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as data_dir:
        store = open_store(data_dir)
        ring = RingWriter(store, RingConfig(directory=Path(data_dir) / "ring", max_percent=None))
        started = time.perf_counter()
        for i in range(0, len(frames), 1024):
            ring.write_batch(frames[i : i + 1024], 1, True)
        ring.close()
        elapsed = time.perf_counter() - started
        store.close()
    return elapsed / len(frames) * 1e6


def report_ring_and_memory(path: Path, plain: dict, flows: int) -> None:
    # Alternate plain and --ring runs and keep the best of each, so a change in machine
    # load during the run does not pass for the ring's cost.
    plain_s = plain["seconds"]
    ring_s = float("inf")
    with_ring: dict = {}
    rss_ring = 0.0
    for _ in range(2):
        summary, rss_ring = replay_peak_rss(path, ["--learning-period", "60s", "--ring"])
        if summary["seconds"] - summary["evidence_s"] < ring_s:
            ring_s, with_ring = summary["seconds"] - summary["evidence_s"], summary
        again, _rss = replay_peak_rss(path, ["--learning-period", "60s"])
        plain_s = min(plain_s, again["seconds"])
    print(
        f"with --ring: {with_ring['packets'] / ring_s:,.0f} pkt/s "
        f"(ring overhead {ring_s / plain_s - 1:+.1%} vs {with_ring['packets'] / plain_s:,.0f} "
        "pkt/s without, best of alternating runs; "
        f"{with_ring['ring_packets']:,} frames written; evidence for "
        f"{with_ring['evidence_files']} alert(s) cut in {with_ring['evidence_s']:.1f} s after; "
        f"peak RSS {rss_ring:.0f} MiB)"
    )
    print(f"ring write alone: {ring_write_cost(path):.2f} µs/frame (no dissection)")
    flow_capture = distinct_flows(flows)
    summary, rss = replay_peak_rss(flow_capture, [])
    print(
        f"{flows:,} distinct flows: peak RSS {rss:.0f} MiB "
        f"({summary['packets'] / summary['seconds']:,.0f} pkt/s; the flow table keeps at "
        "most 200,000 flows)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--naive-packets", type=int, default=20_000)
    parser.add_argument("--flows", type=int, default=1_000_000, help="distinct-flows capture")
    parser.add_argument("--no-ring", action="store_true", help="skip the ring and memory part")
    args = parser.parse_args(argv)

    path = capture(args.packets)
    print(f"capture: {path.name} ({os.path.getsize(path) / 1e6:.1f} MB, {args.packets:,} packets)")
    naive = naive_scapy(path, min(args.naive_packets, args.packets))
    print(f"naive Scapy loop (full dissection, first {args.naive_packets:,}): {naive:,.0f} pkt/s")
    summary, cpu, rss = otwatch_replay(path, [])
    rate = summary["packets"] / summary["seconds"]
    cpu_us = cpu * 1e6 / summary["packets"]
    print(
        f"otwatch agent replay: {rate:,.0f} pkt/s over {summary['packets']:,} packets "
        f"({summary['seconds']:.2f} s in the pipeline; process CPU {cpu_us:.2f}"
        f" µs/packet incl. start-up; peak RSS {rss:.0f} MiB; alerts new {summary['alerts_new']})"
    )
    ratio = rate / naive
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"ratio otwatch/naive: {ratio:.1f}x ({verdict} the {TARGET_RATIO:.0f}x target)")
    if not args.no_ring:
        report_ring_and_memory(path, summary, args.flows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
