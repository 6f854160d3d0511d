"""Abnormal Periodic Behavior In Communication Channel and Inactive Communication Channel."""

from __future__ import annotations

from otwatch.agent.engines.periodic import PeriodicEngine
from tests.factories import SEC, T0, A, B, feed, make_pipeline, modbus_request, netstore, tcp

__all__ = ["netstore"]
ENGINES = (PeriodicEngine,)


def polls(n: int) -> list:
    return [modbus_request(A, B, 3, tid=i, sport=50000) for i in range(n)]


def learned(netstore):
    """Learn a 1 s Modbus poll for 30 s."""
    p, got = make_pipeline(netstore, ENGINES, learning_s=30)
    feed(p, polls(31), T0, SEC)
    return p, got


def test_poll_four_times_faster(netstore):
    p, got = learned(netstore)
    assert f"{A}>{B}:502/tcp|1000" in p.ctx.baseline.kind("periodic")
    feed(p, polls(10), T0 + 32 * SEC, SEC // 4)
    [det] = got.of("abnormal_periodic_behavior_in_communication_channel")
    assert det.fields["period_s"] == 1.0 and det.fields["observed_s"] == 0.25


def test_channel_goes_silent(netstore):
    p, got = learned(netstore)
    feed(p, polls(5), T0 + 32 * SEC, SEC)
    feed(p, [tcp(B, A, 502, 50000, "A")], T0 + 200 * SEC)  # other traffic drives the ticks
    [det] = got.of("inactive_communication_channel")
    assert (det.fields["source_address"], det.fields["destination_address"]) == (A, B)
    assert det.ts_ns == T0 + 36 * SEC + 60 * SEC


def test_steady_polling_and_irregular_channels_are_quiet(netstore):
    p, got = learned(netstore)
    feed(p, polls(120), T0 + 32 * SEC, SEC + SEC // 10)  # 10 % slower: within tolerance
    assert got.types() == {}
    p, got = make_pipeline(netstore, ENGINES, learning_s=30)
    gaps = [1, 5, 2, 9, 1, 3, 7, 2, 6, 1, 4, 8]
    ts = T0
    for gap in gaps:  # irregular: never learned as periodic
        feed(p, polls(1), ts)
        ts += gap * SEC // 2
    feed(p, polls(20), T0 + 100 * SEC, SEC // 10)
    feed(p, [tcp(B, A, 502, 50000, "A")], T0 + 400 * SEC)
    assert got.types() == {}
