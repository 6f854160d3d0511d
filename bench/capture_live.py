"""Live capture at top speed: otwatch (ring + all engines) against ``tcpdump -w``, in turn.

Needs root and ``ip netns``. Two network namespaces joined by a veth pair (198.51.100.2/24 ⇄
198.51.100.1/24, IPv6 off so nothing else is sent); ``tcpreplay`` sends a generated Modbus
polling capture (``bench/gen_capture.py``) from one side, the capturer listens on the other.
The sender: ``--pps N`` (default 260,000: the live target's 250,000 with a margin, sustained
for ``--loops`` sends of the capture, 3 by default: ~11.5 s for 1M packets) or
``--topspeed`` (a burst as fast as the veth takes it, beyond the target: it shows the
500,000-frame backlog bound), the capture preloaded into memory (``-K``, so reading the file
costs the sender nothing while it sends), at ``nice`` ``--sender-nice`` (default −10: ahead
of the capturer, as real traffic does not wait for the sensor's CPU; the capturer catches up
from its kernel ring; the frames offered are what the sender reports). Reported per run: frames
captured / frames sent, kernel drops, the rate the sender reached (offered) and the rate the
capturer finished at, and the verdict on 100% analysed at ≥ 250k pps offered. Ratios only,
measured in the same run.

Two cases (``--cases``): ``learned``, the steady state: the agent's data directory first
learns the capture's traffic (``agent replay --learning-period`` over the first 60% of its
traffic time), so live traffic raises nothing; ``storm``, no baseline: a fresh data
directory, every client a new asset and every poll a detection (about half the frames).

Usage: ``python bench/capture_live.py [--packets N] [--pps N | --topspeed] [--loops N]
[--workers 1,2] [--block-counts N,M] [--cases learned,storm]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.gen_capture import modbus_polling  # noqa: E402
from bench.replay import loop_seconds, verdict  # noqa: E402

OTWATCH = [sys.executable, "-m", "otwatch.cli"]
SENDER_IP, SENSOR_IP = "198.51.100.2/24", "198.51.100.1/24"
TARGET_OFFERED_PPS = 250_000  # one worker analyses 100% of frames offered at this rate


@dataclass
class Result:
    name: str
    sent: int
    captured: int
    kernel_drops: int
    send_pps: float
    finish_s: float
    analysed: int | None = None
    note: str = ""
    worker_cpu_s: float | None = None
    """CPU time the worker processes spent from the start of sending until they were done
    (read, ring, analysis; not their start-up)."""

    def line(self) -> str:
        ratio = self.captured / self.sent if self.sent else 0.0
        analysed = ""
        if self.analysed is not None:
            analysed = (
                f"  analysed {self.analysed / self.sent:7.2%} "
                f"({self.analysed / self.finish_s:>7,.0f} pps)"
            )
        if self.worker_cpu_s and self.analysed:
            analysed += f", {self.analysed / self.worker_cpu_s:,.0f} per worker CPU s"
        return (
            f"{self.name:<24} captured/sent {self.captured:>9,}/{self.sent:<9,} = {ratio:8.4%}  "
            f"kernel drops {self.kernel_drops:>8,}  sender {self.send_pps:>7,.0f} pps  "
            f"done in {self.finish_s:5.1f} s{analysed}  {self.note}"
        )


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class VethPair:
    """Sender and sensor namespaces joined by a veth pair; removed by ``close``."""

    def __init__(self, rate: list[str] | None = None, loops: int = 1, nice: int = 0) -> None:
        self.rate = rate or ["--topspeed"]
        self.loops, self.nice = loops, nice
        tag = secrets.token_hex(3)
        self.snd, self.sen = f"otwb-s-{tag}", f"otwb-r-{tag}"
        self.snd_if, self.sen_if = f"otwb{tag}s", f"otwb{tag}r"
        run(["ip", "netns", "add", self.snd])
        run(["ip", "netns", "add", self.sen])
        for ns in (self.snd, self.sen):
            run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]
            )
        run(
            ["ip", "link", "add", self.snd_if, "netns", self.snd, "type", "veth", "peer", "name",
             self.sen_if, "netns", self.sen]
        )  # fmt: skip
        run(["ip", "-n", self.snd, "addr", "add", SENDER_IP, "dev", self.snd_if])
        run(["ip", "-n", self.sen, "addr", "add", SENSOR_IP, "dev", self.sen_if])
        run(["ip", "-n", self.snd, "link", "set", self.snd_if, "up"])
        run(["ip", "-n", self.sen, "link", "set", self.sen_if, "up"])

    def send(self, pcap: Path) -> float:
        """tcpreplay (preloaded, ``loops`` times, at the rate and nice level given); returns
        the packets/s it reports."""
        out = run(
            ["ip", "netns", "exec", self.snd, "nice", "-n", str(self.nice), "tcpreplay", "-K",
             "--loop", str(self.loops), "-i", self.snd_if, *self.rate, str(pcap)]
        )  # fmt: skip
        match = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out.stdout)
        return float(match.group(1)) if match else 0.0

    def close(self) -> None:
        for ns in (self.snd, self.sen):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _capture_status(data_dir: Path) -> dict:
    db = sqlite3.connect(f"file:{data_dir / 'otwatch.db'}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT value FROM sensor_state WHERE key='capture_status'").fetchone()
    finally:
        db.close()
    return json.loads(row[0])["v"] if row else {}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds so far of each child of ``pid`` (the agent's workers and collector)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        out.update({int(child): _cpu_s(int(child)) for child in children})
    return out


def _ring_count(data_dir: Path) -> int:
    total = 0
    for seg in sorted((data_dir / "pcap" / "ring").glob("*.pcap")):
        out = run(["capinfos", "-c", "-M", str(seg)]).stdout
        total += int(re.search(r"Number of packets:\s+(\d+)", out).group(1))
    return total


def _learn(data_dir: Path, pcap: Path, packets: int) -> None:
    """Learn the capture's traffic into ``data_dir``: learning ends at 60% of its traffic
    time (~1 ms per packet), so the agent starts from a finished baseline."""
    learn_s = max(1, int(packets * 0.001 * 0.6))
    argv = [*OTWATCH, "--data-dir", str(data_dir), "agent", "replay", str(pcap),
            "--learning-period", f"{learn_s}s"]  # fmt: skip
    run(argv, env={**os.environ, "PYTHONPATH": str(REPO)})


def bench_otwatch(
    pair: VethPair, pcap: Path, sent: int, workers: int, blocks: int, args, case: str = "learned"
) -> Result:
    data_dir = Path(tempfile.mkdtemp(prefix="otwb-data-"))
    if case == "learned":
        _learn(data_dir, pcap, sent // pair.loops)
    notify_path = data_dir / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(120)
    cmd = ["ip", "netns", "exec", pair.sen, *OTWATCH, "--data-dir", str(data_dir), "agent",
           "run", "-i", pair.sen_if, "--workers", str(workers),
           "--block-size", args.block_size, "--block-count", str(blocks)]  # fmt: skip
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "PYTHONPATH": str(REPO)}
    agent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        notify.close()
        idle_cpu = _children_cpu_s(agent.pid)  # start-up (imports, engines) does not count
        started_ns = time.time_ns()
        send_pps = pair.send(pcap)
        sent_ns = time.time_ns()
        # Done when every frame the kernel accepted has been read and analysed, according to
        # worker reports taken after the sender finished; a worker finished at the first
        # report that showed its final count.
        first_seen: dict[tuple[int, int], int] = {}
        deadline = time.monotonic() + args.timeout
        split: list[int] = []
        cpu: dict[tuple[int, int], float] = {}
        while time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.2)
            st = _capture_status(data_dir)
            reports = st.get("per_worker", [])
            for w in reports:
                first_seen.setdefault((w["pid"], w["packets"]), w["ts_ns"] or time.time_ns())
                cpu.setdefault((w["pid"], w["packets"]), _cpu_s(w["pid"]))
            if not reports or min(w["ts_ns"] or 0 for w in reports) < sent_ns:
                continue
            ifs = st.get("interfaces", {}).values()
            accepted = sum(i["kernel_packets"] - i["kernel_drops"] for i in ifs)
            received = sum(i["received"] for i in ifs)
            split = [w["packets"] for w in reports]
            skipped = st.get("pipeline", {}).get("not_analysed", 0)
            if received >= accepted and sum(split) + skipped >= received:
                break
        done_ns = max(
            (first_seen[(w["pid"], w["packets"])] for w in st.get("per_worker", [])),
            default=time.time_ns(),
        )
        finish = max(1e-3, (done_ns - started_ns) / 1e9)
        worker_cpu = sum(
            cpu.get((w["pid"], w["packets"]), 0.0) - idle_cpu.get(w["pid"], 0.0)
            for w in st.get("per_worker", [])
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=300)
        notify.close()
    st = _capture_status(data_dir)
    drops = sum(i["kernel_drops"] for i in st.get("interfaces", {}).values())
    analysed = st.get("pipeline", {}).get("packets", 0)
    captured = _ring_count(data_dir)
    name = f"otwatch -w{workers} {case}"
    note = f"(kernel ring {blocks}x{args.block_size}/worker; per worker {split})"
    if agent.returncode:
        note += f" exit {agent.returncode}: {err.decode()[-300:]}"
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return Result(name, sent, captured, drops, send_pps, finish, analysed, note, worker_cpu)


def bench_tcpdump(pair: VethPair, pcap: Path, sent: int) -> Result:
    out_dir = Path(tempfile.mkdtemp(prefix="otwb-tcpdump-"))
    out = out_dir / "tcpdump.pcap"
    cmd = ["ip", "netns", "exec", pair.sen, "tcpdump", "-i", pair.sen_if, "-w", str(out), "-n"]
    dump = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = dump.stderr.readline()  # "tcpdump: listening on ..."
    if "listening" not in line:
        raise RuntimeError(f"tcpdump did not start: {line}")
    started = time.monotonic()
    send_pps = pair.send(pcap)
    finish = time.monotonic() - started
    time.sleep(1.0)
    dump.send_signal(signal.SIGINT)
    _, err = dump.communicate(timeout=60)
    match = re.search(r"(\d+) packets dropped by kernel", err)
    drops = int(match.group(1)) if match else 0
    captured = int(
        re.search(
            r"Number of packets:\s+(\d+)", run(["capinfos", "-c", "-M", str(out)]).stdout
        ).group(1)
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    return Result("tcpdump -w (default buffer)", sent, captured, drops, send_pps, finish)


def _read_cost_child(interface: str, expect: int) -> int:
    """In the sensor namespace: open a TPACKET_V3 socket, let the sender fill its ring, then
    time reading it out (and, on a second fill, reading plus writing the PCAP ring)."""
    from otwatch.agent.capture.config import CaptureConfig, RingConfig
    from otwatch.agent.capture.opener import open_source
    from otwatch.agent.capture.ring import RingWriter
    from otwatch.agent.store.db import open_store

    config = CaptureConfig((interface,), block_size=1 << 20, block_count=1024)
    with tempfile.TemporaryDirectory(prefix="otwb-read-") as data_dir:
        store = open_store(data_dir)
        ring = RingWriter(store, RingConfig(directory=Path(data_dir) / "ring", max_percent=None))
        src = open_source(interface, config)
        for label, writer in (("read", None), ("read+ring", ring)):
            print("ready", flush=True)
            sys.stdin.readline()  # the sender has finished: the kernel ring holds the frames
            got = 0
            started = time.perf_counter()
            while got < expect:
                frames = src.read_batch()
                if not frames:
                    if time.perf_counter() - started > 30:
                        break
                    continue
                if writer is not None:
                    writer.write_batch(frames, src.linktype, src.nanosecond)
                got += len(frames)
            elapsed = time.perf_counter() - started
            print(f"{label} {got} {elapsed / max(1, got) * 1e6:.3f}", flush=True)
        ring.close()
        src.close()
        store.close()
    return 0


def bench_read_cost(pair: VethPair, pcap: Path, sent: int) -> str:
    cmd = ["ip", "netns", "exec", pair.sen, sys.executable, str(Path(__file__).resolve()),
           "--read-cost", pair.sen_if, "--packets", str(sent)]  # fmt: skip
    child = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out = []
    for _ in range(2):
        assert child.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        pair.send(pcap)
        child.stdin.write("go\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        label, got, cost = child.stdout.readline().split()  # type: ignore[union-attr]
        out.append(f"{label} {float(cost):.2f} µs/frame ({int(got):,} frames)")
    child.wait(timeout=60)
    return "pure-Python TPACKET_V3 cost, ring pre-filled: " + "; ".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=40, help="Modbus clients (flows)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--block-size", default="1MiB")
    parser.add_argument(
        "--block-counts", default="128,512", help="kernel ring blocks per socket to try"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the agents' data dirs")
    parser.add_argument(
        "--cases", default="learned,storm", help="learned (steady state) and/or storm (no baseline)"
    )
    parser.add_argument("--loops", type=int, default=3, help="tcpreplay --loop: sends per run")
    parser.add_argument(
        "--pps", type=int, default=260_000, help="offer this many packets/s (tcpreplay --pps)"
    )
    parser.add_argument(
        "--topspeed", action="store_true", help="send as fast as possible instead of --pps"
    )
    parser.add_argument(
        "--sender-nice", type=int, default=-10, help="nice level of tcpreplay (negative: ahead)"
    )
    parser.add_argument("--read-cost", metavar="IF", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_cost:
        return _read_cost_child(args.read_cost, args.packets)
    if os.geteuid() != 0 or not shutil.which("tcpreplay") or not shutil.which("tcpdump"):
        print("needs root, tcpreplay and tcpdump", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="otwb-"))
    pcap = work / "modbus_polling.pcap"
    sent = modbus_polling(pcap, args.packets, clients=args.clients) * args.loops
    rate = ["--topspeed"] if args.topspeed else ["--pps", str(args.pps)]
    print(
        f"plain 10M-iteration Python loop: {loop_seconds():.2f} s (this machine, now)\n"
        f"capture: {args.packets:,} Modbus/TCP polling packets from {args.clients} clients "
        f"({pcap.stat().st_size / 1e6:.0f} MB), sent {args.loops}x per run: {sent:,} frames; "
        f"sender tcpreplay -K {' '.join(rate)} at nice {args.sender_nice}; "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start"
    )
    pair = VethPair(rate, args.loops, args.sender_nice)
    results = []
    try:
        print(bench_read_cost(pair, pcap, sent), flush=True)
        results.append(bench_tcpdump(pair, pcap, sent))
        print(results[-1].line(), flush=True)
        for blocks in (int(b) for b in args.block_counts.split(",")):
            for workers in (int(w) for w in args.workers.split(",")):
                for case in args.cases.split(","):
                    results.append(bench_otwatch(pair, pcap, sent, workers, blocks, args, case))
                    print(results[-1].line(), flush=True)
    finally:
        pair.close()
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]
    for res in results[1:]:
        target = "meets" if res.captured >= 0.999 * sent else "MISSES"
        print(
            f"{res.name}: captured {res.captured / max(1, base.captured):.4f}x tcpdump's frames "
            f"({target} the 99.9% target when tcpdump gets {base.captured / sent:.2%})"
        )
        if res.analysed is not None:
            whole = res.analysed >= sent
            fast = res.send_pps >= TARGET_OFFERED_PPS
            print(
                f"{res.name}: analysed {res.analysed:,} of {sent:,} frames offered at "
                f"{res.send_pps:,.0f} pps ({verdict(whole and fast)} 100% at ≥ "
                f"{TARGET_OFFERED_PPS:,} pps offered: {'all' if whole else 'NOT all'} analysed, "
                f"offered {'at' if fast else 'BELOW'} the rate)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
