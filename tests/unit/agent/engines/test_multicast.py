"""Unauthorized Multicast/Broadcast Connection from packets."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from otwatch.agent.engines.multicast import MulticastEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore, udp

__all__ = ["netstore"]
ENGINES = (MulticastEngine,)


def learned(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=10)
    run.feed(
        [udp(A, "239.1.1.1", 5000, 5000, b"x"), udp(A, "255.255.255.255", 68, 67, b"x")],
        start_ns=T0,
    )
    return run


def test_new_group_and_broadcast(netstore):
    run = learned(netstore)
    subnet_broadcast = (
        Ether(dst="ff:ff:ff:ff:ff:ff") / IP(src=B, dst="198.51.100.255") / UDP(sport=137, dport=137)
    )
    run.feed(
        [udp(A, "239.2.2.2", 5000, 5000, b"x"), udp(B, "255.255.255.255", 5000, 47808)],
        start_ns=T0 + 60 * SEC,
    )
    run.feed([subnet_broadcast], start_ns=T0 + 61 * SEC)
    dets = run.of("unauthorized_multicast_broadcast_connection")
    assert sorted(d.fields["destination_address"] for d in dets) == [
        "198.51.100.255",
        "239.2.2.2",
        "255.255.255.255",
    ]


def test_learned_groups_housekeeping_and_unicast_are_quiet(netstore):
    run = learned(netstore)
    ns = Ether() / IPv6(src="fe80::1", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fe80::2")
    run.feed(
        [
            udp(A, "239.1.1.1", 5000, 5000, b"x"),  # learned
            udp("0.0.0.0", "255.255.255.255", 68, 67, b"x"),  # DHCP client without an address
            ns,
            udp(A, B, 5000, 5000, b"x"),
        ],
        start_ns=T0 + 60 * SEC,
    )
    run.feed([udp(A, "239.2.2.2", 5000, 5000, b"x")] * 3, SEC, start_ns=T0 + 70 * SEC)  # throttled
    assert run.types() == {"unauthorized_multicast_broadcast_connection": 1}
