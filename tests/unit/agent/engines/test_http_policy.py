"""Unauthorized HTTP Activity / User Agent / SOAP Action from packets."""

from __future__ import annotations

from otwatch.agent.engines.http_policy import HttpPolicyEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore, tcp

__all__ = ["netstore"]
ENGINES = (HttpPolicyEngine,)


def request(method: str = "GET", agent: str = "HMI/1.0", soap: str | None = None) -> bytes:
    head = f"{method} /api HTTP/1.1\r\nHost: plc\r\nUser-Agent: {agent}\r\n"
    if soap:
        head += f'SOAPAction: "{soap}"\r\n'
    return (head + "\r\n").encode()


def learned(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=10)
    run.feed([tcp(A, B, 50000, 80, payload=request(soap="urn:Read"))] * 3, start_ns=T0)
    return run


def test_new_method_agent_and_soap_action(netstore):
    run = learned(netstore)
    run.feed(
        [
            tcp(A, B, 50001, 80, payload=request("POST")),
            tcp(A, B, 50002, 80, payload=request(agent="sqlmap/1.7")),
            tcp(A, B, 50003, 80, payload=request(soap="urn:Write")),
        ],
        start_ns=T0 + 60 * SEC,
    )
    assert run.types() == {
        "unauthorized_http_activity": 1,
        "unauthorized_http_user_agent": 1,
        "unauthorized_http_soap_action": 1,
    }
    assert run.of("unauthorized_http_user_agent")[0].fields["user_agent"] == "sqlmap/1.7"
    assert run.of("unauthorized_http_soap_action")[0].fields["soap_action"] == "urn:Write"


def test_learned_requests_are_quiet(netstore):
    run = learned(netstore)
    run.feed([tcp(A, B, 50001, 80, payload=request(soap="urn:Read"))] * 5, start_ns=T0 + 60 * SEC)
    run.feed([tcp(B, A, 80, 50001, payload=b"HTTP/1.1 200 OK\r\n\r\n")], start_ns=T0 + 61 * SEC)
    assert run.types() == {}
