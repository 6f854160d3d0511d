"""Illegal IP Address from packets."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.illegal_ip import IllegalIpEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore

__all__ = ["netstore"]
ENGINES = (IllegalIpEngine,)


def frame(src: str, dst: str, l4=None) -> object:
    return Ether() / IP(src=src, dst=dst) / (l4 if l4 is not None else TCP(sport=1, dport=80))


def test_impossible_addresses_on_the_wire(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [
            frame("127.0.0.1", B),
            frame(A, "127.0.0.5"),
            frame("0.0.0.0", B),
            frame("224.0.0.9", B, UDP(sport=520, dport=520)),
            frame(A, "240.0.0.1"),
            frame("255.255.255.255", B, UDP()),
        ],
        start_ns=T0,
    )
    reasons = sorted(d.fields["reason"] for d in run.of("illegal_ip_address"))
    assert len(reasons) == 6
    assert any("loopback" in r and r.startswith("source") for r in reasons)
    assert any("class E" in r for r in reasons)
    assert any("unspecified in TCP" in r for r in reasons)


def test_normal_and_legal_special_use_is_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [
            frame(A, B),
            frame(A, "255.255.255.255", UDP(sport=5000, dport=5000)),
            frame("0.0.0.0", "255.255.255.255", UDP(sport=68, dport=67)),  # DHCP discover
            frame(A, "239.1.2.3", UDP()),
            frame("169.254.1.1", "169.254.1.2"),
        ],
        start_ns=T0,
    )
    assert run.types() == {}


def test_repeats_are_throttled(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([frame("127.0.0.1", B)] * 100, SEC // 10, start_ns=T0)
    run.feed([frame("127.0.0.1", B)], start_ns=T0 + 61 * SEC)
    assert run.types() == {"illegal_ip_address": 2}
