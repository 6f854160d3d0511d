"""Live capture end to end: a veth pair between two network namespaces, traffic injected
with tcpreplay on one side, ``otwatch agent run`` on the other.

What the agent wrote to its ring must equal what was sent (capinfos counts, and the frames
byte for byte), alerts must come from the live traffic, and SIGTERM right after the send
must lose nothing. Needs root and ``ip netns``; all traffic stays inside the namespaces
(198.51.100.0/24).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.capture.ring_segments import iter_segment
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_pcap import PcapEvidence, PcapSegment

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
SENDER, SENSOR = "198.51.100.2", "198.51.100.1"
# Traffic between plant hosts seen on a mirror port: foreign MACs, so neither namespace's
# kernel answers it (nothing but the injected frames is on the wire).
MAC_A, MAC_B, MAC_C, MAC_D = (f"02:00:00:00:00:{n:02x}" for n in (10, 20, 30, 40))
HOST_A, HOST_B, HOST_C, HOST_D = (f"198.51.100.{n}" for n in (10, 20, 30, 40))


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def _netns_supported() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and packet sockets)"
    for tool in ("ip", "tcpreplay", "capinfos"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/ensure-system.sh installs it)"
    probe = f"otwt-probe-{secrets.token_hex(3)}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"no ip netns support here: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Pair:
    """Sender and sensor namespaces joined by a veth pair."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.snd, self.sen = f"otwt-s-{tag}", f"otwt-r-{tag}"
        self.snd_if, self.sen_if = f"otwt{tag}s", f"otwt{tag}r"

    def create(self) -> None:
        _run("ip", "netns", "add", self.snd)
        _run("ip", "netns", "add", self.sen)
        for ns in (self.snd, self.sen):  # no IPv6 autoconfiguration chatter
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        _run("ip", "link", "add", self.snd_if, "netns", self.snd, "type", "veth",
             "peer", "name", self.sen_if, "netns", self.sen)  # fmt: skip
        _run("ip", "-n", self.snd, "addr", "add", f"{SENDER}/24", "dev", self.snd_if)
        _run("ip", "-n", self.sen, "addr", "add", f"{SENSOR}/24", "dev", self.sen_if)
        _run("ip", "-n", self.snd, "link", "set", self.snd_if, "up")
        _run("ip", "-n", self.sen, "link", "set", self.sen_if, "up")

    def destroy(self) -> None:
        for ns in (self.snd, self.sen):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def send(self, pcap: Path, *extra: str) -> None:
        _run("ip", "netns", "exec", self.snd, "tcpreplay", "-q", "-i", self.snd_if, *extra,
             str(pcap))  # fmt: skip


@pytest.fixture
def pair(request):
    reason = _netns_supported()
    if reason:
        pytest.skip(reason)
    p = Pair()
    request.addfinalizer(p.destroy)
    p.create()
    return p


class Agent:
    """``otwatch agent run`` in the sensor namespace, started and stopped like systemd does."""

    def __init__(self, pair: Pair, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.notify_path = data_dir.parent / f"notify-{secrets.token_hex(3)}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(60)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify_path),
            "WATCHDOG_USEC": "1000000",  # systemd's WatchdogSec=1s: a ping every 0.5 s
            "PYTHONPATH": str(REPO),
        }
        env.pop("OTWATCH_CONFIG", None)
        cmd = ["ip", "netns", "exec", pair.sen, sys.executable, "-m", "otwatch.cli",
               "--data-dir", str(data_dir), "agent", "run", "-i", pair.sen_if, *args]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.states: list[str] = []

    def wait_ready(self) -> None:
        while True:
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                self.proc.kill()
                _out, err = self.proc.communicate()
                pytest.fail(f"agent never said READY=1: {err[-2000:]}")
            self.states.append(message)
            if "READY=1" in message:
                return

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=120)
        self.notify.settimeout(0.1)
        while True:
            try:
                self.states.append(self.notify.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                break
        self.notify.close()
        return self.proc.returncode, err


def scan_and_chatter(path: Path, udp_packets: int = 400) -> int:
    """A port scan of B by A (40 ports), a SYN to port 0 of B, and UDP of varied sizes
    (half A→C, half C→D), as a pcap."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = []
    for port in range(1, 41):
        packets.append(
            Ether(src=MAC_A, dst=MAC_B) / IP(src=HOST_A, dst=HOST_B)
            / TCP(sport=40000, dport=port, flags="S")
        )  # fmt: skip
    packets.append(
        Ether(src=MAC_A, dst=MAC_B) / IP(src=HOST_A, dst=HOST_B)
        / TCP(sport=40001, dport=0, flags="S")
    )  # fmt: skip
    for i in range(udp_packets):
        src, dst, smac, dmac = (
            (HOST_A, HOST_C, MAC_A, MAC_C) if i % 2 else (HOST_C, HOST_D, MAC_C, MAC_D)
        )
        packets.append(
            Ether(src=smac, dst=dmac) / IP(src=src, dst=dst)
            / UDP(sport=5000 + i % 7, dport=6000) / (bytes([i % 256]) * (10 + (i * 37) % 1400))
        )  # fmt: skip
    wrpcap(str(path), packets)
    return len(packets)


def capinfos(paths: list[Path]) -> tuple[int, int]:
    packets = data = 0
    for path in paths:
        out = _run("capinfos", "-M", "-c", "-d", str(path)).stdout
        packets += int(re.search(r"Number of packets:\s+(\d+)", out).group(1))
        data += int(re.search(r"Data size:\s+(\d+)", out).group(1))
    return packets, data


def ring_files(data_dir: Path) -> list[Path]:
    store = open_store(data_dir)
    try:
        with store.session() as s:
            rows = s.execute(select(PcapSegment.path, PcapSegment.closed)).all()
    finally:
        store.close()
    assert rows and all(closed for _, closed in rows)  # a clean stop closes every segment
    return [data_dir / path for path, _ in rows]


def frames_of(paths: list[Path]) -> list[bytes]:
    return sorted(f[3] for path in paths for f in iter_segment(path))


def test_the_ring_holds_exactly_what_was_sent_and_alerts_are_raised(pair, tmp_path):
    sent = tmp_path / "sent.pcap"
    count = scan_and_chatter(sent)
    data_dir = tmp_path / "data"
    agent = Agent(pair, data_dir, "--evidence-after", "1s", "--evidence-before", "5s")
    agent.wait_ready()
    pair.send(sent, "--topspeed")
    code, err = agent.stop()  # right after the send: the drain must lose nothing
    assert code == 0, err
    assert any("STOPPING=1" in s for s in agent.states)
    assert any("WATCHDOG=1" in s for s in agent.states)
    assert any(s.startswith("STATUS=capturing on ") for s in agent.states)
    files = ring_files(data_dir)
    assert capinfos(files) == capinfos([sent])
    with open_capture(sent) as cap:
        assert frames_of(files) == sorted(f[3] for f in cap)
    store = open_store(data_dir)
    try:
        with store.session() as s:
            names = set(s.scalars(select(Alert.name)))
            scan_id = s.scalar(select(Alert.id).where(Alert.type_id == "port_scan_detected"))
    finally:
        store.close()
    assert {"Port Scan Detected", "Illegal Connection Attempt on Port 0"} <= names
    show = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "--data-dir", str(data_dir), "pcap", "status",
         "--format", "json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(show.stdout)
    assert info["capture"]["state"] == "stopped"
    assert info["capture"]["received"] == count and info["capture"]["kernel_drops"] == 0
    assert info["ring"]["packets"] == count
    # the alert's packets, cut from the ring, open in tshark
    out = tmp_path / "scan.pcap"
    got = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "--data-dir", str(data_dir), "pcap", "get",
         str(scan_id), "-o", str(out)], capture_output=True, text=True,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert capinfos([out])[0] == 41 + 200  # the scan, the port-0 SYN, A's UDP
    if shutil.which("tshark"):
        tshark = _run("tshark", "-r", str(out), "-Y", "tcp.flags.syn == 1", "-T", "fields",
                      "-e", "tcp.dstport")  # fmt: skip
        assert len(tshark.stdout.split()) == 41


def test_two_workers_split_flows_without_duplicate_alerts(pair, tmp_path):
    sent = tmp_path / "sent.pcap"
    count = scan_and_chatter(sent, udp_packets=2000)
    data_dir = tmp_path / "data"
    agent = Agent(pair, data_dir, "--workers", "2", "--evidence-after", "0s")
    agent.wait_ready()
    pair.send(sent, "--topspeed")
    time.sleep(2.5)  # let the 'after' window pass on the wall clock
    code, err = agent.stop()
    assert code == 0, err
    files = ring_files(data_dir)
    writers = {p.name.split("-")[0] for p in files}
    assert writers == {"w0", "w1"}  # both workers got a share of the flows
    assert capinfos(files) == capinfos([sent])
    store = open_store(data_dir)
    try:
        with store.session() as s:
            keys = s.execute(select(Alert.dedup_key, func.count()).group_by(Alert.dedup_key)).all()
            new_assets = s.scalar(select(func.count()).where(Alert.type_id == "new_asset_detected"))
            evidence = s.scalar(select(func.count()).where(PcapEvidence.status == "ready"))
    finally:
        store.close()
    assert keys and all(n == 1 for _, n in keys)  # one alert per de-duplication key
    assert new_assets == 2  # hosts A and C send; both workers saw them, one alert each
    assert evidence and evidence >= len(keys) - 1
    assert count == capinfos(files)[0]


def test_capture_filter_and_the_portable_method(pair, tmp_path):
    sent = tmp_path / "sent.pcap"
    scan_and_chatter(sent, udp_packets=100)
    data_dir = tmp_path / "data"
    agent = Agent(pair, data_dir, "--bpf", "udp", "--method", "scapy")
    agent.wait_ready()
    pair.send(sent, "--pps", "2000")  # Scapy's socket reads one frame per system call
    code, err = agent.stop()
    assert code == 0, err
    files = ring_files(data_dir)
    assert capinfos(files)[0] == 100  # only the UDP frames passed the kernel filter
    bad = subprocess.run(
        ["ip", "netns", "exec", pair.sen, sys.executable, "-m", "otwatch.cli", "--data-dir",
         str(tmp_path / "d2"), "agent", "run", "-i", pair.sen_if, "--bpf", "udp portx 5"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert bad.returncode == 1 and "invalid capture filter" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_missing_interface_is_one_clear_line(tmp_path):
    reason = _netns_supported()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "--data-dir", str(tmp_path / "d"), "agent", "run",
         "-i", "otwatch-nope0"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no such network interface: otwatch-nope0" in result.stderr
    assert "Traceback" not in result.stderr
