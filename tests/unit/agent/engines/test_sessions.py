"""Excessive Number of Sessions from packets."""

from __future__ import annotations

from otwatch.agent.engines.sessions import SessionsEngine
from tests.factories import T0, A, B, EngineRun, netstore, syn

__all__ = ["netstore"]
ENGINES = (SessionsEngine,)


def test_fifty_sessions_in_a_minute(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn(A, B, 80, sport=50000 + i) for i in range(50)], start_ns=T0)
    [det] = run.of("excessive_number_of_sessions")
    assert det.fields["sessions"] == 50 and det.fields["destination_address"] == B


def test_retransmitted_syns_and_few_sessions_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [syn(A, B, 80, sport=50000) for _ in range(80)], start_ns=T0
    )  # one session, retransmitted
    run.feed([syn(A, B, 80, sport=51000 + i) for i in range(48)], start_ns=T0)
    assert run.types() == {}
