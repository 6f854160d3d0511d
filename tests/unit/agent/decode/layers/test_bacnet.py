"""BACnet/IP Scapy layers (BVLC/NPDU/APDU) and tag helpers: build, dissect, round-trip each
PDU type, real corpus frames dissected from Ether up, and garbage that never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from otwatch.agent.decode.layers.bacnet import (
    BVLC,
    NPDU,
    BACnetAbort,
    BACnetAPDU,
    BACnetAPDUReserved,
    BACnetComplexACK,
    BACnetConfirmedRequest,
    BACnetError,
    BACnetReject,
    BACnetSegmentACK,
    BACnetSimpleACK,
    BACnetUnconfirmedRequest,
    DeviceCommunicationControlRequest,
    ReinitializeDeviceRequest,
    context_unsigned,
    encode_password,
    error_class_code,
    object_identifier,
    parse_tag,
)

APDUS = [
    BACnetConfirmedRequest(service_choice=12, invoke_id=9, max_apdu=5),
    BACnetConfirmedRequest(segmented=1, sequence_number=2, proposed_window_size=4),
    BACnetUnconfirmedRequest(service_choice=8),
    BACnetSimpleACK(service_choice=15, invoke_id=3),
    BACnetComplexACK(service_choice=12, invoke_id=3),
    BACnetSegmentACK(negative_ack=1, server=1, sequence_number=5),
    BACnetError(service_choice=20),
    BACnetReject(reject_reason=9),
    BACnetAbort(server=1, abort_reason=4),
]


@pytest.mark.parametrize("apdu", APDUS, ids=lambda a: type(a).__name__)
def test_apdu_build_dissect_round_trip(apdu) -> None:
    raw = bytes(BVLC() / NPDU() / apdu)
    assert int.from_bytes(raw[2:4], "big") == len(raw)  # BVLC length filled in on build
    again = BVLC(raw)
    inner = again[NPDU].payload
    assert type(inner) is type(apdu)
    assert bytes(again) == raw


def test_apdu_class_guessed_from_bytes() -> None:
    assert isinstance(BACnetAPDU(b"\x10\x08"), BACnetUnconfirmedRequest)
    assert isinstance(BACnetAPDU(b"\x50\x01\x0f"), BACnetError)
    assert isinstance(BACnetAPDU(b"\x90\x00"), BACnetAPDUReserved)


def test_npdu_routing_and_network_messages() -> None:
    npdu = NPDU(dnet_present=1, dnet=5, dadr=b"\x07", snet_present=1, snet=9, sadr=b"\x01\x02")
    again = NPDU(bytes(npdu / BACnetUnconfirmedRequest()))
    assert (again.dnet, again.dadr, again.snet, again.sadr, again.hop_count) == (
        5, b"\x07", 9, b"\x01\x02", 255,
    )  # fmt: skip
    assert isinstance(again.payload, BACnetUnconfirmedRequest)
    message = NPDU(bytes(NPDU(network_message=1, message_type=1) / Raw(b"\x00\x05")))
    assert message.message_type == 1 and isinstance(message.payload, Raw)


def test_forwarded_npdu_and_length_bounds_padding() -> None:
    raw = bytes(BVLC(function=0x04, original_address="192.0.2.9") / NPDU() /
                BACnetUnconfirmedRequest()) + b"\x00\x00"  # fmt: skip
    bvlc = BVLC(raw)
    assert bvlc.original_address == "192.0.2.9"
    assert bvlc.haslayer(BACnetUnconfirmedRequest) and bytes(bvlc.lastlayer()) == b"\x00\x00"


def test_reinitialize_and_dcc_parameters() -> None:
    req = ReinitializeDeviceRequest(reinitialized_state=1, password_part=encode_password(b"pw"))
    again = BACnetAPDU(bytes(BACnetConfirmedRequest(service_choice=20) / req))
    parsed = again[ReinitializeDeviceRequest]
    assert parsed.reinitialized_state == 1 and parsed.password == b"pw"
    long_pw = ReinitializeDeviceRequest(password_part=encode_password(b"wireshark"))
    assert ReinitializeDeviceRequest(bytes(long_pw)).password == b"wireshark"
    assert ReinitializeDeviceRequest(b"\x09\x00").password is None
    params = DeviceCommunicationControlRequest(parameters=b"\x09\x3c\x19\x01")
    dcc = BACnetAPDU(bytes(BACnetConfirmedRequest(service_choice=17) / params))
    assert dcc[DeviceCommunicationControlRequest].enable_disable == 1
    assert dcc[DeviceCommunicationControlRequest].duration_minutes == 60


def test_tag_helpers() -> None:
    assert parse_tag(b"\x0c\x00\x80\x00\x01", 0) == (0, True, 4, 1)
    assert parse_tag(b"\x1d\x0a" + bytes(10), 0) == (1, True, 10, 2)
    assert parse_tag(b"\x1d", 0) is None
    assert object_identifier(0x00800001) == (2, 1)
    assert context_unsigned(b"\x0c\x00\x80\x00\x01\x19\x55", 1) == 85
    assert error_class_code(b"\x91\x05\x91\x1a") == (5, 26)
    assert error_class_code(b"\x19\x05") is None


def test_real_frames_from_the_corpus(corpus) -> None:
    services: dict[int, int] = {}
    errors = []
    for data, payload in corpus("bacnet_stack_services.pcap", 47808):
        bvlc = Ether(data)[BVLC]
        assert bytes(bvlc)[: len(payload)] == payload
        if bvlc.haslayer(BACnetConfirmedRequest):
            choice = bvlc[BACnetConfirmedRequest].service_choice
            services[choice] = services.get(choice, 0) + 1
        if bvlc.haslayer(BACnetError):
            errors.append(error_class_code(bytes(bvlc[BACnetError].payload)))
    assert services[20] == 3 and services[17] == 8  # ReinitializeDevice, DCC over B/IP
    assert (5, 26) in errors  # services / password-failure


def test_udp_port_binding() -> None:
    pkt = Ether(bytes(Ether() / IP() / UDP(sport=47808, dport=47808) / BVLC() / NPDU() /
                      BACnetUnconfirmedRequest()))  # fmt: skip
    assert pkt.haslayer(BACnetUnconfirmedRequest)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_never_raises(data: bytes) -> None:
    for cls in (BVLC, NPDU, BACnetAPDU, ReinitializeDeviceRequest):
        bytes(cls(data))
    for pos in range(min(len(data), 8)):
        parse_tag(data, pos)
    error_class_code(data)
    context_unsigned(data, 1)
