"""Port Scan Detected keeps bounded state however many ports one source probes."""

from __future__ import annotations

from otwatch.agent.engines.scans import PortScanEngine
from tests.factories import A, B, feed, make_pipeline, netstore, syn

__all__ = ["netstore"]


def test_a_full_port_sweep_keeps_at_most_max_ports_and_still_counts(netstore):
    settings = {"port_scan": {"max_ports": 100, "threshold": 25}}
    p, got = make_pipeline(netstore, (PortScanEngine,), settings=settings)
    feed(p, [syn(A, B, port) for port in range(1, 301)], step_ns=1_000_000)
    [window] = p.engines[0]._pairs.values()
    assert len(window.ports) == 100 and window.extra == 200
    dets = got.of("port_scan_detected")
    assert [d.fields["ports_probed"] for d in dets] == list(range(25, 301, 25))
