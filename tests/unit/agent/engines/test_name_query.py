"""Unauthorized Name Query from packets."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR

from otwatch.agent.engines.name_query import NameQueryEngine
from tests.factories import SEC, T0, A, B, C, EngineRun, netstore, udp

__all__ = ["netstore"]
ENGINES = (NameQueryEngine,)


def query(client: str, server: str, name: str = "historian.example") -> object:
    return udp(client, server, 50000, 53, bytes(DNS(qd=DNSQR(qname=name))))


def test_query_to_a_server_not_used_while_learning(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=10)
    run.feed([query(A, B)], start_ns=T0)
    run.feed([query(A, C, "exfil.example")], start_ns=T0 + 60 * SEC)
    [det] = run.of("unauthorized_name_query")
    assert (det.fields["destination_address"], det.fields["domain"]) == (C, "exfil.example")


def test_learned_server_and_responses_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=10)
    run.feed([query(A, B)], start_ns=T0)
    run.feed(
        [query(A, B, "other.example"), udp(C, A, 53, 50000, bytes(DNS(qr=1)))],
        start_ns=T0 + 60 * SEC,
    )
    assert run.types() == {}
