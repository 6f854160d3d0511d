"""ARP Address Scan Detected from packets."""

from __future__ import annotations

from otwatch.agent.engines.arp_scan import ArpScanEngine
from tests.factories import SEC, T0, A, arp_reply, arp_request, feed, make_pipeline, netstore

__all__ = ["netstore"]
ENGINES = (ArpScanEngine,)


def test_forty_targets_from_one_mac(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [arp_request(A, f"192.0.2.{i}") for i in range(100, 140)], step_ns=5 * SEC)
    [det] = got.of("arp_address_scan_detected")
    assert det.fields["source_mac"] == "02:00:c0:00:02:0a" and det.fields["source_address"] == A


def test_normal_arp_is_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [arp_request(A, f"192.0.2.{i}") for i in range(100, 139)])  # 39 targets
    feed(p, [arp_request(A, "192.0.2.100") for _ in range(100)], T0 + SEC)  # same target, often
    feed(p, [arp_request("0.0.0.0", f"192.0.2.{i}") for i in range(200)], T0 + 2 * SEC)  # probes
    feed(p, [arp_request(f"192.0.2.{i}", f"192.0.2.{i}") for i in range(200)], T0 + 3 * SEC)
    feed(p, [arp_reply("192.0.2.1", f"192.0.2.{i}") for i in range(100)], T0 + 4 * SEC)
    # the same 39 targets again in a new window: still below the threshold
    feed(p, [arp_request(A, f"192.0.2.{i}") for i in range(100, 139)], T0 + 400 * SEC)
    assert got.types() == {}


def test_router_learned_as_scanner_stays_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES, learning_s=30)
    feed(p, [arp_request(A, f"192.0.2.{i}") for i in range(100, 140)])
    feed(p, [arp_request(A, f"192.0.2.{i}") for i in range(140, 200)], T0 + 100 * SEC)
    assert got.types() == {}
