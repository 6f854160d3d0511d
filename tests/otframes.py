"""Builders for industrial-protocol test traffic and a harness that runs one engine on it.

Frames are built with Scapy (our own layers for DNP3, S7comm and BACnet) between documentation
addresses; ``EngineRun`` runs one engine through the pipeline's own packet path (decode, flow
table, routing, type gate) and returns its detections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.baseline import Baseline, LearningClock
from otwatch.agent.engines.detection import Detection, DetectionFactory
from otwatch.agent.pipeline import PacketPath
from otwatch.alerts.catalog import load_catalog

T0 = 1_790_000_000 * 1_000_000_000
MIN = 60 * 1_000_000_000
CLIENT, SERVER, OTHER = "192.0.2.10", "198.51.100.20", "192.0.2.30"
MAC = {CLIENT: "02:00:00:00:00:0a", SERVER: "02:00:00:00:00:14", OTHER: "02:00:00:00:00:1e"}


def _mac(address: str) -> str:
    return MAC.get(address, "02:00:00:00:00:99")


def tcp(src: str, dst: str, sport: int, dport: int, payload: bytes | Packet, seq: int = 1000):
    return (
        Ether(src=_mac(src), dst=_mac(dst))
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags="PA", seq=seq)
        / (payload if isinstance(payload, Packet) else Raw(payload))
    )


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes | Packet):
    return (
        Ether(src=_mac(src), dst=_mac(dst))
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / (payload if isinstance(payload, Packet) else Raw(payload))
    )


def to_server(port: int, payload, *, src: str = CLIENT, dst: str = SERVER, sport: int = 40000,
              seq: int = 1000):  # fmt: skip
    return tcp(src, dst, sport, port, payload, seq)


def to_client(port: int, payload, *, src: str = SERVER, dst: str = CLIENT, dport: int = 40000,
              seq: int = 5000):  # fmt: skip
    return tcp(src, dst, port, dport, payload, seq)


class EngineRun:
    """One engine with its own context, fed frames like the pipeline would."""

    def __init__(self, engine_cls: type[Engine], *, settings: dict | None = None) -> None:
        self.clock = LearningClock(0)
        self.ctx = EngineContext(
            factory=DetectionFactory(load_catalog()),
            baseline=Baseline(),
            learning=self.clock,
            settings=dict(settings or {}),
        )
        self._out: list[Detection] = []
        self.path = PacketPath(self.ctx, (engine_cls,), self._out.append)
        self.engine = self.path.engines[0]
        self.flows = self.path.flows
        self.ts = T0
        self._next_seq: dict[tuple, int] = {}

    def feed(
        self, packets: Iterable, step_ns: int = 1_000_000, *, auto_seq: bool = True
    ) -> list[Detection]:
        """Feed Scapy packets (or raw frames); with ``auto_seq`` each TCP direction gets
        consecutive sequence numbers across calls, as a real stream would."""
        frames = []
        for pkt in packets:
            self.ts += step_ns
            if auto_seq and not isinstance(pkt, bytes) and TCP in pkt:
                key = (pkt[IP].src, pkt[TCP].sport, pkt[IP].dst, pkt[TCP].dport)
                pkt = pkt.copy()
                pkt[TCP].seq = self._next_seq.get(key, pkt[TCP].seq)
                self._next_seq[key] = (pkt[TCP].seq + len(pkt[TCP].payload)) & 0xFFFFFFFF
            data = pkt if isinstance(pkt, bytes) else bytes(pkt)
            frames.append((self.ts, len(data), 1, data))
        return self.feed_frames(frames)

    def feed_capture(self, path) -> list[Detection]:
        """Every frame of a capture file, with its own timestamps."""
        from otwatch.agent.capture.pcapfile import open_capture

        with open_capture(path) as capture:
            return self.feed_frames(list(capture))

    def feed_frames(self, frames: Iterable[tuple[int, int, int, bytes]]) -> list[Detection]:
        process = self.path.process
        for ts, wire_len, linktype, data in frames:
            self.ts = ts
            process(ts, wire_len, linktype, data)
        out, self._out[:] = list(self._out), []
        return out

    def learn(self, packets: Iterable, step_ns: int = 1_000_000) -> list[Detection]:
        """Feed ``packets`` in learning mode; learning ends afterwards."""
        self.clock.remaining_ns = 10**18
        try:
            return self.feed(packets, step_ns)
        finally:
            self.clock.remaining_ns = 0


def types(detections: Iterable[Detection]) -> Counter:
    return Counter(d.type_id for d in detections)


def of_type(detections: Iterable[Detection], type_id: str) -> list[Detection]:
    return [d for d in detections if d.type_id == type_id]
