"""A scan of 200,000 distinct flows keeps every scan detector's state within its bounds."""

from __future__ import annotations

import struct

from otwatch.agent.engines.address_scan import AddressScanEngine
from otwatch.agent.engines.arp_scan import ArpScanEngine
from otwatch.agent.engines.dos import DosEngine
from otwatch.agent.engines.plc_scan import PlcScanEngine
from otwatch.agent.engines.sessions import SessionsEngine
from otwatch.agent.engines.unresponsive import UnresponsiveEngine
from tests.factories import SEC, T0, EngineRun, arp_request, netstore, syn

__all__ = ["netstore"]
ENGINES = (
    AddressScanEngine,
    PlcScanEngine,
    SessionsEngine,
    DosEngine,
    UnresponsiveEngine,
    ArpScanEngine,
)
MAX = 500
FLOWS = 200_000


def test_two_hundred_thousand_flows_stay_bounded(netstore):
    settings = {
        name: {"max_tracked": MAX}
        for name in ("address_scan", "plc_scan", "sessions", "dos", "unresponsive", "arp_scan")
    }
    run = EngineRun.with_store(netstore, ENGINES, settings=settings)
    run.flows.max_flows = MAX
    template = bytearray(bytes(syn("192.0.2.1", "198.51.100.1", 502)))
    arp = bytearray(bytes(arp_request("192.0.2.1", "198.51.100.1")))
    process = run.pipeline.process
    for i in range(FLOWS):
        # every packet from a new source to a new destination and port: all distinct keys
        template[26:30] = struct.pack("!I", 0x0A000000 + i)  # source 10.x.y.z
        template[30:34] = struct.pack("!I", 0x0B000000 + i)
        struct.pack_into("!H", template, 34, 1024 + i % 60000)
        process(T0 + i * (SEC // 1000), len(template), 1, bytes(template))
        if i % 20 == 0:
            arp[6:12] = arp[22:28] = i.to_bytes(6, "big")  # a new sender MAC
            process(T0 + i * (SEC // 1000), len(arp), 1, bytes(arp))
    engines = {e.name: e for e in run.engines}
    assert len(engines["address_scan"].fast) <= MAX and len(engines["address_scan"].slow) <= MAX
    assert len(engines["plc_scan"].targets) <= MAX
    assert len(engines["sessions"].sessions) <= MAX
    assert len(engines["dos"].windows) <= MAX
    assert len(engines["arp_scan"].targets) <= MAX
    assert len(engines["unresponsive"].heard) <= MAX
    assert len(engines["unresponsive"].pending) <= MAX
    assert len(run.flows) <= MAX
    assert engines["address_scan"].fast.evicted > 0
    assert run.types() == {}
