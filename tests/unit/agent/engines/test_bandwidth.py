"""Abnormal Traffic Bandwidth (per device, and between devices) from packets."""

from __future__ import annotations

from otwatch.agent.engines.bandwidth import BandwidthEngine
from tests.factories import MIN, SEC, T0, A, B, C, EngineRun, netstore, tcp

__all__ = ["netstore"]
ENGINES = (BandwidthEngine,)
CHUNK = bytes(1400)


START = (T0 // MIN + 1) * MIN  # minute-aligned


def minute(src: str, dst: str, packets: int) -> list:
    return [tcp(src, dst, 50000, 502, payload=CHUNK)] * packets


def test_much_more_than_learned(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=120)
    for m in range(2):  # learning: ~70 KB a minute
        run.feed(minute(A, B, 50), SEC, start_ns=START + m * MIN)
    run.feed(minute(A, B, 1000), MIN // 2000, start_ns=START + 3 * MIN)  # ~1.4 MB in the 4th minute
    run.feed([tcp(A, B, 50000, 502)], start_ns=START + 5 * MIN)  # opens the next minute
    types = run.types()
    assert types == {
        "abnormal_traffic_bandwidth": 2,
        "abnormal_traffic_bandwidth_between_devices": 1,
    }
    [channel] = run.of("abnormal_traffic_bandwidth_between_devices")
    assert (channel.fields["source_address"], channel.fields["destination_address"]) == (A, B)
    assert channel.fields["bytes"] > 1_000_000


def test_usual_volumes_and_unknown_devices_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=120)
    for m in range(2):
        run.feed(
            minute(A, B, 800), MIN // 1000, start_ns=START + m * MIN
        )  # ~1.1 MB a minute learned
    run.feed(minute(A, B, 1000), MIN // 2000, start_ns=START + 3 * MIN)  # 1.4 MB: same level
    run.feed(
        minute(C, B, 2000), MIN // 3000, start_ns=START + 4 * MIN
    )  # C never seen while learning
    run.feed([tcp(A, B, 50000, 502)], start_ns=START + 6 * MIN)
    # C and the pair C>B were never learned (not judged); B's 2.8 MB is one level above its
    # learned 1.1 MB, below the two-level margin
    assert run.types() == {}
