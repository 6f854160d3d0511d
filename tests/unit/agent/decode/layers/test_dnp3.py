"""DNP3 Scapy layers and struct helpers: build, dissect, round-trip, CRC blocks, transport
reassembly, object-header checks, real corpus frames, and garbage that never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from otwatch.agent.decode.layers.dnp3 import (
    APP_FUNCTIONS,
    DNP3,
    DNP3Application,
    DNP3ApplicationRequest,
    DNP3ApplicationResponse,
    DNP3Transport,
    LinkFrame,
    TransportReassembler,
    crc16,
    frame_length,
    frame_size,
    insert_crcs,
    parse_frame,
)
from otwatch.agent.decode.layers.dnp3_objects import check_objects


def application(pkt):
    return pkt.getlayer(DNP3ApplicationRequest) or pkt.getlayer(DNP3ApplicationResponse)


def frame(app, **link) -> DNP3:
    link.setdefault("destination", 10)
    link.setdefault("source", 1)
    return DNP3(user_data=DNP3Transport() / app, **link)


def test_crc_of_a_captured_header() -> None:
    header = bytes.fromhex("056408c40a000100")  # dnp3_cold_restart.pcap, frame 4
    assert crc16(header) == 0x42FC  # transmitted as fc 42


def test_defaults_build_a_valid_frame() -> None:
    raw = bytes(DNP3())
    assert raw[:3] == b"\x05\x64\x05"
    assert isinstance(parse_frame(raw), LinkFrame)


@pytest.mark.parametrize("fc", sorted(APP_FUNCTIONS))
def test_build_dissect_round_trip_per_function(fc: int) -> None:
    cls = DNP3ApplicationResponse if fc >= 129 else DNP3ApplicationRequest
    built = frame(cls(function=fc, seq=3) / Raw(b"\x3c\x02\x06" * 7))
    raw = bytes(built)
    again = DNP3(raw)
    assert not again.crc_errors
    assert again.length == 5 + 1 + (4 if fc >= 129 else 2) + 21
    app = again[cls]
    assert app.function == fc and app.seq == 3
    assert bytes(again) == raw
    link = parse_frame(raw)
    assert isinstance(link, LinkFrame) and link.user_data[2] == fc


def test_user_data_blocks_carry_their_own_crcs() -> None:
    user = bytes(range(40))
    wire = insert_crcs(user)
    assert len(wire) == 40 + 2 * 3
    assert wire[16:18] == crc16(user[:16]).to_bytes(2, "little")
    assert frame_size(5 + 40) == 10 + 40 + 6


def test_slash_construction_builds_the_same_bytes() -> None:
    app = DNP3ApplicationRequest(function=13)
    assert bytes(DNP3() / DNP3Transport() / app) == bytes(DNP3(user_data=DNP3Transport() / app))


def test_bad_crc_is_reported_not_raised() -> None:
    raw = bytearray(bytes(frame(DNP3ApplicationRequest(function=2) / Raw(bytes(30)))))
    raw[20] ^= 0x01
    assert DNP3(bytes(raw)).crc_errors == ["block 1"]
    assert parse_frame(bytes(raw)) == "bad CRC in user data block 1"
    raw[3] ^= 0x01
    assert "header" in DNP3(bytes(raw)).crc_errors
    assert parse_frame(bytes(raw)) == "bad link header CRC"


def test_response_iin_flags() -> None:
    resp = DNP3ApplicationResponse(iin1=0x80, iin2=0x01)
    again = DNP3Application(bytes(resp))
    assert isinstance(again, DNP3ApplicationResponse)
    assert again.iin1.device_restart and again.iin2.no_func_code_support


def test_class_guessed_from_bytes() -> None:
    assert isinstance(DNP3Application(b"\xc0\x01\x3c\x01\x06"), DNP3ApplicationRequest)
    assert isinstance(DNP3Application(b"\xc0\x82\x00\x00"), DNP3ApplicationResponse)
    assert isinstance(DNP3Transport(b"\x01abc").payload, Raw)  # not FIR: continuation data


def test_port_binding_and_two_frames_in_one_segment() -> None:
    one = bytes(frame(DNP3ApplicationRequest(function=13)))
    two = bytes(frame(DNP3ApplicationRequest(function=18)))
    pkt = Ether(bytes(Ether() / IP() / TCP(sport=40000, dport=20000) / Raw(one + two)))
    assert application(pkt[DNP3].user_data).function == 13
    assert application(pkt[DNP3:2].user_data).function == 18
    assert bytes(pkt[DNP3]) == one + two
    reply = Ether(bytes(Ether() / IP() / TCP(sport=20000, dport=40000) / Raw(one)))
    assert reply.haslayer(DNP3)


def test_real_frames_from_the_corpus(corpus) -> None:
    seen = {}
    for name in ("dnp3_cold_restart.pcap", "dnp3_test_data.pcap", "dnp3_select_operate.pcap"):
        for data, payload in corpus(name, 20000):
            if payload[:2] != b"\x05\x64":
                continue
            pkt = Ether(data)
            link = pkt[DNP3]
            assert not link.crc_errors
            assert bytes(link)[: len(payload)] == payload
            app = application(link)
            if app is not None:
                seen[app.function] = seen.get(app.function, 0) + 1
    # the MANIFEST's events: cold restart 1+2, warm restart 2, stop application 4, select/operate
    assert seen[13] == 3 and seen[14] == 2 and seen[18] == 4 and seen[3] == 1 and seen[4] == 1


def test_malformed_corpus_frames_are_reported(corpus) -> None:
    reasons = []
    for _data, payload in corpus("dnp3_malformed.pcap", 20000):
        link = parse_frame(payload[: frame_length(payload, 0) or len(payload)])
        if isinstance(link, str):
            reasons.append(link)
        elif link.carries_user_data:
            reason = check_objects(link.user_data[2], link.user_data[3:])
            if reason:
                reasons.append(reason)
    assert reasons[0] == "link LENGTH 2 below the minimum of 5"
    assert len(reasons) >= 150


def test_transport_reassembly() -> None:
    t = TransportReassembler(max_fragment=100)
    assert t.feed(b"\xc0abc") == b"abc"  # FIR+FIN
    assert t.feed(b"\x41ab") is None and t.feed(b"\x02cd") is None
    assert t.feed(b"\x83ef") == b"abcdef"
    assert t.feed(b"\x05lost") is None and t.dropped == 1  # no FIR: mid-stream
    t.feed(b"\x41xx")
    assert t.feed(b"\x83yy") is None and t.dropped == 2  # sequence gap
    t.feed(b"\x40" + bytes(90))
    assert t.feed(b"\x01" + bytes(20)) is None and t.dropped == 3  # over the bound


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    for cls in (DNP3, DNP3Transport, DNP3Application):
        bytes(cls(data))
    if data:
        frame_length(data, 0)
    parse_frame(data)
    check_objects(1, data)
    check_objects(4, data)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40), st.integers(0, 255))
def test_truncated_real_frame_never_raises(cut: int, function: int) -> None:
    raw = bytes(frame(DNP3ApplicationRequest(function=function) / Raw(bytes(30))))[:cut]
    DNP3(raw)
    parse_frame(raw)
