"""DNS decoding: questions, answers, compression, TCP framing, garbage."""

from __future__ import annotations

import random

from scapy.layers.dns import DNS, DNSQR, DNSRR

from otwatch.agent.decode.dns import NXDOMAIN, parse_dns, parse_dns_tcp


def test_query_name_and_type():
    msg = parse_dns(bytes(DNS(id=7, rd=1, qd=DNSQR(qname="PLC1.Example.org", qtype="AAAA"))))
    assert msg is not None
    assert (msg.id, msg.is_response, msg.qname, msg.qtype_name) == (
        7,
        False,
        "plc1.example.org",
        "AAAA",
    )


def test_response_answers_with_compression_and_rcode():
    pkt = DNS(
        id=1,
        qr=1,
        rcode=0,
        qd=DNSQR(qname="www.example.org"),
        an=[
            DNSRR(rrname="www.example.org", type="CNAME", rdata="web.example.org"),
            DNSRR(rrname="web.example.org", type="A", rdata="203.0.113.5"),
        ],
    )
    msg = parse_dns(bytes(pkt))
    assert msg.is_response and msg.ancount == 2
    assert [(a.name, a.rtype, a.value) for a in msg.answers] == [
        ("www.example.org", 5, "web.example.org"),
        ("web.example.org", 1, "203.0.113.5"),
    ]
    nx = parse_dns(bytes(DNS(qr=1, rcode=3, qd=DNSQR(qname="nope.example.org"))))
    assert nx.rcode == NXDOMAIN and nx.answers == ()


def test_tcp_length_prefix():
    body = bytes(DNS(id=9, qd=DNSQR(qname="a.example.org")))
    msg = parse_dns_tcp(len(body).to_bytes(2, "big") + body)
    assert msg is not None and msg.qname == "a.example.org"
    assert parse_dns_tcp(b"\x00\x05abc") is None


def test_pointer_loop_and_garbage_never_raise():
    loop = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert parse_dns(loop) is None
    rng = random.Random(5)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        parse_dns(data)
        parse_dns_tcp(data)
    good = bytes(
        DNS(
            qr=1,
            qd=DNSQR(qname="x.example.org"),
            an=DNSRR(rrname="x.example.org", rdata="192.0.2.1"),
        )
    )
    for cut in range(len(good)):
        parse_dns(good[:cut])
