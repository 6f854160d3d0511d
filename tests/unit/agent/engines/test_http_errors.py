"""HTTP Client Error from packets."""

from __future__ import annotations

from otwatch.agent.engines.http_errors import HttpErrorEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore, tcp

__all__ = ["netstore"]
ENGINES = (HttpErrorEngine,)


def reply(status: bytes) -> object:
    return tcp(B, A, 80, 50000, payload=b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")


def test_burst_of_404(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([reply(b"404 Not Found")] * 20, start_ns=T0)
    [det] = run.of("http_client_error")
    assert (det.fields["source_address"], det.fields["status"]) == (A, 404)


def test_few_errors_challenges_and_successes_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([reply(b"404 Not Found")] * 19, start_ns=T0)
    run.feed([reply(b"401 Unauthorized")] * 30, start_ns=T0 + 100 * SEC)
    run.feed([reply(b"200 OK")] * 30, start_ns=T0 + 200 * SEC)
    assert run.types() == {}
