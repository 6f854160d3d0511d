"""ARP Spoofing from packets: two MACs claiming an address, gratuitous ARP floods."""

from __future__ import annotations

from otwatch.agent.engines.arp_spoofing import ArpSpoofingEngine
from tests.factories import SEC, T0, arp_reply, arp_request, feed, make_pipeline, netstore

__all__ = ["netstore"]
ENGINES = (ArpSpoofingEngine,)
GW, HOST = "192.0.2.1", "192.0.2.10"
REAL, FAKE = "02:00:00:00:00:01", "02:00:00:00:00:66"


def test_address_claimed_back_and_forth(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(
        p,
        [arp_reply(GW, HOST, REAL), arp_reply(GW, HOST, FAKE), arp_reply(GW, HOST, REAL)],
        step_ns=2 * SEC,
    )
    [det] = got.of("arp_spoofing")
    assert det.fields["source_mac"] == FAKE and det.fields["source_address"] == GW
    assert det.fields["claimed_by"] == [REAL, FAKE]


def test_gratuitous_flood(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [arp_request(HOST, HOST, FAKE) for _ in range(60)], step_ns=SEC // 2)
    [det] = got.of("arp_spoofing")
    assert det.fields["reason"] == "gratuitous ARP flood"


def test_replaced_device_and_normal_arp_are_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [arp_reply(GW, HOST, REAL) for _ in range(20)])
    feed(p, [arp_reply(GW, HOST, FAKE) for _ in range(20)], T0 + 120 * SEC)  # NIC swapped once
    feed(p, [arp_request(HOST, HOST, REAL) for _ in range(59)], T0 + 300 * SEC)  # 59 < 60
    feed(p, [arp_request("0.0.0.0", GW, FAKE) for _ in range(5)], T0 + 400 * SEC)  # probes
    assert got.types() == {}
