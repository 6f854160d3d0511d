"""Builders for the network/IT detector tests: Scapy frames with documentation-range
addresses, and a pipeline whose alert manager only collects detections (a fake; the store
under it is real, it holds the baseline and learning state the pipeline loads)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.detection import Detection
from otwatch.agent.pipeline import Pipeline
from otwatch.alerts.catalog import load_catalog

__all__ = [
    "NET",
    "SEC",
    "T0",
    "A",
    "B",
    "C",
    "Collector",
    "arp_reply",
    "arp_request",
    "feed",
    "icmp_echo",
    "mac",
    "make_pipeline",
    "netstore",
    "syn",
    "synack",
    "tcp",
    "udp",
]

SEC = 1_000_000_000
T0 = 1_790_000_000 * SEC
A, B, C = "192.0.2.10", "198.51.100.20", "203.0.113.30"
NET = "198.51.100"


def mac(address: str) -> str:
    """A stable locally administered MAC for an address (02:00:xx:xx:xx:xx)."""
    digits = [int(x) for x in address.split(".")] if "." in address else [0, 0, 0, 1]
    return "02:00:" + ":".join(f"{d:02x}" for d in digits)


def _ether(src: str, dst: str) -> Ether:
    return Ether(src=mac(src), dst=mac(dst))


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: str = "PA",
    payload: bytes = b"",
    seq: int = 1,
) -> Packet:
    return (
        _ether(src, dst)
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq)
        / payload
    )


def syn(src: str, dst: str, dport: int, sport: int = 40000) -> Packet:
    return tcp(src, dst, sport, dport, "S")


def synack(src: str, dst: str, sport: int, dport: int = 40000) -> Packet:
    return tcp(src, dst, sport, dport, "SA")


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> Packet:
    return _ether(src, dst) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload


def icmp_echo(src: str, dst: str, seq: int = 1) -> Packet:
    return _ether(src, dst) / IP(src=src, dst=dst) / ICMP(type=8, seq=seq)


def arp_request(sender: str, target: str, sender_mac: str | None = None) -> Packet:
    hw = sender_mac or mac(sender)
    return Ether(src=hw, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=hw, psrc=sender, pdst=target)


def arp_reply(sender: str, target: str, sender_mac: str | None = None) -> Packet:
    hw = sender_mac or mac(sender)
    return Ether(src=hw, dst=mac(target)) / ARP(
        op=2, hwsrc=hw, psrc=sender, hwdst=mac(target), pdst=target
    )


class Collector:
    """Stands in for the alert manager: keeps every detection, writes nothing."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.catalog = load_catalog()
        self.detections: list[Detection] = []

    def observe(self, det: Detection) -> None:
        self.detections.append(det)

    def flush(self) -> None:
        pass

    def types(self) -> Counter[str]:
        return Counter(d.type_id for d in self.detections)

    def of(self, type_id: str) -> list[Detection]:
        return [d for d in self.detections if d.type_id == type_id]


def make_pipeline(
    store: Any,
    engines: Sequence[type[Engine]],
    *,
    settings: dict | None = None,
    learning_s: float = 0.0,
    all_types: bool = True,
) -> tuple[Pipeline, Collector]:
    """A pipeline of ``engines`` whose detections are collected. ``all_types`` turns on the
    types the spec has off by default (the detectors are tested, not the defaults; the type
    gate has tests of its own), unless ``settings`` say otherwise for an engine."""
    collector = Collector(store)
    settings = dict(settings or {})
    if all_types:
        for engine in engines:
            table = settings.setdefault(engine.name, {})
            if "enable" not in table:
                settings[engine.name] = {**table, "enable": ["*"]}
    pipeline = Pipeline(
        collector,  # type: ignore[arg-type]
        learning_period_ns=int(learning_s * SEC),
        settings=settings,
        engines=tuple(engines),
    )
    pipeline.start_segment()
    return pipeline, collector


def feed(
    pipeline: Pipeline,
    packets: Iterable[Packet | bytes],
    start_ns: int = T0,
    step_ns: int = SEC // 1000,
    interface: str | None = None,
) -> int:
    """Process packets ``step_ns`` apart from ``start_ns``; returns the next free time."""
    ts = start_ns
    for pkt in packets:
        data = pkt if isinstance(pkt, bytes) else bytes(pkt)
        pipeline.process(ts, len(data), 1, data, interface)
        ts += step_ns
    return ts


@pytest.fixture(scope="module")
def netstore(tmp_path_factory):
    """One real store per test module; the collecting manager never writes alerts to it."""
    from otwatch.agent.store.db import open_store

    store = open_store(tmp_path_factory.mktemp("net"))
    yield store
    store.close()
