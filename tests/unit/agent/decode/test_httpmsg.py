"""HTTP head decoding: request and status lines, headers, shape checks, garbage."""

from __future__ import annotations

import random

from otwatch.agent.decode.httpmsg import looks_like_request, parse_http


def test_request_head():
    head = parse_http(
        b"GET /index.php?x=1 HTTP/1.1\r\nHost: plc.example.org\r\nUser-Agent: curl/8\r\n\r\n"
    )
    assert head.is_request and head.method == "GET" and head.path == "/index.php"
    assert head.header("host") == "plc.example.org" and head.header("user-agent") == "curl/8"
    assert head.header_count == 2 and head.complete and head.illegal is None
    assert looks_like_request(b"POST / HTTP/1.1\r\n")
    assert not looks_like_request(b"\x16\x03\x01\x00")


def test_absolute_form_path_and_response_status():
    head = parse_http(b"GET http://example.org/a/b?c HTTP/1.0\r\n\r\n")
    assert head.path == "/a/b"
    resp = parse_http(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert not resp.is_request and resp.status == 404


def test_illegal_content_is_named():
    assert parse_http(b"GET / HTTP/1.1\r\nX-A: b\x00c\r\n\r\n").illegal.startswith("control")
    assert "header name" in parse_http(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n").illegal
    assert parse_http(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n").illegal == "line without colon"


def test_not_http_and_garbage():
    assert parse_http(b"\x00\x01\x02\x03" * 10) is None
    assert parse_http(b"SSH-2.0-OpenSSH_9.0\r\n") is None
    rng = random.Random(3)
    for _ in range(2000):
        parse_http(b"GET / HTTP/1.1\r\n" + bytes(rng.randrange(256) for _ in range(60)))
        parse_http(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60))))
