"""Device is Suspected to be Disconnected (Unresponsive) from packets."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.unresponsive import UnresponsiveEngine
from tests.factories import (
    SEC,
    T0,
    A,
    B,
    C,
    arp_request,
    feed,
    icmp_echo,
    make_pipeline,
    netstore,
    syn,
    tcp,
)

__all__ = ["netstore"]
ENGINES = (UnresponsiveEngine,)


def test_known_device_stops_answering(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [tcp(B, A, 502, 50000)])  # B is heard
    gone = (
        [syn(A, B, 502, 50001 + i) for i in range(4)] + [arp_request(A, B)] * 2 + [icmp_echo(A, B)]
    )
    feed(p, gone, T0 + 10 * SEC, 20 * SEC)
    router = (
        Ether()
        / IP(src="192.0.2.1", dst=A)
        / ICMP(type=3, code=1)
        / bytes(IP(src=A, dst=B) / TCP(sport=50009, dport=502))[:28]
    )
    feed(p, [router], T0 + 200 * SEC)
    [det] = got.of("device_is_suspected_to_be_disconnected_unresponsive")
    assert det.fields["destination_address"] == B and det.fields["attempts"] == 8


def test_answering_unknown_and_slow_attempts_are_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [tcp(B, A, 502, 50000)])
    for i in range(20):  # every attempt answered
        feed(p, [syn(A, B, 502, 50001 + i), tcp(B, A, 502, 50001 + i, "SA")], T0 + i * SEC)
    feed(p, [syn(A, C, 502, 51000 + i) for i in range(20)], T0 + 30 * SEC)  # C never heard
    feed(p, [syn(A, B, 502, 52000 + i) for i in range(8)], T0 + 40 * SEC, 60 * SEC)  # 8 in 7 min
    assert got.types() == {}
