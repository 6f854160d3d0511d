"""Abnormal HTTP Header Length, Abnormal Number of Parameters in HTTP Header, Illegal HTTP
Header Content and Unexpected message length from packets."""

from __future__ import annotations

from otwatch.agent.engines.http_anomaly import HttpAnomalyEngine
from tests.factories import T0, A, B, EngineRun, netstore, syn, tcp

__all__ = ["netstore"]
ENGINES = (HttpAnomalyEngine,)


def segments(data: bytes, size: int = 1400, dport: int = 80) -> list:
    return [tcp(A, B, 50000, dport, payload=data[i : i + size]) for i in range(0, len(data), size)]


def test_long_header_split_over_segments(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    request = b"GET / HTTP/1.1\r\nHost: b\r\nCookie: " + b"x" * 9000 + b"\r\n\r\n"
    run.feed([syn(A, B, 80, sport=50000), *segments(request)], start_ns=T0)
    assert run.types() == {"abnormal_http_header_length": 1}


def test_too_many_headers(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    request = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n"
    run.feed(segments(request), start_ns=T0)
    assert run.types() == {"abnormal_number_of_parameters_in_http_header": 1}


def test_illegal_header_content(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [tcp(A, B, 50000, 80, payload=b"GET / HTTP/1.1\r\nHost: b\x00\x01\r\n\r\n")], start_ns=T0
    )
    [det] = run.of("illegal_http_header_content")
    assert "control character" in det.fields["anomaly"]


def test_request_line_of_32k_and_ftp_command(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(segments(b"GET /" + b"A" * 33000 + b" HTTP/1.1\r\n\r\n"), start_ns=T0)
    run.feed(segments(b"USER " + b"B" * 40000 + b"\r\n", dport=21), start_ns=T0)
    assert run.types() == {"unexpected_message_length": 2}


def test_normal_requests_and_bodies_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    request = b"POST /upload HTTP/1.1\r\nHost: b\r\nContent-Length: 50000\r\n\r\n"
    body = bytes(range(256)) * 200  # binary body without line breaks where a head would be
    run.feed(segments(request + body), start_ns=T0)
    run.feed(segments(b"GET /a HTTP/1.1\r\nHost: b\r\n" + b"X: y\r\n" * 90 + b"\r\n"), start_ns=T0)
    run.feed(
        [tcp(B, A, 80, 50000, payload=b"HTTP/1.1 200 OK\r\n" + b"Z: " + b"z" * 9000)], start_ns=T0
    )
    run.feed(segments(b"STOR report.csv\r\n" * 3000, dport=21), start_ns=T0)
    assert run.types() == {}
