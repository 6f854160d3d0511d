"""ICMP Flooding from packets."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.icmp_flood import IcmpFloodEngine
from tests.factories import SEC, A, B, feed, icmp_echo, make_pipeline, netstore

__all__ = ["netstore"]
ENGINES = (IcmpFloodEngine,)


def test_more_than_sixty_in_a_minute(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [icmp_echo(A, B, i) for i in range(61)], step_ns=SEC // 10)
    [det] = got.of("icmp_flooding")
    assert (det.fields["source_address"], det.fields["destination_address"]) == (A, B)


def test_ping_every_second_and_replies_are_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [icmp_echo(A, B, i) for i in range(180)], step_ns=SEC)  # `ping` for 3 minutes
    replies = [Ether() / IP(src=B, dst=A) / ICMP(type=0) for _ in range(200)]
    feed(p, replies, step_ns=SEC // 100)
    unreachable = [Ether() / IP(src=B, dst=A) / ICMP(type=3, code=3) for _ in range(200)]
    feed(p, unreachable, step_ns=SEC // 100)
    assert got.types() == {}
