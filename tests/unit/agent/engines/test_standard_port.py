"""Unexpected Traffic for Standard Port from packets."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR

from otwatch.agent.engines.standard_port import StandardPortEngine
from tests.factories import T0, A, B, EngineRun, modbus_request, netstore, syn, tcp, udp

__all__ = ["netstore"]
ENGINES = (StandardPortEngine,)


def test_not_http_on_80_not_modbus_on_502_not_dns_on_53(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [syn(A, B, 80, 50000), tcp(A, B, 50000, 80, payload=b"\x16\x03\x01\x02\x00\x01")],
        start_ns=T0,
    )
    run.feed(
        [syn(A, B, 502, 50001), tcp(A, B, 50001, 502, payload=b"hello world\r\n")], start_ns=T0
    )
    run.feed([udp(A, B, 50002, 53, b"\x00" * 5)], start_ns=T0)
    dets = run.of("unexpected_traffic_for_standard_port")
    assert sorted(d.fields["destination_port"] for d in dets) == [53, 80, 502]


def test_real_protocols_and_mid_stream_captures_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [syn(A, B, 80, 50000), tcp(A, B, 50000, 80, payload=b"GET / HTTP/1.1\r\n\r\n")], start_ns=T0
    )
    request = modbus_request(A, B, 3, sport=50001)
    run.feed([syn(A, B, 502, 50001), request], start_ns=T0)
    run.feed([udp(A, B, 50002, 53, bytes(DNS(qd=DNSQR(qname="plc.example.org"))))], start_ns=T0)
    run.feed(
        [syn(A, B, 443, 50003), tcp(A, B, 50003, 443, payload=b"\x16\x03\x01\x00\xa5\x01")],
        start_ns=T0,
    )
    run.feed(
        [syn(A, B, 22, 50004), tcp(A, B, 50004, 22, payload=b"SSH-2.0-PuTTY\r\n")], start_ns=T0
    )
    run.feed([tcp(A, B, 50005, 80, payload=b"\x89PNG body bytes")], start_ns=T0)  # no SYN seen
    run.feed(
        [syn(A, B, 80, 50006), tcp(B, A, 80, 50006, payload=b"\x00\x01 server first")], start_ns=T0
    )
    assert run.types() == {}
