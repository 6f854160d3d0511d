"""ARP Address Scan Detected from packets."""

from __future__ import annotations

from otwatch.agent.engines.arp_scan import ArpScanEngine
from tests.factories import SEC, T0, A, EngineRun, arp_reply, arp_request, netstore

__all__ = ["netstore"]
ENGINES = (ArpScanEngine,)


def test_forty_targets_from_one_mac(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([arp_request(A, f"192.0.2.{i}") for i in range(100, 140)], 5 * SEC, start_ns=T0)
    [det] = run.of("arp_address_scan_detected")
    assert det.fields["source_mac"] == "02:00:c0:00:02:0a" and det.fields["source_address"] == A


def test_normal_arp_is_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([arp_request(A, f"192.0.2.{i}") for i in range(100, 139)], start_ns=T0)  # 39 targets
    run.feed(
        [arp_request(A, "192.0.2.100") for _ in range(100)], start_ns=T0 + SEC
    )  # same target, often
    run.feed(
        [arp_request("0.0.0.0", f"192.0.2.{i}") for i in range(200)], start_ns=T0 + 2 * SEC
    )  # probes
    run.feed(
        [arp_request(f"192.0.2.{i}", f"192.0.2.{i}") for i in range(200)], start_ns=T0 + 3 * SEC
    )
    run.feed([arp_reply("192.0.2.1", f"192.0.2.{i}") for i in range(100)], start_ns=T0 + 4 * SEC)
    # the same 39 targets again in a new window: still below the threshold
    run.feed([arp_request(A, f"192.0.2.{i}") for i in range(100, 139)], start_ns=T0 + 400 * SEC)
    assert run.types() == {}


def test_router_learned_as_scanner_stays_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=30)
    run.feed([arp_request(A, f"192.0.2.{i}") for i in range(100, 140)], start_ns=T0)
    run.feed([arp_request(A, f"192.0.2.{i}") for i in range(140, 200)], start_ns=T0 + 100 * SEC)
    assert run.types() == {}
