"""The datagram quoted in ICMP errors."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP

from otwatch.agent.decode.headers import decode
from otwatch.agent.decode.icmp import quoted_datagram


def test_unreachable_quotes_the_failed_datagram():
    inner = IP(src="192.0.2.10", dst="198.51.100.20") / TCP(sport=40000, dport=502)
    frame = bytes(IP(src="192.0.2.1", dst="192.0.2.10") / ICMP(type=3, code=1) / bytes(inner)[:28])
    rec = decode(0, len(frame), 101, frame)
    q = quoted_datagram(rec.ip_proto, rec.icmp_type, rec.payload)
    assert (q.src, q.dst, q.proto, q.sport, q.dport) == (
        "192.0.2.10",
        "198.51.100.20",
        6,
        40000,
        502,
    )


def test_non_errors_and_short_quotes_are_none():
    assert quoted_datagram(1, 8, b"\x45" * 40) is None
    assert quoted_datagram(1, 3, b"\x45\x00") is None
    assert quoted_datagram(1, 3, bytes(UDP())) is None  # not an IPv4 header
