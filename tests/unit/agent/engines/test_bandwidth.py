"""Abnormal Traffic Bandwidth (per device, and between devices) from packets."""

from __future__ import annotations

from otwatch.agent.engines.bandwidth import BandwidthEngine
from tests.factories import SEC, T0, A, B, C, feed, make_pipeline, netstore, tcp

__all__ = ["netstore"]
ENGINES = (BandwidthEngine,)
MIN = 60 * SEC
CHUNK = bytes(1400)


START = (T0 // MIN + 1) * MIN  # minute-aligned


def minute(src: str, dst: str, packets: int) -> list:
    return [tcp(src, dst, 50000, 502, payload=CHUNK)] * packets


def test_much_more_than_learned(netstore):
    p, got = make_pipeline(netstore, ENGINES, learning_s=120)
    for m in range(2):  # learning: ~70 KB a minute
        feed(p, minute(A, B, 50), START + m * MIN, SEC)
    feed(p, minute(A, B, 1000), START + 3 * MIN, MIN // 2000)  # ~1.4 MB in the 4th minute
    feed(p, [tcp(A, B, 50000, 502)], START + 5 * MIN)  # opens the next minute
    types = got.types()
    assert types == {
        "abnormal_traffic_bandwidth": 2,
        "abnormal_traffic_bandwidth_between_devices": 1,
    }
    [channel] = got.of("abnormal_traffic_bandwidth_between_devices")
    assert (channel.fields["source_address"], channel.fields["destination_address"]) == (A, B)
    assert channel.fields["bytes"] > 1_000_000


def test_usual_volumes_and_unknown_devices_are_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES, learning_s=120)
    for m in range(2):
        feed(p, minute(A, B, 800), START + m * MIN, MIN // 1000)  # ~1.1 MB a minute learned
    feed(p, minute(A, B, 1000), START + 3 * MIN, MIN // 2000)  # 1.4 MB: same level
    feed(p, minute(C, B, 2000), START + 4 * MIN, MIN // 3000)  # C never seen while learning
    feed(p, [tcp(A, B, 50000, 502)], START + 6 * MIN)
    # C and the pair C>B were never learned (not judged); B's 2.8 MB is one level above its
    # learned 1.1 MB, below the two-level margin
    assert got.types() == {}
