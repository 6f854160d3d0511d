"""Abnormal Periodic Behavior In Communication Channel and Inactive Communication Channel."""

from __future__ import annotations

from otwatch.agent.engines.periodic import PeriodicEngine
from tests.factories import SEC, T0, A, B, EngineRun, modbus_request, netstore, tcp

__all__ = ["netstore"]
ENGINES = (PeriodicEngine,)


def polls(n: int) -> list:
    return [modbus_request(A, B, 3, tid=i, sport=50000) for i in range(n)]


def learned(netstore):
    """Learn a 1 s Modbus poll for 30 s."""
    run = EngineRun.with_store(netstore, ENGINES, learning_s=30)
    run.feed(polls(31), SEC, start_ns=T0)
    return run


def test_poll_four_times_faster(netstore):
    run = learned(netstore)
    assert f"{A}>{B}:502/tcp|1000" in run.ctx.baseline.kind("periodic")
    run.feed(polls(10), SEC // 4, start_ns=T0 + 32 * SEC)
    [det] = run.of("abnormal_periodic_behavior_in_communication_channel")
    assert det.fields["period_s"] == 1.0 and det.fields["observed_s"] == 0.25


def test_channel_goes_silent(netstore):
    run = learned(netstore)
    run.feed(polls(5), SEC, start_ns=T0 + 32 * SEC)
    run.feed(
        [tcp(B, A, 502, 50000, "A")], start_ns=T0 + 200 * SEC
    )  # other traffic drives the ticks
    [det] = run.of("inactive_communication_channel")
    assert (det.fields["source_address"], det.fields["destination_address"]) == (A, B)
    assert det.ts_ns == T0 + 36 * SEC + 60 * SEC


def test_steady_polling_and_irregular_channels_are_quiet(netstore):
    run = learned(netstore)
    run.feed(polls(120), SEC + SEC // 10, start_ns=T0 + 32 * SEC)  # 10 % slower: within tolerance
    assert run.types() == {}
    run = EngineRun.with_store(netstore, ENGINES, learning_s=30)
    gaps = [1, 5, 2, 9, 1, 3, 7, 2, 6, 1, 4, 8]
    ts = T0
    for gap in gaps:  # irregular: never learned as periodic
        run.feed(polls(1), start_ns=ts)
        ts += gap * SEC // 2
    run.feed(polls(20), SEC // 10, start_ns=T0 + 100 * SEC)
    run.feed([tcp(B, A, 502, 50000, "A")], start_ns=T0 + 400 * SEC)
    assert run.types() == {}
