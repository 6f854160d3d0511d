"""ICMP Flooding from packets."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.icmp_flood import IcmpFloodEngine
from tests.factories import SEC, T0, A, B, EngineRun, icmp_echo, netstore

__all__ = ["netstore"]
ENGINES = (IcmpFloodEngine,)


def test_more_than_sixty_in_a_minute(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([icmp_echo(A, B, i) for i in range(61)], SEC // 10, start_ns=T0)
    [det] = run.of("icmp_flooding")
    assert (det.fields["source_address"], det.fields["destination_address"]) == (A, B)


def test_ping_every_second_and_replies_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([icmp_echo(A, B, i) for i in range(180)], SEC, start_ns=T0)  # `ping` for 3 minutes
    replies = [Ether() / IP(src=B, dst=A) / ICMP(type=0) for _ in range(200)]
    run.feed(replies, SEC // 100, start_ns=T0)
    unreachable = [Ether() / IP(src=B, dst=A) / ICMP(type=3, code=3) for _ in range(200)]
    run.feed(unreachable, SEC // 100, start_ns=T0)
    assert run.types() == {}
