"""Device is Suspected to be Disconnected (Unresponsive) from packets."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.unresponsive import UnresponsiveEngine
from tests.factories import SEC, T0, A, B, C, EngineRun, arp_request, icmp_echo, netstore, syn, tcp

__all__ = ["netstore"]
ENGINES = (UnresponsiveEngine,)


def test_known_device_stops_answering(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(B, A, 502, 50000)], start_ns=T0)  # B is heard
    gone = (
        [syn(A, B, 502, 50001 + i) for i in range(4)] + [arp_request(A, B)] * 2 + [icmp_echo(A, B)]
    )
    run.feed(gone, 20 * SEC, start_ns=T0 + 10 * SEC)
    router = (
        Ether()
        / IP(src="192.0.2.1", dst=A)
        / ICMP(type=3, code=1)
        / bytes(IP(src=A, dst=B) / TCP(sport=50009, dport=502))[:28]
    )
    run.feed([router], start_ns=T0 + 200 * SEC)
    [det] = run.of("device_is_suspected_to_be_disconnected_unresponsive")
    assert det.fields["destination_address"] == B and det.fields["attempts"] == 8


def test_answering_unknown_and_slow_attempts_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(B, A, 502, 50000)], start_ns=T0)
    for i in range(20):  # every attempt answered
        run.feed(
            [syn(A, B, 502, 50001 + i), tcp(B, A, 502, 50001 + i, "SA")], start_ns=T0 + i * SEC
        )
    run.feed(
        [syn(A, C, 502, 51000 + i) for i in range(20)], start_ns=T0 + 30 * SEC
    )  # C never heard
    run.feed(
        [syn(A, B, 502, 52000 + i) for i in range(8)], 60 * SEC, start_ns=T0 + 40 * SEC
    )  # 8 in 7 min
    assert run.types() == {}
