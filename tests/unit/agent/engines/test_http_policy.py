"""Unauthorized HTTP Activity / User Agent / SOAP Action from packets."""

from __future__ import annotations

from otwatch.agent.engines.http_policy import HttpPolicyEngine
from tests.factories import SEC, T0, A, B, feed, make_pipeline, netstore, tcp

__all__ = ["netstore"]
ENGINES = (HttpPolicyEngine,)


def request(method: str = "GET", agent: str = "HMI/1.0", soap: str | None = None) -> bytes:
    head = f"{method} /api HTTP/1.1\r\nHost: plc\r\nUser-Agent: {agent}\r\n"
    if soap:
        head += f'SOAPAction: "{soap}"\r\n'
    return (head + "\r\n").encode()


def learned(netstore):
    p, got = make_pipeline(netstore, ENGINES, learning_s=10)
    feed(p, [tcp(A, B, 50000, 80, payload=request(soap="urn:Read"))] * 3)
    return p, got


def test_new_method_agent_and_soap_action(netstore):
    p, got = learned(netstore)
    feed(
        p,
        [
            tcp(A, B, 50001, 80, payload=request("POST")),
            tcp(A, B, 50002, 80, payload=request(agent="sqlmap/1.7")),
            tcp(A, B, 50003, 80, payload=request(soap="urn:Write")),
        ],
        T0 + 60 * SEC,
    )
    assert got.types() == {
        "unauthorized_http_activity": 1,
        "unauthorized_http_user_agent": 1,
        "unauthorized_http_soap_action": 1,
    }
    assert got.of("unauthorized_http_user_agent")[0].fields["user_agent"] == "sqlmap/1.7"
    assert got.of("unauthorized_http_soap_action")[0].fields["soap_action"] == "urn:Write"


def test_learned_requests_are_quiet(netstore):
    p, got = learned(netstore)
    feed(p, [tcp(A, B, 50001, 80, payload=request(soap="urn:Read"))] * 5, T0 + 60 * SEC)
    feed(p, [tcp(B, A, 80, 50001, payload=b"HTTP/1.1 200 OK\r\n\r\n")], T0 + 61 * SEC)
    assert got.types() == {}
