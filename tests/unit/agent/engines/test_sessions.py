"""Excessive Number of Sessions from packets."""

from __future__ import annotations

from otwatch.agent.engines.sessions import SessionsEngine
from tests.factories import A, B, feed, make_pipeline, netstore, syn

__all__ = ["netstore"]
ENGINES = (SessionsEngine,)


def test_fifty_sessions_in_a_minute(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn(A, B, 80, sport=50000 + i) for i in range(50)])
    [det] = got.of("excessive_number_of_sessions")
    assert det.fields["sessions"] == 50 and det.fields["destination_address"] == B


def test_retransmitted_syns_and_few_sessions_are_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn(A, B, 80, sport=50000) for _ in range(80)])  # one session, retransmitted
    feed(p, [syn(A, B, 80, sport=51000 + i) for i in range(48)])
    assert got.types() == {}
