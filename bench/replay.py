"""Replay throughput and memory of ``otwatch agent replay``, with every ratio measured in one run.

Captures, generated once and cached (``--cache``, default bench/.cache/): Modbus/TCP polling
and a mixed-protocol plant (``gen_capture``), ``--packets`` each, and ``--flows`` distinct UDP
flows (a scan). Each is replayed by the real CLI in a child process: fresh data directory, a
learning period for the first minute of traffic, every engine on and the PCAP ring on
(``--ring``). Printed, one line each:

- per capture: wall rate and one-core rate = packets / ``cpu_s`` (the replay's own CPU time,
  without interpreter start-up), with the verdict on the ≥ 250k packets/s one-core target for
  Modbus polling, and the alerts raised after learning (the plant is normal traffic only);
- the naive Scapy loop (full dissection, CPU time) and the ratio to it (target ≥ 40×);
- CPU µs/packet of otwatch next to ``tcpdump -r X -w Y`` on the same file, and their ratio;
- peak RSS of the replays (target ≤ 150 MB at 1M packets) and of the distinct-flows capture
  (target ≤ 300 MB at 1M flows), in MB of 10^6 bytes;
- the ring's overhead (plain and ``--ring`` runs alternating, best CPU time of each) and the
  CPU cost of a ring write alone, with and without the index beside each segment;
- the evidence cut under an alert storm (``evidence_storm``): alerts/s of (a) the
  no-baseline replay of Modbus polling with 75 clients (target ≥ 200) and (b) 1,000 alerts
  over a 1 GB ring (target ≤ 10 s), each beside the frame-by-frame cut it replaced, timed on
  a sample of the same alerts in the same run, and beside the one-pass cut as it was before
  the segment index (``walk``: every record header walked, every file written) on all of
  them; peak RSS of (a) (target ≤ 150 MB); the ring write's cost with and without the index;
- the time of a plain 10-million-iteration Python loop, before the runs: how fast this
  (shared, noisy) machine is at that moment.

Usage::

    python bench/replay.py            # 1M packets per capture, 1M flows: a few minutes
    python bench/replay.py --quick    # 100k packets, 100k flows, one alternating round
    python bench/replay.py --packets 200000 --flows 50000 [--naive-packets N] [--rounds R]
    python bench/replay.py --evidence-only [--quick]   # the evidence figures alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_capture import mixed_plant, modbus_polling

from otwatch.agent.decode.flows import DEFAULT_MAX_FLOWS

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET_RATE = 250_000  # packets/s on one core, Modbus polling, all engines and the ring on
TARGET_RATIO = 40.0  # × the naive Scapy loop
TARGET_RSS_MB = 150  # the 1M-packet replay
TARGET_FLOWS_RSS_MB = 300  # 1M distinct flows
TARGET_EVIDENCE_RATE = 200  # alerts/s, the no-baseline storm
TARGET_EVIDENCE_S = 10.0  # 1,000 alerts over a 1 GB ring
MILLION = 1_000_000
LEARNING = ["--learning-period", "60s"]


@dataclass
class Run:
    """One child replay: its JSON summary and what the kernel says about the child."""

    summary: dict
    rss_mb: float
    alerts: Counter[str] = field(default_factory=Counter)

    @property
    def packets(self) -> int:
        return self.summary["packets"]

    @property
    def one_core(self) -> float:
        return self.packets / self.summary["cpu_s"]

    @property
    def wall(self) -> float:
        return self.packets / self.summary["seconds"]

    @property
    def cpu_us(self) -> float:
        return self.summary["cpu_s"] * 1e6 / self.packets


def cached(cache: Path, name: str, packets: int, write: Callable[[str, int], int]) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}_{packets}.pcap"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write(str(tmp), packets)
        tmp.rename(path)
    return path


def distinct_flows(path: str, packets: int) -> int:
    """A capture where every packet opens a new UDP flow: one client, one server, flows
    differ by port pair, so detections stay few."""
    from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header

    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    src, dst = bytes((192, 0, 2, 10)), bytes((192, 0, 2, 20))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 4, 0, 0, 64, 17, 0, src, dst)
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=True)
        out = []
        for i in range(packets):
            udp = struct.pack("!HHHH", 1024 + i % 64_000, 5000 + i // 64_000, 12, 0) + b"ping"
            frame = eth + ip + udp
            out.append(pcap_record(1_767_225_600_000_000_000 + i * 10_000, len(frame), frame))
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return packets


def run_child(argv: list[str]) -> tuple[str, os.struct_rusage]:
    """Run ``argv`` and return its stdout and its own resource usage (CPU, peak RSS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{argv[0]} failed: {err.read().decode(errors='replace').strip()}")
        return out.read().decode(), usage


def replay(path: Path, extra: list[str], *, alerts: bool = False) -> Run:
    """``otwatch agent replay`` in a child, in a fresh data directory."""
    otwatch = [sys.executable, "-m", "otwatch.cli"]
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as data_dir:
        base = [*otwatch, "--data-dir", data_dir]
        out, usage = run_child([*base, "agent", "replay", str(path), "--format", "json", *extra])
        summary = json.loads(out)
        peak = summary.get("peak_rss_bytes") or usage.ru_maxrss * 1024  # the agent's own
        run = Run(summary, peak / 1e6)
        if alerts and run.summary["alerts_new"]:
            listed, _ = run_child([*base, "alerts", "list", "--format", "json"])
            run.alerts.update(alert["name"] for alert in json.loads(listed))
    return run


def naive_scapy(path: Path, limit: int) -> float:
    """Packets per CPU second of a full Scapy dissection loop over the first ``limit`` packets."""
    from scapy.contrib.modbus import ModbusADURequest  # noqa: F401 - binds port 502
    from scapy.utils import PcapReader

    count = 0
    started = time.process_time()
    with PcapReader(str(path)) as reader:
        for _pkt in reader:  # PcapReader dissects every layer of every packet as it reads
            count += 1
            if count >= limit:
                break
    return count / (time.process_time() - started)


def tcpdump_us(path: Path) -> float | None:
    """CPU µs per packet of ``tcpdump -r path -w copy`` (None without tcpdump)."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        return None
    from otwatch.agent.capture.pcapfile import open_capture

    with open_capture(path) as cap:
        packets = sum(1 for _ in cap)
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as tmp:
        _, usage = run_child([tcpdump, "-r", str(path), "-w", str(Path(tmp) / "copy.pcap")])
    return (usage.ru_utime + usage.ru_stime) * 1e6 / packets


def ring_write_cost(path: Path, limit: int = 300_000, *, index: bool = True) -> float:
    """CPU µs per frame to append frames to the ring (no dissection), in this process, with
    or without the index beside each segment."""
    from otwatch.agent.capture.config import RingConfig
    from otwatch.agent.capture.pcapfile import open_capture
    from otwatch.agent.capture.ring import RingWriter
    from otwatch.agent.store.db import open_store

    with open_capture(path) as cap:
        frames = [f for _, f in zip(range(limit), cap, strict=False)]
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as data_dir:
        store = open_store(data_dir)
        config = RingConfig(directory=Path(data_dir) / "ring", max_percent=None, index=index)
        ring = RingWriter(store, config)
        started = time.process_time()
        for i in range(0, len(frames), 1024):
            ring.write_batch(frames[i : i + 1024], 1, True)
        ring.close()
        elapsed = time.process_time() - started
        store.close()
    return elapsed / len(frames) * 1e6


def verdict(ok: bool) -> str:
    return "meets" if ok else "BELOW"


def scale_note(measured: int, target_at: int, what: str) -> str:
    return "" if measured == target_at else f"; the target is set for {target_at:,} {what}"


def report_capture(label: str, run: Run, target: bool) -> None:
    judged = (
        f" — {verdict(run.one_core >= TARGET_RATE)} the {TARGET_RATE:,} pkt/s one-core target"
        if target
        else " (no target of its own)"
    )
    found = ", ".join(f"{name} ×{n}" for name, n in run.alerts.most_common()) or "none"
    print(
        f"{label}: otwatch agent replay (all engines, --ring, 60 s learning): "
        f"{run.wall:,.0f} pkt/s wall, {run.one_core:,.0f} pkt/s on one core over "
        f"{run.packets:,} packets (cpu_s {run.summary['cpu_s']:.2f} s){judged}; "
        f"alerts new {run.summary['alerts_new']} ({found})"
    )


def report_ring(path: Path, ring_runs: list[Run], rounds: int) -> None:
    # Plain and --ring runs alternate so that a change in machine load during the run does
    # not pass for the ring's cost; CPU time, best of each.
    plain_runs = []
    for _ in range(rounds):
        plain_runs.append(replay(path, LEARNING))
        ring_runs.append(replay(path, [*LEARNING, "--ring"]))
    best_ring = min(ring_runs, key=lambda r: r.summary["cpu_s"])
    best_plain = min(plain_runs, key=lambda r: r.summary["cpu_s"])
    ring_cpu, plain_cpu = best_ring.summary["cpu_s"], best_plain.summary["cpu_s"]
    print(
        f"ring overhead: {ring_cpu / plain_cpu - 1:+.1%} CPU ({best_ring.one_core:,.0f} pkt/s "
        f"on one core with --ring vs {best_plain.one_core:,.0f} without; best of "
        f"{len(ring_runs)} --ring and {len(plain_runs)} plain runs, alternating; "
        f"{best_ring.summary['ring_packets']:,} frames written)"
    )
    report_index_cost(path)


def report_index_cost(path: Path, rounds: int = 3) -> None:
    """The ring write with and without the segment index, alternating, best CPU of each."""
    with_index, without = [], []
    for _ in range(rounds):
        without.append(ring_write_cost(path, index=False))
        with_index.append(ring_write_cost(path, index=True))
    best, plain = min(with_index), min(without)
    print(
        f"ring write alone (no dissection, CPU): {best:.2f} µs/frame with the segment index, "
        f"{plain:.2f} without: the index costs {best - plain:+.2f} µs/frame "
        f"({best / plain - 1:+.0%} of the ring write; best of {rounds} each, alternating)"
    )


def loop_seconds() -> float:
    """A plain 10-million-iteration Python loop: this machine's speed right now."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def report_evidence(cache: Path, packets: int, quick: bool) -> None:
    """The evidence figures (a) and (b), each beside the old cut on a sample."""
    from evidence_storm import RING_PACKETS, alerts_over, build_ring, run_cut

    storm = cached(
        cache, "modbus_polling_75_clients", packets, lambda p, n: modbus_polling(p, n, clients=75)
    )
    sample = 2 if quick else 4
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as data_dir:
        out, _ = run_child([
            sys.executable, "-m", "otwatch.cli", "--data-dir", data_dir,
            "agent", "replay", str(storm), "--format", "json", "--ring",
        ])  # fmt: skip
        s = json.loads(out)
        old = run_cut(Path(data_dir), "old", sample)
        walk = run_cut(Path(data_dir), "walk", s["evidence_files"])
        again = run_cut(Path(data_dir), "new", s["evidence_files"])
        index_bytes = sum(p.stat().st_size for p in Path(data_dir).glob("pcap/ring/*.idx"))
        ring_bytes = sum(p.stat().st_size for p in Path(data_dir).glob("pcap/ring/*.pcap"))
    cut, cut_cpu = s["evidence_files"], s["evidence_cpu_s"]
    rate, rate_cpu = cut / s["evidence_s"], cut / cut_cpu
    old_rate = old["alerts"] / old["cpu_s"]
    rss = s["peak_rss_bytes"] / 1e6
    print(
        f"evidence (a), no baseline, Modbus polling 75 clients, {s['packets']:,} packets "
        f"({s['detections']:,} detections): {cut} alerts cut in {s['evidence_s']:.2f} s "
        f"({cut_cpu:.2f} s CPU): {rate:,.0f} alerts/s wall, {rate_cpu:,.0f} per CPU second "
        f"({verdict(rate_cpu >= TARGET_EVIDENCE_RATE)} the {TARGET_EVIDENCE_RATE} alerts/s "
        f"target on CPU time{scale_note(s['packets'], MILLION, 'packets')}); frame-by-frame "
        f"cut, same run, {old['alerts']} of these alerts: {old_rate:.2f} per CPU second "
        f"({old['cpu_s']:.1f} s) -> {rate_cpu / old_rate:,.0f}x; replay {s['cpu_s']:.1f} s CPU "
        f"in all"
    )
    print(
        f"evidence (a), the same {walk['alerts']} alerts cut again in a child, same run: "
        f"{again['cpu_s']:.2f} s CPU ({walk['alerts'] / again['cpu_s']:,.0f} per CPU second) vs "
        f"{walk['cpu_s']:.2f} s CPU ({walk['alerts'] / walk['cpu_s']:,.0f} per CPU second) for "
        f"the one-pass cut as it was before the segment index and shared files (every header "
        f"walked, every file written) -> {walk['cpu_s'] / again['cpu_s']:.1f}x; the ring's "
        f"indexes: {index_bytes / 1e6:.1f} MB beside {ring_bytes / 1e6:.1f} MB of segments "
        f"({index_bytes / ring_bytes:.0%})"
    )
    pipeline = s["packets"] / (s["cpu_s"] - cut_cpu)
    print(
        f"no-baseline replay with --ring, detection path (CPU without the evidence cut): "
        f"{pipeline:,.0f} pkt/s on one core ({verdict(pipeline >= TARGET_RATE)} the "
        f"{TARGET_RATE:,} pkt/s target); {s['detections']:,} detections, "
        f"{s['alerts_new']} alerts"
    )
    print(
        f"peak RSS, no-baseline replay with --ring: {rss:.0f} MB "
        f"({verdict(rss <= TARGET_RSS_MB)} the {TARGET_RSS_MB} MB target)"
    )
    ring_packets = RING_PACKETS // 10 if quick else RING_PACKETS
    alerts = 100 if quick else 1000
    home = build_ring(cache, ring_packets, lambda p, n: modbus_polling(p, n, clients=200))
    ring_bytes = sum(f.stat().st_size for f in (home / "pcap" / "ring").glob("*.pcap"))
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-") as work:
        data_dir = alerts_over(home, Path(work), alerts)
        old = run_cut(data_dir, "old", 2 if quick else 3)
        walk = run_cut(data_dir, "walk", alerts)
        new = run_cut(data_dir, "new", alerts)
    old_rate = old["alerts"] / old["cpu_s"]
    print(
        f"evidence (b), {new['alerts']:,} alerts over a {ring_bytes / 1e9:.2f} GB ring: "
        f"{new['wall_s']:.1f} s wall, {new['cpu_s']:.1f} s CPU "
        f"({verdict(new['cpu_s'] <= TARGET_EVIDENCE_S)} the {TARGET_EVIDENCE_S:.0f} s target "
        f"on CPU time{scale_note(new['alerts'], 1000, 'alerts')}), "
        f"{new['alerts'] / new['cpu_s']:,.0f} alerts per CPU second, peak RSS "
        f"{new['rss'] / 1e6:.0f} MB; frame-by-frame cut, same run, {old['alerts']} of these "
        f"alerts: {old_rate:.2f} per CPU second -> {new['alerts'] / new['cpu_s'] / old_rate:,.0f}x;"
        f" the one-pass cut before the segment index, same run: {walk['cpu_s']:.1f} s CPU "
        f"({walk['wall_s']:.1f} s wall) -> {walk['cpu_s'] / new['cpu_s']:.1f}x"
    )
    report_index_cost(storm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, help="packets per capture (default 1,000,000)")
    parser.add_argument("--flows", type=int, help="distinct-flows capture (default 1,000,000)")
    parser.add_argument("--naive-packets", type=int, help="Scapy loop sample (default 20,000)")
    parser.add_argument("--rounds", type=int, help="alternating plain/--ring rounds (default 2)")
    parser.add_argument("--quick", action="store_true", help="100k packets and flows, 1 round")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where captures are kept")
    parser.add_argument("--evidence-only", action="store_true", help="only the evidence cut")
    parser.add_argument("--no-evidence", action="store_true", help="skip the evidence cut")
    args = parser.parse_args(argv)
    quick = args.quick
    packets = args.packets or (100_000 if quick else MILLION)
    flows = args.flows or (100_000 if quick else MILLION)
    naive_packets = min(args.naive_packets or (5_000 if quick else 20_000), packets)
    rounds = args.rounds if args.rounds is not None else 1 if quick else 2

    print(f"plain 10M-iteration Python loop: {loop_seconds():.2f} s (this machine, now)")
    if args.evidence_only:
        report_evidence(args.cache, packets, quick)
        return 0
    modbus = cached(args.cache, "modbus_polling", packets, lambda p, n: modbus_polling(p, n))
    mixed = cached(args.cache, "mixed_plant", packets, lambda p, n: mixed_plant(p, n))
    sizes = ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in (modbus, mixed))
    print(f"captures: {sizes}; {packets:,} packets each")

    naive = naive_scapy(modbus, naive_packets)
    print(
        f"naive Scapy loop (full dissection, first {naive_packets:,} packets of Modbus polling):"
        f" {naive:,.0f} pkt/s on one core"
    )
    runs = {"Modbus polling": replay(modbus, [*LEARNING, "--ring"], alerts=True)}
    runs["mixed plant"] = replay(mixed, [*LEARNING, "--ring"], alerts=True)
    for label, run in runs.items():
        report_capture(label, run, target=label == "Modbus polling")

    ratio = runs["Modbus polling"].one_core / naive
    print(
        f"ratio otwatch/naive (one-core rates, Modbus polling): {ratio:.1f}x "
        f"({verdict(ratio >= TARGET_RATIO)} the {TARGET_RATIO:.0f}x target)"
    )
    for (label, run), path in zip(runs.items(), (modbus, mixed), strict=True):
        dump = tcpdump_us(path)
        versus = (
            f"tcpdump -r X -w Y {dump:.2f} µs/packet; otwatch/tcpdump {run.cpu_us / dump:.1f}x"
            if dump
            else "tcpdump not installed"
        )
        print(f"CPU per packet, {label}: otwatch {run.cpu_us:.2f} µs/packet (cpu_s); {versus}")
    for label, run in runs.items():
        print(
            f"peak RSS, {label} replay of {run.packets:,} packets: {run.rss_mb:.0f} MB "
            f"({verdict(run.rss_mb <= TARGET_RSS_MB)} the {TARGET_RSS_MB} MB target"
            f"{scale_note(run.packets, MILLION, 'packets')})"
        )
    flow_run = replay(cached(args.cache, "distinct_port_flows", flows, distinct_flows), [])
    print(
        f"{flows:,} distinct flows: peak RSS {flow_run.rss_mb:.0f} MB "
        f"({verdict(flow_run.rss_mb <= TARGET_FLOWS_RSS_MB)} the {TARGET_FLOWS_RSS_MB} MB "
        f"target{scale_note(flows, MILLION, 'flows')}; {flow_run.one_core:,.0f} pkt/s on one "
        f"core; the flow table keeps at most {DEFAULT_MAX_FLOWS:,} flows)"
    )
    report_ring(modbus, [runs["Modbus polling"]], rounds)
    if not args.no_evidence:
        report_evidence(args.cache, packets, quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
