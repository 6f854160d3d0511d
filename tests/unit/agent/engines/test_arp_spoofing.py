"""ARP Spoofing from packets: two MACs claiming an address, gratuitous ARP floods."""

from __future__ import annotations

from otwatch.agent.engines.arp_spoofing import ArpSpoofingEngine
from tests.factories import SEC, T0, EngineRun, arp_reply, arp_request, netstore

__all__ = ["netstore"]
ENGINES = (ArpSpoofingEngine,)
GW, HOST = "192.0.2.1", "192.0.2.10"
REAL, FAKE = "02:00:00:00:00:01", "02:00:00:00:00:66"


def test_address_claimed_back_and_forth(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [arp_reply(GW, HOST, REAL), arp_reply(GW, HOST, FAKE), arp_reply(GW, HOST, REAL)],
        2 * SEC,
        start_ns=T0,
    )
    [det] = run.of("arp_spoofing")
    assert det.fields["source_mac"] == FAKE and det.fields["source_address"] == GW
    assert det.fields["claimed_by"] == [REAL, FAKE]


def test_gratuitous_flood(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([arp_request(HOST, HOST, FAKE) for _ in range(60)], SEC // 2, start_ns=T0)
    [det] = run.of("arp_spoofing")
    assert det.fields["reason"] == "gratuitous ARP flood"


def test_replaced_device_and_normal_arp_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([arp_reply(GW, HOST, REAL) for _ in range(20)], start_ns=T0)
    run.feed(
        [arp_reply(GW, HOST, FAKE) for _ in range(20)], start_ns=T0 + 120 * SEC
    )  # NIC swapped once
    run.feed([arp_request(HOST, HOST, REAL) for _ in range(59)], start_ns=T0 + 300 * SEC)  # 59 < 60
    run.feed(
        [arp_request("0.0.0.0", GW, FAKE) for _ in range(5)], start_ns=T0 + 400 * SEC
    )  # probes
    assert run.types() == {}
