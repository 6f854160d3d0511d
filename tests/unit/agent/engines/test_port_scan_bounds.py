"""Port Scan Detected keeps bounded state however many ports one source probes."""

from __future__ import annotations

from otwatch.agent.engines.scans import PortScanEngine
from tests.factories import T0, A, B, EngineRun, netstore, syn

__all__ = ["netstore"]


def test_a_full_port_sweep_keeps_at_most_max_ports_and_still_counts(netstore):
    settings = {"port_scan": {"max_ports": 100, "threshold": 25}}
    run = EngineRun.with_store(netstore, (PortScanEngine,), settings=settings)
    run.feed([syn(A, B, port) for port in range(1, 301)], 1_000_000, start_ns=T0)
    [window] = run.engines[0]._pairs.values()
    assert len(window.ports) == 100 and window.extra == 200
    dets = run.of("port_scan_detected")
    assert [d.fields["ports_probed"] for d in dets] == list(range(25, 301, 25))
